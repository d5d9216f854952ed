"""HTTP serving benchmark: `ragweld-tui serve` under N concurrent loopback clients vs in-process `Reranker.score`.

What it measures: the cost of putting the reranker behind HTTP. The same deterministic sequence of
rerank requests (one query × `--docs` full-length documents, CISI from ../shared/data/cisi when present,
else generated text of similar length) is scored two ways:

- reference: `backends.scorer.Reranker.score(query, docs)` called serially in this process, the
  fastest a caller with the model in its own process gets (tokenizing included, as the server does);
- serve: a `ragweld-tui serve --port 0` subprocess (same model, backend and settings, a temporary
  store, config and feedback file, no adapter unless `--adapter`) hit by N concurrent httpx clients
  posting Cohere-shape `POST /v1/rerank` bodies, for N in `--clients`.

Every leg runs for `--seconds` or `--max-requests` requests, whichever ends first. The reference runs
only while no server process exists: once before the server starts and once after it stopped; the
faster of the two windows is the denominator (other jobs on a shared machine only ever slow a window,
so this never flatters the ratio). Both sides use torch's default thread count (OMP_NUM_THREADS in the
environment reaches both, the server inheriting this process's environment).

How to read the ratio: serve pairs/s ÷ in-process pairs/s. At 1 client it shows the per-request HTTP
overhead (JSON, the event loop, thread hops); with more clients the server's batching should hide that
overhead, and at saturation (the row with the most pairs/s) the target is ≥ 0.9. On a small machine
the clients share the cores with the server, and with a tiny model the model's own work is small, so
the fixed per-request cost weighs more than it would with a real model. "mean batch" is the mean over
answered requests of `meta.batch.requests` (how many requests shared that request's scoring batch).

    .venv/bin/python bench/serve_bench.py [--seconds 10] [--clients 1,4,16] [--docs 10] [--max-requests 2000] [--out FILE]
    .venv/bin/python bench/serve_bench.py --quick      # smoke run: 3 s, clients 1,4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CISI = ROOT.parent / "shared" / "data" / "cisi"
LISTENING = re.compile(r"listening on (http://\S+)")
CYCLE = 512  # distinct requests in the sequence; it repeats after that (every CISI document appears)
MAX_CLIENTS = 256
MAX_SECONDS = 600.0
WARMUP = 3  # untimed requests before each leg (kernels, allocator, keep-alive connections)


@dataclass(frozen=True)
class Workload:
    """The request sequence both sides score, and the Cohere-shape bodies the clients post."""

    requests: list[tuple[str, list[str]]]
    bodies: list[bytes]
    source: str

    def request(self, i: int) -> tuple[str, list[str]]:
        return self.requests[i % len(self.requests)]

    def body(self, i: int) -> bytes:
        return self.bodies[i % len(self.bodies)]


@dataclass
class Leg:
    """One measured window: answered requests, their latencies and what went wrong."""

    requests: int = 0
    pairs: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0
    busy: int = 0
    first_error: str = ""
    cpu_seconds: float = 0.0  # CPU time of this (the bench) process during the window

    @property
    def pairs_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    def ms(self, q: float) -> float:
        """Nearest-rank percentile of the request latencies, in ms (nan when none)."""
        if not self.latencies:
            return float("nan")
        return float(np.percentile(self.latencies, q, method="inverted_cdf")) * 1000


def texts() -> tuple[list[str], list[str], str]:
    """CISI queries and full documents (title + text), else generated text of similar length."""
    corpus, queries = CISI / "corpus.jsonl", CISI / "queries.jsonl"
    if corpus.is_file() and queries.is_file():
        with corpus.open() as handle:
            docs = [" ".join(filter(None, (d.get("title"), d.get("text")))) for d in map(json.loads, handle)]
        with queries.open() as handle:
            qs = [d["text"] for d in map(json.loads, handle) if d.get("text")]
        return qs, docs, f"CISI ({len(qs)} queries, {len(docs)} documents, full length) from {CISI}"
    rng = random.Random(0)
    words = [rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") + rng.choice("lnrst") + rng.choice("aeiouy")
             for _ in range(2000)]
    docs = [" ".join(rng.choices(words, k=rng.randint(150, 230))) + "." for _ in range(500)]
    qs = [" ".join(rng.choices(words, k=rng.randint(6, 20))) + "?" for _ in range(50)]
    return qs, docs, f"generated text ({len(qs)} queries, {len(docs)} documents of 150-230 words; {CISI} not found)"


def make_workload(docs_per_request: int) -> Workload:
    """Request i: query i mod Q with the next `docs_per_request` documents, cycling deterministically."""
    queries, docs, source = texts()
    requests = [(queries[i % len(queries)], [docs[(i * docs_per_request + j) % len(docs)]
                                             for j in range(docs_per_request)]) for i in range(CYCLE)]
    bodies = [json.dumps({"query": q, "documents": d}).encode() for q, d in requests]
    return Workload(requests, bodies, source)


def write_config(folder: Path, model: str, backend: str, adapter: Path | None) -> Path:
    """The server's config: its own store and feedback file; no adapter unless one is given (the
    active path then names a folder that does not exist, so the user's real adapter is never used)."""
    active = adapter.resolve() if adapter is not None else folder / "no-active-adapter"
    config = folder / "config.toml"
    config.write_text(f"""
[model]
base = {json.dumps(model)}
backend = "{backend}"

[serving]
active_adapter = {json.dumps(str(active))}

[store]
path = {json.dumps(str(folder / 'ragweld.sqlite'))}

[serve]
feedback_path = {json.dumps(str(folder / 'feedback.jsonl'))}
""")
    return config


class Server:
    """`ragweld-tui serve --port 0` in its own process group; `url` once it printed its listening line."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.log_path = config.parent / "serve.log"
        self._log = self.log_path.open("w")
        self._ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragweld_tui.cli", "--config", str(config), "serve", "--port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            match = LISTENING.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._ready.set()

    def wait_ready(self, timeout: float = 300.0) -> str:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._log.flush()
                raise SystemExit(f"the server did not start (exit {self.proc.poll()}):\n"
                                 f"{self.log_path.read_text()[-4000:]}")
        return self.url

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, then SIGKILL on timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text()[-chars:] if self.log_path.is_file() else ""


def reference(reranker: Any, work: Workload, seconds: float, max_requests: int) -> Leg:
    """Serial in-process `Reranker.score` over the request sequence (the reranker stays loaded)."""
    for i in range(WARMUP):
        reranker.score(*work.request(i))
    leg = Leg()
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while leg.requests < max_requests and time.perf_counter() < deadline:
        query, docs = work.request(leg.requests)
        t0 = time.perf_counter()
        reranker.score(query, docs)
        leg.latencies.append(time.perf_counter() - t0)
        leg.requests += 1
        leg.pairs += len(docs)
        leg.tokens += reranker.last_stats.real_tokens
    leg.seconds = time.perf_counter() - start
    leg.cpu_seconds = time.process_time() - cpu
    return leg


async def clients(url: str, work: Workload, n: int, seconds: float, max_requests: int) -> Leg:
    """N concurrent clients, each its own httpx.AsyncClient (one keep-alive connection), taking the
    next request of the shared sequence until the time or the request count is spent."""
    import httpx

    leg = Leg()
    headers = {"content-type": "application/json"}
    next_index = 0
    start = deadline = 0.0

    async def post(http: httpx.AsyncClient, body: bytes) -> None:
        t0 = time.perf_counter()
        try:
            response = await http.post("/v1/rerank", content=body, headers=headers)
        except httpx.HTTPError as exc:
            leg.errors += 1
            leg.first_error = leg.first_error or f"{type(exc).__name__}: {exc}"
            return
        elapsed = time.perf_counter() - t0
        if response.status_code == 200:
            data = response.json()
            leg.latencies.append(elapsed)
            leg.requests += 1
            leg.pairs += len(data["results"])
            leg.batch_sizes.append(int(data["meta"]["batch"]["requests"]))
        elif response.status_code == 503:
            leg.busy += 1
            await asyncio.sleep(0.05)  # the server said it is full; do not spin on it
        else:
            leg.errors += 1
            leg.first_error = leg.first_error or f"HTTP {response.status_code}: {response.text[:300]}"

    async def loop(http: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < max_requests and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            await post(http, work.body(i))

    timeout = httpx.Timeout(300.0)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) for _ in range(n)]
    try:
        await asyncio.gather(*(http.post("/v1/rerank", content=work.body(i), headers=headers)
                               for i, http in enumerate(pool)))  # warm-up, untimed: opens the connections
        cpu = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(loop(http) for http in pool))
        leg.seconds = time.perf_counter() - start
        leg.cpu_seconds = time.process_time() - cpu
    finally:
        await asyncio.gather(*(http.aclose() for http in pool), return_exceptions=True)
    return leg


def plural(n: int) -> str:
    return f"{n} client" if n == 1 else f"{n} clients"


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = ["| clients | requests | serve pairs/s | in-process pairs/s | ratio (median of rounds) | p50 ms | p95 ms "
             "| in-process p50 / p95 ms | mean batch | errors |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        leg, ref = row.pooled(row.serve), row.pooled(row.refs)
        batch = float(np.mean(leg.batch_sizes)) if leg.batch_sizes else float("nan")
        errors = f"{leg.errors}" + (f" (+{leg.busy} busy)" if leg.busy else "")
        lines.append(f"| {row.clients} | {leg.requests} | {fmt(leg.pairs_s)} | {fmt(ref.pairs_s)} | {fmt(row.ratio(), 2)} "
                     f"({', '.join(fmt(r, 2) for r in row.ratios())}) | {fmt(leg.ms(50))} | {fmt(leg.ms(95))} | "
                     f"{fmt(ref.ms(50))} / {fmt(ref.ms(95))} | {fmt(batch, 2)} | {errors} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="time cap of each leg (default 10)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent client counts, comma-separated")
    parser.add_argument("--docs", type=int, default=10, help="documents per request (default 10)")
    parser.add_argument("--max-requests", type=int, default=2000, help="request cap of each leg (default 2000)")
    parser.add_argument("--model", default="embedded:tiny-qwen3-reranker", help="model folder (default: embedded tiny)")
    parser.add_argument("--backend", choices=("torch", "mlx"), default="torch")
    parser.add_argument("--adapter", type=Path, help="adapter folder to serve on both sides (default: none)")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) to this file")
    parser.add_argument("--layers", type=int, help="instead of --model: a random-weight model of Qwen3-0.6B widths "
                        "with this many layers (as bench/score_bench.py), so the model's work is a real model's")
    parser.add_argument("--rounds", type=int, default=3, help="(reference, serve) rounds per client count (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per leg, clients 1,4, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients, args.rounds = 2.0, "1,4", 2
    try:
        args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--clients {args.clients}: comma-separated integers, e.g. 1,4,16")
    if not args.client_counts or not all(1 <= c <= MAX_CLIENTS for c in args.client_counts):
        parser.error(f"--clients: each count must be between 1 and {MAX_CLIENTS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if args.docs < 1 or args.max_requests < 1 or args.rounds < 1 or (args.layers is not None and args.layers < 1):
        parser.error("--docs, --max-requests, --rounds and --layers must be at least 1")
    if args.adapter is not None and not args.adapter.is_dir():
        parser.error(f"--adapter {args.adapter}: not a folder")
    return args


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C: the finally blocks stop the server


@dataclass
class Row:
    """One client count: its serve legs and the reference legs measured right before each of them."""

    clients: int
    serve: list[Leg] = field(default_factory=list)
    refs: list[Leg] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [s.pairs_s / r.pairs_s for s, r in zip(self.serve, self.refs) if r.pairs_s]

    def ratio(self) -> float:
        """The median over rounds of serve ÷ the reference leg just before it (drift cancels out)."""
        return float(np.median(self.ratios())) if self.ratios() else float("nan")

    def pooled(self, legs: list[Leg]) -> Leg:
        leg = Leg()
        for part in legs:
            leg.requests += part.requests
            leg.pairs += part.pairs
            leg.seconds += part.seconds
            leg.tokens += part.tokens
            leg.errors += part.errors
            leg.busy += part.busy
            leg.cpu_seconds += part.cpu_seconds
            leg.latencies += part.latencies
            leg.batch_sizes += part.batch_sizes
            leg.first_error = leg.first_error or part.first_error
        return leg


def measure(args: argparse.Namespace, model: str, work: Workload) -> list[Row]:
    """For each client count, `--rounds` rounds of (reference leg, serve leg), back to to back.

    On a shared or throttling machine the speed drifts by tens of percent between minutes; pairing
    each serve leg with a reference leg measured just before it, and taking the median of the
    per-round ratios, keeps that drift out of the ratio. The server process sits idle (no requests,
    its threads asleep) while the reference runs, and the reference's model is idle while the server
    is measured, so the two never compete for the cores.
    """
    from backends.scorer import Reranker
    from backends.settings import scorer_settings
    from ragweld_tui.config import load_config

    rows = [Row(n) for n in args.client_counts]
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        folder = Path(tmp)
        config_path = write_config(folder, model, args.backend, args.adapter)
        config = load_config(config_path)  # the reference gets exactly the server's scorer settings
        settings = scorer_settings(config.model, config.prompt, config.scoring, config.rerank_model())
        reranker = Reranker.load(settings)
        if args.adapter is not None:
            reranker.use_adapter(args.adapter.resolve())
        server = Server(config_path, {**os.environ, "RAGWELD_HOME": str(folder / "home")})
        try:
            url = server.wait_ready()
            print(f"server at {url}", flush=True)
            for round_no in range(1, args.rounds + 1):
                for row in rows:
                    print(f"round {round_no}/{args.rounds}: reference, then {plural(row.clients)} ...", flush=True)
                    row.refs.append(reference(reranker, work, args.seconds, args.max_requests))
                    leg = asyncio.run(clients(url, work, row.clients, args.seconds, args.max_requests))
                    row.serve.append(leg)
                    if leg.first_error:
                        print(f"  first error: {leg.first_error}", flush=True)
        finally:
            reranker.close()
            code = server.stop()
            if code != 0:
                print(f"the server exited with {code}; its log ends:\n{server.log_tail()}", file=sys.stderr)
    return rows


def render(args: argparse.Namespace, model: str, work: Workload, rows: list[Row]) -> str:
    import torch

    refs = [leg for row in rows for leg in row.refs]
    tokens_per_pair = sum(leg.tokens for leg in refs) / max(1, sum(leg.pairs for leg in refs))
    report = "\n".join([
        "# serve bench: `ragweld-tui serve` vs in-process `Reranker.score`",
        "",
        f"- model: {args.model if args.layers is None else f'Qwen3-0.6B widths, {args.layers} layers, random weights'}"
        f" ({model}); backend {args.backend}; adapter: {args.adapter or 'none (base)'}",
        f"- shapes: {args.docs} documents per request; {fmt(tokens_per_pair, 0)} prompt tokens per pair on average; "
        f"Cohere-shape POST /v1/rerank; {work.source}",
        f"- machine: {os.cpu_count()} cores, {platform.machine()} {platform.system()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads in this process (the server uses "
        "torch's default too; the clients run in this process, on the same cores)",
        f"- legs: {args.rounds} rounds per client count of (reference leg, serve leg), each capped at "
        f"{args.seconds:g} s or {args.max_requests} requests; warm-up requests untimed",
        "",
        table(rows),
        "",
        "CPU the clients took in this process (of the machine's cores, which the server shares): "
        + ", ".join(f"{plural(row.clients)} {row.pooled(row.serve).cpu_seconds / max(1e-9, row.pooled(row.serve).seconds):.0%}"
                    " of a core" for row in rows),
    ])
    if rows:
        best = max(rows, key=lambda row: row.pooled(row.serve).pairs_s)
        verdict = "PASS" if best.ratio() >= 0.9 else "FAIL"
        report += (f"\n\nat saturation ({plural(best.clients)}, the most pairs/s): ratio {fmt(best.ratio(), 2)} "
                   f"(target >= 0.9) {verdict}")
    return report


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # nothing may download
    from backends.models import resolve_model

    if args.layers is not None:  # Qwen3-0.6B widths: the model's work per request is a real model's
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from score_bench import model_dir

        model = str(model_dir(args.layers))
    else:
        model = str(resolve_model(args.model))  # builds the embedded model once, before either side loads it
    work = make_workload(args.docs)
    report = render(args, model, work, measure(args, model, work))
    print("\n" + report)
    if args.out is not None:
        args.out.write_text(report + "\n")
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the server, if started, was stopped)")
