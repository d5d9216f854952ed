"""The debug prompt's scoring side: parse REPL input, score base vs adapter, compare the rankings.

`ScorerPair` owns two `RerankService`s (the plain base and the adapter), created the first time a
query is scored; each loads its model in a thread on first use, so torch or mlx is never imported
when the TUI starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from backends.settings import scorer_settings
from ragweld_tui.config import AppConfig

if TYPE_CHECKING:
    from backends.service import RerankService

Backend = Literal["auto", "mlx", "torch"]  # the choices of [model].backend
BACKENDS: tuple[Backend, ...] = ("auto", "mlx", "torch")

REPL_HELP = """\
[b]Reranker mode[/b]: type [i]query | document | document …[/i] and press enter.
  A line without '|' scores the query against the documents you gave last (or set with /docs).
[b]Agent mode[/b]: type a message; the active agent adapter's reply streams in (ctrl+x stops it).
/docs A | B | C        set the documents
/backend [auto|mlx|torch]   show or set the backend (reloads the models)
/model [ID|PATH]       show the models to pick from (`ragweld-tui models`), or set the mode's model
/adapter [PATH|active|none] show or set the adapter compared with the base (reranker mode)
/mode [reranker|agent] switch mode          /reset  new agent conversation
/clear                 clear the transcript      /help  this text
up/down: history · escape: leave the prompt (then 1-4 switch views, ? help)"""


@dataclass(frozen=True)
class Command:
    """A parsed REPL line: a slash command with its argument, or a query with optional documents."""

    name: str  # "query" for plain input
    arg: str = ""
    query: str = ""
    docs: tuple[str, ...] = ()


def parse_line(line: str) -> Command:
    """Split a REPL line into a command or a `query | doc | doc` request."""
    text = line.strip()
    if text.startswith("/"):
        name, _, arg = text[1:].partition(" ")
        return Command(name.lower(), arg.strip())
    parts = [p.strip() for p in text.split("|")]
    return Command("query", query=parts[0], docs=tuple(p for p in parts[1:] if p))


def parse_backend(text: str) -> Backend | None:
    """The backend named by `text`, or None when it names none."""
    return next((name for name in BACKENDS if name == text), None)


def split_docs(arg: str) -> tuple[str, ...]:
    """Documents separated by '|'."""
    return tuple(p.strip() for p in arg.split("|") if p.strip())


def ranks(scores: list[float]) -> list[int]:
    """1-based rank of each item, highest score first (ties keep input order)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    out = [0] * len(scores)
    for rank, index in enumerate(order, 1):
        out[index] = rank
    return out


def compare_rows(docs: list[str], base: list[float], tuned: list[float] | None) -> list[dict[str, Any]]:
    """Per document: base score and rank, adapter score and rank, rank change (positive = moved up)."""
    base_ranks = ranks(base)
    tuned_ranks = ranks(tuned) if tuned is not None else None
    rows = []
    for i, doc in enumerate(docs):
        row: dict[str, Any] = {"index": i, "doc": doc, "base": base[i], "base_rank": base_ranks[i],
                               "tuned": None, "tuned_rank": None, "change": None}
        if tuned is not None and tuned_ranks is not None:
            row.update(tuned=tuned[i], tuned_rank=tuned_ranks[i], change=base_ranks[i] - tuned_ranks[i])
        rows.append(row)
    key = "tuned_rank" if tuned is not None else "base_rank"
    return sorted(rows, key=lambda r: r[key])


@dataclass
class ScorerPair:
    """The base scorer and the adapter scorer for the REPL; rebuilt when backend or adapter change."""

    config: AppConfig
    backend: Backend | None = None
    model: str | None = None  # None: the config's reranker (`/model` sets another)
    adapter: Path | None = None  # None: the configured active adapter folder
    use_adapter: bool = True
    _base: RerankService | None = field(default=None, repr=False)
    _tuned: RerankService | None = field(default=None, repr=False)

    def adapter_dir(self) -> Path | None:
        """The adapter folder compared with the base, if it holds a finished adapter."""
        if not self.use_adapter:
            return None
        folder = self.adapter or self.config.active_adapter_dir()
        return folder if (folder / "manifest.json").is_file() else None

    def describe(self) -> str:
        """One line naming the model, backend and adapter."""
        folder = self.adapter_dir()
        wanted = "none" if not self.use_adapter else str(self.adapter or self.config.active_adapter_dir())
        adapter = str(folder) if folder else f"none ({wanted} has no adapter)" if self.use_adapter else "none"
        backend = self.backend or self.config.model.backend
        return f"model {self.model_ref()} · backend {backend} · adapter {adapter}"

    def model_ref(self) -> str:
        """The reranker scored with: the one set with `/model`, else the config's."""
        return self.model or self.config.rerank_model()

    async def _services(self) -> tuple[RerankService, RerankService | None]:
        if self._base is None:
            from backends.service import RerankService  # no framework at import: the model loads on first use

            cfg = self.config
            settings = replace(scorer_settings(cfg.model, cfg.prompt, cfg.scoring, self.model_ref()),
                               backend=self.backend or cfg.model.backend)
            self._base = RerankService(settings, None)
            folder = self.adapter_dir()
            self._tuned = None if folder is None else RerankService(
                settings, folder, reload_check_s=cfg.serving.reload_check_s)
        return self._base, self._tuned

    async def score(self, query: str, docs: list[str]) -> tuple[list[dict[str, Any]], str]:
        """Score with base and adapter; returns the comparison rows and a stats line."""
        base, tuned = await self._services()
        rb = await base.score(query, docs)
        rt = await tuned.score(query, docs) if tuned is not None else None
        tuned_scores = None if rt is None else [s.probability for s in rt.scores]
        rows = compare_rows(docs, [s.probability for s in rb.scores], tuned_scores)
        info = f"base {rb.stats.seconds * 1000:.0f} ms"
        if rb.load_seconds:
            info += f" (+{rb.load_seconds:.1f} s load)"
        if rt is not None:
            info += f" · adapter {rt.stats.seconds * 1000:.0f} ms"
            if rt.adapter_fingerprint is None and tuned is not None:
                info += " · adapter not applied: " + (tuned.last_adapter_error or "not loaded")
        else:
            info += " · no adapter to compare (promote a run, or /adapter PATH)"
        return rows, info

    async def close(self) -> None:
        """Unload both models."""
        for service in (self._base, self._tuned):
            if service is not None:
                await service.close()
        self._base = self._tuned = None
