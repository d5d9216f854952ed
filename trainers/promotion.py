"""Promotion: the metric gate, the atomic swap into the active path, the lineage, and rollback.

A run is promoted only when its primary metric beats everything it would replace by epsilon
(respecting maximize/minimize): the base model, the first stage alone (data with a corpus) and the
adapter serving now (when it is compatible), all measured on the run's own dev candidates; and
only when its adapter is complete and trained on the serving base with the same prompt template.
The swap itself is `active_adapter.point_active` (one atomic rename); the lineage goes to the
store's promotions table; the scorer's hot reload picks the change up. A cancelled run is paused,
not discarded: its best adapter goes through the same gate as a completed run's.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from backends.adapters import AdapterError, Manifest
from backends.chat_template import chat_template_fingerprint
from backends.models import base_fingerprint, resolve_model
from backends.prompt import template_fingerprint
from trainers.settings import AppConfig, RunKind
from store import PromotionEvent, RunRecord, RunStore
from store.models import PROMOTABLE_STATUSES
from trainers.errors import DataError
from trainers.active_adapter import install_version, point_active, verified_manifest, version_dir
from trainers.faults import fault_point
from trainers.promotion_sync import clear_intent, cut_short, promotion_lock, reconcile, write_intent

ADAPTER_SUBDIR = "adapter"


@dataclass
class GateDecision:
    """Whether a run may be promoted, every reason for the answer, and the figures it rests on.

    `figures` maps each system measured on the run's dev candidates ("tuned", "baseline",
    "first stage", "serving run <id>") to its primary metric; `reference` names the one the tuned
    adapter had to beat (the best of the others).
    """

    promote: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    reference: str | None = None
    metric: str | None = None
    forced: bool = False


def _label(name: str) -> str:
    return "the serving adapter (" + name.removeprefix("serving ") + ")" if name.startswith("serving ") else f"the {name}"


def gate(best: float | None, baseline: float | None, goal: str, epsilon: float, manifest: Manifest | None,
         base_fingerprint: str, template_fingerprint: str, force: bool = False,
         others: dict[str, float] | None = None, metric: str | None = None) -> GateDecision:
    """Promote only a compatible adapter whose primary metric beats everything it would replace by ≥ epsilon.

    The reference is the best of the baseline and `others` (the first stage, the serving adapter:
    label -> value, non-finite values ignored). `force` waives the metric comparison (and a
    missing baseline) but never NaN or incompatibility.
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
    references: dict[str, float] = {}
    if baseline is None:
        soft.append("no baseline was measured")
    elif not math.isfinite(baseline):
        hard.append(f"the baseline is {baseline} (not finite)")
    else:
        references["baseline"] = baseline
    references.update({k: v for k, v in (others or {}).items() if v is not None and math.isfinite(v)})
    figures = ({"tuned": best} if best is not None else {}) | references
    decision = GateDecision(False, [], figures, None, metric, False)
    summary: list[str] = []
    if references and best is not None and math.isfinite(best):
        sign = 1.0 if goal == "maximize" else -1.0
        name = max(references, key=lambda k: sign * references[k])  # the strongest incumbent
        decision.reference, value = name, references[name]
        gain = sign * (best - value)
        listed = ", ".join(f"{k} {v:.4f}" for k, v in figures.items())
        summary = [f"{metric or 'metric'}: {listed}; must beat {_label(name)}"]
        if gain >= epsilon:
            decision.promote = not hard
            decision.reasons = hard + summary + [f"improves on {_label(name)} by {gain:+.4f} (≥ epsilon {epsilon})"]
            return decision
        soft.append(f"improvement {gain:+.4f} over {_label(name)} {value:.4f} is below epsilon {epsilon}")
    if force and not hard:
        decision.promote, decision.forced = True, True
        decision.reasons = summary + (["forced: " + "; ".join(soft)] if soft else ["forced"])
        return decision
    decision.reasons = hard + summary + soft
    return decision


class PromotionRefused(Exception):
    """The gate (or a rollback) said no; `decision` holds every reason and the figures."""

    def __init__(self, decision: GateDecision | str) -> None:
        self.decision = decision if isinstance(decision, GateDecision) else GateDecision(False, [decision])
        super().__init__("; ".join(self.decision.reasons))


def run_adapter_dir(store: RunStore, run_id: str) -> Path:
    return store.artifact_path(run_id, ADAPTER_SUBDIR)


def template_fingerprint_for(kind: str) -> str:
    """The prompt format an adapter of this kind must have been trained with: the reranker prompt,
    or the Qwen3 chat template (thinking off) for the agent."""
    return chat_template_fingerprint() if kind == "agent" else template_fingerprint()


async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """Run the gate for a run without promoting it.

    The serving base is the config's when the config is of the run's kind; promoting an agent run
    with the reranker's config (or the reverse) compares against the base the run recorded. The
    figures are the run's own (tuned, baseline, first stage) plus the adapter serving now, measured
    on the run's dev candidates: at the end of the run, or now if another adapter was promoted since.
    """
    run = await store.get_run(run_id)
    if run.status not in PROMOTABLE_STATUSES:
        return GateDecision(False, [f"run is {run.status}; only completed or cancelled (paused) runs can be promoted"])
    manifest = await asyncio.to_thread(verified_manifest, run_adapter_dir(store, run_id))  # hashes every file
    base = config.model.base if config.train.kind == run.kind or not run.base_model else run.base_model
    # Resolving may build the embedded model and reads weight files: not on the event loop.
    serving = await asyncio.to_thread(lambda: base_fingerprint(resolve_model(base)))
    others: dict[str, float] = {}
    if run.first_stage is not None:
        others["first stage"] = run.first_stage
    serving_run, value, note = await _serving_figure(store, config, run)
    if serving_run is not None and value is not None:
        others[f"serving run {serving_run}"] = value
    decision = gate(run.best, run.baseline, run.goal, config.train.promote_epsilon, manifest, serving,
                    template_fingerprint_for(run.kind), force, others, run.primary_metric)
    if note:
        decision.reasons.append(f"not compared: {note}")
    if manifest is not None and manifest.kind != run.kind:
        decision.promote = False
        decision.reasons.insert(0, f"the adapter is a {manifest.kind} adapter, the run is a {run.kind} run")
    return decision


async def _serving_figure(store: RunStore, config: AppConfig, run: RunRecord) -> tuple[str | None, float | None, str | None]:
    """(serving run id, its primary metric on this run's dev set, why it was not compared)."""
    serving_run = await store.active_run(run.kind)
    if serving_run is None or serving_run == run.id:
        return None, None, None
    if serving_run == run.serving_run_id:
        return serving_run, run.serving, run.serving_note
    # Another adapter was promoted after this run ended: measure it on this run's dev candidates now.
    from trainers.plan import prepare_plan
    from trainers.serving_check import evaluate_serving

    try:
        run_config = AppConfig.model_validate(run.config)
        plan = await asyncio.to_thread(prepare_plan, run_config)
    except (ValidationError, DataError, ValueError, OSError) as exc:
        note = f"the serving adapter (run {serving_run}) could not be evaluated on this run's dev set: {exc}"
        return serving_run, None, note
    reference = await asyncio.to_thread(evaluate_serving, plan, config.active_adapter_dir(run.kind), serving_run)
    value = None if reference.evaluation is None else reference.evaluation.metrics[plan.primary_metric]
    await store.set_serving_reference(run.id, serving_run, value, reference.note)
    return serving_run, value, reference.note


async def promote(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """Gate, then atomically make the run's adapter the active one and record it in the lineage.

    Under the promotion lock: reconcile first, decide against what is serving now, install the
    version (a damaged one refuses: nothing is logged as promoted), record the intent, swap, commit.
    """
    run = await store.get_run(run_id)
    if run.status not in PROMOTABLE_STATUSES:  # refused before anything is touched (the gate never ran)
        raise PromotionRefused(f"run {run_id} is {run.status}; only completed or cancelled (paused) runs "
                               "can be promoted")
    active = config.active_adapter_dir(run.kind)
    async with promotion_lock(active):
        await reconcile(store, active, run.kind)
        decision = await decide(store, config, run_id, force)
        reasons = "; ".join(decision.reasons)
        target = None
        if decision.promote:
            try:
                target = await asyncio.to_thread(install_version, run_adapter_dir(store, run_id), active, run_id)
            except (AdapterError, OSError) as exc:  # nothing was changed: no verdict is logged either
                raise PromotionRefused(f"the run's adapter cannot be installed: {exc}") from None
        # Every attempt, refused or not, goes to the run's event log: the inspector shows the verdict.
        await store.append_events(run_id, [PromotionEvent(
            promoted=decision.promote, forced=decision.forced, metric=decision.metric, figures=decision.figures,
            reference=decision.reference, reasons=decision.reasons)])
        if not decision.promote or target is None:
            raise PromotionRefused(decision)
        replaced = await store.active_run(run.kind)
        replaced = replaced if replaced != run_id else None
        await asyncio.to_thread(write_intent, active, run_id, replaced, reasons)
        fault_point("promote.before_swap")
        await asyncio.to_thread(point_active, active, target)
        fault_point("promote.after_swap")
        await store.record_promotion(run_id, replaced, reasons)
        await asyncio.to_thread(clear_intent, active)
    return decision


async def reconcile_active(store: RunStore, config: AppConfig) -> list[str]:
    """On start (the TUI, `--run`, `promote`, `rollback`): where a promotion or rollback was cut short
    (its intent or temp files are still there), make the lineage agree with the active link;
    returns what was repaired.

    Only evidence of a cut-short operation triggers it: a store opened with another config's active
    path (another folder, another data dir) must not have its lineage rewritten to match a link that
    was never its own. Nothing is created when there is nothing to repair.
    """
    repaired = []
    kinds: tuple[RunKind, ...] = ("reranker", "agent")
    for kind in kinds:
        active = config.active_adapter_dir(kind)
        if not await asyncio.to_thread(cut_short, active):
            continue
        async with promotion_lock(active):
            note = await reconcile(store, active, kind)
        if note:
            repaired.append(note)
    return repaired


async def rollback(store: RunStore, config: AppConfig, kind: RunKind = "reranker") -> str | None:
    """Restore the adapter the current one replaced (or the plain base); returns the new active run id."""
    active = config.active_adapter_dir(kind)
    if not await store.promotions(kind) and not active.is_symlink():
        raise PromotionRefused(f"nothing to roll back: no {kind} adapter was ever promoted")
    async with promotion_lock(active):
        await reconcile(store, active, kind)
        return await _rollback_locked(store, active, kind)


async def _rollback_locked(store: RunStore, active: Path, kind: RunKind) -> str | None:
    lineage = await store.promotions(kind)
    if not lineage:
        raise PromotionRefused(f"nothing to roll back: no {kind} adapter was ever promoted")
    current = lineage[-1]
    if current.run_id is None:
        raise PromotionRefused(f"the base model is already the active {kind}; nothing to roll back")
    previous = current.replaced_run_id
    if previous is None:
        reason = f"rollback of {current.run_id} to the base model"
        await asyncio.to_thread(write_intent, active, None, current.run_id, reason)
        await asyncio.to_thread(point_active, active, None)
        fault_point("rollback.after_swap")
        await store.clear_promotion(kind, current.run_id, reason)
        await asyncio.to_thread(clear_intent, active)
        return None
    target = version_dir(active, previous)
    if await asyncio.to_thread(verified_manifest, target) is None:  # hashes every file: not on the loop
        raise PromotionRefused(f"cannot roll back to {previous}: its adapter version {target} is missing or damaged")
    # The replaced run of a rollback is what the restored one replaced at its own promotion.
    earlier = next((p.replaced_run_id for p in reversed(lineage) if p.run_id == previous), None)
    reason = f"rollback from {current.run_id}"
    await asyncio.to_thread(write_intent, active, previous, earlier, reason)
    await asyncio.to_thread(point_active, active, target)
    fault_point("rollback.after_swap")
    await store.record_promotion(previous, earlier, reason)
    await asyncio.to_thread(clear_intent, active)
    return previous
