"""Lists and tables that move the way lazygit and k9s users expect: j/k down/up, g/G and Home/End
to the first/last row (DataTable's own Home/End scroll sideways, which a row cursor never wants)."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable, OptionList, RichLog

CellType = TypeVar("CellType")


class NavTable(DataTable[CellType]):
    """A DataTable with j/k/g/G and Home/End on rows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "scroll_top", "First", show=False),
        Binding("G,end", "scroll_bottom", "Last", show=False),
    ]


class NavOptionList(OptionList):
    """An OptionList with j/k/g/G (Home/End are OptionList's own)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
    ]


class NavLog(RichLog):
    """A RichLog scrolled with j/k, g/G and Home/End."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
        Binding("g,home", "scroll_home", "Top", show=False),
        Binding("G,end", "scroll_end", "Bottom", show=False),
    ]
