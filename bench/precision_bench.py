"""Torch reranker training tokens/s on the CPU, `[train].precision` fp32 vs bf16 (autocast).

Two models built offline: the embedded tiny one (hidden 64) and a wider one (hidden 1024 by default),
each trained with real listwise steps on random token rows. The fp32 and bf16 legs alternate step by
step, so a neighbour's load hits both alike; the ratio is bf16 / fp32 of the best step rates.

`--demo-hidden W` also runs the demo (`ragweld-tui --run config.toml`, 200 steps on the bundled
data, no promotion) on the embedded model and on one W wide, once with `precision = "fp32"` and once
with `"bf16"`: training tokens/s and the best dev MRR@10 after the same steps, so bf16's quality is
checked where it is fast too.

    python bench/precision_bench.py [--hidden 1024 --layers 2 --seq 256 --steps 3 --threads 2]
    python bench/precision_bench.py --demo-hidden 256
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parents[1]
COMPLETED = re.compile(r"completed after (\d+) steps in ([\d.]+)s \(([\d,]+) training tokens/s\)")
TUNED = re.compile(r"^tuned \(step (\d+)\)\s+([\d.]+)", re.M)


def demo_run(base: str, precision: str, root: Path) -> tuple[float, float, int]:
    """(training tokens/s, best dev MRR@10, its step) of the demo config with this base and precision."""
    text = (ROOT / "config.toml").read_text()
    text = text.replace('base = "embedded:tiny-qwen3-reranker"', f'base = "{base}"', 1)
    text = re.sub(r'^precision = "auto"', f'precision = "{precision}"', text, count=1, flags=re.M)
    text = re.sub(r"^auto_promote = true", "auto_promote = false", text, count=1, flags=re.M)
    config = root / f"{precision}.toml"
    config.write_text(text)
    env = {**os.environ, "RAGWELD_HOME": str(root / f"home-{precision}"), "RAGWELD_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", "import sys; from ragweld_tui.cli import main; sys.exit(main())",
                          "--run", str(config)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    done, tuned = COMPLETED.search(out), TUNED.search(out)
    if done is None or tuned is None:
        raise SystemExit(f"unexpected --run output:\n{out[-2000:]}")
    return float(done.group(3).replace(",", "")), float(tuned.group(2)), int(tuned.group(1))


def wide_spec(hidden: int, layers: int = 2) -> TinyQwen3Spec:
    """A Qwen3-shaped model `hidden` wide (64-wide heads, half as many KV heads, 3x MLP)."""
    heads = max(1, hidden // 64)
    return TinyQwen3Spec(hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=64,
                         init_std=0.02)


def compare_demo(hidden: int, root: Path) -> None:
    """The demo in fp32 and in bf16 on the embedded model and on one `hidden` wide (2 layers)."""
    wide = write_tiny_qwen3(root / f"demo-{hidden}", wide_spec(hidden))
    for name, base in (("embedded (hidden 64)", "embedded:tiny-qwen3-reranker"), (f"hidden {hidden}", str(wide))):
        folder = root / f"demo-runs-{base.rsplit('/', 1)[-1].replace(':', '-')}"
        folder.mkdir()
        legs = {p: demo_run(base, p, folder) for p in ("fp32", "bf16")}
        (f32, m32, s32), (b16, m16, s16) = legs["fp32"], legs["bf16"]
        print(f"demo, {name}: fp32 {f32:,.0f} tok/s, best dev MRR@10 {m32:.4f} (step {s32}); "
              f"bf16 {b16:,.0f} tok/s, {m16:.4f} (step {s16}); bf16/fp32 {b16 / f32:.2f}x, ΔMRR {m16 - m32:+.4f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--demo-hidden", type=int, default=0, help="also run the demo at this width (0: no)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.demo_hidden:
            compare_demo(args.demo_hidden, Path(tmp))
        compare("tiny", TinyQwen3Spec(), args.seq, args.rows, args.steps, Path(tmp))
        compare("wide", wide_spec(args.hidden, args.layers), args.seq, args.rows, args.steps, Path(tmp))


if __name__ == "__main__":
    main()
