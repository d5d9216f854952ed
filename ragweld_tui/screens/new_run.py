"""Start a new run: load a config file, or edit the main settings in a form.

Both paths go through the same pydantic models as `config.toml` (`load_config` / `parse_config`),
so the form refuses exactly what a config file would, with the same `[section].key` messages.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from backends.catalog import CatalogEntry, describe_model, known_entries, model_catalog, model_ids
from ragweld_tui.config import AppConfig, load_config
from ragweld_tui.errors import UserError
from ragweld_tui.forms import FORM_FIELDS, MODEL_PLACEHOLDER, apply_form, form_values
from ragweld_tui.messages import CatalogLoaded
from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar


def field_id(name: str) -> str:
    """Widget id for a dotted setting name."""
    return "f-" + name.replace(".", "-").replace("_", "-")


BASE_ID, KIND_ID = field_id("model.base"), field_id("train.kind")


def model_suggestions(entries: list[CatalogEntry], kind: str) -> list[str]:
    """The catalog's ids for the base-model field: the run kind's models first (available ones leading)."""
    wanted = model_ids(entries, "chat" if kind == "agent" else "reranker")
    return wanted + [i for i in model_ids(entries) if i not in wanted]


class NewRunScreen(AppModalScreen[AppConfig | None]):
    """Dismisses with the validated config to train, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "start", "Start run", priority=True),
        Binding("ctrl+o", "load_file", "Load config file", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, config: AppConfig, config_path: str | None = None) -> None:
        super().__init__()
        self.base = config
        self.config_path = config_path or ""
        self.catalog: list[CatalogEntry] = known_entries()  # the cache's models join when the scan is done

    def compose(self) -> ComposeResult:
        values = form_values(self.base)
        tomls = sorted(str(p) for p in Path.cwd().glob("*.toml"))
        with Vertical(id="dialog"):
            yield Static("New run · edit settings, or load a config file (ctrl+o)", classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Config file", classes="form-label")
                yield Input(self.config_path, placeholder="path/to/config.toml", id="config-file", compact=True,
                            suggester=SuggestFromList(tomls, case_sensitive=True))
            with Grid(id="form"):
                for field in FORM_FIELDS:
                    yield Label(field.label, classes="form-label")
                    placeholder = " | ".join(field.choices)
                    suggester = SuggestFromList(field.choices) if field.choices else None
                    if field.name == "model.base":  # the catalog's models; any folder or hub id still typed freely
                        placeholder = MODEL_PLACEHOLDER
                        suggester = SuggestFromList(model_suggestions(self.catalog, values["train.kind"]))
                    yield Input(values[field.name], placeholder=placeholder, id=field_id(field.name), compact=True,
                                suggester=suggester)
            yield Static(describe_model(self.catalog, values["model.base"], with_id=False), id="model-info",
                         classes="dialog-hint", markup=False)
            yield Static("", id="form-errors", markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self._scan_catalog()

    @work(thread=True, exclusive=True, group="catalog")
    def _scan_catalog(self) -> None:
        """Worker: the catalog with the local Hugging Face cache (a disk scan, off the event loop)."""
        entries, warnings = model_catalog(configured=[self.base.model.base])
        self.post_message(CatalogLoaded(entries, warnings))

    @on(CatalogLoaded)
    def _catalog_loaded(self, message: CatalogLoaded) -> None:
        self.catalog = message.entries
        self._refresh_models()
        if message.warnings:
            self._show_error("\n".join(message.warnings))

    @on(Input.Changed, f"#{BASE_ID}, #{KIND_ID}")
    def _refresh_models(self) -> None:
        """Offer the catalog's models of the run's kind and describe the one typed."""
        base = self.query_one(f"#{BASE_ID}", Input)
        base.suggester = SuggestFromList(model_suggestions(self.catalog, self.query_one(f"#{KIND_ID}", Input).value))
        self.query_one("#model-info", Static).update(describe_model(self.catalog, base.value.strip(), with_id=False))

    def _values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#{field_id(f.name)}", Input).value for f in FORM_FIELDS}

    def _show_error(self, text: str) -> None:
        self.query_one("#form-errors", Static).update(text)

    def action_load_file(self) -> None:
        """Validate the named config file and fill the form from it."""
        path = self.query_one("#config-file", Input).value.strip()
        if not path:
            self._show_error("Type a config file path first.")
            return
        try:
            self.base = load_config(path)
        except UserError as exc:
            self._show_error(str(exc))
            return
        for name, value in form_values(self.base).items():
            self.query_one(f"#{field_id(name)}", Input).value = value
        self._show_error(f"Loaded {path}.")

    @on(Input.Submitted, "#config-file")
    def _file_submitted(self) -> None:
        self.action_load_file()

    @on(Input.Submitted, "#form Input")
    def _form_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        """Validate the form against the config models and close with the config."""
        try:
            config = apply_form(self.base, self._values())
        except UserError as exc:
            self._show_error(str(exc))
            return
        self.dismiss(config)

    def action_cancel(self) -> None:
        """Close without starting anything."""
        self.dismiss(None)
