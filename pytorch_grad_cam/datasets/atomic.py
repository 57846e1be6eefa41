"""Files written all or nothing: what the results store, its marker and the
report are written with.

:func:`atomic_write` writes into a hidden temporary file in the target's
folder (``.<name>.tmp-<pid>-<random>``), flushes and fsyncs it, renames it
over the target (``os.replace``, atomic on POSIX and Windows) and fsyncs
the folder. A process killed at any moment leaves either the whole new
file or the old one, plus at most a hidden temporary file.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "fsync_dir", "read_json", "write_json"]


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders
    cannot be opened, as on Windows)."""
    try:
        descriptor = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems do not support fsync on folders; the rename still happened
    finally:
        os.close(descriptor)


def _pre_commit(temporary: Path, final: Path) -> None:
    """Called between writing a temporary file and renaming it; a no-op
    (the tests replace it to kill a process at that moment)."""


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` all or nothing: ``write(file)`` into a hidden
    temporary file in the same folder, fsync, rename over ``path``, fsync
    the folder. The temporary file is removed if ``write`` raises."""
    path = Path(path)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _pre_commit(temporary, path)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON with sorted keys, written atomically."""
    text = json.dumps(value, indent=1, sort_keys=True, allow_nan=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_json(path: Path) -> Any:
    """The JSON document of ``path`` (a file this store wrote atomically)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
