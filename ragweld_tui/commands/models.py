"""`ragweld-tui models`: the model catalog — embedded defaults, known Qwen3 models with their sizes and
the backends and dtypes that fit them, and what the local Hugging Face cache holds (read offline)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("models", help="list the models to train and score with", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--kind", choices=("reranker", "chat"), help="only rerankers or only chat models")
    parser.add_argument("--cached", action="store_true", help="only models available here without a download")
    parser.set_defaults(handler=run)


def _size(size: int | None) -> str:
    if size is None:
        return ""
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def run(args: argparse.Namespace) -> int:
    from backends.catalog import default_hub_cache, model_catalog

    from ragweld_tui.commands.common import config_from_args

    config = config_from_args(args)
    hub_cache = default_hub_cache()
    entries, warnings = model_catalog(hub_cache, configured=[config.model.base])
    entries = [e for e in entries if (args.kind is None or e.kind in (args.kind, "other"))
               and (not args.cached or e.cached)]
    if args.json:
        print(json.dumps({"hub_cache": str(hub_cache), "configured": config.model.base,
                          "models": [e.to_json() for e in entries], "warnings": warnings}, indent=2))
        return 0
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{'model':<38} {'kind':<8} {'params':>6} {'layers':>6} {'hidden':>6}  {'backends':<10} here")
    for e in entries:
        here = ("embedded" if e.source == "embedded" else f"cached {_size(e.size_bytes)}".strip() if e.cached
                else "-")
        mark = "*" if e.id == config.model.base else " "
        print(f"{mark}{e.id:<37} {e.kind:<8} {e.params or '':>6} {e.layers or '':>6} {e.hidden or '':>6}  "
              f"{','.join(e.backends) or '-':<10} {here}{'  ' + e.note if e.note else ''}")
    print(f"(* configured [model].base; Hugging Face cache: {hub_cache}; get one with `hf download ID`)")
    return 0
