"""The new-run form: which settings it edits and how its strings become a validated AppConfig.

The form never validates on its own: it merges the edited strings into the current config and hands
the result to `parse_config`, the same pydantic models a config file goes through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainers.settings import AGENT_METRICS, RERANKER_METRICS
from ragweld_tui.config import AppConfig, parse_config


@dataclass(frozen=True)
class FormField:
    """One editable setting: `[section].key`, its label, and the allowed values when it is a choice."""

    section: str
    key: str
    label: str
    choices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The dotted name used as the widget id suffix and in errors."""
        return f"{self.section}.{self.key}"


# The base model's choices are the model catalog's (`backends.catalog`), offered by the form as you type.
MODEL_PLACEHOLDER = "embedded:NAME, a hub id (ragweld-tui models) or a local folder"

FORM_FIELDS: tuple[FormField, ...] = (
    FormField("train", "kind", "Kind", ("reranker", "agent")),
    FormField("train", "name", "Run name"),
    FormField("model", "base", "Base model"),
    FormField("model", "backend", "Backend", ("auto", "mlx", "torch")),
    FormField("data", "path", "Data (empty: demo)"),
    FormField("train", "max_steps", "Max steps"),
    FormField("train", "batch_size", "Batch size"),
    FormField("train", "learning_rate", "Learning rate"),
    FormField("lora", "rank", "LoRA rank"),
    FormField("lora", "alpha", "LoRA alpha"),
    FormField("train", "primary_metric", "Primary metric", RERANKER_METRICS + AGENT_METRICS),
    FormField("train", "auto_promote", "Auto promote", ("true", "false")),
)


def form_values(config: AppConfig) -> dict[str, str]:
    """The current config as the strings the form starts from."""
    raw = config.model_dump(mode="json")
    out = {}
    for field in FORM_FIELDS:
        value = raw[field.section][field.key]
        out[field.name] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return out


def apply_form(config: AppConfig, values: Mapping[str, str], source: str = "form") -> AppConfig:
    """The config with the form's values applied; UserError naming `[section].key` when invalid."""
    raw: dict[str, Any] = config.model_dump(mode="json")
    for field in FORM_FIELDS:
        if field.name not in values:
            continue
        text = values[field.name].strip()
        raw[field.section][field.key] = None if text == "" and field.key == "path" else _typed(field, text)
    return parse_config(raw, source)


def _typed(field: FormField, text: str) -> Any:
    """A number or boolean field's text read as a TOML value (the config is strict; "3" is no int)."""
    import tomllib

    section = AppConfig.model_fields[field.section].annotation
    annotation = section.model_fields[field.key].annotation if isinstance(section, type) else None
    if annotation not in (int, float, bool):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # validation names the field and what it wants
