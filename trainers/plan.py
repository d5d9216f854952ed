"""What a training run of any kind needs (`TrainingPlan`), and `prepare_plan`, which makes the plan
of a config's kind.

Apart from the run loop so that promotion (which re-evaluates the serving adapter on a finished
run's dev set) can prepare a plan without importing the loop, which itself imports promotion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from backends.adapters import LoraWeights
from store import DatasetEvent
from trainers.engine_base import TrainEngine
from trainers.evaluation import Evaluation
from trainers.settings import AppConfig, RunKind


class TrainingPlan(Protocol):
    """What a run of one kind needs, prepared and validated before the run exists."""

    config: AppConfig
    backend: str
    device: str

    @property
    def kind(self) -> RunKind:
        """The store's run kind and the promotion slot."""
        ...

    @property
    def primary_metric(self) -> str: ...

    @property
    def dataset_fingerprint(self) -> str: ...

    @property
    def base_fingerprint(self) -> str: ...

    @property
    def template_fingerprint(self) -> str: ...

    @property
    def candidates_note(self) -> str:
        """What the dev set is (for the results table): the first stage and its k, or the data's lists."""
        ...

    def dataset_event(self) -> DatasetEvent:
        """The typed summary of the run's data and split, for the screens."""
        ...

    def describe(self) -> list[str]:
        """Log lines for the start of the run (data summary, backend and split sizes)."""
        ...

    def make_engine(self) -> TrainEngine[Any]:
        """A fresh engine: train_step, lora_weights, trainable_vector, save/load_state, close."""
        ...

    def batches_for(self, step: int) -> list[Any]:
        """The micro-batches of optimizer step `step` (a pure function of the step)."""
        ...

    def evaluate(self, engine: Any) -> Evaluation:
        """Dev evaluation with the engine's current adapter (one `make_engine` made: Any, since each
        kind's plan takes its own engine type); its metrics contain the primary metric."""
        ...

    def first_stage(self) -> Evaluation | None:
        """The first stage's own ranking of the dev candidates (None: the data has no first stage)."""
        ...

    def qrels(self) -> dict[str, dict[str, float]] | None:
        """The dev judgments behind the metrics, for the TREC qrels file (None: not a ranking task)."""
        ...

    def evaluate_adapter(self, lora: LoraWeights) -> Evaluation:
        """The dev evaluation of another adapter of this kind (the serving one)."""
        ...

    def write_adapter(self, folder: Path, lora: LoraWeights, run_id: str, metrics: dict[str, float]) -> None:
        """Replace `folder` with the adapter in the backend's format plus its manifest (written last)."""
        ...


def prepare_plan(config: AppConfig) -> TrainingPlan:
    """The plan for the config's `[train].kind` (raises DataError / ValueError on bad input)."""
    if config.train.kind == "agent":
        from trainers.agent_plan import AgentPlan
        return AgentPlan.prepare(config)
    from trainers.run_plan import RunPlan
    return RunPlan.prepare(config)
