"""Both sides of a data-parallel step: rank 0 leads (`step_with_peers`), the others follow (`follow`).

Rank 0 owns the run (store, checkpoints, adapter, evaluation, promotion; `trainers.run_loop`). A
follower makes the same engine, starts from the checkpoint rank 0 names (same filesystem: one
machine, as torchrun --standalone and mlx.launch on one host), then takes a step each time rank 0
says GO — with the same micro-batches, since a step's batch is a pure function of the step — and
returns when rank 0 says STOP. Evaluations happen on rank 0 meanwhile; a follower waits for them in
the next GO, within `[train].collective_timeout_s`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from trainers.engine_base import StepStats, TrainEngine
from trainers.plan import TrainingPlan
from trainers.world import GO, STOP, PeerLost, World


def follow(plan: TrainingPlan, world: World) -> int:
    """Train as a non-zero rank until rank 0 stops; returns the steps taken here. A lost peer raises
    `PeerLost` (the caller exits nonzero; rank 0 records the run)."""
    engine = plan.make_engine()
    steps = 0
    try:
        engine.use_world(world)
        checkpoint = world.broadcast_text("")
        if checkpoint:
            engine.load_state(Path(checkpoint))
        while world.broadcast_int(STOP) == GO:
            engine.train_step(plan.batches_for(engine.step))
            steps += 1
    finally:
        engine.close()
    return steps


async def step_with_peers(world: World, engine: TrainEngine[Any], micro: list[Any]) -> StepStats:
    """One training step; with other ranks, after telling them to take it too, and bounded by the
    world's timeout (a step that never returns is a lost peer whose collective hangs)."""
    if world.size == 1:
        return await asyncio.to_thread(engine.train_step, micro)

    def step() -> StepStats:
        world.broadcast_int(GO)
        return engine.train_step(micro)

    try:
        return await asyncio.wait_for(asyncio.to_thread(step), world.timeout_s)
    except TimeoutError:
        raise PeerLost(f"no answer from the other training processes in {world.timeout_s:.0f}s "
                       "([train].collective_timeout_s)", stuck=True) from None
