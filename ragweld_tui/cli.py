"""The `ragweld-tui` command: subcommands live in `ragweld_tui.commands.*`, each with `register()`.

Every user mistake surfaces as a UserError: one line on stderr, exit code 2, no traceback.
Heavy frameworks are imported inside the commands that need them, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ragweld_tui.commands import backends as backends_command  # (not the `backends` package)
from ragweld_tui.commands import chat, export, models, runs, score, serve, train
from ragweld_tui.errors import UserError

COMMANDS = (score, serve, backends_command, models, runs, train, export, chat)  # in the order `--help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragweld-tui",
        description="Terminal studio for Qwen3 learning rerankers and agents (LoRA on MLX and PyTorch).",
    )
    parser.add_argument("--config", "-c", metavar="TOML", help="configuration file (default: built-in defaults)")
    parser.add_argument("--db", metavar="PATH", help="SQLite store to use instead of the configured one")
    parser.add_argument("--run", nargs="?", const="config.toml", metavar="TOML",
                        help="train headless with this configuration (default config.toml)")
    parser.add_argument("--resume", metavar="RUN_ID", help="with --run: continue an interrupted or cancelled run")
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="with --run: train data parallel in N processes (torchrun or mlx.launch)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def open_tui(args: argparse.Namespace) -> int:
    """No subcommand: open the TUI on the configured store (or `--db PATH`)."""
    from ragweld_tui.app import make_app
    from ragweld_tui.config import load_config

    config = load_config(args.config)
    make_app(config, args.db, config_path=args.config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # re-launched as is by --run --nproc N
    try:
        if args.run is not None or args.resume or args.nproc is not None:
            from ragweld_tui.commands.train import run_headless

            return run_headless(args)
        if args.command is None:
            return open_tui(args)
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
