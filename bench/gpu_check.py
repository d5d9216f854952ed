"""GPU check at Qwen3-0.6B sizes (random weights, made offline): bf16 scoring pairs/s and MFU, and
training tokens/s and peak memory at fp32/bf16, with and without gradient checkpointing, on 1 and N
processes (N = the GPUs present; data parallel through torchrun, as `--run --nproc N` runs it).

Unattended and bounded (< 8 min on one H100/H200-class GPU): few steps per cell, each cell its own
process (so peak memory is its own and a failing cell is a row, not the end). Writes a Markdown
table to `--out` (default gpu_check.md). Without CUDA it says so and exits 0.

    python bench/gpu_check.py --out $OUT/gpu_check.md          # (bench/gpu_check.sh calls this)
    python bench/gpu_check.py --layers 4 --steps 3              # a quick look, same widths

Training cells set `[train] precision` and `[train] gradient_checkpointing` in the generated
config.toml; a build without those settings says so in the table instead of measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Dense bf16 tensor-core peaks (FLOP/s) for MFU, by device name; unknown devices get no MFU.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
             "RTX 4090": 165e12}


def peak_flops(name: str) -> float | None:
    return next((flops for key, flops in PEAK_BF16.items() if key in name), None)


def forward_flops_per_token(folder: Path, tokens_in_row: float) -> float:
    """2 × non-embedding parameters + attention (2 · 2 · layers · heads · head_dim · context / 2, causal)."""
    cfg = json.loads((folder / "config.json").read_text())
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv, head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    attn = hidden * head_dim * (2 * heads + 2 * kv)  # q, o and k, v projections
    mlp = 3 * hidden * inter
    return 2 * layers * (attn + mlp) + 2 * layers * heads * head_dim * tokens_in_row


def score_cell(folder: Path, pairs: int) -> dict[str, object]:
    """bf16 scoring with the product's scorer on the GPU: pairs/s, tokens/s, MFU."""
    import torch

    from backends.scorer import Reranker, ScorerSettings
    from score_bench import workload

    reranker = Reranker.load(ScorerSettings(model=str(folder), backend="torch", device="cuda", dtype="bfloat16",
                                            max_length=8192, token_budget=65536, max_batch_size=128))
    work = workload(pairs, n_queries=4)
    reranker.score(work[0][0], work[0][1][:8])  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    seconds, real, n = 0.0, 0, 0
    for query, docs in work:
        reranker.score(query, docs)
        stats = reranker.last_stats
        seconds, real, n = seconds + stats.seconds, real + stats.real_tokens, n + len(docs)
    mean_len = real / n
    flops = forward_flops_per_token(folder, mean_len / 2) * real
    peak = peak_flops(torch.cuda.get_device_name(0))
    return {"pairs": n, "pairs_s": n / seconds, "tokens_s": real / seconds, "mean_tokens": mean_len,
            "mfu": flops / seconds / peak if peak else None}


def write_config(path: Path, folder: Path, precision: str, checkpointing: bool, steps: int) -> Path:
    """A training config: the 0.6B-size model, the bundled demo data, `steps` steps, no evaluation."""
    path.write_text("\n".join([
        "[model]", 'backend = "torch"', f'base = "{folder}"', 'device = "cuda"',
        "[store]", f'path = "{path.parent / "db.sqlite"}"', f'runs_root = "{path.parent / "runs"}"',
        "[train]", f"max_steps = {steps}", f"eval_every = {steps * 10}", f"checkpoint_every = {steps * 10}",
        "batch_size = 16", "group_size = 8", "max_length = 512", "auto_promote = false",
        f'precision = "{precision}"', f"gradient_checkpointing = {str(checkpointing).lower()}", ""]))
    return path


def train_cell(config: Path, warmup: int) -> dict[str, object] | None:
    """Train the config's steps as this rank (torchrun's or one process); rank 0 returns the figures."""
    import torch

    from ragweld_tui.config import load_config
    from trainers.distributed import join_world, leave_world
    from trainers.world import local_device
    from trainers.plan import prepare_plan

    cfg = load_config(str(config))
    plan = prepare_plan(cfg)
    world = join_world("torch", plan.device, cfg.train.collective_timeout_s)
    plan.device = local_device(plan.device, world)
    engine = plan.make_engine()
    engine.use_world(world)
    tokens, seconds = 0, 0.0
    for step in range(cfg.train.max_steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        stats = engine.train_step(plan.batches_for(step))
        torch.cuda.synchronize()
        if step >= warmup:
            tokens, seconds = tokens + stats.tokens, seconds + time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30
    engine.close()
    leave_world(world)
    return {"tokens_s": tokens / seconds, "peak_gib": peak} if world.is_main else None


def run_child(command: list[str], timeout: float) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return {"error": tail[:160]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.md", help="where the Markdown table goes")
    parser.add_argument("--layers", type=int, default=28, help="decoder layers (Qwen3-0.6B has 28)")
    parser.add_argument("--steps", type=int, default=8, help="training steps per cell (the first 2 are warm-up)")
    parser.add_argument("--pairs", type=int, default=512, help="scoring pairs")
    parser.add_argument("--_score", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured (run it on a machine with NVIDIA GPUs)")
        return 0
    from score_bench import model_dir

    folder = model_dir(args.layers)
    if args._score:
        print(json.dumps(score_cell(folder, args.pairs)))
        return 0
    if args._train:
        result = train_cell(Path(args._train), warmup=min(2, args.steps - 1))
        if result is not None:
            print(json.dumps(result))
        return 0
    gpus, name = torch.cuda.device_count(), torch.cuda.get_device_name(0)
    started = time.monotonic()
    me = [sys.executable, str(Path(__file__).resolve()), "--layers", str(args.layers), "--steps", str(args.steps)]
    lines = [f"# GPU check: Qwen3-0.6B sizes ({args.layers} layers, random weights) on {gpus} × {name}", ""]
    score = run_child([*me, "--pairs", str(args.pairs), "--_score"], 240)
    lines += ["## Scoring (bf16, product scorer)", "", "| pairs | pairs/s | tokens/s | mean tokens | MFU |",
              "| --- | --- | --- | --- | --- |"]
    if "error" in score:
        lines.append(f"| failed: {score['error']} | | | | |")
    else:
        mfu = f"{float(score['mfu']):.1%}" if score.get("mfu") is not None else "n/a (unknown peak)"  # type: ignore[arg-type]
        lines.append(f"| {score['pairs']} | {float(score['pairs_s']):,.1f} | {float(score['tokens_s']):,.0f} | "  # type: ignore[arg-type]
                     f"{float(score['mean_tokens']):.0f} | {mfu} |")  # type: ignore[arg-type]
    lines += ["", f"## Training ({args.steps} steps of 16 groups × 8 docs, max_length 512; tokens/s over all "
              "processes after 2 warm-up steps; peak memory of rank 0)", "",
              "| processes | precision | checkpointing | tokens/s | peak GiB |", "| --- | --- | --- | --- | --- |"]
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check-{os.getpid()}"
    for nproc in sorted({1, gpus}):
        for precision in ("fp32", "bf16"):
            for checkpointing in (False, True):
                cell = work / f"n{nproc}-{precision}-{int(checkpointing)}"
                cell.mkdir(parents=True, exist_ok=True)
                config = write_config(cell / "config.toml", folder, precision, checkpointing, args.steps)
                launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={nproc}", "--max-restarts=0"] if nproc > 1 else [sys.executable])
                result = run_child([*launcher, *me[1:], "--_train", str(config)], 150)
                figures = (f"failed: {result['error']} | |" if "error" in result else
                           f"{float(result['tokens_s']):,.0f} | {float(result['peak_gib']):.2f}")  # type: ignore[arg-type]
                lines.append(f"| {nproc} | {precision} | {'on' if checkpointing else 'off'} | {figures} |")
                print(lines[-1], flush=True)
    lines += ["", f"(measured in {time.monotonic() - started:.0f} s)"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
