"""Scoring benchmark: our PyTorch scorer vs the model-card reference in fp32 and bf16, and bf16's agreement.

A Qwen3-0.6B-architecture model (the real config sizes, random weights, made offline) scores
query/document pairs built from CISI abstracts (../shared/data/cisi) in two shapes: `full` (whole
abstracts, ~300 tokens) and `mixed` (cut to lengths from a sentence to a whole abstract). Each
(shape, dtype, method) runs in its own subprocess, reference and ours alternating, so peak memory
(max RSS) is its own and machine load hits both alike. The fp32 and bf16 square-matmul peaks are
measured in the same run, before and after, and the best is kept.

FLOPs per pair (what the % of peak counts, the same for both methods): 2 x body matmul parameters x
row tokens + causal attention 2 x layers x heads x head_dim x tokens^2 (QK^T and AV, half the square).
The body is the decoder layers' q/k/v/o/gate/up/down weights (0.44 G parameters at 28 layers: 0.88
GFLOP per token); the embedding lookup is free, our yes/no head is 2 rows. The reference also spends
2 x vocab x hidden FLOPs per token on full-vocabulary logits (not counted), and recomputes the
shared prompt prefix per document, which ours runs once per query (counted as if recomputed).

Agreement: bf16 vs fp32 of our scorer on the benchmark set and on CISI dev queries (BM25 top
candidates), with the 0.6B-shape model and the embedded model: queries ranked identically, max |Δp|,
min top-10 overlap, and whether every reordered pair is a near-tie (fp32 |Δp| <= 0.02).

    python bench/score_bench.py --layers 4                       # both shapes, fp32 + bf16
    python bench/score_bench.py --layers 28 --shapes full --dtypes float32,bfloat16
    python bench/score_bench.py --layers 4 --dtypes float32 --mlx-pairs 12   # and our MLX scorer (fp32)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CISI = ROOT.parent / "shared" / "data" / "cisi"
QUERIES = ["library classification schemes", "evaluation of information retrieval systems",
           "citation analysis of scientific literature", "automatic indexing and abstracting"]
HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, HEAD_DIM = 1024, 3072, 16, 8, 128


def model_dir(layers: int) -> Path:
    from backends.embedded import TinyQwen3Spec, cache_root, write_tiny_qwen3

    spec = TinyQwen3Spec(hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=layers,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, seed=0,
                         init_std=0.02, embed_std=0.02, vocab_size=151936)
    dest = cache_root() / "bench" / f"qwen3-0.6b-arch-{layers}l-{spec.digest()}"
    if not (dest / "model.safetensors").is_file():
        print(f"making a random-weight Qwen3-0.6B-architecture model ({layers} layers) in {dest} ...", flush=True)
        write_tiny_qwen3(dest, spec)
    return dest


def body_params(layers: int) -> int:
    """Matmul parameters of the decoder layers (q, k, v, o, gate, up, down)."""
    attention = HIDDEN * HEADS * HEAD_DIM * 2 + HIDDEN * KV_HEADS * HEAD_DIM * 2
    return layers * (attention + 3 * HIDDEN * INTERMEDIATE)


def pair_flops(tokens: int, layers: int) -> float:
    """FLOPs of one (query, document) row of `tokens` tokens through the body (see the module docstring)."""
    return 2.0 * body_params(layers) * tokens + 2.0 * layers * HEADS * HEAD_DIM * tokens * tokens


def corpus_docs() -> list[str]:
    return [" ".join(filter(None, (d.get("title"), d.get("text")))) for d in map(json.loads, (CISI / "corpus.jsonl").open())]


def workload(shape: str, per_query: int, n_queries: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Queries, each with CISI candidates: whole abstracts (`full`) or cut to mixed lengths (`mixed`)."""
    docs = [d for d in corpus_docs() if len(d.split()) >= 150]  # full abstracts: ~300 tokens with the prompt
    rng = np.random.default_rng(seed)
    work = []
    for query in QUERIES[:n_queries]:
        chosen = []
        for doc in rng.choice(docs, size=per_query, replace=False):
            words = doc.split()
            chosen.append(doc if shape == "full" else " ".join(words[: int(rng.integers(8, len(words) + 1))]))
        work.append((query, chosen))
    return work


def run_method(method: str, folder: Path, layers: int, shape: str, dtype: str, per_query: int, n_queries: int) -> dict[str, Any]:
    """Score the workload with one method in this process; returns logits, timings and FLOPs."""
    from backends.scorer import Reranker
    from backends.settings import ScorerSettings

    backend, device = ("mlx", "cpu") if method == "mlx" else ("torch", "cpu")
    reranker = Reranker.load(ScorerSettings(model=str(folder), backend=backend, device=device, dtype=dtype,
                                            max_length=8192, token_budget=8192, max_batch_size=32))
    work = workload(shape, per_query, n_queries)
    reranker.score(work[0][0], work[0][1][:2])  # warm-up: kernels, allocator
    logits: list[float] = []
    real, flops, seconds, n = 0, 0.0, 0.0, 0
    for query, docs in work:
        lengths = [len(r) for r in reranker.builder.build(query, docs)]
        start = time.perf_counter()
        if method == "reference":
            from backends.reference import model_card_logodds

            out = model_card_logodds(reranker.engine.model, reranker.tokenizer, query, docs,
                                     reranker.settings.instruction, 8192, batch_size=8)
        else:
            out = np.array([s.logit for s in reranker.score(query, docs)])
        seconds += time.perf_counter() - start
        logits.extend(float(x) for x in out)
        real += sum(lengths)
        flops += sum(pair_flops(t, layers) for t in lengths)
        n += len(docs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pairs": n, "seconds": seconds, "pairs_s": n / seconds, "tokens_s": real / seconds,
            "tokens_per_pair": real / n, "gflop_s": flops / seconds / 1e9, "peak_mb": peak_mb, "logits": logits}


def matmul_peaks(size: int = 2048, repeats: int = 8) -> dict[str, float]:
    """GFLOP/s of a square fp32 and bf16 matmul on this process's threads (best of a few timings)."""
    import torch

    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        peaks[name] = 2.0 * size**3 / best / 1e9
    return peaks


def ranking_agreement(exact: list[np.ndarray], fast: list[np.ndarray], tie: float = 0.02) -> dict[str, Any]:
    """How bf16 probabilities rank each query's candidates against fp32's."""
    same, overlaps, near_ties, worst = 0, [], True, 0.0
    for e, f in zip(exact, fast):
        same += list(np.argsort(-e, kind="stable")) == list(np.argsort(-f, kind="stable"))
        k = min(10, len(e))
        overlaps.append(len(set(np.argsort(-e)[:k]) & set(np.argsort(-f)[:k])) / k)
        swapped = [(i, j) for i, j in combinations(range(len(e)), 2) if (e[i] - e[j]) * (f[i] - f[j]) < 0]
        near_ties &= all(abs(e[i] - e[j]) <= tie for i, j in swapped)
        worst = max(worst, float(np.max(np.abs(e - f))))
    return {"queries": len(exact), "same_ranking": same, "max_dp": worst, "min_top10": min(overlaps),
            "reorders_near_ties": near_ties}


def dev_agreement(folder: Path, queries: int, candidates: int, words: int) -> dict[str, Any]:
    """bf16 vs fp32 of our scorer on CISI dev queries' BM25 candidates (cut to `words` words)."""
    from backends.scorer import Reranker
    from backends.settings import ScorerSettings
    from trainers.data_beir import load_beir
    from trainers.splits import split_dataset

    dev = split_dataset(load_beir(CISI, first_stage_k=candidates).examples).dev[:queries]
    work = [(ex.query, [" ".join(t.split()[:words]) for t in ex.candidates().docs[:candidates]]) for ex in dev]
    probs: dict[str, list[np.ndarray]] = {}
    for dtype in ("float32", "bfloat16"):
        reranker = Reranker.load(ScorerSettings(model=str(folder), backend="torch", device="cpu", dtype=dtype))
        probs[dtype] = [np.array([s.probability for s in reranker.score(q, docs)]) for q, docs in work]
        reranker.close()
    return ranking_agreement(probs["float32"], probs["bfloat16"])


def sub(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--layers", str(args.layers), "--per-query", str(args.per_query),
               "--queries", str(args.queries), *extra]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28, help="decoder layers (Qwen3-0.6B has 28)")
    parser.add_argument("--queries", type=int, default=2)
    parser.add_argument("--per-query", type=int, default=12, help="candidate documents per query")
    parser.add_argument("--shapes", default="full,mixed")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--dev-queries", type=int, default=4, help="CISI dev queries for the 0.6B-shape agreement")
    parser.add_argument("--mlx-pairs", type=int, default=0,
                        help="also our MLX scorer (fp32) on this many pairs (0: not; MLX's Linux CPU path is slow)")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = model_dir(args.layers)
    if args._one:
        kind, *rest = args._one.split(":")
        if kind == "peaks":
            print(json.dumps(matmul_peaks()))
        elif kind == "dev":
            target = folder if rest[0] == "bench" else Path(str(resolve_embedded()))
            print(json.dumps(dev_agreement(target, int(rest[1]), int(rest[2]), int(rest[3]))))
        else:
            per_query = int(rest[2]) if len(rest) > 2 else args.per_query
            print(json.dumps(run_method(kind, folder, args.layers, rest[0], rest[1], per_query, args.queries)))
        return
    peaks = [sub(args, "--_one", "peaks")]
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    for shape in args.shapes.split(","):
        for dtype in args.dtypes.split(","):
            for method in ("reference", "ours"):
                print(f"running {method} {shape} {dtype} ...", flush=True)
                results[shape, dtype, method] = sub(args, "--_one", f"{method}:{shape}:{dtype}")
        if args.mlx_pairs:
            print(f"running mlx {shape} float32 ...", flush=True)
            per_query = max(1, args.mlx_pairs // args.queries)
            results[shape, "float32", "mlx"] = sub(args, "--_one", f"mlx:{shape}:float32:{per_query}")
    print("running dev agreement ...", flush=True)
    dev = {"0.6B shape": sub(args, "--_one", f"dev:bench:{args.dev_queries}:10:100"),
           "embedded": sub(args, "--_one", "dev:embedded:100:30:10000")}
    peaks.append(sub(args, "--_one", "peaks"))
    peak = {d: max(p[d] for p in peaks) for d in ("float32", "bfloat16")}
    report(args, results, peak, dev)


def resolve_embedded() -> Path:
    from backends.models import resolve_model
    from backends.settings import EMBEDDED_RERANKER

    return resolve_model(EMBEDDED_RERANKER)


def report(args: argparse.Namespace, results: dict[tuple[str, str, str], dict[str, Any]], peak: dict[str, float],
           dev: dict[str, dict[str, Any]]) -> None:
    print(f"\nQwen3-0.6B widths, {args.layers} layers, random weights, CPU; {args.queries} queries x {args.per_query} "
          f"CISI documents; body {body_params(args.layers) / 1e6:.0f} M matmul parameters "
          f"({2 * body_params(args.layers) / 1e9:.3f} GFLOP/token + attention)")
    print(f"matmul peak (2048^2, best of the run): fp32 {peak['float32']:.0f} GFLOP/s, bf16 {peak['bfloat16']:.0f} GFLOP/s "
          f"({peak['bfloat16'] / peak['float32']:.1f}x)")
    print(f"| shape | dtype | method | tokens/pair | pairs/s | tokens/s | GFLOP/s | % of its dtype's peak | peak RSS MB | pairs/s vs ref (mlx: vs ours) | max |Δp| vs ref |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (shape, dtype, method), r in results.items():
        ref = results.get((shape, dtype, "ours" if method == "mlx" else "reference"))  # MLX: against our PyTorch
        ratio = f"{r['pairs_s'] / ref['pairs_s']:.2f}x" if method != "reference" and ref else ""
        dp = ""
        if method != "reference" and ref and r["pairs"] == ref["pairs"]:
            dp = f"{np.max(np.abs(sigmoid(r['logits']) - sigmoid(ref['logits']))):.1e}"
        print(f"| {shape} | {dtype} | {method} | {r['tokens_per_pair']:.0f} | {r['pairs_s']:.2f} | {r['tokens_s']:.0f} | "
              f"{r['gflop_s']:.0f} | {100 * r['gflop_s'] / peak[dtype]:.0f}% | {r['peak_mb']:.0f} | {ratio} | {dp} |")
    for shape in args.shapes.split(","):
        fp32, bf16 = results.get((shape, "float32", "ours")), results.get((shape, "bfloat16", "ours"))
        if fp32 and bf16:
            split = np.cumsum([0] + [args.per_query] * args.queries)
            exact, fast = sigmoid(fp32["logits"]), sigmoid(bf16["logits"])
            agree = ranking_agreement([exact[a:b] for a, b in zip(split, split[1:])],
                                      [fast[a:b] for a, b in zip(split, split[1:])])
            print(f"{shape}: ours bf16 / ours fp32 pairs/s {bf16['pairs_s'] / fp32['pairs_s']:.2f}x; agreement {agree}")
    for name, agree in dev.items():
        print(f"CISI dev queries, {name} model: {agree}")


def sigmoid(logits: list[float]) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(logits))))


if __name__ == "__main__":
    main()
