"""mx.distributed for data-parallel runs: join mlx.launch's group, sum arrays and LoRA gradient trees.

MLX has no broadcast, so control messages are sums where only rank 0 contributes (see `World`). A
peer that dies closes its sockets and the survivors' `all_sum` usually fails (PeerLost), but the ring
has no timeout and was seen here waiting forever instead; rank 0's run loop bounds each step by
`[train].collective_timeout_s` for that case.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map

from backends.mlx_thread import mlx_worker
from trainers.world import PeerLost, World


def join_mlx(timeout_s: float) -> World:
    """Join the group mlx.launch set up (its environment names the backend's hosts and this rank).

    Runs, like every collective here, on the process's MLX thread: MLX streams belong to a thread.
    """
    worker = mlx_worker()
    group = worker.call(mx.distributed.init, strict=True)

    def sum_on_mlx_thread(values: np.ndarray) -> np.ndarray:
        try:
            out = mx.distributed.all_sum(mx.array(values), group=group)
            mx.eval(out)
        except RuntimeError as exc:
            raise PeerLost(f"a training process stopped answering: {exc}") from exc
        return np.array(out)

    return World(group.rank(), group.size(), group.rank(), "mlx", timeout_s,
                 lambda values: worker.call(sum_on_mlx_thread, values))


def sum_gradients(grads: Any, loss_sum: float) -> tuple[Any, float]:
    """The gradient tree and the loss sum, summed over the ranks (each rank holds its shard's)."""
    try:
        summed = tree_map(lambda g: mx.distributed.all_sum(g), grads)
        loss = mx.distributed.all_sum(mx.array([loss_sum], mx.float32))
        mx.eval(summed, loss)
    except RuntimeError as exc:
        raise PeerLost(f"a training process stopped answering: {exc}") from exc
    return summed, float(loss[0])
