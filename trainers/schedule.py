"""Learning-rate schedule: linear warmup, then cosine decay; a pure function of the step.

The engines recompute the rate from the optimizer step before every update instead of keeping a
scheduler object, so a resumed run needs nothing but the step count to continue on the same curve.
"""

from __future__ import annotations

import math


def lr_at(step: int, base_lr: float, warmup_steps: int, max_steps: int, min_ratio: float = 0.0) -> float:
    """Rate for optimizer step `step` (0-based).

    Warmup rises linearly as base·(step+1)/warmup, so the first step already moves (HF's schedule
    spends step 0 at rate 0) and step warmup−1 reaches the base rate. Cosine then falls from the
    base at step `warmup_steps` towards min_ratio·base at `max_steps`, and stays there beyond.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0 (got {step})")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def lr_curve(base_lr: float, warmup_steps: int, max_steps: int, min_ratio: float = 0.0) -> list[float]:
    """The rate of every step of a run, e.g. for a chart of the planned schedule."""
    return [lr_at(s, base_lr, warmup_steps, max_steps, min_ratio) for s in range(max_steps)]
