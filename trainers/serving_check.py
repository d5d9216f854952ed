"""Measure the adapter serving now on a run's own dev candidates, for the promotion gate.

A candidate must beat what it would replace. The serving adapter's old manifest metrics were taken
on another split (or other data), so they prove nothing here: it is re-evaluated with the run's
plan, on exactly the candidate lists the base and the tuned adapter were ranked on. An adapter for
another base, another prompt template or another kind cannot be compared; it is named, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.adapters import AdapterError, LoraWeights, read_adapter, verify_adapter
from trainers.settings import LoraConfig
from trainers.evaluation import Evaluation


@dataclass
class ServingReference:
    """The serving adapter's run id and its dev evaluation, or why it could not be compared."""

    run_id: str
    evaluation: Evaluation | None = None
    note: str | None = None


def lora_config_for(lora: LoraWeights, like: LoraConfig) -> LoraConfig:
    """The LoRA settings that rebuild exactly this adapter's shape (rank, scale, targets, last N layers)."""
    targets = sorted({key.rsplit(".", 1)[-1] for key in lora.target_keys()})
    return like.model_copy(update={"rank": lora.rank, "alpha": lora.scale * lora.rank, "dropout": 0.0,
                                   "target_modules": targets, "num_layers": len(lora.layer_indices())})


def evaluate_serving(plan: Any, folder: Path, run_id: str) -> ServingReference:
    """Evaluate the adapter in `folder` (serving for `plan.kind`) with the plan's dev evaluation.

    `plan` is a `trainers.plan.TrainingPlan`; it supplies the compatibility fingerprints and
    `evaluate_adapter`. Never raises for a bad serving adapter: the note says what was wrong.
    """
    try:
        manifest = verify_adapter(folder)
    except AdapterError as exc:
        return ServingReference(run_id, note=f"the serving adapter (run {run_id}) is unreadable: {exc}")
    if manifest.kind != plan.kind:
        return ServingReference(run_id, note=f"the serving adapter (run {run_id}) is a {manifest.kind} adapter")
    if manifest.base_fingerprint != plan.base_fingerprint:
        return ServingReference(run_id, note=f"the serving adapter (run {run_id}) was trained on another base "
                                             f"({manifest.base_model}); not comparable, and promoting replaces it")
    if manifest.template_fingerprint != plan.template_fingerprint:
        return ServingReference(run_id, note=f"the serving adapter (run {run_id}) uses another prompt template; "
                                             "not comparable, and promoting replaces it")
    try:
        lora = read_adapter(folder)
        return ServingReference(run_id, plan.evaluate_adapter(lora))
    except (AdapterError, ValueError, OSError) as exc:
        return ServingReference(run_id, note=f"the serving adapter (run {run_id}) could not be evaluated: {exc}")
