"""Loading reranker data from a `DataConfig`: the one entry point the trainers and the CLI call.

`format = "auto"` picks the loader from the path: a folder with `corpus.jsonl` is BEIR, a `.jsonl`
file is triplets, and no path at all is the bundled demo dataset. The data types and loaders are
re-exported here so callers need one import.
"""

from __future__ import annotations

from pathlib import Path

from trainers.settings import DataConfig, EvalConfig
from trainers.data_beir import load_beir
from trainers.data_model import DataReport, QueryExample, RerankDataset, fingerprint_examples
from trainers.data_triplets import load_triplets
from trainers.demo_data import make_demo_dataset
from trainers.errors import DataError

__all__ = [
    "DataError", "DataReport", "QueryExample", "RerankDataset", "detect_format", "fingerprint_examples",
    "load_beir", "load_dataset", "load_triplets", "make_demo_dataset",
]


def detect_format(path: Path) -> str:
    """"beir" for a folder holding corpus.jsonl, "triplets" for a .jsonl file; anything else is an error."""
    if not path.exists():
        raise DataError("data path not found", path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return "beir"
        raise DataError("folder has no corpus.jsonl, so it is not a BEIR folder "
                        "(give a triplet .jsonl file or a BEIR folder)", path)
    if path.suffix.lower() == ".jsonl":
        return "triplets"
    raise DataError("cannot tell the data format from the name; use a .jsonl triplet file or a BEIR folder, "
                    "or set data.format", path)


def load_dataset(config: DataConfig, evaluation: EvalConfig | None = None) -> RerankDataset:
    """Load the reranker data the config names (None: the bundled demo), honouring `max_queries`;
    BEIR folders also get each query's first-stage candidates as `evaluation` says."""
    evaluation = evaluation or EvalConfig()
    if config.format == "chat":
        raise DataError("data.format = 'chat' is training data for the agent, not for the reranker")
    if config.path is None:
        if config.format != "auto":
            raise DataError(f"data.format = {config.format!r} needs data.path (no path means the bundled demo)")
        return make_demo_dataset(max_queries=config.max_queries)
    path = Path(config.path).expanduser()
    if not path.exists():
        raise DataError("data path not found", path)
    fmt = detect_format(path) if config.format == "auto" else config.format
    if fmt == "beir":
        split = config.qrels_split
        if split in (".", "..") or any(c in split for c in "/\\\0"):  # a split name, never a path out of qrels/
            raise DataError(f"[data].qrels_split = {split!r} must be a split name like 'test' (no path separators "
                            "or '..')")
        if not path.is_dir():
            raise DataError("data.format = 'beir' needs a folder with corpus.jsonl, queries.jsonl and qrels/", path)
        return load_beir(path, split=config.qrels_split, bm25_candidates=config.bm25_candidates,
                         max_queries=config.max_queries, first_stage_k=evaluation.first_stage_k,
                         false_negative_margin=config.false_negative_margin if config.false_negative_guard else None)
    if not path.is_file():
        raise DataError("data.format = 'triplets' needs a JSONL file", path)
    return load_triplets(path, max_queries=config.max_queries)
