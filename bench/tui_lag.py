"""Event-loop lag of the TUI while a training run is live (the issue's target: p99 < 50 ms).

    python bench/tui_lag.py [--mode inprocess|external] [--views hud|cycle] [--steps 300] [--seconds 30]
                            [--size 80x24]

`inprocess`: the app starts the run itself (a detached `--run` process, as the new-run form does).
`external`: `ragweld-tui --run` trains in another process and the app only tails the store.
The app runs headless (compositor and widgets included, no terminal writes) with its normal 0.5 s
polling. `hud` keeps the metrics HUD on screen (someone watching a run); `cycle` switches view every
2 s (HUD, scatter, runs list, inspector on the live run), each switch repainting every chart. The
app's LagProbe samples how late a 50 ms asyncio tick wakes up. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ragweld_tui.app import make_app  # noqa: E402
from ragweld_tui.config import load_config  # noqa: E402

CONFIG = """\
[model]
backend = "torch"
[store]
path = "{folder}/db.sqlite"
runs_root = "{folder}/runs"
[serving]
active_adapter = "{folder}/active/reranker"
[data]
max_queries = 16
bm25_candidates = 8
[train]
name = "lag-bench"
max_steps = {steps}
eval_every = {eval_every}
checkpoint_every = {eval_every}
batch_size = 4
group_size = 4
learning_rate = 1e-3
max_length = 160
warmup_steps = 2
auto_promote = false
"""

VIEWS = (["2"], ["3"], ["1"], ["enter"], ["escape", "2"])


async def measure(mode: str, steps: int, seconds: float, size: tuple[int, int], views: str = "hud") -> dict:
    folder = Path(tempfile.mkdtemp(prefix="tui-lag-"))
    path = folder / "config.toml"
    path.write_text(CONFIG.format(folder=folder, steps=steps, eval_every=max(10, steps // 4)))
    config = load_config(path)
    env = dict(os.environ, RAGWELD_HOME=str(folder / "home"), PYTHONPATH=str(REPO))
    proc = None
    app = make_app(config)
    async with app.run_test(size=size) as pilot:
        store = await app.get_store()
        if mode == "external":
            proc = subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--run", str(path)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
        else:
            app.start_run(config)
        while not [r for r in await store.list_runs() if r.status == "running"]:  # wait for the run to start
            await asyncio.sleep(0.1)
        await pilot.press("2")
        app.lag_probe.reset()
        start, view = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            runs = await store.list_runs()
            if runs and runs[0].status != "running":
                break
            if views == "cycle":
                for key in VIEWS[view % len(VIEWS)]:
                    await pilot.press(key)
                view += 1
            await asyncio.sleep(2.0)
        elapsed = time.monotonic() - start
        summary = app.lag_probe.summary()
        run = (await store.list_runs())[0]
        points = await store.series(run.id, "train/loss", 1)
        step = (points[-1].step or 0) if points else 0
        for started in app.launches:  # stop the TUI's training process (SIGINT: it records its state)
            started.process.send_signal(signal.SIGINT)
            await asyncio.to_thread(started.process.wait, 120)
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=60)
    return {"mode": mode, "views": views, "size": f"{size[0]}x{size[1]}", "seconds": round(elapsed, 1), "steps": step,
            "cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2),
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in summary.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("inprocess", "external"), default="inprocess")
    parser.add_argument("--views", choices=("hud", "cycle"), default="hud")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", default="80x24")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(json.dumps(asyncio.run(measure(args.mode, args.steps, args.seconds, (width, height), args.views))))


if __name__ == "__main__":
    main()
