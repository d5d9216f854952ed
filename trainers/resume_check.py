"""What may change when a run is resumed: the settings that define the run must stay as they were.

A resumed run continues the stored optimizer state on the stored split; changing the data, the base,
the LoRA shape, the loss, the batches or the evaluation would make its numbers (and its promotion)
describe two different runs. Only settings that do not change what a step computes may change:
how long to train, how often to evaluate and checkpoint, alarms, the gate, where things live, and how
a step is computed on this machine (the device, the precision, gradient checkpointing, compiling): a
run moved from a CUDA box to a CPU one resumes, its `auto` precision resolved anew.
"""

from __future__ import annotations

from typing import Any

# Dotted `section.key` settings (or whole sections, `section.*`) that may differ on resume.
SAFE_CHANGES: frozenset[str] = frozenset({
    "train.max_steps", "train.eval_every", "train.checkpoint_every", "train.name", "train.auto_promote",
    "train.early_stopping_patience", "train.promote_epsilon", "train.stop_on_alarm",
    "train.alarm_collapse_spread", "train.alarm_below_baseline_evals", "train.alarm_divergence_factor",
    "train.collective_timeout_s",
    "model.device", "train.precision", "train.gradient_checkpointing", "train.compile", "data.path", "scoring.*",
    "serving.*", "store.*", "chat.*",
})
# What a config without these settings (a run recorded before they existed) ran with.
LEGACY_DEFAULTS: dict[str, Any] = {"train.precision": "fp32", "train.gradient_checkpointing": False,
                                   "train.compile": False}


class ResumeRefused(ValueError):
    """The config given to --resume changes what the run is; nothing was changed."""


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in config.items() if isinstance(values, dict)
            for key, value in values.items()}


def _safe(key: str) -> bool:
    return key in SAFE_CHANGES or f"{key.split('.', 1)[0]}.*" in SAFE_CHANGES


def _show(key: str) -> str:
    section, name = key.split(".", 1)
    return f"[{section}].{name}"


def resume_changes(stored: dict[str, Any], current: dict[str, Any], stored_fingerprint: str | None,
                   current_fingerprint: str | None) -> tuple[list[str], list[str]]:
    """(refused, allowed) descriptions of how `current` differs from the run's `stored` config.

    `data.path` may move as long as the data's fingerprint is the same; `max_steps` may be raised, not
    lowered (the run may already be past the new end).
    """
    old, new = LEGACY_DEFAULTS | _flatten(stored), LEGACY_DEFAULTS | _flatten(current)
    refused: list[str] = []
    allowed: list[str] = []
    if stored_fingerprint and current_fingerprint and stored_fingerprint != current_fingerprint:
        refused.append(f"data fingerprint {stored_fingerprint[:12]} -> {current_fingerprint[:12]}")
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        text = f"{_show(key)} {before!r} -> {after!r}"
        if key == "train.max_steps" and isinstance(after, int) and isinstance(before, int) and after < before:
            refused.append(f"{text} (max_steps may only be raised)")
        elif _safe(key) and key in old:
            allowed.append(text)
        else:
            refused.append(text)
    return refused, allowed


def check_resume(run_id: str, stored: dict[str, Any], current: dict[str, Any], stored_fingerprint: str | None,
                 current_fingerprint: str | None) -> list[str]:
    """The allowed changes (to log), or ResumeRefused naming every setting that may not change."""
    refused, allowed = resume_changes(stored, current, stored_fingerprint, current_fingerprint)
    if refused:
        raise ResumeRefused(f"cannot resume run {run_id} with this config; it changes what the run is: "
                            f"{'; '.join(refused)} (only {', '.join(sorted(SAFE_CHANGES))} may change)")
    return allowed
