"""A footer that wraps: every binding of the screen stays visible in an 80-column pane.

Textual's Footer is one scrolling row, so on a narrow terminal most keys fall off the right edge.
This bar lists the same active bindings (key + description) and wraps onto a second or third line.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.dom import NoScreen
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    """The active bindings of its screen, wrapped, refreshed whenever they change."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
        max-height: 3;
        background: $footer-background;
        color: $footer-foreground;
        padding: 0 0;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._render_keys()

    def on_unmount(self) -> None:
        try:
            self.screen.bindings_updated_signal.unsubscribe(self)
        except NoScreen:
            pass

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._render_keys)

    def keys(self) -> list[tuple[str, str, bool]]:
        """(key as displayed, description, enabled) for every shown binding, deduplicated by action."""
        seen: set[str] = set()
        out = []
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            out.append((self.app.get_key_display(binding), binding.description, enabled))
        return out

    def _render_keys(self) -> None:
        if not self.is_attached or not self.is_mounted:
            return  # the screen was popped before this deferred refresh ran
        text = Text(no_wrap=False, overflow="fold")
        for key, description, enabled in self.keys():
            text.append(f" {key}", style="bold" if enabled else "dim")
            text.append(f" {description} ", style="" if enabled else "dim")
        self.update(text)
