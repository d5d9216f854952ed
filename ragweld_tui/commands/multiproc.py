"""`ragweld-tui --run F --nproc N`: the same command again in N processes, under the run's framework's
own launcher — torchrun (`python -m torch.distributed.run --standalone`) for PyTorch, `mlx.launch`
(ring backend on the loopback) for MLX — so users get the engines the field trusts, not a home-made one.

The caller checks the input first (config, data, model, the run to resume), so a mistake is one line
and exit 2 before any process starts. The children import the same checkout as this process and
decide their rank from the launcher's environment (`trainers.distributed`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ragweld_tui.errors import UserError

RING_PORT = 32323  # mlx.launch's default first port of the loopback ring


def child_argv(argv: list[str]) -> list[str]:
    """The command line without `--nproc N` (the children learn the world size from their launcher)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launcher_command(backend: str, nproc: int, argv: list[str]) -> list[str]:
    """torchrun or mlx.launch running `python -m ragweld_tui.cli ARGV` in `nproc` local processes."""
    child = [sys.executable, "-m", "ragweld_tui.cli", *child_argv(argv)]
    if backend == "torch":
        # One shell word: torchrun's parser would read the child's `--run` as an abbreviation of its own
        # `--run-path` even after the script name.
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "--max-restarts=0", "--no-python", "/bin/sh", "-c", f"exec {shlex.join(child)}"]
    launch = Path(sys.executable).with_name("mlx.launch")
    found = str(launch) if launch.is_file() else shutil.which("mlx.launch")
    if found is None:
        raise UserError("--nproc with the MLX backend needs mlx.launch (from the mlx package) on PATH")
    return [found, "--backend", "ring", "--hosts", "127.0.0.1", "-n", str(nproc), "--", *child]


def _check_devices(backend: str, device: str, nproc: int) -> None:
    if backend == "torch" and device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        if nproc > count:
            raise UserError(f"--nproc {nproc} on CUDA needs one GPU per process; this machine has {count}")


def launch(args: argparse.Namespace, backend: str, device: str) -> int:
    """Run the launcher for the checked input; its exit code (torchrun reports any failed rank as 1)."""
    _check_devices(backend, device, args.nproc)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the children import this very checkout
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    command = launcher_command(backend, args.nproc, args.argv)
    # Ctrl-C reaches every process of the terminal's group: rank 0 pauses the run, the launcher
    # returns, and this process only waits for it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        signal.signal(signal.SIGINT, previous)
