"""Load a base model on a backend and score (query, documents) with Qwen3-Reranker semantics.

This is the synchronous core shared by the CLI, the trainers' evaluation and the async service:
tokenize with the exact prompt, batch by length under a token budget, read yes/no log-odds at the
last real token, and return results in input order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from numpy.typing import NDArray

from backends.adapters import LoraWeights, check_compatible, read_adapter, verify_adapter
from backends.base import PrefixScoringEngine, Score, ScoringEngine, sigmoid, supports_prefix
from backends.batching import token_budget_batches
from backends.models import base_fingerprint, is_mlx_quantized, load_tokenizer, pad_token_id, resolve_model
from backends.prompt import PromptBuilder, resolve_answer_ids, template_fingerprint
from backends.select import choose_backend
from backends.settings import ScorerSettings


@dataclass
class ScoreStats:
    """What one score() call cost."""

    pairs: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    batches: int = 0
    prefixed: bool = False  # the query's prefix ran once and its key/value cache served every pair


def load_engine(settings: ScorerSettings, model_dir: Path, answer_ids: tuple[int, int], pad_id: int) -> tuple[ScoringEngine, str]:
    """Build the engine for the chosen backend; returns it with the reason for the choice."""
    choice = choose_backend(settings.backend, settings.device)
    if choice.backend == "mlx":
        from backends.engine_mlx import MlxEngine

        return MlxEngine(str(model_dir), choice.device, settings.dtype, answer_ids, pad_id), choice.reason
    if is_mlx_quantized(model_dir):
        raise ValueError(f"{settings.model} is an MLX-quantized model; score it with backend mlx, "
                         "or use its float original with PyTorch")
    from backends.engine_torch import TorchEngine

    return TorchEngine(str(model_dir), choice.device, settings.dtype, answer_ids, pad_id,
                       settings.trust_remote_code), choice.reason


@dataclass
class Reranker:
    """A loaded scorer: tokenizer + prompt builder + engine, plus the adapter it serves."""

    settings: ScorerSettings
    model_dir: Path
    tokenizer: object
    builder: PromptBuilder
    engine: ScoringEngine
    backend_reason: str
    base_fingerprint: str
    adapter_dir: Path | None = None
    last_stats: ScoreStats = field(default_factory=ScoreStats)

    @classmethod
    def load(cls, settings: ScorerSettings) -> Reranker:
        model_dir = resolve_model(settings.model)
        tokenizer = load_tokenizer(model_dir, settings.trust_remote_code)
        answer_ids = resolve_answer_ids(tokenizer)
        pad_id = pad_token_id(tokenizer)
        builder = PromptBuilder(tokenizer, settings.instruction, settings.max_length)
        engine, reason = load_engine(settings, model_dir, answer_ids, pad_id)
        return cls(settings, model_dir, tokenizer, builder, engine, reason, base_fingerprint(model_dir))

    def use_adapter(self, folder: Path | None, lora: LoraWeights | None = None) -> None:
        """Serve the verified, compatible adapter in `folder` (None: the plain base)."""
        if folder is not None and lora is None:
            manifest = verify_adapter(folder)
            check_compatible(manifest, self.base_fingerprint, template_fingerprint(), folder)
            lora = read_adapter(folder)
        self.engine.apply_lora(lora)
        self.adapter_dir = folder

    def score_rows(self, rows: list[list[int]]) -> NDArray[np.float64]:
        """Log-odds for pre-tokenized rows, in input order."""
        lengths = [len(r) for r in rows]
        out = np.empty(len(rows))
        stats = ScoreStats(pairs=len(rows), real_tokens=sum(lengths))
        start = time.perf_counter()
        for batch in token_budget_batches(lengths, self.settings.token_budget, self.settings.max_batch_size):
            out[batch] = self.engine.logodds([rows[i] for i in batch])
            stats.padded_tokens += max(lengths[i] for i in batch) * len(batch)
            stats.batches += 1
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        return out

    def score_prefixed(self, head: list[int], tails: list[list[int]]) -> NDArray[np.float64]:
        """Log-odds for head + each tail, running the shared head once (engines that support it)."""
        engine = cast(PrefixScoringEngine, self.engine)  # callers check supports_prefix first
        lengths = [len(head) + len(t) for t in tails]
        out = np.empty(len(tails))
        stats = ScoreStats(pairs=len(tails), real_tokens=sum(lengths), prefixed=True)
        start = time.perf_counter()
        # Batch by tail length: the head is computed once, so only the tails' padding costs compute.
        tail_lengths = [len(t) for t in tails]
        for batch in token_budget_batches(tail_lengths, self.settings.token_budget, self.settings.max_batch_size):
            out[batch] = engine.logodds_prefixed(head, [tails[i] for i in batch])
            stats.padded_tokens += max(lengths[i] for i in batch) * len(batch)
            stats.batches += 1
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        return out

    def score(self, query: str, docs: Sequence[str]) -> list[Score]:
        """Relevance of each document to the query, in input order."""
        head, tails = self.builder.build_parts(query, docs)
        if len(tails) > 1 and supports_prefix(self.engine):
            logits = self.score_prefixed(head, tails)
        else:
            logits = self.score_rows([head + tail for tail in tails])
        probs = sigmoid(logits)
        return [Score(i, float(p), float(l)) for i, (p, l) in enumerate(zip(probs, logits))]

    def close(self) -> None:
        self.engine.close()
