"""Everything a reranker run needs, prepared and validated before the run exists in the store.

`RunPlan.prepare` loads and splits the data, resolves the model and backend, and builds the
tokenizer and prompt builder; any user mistake surfaces here as DataError, ModelNotFoundError or
ValueError, so a bad input never leaves a half-made run behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from backends.adapters import LoraWeights
from backends.models import base_fingerprint, resolve_model
from backends.prompt import PromptBuilder, resolve_answer_ids, template_fingerprint
from backends.select import choose_backend
from ragweld_tui.config import AppConfig
from trainers.artifacts import lora_num_layers, write_adapter_folder
from trainers.datasets import load_dataset
from trainers.engine_base import Batch, make_train_engine
from trainers.evaluation import evaluate_queries
from trainers.splits import Group, Split, TrainStream, split_for_config


def make_batches(items: list, builder: PromptBuilder, micro_batches: int) -> list[Batch]:
    """Tokenize one optimizer step's items and cut them into `micro_batches` (gradient accumulation)."""
    size = -(-len(items) // micro_batches)
    out = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        if isinstance(chunk[0], Group):
            rows = [row for g in chunk for row in builder.build(g.query, list(g.docs))]
            out.append(Batch(rows))
        else:
            rows = [builder.build(p.query, [p.doc])[0] for p in chunk]
            out.append(Batch(rows, tuple(p.label for p in chunk)))
    return out


@dataclass
class RunPlan:
    """Validated inputs of a run: data and split, model folder, backend, tokenizer, prompt builder.

    Implements `trainers.run_loop.TrainingPlan` for kind "reranker".
    """

    kind: ClassVar[str] = "reranker"
    config: AppConfig
    dataset: Any
    split: Split
    stream: TrainStream
    model_dir: Path
    backend: str
    device: str
    backend_reason: str
    builder: PromptBuilder
    answer_ids: tuple[int, int]
    pad_id: int
    base_fingerprint: str

    @classmethod
    def prepare(cls, config: AppConfig) -> RunPlan:
        dataset = load_dataset(config.data)  # first: a bad data file fails before any model import
        from transformers import AutoTokenizer

        split = split_for_config(dataset.examples, config.data)
        stream = TrainStream.from_config(split.train, config.train, config.data)
        model_dir = resolve_model(config.model.base)
        choice = choose_backend(config.model.backend, config.model.device)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=config.model.trust_remote_code)
        answer_ids = resolve_answer_ids(tokenizer)
        builder = PromptBuilder(tokenizer, config.prompt.instruction, config.train.max_length)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return cls(config, dataset, split, stream, model_dir, choice.backend, choice.device, choice.reason,
                   builder, answer_ids, pad_id, base_fingerprint(model_dir))

    @property
    def primary_metric(self) -> str:
        return self.config.train.primary_metric

    @property
    def dataset_fingerprint(self) -> str:
        return self.dataset.fingerprint

    def describe(self) -> list[str]:
        return [self.dataset.report.summary(),
                f"{self.backend} on {self.device} ({self.backend_reason}); "
                f"{len(self.split.train)} train / {len(self.split.dev)} dev queries"]

    def make_engine(self):
        return make_train_engine(self.backend, self.model_dir, self.config.lora, self.config.train,
                                 self.answer_ids, self.pad_id, seed=self.config.train.seed, device=self.device)

    def batches_for(self, step: int) -> list[Batch]:
        return make_batches(self.stream.batch(step), self.builder, self.config.train.grad_accumulation)

    def evaluate(self, engine) -> dict[str, float]:
        scoring = self.config.scoring
        return evaluate_queries(engine.logodds, self.builder, self.split.dev, scoring.token_budget,
                                scoring.max_batch_size)

    def num_layers(self) -> int:
        return lora_num_layers(self.model_dir, self.config.lora)

    def write_adapter(self, folder: Path, lora: LoraWeights, run_id: str, metrics: dict[str, float]) -> None:
        write_adapter(folder, lora, self, run_id, metrics)


def write_adapter(folder: Path, lora: LoraWeights, plan: RunPlan, run_id: str, metrics: dict[str, float]) -> None:
    """Write the adapter in its backend's native format, then the manifest last, replacing `folder`."""
    write_adapter_folder(folder, lora, backend=plan.backend, num_layers=plan.num_layers(),
                         base_model=plan.config.model.base, base_fingerprint=plan.base_fingerprint,
                         template_fingerprint=template_fingerprint(), dataset_fingerprint=plan.dataset.fingerprint,
                         kind="reranker", run_id=run_id, metrics=metrics)
