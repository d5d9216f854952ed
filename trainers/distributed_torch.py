"""torch.distributed for data-parallel runs: join torchrun's group, sum arrays and LoRA gradients.

The gradients are summed with one `all_reduce` on a flat buffer after all micro-batches' backward
passes, not with DistributedDataParallel: DDP reduces inside every backward (gradient accumulation
would need `no_sync`), expects every rank to run a forward (a rank whose shard of a small batch is
empty has none) and adds bucket bookkeeping for a few MB of LoRA weights. One explicit collective per
step is exact, works with empty shards and puts the logged loss sum in the same message.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from trainers.world import PeerLost, World


def _device(backend: str, local_rank: int) -> torch.device:
    return torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")


def join_torch(device: str, timeout_s: float) -> World:
    """Join torchrun's group: NCCL when the run's device is CUDA (one GPU per rank), gloo otherwise."""
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    where = _device(backend, local_rank)

    def all_sum(values: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(values)).to(where)
        reduce_sum(tensor)
        return tensor.cpu().numpy()

    # Rank 0's own deadline comes after gloo's/NCCL's, so their error (and a free thread) comes first.
    return World(rank, size, local_rank, "torch", timeout_s + 30.0, all_sum)


def reduce_sum(tensor: torch.Tensor) -> None:
    """In-place sum over the ranks; a dead or silent peer (error or timeout) raises PeerLost."""
    try:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    except (RuntimeError, OSError) as exc:  # DistBackendError and gloo's connection errors are RuntimeErrors
        raise PeerLost(f"a training process stopped answering: {str(exc).splitlines()[0][:200]}") from exc


def sum_gradients(params: list[torch.nn.Parameter], loss_sum: float) -> float:
    """Sum the parameters' gradients and the loss sum over the ranks in one collective; returns the
    global loss sum. A rank whose shard was empty has no gradients and contributes zeros."""
    parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
             for p in params]
    flat = torch.cat(parts + [torch.tensor([loss_sum], dtype=parts[0].dtype, device=parts[0].device)])
    reduce_sum(flat)
    offset = 0
    for param in params:
        grad = flat[offset:offset + param.numel()].view_as(param)
        if param.grad is None:
            param.grad = grad.clone()
        else:
            param.grad.copy_(grad)
        offset += param.numel()
    return float(flat[-1])


def leave_torch() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
