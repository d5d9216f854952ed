"""Helpers shared by commands: config loading and turning library errors into UserErrors."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from ragweld_tui.config import AppConfig, load_config
from ragweld_tui.errors import UserError


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """The configuration named by --config (or the defaults), with env overrides applied."""
    return load_config(getattr(args, "config", None))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise the lower layers' input errors (bad prompt, missing model, bad adapter, bad data
    file) as UserError: one line and exit code 2."""
    from backends.adapters import AdapterError
    from backends.models import ModelNotFoundError
    from backends.prompt import PromptError
    from trainers.errors import DataError

    try:
        yield
    except (PromptError, ModelNotFoundError, AdapterError, DataError) as exc:
        raise UserError(str(exc)) from None
