"""Scoring benchmark: our PyTorch scorer vs the model-card reference, and our MLX scorer vs PyTorch.

A Qwen3-0.6B-architecture model (the real config sizes, random weights, made offline) scores
query/document pairs built from CISI abstracts (../shared/data/cisi) cut to a realistic mix of
lengths. Each method runs in its own subprocess so peak memory (max RSS) is its own. Reports
pairs/s, real tokens/s, padding efficiency, peak memory and max score difference, then ratios.

    python bench/score_bench.py                 # full 0.6B sizes, 48 pairs (minutes on 2 CPU cores)
    python bench/score_bench.py --layers 4 --pairs 96    # quicker, same widths
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CISI = ROOT.parent / "shared" / "data" / "cisi"
QUERIES = ["library classification schemes", "evaluation of information retrieval systems",
           "citation analysis of scientific literature", "automatic indexing and abstracting",
           "information needs of social scientists", "cost of library services"]


def model_dir(layers: int) -> Path:
    from backends.embedded import TinyQwen3Spec, cache_root, write_tiny_qwen3

    spec = TinyQwen3Spec(hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers, num_attention_heads=16,
                         num_key_value_heads=8, head_dim=128, seed=0, init_std=0.02, embed_std=0.02,
                         vocab_size=151936)
    dest = cache_root() / "bench" / f"qwen3-0.6b-arch-{layers}l-{spec.digest()}"
    if not (dest / "model.safetensors").is_file():
        print(f"making a random-weight Qwen3-0.6B-architecture model ({layers} layers) in {dest} ...", flush=True)
        write_tiny_qwen3(dest, spec)
    return dest


def workload(pairs: int, seed: int = 0, n_queries: int = 2) -> list[tuple[str, list[str]]]:
    """Queries, each with a candidate list of CISI documents cut to lengths from a sentence to a
    full abstract (the reranking shape: one query, many candidates of mixed length)."""
    docs = [" ".join(filter(None, (d.get("title"), d.get("text")))) for d in map(json.loads, (CISI / "corpus.jsonl").open())]
    rng = np.random.default_rng(seed)
    per_query = max(1, pairs // n_queries)
    work = []
    for query in QUERIES[:n_queries]:
        chosen = []
        for doc in rng.choice(docs, size=per_query, replace=False):
            words = doc.split()
            chosen.append(" ".join(words[: int(rng.integers(8, max(9, len(words) + 1)))]))
        work.append((query, chosen))
    return work


def run_method(method: str, folder: Path, pairs: int, limit: int | None = None) -> dict:
    """Score the workload with one method in this process; returns logits and timings."""
    from backends.scorer import Reranker, ScorerSettings

    backend = "mlx" if method == "mlx" else "torch"
    reranker = Reranker.load(ScorerSettings(model=str(folder), backend=backend, dtype="float32", max_length=8192,
                                            token_budget=8192, max_batch_size=32))
    work = workload(pairs)
    if limit is not None:  # a prefix of the same workload: first `limit` pairs, query by query
        work = [(q, docs[: max(0, limit - i * len(docs))]) for i, (q, docs) in enumerate(work)]
        work = [(q, docs) for q, docs in work if docs]
    reranker.score(work[0][0], work[0][1][:2])  # warm-up: kernels, allocator
    logits, real, padded, seconds, n = [], 0, 0, 0.0, 0
    for query, docs in work:
        if method == "reference":
            from backends.reference import model_card_logodds

            rows = reranker.builder.build(query, docs)
            start = time.perf_counter()
            out = model_card_logodds(reranker.engine.model, reranker.tokenizer, query, docs,
                                     reranker.settings.instruction, 8192, batch_size=8)
            seconds += time.perf_counter() - start
            lengths = [len(r) for r in rows]
            real += sum(lengths)
            padded += sum(max(lengths[i:i + 8]) * len(lengths[i:i + 8]) for i in range(0, len(lengths), 8))
        else:
            out = np.array([s.logit for s in reranker.score(query, docs)])
            stats = reranker.last_stats
            seconds += stats.seconds
            real += stats.real_tokens
            padded += stats.padded_tokens
        logits.extend(float(x) for x in out)
        n += len(docs)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "pairs": n, "seconds": seconds, "pairs_s": n / seconds, "tokens_s": real / seconds,
            "padding_eff": real / padded, "peak_mb": peak_mb, "logits": logits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28, help="decoder layers (Qwen3-0.6B has 28)")
    parser.add_argument("--pairs", type=int, default=48, help="query/document pairs in the workload")
    parser.add_argument("--methods", default="reference,torch,mlx")
    parser.add_argument("--mlx-pairs", type=int, default=12,
                        help="pairs for the MLX leg (MLX's Linux CPU backend is far slower than PyTorch's)")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = model_dir(args.layers)
    if args._one:
        limit = args.mlx_pairs if args._one == "mlx" else None
        print(json.dumps(run_method(args._one, folder, args.pairs, limit)))
        return
    results = {}
    for method in args.methods.split(","):
        print(f"running {method} ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--layers", str(args.layers), "--pairs", str(args.pairs),
                               "--mlx-pairs", str(args.mlx_pairs), "--_one", method], capture_output=True, text=True, check=True)
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    torch_logits = np.array(results["torch"]["logits"]) if "torch" in results else None
    print(f"\nQwen3-0.6B architecture, {args.layers} layers, fp32 CPU, {results[next(iter(results))]['pairs']} pairs")
    print(f"{'method':<10} {'pairs':>5} {'pairs/s':>9} {'tokens/s':>10} {'pad eff':>8} {'peak MB':>9} {'max |Δp| vs torch':>18}")
    for name, r in results.items():
        diff = ""
        if torch_logits is not None and name != "torch":
            p = 1 / (1 + np.exp(-np.array(r["logits"])))
            ref = 1 / (1 + np.exp(-torch_logits[: len(p)]))
            diff = f"{np.max(np.abs(p - ref)):.2e}"
        print(f"{name:<10} {r['pairs']:>5} {r['pairs_s']:>9.2f} {r['tokens_s']:>10.1f} {r['padding_eff']:>8.2f} {r['peak_mb']:>9.0f} {diff:>18}")
    if "reference" in results and "torch" in results:
        ratio = results["torch"]["pairs_s"] / results["reference"]["pairs_s"]
        print(f"\ntorch / reference pairs/s: {ratio:.2f}x (target >= 1.5x) {'PASS' if ratio >= 1.5 else 'FAIL'}")
        print(f"torch / reference peak memory: {results['torch']['peak_mb'] / results['reference']['peak_mb']:.2f}x")
    if "mlx" in results and "torch" in results:
        print(f"mlx / torch pairs/s: {results['mlx']['pairs_s'] / results['torch']['pairs_s']:.2f}x")


if __name__ == "__main__":
    main()
