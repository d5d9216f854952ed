"""Lists and tables that move the way lazygit and k9s users expect: j/k down/up, g/G and Home/End
to the first/last row (DataTable's own Home/End scroll sideways, which a row cursor never wants)."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable, OptionList, RichLog

CellType = TypeVar("CellType")


def nav_bindings(down: str, up: str, first: str, last: str, *, first_keys: str = "g", last_keys: str = "G",
                 extra_down: str = "", extra_up: str = "", ends: tuple[str, str] = ("First", "Last")) -> list[BindingType]:
    """j/k and g/G (plus any extra keys) bound to a widget's own down/up/first/last actions, unshown."""
    return [
        Binding("j" + extra_down, down, "Down", show=False),
        Binding("k" + extra_up, up, "Up", show=False),
        Binding(first_keys, first, ends[0], show=False),
        Binding(last_keys, last, ends[1], show=False),
    ]


class NavTable(DataTable[CellType]):
    """A DataTable with j/k/g/G and Home/End on rows."""

    BINDINGS: ClassVar[list[BindingType]] = nav_bindings("cursor_down", "cursor_up", "scroll_top", "scroll_bottom",
                                                         first_keys="g,home", last_keys="G,end")


class NavOptionList(OptionList):
    """An OptionList with j/k/g/G (Home/End are OptionList's own)."""

    BINDINGS: ClassVar[list[BindingType]] = nav_bindings("cursor_down", "cursor_up", "first", "last")


class NavLog(RichLog):
    """A RichLog scrolled with j/k, g/G and Home/End."""

    BINDINGS: ClassVar[list[BindingType]] = nav_bindings("scroll_down", "scroll_up", "scroll_home", "scroll_end",
                                                         first_keys="g,home", last_keys="G,end",
                                                         extra_down=",down", extra_up=",up", ends=("Top", "Bottom"))
