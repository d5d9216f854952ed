"""Everything a reranker run needs, prepared and validated before the run exists in the store.

`RunPlan.prepare` loads and splits the data, resolves the model and backend, and builds the
tokenizer and prompt builder; any user mistake surfaces here as DataError, ModelNotFoundError or
ValueError, so a bad input never leaves a half-made run behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from backends.adapters import LoraWeights
from backends.models import base_fingerprint, is_mlx_quantized, load_tokenizer, pad_token_id, resolve_model
from backends.prompt import PromptBuilder, PromptError, resolve_answer_ids, template_fingerprint
from backends.select import choose_backend
from trainers.settings import AppConfig, RunKind
from trainers.artifacts import lora_num_layers, write_adapter_folder
from store import DatasetEvent
from trainers.data_model import RerankDataset, dataset_event
from trainers.datasets import load_dataset
from trainers.engine_base import Batch, RerankTrainEngine
from trainers.engines import make_train_engine
from trainers.errors import DataError
from trainers.evaluation import Evaluation, dev_qrels, evaluate_first_stage, evaluate_queries
from trainers.lora_check import check_lora
from trainers.precision import compute_note, with_resolved_precision
from trainers.serving_check import lora_config_for
from trainers.splits import Group, Pair, Split, TrainStream, split_for_config


def fits(builder: PromptBuilder, query: str) -> bool:
    """Whether the query, with the prompt around it, leaves room for at least one document token."""
    try:
        builder.build_parts(query, ["."])
    except PromptError:
        return False
    return True


def fit_split(split: Split, train_builder: PromptBuilder, eval_builder: PromptBuilder) -> tuple[Split, int]:
    """Leave out training queries longer than `[train].max_length` allows (counted); refuse a dev
    query longer than `[prompt].max_length` allows, since dropping it would change the verdict."""
    for ex in split.dev:
        if not fits(eval_builder, ex.query):
            raise DataError(f"dev query {ex.qid!r} does not fit in [prompt].max_length = {eval_builder.max_length} "
                            "tokens with the prompt; raise [prompt].max_length")
    kept = [ex for ex in split.train if fits(train_builder, ex.query)]
    if not kept:
        raise DataError(f"no training query fits in [train].max_length = {train_builder.max_length} tokens with "
                        "the prompt; raise [train].max_length")
    return Split(train=kept, dev=split.dev), len(split.train) - len(kept)


def make_batches(items: list[Group] | list[Pair], builder: PromptBuilder, micro_batches: int) -> list[Batch]:
    """Tokenize one optimizer step's items and cut them into `micro_batches` (gradient accumulation)."""
    size = -(-len(items) // micro_batches)
    out: list[Batch] = []
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

    Implements `trainers.plan.TrainingPlan` for kind "reranker".
    """

    kind: ClassVar[RunKind] = "reranker"
    config: AppConfig
    dataset: RerankDataset
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
    eval_builder: PromptBuilder
    n_too_long: int = 0

    @classmethod
    def prepare(cls, config: AppConfig) -> RunPlan:
        dataset = load_dataset(config.data, config.eval)  # first: a bad data file fails before any model import
        split = split_for_config(dataset.examples, config.data)
        model_dir = resolve_model(config.model.base)
        check_lora(model_dir, config.lora)  # before the run exists: a typo leaves nothing behind
        choice = choose_backend(config.model.backend, config.model.device)
        if choice.backend == "torch" and is_mlx_quantized(model_dir):
            raise ValueError(f"{config.model.base} is an MLX-quantized model: train it with [model].backend = 'mlx' "
                             "(QLoRA), or use its float original with PyTorch")
        config = with_resolved_precision(config, choice.backend, choice.device, model_dir)
        tokenizer = load_tokenizer(model_dir, config.model.trust_remote_code)
        answer_ids = resolve_answer_ids(tokenizer)
        builder = PromptBuilder(tokenizer, config.prompt.instruction, config.train.max_length)
        # Dev queries are ranked as serving would rank them: with the serving prompt's length limit.
        eval_builder = PromptBuilder(tokenizer, config.prompt.instruction, config.prompt.max_length)
        split, n_too_long = fit_split(split, builder, eval_builder)
        stream = TrainStream.from_config(split.train, config.train, config.data)
        pad_id = pad_token_id(tokenizer)
        return cls(config, dataset, split, stream, model_dir, choice.backend, choice.device, choice.reason,
                   builder, answer_ids, pad_id, base_fingerprint(model_dir), eval_builder, n_too_long)

    @property
    def primary_metric(self) -> str:
        return self.config.train.primary_metric

    @property
    def dataset_fingerprint(self) -> str:
        return self.dataset.fingerprint

    @property
    def template_fingerprint(self) -> str:
        return template_fingerprint()

    @property
    def candidates_note(self) -> str:
        """What each dev query is ranked over, for the results table."""
        stage = self.dataset.report.first_stage
        return f"dev candidates: {stage}" if stage else "dev candidates: the data's own lists (no first stage)"

    def dataset_event(self) -> DatasetEvent:
        return dataset_event(self.dataset.report, self.dataset.fingerprint, len(self.split.train), len(self.split.dev),
                             self.dataset.report.first_stage, n_too_long=self.n_too_long)

    def describe(self) -> list[str]:
        lines = [self.dataset.report.summary(),
                 f"{self.backend} on {self.device} ({self.backend_reason}); {compute_note(self.config.train)}; "
                 f"{len(self.split.train)} train / {len(self.split.dev)} dev queries"]
        if self.n_too_long:
            lines.append(f"{self.n_too_long} training queries left out: longer than [train].max_length = "
                         f"{self.config.train.max_length} tokens allows with the prompt")
        return lines

    def make_engine(self) -> RerankTrainEngine:
        return make_train_engine(self.backend, self.model_dir, self.config.lora, self.config.train,
                                 self.answer_ids, self.pad_id, seed=self.config.train.seed, device=self.device)

    def batches_for(self, step: int) -> list[Batch]:
        return make_batches(self.stream.batch(step), self.builder, self.config.train.grad_accumulation)

    def evaluate(self, engine: RerankTrainEngine) -> Evaluation:
        scoring = self.config.scoring
        return evaluate_queries(engine, self.eval_builder, self.split.dev, scoring.token_budget,
                                scoring.max_batch_size)

    def first_stage(self) -> Evaluation | None:
        """The first stage's own ranking of the dev candidates (None for data without a corpus)."""
        return evaluate_first_stage(self.split.dev)

    def qrels(self) -> dict[str, dict[str, float]]:
        """The dev judgments behind every reported metric (written as the run's qrels file)."""
        return dev_qrels(self.split.dev)

    def evaluate_adapter(self, lora: LoraWeights) -> Evaluation:
        """The dev evaluation of another adapter (the serving one) on this plan's candidates."""
        engine = make_train_engine(self.backend, self.model_dir, lora_config_for(lora, self.config.lora),
                                   self.config.train, self.answer_ids, self.pad_id, seed=self.config.train.seed,
                                   init_lora=lora, device=self.device)
        try:
            return self.evaluate(engine)
        finally:
            engine.close()

    def num_layers(self) -> int:
        return lora_num_layers(self.model_dir, self.config.lora)

    def write_adapter(self, folder: Path, lora: LoraWeights, run_id: str, metrics: dict[str, float]) -> None:
        write_adapter(folder, lora, self, run_id, metrics)


def write_adapter(folder: Path, lora: LoraWeights, plan: RunPlan, run_id: str, metrics: dict[str, float]) -> None:
    """Write the adapter in its backend's native format, then the manifest last, replacing `folder`."""
    write_adapter_folder(folder, lora, backend=plan.backend, num_layers=plan.num_layers(),
                         base_model=plan.config.model.base, base_fingerprint=plan.base_fingerprint,
                         template_fingerprint=template_fingerprint(), dataset_fingerprint=plan.dataset.fingerprint,
                         kind="reranker", run_id=run_id, metrics=metrics, precision=plan.config.train.precision,
                         gradient_checkpointing=plan.config.train.gradient_checkpointing)
