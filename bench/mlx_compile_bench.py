"""MLX training step, compiled against eager (`[train].compile` true / false), in one run.

Shapes: the reranker demo run (`RunPlan` of the default config on MLX: the embedded tiny reranker,
batch 8 × group 4 of the bundled demo data, its first `--steps` steps) and the agent bench
(`bench/agent_train_bench.py`'s packed rows, batch × seq tokens, assistant targets and every token
a target). Each side is its own engine; both see the same batches. A first pass over the batches
(where the compiled side traces each length bucket) is timed apart; then timed windows over the same
batches alternate eager / compiled `--rounds` times and each side's fastest window counts (other jobs
on a shared box only ever slow a window). Reported: ms per step, the compiled / eager time ratio, and
the traces of the compiled gradient and update functions.

    python bench/mlx_compile_bench.py [--steps 6] [--rounds 3] [--batch 8] [--seq 128] [--only rerank|agent]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.agent_train_bench import TARGETS, packed_rows
from backends.embedded import EMBEDDED_MODELS, write_tiny_qwen3
from trainers.chat_engine import ChatBatch
from trainers.settings import AppConfig, LoraConfig, TrainConfig


def timed(engine: Any, batches: list[list[Any]]) -> float:
    """Seconds for one train step on each of `batches`."""
    start = time.perf_counter()
    for batch in batches:
        engine.train_step(batch)
    return time.perf_counter() - start


def compare(name: str, make: Callable[[bool], Any], batches: list[list[Any]], rounds: int) -> None:
    """Print first-pass and best-window ms per step of both sides, their ratio and the traces."""
    engines = {flag: make(flag) for flag in (False, True)}
    try:
        first = {flag: timed(engine, batches) for flag, engine in engines.items()}
        best = {flag: float("inf") for flag in engines}
        for _ in range(rounds):
            for flag, engine in engines.items():
                best[flag] = min(best[flag], timed(engine, batches))
        per_step = {flag: 1000 * seconds / len(batches) for flag, seconds in best.items()}
        first_ms = {flag: 1000 * seconds / len(batches) for flag, seconds in first.items()}
        print(f"{name:34} eager {per_step[False]:8.1f} ms/step   compiled {per_step[True]:8.1f} ms/step   "
              f"ratio {per_step[True] / per_step[False]:.3f}   first pass eager {first_ms[False]:.0f} "
              f"/ compiled {first_ms[True]:.0f} ms/step   traces {dict(engines[True].traces)} over {len(batches)} steps")
    finally:
        for engine in engines.values():
            engine.close()


def rerank(args: argparse.Namespace) -> None:
    from trainers.run_plan import RunPlan

    def make(flag: bool) -> Any:
        config = AppConfig.model_validate({"model": {"backend": "mlx", "device": "cpu"},
                                           "train": {"compile": flag, "max_steps": max(10, args.steps)}})
        return RunPlan.prepare(config).make_engine()

    plan = RunPlan.prepare(AppConfig.model_validate({"model": {"backend": "mlx", "device": "cpu"}}))
    batches = [plan.batches_for(step) for step in range(args.steps)]
    widths = sorted({max(len(row) for b in batch for row in b.rows) for batch in batches})
    compare(f"reranker demo (longest rows {widths[0]}..{widths[-1]})", make, batches, args.rounds)


def agent(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    from trainers.engines import make_chat_engine

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_tiny_qwen3(Path(tmp) / "tiny-chat", EMBEDDED_MODELS["tiny-qwen3-chat"])
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        rows, flags = packed_rows(tokenizer, args.seq, args.batch * args.steps)
        chats = [ChatBatch(rows[i:i + args.batch], flags[i:i + args.batch]) for i in range(0, len(rows), args.batch)]
        every = [ChatBatch(b.rows, [[False] + [True] * (len(r) - 1) for r in b.rows]) for b in chats]

        def make(flag: bool) -> Any:
            lora = LoraConfig(rank=8, alpha=16.0, target_modules=TARGETS)
            train = TrainConfig(kind="agent", primary_metric="eval_loss", learning_rate=1e-4, warmup_steps=0,
                                max_steps=10_000, batch_size=args.batch, compile=flag)
            return make_chat_engine("mlx", model_dir, lora, train, pad_id=0)

        shape = f"{args.batch}x{args.seq}"
        compare(f"agent {shape} (assistant targets)", make, [[b] for b in chats], args.rounds)
        compare(f"agent {shape} (every token a target)", make, [[b] for b in every], args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="batches per timed window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="agent rows per batch")
    parser.add_argument("--seq", type=int, default=128, help="agent tokens per row")
    parser.add_argument("--only", choices=("rerank", "agent"))
    args = parser.parse_args()
    if args.only in (None, "rerank"):
        rerank(args)
    if args.only in (None, "agent"):
        agent(args)


if __name__ == "__main__":
    main()
