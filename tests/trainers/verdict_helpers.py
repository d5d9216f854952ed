"""Helpers for the verdict tests: a BEIR folder made from the demo data, configs, the store's view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from trainers.demo_data import make_demo_dataset


def write_demo_beir(folder: Path, n_queries: int = 80, seed: int = 0) -> Path:
    """The bundled demo data laid out as a BEIR folder (corpus, queries, qrels with grade 1).

    Its positives carry the query's keywords and its negatives do not, so BM25 alone ranks almost
    perfectly: the first stage is a strong incumbent that a few LoRA steps on the tiny model cannot
    beat, while the same steps do beat the base model (they learn to push spam down).
    """
    data = make_demo_dataset(n_queries, seed=seed)
    ids: dict[str, str] = {}
    qrels = ["query-id\tcorpus-id\tscore"]
    for ex in data.examples:
        for text in [*ex.positives, *ex.negatives]:
            ids.setdefault(text, f"doc{len(ids):05d}")
        qrels += [f"{ex.qid}\t{ids[text]}\t1" for text in ex.positives]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                                 for t, i in ids.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": ex.qid, "text": ex.query}) + "\n"
                                                  for ex in data.examples))
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def write_run_config(folder: Path, name: str, data: Path | None = None, eval_section: str = "", **train: object) -> Path:
    """A config with its store, runs and active adapter under `folder`; `train` overrides [train]."""
    settings = {"max_steps": 10, "eval_every": 5, "checkpoint_every": 5, "learning_rate": 2e-4,
                "promote_epsilon": 0.01} | train
    lines = ["[model]", 'backend = "torch"', "[store]", f'path = "{folder / "db.sqlite"}"',
             f'runs_root = "{folder / "runs"}"', "[serving]", f'active_adapter = "{folder / "active" / "reranker"}"',
             "[data]"]
    if data is not None:
        lines.append(f'path = "{data}"')
    lines += ["[train]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    if eval_section:
        lines += ["[eval]", eval_section]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_store(db: Path, run_id: str):
    """(run record, its events, its artifacts) from a store on disk."""
    from store import RunStore

    async def read():
        store = await RunStore.open(db)
        try:
            return (await store.get_run(run_id), [e.event for e in await store.events_since(run_id, 0, 100_000)],
                    await store.artifacts(run_id))
        finally:
            await store.close()

    return asyncio.run(read())
