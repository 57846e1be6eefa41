"""Which files of a folder belong to a results store, so that a run never
changes or deletes what it did not write.

A results store is marked by ``grad-cam-store.json`` (:data:`MARKER_NAME`),
written (atomically, like every file of the store) before anything else
when a run starts in a new or empty folder, and rewritten whenever the
store records a new name::

    {"format": "grad-cam-store", "version": 1, "created": "2024-05-01T12:00:00+0000",
     "files": ["config.json", "index.json", "report.html", "report_files/most-000-image.jpg"],
     "folders": ["report_files", "shards"],
     "series": ["shards/part-r0000-1a2b3c4d-######.npz", "shards/part-r0001-9f8e7d6c-######.npz"],
     "source": {"kind": "folder", "folder": "/data/val"}}

- ``files``: the store's own files, recorded before they are first
  written (the report's pictures right after they are written);
- ``series``: the shards of one writer (one process of one run), named
  with the six digits of their sequence number in place of ``######``;
  recorded before the writer writes its first shard;
- ``folders``: the folders the store created;
- ``source``: what the results were computed from (see
  :mod:`pytorch_grad_cam.datasets.identity`).

Rules:

- A folder that exists, is not empty and has no marker is not a results
  store: a run refuses it (:class:`StoreRefused`), with or without
  ``overwrite``, and changes nothing in it. So is a marker of another
  format or of a newer version than :data:`MARKER_VERSION`.
- ``overwrite`` (:func:`remove_owned`) deletes the recorded files, the
  shards of the recorded series, the hidden temporary files of both (left
  by a killed write), then the recorded folders that are left empty, and
  nothing else: a file of yours inside a store stays.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

from pytorch_grad_cam.datasets.atomic import read_json, write_json

__all__ = ["MARKER_FORMAT", "MARKER_NAME", "MARKER_VERSION", "OPTION", "SEQUENCE", "NewFiles",
           "StoreRefused", "owned_series", "read_marker", "record", "remove_owned",
           "remove_temporaries"]

MARKER_NAME = "grad-cam-store.json"
MARKER_FORMAT = "grad-cam-store"
MARKER_VERSION = 1
#: stands for a shard's six-digit sequence number in a recorded series
SEQUENCE = "######"

_TEMPORARY = re.compile(r"\.(.+)\.tmp-[^/]*")  # atomic_write's ".<name>.tmp-<pid>-<random>"
_LISTS = ("files", "folders", "series")


class _Option:
    def __repr__(self) -> str:
        return "OPTION"


#: where a :class:`StoreRefused` message names the option that replaces a store
OPTION = _Option()


class StoreRefused(ValueError):
    """A folder a run must not write into, or a store it must not resume.

    The message may name the option that replaces a store's results: as
    ``overwrite=True`` (the library's spelling, ``str(error)``), or as
    :meth:`message` spells it, for example ``error.message("--overwrite")``
    on the command line."""

    LIBRARY_OPTION = "overwrite=True"

    def __init__(self, *parts: str | _Option):
        self.parts = parts
        super().__init__(self.message(self.LIBRARY_OPTION))

    def message(self, option: str) -> str:
        """The message with the option spelled ``option``."""
        return "".join(option if isinstance(part, _Option) else part for part in self.parts)


# ------------------------------------------------------------------ marker
def _is_empty(folder: Path) -> bool:
    """No entry but temporary files of a marker being written."""
    with os.scandir(folder) as entries:
        for entry in entries:
            temporary = _TEMPORARY.fullmatch(entry.name)
            if temporary is None or temporary[1] != MARKER_NAME:
                return False
    return True


def _safe(name: Any) -> bool:
    """A relative path inside the store (no '..', not absolute)."""
    if not isinstance(name, str) or not name or "\\" in name or os.path.isabs(name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _refuse_marker(root: Path, problem: str) -> StoreRefused:
    return StoreRefused(f"out {str(root)!r}: {problem}; nothing was changed: choose an empty or "
                        "new folder")


def _valid(root: Path, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("format") != MARKER_FORMAT:
        shown = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise _refuse_marker(root, f"{MARKER_NAME} is not a grad-cam results store marker "
                                   f"(format {shown!r}, expected {MARKER_FORMAT!r})")
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _refuse_marker(root, f"{MARKER_NAME} has an invalid version {version!r}")
    if version > MARKER_VERSION:
        raise StoreRefused(f"out {str(root)!r} is a results store of a newer grad-cam (store "
                           f"format version {version}; this version reads version "
                           f"{MARKER_VERSION}); nothing was changed: use a newer grad-cam, or "
                           "choose an empty or new folder")
    for key in _LISTS:
        names = value.setdefault(key, [])
        if not isinstance(names, list):
            raise _refuse_marker(root, f"{MARKER_NAME}: {key} is not a list ({names!r})")
        bad = [name for name in names if not _safe(name)
               or (key == "series" and name.count(SEQUENCE) != 1)]
        if bad:
            raise _refuse_marker(root, f"{MARKER_NAME} lists {key} that are not paths inside "
                                       f"the store: {bad[:3]!r}")
    if not isinstance(value.get("source"), (dict, type(None))):
        raise _refuse_marker(root, f"{MARKER_NAME} has an invalid source {value['source']!r}")
    return value


def read_marker(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of the store in ``root``; None when ``root`` does not
    exist or is empty (a new store). :class:`StoreRefused` for a file, a
    folder with other files and no marker, or a marker that is unreadable,
    of another format or of a newer version."""
    root = Path(root)
    path = root / MARKER_NAME
    if root.exists() and not root.is_dir():
        raise StoreRefused(f"out {str(root)!r} is a file, not a folder; nothing was changed: "
                           "choose an empty or new folder")
    if not path.exists() and not path.is_symlink():
        if not root.exists() or _is_empty(root):
            return None
        raise StoreRefused(f"out {str(root)!r} is not a grad-cam results store (it holds other "
                           f"files and no {MARKER_NAME}); nothing was changed: choose an empty "
                           "or new folder")
    try:
        value = read_json(path)
    except (OSError, ValueError) as error:
        raise _refuse_marker(root, f"{MARKER_NAME} cannot be read ({error})") from None
    return _valid(root, value)


def _new_marker() -> dict[str, Any]:
    return {"format": MARKER_FORMAT, "version": MARKER_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": [], "folders": [],
            "series": [], "source": None}


def _relative(name: str | PurePath) -> str:
    text = PurePath(name).as_posix()
    if not _safe(text):
        raise ValueError(f"{text!r} is not a path inside the store")
    return text


def record(root: str | os.PathLike[str], *, files: Iterable[str | PurePath] = (),
           folders: Iterable[str | PurePath] = (),
           series: Iterable[str] = (),
           source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Record names as the store's (paths relative to ``root``) and, when
    given, its ``source``: the marker is rewritten atomically (created in a
    new or empty ``root``, which must exist). Returns the marker."""
    root = Path(root)
    marker = read_marker(root)
    changed = marker is None
    marker = marker if marker is not None else _new_marker()
    for key, names in (("files", files), ("folders", folders), ("series", series)):
        for name in map(_relative, names):
            if name not in marker[key]:
                marker[key].append(name)
                changed = True
    if source is not None and marker.get("source") != dict(source):
        marker["source"] = dict(source)
        changed = True
    if changed:
        write_json(root / MARKER_NAME, marker)
    return marker


# ---------------------------------------------------------------- deleting
def _series_pattern(series: str) -> re.Pattern[str]:
    before, after = series.split(SEQUENCE)
    return re.compile(re.escape(before) + r"\d{6}" + re.escape(after))


def owned_series(root: str | os.PathLike[str]) -> list[re.Pattern[str]] | None:
    """The patterns of the names of the store's shards (relative to
    ``root``); None when ``root`` has no marker (it is read as it is)."""
    marker = read_marker(root) if (Path(root) / MARKER_NAME).exists() else None
    return None if marker is None else [_series_pattern(s) for s in marker["series"]]


class _Owned:
    """Whether a path relative to the store (or the temporary file of one)
    is the store's, by its marker."""

    def __init__(self, marker: Mapping[str, Any]):
        self.files = set(marker["files"])
        self.series = [_series_pattern(s) for s in marker["series"]]
        self.folders = {name.rpartition("/")[0] for name in [*marker["files"], *marker["series"]]}

    def __call__(self, name: str, temporary_only: bool = False) -> bool:
        folder, _, base = name.rpartition("/")
        hidden = _TEMPORARY.fullmatch(base)
        if hidden is not None:
            name = f"{folder}/{hidden[1]}" if folder else hidden[1]
        elif temporary_only:
            return False
        return name in self.files or any(p.fullmatch(name) for p in self.series)


def _inside(root: Path, folder: Path) -> bool:
    """``folder`` is ``root`` or a real folder inside it (not through a link)."""
    try:
        return folder.is_dir() and folder.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _remove(root: Path, marker: Mapping[str, Any], temporary_only: bool) -> None:
    owned = _Owned(marker)
    for folder in sorted(owned.folders):
        directory = root / folder if folder else root
        if not _inside(root, directory):
            continue
        for entry in list(directory.iterdir()):
            name = f"{folder}/{entry.name}" if folder else entry.name
            if name != MARKER_NAME and owned(name, temporary_only) and not entry.is_dir():
                entry.unlink(missing_ok=True)


def remove_temporaries(root: str | os.PathLike[str]) -> None:
    """Delete the hidden temporary files of the store's own files (left by
    writes that were killed); nothing else."""
    marker = read_marker(root)
    if marker is not None:
        _remove(Path(root), marker, temporary_only=True)


def remove_owned(root: str | os.PathLike[str]) -> None:
    """Delete what the store in ``root`` wrote (``overwrite``): its
    recorded files, the shards of its series and their temporary files,
    then the folders it created if they are left empty; the marker is
    rewritten with nothing recorded but the folders that remain. Other
    files are left alone. :class:`StoreRefused` (before deleting anything)
    if ``root`` is not a store."""
    root = Path(root)
    marker = read_marker(root)
    if marker is None:
        return
    _remove(root, marker, temporary_only=False)
    kept = []
    for folder in sorted(marker["folders"], key=lambda name: name.count("/"), reverse=True):
        directory = root / folder
        if _inside(root, directory) and not directory.is_symlink() \
                and not any(directory.iterdir()):
            directory.rmdir()
        elif directory.exists() or directory.is_symlink():
            kept.append(folder)
    fresh = _new_marker()
    fresh["folders"] = sorted(kept)
    write_json(root / MARKER_NAME, fresh)


# ----------------------------------------------------- files of a writer
def _state(folder: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                info = entry.stat(follow_symlinks=False)
                found[entry.name] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


class NewFiles:
    """Records the files a writer puts into a folder of a store (the
    report's pictures): ``NewFiles(root, folder)`` refuses a ``root`` that
    is not a results store, creates ``folder`` (recorded as the store's if
    it did not exist) and notes what is in it; :meth:`record` then records
    every file written or replaced in it since, and the other ``paths``
    given."""

    def __init__(self, root: str | os.PathLike[str],
                 folder: str | os.PathLike[str]):
        self.root, self.folder = Path(root), Path(folder)
        if read_marker(self.root) is None:
            raise StoreRefused(f"out {str(self.root)!r} is not a grad-cam results store (no "
                               f"{MARKER_NAME}); nothing was changed")
        if not self.folder.exists():
            self.folder.mkdir()
            record(self.root, folders=[self.folder.relative_to(self.root)])
        self.before = _state(self.folder)

    def record(self, *paths: str | os.PathLike[str]) -> None:
        after = _state(self.folder)
        written = [self.folder / name for name, state in sorted(after.items())
                   if self.before.get(name) != state]
        record(self.root, files=[Path(p).relative_to(self.root) for p in [*written, *paths]])
