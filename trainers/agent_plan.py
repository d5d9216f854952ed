"""Everything an agent (chat LoRA) run needs, prepared and validated before the run exists in the store.

`AgentPlan.prepare` loads and checks the chat data first (a bad file fails before any model import),
splits it, resolves the model and backend, and tokenizes every conversation once with the Qwen3
chat template (thinking off). It implements `trainers.plan.TrainingPlan`: the shared loop runs it
exactly like a reranker run. The metric is the dev token loss (eval_loss, minimized) and perplexity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from backends.adapters import LoraWeights
from backends.chat_template import IM_END, IM_START, EncodedChat, chat_template_fingerprint
from backends.models import base_fingerprint, is_mlx_quantized, load_tokenizer, pad_token_id, resolve_model
from backends.select import choose_backend
from trainers.settings import AppConfig, RunKind
from trainers.artifacts import lora_num_layers, write_adapter_folder
from trainers.chat_batches import ChatStream, dev_batches, micro_batches, tokenize_chats
from store import DatasetEvent
from trainers.chat_data import ChatDataset, split_chats
from trainers.data_model import dataset_event
from trainers.chat_datasets import load_chat_dataset
from trainers.chat_engine import ChatBatch, ChatTrainEngine
from trainers.engines import make_chat_engine
from trainers.errors import DataError
from trainers.evaluation import Evaluation
from trainers.lora_check import check_lora
from trainers.precision import compute_note, with_resolved_precision
from trainers.serving_check import lora_config_for


def check_chat_tokenizer(tokenizer: Any, model_dir: Path) -> int:
    """Refuse a tokenizer without Qwen's chat markup tokens; return the pad id to use."""
    for token in (IM_START, IM_END):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{model_dir}: the tokenizer encodes {token} as {len(ids)} tokens; a Qwen3 chat "
                             "model's tokenizer has it as one special token")
    return pad_token_id(tokenizer)


def chat_metrics(nll_sum: float, count: int) -> dict[str, float]:
    """Mean token loss and perplexity over the dev targets."""
    loss = nll_sum / count if count else float("nan")
    return {"eval_loss": loss, "perplexity": math.exp(min(loss, 700.0)) if math.isfinite(loss) else loss}


@dataclass
class AgentPlan:
    """Validated inputs of an agent run: chat data and split, tokenized rows, model, backend."""

    kind: ClassVar[RunKind] = "agent"
    config: AppConfig
    dataset: ChatDataset
    train_rows: list[EncodedChat]
    dev_rows: list[EncodedChat]
    stream: ChatStream
    model_dir: Path
    backend: str
    device: str
    backend_reason: str
    pad_id: int
    base_fingerprint: str
    n_cut: int = 0
    n_dropped: int = 0

    @classmethod
    def prepare(cls, config: AppConfig) -> AgentPlan:
        dataset = load_chat_dataset(config.data)  # first: a bad data file fails before any model import
        train_examples, dev_examples = split_chats(dataset.examples, config.data.dev_fraction, config.data.seed)
        model_dir = resolve_model(config.model.base)
        check_lora(model_dir, config.lora)  # before the run exists: a typo leaves nothing behind
        choice = choose_backend(config.model.backend, config.model.device)
        if choice.backend == "torch" and is_mlx_quantized(model_dir):
            raise ValueError(f"{config.model.base} is an MLX-quantized model: train it with [model].backend = 'mlx' "
                             "(QLoRA), or use its float original with PyTorch")
        config = with_resolved_precision(config, choice.backend, choice.device, model_dir)
        tokenizer = load_tokenizer(model_dir, config.model.trust_remote_code)
        pad_id = check_chat_tokenizer(tokenizer, model_dir)
        train = config.train
        train_rows, cut, dropped = tokenize_chats(tokenizer, train_examples, train.max_length, train.train_on)
        dev_rows, dev_cut, dev_dropped = tokenize_chats(tokenizer, dev_examples, train.max_length, train.train_on)
        if not train_rows or not dev_rows:
            raise DataError(f"no {'training' if not train_rows else 'dev'} conversation keeps an assistant token "
                            f"within [train].max_length = {train.max_length}; raise it", dataset.report.source)
        stream = ChatStream([len(r.ids) for r in train_rows], train.batch_size, train.seed)
        return cls(config, dataset, train_rows, dev_rows, stream, model_dir, choice.backend, choice.device,
                   choice.reason, pad_id, base_fingerprint(model_dir), cut + dev_cut, dropped + dev_dropped)

    @property
    def primary_metric(self) -> str:
        return self.config.train.primary_metric

    @property
    def dataset_fingerprint(self) -> str:
        return self.dataset.fingerprint

    def dataset_event(self) -> DatasetEvent:
        return dataset_event(self.dataset.report, self.dataset.fingerprint, len(self.train_rows), len(self.dev_rows),
                             n_cut=self.n_cut, n_dropped=self.n_dropped)

    def describe(self) -> list[str]:
        lines = [self.dataset.report.summary(),
                 f"{self.backend} on {self.device} ({self.backend_reason}); {compute_note(self.config.train)}; "
                 f"{len(self.train_rows)} train / "
                 f"{len(self.dev_rows)} dev conversations ({sum(r.num_targets() for r in self.dev_rows)} dev "
                 f"target tokens); learning {self.config.train.train_on} assistant turns"]
        if self.n_cut or self.n_dropped:
            lines.append(f"{self.n_cut} conversations cut at max_length {self.config.train.max_length}, "
                         f"{self.n_dropped} left out (no assistant token left)")
        return lines

    def make_engine(self) -> ChatTrainEngine:
        return make_chat_engine(self.backend, self.model_dir, self.config.lora, self.config.train, self.pad_id,
                                seed=self.config.train.seed, device=self.device)

    def batches_for(self, step: int) -> list[ChatBatch]:
        return micro_batches(self.train_rows, self.stream.batch(step), self.config.train.grad_accumulation)

    @property
    def template_fingerprint(self) -> str:
        return chat_template_fingerprint()

    @property
    def candidates_note(self) -> str:
        return f"dev: {len(self.dev_rows)} held-out conversations"

    def evaluate(self, engine: ChatTrainEngine) -> Evaluation:
        total, count = 0.0, 0
        for batch in dev_batches(self.dev_rows, self.config.scoring.token_budget, self.config.scoring.max_batch_size):
            nll, n = engine.nll(batch)
            total, count = total + nll, count + n
        return Evaluation(chat_metrics(total, count))

    def first_stage(self) -> Evaluation | None:
        """Chat data has no retrieval stage."""
        return None

    def qrels(self) -> None:
        """Chat data has no relevance judgments."""
        return None

    def evaluate_adapter(self, lora: LoraWeights) -> Evaluation:
        """The dev eval loss of another adapter (the serving one) on this plan's conversations."""
        engine = make_chat_engine(self.backend, self.model_dir, lora_config_for(lora, self.config.lora),
                                  self.config.train, self.pad_id, seed=self.config.train.seed, init_lora=lora,
                                  device=self.device)
        try:
            return self.evaluate(engine)
        finally:
            engine.close()

    def write_adapter(self, folder: Path, lora: LoraWeights, run_id: str, metrics: dict[str, float]) -> None:
        write_adapter_folder(folder, lora, backend=self.backend, num_layers=lora_num_layers(self.model_dir, self.config.lora),
                             base_model=self.config.model.base, base_fingerprint=self.base_fingerprint,
                             template_fingerprint=chat_template_fingerprint(), dataset_fingerprint=self.dataset.fingerprint,
                             kind="agent", run_id=run_id, metrics=metrics, precision=self.config.train.precision,
                             gradient_checkpointing=self.config.train.gradient_checkpointing)
