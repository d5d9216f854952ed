"""Base classes of every screen: `ragweld_app` is the running `RagweldApp`, typed.

Textual types `Screen.app` as a plain `App`; the app's store, config and long actions are reached
through this property instead (elia's `screens/` do the same), so a typo is a type error, not an
`AttributeError` at the first key press. The app module is imported for the type checker only:
it imports the screens, so a runtime import here would be a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual.screen import ModalScreen, Screen, ScreenResultType

from store import RunRecord

if TYPE_CHECKING:
    from ragweld_tui.app import RagweldApp


class AppScreen(Screen[ScreenResultType]):
    """A full screen (a mode or a pushed drill-down) of the ragweld app."""

    @property
    def ragweld_app(self) -> RagweldApp:
        """The app this screen belongs to."""
        return cast("RagweldApp", self.app)

    def request_refresh(self) -> None:
        """Re-read what the screen shows from the store (the app asks after a long action ends);
        screens that show stored data override it."""

    def pick_run(self, runs: list[RunRecord], prompt: str, then: Callable[[str], None],
                 exclude: str | None = None) -> None:
        """Let the user choose one of `runs` (but `exclude`); `then(run_id)` runs unless cancelled."""
        from ragweld_tui.screens.run_picker import RunPickerScreen  # it is an AppModalScreen: imported late

        def chosen(run_id: str | None) -> None:
            if run_id:
                then(run_id)

        self.app.push_screen(RunPickerScreen(runs, prompt, exclude=exclude), chosen)

    def show_diff(self, a: str, b: str) -> None:
        """Push the diff of run `a` against run `b`."""
        from ragweld_tui.screens.diff import DiffScreen  # a screen itself: imported late

        self.app.push_screen(DiffScreen(a, b))


class AppModalScreen(ModalScreen[ScreenResultType]):
    """A dialog of the ragweld app (dismisses with a `ScreenResultType`)."""

    @property
    def ragweld_app(self) -> RagweldApp:
        """The app this dialog belongs to."""
        return cast("RagweldApp", self.app)
