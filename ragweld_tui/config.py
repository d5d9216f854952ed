"""Pydantic models for every setting in config.toml, plus loading with clear, key-naming errors.

This module is the law for settings: the CLI, the TUI forms, the trainers and the scorers all take
their values from these models, so a bad value is refused once, in one place, with one message.
It imports no ML framework.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ragweld_tui.errors import UserError

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
EMBEDDED_RERANKER = "embedded:tiny-qwen3-reranker"
EMBEDDED_CHAT = "embedded:tiny-qwen3-chat"
RERANKER_METRICS = ("mrr@10", "ndcg@10", "recall@10", "map")
AGENT_METRICS = ("eval_loss",)
APP_NAME = "ragweld-tui"


def data_dir() -> Path:
    """Where runs, the store and the active adapters live unless the config says otherwise."""
    override = os.environ.get("RAGWELD_HOME")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not be silently ignored).

    Strict types: TOML already gives ints, floats and booleans, so "3" for an int or "yes" for a
    bool is a mistake to refuse, not to coerce (an int still counts as a float); inf/nan are refused.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


class ModelConfig(StrictModel):
    """Which base model to load and where to run it."""

    base: str = Field(EMBEDDED_RERANKER, min_length=1)
    backend: Literal["auto", "mlx", "torch"] = "auto"
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        allowed = ("auto", "cpu", "cuda", "mps", "gpu")
        if value in allowed or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError(f"must be one of {', '.join(allowed)} or cuda:N (got {value!r})")


class PromptConfig(StrictModel):
    """The Qwen3-Reranker instruction and the token limit for one (query, document) prompt."""

    instruction: str = Field(DEFAULT_INSTRUCTION, min_length=1)
    max_length: int = Field(8192, ge=64, le=131072)


class ScoringConfig(StrictModel):
    """Batching for scoring: rows are length-sorted and packed up to a token budget."""

    token_budget: int = Field(16384, ge=64)
    max_batch_size: int = Field(64, ge=1, le=4096)


class ServingConfig(StrictModel):
    """The active adapter the scorer serves and how often it looks for a new one."""

    active_adapter: Path | None = Field(None, strict=False)  # paths come as TOML strings
    reload_check_s: float = Field(2.0, ge=0.0)
    idle_unload_s: float = Field(600.0, gt=0.0)


class StoreConfig(StrictModel):
    """Where the SQLite store and the run artifacts live."""

    path: Path | None = Field(None, strict=False)
    runs_root: Path | None = Field(None, strict=False)


class DataConfig(StrictModel):
    """Training data: triplet JSONL or a BEIR folder (None: the bundled demo dataset)."""

    path: Path | None = Field(None, strict=False)
    format: Literal["auto", "triplets", "beir", "chat"] = "auto"
    qrels_split: str = Field("test", min_length=1)
    dev_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    negative_ratio: int = Field(5, ge=1, le=100)
    bm25_candidates: int = Field(30, ge=2, le=1000)
    max_queries: int | None = Field(None, ge=2)
    seed: int = 0
    # Mined negatives scoring above this fraction of the lowest judged positive's BM25 score are
    # likely unjudged positives and are not trained as negatives.
    false_negative_guard: bool = True
    false_negative_margin: float = Field(0.95, gt=0.0, le=1.0)


class EvalConfig(StrictModel):
    """How dev queries are evaluated when the data has a corpus (BEIR folders).

    Each dev query is ranked over what the first stage retrieved (its top `first_stage_k`), as in
    a real two-stage pipeline: a relevant document the first stage missed counts as a miss.
    """

    first_stage: Literal["bm25"] = "bm25"
    first_stage_k: int = Field(100, ge=1, le=10000)


class LoraConfig(StrictModel):
    """LoRA shape: rank, alpha (scale = alpha / rank), dropout, target modules, last N layers (-1: all)."""

    rank: int = Field(8, ge=1, le=1024)
    alpha: float = Field(16.0, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1)
    num_layers: int = Field(-1, ge=-1)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class TrainConfig(StrictModel):
    """Optimisation, evaluation and promotion settings of one training run."""

    kind: Literal["reranker", "agent"] = "reranker"
    name: str = Field("reranker", min_length=1, max_length=200)
    loss: Literal["listwise", "pointwise"] = "listwise"
    group_size: int = Field(4, ge=2, le=64)
    batch_size: int = Field(8, ge=1)
    grad_accumulation: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(10, ge=0)
    max_steps: int = Field(200, ge=1)
    max_grad_norm: float = Field(1.0, gt=0.0)
    max_length: int = Field(512, ge=32)
    eval_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    early_stopping_patience: int = Field(3, ge=1)
    primary_metric: Literal["mrr@10", "ndcg@10", "recall@10", "map", "eval_loss"] = "mrr@10"
    promote_epsilon: float = Field(0.01, ge=0.0)
    auto_promote: bool = True
    seed: int = 0
    # Agent runs: which assistant turns are learned ("last": earlier replies are masked like prompts).
    train_on: Literal["all", "last"] = "all"
    # Training alarms (typed events, shown in the HUD, the runs list and --run's output).
    stop_on_alarm: bool = False
    alarm_collapse_spread: float = Field(1e-4, ge=0.0)      # std of dev scores (log-odds) under this = collapse
    alarm_below_baseline_evals: int = Field(3, ge=1)        # this many evaluations in a row under the baseline
    alarm_divergence_factor: float = Field(3.0, gt=1.0)     # smoothed loss above this × its lowest so far


class ChatConfig(StrictModel):
    """Sampling for the agent's chat (the `chat` REPL and the TUI's agent mode)."""

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    system_prompt: str | None = None


class AppConfig(StrictModel):
    """The whole configuration file."""

    model: ModelConfig = ModelConfig()
    prompt: PromptConfig = PromptConfig()
    scoring: ScoringConfig = ScoringConfig()
    serving: ServingConfig = ServingConfig()
    store: StoreConfig = StoreConfig()
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    lora: LoraConfig = LoraConfig()
    train: TrainConfig = TrainConfig()
    chat: ChatConfig = ChatConfig()

    @model_validator(mode="after")
    def _kind_rules(self) -> AppConfig:
        """Agent runs default to the embedded chat model and eval loss; metrics and data must fit the kind."""
        train = self.train
        if train.kind == "agent":
            if "base" not in self.model.model_fields_set:
                self.model.base = EMBEDDED_CHAT
            if "name" not in train.model_fields_set:
                train.name = "agent"
            if "primary_metric" not in train.model_fields_set:
                train.primary_metric = "eval_loss"
            if train.primary_metric not in AGENT_METRICS:
                raise ValueError(f"[train].primary_metric = {train.primary_metric!r} is a reranker metric; "
                                 f"agent runs use {', '.join(AGENT_METRICS)}")
            if self.data.format not in ("auto", "chat"):
                raise ValueError(f"[data].format = {self.data.format!r} is reranker data; agent runs train on "
                                 "chat JSONL (format = 'chat' or 'auto')")
        else:
            if train.primary_metric not in RERANKER_METRICS:
                raise ValueError(f"[train].primary_metric = {train.primary_metric!r} is the agent's metric; "
                                 f"reranker runs use {', '.join(RERANKER_METRICS)} (or set [train].kind = 'agent')")
            if self.data.format == "chat":
                raise ValueError("[data].format = 'chat' is agent training data; set [train].kind = 'agent'")
        return self

    def active_adapter_dir(self) -> Path:
        return self.serving.active_adapter or data_dir() / "active" / "reranker"

    def store_path(self) -> Path:
        return self.store.path or data_dir() / "ragweld.sqlite"

    def runs_root(self) -> Path:
        return self.store.runs_root or data_dir() / "runs"


ENV_OVERRIDES = {"RAGWELD_BACKEND": ("model", "backend"), "RAGWELD_DEVICE": ("model", "device")}


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the key as `[section].key` and what is allowed."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = f"[{loc[0]}].{'.'.join(loc[1:])}" if len(loc) > 1 else loc[0] if loc else "(root)"
        message = item["msg"]
        if item["type"] == "literal_error":
            message = f"must be one of {item['ctx']['expected']} (got {item['input']!r})"
        elif item["type"].endswith("_type") or item["type"] == "finite_number":
            message = f"{message} (got {item['input']!r})"
        elif item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif item["type"].startswith("value_error"):
            message = message.removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}" if loc else f"{source}: {message}")
    return "\n".join(lines)


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> None:
    """Relative paths in the file are relative to the file, not to the current directory."""
    for section, key in (("serving", "active_adapter"), ("store", "path"), ("store", "runs_root"), ("data", "path")):
        value = raw.get(section, {}).get(key)
        if isinstance(value, str):
            path = Path(value).expanduser()
            raw[section][key] = str(path if path.is_absolute() else base_dir / path)


def parse_config(raw: dict[str, Any], source: str, base_dir: Path | None = None) -> AppConfig:
    """Validate a raw mapping, apply environment overrides and return the config or raise UserError."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if base_dir is not None:
        _resolve_paths(raw, base_dir)
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None
    for env_name, (section, key) in ENV_OVERRIDES.items():
        value = os.environ.get(env_name)
        if value:
            try:
                setattr(getattr(config, section), key, value)
            except ValidationError as exc:
                raise UserError(format_validation_error(exc, f"environment {env_name}")) from None
    return config


def load_config(path: Path | str | None) -> AppConfig:
    """Load config.toml (or the defaults when path is None) with errors naming file, line and key."""
    if path is None:
        return parse_config({}, "defaults")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_config(raw, str(path), base_dir=path.resolve().parent)
