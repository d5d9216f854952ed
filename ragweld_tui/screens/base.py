"""Base classes of every screen: `ragweld_app` is the running app, typed.

Textual types `Screen.app` as a plain `App`; the app's store, config and long actions are reached
through this property instead (elia's `screens/` do the same), so a typo is a type error, not an
`AttributeError` at the first key press. It is typed as the `Studio` protocol, not the app class:
the app imports the screens, so the screens must not import the app.
"""

from __future__ import annotations

from typing import cast

from textual.screen import ModalScreen, Screen, ScreenResultType

from ragweld_tui.studio import Studio


class AppScreen(Screen[ScreenResultType]):
    """A full screen (a mode or a pushed drill-down) of the ragweld app."""

    @property
    def ragweld_app(self) -> Studio:
        """The app this screen belongs to."""
        return cast(Studio, self.app)

    def view_shown(self) -> None:
        """The view's key (1-4) was pressed while it shows, or it was switched to: screens that take
        typing (the prompt) focus their input here."""

    def request_refresh(self) -> None:
        """Re-read what the screen shows from the store (the app asks after a long action ends);
        screens that show stored data override it."""


class AppModalScreen(ModalScreen[ScreenResultType]):
    """A dialog of the ragweld app (dismisses with a `ScreenResultType`)."""

    @property
    def ragweld_app(self) -> Studio:
        """The app this dialog belongs to."""
        return cast(Studio, self.app)
