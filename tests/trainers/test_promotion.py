"""The promotion gate table, and the active path staying complete when promotion is cut short."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights, Manifest, verify_adapter, write_manifest, write_peft_adapter
from trainers.active_adapter import _copy_durably, install_version, point_active, version_dir
from trainers.promotion import gate

BASE, TEMPLATE = "base0000fingerpr", "template00000000"


def manifest(**changes: str) -> Manifest:
    values = dict(base_model="embedded:tiny", base_fingerprint=BASE, template_fingerprint=TEMPLATE,
                  backend="torch", files={}) | changes
    return Manifest(**values)


@pytest.mark.parametrize(("best", "baseline", "goal", "m", "force", "promote", "reason"), [
    (0.60, 0.50, "maximize", manifest(), False, True, "improves on the baseline by +0.1000"),
    (0.505, 0.50, "maximize", manifest(), False, False, "below epsilon 0.01"),
    (0.45, 0.50, "maximize", manifest(), False, False, "improvement -0.0500"),
    (1.20, 1.50, "minimize", manifest(), False, True, "improves on the baseline by +0.3000"),
    (1.60, 1.50, "minimize", manifest(), False, False, "improvement -0.1000"),
    (float("nan"), 0.50, "maximize", manifest(), False, False, "metric is nan"),
    (0.60, float("nan"), "maximize", manifest(), False, False, "baseline is nan"),
    (float("nan"), 0.50, "maximize", manifest(), True, False, "metric is nan"),
    (0.60, None, "maximize", manifest(), False, False, "no baseline was measured"),
    (0.60, None, "maximize", manifest(), True, True, "forced: no baseline was measured"),
    (0.60, 0.50, "maximize", manifest(base_fingerprint="otherbase0000000"), False, False, "differs from the serving base"),
    (0.60, 0.50, "maximize", manifest(base_fingerprint="otherbase0000000"), True, False, "differs from the serving base"),
    (0.60, 0.50, "maximize", manifest(template_fingerprint="othertemplate000"), False, False, "prompt template"),
    (0.60, 0.50, "maximize", None, False, False, "no complete adapter"),
    (0.45, 0.50, "maximize", manifest(), True, True, "forced: improvement -0.0500"),
])
def test_gate_table(best, baseline, goal, m, force, promote, reason) -> None:
    decision = gate(best, baseline, goal, 0.01, m, BASE, TEMPLATE, force=force)
    assert decision.promote is promote
    assert any(reason in r for r in decision.reasons), decision.reasons


def make_adapter(folder: Path, seed: int, megabytes: int = 4) -> Path:
    """A real PEFT adapter folder with a manifest; `megabytes` makes the copy take a while."""
    rng = np.random.default_rng(seed)
    width = megabytes * (1 << 20) // 4 // 8
    lora = LoraWeights({"model.layers.0.mlp.up_proj": (rng.standard_normal((4, width), dtype=np.float32),
                                                       rng.standard_normal((8, 4), dtype=np.float32))}, 2.0, 4)
    write_peft_adapter(folder, lora, "embedded:tiny")
    write_manifest(folder, manifest())
    return folder


def test_promotion_cut_short_at_each_step_leaves_a_complete_active_path(tmp_path: Path) -> None:
    active = tmp_path / "active" / "reranker"
    old = install_version(make_adapter(tmp_path / "old", 1), active, "r20260101-000000-00000001")
    point_active(active, old)
    new_src = make_adapter(tmp_path / "new", 2)

    def active_is(expected: Path) -> None:
        verify_adapter(active)
        assert active.resolve() == expected.resolve()

    # 1. Crash while copying into the temp version folder: some files copied, no manifest.
    partial = version_dir(active, "r20260101-000000-00000002").parent / ".r20260101-000000-00000002.crash"
    partial.mkdir(parents=True)
    shutil.copyfile(new_src / "adapter_model.safetensors", partial / "adapter_model.safetensors")
    active_is(old)
    # 2. Crash after the version folder is complete but before the link moves.
    new = install_version(new_src, active, "r20260101-000000-00000002")
    active_is(old)
    # 3. Crash after the temp link is made but before it replaces the active one.
    os.symlink(os.path.relpath(new, active.parent), active.parent / f".{active.name}.link-crash")
    active_is(old)
    # 4. The rename: the one atomic step. After it, the new adapter, complete.
    point_active(active, new)
    active_is(new)
    # Installing the same version again reuses it; pointing back is a rollback.
    assert install_version(new_src, active, "r20260101-000000-00000002") == new
    point_active(active, old)
    active_is(old)
    point_active(active, None)
    assert not active.exists()


def test_a_version_is_never_installed_from_a_damaged_adapter(tmp_path: Path) -> None:
    from backends.adapters import AdapterError

    src = make_adapter(tmp_path / "src", 3, megabytes=1)
    with (src / "adapter_model.safetensors").open("r+b") as handle:
        handle.seek(200)
        handle.write(b"corrupt")
    active = tmp_path / "active" / "reranker"
    with pytest.raises(AdapterError, match="sha256 does not match"):
        install_version(src, active, "r20260101-000000-00000003")
    assert not version_dir(active, "r20260101-000000-00000003").exists()


def test_copy_writes_the_manifest_last(tmp_path: Path) -> None:
    src = make_adapter(tmp_path / "src", 4, megabytes=1)
    _copy_durably(src, tmp_path / "dest")
    names = [p.name for p in sorted((tmp_path / "dest").iterdir(), key=lambda p: p.stat().st_mtime_ns)]
    assert names[-1] == "manifest.json"


async def test_every_start_reconciles_the_lineage_with_the_active_link(tmp_path: Path) -> None:
    # The store says run A serves, but the active link is gone: a rollback cut short after its swap
    # (its intent is still recorded). The link is the truth, repaired and logged when a command or the
    # TUI opens the store; without such evidence nothing is touched.
    from ragweld_tui.config import parse_config
    from store import LogEvent, RunStore
    from trainers.promotion import reconcile_active
    from trainers.promotion_sync import write_intent

    config = parse_config({"serving": {"active_adapter": str(tmp_path / "active" / "reranker")}}, "test")
    store = await RunStore.open(tmp_path / "db.sqlite")
    try:
        run_a = await store.create_run("reranker", "a")
        await store.set_status(run_a, "running")
        await store.set_status(run_a, "completed")
        await store.record_promotion(run_a, None, "promoted")
        (tmp_path / "active").mkdir()
        assert await store.active_run("reranker") == run_a
        assert await reconcile_active(store, config) == []  # no sign of a cut-short operation
        assert await store.active_run("reranker") == run_a
        write_intent(tmp_path / "active" / "reranker", None, run_a, f"rollback of {run_a} to the base model")
        (note,) = await reconcile_active(store, config)
        assert "it serves the base model, the store said " + run_a in note
        assert await store.active_run("reranker") is None and not (await store.get_run(run_a)).promoted
        logged = [e.event for e in await store.events_since(run_a, 0)]
        assert any(isinstance(e, LogEvent) and "reconciled the reranker lineage" in e.message for e in logged)
        assert await reconcile_active(store, config) == []  # agreeing now: nothing to repair, nothing logged
    finally:
        await store.close()
