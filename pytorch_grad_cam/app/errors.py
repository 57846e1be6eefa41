"""How the front-ends report problems: one line each.

- :class:`UsageError`: a problem with what the user asked for, printed as
  ``<prog>: error: <message>`` with exit status 2;
- :func:`os_error_line`: a failed read or write as ``<path>: <reason>``;
- :func:`first_line`, :func:`one_line`: an exception or a multi-line
  message as one line;
- :func:`one_line_warnings`: warnings as ``<prog>: warning: ...`` lines.

Nothing here imports torch: the commands check their arguments with it
before they load the model libraries.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TextIO, TypeVar

from pytorch_grad_cam import messages

__all__ = ["UsageError", "first_line", "one_line", "one_line_warnings", "os_error_line",
           "os_error_reason"]


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line,
    ``<prog>: error: <message>``, exit status 2."""


def first_line(error: BaseException) -> str:
    """An exception as the front-ends show it: the first line of its
    message (its type's name when it has none)."""
    return messages.first_line(error, with_type=False)


def one_line(text: str) -> str:
    """A multi-line message (a list of candidates) as one line: the first
    line, then the others separated by ``; ``."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) <= 1:
        return " ".join(lines)
    return f"{lines[0]} {'; '.join(lines[1:])}"


def os_error_reason(error: OSError) -> str:
    """What went wrong, lower-case, without the path: ``permission denied``,
    ``no space left on device``, ``read-only file system`` (the error's own
    first line when it has no system reason)."""
    if error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return first_line(error)


def os_error_line(error: OSError, folder: str | None = None) -> str:
    """A failed read or write as one line: ``<path>: <reason>`` (both paths
    of a rename or copy). An error that names no path (a ``write()`` that
    failed on a full disk names none) names ``folder``, the folder the
    command was writing into, if given, else gives the reason alone."""
    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if not paths and folder is not None:
        paths = [folder]
    reason = os_error_reason(error)
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Warnings as '<prog>: warning: ...' lines on stderr."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


T = TypeVar("T")


def run_check(prog: str, check: Callable[[], T]) -> T | int:
    """A front-end's argument check, with warnings as one line: its result,
    or the exit status after a usage error (2, its line printed) or an
    interrupt (130)."""
    with one_line_warnings(prog):
        try:
            return check()
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
