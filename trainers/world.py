"""Who this process is in a data-parallel run (`World`), and the launcher's environment.

A run launched by `torchrun` (or `ragweld-tui --run F --nproc N`, which calls it) or by `mlx.launch`
trains as N ranks of one `World`. Every rank computes its contiguous shard of the same global batch
(the batch a one-process run uses for that step), the LoRA gradients are summed across ranks and every
rank takes the same AdamW step, so the update equals the one-process update. Rank 0 alone owns the
run: it writes the store, the checkpoints and the adapter, and evaluates; the other ranks only train,
following rank 0's per-step signal (`trainers.rank_worker`).

Free of any framework, so engines and the run loop can use it; joining a group is
`trainers.distributed`, the collectives `trainers.distributed_torch` and `trainers.distributed_mlx`.
A failed collective raises `PeerLost`, which the run loop turns into an `interrupted` run with a
checkpoint, resumable with any number of processes.
"""


from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GO, STOP = 1, 0


class PeerLost(RuntimeError):
    """Another rank of the run died or stopped answering (a collective failed or timed out).

    `stuck`: the collective never returned (MLX's ring can wait forever on a dead peer), so the thread
    that runs the engine is still inside it and the engine must not be touched again.
    """

    def __init__(self, message: str, stuck: bool = False) -> None:
        super().__init__(message)
        self.stuck = stuck


def _single_sum(values: np.ndarray) -> np.ndarray:
    return values


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank, world size, local rank and the framework that launched it.

    `all_sum` sums a small numpy array over the ranks (control messages, logged loss); one process's
    world sums over itself. Gradients are summed by the engines on their own tensors.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    framework: str | None = None  # "torch" (torchrun) or "mlx" (mlx.launch); None: one process
    timeout_s: float = 0.0  # how long rank 0 waits for a step's collectives (`[train].collective_timeout_s`)
    all_sum: Callable[[np.ndarray], np.ndarray] = field(default=_single_sum, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, units: int) -> tuple[int, int]:
        """This rank's contiguous part [start, stop) of `units` items, sizes differing by at most one."""
        base, extra = divmod(units, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def broadcast_int(self, value: int) -> int:
        """Rank 0's `value` on every rank (the others' argument is ignored)."""
        return int(self.all_sum(np.array([value if self.is_main else 0], np.int32))[0])

    def broadcast_text(self, text: str) -> str:
        """Rank 0's `text` on every rank (a path: short, so one int per byte is fine)."""
        data = text.encode() if self.is_main else b""
        length = self.broadcast_int(len(data))
        codes = np.zeros(length, np.int32)
        if self.is_main:
            codes[:] = np.frombuffer(data, np.uint8)
        return bytes(self.all_sum(codes).astype(np.uint8).tolist()).decode() if length else ""


SINGLE = World()


class Sharded:
    """What a training engine needs to train its rank's shard of every micro-batch (both backends).

    Engines start in one process's world; the run loop hands them the run's `World` with `use_world`.
    """

    world: World = SINGLE

    def use_world(self, world: World) -> None:
        self.world = world

    def _shard_unit(self) -> int:
        """Rows per example, the unit a micro-batch is sharded by (a listwise group for rerankers)."""
        return 1

    def _local(self, batch: Any) -> Any | None:
        """This rank's shard of a micro-batch: all of it in one process, None when the shard is empty."""
        if self.world.size == 1:
            return batch
        unit = self._shard_unit()
        return batch.shard(*self.world.shard(len(batch.rows) // unit), unit)


def launched_by() -> str | None:
    """The launcher this process runs under, from its environment: "torch", "mlx" or None."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return "torch"
    if "MLX_RANK" in os.environ:
        return "mlx"
    return None


def env_rank() -> int:
    """This process's rank as the launcher set it (0 outside a launcher), before any collective exists."""
    framework = launched_by()
    return int(os.environ["RANK"] if framework == "torch" else os.environ.get("MLX_RANK", "0"))


def local_device(device: str, world: World) -> str:
    """The device of this rank: on CUDA each rank takes `cuda:LOCAL_RANK`; otherwise `device` as chosen."""
    return f"cuda:{world.local_rank}" if world.size > 1 and device.startswith("cuda") else device
