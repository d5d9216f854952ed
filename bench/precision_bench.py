"""Torch reranker training tokens/s on the CPU, `[train].precision` fp32 vs bf16 (autocast).

Two models built offline: the embedded tiny one (hidden 64) and a wider one (hidden 1024 by default),
each trained with real listwise steps on random token rows. The fp32 and bf16 legs alternate step by
step, so a neighbour's load hits both alike; the ratio is bf16 / fp32 of the best step rates.

    python bench/precision_bench.py [--hidden 1024 --layers 2 --seq 256 --steps 3 --threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from backends.embedded import TinyQwen3Spec, write_tiny_qwen3
from backends.prompt import resolve_answer_ids
from trainers.engine_base import Batch, RerankTrainEngine
from trainers.engines import make_train_engine
from trainers.settings import LoraConfig, TrainConfig


def engine_for(model_dir: Path, precision: str, answer_ids: tuple[int, int], pad_id: int) -> RerankTrainEngine:
    train = TrainConfig(precision=precision, group_size=4, learning_rate=1e-4, warmup_steps=0, max_steps=1000)
    return make_train_engine("torch", model_dir, LoraConfig(rank=8, alpha=16.0), train, answer_ids, pad_id)


def compare(name: str, spec: TinyQwen3Spec, seq: int, rows: int, steps: int, root: Path) -> None:
    """Print fp32 and bf16 tokens/s (best of `steps` alternating steps after one warm-up each)."""
    from transformers import AutoTokenizer

    model_dir = write_tiny_qwen3(root / name, spec)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    answer_ids, pad_id = resolve_answer_ids(tokenizer), tokenizer.pad_token_id
    rng = np.random.default_rng(0)
    batch = [Batch([rng.integers(0, 9000, seq).tolist() for _ in range(rows)])]
    engines = {p: engine_for(model_dir, p, answer_ids, pad_id) for p in ("fp32", "bf16")}
    rates: dict[str, list[float]] = {p: [] for p in engines}
    losses: dict[str, float] = {}
    for p, engine in engines.items():  # warm-up (allocations, oneDNN kernels)
        losses[p] = engine.train_step(batch).loss
    for _ in range(steps):
        for p, engine in engines.items():
            started = time.perf_counter()
            engine.train_step(batch)
            rates[p].append(rows * seq / (time.perf_counter() - started))
    best = {p: max(r) for p, r in rates.items()}
    print(f"{name}: hidden {spec.hidden_size}, {spec.num_hidden_layers} layers, {rows}x{seq} tokens/step: "
          f"fp32 {best['fp32']:,.0f} tok/s, bf16 {best['bf16']:,.0f} tok/s, bf16/fp32 {best['bf16'] / best['fp32']:.2f}x; "
          f"first-step loss fp32 {losses['fp32']:.4f} bf16 {losses['bf16']:.4f}")
    for engine in engines.values():
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        compare("tiny", TinyQwen3Spec(), args.seq, args.rows, args.steps, Path(tmp))
        heads = max(1, args.hidden // 64)
        wide = TinyQwen3Spec(hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                             num_hidden_layers=args.layers, num_attention_heads=heads,
                             num_key_value_heads=max(1, heads // 2), head_dim=64, init_std=0.02)
        compare("wide", wide, args.seq, args.rows, args.steps, Path(tmp))


if __name__ == "__main__":
    main()
