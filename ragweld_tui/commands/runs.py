"""`ragweld-tui runs`: list runs (and the HTTP servers), show one with its latest metrics, export its
events, list the servers.

A thin view over `store.RunStore`: it opens the store named by `--db` (or the config's store path)
without creating it, and turns every store refusal (unknown or malformed run id, a store from a
newer version, a network filesystem) into a one-line UserError.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO

from ragweld_tui.errors import UserError
from ragweld_tui.format import backend_cell, run_compute, server_line
from store import RunRecord, RunStore, ServerRecord, StoreError, StoreMissingError, validate_run_id
from store.events import json_safe
from store.reads import RawEvent

EXPORT_PAGE = 5000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `runs` command with its `show`, `export` and `servers` actions."""
    parser = subparsers.add_parser(
        "runs",
        help="list runs, show one, or export its events",
        description="List the runs in the store (newest first); `show` one or `export` its events.",
    )
    parser.add_argument("--json", dest="runs_json", action="store_true", help="print the list as JSON")
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION")
    show = actions.add_parser("show", help="one run with its latest metrics and artifacts")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", dest="show_json", action="store_true", help="print it as JSON")
    export = actions.add_parser("export", help="write every event of a run as CSV or JSON lines")
    export.add_argument("run_id", metavar="RUN_ID")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument(
        "--csv", dest="export_format", action="store_const", const="csv", help="CSV: seq,ts,step,type,payload"
    )
    fmt.add_argument(
        "--jsonl", dest="export_format", action="store_const", const="jsonl", help="one JSON object per event"
    )
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    servers = actions.add_parser("servers", help="the HTTP servers: serving and recently gone ones")
    servers.add_argument("--all", dest="servers_all", action="store_true", help="stopped and long-gone ones too")
    servers.add_argument("--json", dest="servers_json", action="store_true", help="print them as JSON")
    parser.set_defaults(handler=handle)


def store_path(args: argparse.Namespace) -> Path:
    """`--db` when given, else the configured store."""
    from ragweld_tui.config import load_config
    from store.settings import store_location

    return store_location(load_config(getattr(args, "config", None)).store, getattr(args, "db", None))[0]


def handle(args: argparse.Namespace) -> int:
    """Entry point set as the argparse handler."""
    path = store_path(args)
    action = getattr(args, "runs_action", None)
    if action in ("show", "export"):
        try:
            validate_run_id(args.run_id)
        except StoreError as exc:
            raise UserError(str(exc)) from None
    try:
        return asyncio.run(_dispatch(args, path, action))
    except StoreMissingError:
        if action is None:
            _print_runs([], as_json=args.runs_json, path=path)
            return 0
        if action == "servers":
            _print_servers([], as_json=args.servers_json)
            return 0
        raise UserError(f"no run {args.run_id}: there is no store at {path}") from None
    except StoreError as exc:
        raise UserError(str(exc)) from None
    except BrokenPipeError:  # `runs export ... | head`: the reader left; stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


async def _dispatch(args: argparse.Namespace, path: Path, action: str | None) -> int:
    async with await RunStore.open(path, create=False) as store:
        if action == "show":
            await _show(store, args.run_id, as_json=args.show_json)
        elif action == "export":
            await _export(store, args.run_id, args.export_format, args.output)
        elif action == "servers":
            _print_servers(await store.list_servers(args.servers_all), as_json=args.servers_json)
        else:
            _print_runs(await store.list_runs(), as_json=args.runs_json, path=path)
            # The JSON list stays a list of runs; `runs servers --json` has the servers.
            if not args.runs_json and (servers := await store.list_servers()):
                print()
                _print_servers(servers, as_json=False)
    return 0


def _clean(text: object, width: int | None = None) -> str:
    """Printable text: control characters (terminal escapes in a hostile name) shown escaped."""
    value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return value if width is None or len(value) <= width else value[: width - 1] + "…"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value).lower() if not math.isfinite(value) else f"{value:.4g}"


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _run_json(run: RunRecord) -> object:
    """The run as strict-JSON-ready data (non-finite floats spelled out)."""
    return json_safe(run.model_dump())


def _print_runs(runs: list[RunRecord], *, as_json: bool, path: Path) -> None:
    if as_json:
        print(json.dumps([_run_json(r) for r in runs], allow_nan=False))
        return
    if not runs:
        print(f"no runs in {path}")
        return
    header = ("ID", "KIND", "STATUS", "NAME", "BACKEND", "METRIC", "BEST", "CREATED")
    rows = [
        (
            r.id + ("*" if r.promoted else ""),
            r.kind,
            r.status,
            _clean(r.name, 32),
            _clean(backend_cell(r, "-"), 12),
            _clean(r.primary_metric or "-", 16),
            _num(r.best),
            _when(r.created_at),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())
    if any(r.promoted for r in runs):
        print("* promoted (active)")


def _print_servers(servers: list[ServerRecord], *, as_json: bool) -> None:
    """One line per server, as the TUI's runs list shows it (or JSON)."""
    if as_json:
        print(json.dumps([s.model_dump() for s in servers], allow_nan=False))
        return
    now = time.time()
    for server in servers:
        print(_clean(server_line(server, now)))
    if not servers:
        print("no servers")


async def _show(store: RunStore, run_id: str, *, as_json: bool) -> None:
    run = await store.get_run(run_id)
    metrics = await store.latest_metrics(run_id)
    artifacts = await store.artifacts(run_id)
    last_seq = await store.last_seq(run_id)
    if as_json:
        doc = {
            "run": _run_json(run),
            "latest_metrics": json_safe(metrics),
            "last_seq": last_seq,
            "artifacts": [a.model_dump() for a in artifacts],
        }
        print(json.dumps(doc, allow_nan=False))
        return
    fields = [
        ("run", run.id),
        ("name", _clean(run.name)),
        ("kind", run.kind),
        ("status", run.status),
        ("backend", _clean(run.backend or "-")),
        ("precision", _clean(run_compute(run))),
        ("processes", str(run.world_size or 1)),
        ("base model", _clean(run.base_model or "-")),
        ("dataset", _clean(run.dataset_fingerprint or "-")),
        ("created", _when(run.created_at)),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
        ("heartbeat", _when(run.heartbeat_at)),
        ("metric", f"{_clean(run.primary_metric or '-')} ({run.goal})"),
        ("baseline", _num(run.baseline)),
        ("best", _num(run.best)),
        ("promoted", "yes" if run.promoted else "no"),
        ("events", str(last_seq)),
        ("error", _clean(run.error or "-")),
        ("config", _clean(json.dumps(json_safe(run.config), sort_keys=True))),
    ]
    for label, value in fields:
        print(f"{label:<11}{value}")
    print("latest metrics:" if metrics else "latest metrics: none")
    width = max((len(_clean(k)) for k in metrics), default=0)
    for key, figure in metrics.items():
        print(f"  {_clean(key):<{width}}  {_num(figure)}")
    if artifacts:
        print("artifacts:")
        for a in artifacts:
            print(f"  {a.kind:<12} {_clean(a.path)}  {a.bytes} B  sha256 {a.sha256[:12]}")


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file written through a temporary name so a failed export leaves no half file."""
    if path is None:
        yield sys.stdout
        return
    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"{target} is a folder; give -o the path of a file to write")
    if not target.parent.is_dir():
        raise UserError(f"{target.parent}: folder not found (for -o {target})")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_writer(handle: IO[str], run_id: str) -> Callable[[RawEvent], None]:
    """CSV rows `run_id,seq,ts,step,type,payload` (payload kept as its JSON text)."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(("run_id", "seq", "ts", "step", "type", "payload"))

    def write(event: RawEvent) -> None:
        step = "" if event.step is None else event.step
        writer.writerow((run_id, event.seq, repr(event.ts), step, event.type, event.payload))

    return write


def _jsonl_writer(handle: IO[str], run_id: str) -> Callable[[RawEvent], None]:
    """One JSON object per line; the stored payload is spliced in as is (already strict JSON)."""

    def write(event: RawEvent) -> None:
        head = json.dumps({"run_id": run_id, "seq": event.seq, "ts": event.ts, "step": event.step, "type": event.type})
        handle.write(f'{head[:-1]}, "payload": {event.payload}}}\n')

    return write


async def _export(store: RunStore, run_id: str, fmt: str, output: str | None) -> None:
    """Stream a run's events page by page, so exporting a million events needs little memory."""
    await store.get_run(run_id)  # unknown run -> error before any output
    if output is not None and not Path(output).expanduser().parent.is_dir():
        raise UserError(f"{output}: the folder does not exist")
    with _output(output) as handle:
        write = _csv_writer(handle, run_id) if fmt == "csv" else _jsonl_writer(handle, run_id)
        seq = 0
        while page := await store.raw_events_since(run_id, seq, EXPORT_PAGE):
            for event in page:
                write(event)
            seq = page[-1].seq
        handle.flush()
