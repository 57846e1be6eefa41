"""The argparse pieces the commands share: the parser whose errors are
usage errors, the help layout, option types, and help texts computed only
when ``--help`` shows them (so that parsing imports nothing heavy)."""
from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import NoReturn

from pytorch_grad_cam.app.errors import UsageError

__all__ = ["HELP_WIDTH", "TRUST_CHECKPOINT_HELP", "Parser", "formatter", "non_negative_int",
           "positive_int"]

#: fixed, so that the help text (and docs/cli.md's copy of it) does not depend
#: on the terminal
HELP_WIDTH = 92

#: --trust-checkpoint's help, the same for every command that takes --weights
TRUST_CHECKPOINT_HELP = (
    "load a --weights file that holds pickled Python objects (a whole model saved with "
    "torch.save(model), a Namespace of training options): unpickling runs whatever code the "
    "file holds, so give it only for files you trust (default: such files are refused)")


class Parser(argparse.ArgumentParser):
    """Errors as UsageError (one line, exit status 2); plain help text (no
    colours), so that it reads the same everywhere, the documentation's copy included.

    :meth:`defer_help` gives an option a help text that is computed when
    the help is shown (one that lists the registered methods, which loads
    them and torch with them), not when the parser is built."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if hasattr(self, "color"):  # Python >= 3.14
            self.color = False
        self._deferred: list[tuple[argparse.Action, Callable[[], str]]] = []

    def defer_help(self, action: argparse.Action, text: Callable[[], str]) -> argparse.Action:
        """``action``'s help is ``text()``, computed when the help is formatted."""
        self._deferred.append((action, text))
        return action

    def format_help(self) -> str:
        for action, text in self._deferred:
            action.help = text()
        self._deferred.clear()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _HelpFormatter(argparse.HelpFormatter):
    """Paragraphs (description, epilog) are not broken inside hyphenated
    words such as the program name grad-cam."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = " ".join(text.split())
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)


def formatter(prog: str) -> argparse.HelpFormatter:
    """The help layout of every command: HELP_WIDTH columns."""
    return _HelpFormatter(prog, width=HELP_WIDTH, max_help_position=30)


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value
