"""The error every part of the command line raises for a bad request, and
the one line it prints for a failed read or write."""
from __future__ import annotations

__all__ = ["UsageError", "os_error_line", "os_error_reason"]


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line,
    ``<prog>: error: <message>``, exit status 2."""


def os_error_reason(error: OSError) -> str:
    """What went wrong, lower-case, without the path: ``permission denied``,
    ``no space left on device``, ``read-only file system`` (the error's own
    first line when it has no system reason)."""
    if error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
