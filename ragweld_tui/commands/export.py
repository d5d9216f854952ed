"""`ragweld-tui export RUN_ID|ADAPTER_DIR --to peft|mlx|merged OUT`: move an adapter between libraries.

`peft` loads with `peft.PeftModel.from_pretrained` (PyTorch, vLLM's LoRA serving), `mlx` with
`mlx_lm.load(..., adapter_path=OUT)`, `merged` is a full model folder for transformers or vLLM. Every
export is scored against the source on a probe set before it is moved into place.

Exit codes: 0 exported, 1 parity check failed (nothing written), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from ragweld_tui.commands.common import config_from_args, user_errors
from ragweld_tui.config import AppConfig
from ragweld_tui.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("export", help="export an adapter as PEFT, mlx-lm or a merged model (parity-checked)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="RUN_ID|ADAPTER_DIR", help="a run in the store, or an adapter folder")
    parser.add_argument("out", metavar="OUT", help="destination folder (must not exist or be empty)")
    parser.add_argument("--to", dest="fmt", required=True, choices=("peft", "mlx", "merged"), help="target format")
    parser.add_argument("--model", help="the base model (default: the adapter's manifest, else [model].base)")
    parser.add_argument("--backend", choices=("auto", "mlx", "torch"),
                        help="backend of our scorer for the source side of the parity check")
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="merged: weight precision (auto: the base's)")
    parser.add_argument("--max-shard-size", default="5GB", help="merged: largest safetensors shard (default 5GB)")
    parser.set_defaults(handler=run)


def adapter_source(config: AppConfig, source: str, db: str | None) -> Path:
    """The adapter folder named on the command line: a folder as is, or a run's adapter from the store."""
    from store import StoreError, StoreMissingError, is_run_id
    from store.settings import store_location

    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not is_run_id(source):
        raise UserError(f"{source}: neither an adapter folder nor a run id (r<YYYYMMDD>-<HHMMSS>-<8 hex>)")
    db_path, runs_root = store_location(config.store, db)
    try:
        return asyncio.run(_run_adapter(db_path, runs_root, source))
    except StoreMissingError:
        raise UserError(f"no run {source}: there is no store at {db_path}") from None
    except StoreError as exc:
        raise UserError(str(exc)) from None


async def _run_adapter(db: Path, runs_root: Path | None, run_id: str) -> Path:
    from store import RunStore
    from trainers.promotion import run_adapter_dir

    store = await RunStore.open(db, runs_root=runs_root, create=False)
    try:
        run = await store.get_run(run_id)
        folder = run_adapter_dir(store, run_id)
    finally:
        await store.close()
    if not folder.is_dir():
        raise UserError(f"run {run_id} ({run.status}) has no adapter yet")
    return folder


def run(args: argparse.Namespace) -> int:
    from backends.export import ExportError, ParityError, export_adapter
    from backends.settings import scorer_settings

    config = config_from_args(args)
    source = adapter_source(config, args.source, getattr(args, "db", None))
    settings = scorer_settings(config.model, config.prompt, config.scoring, config.rerank_model())
    settings = replace(settings, backend=args.backend or settings.backend)
    with user_errors():
        try:
            result = export_adapter(source, args.fmt, Path(args.out).expanduser(), settings, model=args.model,
                                    force=args.force, dtype=args.dtype, max_shard_size=args.max_shard_size,
                                    progress=lambda text: print(text, file=sys.stderr, flush=True))
        except ExportError as exc:
            raise UserError(str(exc)) from None
        except ParityError as exc:
            raise UserError(str(exc), exit_code=1) from None
        except ValueError as exc:  # backend or device not available, bad shard size
            raise UserError(str(exc)) from None
    print(result.parity.summary())
    print(f"exported {source} as {result.fmt} to {result.out} (base {result.base_model}): {', '.join(result.files)}")
    return 0
