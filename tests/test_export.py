"""`ragweld-tui export`: PEFT ↔ mlx-lm ↔ merged, each checked through its own library, and refusals."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import read_adapter, read_manifest, verify_adapter
from backends.export import ParityError, check_parity, compare_scores, export_adapter
from backends.scorer import Reranker
from backends.settings import ScorerSettings
from ragweld_tui.cli import main
from tests.serve.server_helpers import DOCS, QUERY, make_adapter, random_lora

RUN = "r20260101-120000-0000000a"


def settings(model_dir: Path, backend: str = "torch") -> ScorerSettings:
    return ScorerSettings(model=str(model_dir), backend=backend, dtype="float32", max_length=512)


def scores(model_dir: Path, backend: str, adapter: Path | None) -> np.ndarray:
    """Our scorer on `backend` serving `adapter` (manifest verified and checked against the base)."""
    reranker = Reranker.load(settings(model_dir, backend))
    try:
        reranker.use_adapter(adapter)
        return np.array([s.logit for s in reranker.score(QUERY, DOCS)])
    finally:
        reranker.close()


@pytest.fixture
def source(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return make_adapter(tmp_path / "src", 3, tiny_model_dir, RUN)


def test_round_trips_keep_scores_on_both_backends(tmp_path: Path, tiny_model_dir: Path, source: Path) -> None:
    s = settings(tiny_model_dir)
    mlx = export_adapter(source, "mlx", tmp_path / "mlx", s)
    assert mlx.parity.ok and mlx.parity.max_abs_dp <= 1e-4
    assert (tmp_path / "mlx" / "adapters.safetensors").is_file()
    back = export_adapter(tmp_path / "mlx", "peft", tmp_path / "peft-again", settings(tiny_model_dir, "mlx"))
    assert back.parity.ok
    mlx_again = export_adapter(tmp_path / "peft-again", "mlx", tmp_path / "mlx-again", s)
    assert mlx_again.parity.ok
    original = read_adapter(source)
    for folder in ("mlx", "peft-again", "mlx-again"):
        manifest = verify_adapter(tmp_path / folder)
        assert manifest.run_id == RUN and manifest.base_fingerprint == read_manifest(source).base_fingerprint
        lora = read_adapter(tmp_path / folder)
        assert lora.scale == pytest.approx(original.scale) and lora.rank == original.rank
        for name, (a, b) in original.modules.items():
            np.testing.assert_allclose(lora.modules[name][0], a, atol=1e-7)
            np.testing.assert_allclose(lora.modules[name][1], b, atol=1e-7)
    config = json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["num_layers"] == 2
    assert verify_adapter(tmp_path / "mlx").backend == "mlx" and verify_adapter(tmp_path / "peft-again").backend == "torch"
    for backend in ("torch", "mlx"):
        reference = scores(tiny_model_dir, backend, source)
        assert not np.allclose(reference, scores(tiny_model_dir, backend, None), atol=1e-3)  # the adapter matters
        for folder in ("mlx", "peft-again", "mlx-again"):
            np.testing.assert_allclose(scores(tiny_model_dir, backend, tmp_path / folder), reference, atol=1e-4)


def test_merged_equals_base_plus_adapter(tmp_path: Path, tiny_model_dir: Path, source: Path) -> None:
    from safetensors.numpy import load_file

    result = export_adapter(source, "merged", tmp_path / "merged", settings(tiny_model_dir), max_shard_size="1MB")
    out = tmp_path / "merged"
    assert result.parity.ok and result.parity.max_abs_dp <= 1e-4
    shards = sorted(out.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and (out / "model.safetensors.index.json").is_file()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["tie_word_embeddings"] is True
    merged = {k: v for shard in shards for k, v in load_file(str(shard)).items()}
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    lora = random_lora(3)
    assert set(merged) == set(base)  # tied head: no separate lm_head, as in the base
    for key, weight in base.items():
        module = key.removesuffix(".weight")
        expected = weight + lora.delta(module) if module in lora.modules else weight
        np.testing.assert_allclose(merged[key], expected, atol=1e-6, err_msg=key)
    for backend in ("torch", "mlx"):  # the merged folder as a plain base == base + adapter
        np.testing.assert_allclose(scores(out, backend, None), scores(tiny_model_dir, backend, source), atol=1e-4)


def test_parity_check_catches_a_wrong_export(tmp_path: Path, tiny_model_dir: Path, source: Path) -> None:
    other = make_adapter(tmp_path / "other", 7, tiny_model_dir, RUN)
    result = check_parity("peft", other, tiny_model_dir, settings(tiny_model_dir), read_adapter(source))
    assert not result.ok and result.max_abs_dp > 1e-3
    same = compare_scores(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0 + 1e-9]]), 1e-4)
    assert same.ok and same.rankings_equal
    flipped = compare_scores(np.array([[1.0, 1.00001]]), np.array([[1.00002, 1.0]]), 1e-4)
    assert flipped.max_abs_dp < 1e-4 and not flipped.ok  # a changed ranking fails even within tolerance


def test_failed_export_leaves_nothing(tmp_path: Path, tiny_model_dir: Path, source: Path, monkeypatch,
                                      capsys) -> None:
    import backends.export as export

    real = export.write_export

    def wrong(tmp, fmt, lora, *args, **kwargs):  # a genuinely different adapter in the right format
        real(tmp, fmt, random_lora(9), *args, **kwargs)

    monkeypatch.setattr(export, "write_export", wrong)
    with pytest.raises(ParityError):
        export_adapter(source, "mlx", tmp_path / "out", settings(tiny_model_dir))
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("keep me")
    code = main(["--config", str(_config(tmp_path, tiny_model_dir)), "export", str(source), "--to", "peft",
                 str(tmp_path / "kept"), "--force"])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines()[-1].startswith("error: export failed the parity check: parity on 12")
    assert "Traceback" not in err and "rankings DIFFER" in err
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "kept", "src"]  # no temp folder left


def _config(folder: Path, model_dir: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(f'[model]\nbase = "{model_dir}"\nbackend = "torch"\n[prompt]\nmax_length = 512\n'
                    f'[store]\npath = "{folder / "db.sqlite"}"\nruns_root = "{folder / "runs"}"\n')
    return path


def _completed_run(folder: Path, model_dir: Path) -> str:
    from store import RunStore

    async def build() -> str:
        store = await RunStore.open(folder / "db.sqlite", runs_root=folder / "runs")
        try:
            run_id = await store.create_run("reranker", "tiny", "torch", str(model_dir))
            await store.set_status(run_id, "running")
            make_adapter(store.artifact_path(run_id, "adapter"), 3, model_dir, run_id)
            await store.set_status(run_id, "completed")
            return run_id
        finally:
            await store.close()

    return asyncio.run(build())


def test_export_a_run_from_the_cli(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    config = _config(tmp_path, tiny_model_dir)
    run_id = _completed_run(tmp_path, tiny_model_dir)
    out = tmp_path / "exported"
    assert main(["--config", str(config), "export", run_id, "--to", "mlx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rankings equal" in printed and f"to {out}" in printed
    assert verify_adapter(out).run_id == run_id
    # --db names the store (its runs folder beside it) in place of the configured one
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["--config", str(_config(elsewhere, tiny_model_dir)), "export", run_id, "--to", "peft",
                 str(tmp_path / "no")]) == 2
    assert "no run" in capsys.readouterr().err
    assert main(["--db", str(tmp_path / "db.sqlite"), "--config", str(elsewhere / "config.toml"), "export", run_id,
                 "--to", "peft", str(tmp_path / "via-db")]) == 0
    assert verify_adapter(tmp_path / "via-db").backend == "torch"


@pytest.mark.parametrize("case", ["unknown-run", "not-a-run", "out-not-empty", "out-is-file", "no-parent",
                                  "wrong-base", "into-source"])
def test_bad_export_requests_are_one_line(tmp_path: Path, tiny_model_dir: Path, source: Path, case: str,
                                          capsys) -> None:
    config = _config(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    what, extra = str(source), []
    if case == "unknown-run":
        _completed_run(tmp_path, tiny_model_dir)
        what = "r20250101-000000-00000000"
    elif case == "not-a-run":
        what = "no-such-thing"
    elif case == "out-not-empty":
        out.mkdir()
        (out / "x").write_text("x")
    elif case == "out-is-file":
        out.write_text("x")
    elif case == "no-parent":
        out = tmp_path / "missing" / "out"
    elif case == "wrong-base":
        from backends.embedded import TinyQwen3Spec, write_tiny_qwen3

        extra = ["--model", str(write_tiny_qwen3(tmp_path / "other-base", TinyQwen3Spec(seed=5)))]
    elif case == "into-source":
        out = source
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main(["--config", str(config), "export", what, "--to", "peft", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
