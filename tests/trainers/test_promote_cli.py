"""`promote` and `rollback` from the CLI: gate, lineage, and a live scorer following the active path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from backends.scorer import ScorerSettings
from backends.service import RerankService
from store import RunStore
from tests.trainers.run_helpers import run_cli, store_runs, write_config

QUERY, DOCS = "topic words", ["a document about topic words", "something else entirely", "words"]


def lineage(db: Path):
    async def read():
        store = await RunStore.open(db)
        try:
            return [(p.run_id, p.replaced_run_id) for p in await store.promotions("reranker")]
        finally:
            await store.close()

    return asyncio.run(read())


def test_promote_and_rollback_drive_the_live_scorer(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=3, eval_every=1, auto_promote=False, learning_rate=5e-3)
    for seed in (0, 1):
        text = config.read_text().replace("seed = 1\n", "")
        config.write_text(text + (f"seed = {seed}\n" if seed else ""))
        assert run_cli("--run", str(config)).returncode == 0
    first, second = sorted(store_runs(tmp_path / "db.sqlite"), key=lambda r: r.created_at)
    db = tmp_path / "db.sqlite"
    active = tmp_path / "active" / "reranker"
    service = RerankService(ScorerSettings(model="embedded:tiny-qwen3-reranker", backend="torch", max_length=256),
                            active, reload_check_s=0.0)

    async def scores() -> list[float]:
        return [s.logit for s in (await service.score(QUERY, DOCS)).scores]

    base = asyncio.run(scores())
    assert run_cli("--config", str(config), "rollback").returncode == 2  # nothing promoted yet

    result = run_cli("--config", str(config), "promote", first.id, "--force")
    assert result.returncode == 0, result.stderr
    with_first = asyncio.run(scores())
    assert not np.allclose(with_first, base, atol=1e-6)

    refused = run_cli("--config", str(config), "promote", "r20260101-000000-00000000")
    assert refused.returncode == 2 and "not promoted" in refused.stderr

    assert run_cli("--config", str(config), "promote", second.id, "--force").returncode == 0
    with_second = asyncio.run(scores())
    assert not np.allclose(with_second, with_first, atol=1e-6)
    assert lineage(db) == [(first.id, None), (second.id, first.id)]

    back = run_cli("--config", str(config), "rollback")
    assert back.returncode == 0 and first.id in back.stdout
    np.testing.assert_allclose(asyncio.run(scores()), with_first, atol=1e-6)
    assert run_cli("--config", str(config), "rollback").returncode == 0
    assert not active.exists()
    np.testing.assert_allclose(asyncio.run(scores()), base, atol=1e-6)
    assert lineage(db)[-1] == (None, first.id)
    assert run_cli("--config", str(config), "rollback").returncode == 2
    assert not any(r.promoted for r in store_runs(db))
