"""`ragweld-tui serve`: the promoted reranker behind an HTTP API (Cohere/Jina and TEI rerank shapes).

Loopback by default; `--host 0.0.0.0` (or an address) binds elsewhere, best with a bearer token
(`[serve].token_env`). The server follows promotions and rollbacks without a restart.
"""

from __future__ import annotations

import argparse

from ragweld_tui.commands.common import config_from_args, user_errors


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="serve the active reranker adapter over HTTP", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; anything else exposes the API beyond this machine)")
    parser.add_argument("--port", type=int, help="port (default [serve].port, 8787; 0: any free port)")
    parser.add_argument("--config", "-c", metavar="TOML", default=argparse.SUPPRESS,
                        help="configuration file (same as the global --config)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ragweld_tui.errors import UserError

    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be between 0 and 65535")
    config = config_from_args(args)
    from ragweld_tui.serve.runner import serve

    with user_errors():
        return serve(config, host=args.host, port=args.port, db=args.db, announce=lambda line: print(line, flush=True))
