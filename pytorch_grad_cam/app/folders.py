"""Checking, before any work, that an output folder can be written.

:func:`check_output_folder` is what the commands call on ``--output-dir``
(the image command, ``vit``) and ``--out`` (``explain-dataset``) before
they load a model: a run that could not write its results fails at once,
with one line that names the path and the reason, instead of after the
computation with a traceback.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytorch_grad_cam.app.errors import UsageError, os_error_reason

__all__ = ["PROBE_PREFIX", "check_output_folder"]

#: the start of the name of the short-lived folder the check makes
PROBE_PREFIX = ".grad-cam-write-check-"


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a link counts, broken or not)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_output_folder(option: str, text: str) -> Path:
    """``option``'s folder ``text``: an existing folder, or a path where
    one can be made, in which files can be written. UsageError
    (``<option> <text>: <reason>``) when it exists and is not a folder, an
    ancestor is a file, or nothing can be created there (permission
    denied, a read-only file system).

    The check makes a uniquely named folder in ``text`` (or in its nearest
    existing ancestor) and removes it again: it never touches a file of the
    user's and leaves nothing behind, so that a run refused later on
    (an unknown layer, say) has written nothing, and processes started
    together (torchrun) do not race on the folder."""
    path = Path(text)
    existing = _nearest_existing(path)
    where = "write in it" if existing == path else f"create it in {existing}"
    try:
        if existing == path and not path.is_dir():
            raise UsageError(f"{option} {text}: exists and is not a folder")
        if not existing.is_dir():
            kind = "a file" if existing.is_file() else "something else"
            raise UsageError(f"{option} {text}: {existing} is {kind}, not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=existing))
    except OSError as error:  # permission denied, a read-only file system, ...
        raise UsageError(f"{option} {text}: cannot {where} ({os_error_reason(error)})") from None
    return path
