"""Joining and leaving a data-parallel run's process group (the framework of the run's launcher).

Apart from `trainers.world` because it imports the framework modules, which themselves need `World`.
"""

from __future__ import annotations

from trainers.world import SINGLE, World, launched_by


def join_world(backend: str, device: str, timeout_s: float) -> World:
    """Join the launcher's process group (torch: gloo on CPU, NCCL on CUDA; MLX: its ring), or one
    process's world when not launched. Raises ValueError when the launcher and the backend differ."""
    framework = launched_by()
    if framework is None:
        return SINGLE
    if framework != backend:
        launcher = "torchrun" if framework == "torch" else "mlx.launch"
        raise ValueError(f"launched by {launcher} but the run's backend is {backend}; set [model].backend = "
                         f"{framework!r} (or RAGWELD_BACKEND={framework}) or use the {backend} launcher")
    if framework == "torch":
        from trainers.distributed_torch import join_torch
        return join_torch(device, timeout_s)
    from trainers.distributed_mlx import join_mlx
    return join_mlx(timeout_s)


def leave_world(world: World) -> None:
    """Tear down the process group (torch); nothing to do for one process or MLX."""
    if world.framework == "torch":
        from trainers.distributed_torch import leave_torch
        leave_torch()
