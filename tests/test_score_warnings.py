"""`ragweld-tui score` prints results and nothing else: no framework warning on stderr.

The prefix-reuse path passed its key/value cache under transformers' old name (`past_key_values`),
which printed a deprecation warning on every run with several documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.trainers.run_helpers import REPO

DOCS = ["Citation indexes link papers to the papers that cite them.", "Bread needs flour, water and yeast.",
        "Indexing scientific journals by their citations.", "A cat sat on the mat."]


def test_score_with_several_documents_writes_nothing_to_stderr() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # every warning, including the once-only ones
    proc = subprocess.run([sys.executable, "-m", "ragweld_tui.cli", "score", "-q", "citation indexing",
                           *sum((["-d", d] for d in DOCS), []), "--backend", "torch", "--no-adapter", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(json.loads(proc.stdout)["results"]) == len(DOCS)
