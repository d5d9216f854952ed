"""The debug prompt (mode `repl`): reranker mode scores a query with the base model and the active
adapter side by side; agent mode chats with the active agent adapter, the reply streaming in.

Models load lazily on the first query, in threads, so opening this view is free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, RichLog

from backends.catalog import CatalogEntry, describe_model, known_entries, model_catalog
from ragweld_tui.chatting import AgentChat
from ragweld_tui.messages import CatalogLoaded, ChatDone, ChatProgress, ReplOutput, ScoreDone
from ragweld_tui.scoring import BACKENDS, REPL_HELP, ScorerPair, parse_backend, parse_line, split_docs
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.widgets.history_input import HistoryInput
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.status_line import StatusLine

RERANKER_PLACEHOLDER = "query | doc | doc …   (/help)"
AGENT_PLACEHOLDER = "message to the agent …   (/help, /reset)"


def results_table(rows: list[dict[str, Any]], width: int) -> Table:
    """Base vs adapter scores and ranks, best (adapter) first, with the rank change."""
    table = Table(expand=False, box=None, pad_edge=False, padding=(0, 1))
    for name in ("#", "base", "rk", "adapter", "rk", "Δ"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("document", justify="left", no_wrap=True)
    doc_width = max(10, width - 40)
    for r in rows:
        change = r["change"]
        delta = Text("—", style="dim") if change is None else Text("=", style="dim") if change == 0 else (
            Text(f"↑{change}", style="green") if change > 0 else Text(f"↓{-change}", style="red"))
        doc = " ".join(r["doc"].split())
        table.add_row(str(r["index"]), f"{r['base']:.4f}", str(r["base_rank"]),
                      "—" if r["tuned"] is None else f"{r['tuned']:.4f}",
                      "—" if r["tuned_rank"] is None else str(r["tuned_rank"]), delta,
                      doc if len(doc) <= doc_width else doc[: doc_width - 1] + "…")
    return table


class ReplScreen(AppScreen[None]):
    """A transcript and a prompt with history; slash commands change backend, adapter and mode."""

    HELP = REPL_HELP

    BINDINGS = [
        Binding("escape", "leave_prompt", "Leave prompt"),
        # Letters always go to the prompt (see on_key); this binding shadows the app's `q Quit`, which
        # must never fire here (ctrl+q quits from any screen).
        Binding("q", "type('q')", show=False),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("ctrl+x", "stop_reply", "Stop reply"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.mode = "reranker"
        self.docs: tuple[str, ...] = ()
        self.scorers: ScorerPair | None = None
        self.chat: AgentChat | None = None
        self.busy = False
        self.partial = ""
        self.catalog: list[CatalogEntry] = known_entries()  # the cache's models join when the scan is done

    def compose(self) -> ComposeResult:
        yield StatusLine("", id="repl-status", classes="view-title")
        yield RichLog(id="transcript", wrap=True, markup=True, auto_scroll=True)
        yield StatusLine("", id="live-reply")
        yield HistoryInput(placeholder=RERANKER_PLACEHOLDER, id="prompt", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.scorers = ScorerPair(self.ragweld_app.config)
        self.chat = AgentChat(self.ragweld_app.config)
        self._status()
        self._scan_catalog()
        self.query_one(RichLog).write("Debug prompt. Type /help for commands.")
        self.query_one(HistoryInput).focus()

    def _status(self) -> None:
        assert self.scorers is not None and self.chat is not None
        text = f"mode {self.mode} · " + (self.chat.describe() if self.mode == "agent" else self.scorers.describe())
        if self.docs and self.mode == "reranker":
            text += f" · {len(self.docs)} docs"
        self.query_one("#repl-status", StatusLine).show(text)

    def _say(self, text: str | Table | Text) -> None:
        self.query_one(RichLog).write(text)

    @on(Input.Submitted, "#prompt")
    async def _submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        prompt = self.query_one(HistoryInput)
        prompt.remember(line)
        prompt.value = ""
        if line:
            self._say(Text(f"> {line}", style="bold"))
            await self.handle_line(line)

    async def handle_line(self, line: str) -> None:
        """Run one REPL line: a slash command, or a query to score."""
        assert self.scorers is not None and self.chat is not None
        cmd = parse_line(line)
        if self.mode == "agent" and not line.startswith("/"):
            self._send(line)
        elif cmd.name == "help":
            self._say(REPL_HELP)
        elif cmd.name == "clear":
            self.action_clear()
        elif cmd.name == "reset":
            self.chat.reset()
            self._say("(new agent conversation)")
        elif cmd.name == "docs":
            self.docs = split_docs(cmd.arg)
            self._say(f"{len(self.docs)} documents set.")
        elif cmd.name == "mode":
            self._set_mode(cmd.arg)
        elif cmd.name == "backend":
            await self._set_backend(cmd.arg)
        elif cmd.name == "model":
            await self._set_model(cmd.arg)
        elif cmd.name == "adapter":
            await self._set_adapter(cmd.arg)
        elif cmd.name == "query":
            self._query(cmd.query, cmd.docs)
        else:
            self._say(f"[red]unknown command /{cmd.name}[/red] (try /help)")
        self._status()

    def _set_mode(self, arg: str) -> None:
        if arg in ("", self.mode):
            self._say(f"mode: {self.mode}")
        elif arg == "agent":
            self.mode = "agent"
            self.query_one(HistoryInput).placeholder = AGENT_PLACEHOLDER
            self._say("mode: agent · type a message; the reply streams in (the model loads on the first one)")
        elif arg == "reranker":
            self.mode = "reranker"
            self.query_one(HistoryInput).placeholder = RERANKER_PLACEHOLDER
            self._say("mode: reranker")
        else:
            self._say("[red]modes: reranker, agent[/red]")

    async def _set_backend(self, arg: str) -> None:
        assert self.scorers is not None
        if not arg:
            current = self.scorers.backend or self.scorers.config.model.backend
            self._say(f"backend: {current} (choices: {', '.join(BACKENDS)})")
            return
        backend = parse_backend(arg)
        if backend is None:
            self._say(f"[red]backend must be one of {', '.join(BACKENDS)}[/red]")
            return
        assert self.chat is not None
        await self.scorers.close()
        await self.chat.close()
        self.scorers.backend = self.chat.backend = backend
        self._say(f"backend: {arg} (models reload on the next query)")

    async def _set_model(self, arg: str) -> None:
        """`/model`: the current model and the catalog's choices for this mode; `/model ID` switches."""
        assert self.scorers is not None and self.chat is not None
        kind = "chat" if self.mode == "agent" else "reranker"
        current = self.chat.config.chat_model(self.chat.model) if kind == "chat" else self.scorers.model_ref()
        if not arg:
            self._say(f"model: {current}")
            self._say(Text("\n".join(f"  {e.summary()}" for e in self.catalog if e.kind in (kind, "other")),
                           style="dim"))
            return
        if kind == "chat":
            await self.chat.close()
            self.chat.model = arg
        else:
            await self.scorers.close()
            self.scorers.model = arg
        then = "message" if kind == "chat" else "query"
        self._say(f"model: {describe_model(self.catalog, arg)} (loads on the next {then})")

    @work(thread=True, exclusive=True, group="catalog")
    def _scan_catalog(self) -> None:
        """Worker: the catalog with the local Hugging Face cache (a disk scan, off the event loop)."""
        assert self.scorers is not None
        entries, warnings = model_catalog(configured=[self.scorers.model_ref()])
        self.post_message(CatalogLoaded(entries, warnings))

    @on(CatalogLoaded)
    def _catalog_loaded(self, message: CatalogLoaded) -> None:
        self.catalog = message.entries
        for line in message.warnings:
            self._say(f"[yellow]{line}[/yellow]")

    async def _set_adapter(self, arg: str) -> None:
        assert self.scorers is not None
        if not arg:
            self._say(self.scorers.describe())
            return
        if arg == "none":
            self.scorers.use_adapter, self.scorers.adapter = False, None
        elif arg == "active":
            self.scorers.use_adapter, self.scorers.adapter = True, None
        else:
            folder = Path(arg).expanduser()
            if not (folder / "manifest.json").is_file():
                self._say(f"[red]{folder} is not an adapter folder (no manifest.json)[/red]")
                return
            self.scorers.use_adapter, self.scorers.adapter = True, folder
        await self.scorers.close()
        self._say(self.scorers.describe())

    def _query(self, query: str, docs: tuple[str, ...]) -> None:
        if docs:
            self.docs = docs
        if not query:
            self._say("[red]empty query[/red]")
        elif not self.docs:
            self._say("[red]no documents: type query | doc | doc, or set them with /docs[/red]")
        elif self.busy:
            self._say("[yellow]still scoring the previous query…[/yellow]")
        else:
            self.busy = True
            self._say(f"[dim]scoring {len(self.docs)} documents…[/dim]")
            self._score(query, list(self.docs))

    @work(exclusive=True, group="score")
    async def _score(self, query: str, docs: list[str]) -> None:
        """Worker: score base and adapter (models load lazily, in threads) and post the comparison."""
        assert self.scorers is not None
        try:
            rows, info = await self.scorers.score(query, docs)
        except Exception as exc:  # a missing model, a bad adapter, an unavailable backend: show it, keep going
            self.post_message(ReplOutput(f"[red]scoring failed: {type(exc).__name__}: {exc}[/red]", "error"))
            return
        self.post_message(ScoreDone(query, rows, info))

    @on(ScoreDone)
    def _scored(self, message: ScoreDone) -> None:
        self.busy = False
        self._say(results_table(message.rows, self.size.width))
        self._say(f"[dim]{message.info}[/dim]")

    def _send(self, text: str) -> None:
        if self.busy:
            self._say("[yellow]still busy with the previous request… (ctrl+x stops a reply)[/yellow]")
            return
        self.busy, self.partial = True, ""
        self.query_one("#live-reply", StatusLine).add_class("-active")
        self._chat(text)

    @work(exclusive=True, group="chat")
    async def _chat(self, text: str) -> None:
        """Worker: stream the agent's reply, posting the text so far after every piece."""
        assert self.chat is not None
        reply, start, first = "", time.perf_counter(), None
        try:
            async for piece in self.chat.stream(text):
                first = first or time.perf_counter()
                reply += piece
                self.post_message(ChatProgress(reply))
        except Exception as exc:  # no model, a refused adapter, a bad request: show it, keep going
            self.post_message(ReplOutput(f"[red]chat failed: {type(exc).__name__}: {exc}[/red]", "error"))
            return
        end = time.perf_counter()
        info = f"first piece after {(first or end) - start:.2f} s, reply in {end - start:.2f} s"
        self.post_message(ChatDone(reply, info))

    @on(ChatProgress)
    def _chat_progress(self, message: ChatProgress) -> None:
        if not self.busy:  # a piece that was queued when the reply was stopped
            return
        self.partial = message.text
        self.query_one("#live-reply", StatusLine).show(f"agent> {message.text}")

    @on(ChatDone)
    def _chat_done(self, message: ChatDone) -> None:
        self._end_reply()
        self._say(Text(f"agent> {message.text}"))
        self._say(f"[dim]{message.info}[/dim]")
        self._status()

    def _end_reply(self) -> None:
        self.busy, self.partial = False, ""
        live = self.query_one("#live-reply", StatusLine)
        live.show("")
        live.remove_class("-active")

    def action_stop_reply(self) -> None:
        """Stop the agent's reply now (what was generated so far stays in the transcript)."""
        if self.mode != "agent" or not self.busy:
            self.notify("No reply is streaming.")
            return
        self.workers.cancel_group(self, "chat")
        partial = self.partial
        self._end_reply()
        self._say(Text(f"agent> {partial} [stopped]"))

    @on(ReplOutput)
    def _output(self, message: ReplOutput) -> None:
        self._end_reply()
        self._say(message.text)

    def action_leave_prompt(self) -> None:
        """Unfocus the prompt so the view keys (1-4, ?) and ctrl keys work; letters still type."""
        self.set_focus(None)

    def action_focus_prompt(self) -> None:
        """Focus the prompt."""
        self.query_one(HistoryInput).focus()

    def view_shown(self) -> None:
        """Back on the prompt (`4`): typing goes to the input again."""
        self.action_focus_prompt()

    def on_screen_resume(self) -> None:
        self.action_focus_prompt()

    def on_key(self, event: events.Key) -> None:
        """A letter typed while the prompt is unfocused starts typing there: on a typing screen a letter
        is never a command (`q` would otherwise quit and lose the transcript)."""
        char = event.character
        if self.query_one(HistoryInput).has_focus or not event.is_printable or not char or not char.isalpha():
            return
        event.stop()
        event.prevent_default()
        self.action_type(char)

    def action_type(self, text: str) -> None:
        """Focus the prompt and type `text` into it."""
        prompt = self.query_one(HistoryInput)
        prompt.focus()
        prompt.insert_text_at_cursor(text)

    def action_clear(self) -> None:
        """Clear the transcript."""
        self.query_one(RichLog).clear()

    async def on_unmount(self) -> None:
        if self.scorers is not None:
            await self.scorers.close()
        if self.chat is not None:
            await self.chat.close()
