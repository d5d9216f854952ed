"""`ragweld-tui backends`: which backends and devices this machine has, and what `auto` picks."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("backends", help="list available backends and devices", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from backends.select import choose_backend, describe_backends, torch_dtype
    from trainers.precision import auto_reason

    from ragweld_tui.commands.common import config_from_args

    config = config_from_args(args)
    infos = describe_backends()
    try:
        choice = choose_backend(config.model.backend, config.model.device)
        chosen: dict[str, str | None] = {"backend": choice.backend, "device": choice.device, "reason": choice.reason,
                                         "dtype": config.model.dtype, "dtype_reason": "auto: MLX's own choice per device"}
        if choice.backend == "torch" or config.model.dtype != "auto":
            dtype = torch_dtype(config.model.dtype, choice.device)  # an explicit dtype is taken as is on both
            chosen.update(dtype=dtype.dtype, dtype_reason=dtype.reason)
        requested = config.train.precision
        chosen.update(precision=requested, precision_reason=auto_reason(choice.backend, choice.device)
                      if requested == "auto" else f"requested: {requested}")
    except ValueError as exc:
        chosen = {"backend": None, "device": None, "reason": str(exc), "dtype": None, "dtype_reason": None,
                  "precision": None, "precision_reason": None}
    if args.json:
        print(json.dumps({"backends": [i.__dict__ for i in infos], "chosen": chosen}, indent=2))
        return 0
    for info in infos:
        mark = "yes" if info.available else "no "
        devices = ", ".join(info.devices) if info.devices else "-"
        print(f"{info.name:<6} available: {mark}  devices: {devices:<20} {info.detail}")
    print(f"selected (backend={config.model.backend}, device={config.model.device}): "
          f"{chosen['backend'] or 'none'} on {chosen['device'] or '-'} — {chosen['reason']}")
    if chosen["dtype"] is not None:
        print(f"dtype (dtype={config.model.dtype}): {chosen['dtype']} — {chosen['dtype_reason']}")
    if chosen["precision"] is not None:
        print(f"training precision ([train].precision={chosen['precision']}): {chosen['precision_reason']}")
    return 0
