"""Settings the backends own: the base model, the reranker prompt, scoring batches, the served
adapter, the HTTP server and chat sampling (the `[model]`, `[prompt]`, `[scoring]`, `[serving]`, `[serve]`
and `[chat]` sections).

Each package keeps the pydantic models of the sections its code reads; `trainers.settings`
composes the whole file's model and `ragweld_tui.config` loads it. Unknown keys are errors here, so a
typo in config.toml is refused instead of silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.prompt import DEFAULT_INSTRUCTION

# The embedded defaults (built offline by backends.embedded); literal here so that loading a config
# imports no numpy.
EMBEDDED_RERANKER = "embedded:tiny-qwen3-reranker"
EMBEDDED_CHAT = "embedded:tiny-qwen3-chat"


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


class ServeConfig(StrictModel):
    """`ragweld-tui serve`: the HTTP rerank server's port, auth, request limits, batching and feedback.

    The bind address is not here: loopback unless `--host` says otherwise on the command line, so a
    config file shared between machines never exposes a server by accident.
    """

    port: int = Field(8787, ge=0, le=65535)  # 0: any free port (printed at start)
    token_env: str | None = Field(None, min_length=1)  # env var holding the bearer token; None: no auth
    max_documents: int = Field(1000, ge=1)  # documents per rerank request (413 above)
    max_document_chars: int = Field(100_000, ge=1)  # characters per document (413 above)
    max_query_chars: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # request body (413 above)
    max_queue: int = Field(64, ge=1)  # requests waiting for the scoring worker; beyond: 503 + Retry-After
    batch_wait_ms: float = Field(0.0, ge=0.0, le=1000.0)  # 0: batch whatever queued while the model was busy
    batch_token_budget: int = Field(65536, ge=64)  # prompt tokens one batch may hold
    heartbeat_s: float = Field(2.0, gt=0.0, le=60.0)  # how often the server updates its line in the store
    feedback_path: Path | None = Field(None, strict=False)  # default: <data dir>/feedback/feedback.jsonl


class ChatConfig(StrictModel):
    """Sampling for the agent's chat (the `chat` REPL and the TUI's agent mode)."""

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768)
    system_prompt: str | None = None


@dataclass(frozen=True)
class ScorerSettings:
    """Everything needed to build a Reranker; mirrors the [model], [prompt] and [scoring] config."""

    model: str
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    instruction: str = DEFAULT_INSTRUCTION
    max_length: int = 8192
    token_budget: int = 16384
    max_batch_size: int = 64
    trust_remote_code: bool = False



def scorer_settings(model: ModelConfig, prompt: PromptConfig, scoring: ScoringConfig,
                    base: str | None = None) -> ScorerSettings:
    """The scorer a config describes (`base` overrides the model, e.g. the reranker of an agent config)."""
    return ScorerSettings(model=base or model.base, backend=model.backend, device=model.device, dtype=model.dtype,
                          instruction=prompt.instruction, max_length=prompt.max_length,
                          token_budget=scoring.token_budget, max_batch_size=scoring.max_batch_size,
                          trust_remote_code=model.trust_remote_code)
