"""The bad-input table: every user mistake is one line on stderr naming the file:line or the setting,
exit code 2, no traceback, and nothing created or changed (files, the store's rows).

Each case runs the CLI's `main()` in this process (the same entry point `ragweld-tui` runs; an
exception escaping it would be the traceback) against a fresh copy of a small prepared world: a
store with a completed run (adapter included), an interrupted one and an agent run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragweld_tui.cli import main
from tests.trainers.run_helpers import run_cli, store_runs, write_config
from tests.trainers.verdict_helpers import write_demo_beir

UNKNOWN = "r20260101-000000-0000abcd"


@dataclass
class World:
    """The prepared folder of one case and the ids in its store."""

    root: Path
    done: str
    interrupted: str
    agent: str

    @property
    def db(self) -> Path:
        return self.root / "db.sqlite"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def toml(self, settings: dict[str, str], name: str = "c.toml") -> str:
        """The world's valid config with `section.key = raw TOML` settings replaced or added."""
        lines = self.config.read_text().splitlines()
        for dotted, raw in settings.items():
            section, key = dotted.split(".", 1)
            if f"[{section}]" not in lines:
                lines += [f"[{section}]"]
            start = lines.index(f"[{section}]") + 1
            end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
            at = next((i for i in range(start, end) if lines[i].split("=")[0].strip() == key), None)
            if at is None:
                lines.insert(start, f"{key} = {raw}")
            else:
                lines[at] = f"{key} = {raw}"
        path = self.root / name
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def adapter_copy(self, name: str) -> Path:
        target = self.root / name
        shutil.copytree(self.root / "runs" / self.done / "adapter", target)
        return target


def _reseal(folder: Path) -> None:
    """Rewrite the manifest's hashes to match the (damaged) files: only a deeper check can tell."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    config = write_config(root, "torch", max_steps=2, eval_every=2, checkpoint_every=2, auto_promote=False)
    assert run_cli("--run", str(config)).returncode == 0
    (done,) = store_runs(root / "db.sqlite")

    async def more() -> tuple[str, str]:
        from store import RunStore

        async with await RunStore.open(root / "db.sqlite") as store:
            interrupted = await store.create_run("reranker", "cut", config=done.config,
                                                 dataset_fingerprint=done.dataset_fingerprint)
            await store.set_status(interrupted, "running")
            await store.set_status(interrupted, "interrupted")
            agent = await store.create_run("agent", "agent")
            await store.set_status(agent, "running")
            await store.set_status(agent, "interrupted")
            return interrupted, agent

    interrupted, agent = asyncio.run(more())
    write_demo_beir(root / "beir", n_queries=12)
    return World(root, done.id, interrupted, agent)


@pytest.fixture
def world(prepared: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    root = tmp_path / "w"
    shutil.copytree(prepared.root, root, symlinks=True)
    for path in (root / "config.toml",):
        path.write_text(path.read_text().replace(str(prepared.root), str(root)))
    monkeypatch.setenv("RAGWELD_HOME", str(root / "home"))
    monkeypatch.chdir(root)
    return World(root, prepared.done, prepared.interrupted, prepared.agent)


def snapshot(root: Path) -> dict[str, object]:
    """Every file (size, mtime) and, for stores, their rows: what a refused command must not change."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.name.endswith(("-wal", "-shm")):
            continue
        if path.suffix == ".sqlite" and _rows(path) is not None:
            state[name] = _rows(path)
        elif path.is_symlink():
            state[name] = ("link", os.readlink(path))
        else:
            stat = path.stat()
            state[name] = ("dir",) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return state


def _rows(path: Path) -> list | None:
    """Every table's rows of a SQLite file (None: not a readable database)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return [(t, conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall()) for t in tables]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


@dataclass
class Case:
    """argv (a function of the world, after `setup`), what stderr must name, and the environment."""

    argv: Callable[[World], list[str]]
    says: str
    setup: Callable[[World], None] = lambda w: None
    env: dict[str, str] = field(default_factory=dict)


def run_with(**settings: str) -> Callable[[World], list[str]]:
    """`--run` a config whose `section__key` settings are set to these raw TOML values."""
    return lambda w: ["--run", w.toml({k.replace("__", "."): v for k, v in settings.items()})]


def with_config(*args: str, **settings: str) -> Callable[[World], list[str]]:
    """A command (RUN_ID placeholders: DONE, CUT, AGENT) under the world's config plus `settings`."""
    def argv(w: World) -> list[str]:
        ids = {"DONE": w.done, "CUT": w.interrupted, "AGENT": w.agent}
        path = w.toml({k.replace("__", "."): v for k, v in settings.items()})
        return ["--config", path, *(ids.get(a, a) for a in args)]
    return argv


def _file(name: str, data: bytes | str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        path = w.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def _damage_version(w: World) -> None:
    version = w.root / "active" / ".versions" / "reranker" / w.done
    shutil.copytree(w.root / "runs" / w.done / "adapter", version)
    weights = next(version.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])


def _corrupt_adapter(w: World) -> None:
    folder = w.adapter_copy("bad-adapter")
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-64])
    _reseal(folder)


def _wrong_rank(w: World) -> None:
    folder = w.adapter_copy("bad-adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["r"] = config["r"] * 2
    (folder / "adapter_config.json").write_text(json.dumps(config))
    _reseal(folder)


def _dangling(w: World) -> None:
    (w.root / "active" / ".versions" / "reranker").mkdir(parents=True)
    os.symlink(f".versions/reranker/{w.done}", w.root / "active" / "reranker")


def _interrupted_running(w: World) -> None:
    with sqlite3.connect(w.db) as conn:  # a live owner: this very process, heartbeat fresh
        conn.execute("UPDATE runs SET status = 'running', owner_pid = ?, owner_host = ?, owner_token = 'x', "
                     "heartbeat_at = strftime('%s', 'now') WHERE id = ?", (os.getpid(), os.uname().nodename,
                                                                         w.interrupted))
    conn.close()



SCORE = ("score", "-q", "a query", "-d", "a document")
BEIR = '"beir"'
CASES: dict[str, Case] = {
    # -- the config file ------------------------------------------------------------------------
    "config missing": Case(lambda w: ["--run", "nope.toml"], "config file not found"),
    "config invalid TOML": Case(lambda w: ["--run", "bad.toml"], "invalid TOML", _file("bad.toml", "[train\n")),
    "config not UTF-8": Case(lambda w: ["--run", "bad.toml"], "not UTF-8", _file("bad.toml", b"\xff\xfe[x]\n")),
    "unknown key": Case(run_with(train__max_step="3"), "[train].max_step: unknown setting"),
    "unknown section": Case(run_with(trian__max_steps="3"), "trian: unknown setting"),
    "max_steps 0": Case(run_with(train__max_steps="0"), "[train].max_steps"),
    "int given as a string": Case(run_with(train__max_steps='"3"'), "[train].max_steps: Input should be a valid integer"),
    "bool given as a string": Case(run_with(model__trust_remote_code='"yes"'), "[model].trust_remote_code"),
    "int given as a float": Case(run_with(train__seed="1.0"), "[train].seed"),
    "bool given as an int": Case(run_with(train__auto_promote="1"), "[train].auto_promote"),
    "float given as a string": Case(run_with(train__learning_rate='"1e-3"'), "[train].learning_rate"),
    "promote_epsilon inf": Case(run_with(train__promote_epsilon="inf"), "[train].promote_epsilon"),
    "learning_rate nan": Case(run_with(train__learning_rate="nan"), "[train].learning_rate"),
    "learning_rate above 1": Case(run_with(train__learning_rate="2.0"), "[train].learning_rate"),
    "unknown backend": Case(run_with(model__backend='"jax"'), "[model].backend: must be one of"),
    "unknown device": Case(run_with(model__device='"tpu"'), "[model].device"),
    "unknown dtype": Case(run_with(model__dtype='"int3"'), "[model].dtype"),
    "empty base model": Case(run_with(model__base='""'), "[model].base"),
    "lora rank 0": Case(run_with(lora__rank="0"), "[lora].rank"),
    "lora alpha 0": Case(run_with(lora__alpha="0"), "[lora].alpha"),
    "lora dropout 1": Case(run_with(lora__dropout="1.0"), "[lora].dropout"),
    "lora no targets": Case(run_with(lora__target_modules="[]"), "[lora].target_modules"),
    "lora num_layers -2": Case(run_with(lora__num_layers="-2"), "[lora].num_layers"),
    "agent kind, reranker metric": Case(run_with(train__kind='"agent"', train__primary_metric='"mrr@10"'),
                                        "reranker metric"),
    "reranker kind, agent metric": Case(run_with(train__primary_metric='"eval_loss"'), "agent's metric"),
    "reranker kind, chat data": Case(run_with(data__format='"chat"'), "[data].format = 'chat'"),
    "unknown precision": Case(run_with(train__precision='"fp8"'), "[train].precision"),
    "gradient_checkpointing as a string": Case(run_with(train__gradient_checkpointing='"yes"'),
                                               "[train].gradient_checkpointing"),
    "compile as a string": Case(run_with(train__compile='"yes"'), "[train].compile"),
    "fp16 on the CPU": Case(run_with(train__precision='"fp16"'),
                            "[train].precision = 'fp16': the CPU has no fp16 matmul; use bf16 or fp32"),
    "mlx checkpointing with dropout": Case(run_with(model__backend='"mlx"', train__gradient_checkpointing="true",
                                                    lora__dropout="0.1"), "[train].gradient_checkpointing = true"),
    "unknown loss": Case(run_with(train__loss='"hinge"'), "[train].loss"),
    "dev_fraction above 1": Case(run_with(data__dev_fraction="1.5"), "[data].dev_fraction"),
    "group_size 1": Case(run_with(train__group_size="1"), "[train].group_size"),
    "prompt max_length 10": Case(run_with(prompt__max_length="10"), "[prompt].max_length"),
    "empty run name": Case(run_with(train__name='""'), "[train].name"),
    "token_budget 1": Case(run_with(scoring__token_budget="1"), "[scoring].token_budget"),
    "max_queries 1": Case(run_with(data__max_queries="1"), "[data].max_queries"),
    "negative_ratio 0": Case(run_with(data__negative_ratio="0"), "[data].negative_ratio"),
    "eval first_stage_k 0": Case(run_with(eval__first_stage_k="0"), "[eval].first_stage_k"),
    "max_steps as a table": Case(run_with(train__max_steps="{a = 1}"), "[train].max_steps"),
    "RAGWELD_BACKEND unknown": Case(run_with(), "RAGWELD_BACKEND", env={"RAGWELD_BACKEND": "jax"}),
    "RAGWELD_DEVICE unknown": Case(run_with(), "RAGWELD_DEVICE", env={"RAGWELD_DEVICE": "tpu9"}),
    "resume without a config kind match": Case(lambda w: ["--run", w.toml({}), "--resume", w.agent], "agent run"),
    # -- the store ------------------------------------------------------------------------------
    "--db a folder": Case(lambda w: ["--db", str(w.root / "runs"), "runs"], "is a folder"),
    "[store].path a folder": Case(with_config("runs", store__path='"runs"'), "is a folder"),
    "--db a folder for --run": Case(lambda w: ["--db", str(w.root / "runs"), "--run", w.toml({})], "is a folder"),
    "RAGWELD_HOME under a file": Case(lambda w: ["rollback"], "cannot create the store's folder",
                                      _file("afile", "x"), env={"RAGWELD_HOME": "afile/home"}),
    "--db not SQLite": Case(lambda w: ["--db", "junk.sqlite", "runs"], "not a SQLite database",
                            _file("junk.sqlite", b"\x00junk" * 200)),
    "--db another app's SQLite": Case(lambda w: ["--db", "other.sqlite", "runs"], "not a ragweld-tui store",
                                      lambda w: sqlite3.connect(w.root / "other.sqlite").execute(
                                          "CREATE TABLE t (x)").connection.commit()),
    # -- data and model, refused before the run exists ---------------------------------------------
    "data path missing": Case(run_with(data__path='"nope.jsonl"'), "data path not found"),
    "triplets bad JSON": Case(run_with(data__path='"t.jsonl"'), "t.jsonl:2:", _file("t.jsonl", '{"query": "q", "positives": ["p"], "negatives": ["n"]}\n{oops\n')),
    "triplets empty": Case(run_with(data__path='"t.jsonl"'), "t.jsonl", _file("t.jsonl", "")),
    "triplets not UTF-8": Case(run_with(data__path='"t.jsonl"'), "t.jsonl:1:", _file("t.jsonl", b"\xff\n")),
    "beir format on a file": Case(run_with(data__path='"t.jsonl"', data__format=BEIR), "needs a folder",
                                  _file("t.jsonl", "{}\n")),
    "triplets format on a folder": Case(run_with(data__path='"beir"', data__format='"triplets"'), "JSONL file"),
    "qrels_split with ..": Case(run_with(data__path='"beir"', data__qrels_split='"../../x"'), "[data].qrels_split"),
    "qrels_split unknown": Case(run_with(data__path='"beir"', data__qrels_split='"dev"'), "qrels file not found"),
    "target module unknown": Case(run_with(lora__target_modules='["nonexistent_proj"]'), "nonexistent_proj"),
    "num_layers 0": Case(run_with(lora__num_layers="0"), "[lora].num_layers"),
    "base model folder missing": Case(run_with(model__base='"/nonexistent/model"'), "/nonexistent/model"),
    # -- resume -----------------------------------------------------------------------------------
    "resume unknown run": Case(lambda w: ["--run", w.toml({}), "--resume", UNKNOWN], UNKNOWN),
    "resume malformed id": Case(lambda w: ["--run", w.toml({}), "--resume", "../x"], "run id"),
    "resume a completed run": Case(lambda w: ["--run", w.toml({}), "--resume", w.done], "is completed"),
    "resume with another learning rate": Case(lambda w: ["--run", w.toml({"train.learning_rate": "0.025"}),
                                                         "--resume", w.interrupted], "[train].learning_rate"),
    "resume with other data": Case(lambda w: ["--run", w.toml({"data.path": '"beir"'}), "--resume", w.interrupted],
                                   "data fingerprint"),
    "resume with another LoRA rank": Case(lambda w: ["--run", w.toml({"lora.rank": "4"}), "--resume", w.interrupted],
                                          "[lora].rank"),
    "resume with fewer steps": Case(lambda w: ["--run", w.toml({"train.max_steps": "1"}), "--resume", w.interrupted],
                                    "[train].max_steps"),
    "resume a run with a live owner": Case(lambda w: ["--run", w.toml({}), "--resume", w.interrupted],
                                           f"running under process {os.getpid()}", _interrupted_running),
    # -- runs -------------------------------------------------------------------------------------
    "runs show unknown": Case(with_config("runs", "show", UNKNOWN), UNKNOWN),
    "runs show malformed id": Case(with_config("runs", "show", "x"), "run id"),
    "runs export to a folder": Case(with_config("runs", "export", "DONE", "--csv", "-o", "runs"), "is a folder"),
    "runs export to a missing folder": Case(with_config("runs", "export", "DONE", "--csv", "-o", "no/where.csv"),
                                            "folder does not exist"),
    "runs export unknown": Case(with_config("runs", "export", UNKNOWN, "--jsonl"), UNKNOWN),
    "runs show without a store": Case(lambda w: ["--db", "none.sqlite", "runs", "show", UNKNOWN], "no store"),
    # -- promote and rollback ---------------------------------------------------------------------
    "promote unknown run": Case(with_config("promote", UNKNOWN), UNKNOWN),
    "promote malformed id": Case(with_config("promote", "nope"), "run id"),
    "promote an interrupted run": Case(with_config("promote", "CUT"), "only completed or cancelled"),
    "promote a damaged version folder": Case(with_config("promote", "DONE", "--force"), "cannot be installed",
                                             _damage_version),
    "rollback with nothing promoted": Case(with_config("rollback"), "nothing to roll back"),
    # -- score --------------------------------------------------------------------------------------
    "docs file not UTF-8": Case(with_config("score", "-q", "q", "--docs-file", "d.jsonl"), "d.jsonl:2: not UTF-8",
                                _file("d.jsonl", b'"ok"\n\xff\xfe\n')),
    "docs file missing": Case(with_config("score", "-q", "q", "--docs-file", "d.jsonl"), "d.jsonl: file not found"),
    "docs file bad JSON": Case(with_config("score", "-q", "q", "--docs-file", "d.jsonl"), "d.jsonl:1: invalid JSON",
                               _file("d.jsonl", "{oops\n")),
    "docs file a number": Case(with_config("score", "-q", "q", "--docs-file", "d.jsonl"), "d.jsonl:1: expected",
                               _file("d.jsonl", "3\n")),
    "empty query": Case(with_config("score", "-q", " ", "-d", "x"), "the query is empty"),
    "no documents": Case(with_config("score", "-q", "q"), "no documents"),
    "adapter folder missing": Case(with_config(*SCORE, "--adapter", "nope"), "adapter folder not found"),
    "dangling active link": Case(with_config(*SCORE), "which is missing", _dangling),
    "active folder without manifest": Case(with_config(*SCORE), "has no manifest.json",
                                           lambda w: (w.root / "active" / "reranker").mkdir(parents=True)),
    "corrupt adapter, matching hashes": Case(with_config(*SCORE, "--adapter", "bad-adapter"),
                                             "not a readable safetensors file", _corrupt_adapter),
    "adapter rank not its tensors": Case(with_config(*SCORE, "--adapter", "bad-adapter"), "does not match the tensors",
                                         _wrong_rank),
    "score model missing": Case(with_config(*SCORE, "--model", "/nonexistent/model"), "/nonexistent/model"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world: World, name: str, capfd: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    case.setup(world)
    argv = case.argv(world)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(world.root)
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.says in lines[0], lines[0]
    assert snapshot(world.root) == before
    assert not (world.root / "home").exists()


def test_the_table_is_long_enough() -> None:
    assert len(CASES) >= 60
