"""The LoRA training-engine protocols (any kind, and the reranker's), and the pure helpers both
backends share.

An engine owns one base model with LoRA layers, an AdamW optimizer and the step count. The trainer
hands it micro-batches of token rows; it returns step statistics, log-odds for evaluation, and the
adapter in the framework-neutral `LoraWeights` form. Everything that must agree between MLX and
PyTorch — target selection, layer selection, the seeded LoRA init, the parameter order of the
telemetry vector and the on-disk training state — lives here once, so the backends cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from backends.adapters import LoraWeights
from trainers.world import World
from trainers.losses import examples_in

STATE_VERSION = 1
STATE_JSON, ADAPTER_FILE, OPTIMIZER_FILE = "state.json", "lora.safetensors", "optimizer.safetensors"
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


@dataclass(frozen=True)
class Batch:
    """Token rows of one micro-batch. Pointwise: one 0/1 label per row. Listwise: consecutive
    groups of `TrainConfig.group_size` rows with the positive first, and no labels."""

    rows: list[list[int]]
    labels: tuple[float, ...] | None = None

    def num_examples(self, loss: str, group_size: int) -> int:
        if loss == "pointwise" and (self.labels is None or len(self.labels) != len(self.rows)):
            raise ValueError("a pointwise batch needs one label per row")
        return examples_in(len(self.rows), loss, group_size)

    def num_tokens(self) -> int:
        return sum(len(row) for row in self.rows)

    def shard(self, start: int, stop: int, unit: int) -> Batch | None:
        """Examples [start, stop) of the batch (an example is `unit` rows: a listwise group, or one
        pointwise row); None when the range is empty."""
        if stop <= start:
            return None
        labels = self.labels[start:stop] if self.labels is not None else None
        return Batch(self.rows[start * unit:stop * unit], labels)


@dataclass(frozen=True)
class StepStats:
    """One optimizer step: mean loss per example, pre-clip gradient norm, the rate used, real tokens.

    `skipped`: fp16's loss scaler found overflowed gradients and left the weights as they were.
    """

    step: int
    loss: float
    grad_norm: float
    lr: float
    tokens: int
    examples: int
    seconds: float
    skipped: bool = False


BatchT = TypeVar("BatchT")


class TrainEngine(Protocol[BatchT]):
    """A base model with trainable LoRA layers and its optimizer, for any run kind: what the run loop
    drives. `BatchT` is the kind's micro-batch (`Batch` for rerankers, `ChatBatch` for the agent)."""

    backend: str
    step: int

    def train_step(self, micro_batches: list[BatchT]) -> StepStats:
        """One AdamW update from all micro-batches together, exactly as if they were one batch."""
        ...

    def use_world(self, world: World) -> None:
        """Train as one rank of `world`: `train_step` gets the global batch, computes this rank's shard
        and sums the gradients over the ranks, so every rank takes the one-process update."""
        ...

    def lora_weights(self) -> LoraWeights:
        """The current adapter, framework-neutral (A (r, in), B (out, r), float32 copies)."""
        ...

    def trainable_vector(self) -> np.ndarray:
        """All LoRA parameters flattened in `flatten_lora` order (for the telemetry projection)."""
        ...

    def save_state(self, folder: Path) -> None:
        """Write adapter, optimizer moments, step and seed so that `load_state` resumes exactly."""
        ...

    def load_state(self, folder: Path) -> None:
        """Restore what `save_state` wrote (same LoRA shape required)."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...


class RerankScorer(Protocol):
    """What dev evaluation needs of a reranker engine: log-odds of rows, or of tails after a shared head."""

    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        """logit_yes − logit_no per row with the current adapter (no gradients, no dropout)."""
        ...

    def prefix_state(self, head: list[int]) -> object:
        """The key/value cache of `head` (one row) under the current adapter, for `logodds_after`.

        Computed afresh per query by the caller, so a cache never outlives the weights it was made with.
        """
        ...

    def logodds_after(self, state: object, tails: list[list[int]]) -> np.ndarray:
        """Like logodds(head + tail for each tail), `head` being the row behind `state`."""
        ...


class RerankTrainEngine(TrainEngine[Batch], RerankScorer, Protocol):
    """A reranker engine: trained on yes−no log-odds at each row's last token."""


def bucket(n: int) -> int:
    """`n` rounded up to a bucket: a multiple of 8 below 256, then of 1/16 of `n`'s power of two (16
    from 256, 32 from 512, ...). Padding adds at most 7 tokens below 128 and under 1/16 from there on
    (mlx-lm's multiples of 32 run 129 tokens as 160), and a compiled step traces at most 16 shapes per
    doubling of the length (mlx-lm's take 64 between 2,048 and 4,096 tokens)."""
    step = max(8, 1 << max(0, n.bit_length() - 5))
    return -(-n // step) * step


def pad_rows(rows: list[list[int]], pad_id: int, bucketed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad rows into an int array as wide as the longest row (rounded up to its `bucket` when
    `bucketed`: a compiled step traces one graph per width); also return each row's last real position.

    Right padding keeps every real token before every pad, so the causal mask alone stops pads
    from reaching a real token's attention and no padding mask is needed.
    """
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("every row needs at least one token")
    longest = max(len(r) for r in rows)
    ids = np.full((len(rows), bucket(longest) if bucketed else longest), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids, np.array([len(r) - 1 for r in rows], dtype=np.int64)


def shared_prefix_lengths(rows: list[list[int]], group_size: int) -> list[int]:
    """For each consecutive group of `group_size` rows, how many leading tokens all its rows share,
    leaving every row at least its last token (the one the score is read from)."""
    if not rows or len(rows) % group_size:
        raise ValueError(f"{len(rows)} rows do not make whole groups of {group_size}")
    out = []
    for start in range(0, len(rows), group_size):
        group = rows[start:start + group_size]
        limit = min(len(r) for r in group) - 1
        n = 0
        while n < limit and all(r[n] == group[0][n] for r in group[1:]):
            n += 1
        out.append(n)
    return out


def layers_to_train(num_layers: int, total_layers: int) -> list[int]:
    """Layer indices LoRA goes into: -1 means all, N the last N (mlx-lm's `num_layers`)."""
    if num_layers == -1 or num_layers >= total_layers:
        return list(range(total_layers))
    if num_layers < 1:
        raise ValueError(f"[lora].num_layers must be -1 (all) or at least 1 (got {num_layers})")
    return list(range(total_layers - num_layers, total_layers))


def matches_target(module_path: str, targets: list[str]) -> bool:
    """Whether a module path inside a layer (`self_attn.q_proj`) is named by `targets` (`q_proj`)."""
    return any(module_path == t or module_path.endswith("." + t) for t in targets)


def default_lora_init(shapes: dict[str, tuple[int, int]], rank: int, scale: float, dropout: float,
                      seed: int) -> LoraWeights:
    """Seeded init shared by both backends: A ~ U(±1/√in) (kaiming-uniform, a=√5), B = 0.

    `shapes` maps module name -> (in, out). Drawing in sorted-name order from one PCG64 stream
    makes the init a function of the seed alone, identical on MLX and PyTorch.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    modules = {}
    for name in sorted(shapes):
        fan_in, fan_out = shapes[name]
        bound = 1.0 / np.sqrt(fan_in)
        a = rng.uniform(-bound, bound, size=(rank, fan_in)).astype(np.float32)
        modules[name] = (a, np.zeros((fan_out, rank), dtype=np.float32))
    return LoraWeights(modules, scale, rank, dropout)


def check_lora_shape(lora: LoraWeights, shapes: dict[str, tuple[int, int]], rank: int) -> None:
    """Refuse LoRA weights whose modules, rank or shapes differ from the engine's layers."""
    if set(lora.modules) != set(shapes):
        missing, extra = sorted(set(shapes) - set(lora.modules)), sorted(set(lora.modules) - set(shapes))
        raise ValueError(f"LoRA modules differ from the engine's: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, (a, b) in lora.modules.items():
        fan_in, fan_out = shapes[name]
        if a.shape != (rank, fan_in) or b.shape != (fan_out, rank):
            raise ValueError(f"{name}: LoRA shapes A{a.shape} B{b.shape}, expected A{(rank, fan_in)} "
                             f"B{(fan_out, rank)}")


def flatten_lora(modules: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """One float32 vector: modules in sorted-name order, A then B, each row-major."""
    parts = []
    for name in sorted(modules):
        a, b = modules[name]
        parts += [np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def dropout_seed(seed: int, step: int) -> int:
    """The seed the engines reset their framework's generator to before step `step`.

    Making dropout's randomness a function of (seed, step) means a checkpoint needs no RNG dump
    (MLX cannot restore an arbitrary global key anyway) and a resumed run draws the same masks.
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


@dataclass
class TrainState:
    """What a checkpoint holds: neutral adapter, Adam moments keyed `<module>.{A,B}.{m,v}`, step, seed."""

    backend: str
    step: int
    seed: int
    lora: LoraWeights
    moments: dict[str, np.ndarray]


def write_state(folder: Path, state: TrainState) -> None:
    """Write the state as safetensors + JSON (never pickle); state.json goes last as the commit mark."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_JSON).unlink(missing_ok=True)
    adapter = {}
    for name, (a, b) in sorted(state.lora.modules.items()):
        adapter[f"{name}.A"], adapter[f"{name}.B"] = np.ascontiguousarray(a), np.ascontiguousarray(b)
    save_file(adapter, str(folder / ADAPTER_FILE))
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(state.moments.items())}, str(folder / OPTIMIZER_FILE))
    meta = {"version": STATE_VERSION, "backend": state.backend, "step": state.step, "seed": state.seed,
            "rank": state.lora.rank,
            "scale": state.lora.scale, "dropout": state.lora.dropout}
    (folder / STATE_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_state(folder: Path) -> TrainState:
    """Read what `write_state` wrote; a folder without state.json is an incomplete checkpoint."""
    from safetensors.numpy import load_file

    if not (folder / STATE_JSON).is_file():
        raise FileNotFoundError(f"{folder}: no {STATE_JSON} (not a training state, or partly written)")
    meta = json.loads((folder / STATE_JSON).read_text())
    if meta.get("version", 0) > STATE_VERSION:
        raise ValueError(f"{folder}: training state version {meta['version']} is newer than this program")
    tensors = load_file(str(folder / ADAPTER_FILE))
    names = sorted({key.rsplit(".", 1)[0] for key in tensors})
    modules = {n: (tensors[f"{n}.A"], tensors[f"{n}.B"]) for n in names}
    lora = LoraWeights(modules, float(meta["scale"]), int(meta["rank"]), float(meta["dropout"]))
    return TrainState(meta["backend"], int(meta["step"]), int(meta["seed"]), lora,
                      load_file(str(folder / OPTIMIZER_FILE)))
