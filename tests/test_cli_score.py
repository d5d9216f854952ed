"""`ragweld-tui score` and `backends` end to end: ranking on both backends, clear errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.mlx_blas import blas_state, mlx_libs_dir
from ragweld_tui.cli import main

DOCS = ["Citation indexes link papers to the papers that cite them.", "Bread needs flour, water and yeast.",
        "Indexing scientific journals by their citations."]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragweld_tui.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_score_ranks_documents_on_the_embedded_default(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--query", "citation indexing", *sum((["--doc", d] for d in DOCS), []),
                 "--backend", backend, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == backend and out["model"] == "embedded:tiny-qwen3-reranker"
    assert sorted(r["index"] for r in out["results"]) == [0, 1, 2]
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)


def test_both_backends_rank_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    ranks = {}
    for backend in ("torch", "mlx"):
        main(["score", "-q", "citation indexing", *sum((["-d", d] for d in DOCS), []), "--backend", backend,
              "--dtype", "float32", "--json"])  # a parity check: fp32 pinned (auto may be bf16 on a CPU)
        ranks[backend] = [r["index"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert ranks["torch"] == ranks["mlx"]


def test_human_output_names_backend_and_timing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs_file = tmp_path / "docs.jsonl"
    docs_file.write_text(json.dumps(DOCS[0]) + "\n\n" + json.dumps({"text": DOCS[1]}) + "\n")
    assert main(["score", "-q", "citations", "--docs-file", str(docs_file), "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "torch on cpu" in out and "pairs/s" in out and "Bread" in out


@pytest.mark.parametrize(("args", "env", "message"), [
    (["score", "-q", "", "-d", "x"], {}, "error: the query is empty"),
    (["score", "-q", "x"], {}, "error: no documents"),
    (["score", "-q", "x", "--docs-file", "{bad}"], {}, ":1: expected a JSON string"),
    (["score", "-q", "x", "-d", "y", "--backend", "tpu"], {}, "invalid choice: 'tpu'"),
    (["score", "-q", "x", "-d", "y"], {"RAGWELD_BACKEND": "tpu"}, "RAGWELD_BACKEND: backend: must be one of"),
    (["score", "-q", "x", "-d", "y", "--model", "/no/such/model"], {}, "error: model folder /no/such/model does not exist"),
    (["score", "-q", "x", "-d", "y", "--model", "Qwen/Qwen3-Reranker-0.6B"], {}, "HF_HUB_OFFLINE is set; download it first"),
    (["score", "-q", "x", "-d", "y", "--adapter", "/no/adapter"], {}, "adapter folder not found"),
])
def test_bad_input_is_one_clear_line(args: list[str], env: dict[str, str], message: str, tmp_path: Path) -> None:
    if "{bad}" in args:
        bad = tmp_path / "docs.jsonl"
        bad.write_text("123\n")
        args = [str(bad) if a == "{bad}" else a for a in args]
    result = run_cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]  # the last line says what is wrong
    assert "Traceback" not in result.stderr


def test_backends_lists_both_with_the_auto_choice() -> None:
    result = run_cli("backends", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = {b["name"]: b for b in data["backends"]}
    assert names["torch"]["available"] and names["mlx"]["available"]
    assert data["chosen"]["backend"] in ("torch", "mlx") and data["chosen"]["reason"].startswith("auto")
    libs = mlx_libs_dir()
    if libs is not None:  # a Linux CPU wheel: the report names the BLAS its bundled libblas resolves to
        state = blas_state(libs)
        assert state is not None and state.describe() in names["mlx"]["detail"]
        assert ("OpenBLAS" if state.kind == "openblas" else "reference netlib") in names["mlx"]["detail"]
    assert data["chosen"]["dtype"] in ("float32", "bfloat16", "auto") and data["chosen"]["dtype_reason"]
    assert data["chosen"]["precision"] == "auto" and data["chosen"]["precision_reason"].startswith("auto: ")
    human = run_cli("backends")
    assert "selected (backend=auto" in human.stdout
    assert "training precision ([train].precision=auto): auto: " in human.stdout and "dtype (dtype=auto): " in human.stdout
