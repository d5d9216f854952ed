"""`ragweld-tui score`: rank documents for a query with the configured reranker and adapter."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from ragweld_tui.commands.common import config_from_args, user_errors
from ragweld_tui.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("score", help="rank documents for a query", description=__doc__)
    parser.add_argument("--query", "-q", required=True, help="the search query")
    parser.add_argument("--doc", "-d", action="append", default=[], metavar="TEXT", help="a document (repeatable)")
    parser.add_argument("--docs-file", metavar="JSONL", help="documents, one per line: a JSON string or {\"text\": ...}")
    parser.add_argument("--backend", choices=("auto", "mlx", "torch"), help="override [model].backend")
    parser.add_argument("--device", help="override [model].device")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                        help="override [model].dtype (float32: exact scores where auto picks bf16)")
    parser.add_argument("--model", help="override [model].base (embedded:NAME, a folder or a hub id)")
    adapter = parser.add_mutually_exclusive_group()
    adapter.add_argument("--adapter", metavar="DIR", help="adapter folder (default: the active adapter, if any)")
    adapter.add_argument("--no-adapter", action="store_true", help="score with the plain base model")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def read_docs_file(path: Path) -> list[str]:
    """Documents from JSONL; every problem names the file and line."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    docs = []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the line)") from None
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise UserError(f"{path}:{number}: expected a JSON string or an object with a string \"text\"")
        docs.append(text)
    return docs


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    docs = list(args.doc) + (read_docs_file(Path(args.docs_file)) if args.docs_file else [])
    if not args.query.strip():
        raise UserError("the query is empty")
    if not docs:
        raise UserError("no documents: give --doc TEXT (repeatable) or --docs-file F.jsonl")
    adapter = None
    if args.adapter:
        adapter = Path(args.adapter)
        if not adapter.is_dir():
            raise UserError(f"{adapter}: adapter folder not found")
    elif not args.no_adapter:
        adapter = _active_adapter(config.active_adapter_dir())

    from backends.scorer import Reranker
    from backends.settings import scorer_settings

    settings = replace(scorer_settings(config.model, config.prompt, config.scoring, args.model or config.rerank_model()),
                       backend=args.backend or config.model.backend, device=args.device or config.model.device,
                       dtype=args.dtype or config.model.dtype)
    start = time.perf_counter()
    with user_errors():
        try:
            reranker = Reranker.load(settings)
        except ValueError as exc:  # backend or device not available
            raise UserError(str(exc)) from None
        reranker.use_adapter(adapter)
        load_s = time.perf_counter() - start
        scores = reranker.score(args.query, docs)
    stats = reranker.last_stats
    ranked = sorted(scores, key=lambda s: (-s.logit, s.index))
    info = {"backend": reranker.engine.backend, "device": reranker.engine.device, "dtype": reranker.engine.dtype,
            "reason": reranker.backend_reason, "model": settings.model,
            "adapter": str(adapter) if adapter else None, "load_s": round(load_s, 3),
            "score_s": round(stats.seconds, 4), "pairs": stats.pairs, "tokens": stats.real_tokens}
    if args.json:
        json.dump({**info, "results": [{"rank": r, "index": s.index, "score": s.probability, "logit": s.logit,
                                        "doc": docs[s.index]} for r, s in enumerate(ranked, 1)]}, sys.stdout, indent=2)
        print()
        return 0
    width = max(20, min(100, _terminal_width() - 30))
    print(f"query: {args.query}")
    print(f"{'rank':>4}  {'score':>8}  {'logit':>8}  document")
    for rank, s in enumerate(ranked, 1):
        text = " ".join(docs[s.index].split())
        print(f"{rank:>4}  {s.probability:>8.4f}  {s.logit:>8.3f}  {text[:width] + ('…' if len(text) > width else '')}")
    rate = stats.pairs / stats.seconds if stats.seconds else float("inf")
    print(f"{info['backend']} on {info['device']} ({info['dtype']}; {info['reason']}); "
          f"adapter: {info['adapter'] or 'none (base)'}; load {load_s:.2f}s, score {stats.seconds * 1000:.1f} ms "
          f"for {stats.pairs} pairs / {stats.real_tokens} tokens ({rate:.1f} pairs/s)")
    return 0


def _active_adapter(active: Path) -> Path | None:
    """The active adapter to serve; None when none was ever promoted (or rolled back to the base).

    A link whose version folder is gone, or an active folder without its manifest, is refused: the
    plain base must never be served silently in place of a promoted adapter.
    """
    if active.is_symlink() and not active.exists():
        raise UserError(f"the active adapter {active} points to {os.readlink(active)}, which is missing; "
                        "promote or roll back again, or score with --no-adapter")
    if not active.exists():
        return None
    if not (active / "manifest.json").is_file():
        raise UserError(f"the active adapter {active} has no manifest.json (damaged or not an adapter); "
                        "promote or roll back again, or score with --no-adapter")
    return active


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns
