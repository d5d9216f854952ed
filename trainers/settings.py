"""Settings the trainers own (`[data]`, `[eval]`, `[lora]`, `[train]`) and the whole file's model.

`AppConfig` composes every section of config.toml: the backends' (model, prompt, scoring, serving, serve,
chat), the store's and the trainers' own, plus the rules that tie them together (an agent run's
defaults and which metrics and data fit which kind). `ragweld_tui.config` only loads a file into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from backends.settings import (
    EMBEDDED_CHAT,
    EMBEDDED_RERANKER,
    ChatConfig,
    ModelConfig,
    PromptConfig,
    ScoringConfig,
    ServeConfig,
    ServingConfig,
    StrictModel,
)
from store.settings import StoreConfig, data_dir

RERANKER_METRICS = ("mrr@10", "ndcg@10", "recall@10", "map")
AGENT_METRICS = ("eval_loss",)
RunKind = Literal["reranker", "agent"]


class DataConfig(StrictModel):
    """Training data: triplet JSONL or a BEIR folder (None: the bundled demo dataset)."""

    path: Path | None = Field(None, strict=False)  # paths come as TOML strings
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
    # Compute precision of the forward pass (LoRA weights and AdamW state stay fp32): `auto` is bf16 on a
    # CUDA GPU with bf16 (else fp16), bf16 on a CPU with AMX-BF16/AVX512-BF16 for models >= 256 wide,
    # else fp32 on CPU and MPS; on MLX the base as stored (fp32 on its CPU).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # Recompute each layer's activations in the backward pass: less memory, about a third more compute.
    gradient_checkpointing: bool = False
    # MLX: compile each micro-batch's forward and backward (`mx.compile`, as mlx-lm does); `auto` compiles
    # on MLX's GPU and CPU alike (within a few % of eager on its CPU: `trainers.precision.resolve_compile`).
    # Torch ignores it, so one config trains on a Mac and on a Linux box.
    compile: Literal["auto", True, False] = "auto"  # one Literal: a bad value is one error line, not one per type
    # Agent runs: which assistant turns are learned ("last": earlier replies are masked like prompts).
    train_on: Literal["all", "last"] = "all"
    # Training alarms (typed events, shown in the HUD, the runs list and --run's output).
    stop_on_alarm: bool = False
    alarm_collapse_spread: float = Field(1e-4, ge=0.0)      # std of dev scores (log-odds) under this = collapse
    alarm_below_baseline_evals: int = Field(3, ge=1)        # this many evaluations in a row under the baseline
    alarm_divergence_factor: float = Field(3.0, gt=1.0)     # smoothed loss above this × its lowest so far
    # Data-parallel runs (torchrun, mlx.launch): how long a rank waits for the others before the run is
    # interrupted (torch's collective timeout; rank 0's bound on a step). The other ranks wait this long
    # while rank 0 evaluates, so it must exceed an evaluation and a step.
    collective_timeout_s: float = Field(600.0, gt=0.0)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_is_not_a_number(cls, value: object) -> object:
        """A Literal takes 1 for True; strict settings refuse a number where a bool belongs."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"must be 'auto', true or false (got {value!r})")
        return value


class AppConfig(StrictModel):
    """The whole configuration file."""

    model: ModelConfig = ModelConfig()
    prompt: PromptConfig = PromptConfig()
    scoring: ScoringConfig = ScoringConfig()
    serving: ServingConfig = ServingConfig()
    serve: ServeConfig = ServeConfig()
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

    def active_adapter_dir(self, kind: RunKind = "reranker") -> Path:
        """The active adapter path of a run kind: `[serving].active_adapter` for the reranker (default
        `<data dir>/active/reranker`); the agent's sits beside it as `agent`."""
        reranker = self.serving.active_adapter or data_dir() / "active" / "reranker"
        return reranker if kind == "reranker" else reranker.parent / kind

    def store_path(self) -> Path:
        """The SQLite store this config names (decided by `store.settings`)."""
        return self.store.database()

    def runs_root(self) -> Path:
        """The run artifacts folder this config names (decided by `store.settings`)."""
        return self.store.runs()

    def chat_model(self, override: str | None = None) -> str:
        """The base to chat with: `override`, else an agent config's base, else the embedded chat model."""
        return override or (self.model.base if self.train.kind == "agent" else EMBEDDED_CHAT)

    def rerank_model(self) -> str:
        """The reranker to score with: a reranker config's base, else the embedded reranker."""
        return self.model.base if self.train.kind == "reranker" else EMBEDDED_RERANKER
