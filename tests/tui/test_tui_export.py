"""The inspector's export dialog: a completed run's real adapter exported from the TUI, parity shown."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, RadioButton, Static

from backends.adapters import verify_adapter
from ragweld_tui.config import parse_config
from ragweld_tui.screens.export import ExportScreen
from ragweld_tui.screens.inspector import InspectorScreen
from store import RunStore
from tests.serve.server_helpers import make_adapter
from tests.tui.conftest import fixed_app, settle


async def completed_run(db: Path, model_dir: Path) -> tuple[str, str]:
    """A store with one completed run (adapter on disk) and one still queued; their ids."""
    store = await RunStore.open(db, runs_root=db.parent / "runs")
    try:
        done = await store.create_run("reranker", "tiny-lora", "torch", str(model_dir))
        await store.set_status(done, "running")
        make_adapter(store.artifact_path(done, "adapter"), 3, model_dir, done)
        await store.set_status(done, "completed")
        queued = await store.create_run("reranker", "later", "torch", str(model_dir))
        return done, queued
    finally:
        await store.close()


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def test_export_a_completed_run_from_the_inspector(tmp_path: Path, tiny_model_dir: Path) -> None:
    db = tmp_path / "store" / "ragweld.sqlite"
    db.parent.mkdir()
    done, queued = await completed_run(db, tiny_model_dir)
    config = parse_config({"model": {"base": str(tiny_model_dir), "backend": "torch"}, "prompt": {"max_length": 512}},
                          "test")
    out = tmp_path / "exported-mlx"
    app = fixed_app(db, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(InspectorScreen(queued))
        await settle(pilot)
        await press(pilot, "e")  # a queued run has no adapter to export
        assert not isinstance(app.screen, ExportScreen)
        await press(pilot, "escape")

        await app.push_screen(InspectorScreen(done))
        await settle(pilot)
        await press(pilot, "e")
        dialog = app.screen
        assert isinstance(dialog, ExportScreen)
        dialog.query_one("#fmt-mlx", RadioButton).value = True
        await settle(pilot)
        dest = dialog.query_one("#export-dest", Input)
        assert dest.value.endswith(f"tiny-lora-{done}-mlx")  # the default follows the format
        dest.value = str(out)
        await press(pilot, "enter")
        await settle(pilot)
        status = str(dialog.query_one("#export-status", Static).render())
        assert "exported mlx" in status and "rankings equal" in status, status
        assert verify_adapter(out).run_id == done and (out / "adapters.safetensors").is_file()

        await press(pilot, "enter")  # the same destination again: refused, nothing changed
        status = str(dialog.query_one("#export-status", Static).render())
        assert status.startswith("error: ") and "not empty" in status, status
        assert verify_adapter(out).run_id == done
        await press(pilot, "escape")
        assert isinstance(app.screen, InspectorScreen)
