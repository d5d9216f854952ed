"""The ranks other than 0 of a data-parallel run: train their shard of each step, write nothing.

Rank 0 owns the run (store, checkpoints, adapter, evaluation, promotion; `trainers.run_loop`). A
follower makes the same engine, starts from the checkpoint rank 0 names (same filesystem: one
machine, as torchrun --standalone and mlx.launch on one host), then takes a step each time rank 0
says GO — with the same micro-batches, since a step's batch is a pure function of the step — and
returns when rank 0 says STOP. Evaluations happen on rank 0 meanwhile; a follower waits for them in
the next GO, within `[train].collective_timeout_s`.
"""

from __future__ import annotations

from pathlib import Path

from trainers.world import GO, STOP, World
from trainers.plan import TrainingPlan


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
