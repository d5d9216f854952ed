"""Agent trainer throughput: our chat LoRA engines against the reference loops, tokens per second.

- MLX: `trainers.chat_engine_mlx.MlxChatEngine` against mlx-lm's own LoRA trainer
  (`mlx_lm.tuner.trainer.train`, what `mlx_lm.lora` runs), on the same model, LoRA layers and rank.
- PyTorch: `trainers.chat_engine_torch.TorchChatEngine` against a plain peft + transformers loop
  (`model(input_ids, labels=...)`, backward, clip, AdamW step).

Both sides of a pair see the same rows: the bundled chat demo tokenized with the Qwen3 template and
packed into rows of exactly SEQ+1 tokens, so mlx-lm's padding to multiples of 32 adds nothing and
the tokens per step are B·SEQ on every side. Our engines learn the assistant tokens of each row, as
the product does (mlx-lm's `--mask-prompt` and the peft loop's -100 labels give them the same loss
positions, but they still project every position on the vocabulary); the "all targets" line makes
every position a target, the same head work as the references. Each measurement is the best of
`--repeats` timed windows after warm-up steps (other jobs on a shared box only ever slow a window).

    python bench/agent_train_bench.py [--batch 8] [--seq 128] [--rank 8] [--steps 5] [--threads 1] [--only mlx|torch]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from backends.chat_template import encode_chat
from backends.embedded import EMBEDDED_MODELS, write_tiny_qwen3
from trainers.settings import LoraConfig, TrainConfig
from trainers.chat_demo import make_chat_demo
from trainers.chat_engine import ChatBatch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def packed_rows(tokenizer, seq: int, count: int) -> tuple[list[list[int]], list[list[bool]]]:
    """`count` rows of seq+1 tokens cut from the demo conversations laid end to end."""
    ids: list[int] = []
    flags: list[bool] = []
    for example in make_chat_demo().examples:
        encoded = encode_chat(tokenizer, example.messages)
        ids += encoded.ids
        flags += encoded.targets
    width = seq + 1
    if len(ids) < width * count:
        raise SystemExit(f"the demo has {len(ids)} tokens; ask for fewer rows")
    return ([ids[i * width:(i + 1) * width] for i in range(count)],
            [[False] + flags[i * width + 1:(i + 1) * width] for i in range(count)])


def best_rate(step, batches: list, warmup: int, steps: int, repeats: int, tokens_per_step: int) -> float:
    """Tokens/s of the fastest of `repeats` windows of `steps` steps, after `warmup` steps."""
    for i in range(warmup):
        step(batches[i % len(batches)])
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(batches[(r * steps + i) % len(batches)])
        best = min(best, time.perf_counter() - start)
    return tokens_per_step * steps / best


def train_config(args: argparse.Namespace) -> tuple[LoraConfig, TrainConfig]:
    lora = LoraConfig(rank=args.rank, alpha=2.0 * args.rank, target_modules=TARGETS)
    train = TrainConfig(kind="agent", primary_metric="eval_loss", learning_rate=1e-4, warmup_steps=0,
                        max_steps=10_000, batch_size=args.batch)
    return lora, train


def ours(backend: str, model_dir: Path, batches: list[ChatBatch], args: argparse.Namespace, all_targets: bool) -> float:
    from trainers.engines import make_chat_engine

    lora, train = train_config(args)
    engine = make_chat_engine(backend, model_dir, lora, train, pad_id=0)
    if all_targets:
        batches = [ChatBatch(b.rows, [[False] + [True] * (len(r) - 1) for r in b.rows]) for b in batches]
    try:
        return best_rate(lambda b: engine.train_step([b]), batches, args.warmup, args.steps, args.repeats,
                         args.batch * args.seq)
    finally:
        engine.close()


def peft_loop(model_dir: Path, batches: list[ChatBatch], args: argparse.Namespace) -> float:
    """The plain PyTorch reference: transformers computes every position's logits and the masked loss."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, PeftLoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=TARGETS,
                                                 lora_dropout=0.0, bias="none"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    tensors = []
    for batch in batches:
        ids = torch.tensor(batch.rows)
        labels = ids.clone()
        labels[~torch.tensor(batch.targets)] = -100
        tensors.append((ids, labels))

    def step(pair) -> None:
        ids, labels = pair
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return best_rate(step, tensors, args.warmup, args.steps, args.repeats, args.batch * args.seq)


def mlx_lm_lora(model_dir: Path, batches: list[ChatBatch], args: argparse.Namespace) -> float:
    """mlx-lm's LoRA trainer (compiled step, its own batching) on the same rows, prompt masked."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(model_dir)
    model.set_dtype(mx.float32)
    model.freeze()
    keys = sorted(k for k, _ in model.layers[0].named_modules() if k.split(".")[-1] in TARGETS)
    linear_to_lora_layers(model, len(model.layers), {"rank": args.rank, "scale": 2.0, "dropout": 0.0, "keys": keys})
    rows = [(row, flags.index(True) if True in flags else 0) for b in batches for row, flags in zip(b.rows, b.targets)]
    windows = args.warmup + args.steps * args.repeats
    rates: list[float] = []

    class Report:
        def on_train_loss_report(self, info: dict) -> None:
            rates.append(info["iterations_per_second"])

        def on_val_loss_report(self, info: dict) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        training = TrainingArgs(batch_size=args.batch, iters=args.steps * (windows // args.steps + 1),
                                steps_per_report=args.steps, steps_per_eval=10**9, steps_per_save=10**9,
                                max_seq_length=args.seq + 1, adapter_file=str(Path(tmp) / "adapters.safetensors"))
        train(model, optim.AdamW(learning_rate=1e-4), rows, args=training, training_callback=Report())
    return max(rates[1:]) * args.batch * args.seq  # the first window includes compilation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed window")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both torch sides)")
    parser.add_argument("--only", choices=("mlx", "torch"))
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from backends.mlx_thread import mlx_worker

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_tiny_qwen3(Path(tmp) / "tiny-chat", EMBEDDED_MODELS["tiny-qwen3-chat"])
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        count = args.batch * max(4, (args.warmup + args.steps * args.repeats) // 4)
        rows, flags = packed_rows(tokenizer, args.seq, min(count, 64))
        batches = [ChatBatch(rows[i:i + args.batch], flags[i:i + args.batch]) for i in range(0, len(rows), args.batch)]
        target_share = np.mean([np.mean(f[1:]) for f in flags])
        print(f"tiny Qwen3 (hidden 64, 2 layers, vocab {len(tokenizer)}), batch {args.batch} x {args.seq} tokens, "
              f"LoRA rank {args.rank} on {len(TARGETS)} projections; {target_share:.0%} of positions are assistant targets")
        results = []
        if args.only in (None, "mlx"):
            theirs = mlx_worker().call(mlx_lm_lora, model_dir, batches, args)
            mine = ours("mlx", model_dir, batches, args, all_targets=False)
            mine_all = ours("mlx", model_dir, batches, args, all_targets=True)
            results += [("MLX", "mlx_lm.lora trainer", theirs, mine, mine_all)]
        if args.only in (None, "torch"):
            theirs = peft_loop(model_dir, batches, args)
            mine = ours("torch", model_dir, batches, args, all_targets=False)
            mine_all = ours("torch", model_dir, batches, args, all_targets=True)
            results += [("PyTorch", "plain peft + transformers loop", theirs, mine, mine_all)]
    for backend, reference, theirs, mine, mine_all in results:
        print(f"{backend:8} {reference:32} {theirs:10,.0f} tok/s")
        print(f"{'':8} {'ours (assistant targets)':32} {mine:10,.0f} tok/s   ratio {mine / theirs:.2f}x")
        print(f"{'':8} {'ours (all targets)':32} {mine_all:10,.0f} tok/s   ratio {mine_all / theirs:.2f}x")


if __name__ == "__main__":
    main()
