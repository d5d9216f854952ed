"""Promotion: the metric gate, the atomic swap into the active path, the lineage, and rollback.

A run is promoted only when its primary metric beats the baseline by epsilon (respecting
maximize/minimize) and its adapter is complete and trained on the serving base with the same prompt
template. The swap itself is `active_adapter.point_active` (one atomic rename); the lineage goes to
the store's promotions table; the scorer's hot reload picks the change up.
"""

from __future__ import annotations

import asyncio

import math
from dataclasses import dataclass, field
from pathlib import Path

from backends.adapters import Manifest
from backends.chat_template import chat_template_fingerprint
from backends.models import base_fingerprint, resolve_model
from backends.prompt import template_fingerprint
from ragweld_tui.config import AppConfig
from store import LogEvent, RunStore
from trainers.active_adapter import install_version, point_active, verified_manifest, version_dir

ADAPTER_SUBDIR = "adapter"


@dataclass
class GateDecision:
    """Whether a run may be promoted, and every reason for the answer."""

    promote: bool
    reasons: list[str] = field(default_factory=list)


def gate(best: float | None, baseline: float | None, goal: str, epsilon: float, manifest: Manifest | None,
         base_fingerprint: str, template_fingerprint: str, force: bool = False) -> GateDecision:
    """Promote only a compatible adapter whose primary metric beats the baseline by ≥ epsilon.

    `force` waives the metric comparison (and a missing baseline) but never NaN or incompatibility.
    """
    hard, soft = [], []
    if manifest is None:
        hard.append("the run has no complete adapter (manifest missing or files do not match it)")
    else:
        if manifest.base_fingerprint != base_fingerprint:
            hard.append(f"adapter base {manifest.base_model} ({manifest.base_fingerprint}) differs from the "
                        f"serving base ({base_fingerprint})")
        if manifest.template_fingerprint != template_fingerprint:
            hard.append(f"adapter prompt template {manifest.template_fingerprint} differs from {template_fingerprint}")
    if best is None:
        hard.append("the run has no evaluated metric")
    elif not math.isfinite(best):
        hard.append(f"the run's metric is {best} (not finite)")
    if baseline is None:
        soft.append("no baseline was measured")
    elif not math.isfinite(baseline):
        hard.append(f"the baseline is {baseline} (not finite)")
    elif best is not None and math.isfinite(best):
        gain = best - baseline if goal == "maximize" else baseline - best
        if gain >= epsilon:
            return GateDecision(not hard, hard + [f"improves on the baseline by {gain:+.4f} (≥ epsilon {epsilon})"])
        soft.append(f"improvement {gain:+.4f} over the baseline {baseline:.4f} is below epsilon {epsilon}")
    if force and not hard:
        return GateDecision(True, ["forced: " + "; ".join(soft)] if soft else ["forced"])
    return GateDecision(False, hard + soft)



class PromotionRefused(Exception):
    """The gate said no; the message lists every reason."""


def run_adapter_dir(store: RunStore, run_id: str) -> Path:
    return store.artifact_path(run_id, ADAPTER_SUBDIR)


def active_path(config: AppConfig, kind: str) -> Path:
    """The active adapter path of a run kind (the reranker's is [serving].active_adapter)."""
    reranker_path = config.active_adapter_dir()
    return reranker_path if kind == "reranker" else reranker_path.parent / kind


def template_fingerprint_for(kind: str) -> str:
    """The prompt format an adapter of this kind must have been trained with: the reranker prompt,
    or the Qwen3 chat template (thinking off) for the agent."""
    return chat_template_fingerprint() if kind == "agent" else template_fingerprint()


async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """Run the gate for a run without changing anything.

    The serving base is the config's when the config is of the run's kind; promoting an agent run
    with the reranker's config (or the reverse) compares against the base the run recorded.
    """
    run = await store.get_run(run_id)
    manifest = verified_manifest(run_adapter_dir(store, run_id))
    if run.status != "completed":
        return GateDecision(False, [f"run is {run.status}; only completed runs can be promoted"])
    base = config.model.base if config.train.kind == run.kind or not run.base_model else run.base_model
    # Resolving may build the embedded model and reads weight files: not on the event loop.
    serving = await asyncio.to_thread(lambda: base_fingerprint(resolve_model(base)))
    decision = gate(run.best, run.baseline, run.goal, config.train.promote_epsilon, manifest, serving,
                    template_fingerprint_for(run.kind), force)
    if manifest is not None and manifest.kind != run.kind:
        return GateDecision(False, [f"the adapter is a {manifest.kind} adapter, the run is a {run.kind} run"]
                            + decision.reasons)
    return decision


async def promote(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """Gate, then atomically make the run's adapter the active one and record it in the lineage."""
    decision = await decide(store, config, run_id, force)
    reasons = "; ".join(decision.reasons)
    # Every attempt, refused or not, goes to the run's event log: the inspector shows the verdict.
    await store.append_events(run_id, [LogEvent(level="info" if decision.promote else "warning",
                                                message=f"{'promoted' if decision.promote else 'not promoted'}: {reasons}")])
    if not decision.promote:
        raise PromotionRefused(reasons)
    run = await store.get_run(run_id)
    active = active_path(config, run.kind)
    target = await asyncio.to_thread(install_version, run_adapter_dir(store, run_id), active, run_id)
    replaced = await store.active_run(run.kind)
    await asyncio.to_thread(point_active, active, target)
    await store.record_promotion(run_id, replaced if replaced != run_id else None, reasons)
    return decision


async def rollback(store: RunStore, config: AppConfig, kind: str = "reranker") -> str | None:
    """Restore the adapter the current one replaced (or the plain base); returns the new active run id."""
    lineage = await store.promotions(kind)
    if not lineage:
        raise PromotionRefused(f"nothing to roll back: no {kind} adapter was ever promoted")
    current = lineage[-1]
    if current.run_id is None:
        raise PromotionRefused(f"the base model is already the active {kind}; nothing to roll back")
    previous = current.replaced_run_id
    active = active_path(config, kind)
    if previous is None:
        await asyncio.to_thread(point_active, active, None)
        await store.clear_promotion(kind, current.run_id, f"rollback of {current.run_id} to the base model")
        return None
    target = version_dir(active, previous)
    if verified_manifest(target) is None:
        raise PromotionRefused(f"cannot roll back to {previous}: its adapter version {target} is missing or damaged")
    await asyncio.to_thread(point_active, active, target)
    # The replaced run of a rollback is what the restored one replaced at its own promotion.
    earlier = next((p.replaced_run_id for p in reversed(lineage) if p.run_id == previous), None)
    await store.record_promotion(previous, earlier, f"rollback from {current.run_id}")
    return previous
