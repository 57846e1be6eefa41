"""What the results of a store were computed from, so that the results of
two sources, or of a file before and after it changed, are never mixed;
and :func:`prepare`, which readies a store for a run.

The source is recorded in the store's marker (``grad-cam-store.json``)
by the first run (:func:`source_identity`):

- a folder: its resolved path (``{"kind": "folder", "folder": "/data/val"}``);
- a list of paths: the folder its relative paths are relative to (the
  working directory), when it has relative paths (the ids of a list are
  its paths as given);
- a torch Dataset (or a DataLoader's): its class and, when it has one
  (torchvision's datasets do), its resolved ``root``.

Each row records the item's file as it was when the run started, before
the file was decoded: ``file_size`` (bytes) and ``file_mtime_ns`` (its
modification time), -1 and -1 for an item without a file (a Dataset item
other than an ``ImageFolder``-style sample) or one that could not be read.

A resumed run (with the same configuration), before any work:

- refuses another source, naming both (``folder '/data/a' in the store,
  folder '/data/b' now``); a source with an entry the store lacks (a list
  of paths with relative paths, after one with absolute paths only) adds
  it to the record;
- explains again every item of the source whose file changed since its
  rows were written: another size or modification time, or a file that was
  missing and is there now. Their old rows are deleted first: each shard
  that holds one is rewritten without them (atomically, under its own
  name), so an item is never in two shards. The summary counts them
  (``RunSummary.changed``). Items no longer in the source keep their rows.

Under torchrun every rank checks the files of its share of the done items,
rank 0 deletes the old rows, and each rank records the files of the items
it explains in its own shards.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytorch_grad_cam.datasets.distributed import Context, share
from pytorch_grad_cam.datasets.ownership import OPTION, StoreRefused, read_marker
from pytorch_grad_cam.datasets.sources import DatasetSource, PathSource, Source
from pytorch_grad_cam.datasets.store import DEFAULTS, Store, atomic_write, read_shard, shard_series

__all__ = ["DoneItems", "FileStats", "Plan", "changed_ids", "check_source", "describe_source",
           "drop_items", "file_identity", "prepare", "source_identity"]

#: the identity of an item without a readable file
NO_FILE = (DEFAULTS["file_size"], DEFAULTS["file_mtime_ns"])
_UNKNOWN = -2  # rows of shards written before identities were recorded: not checked


# ------------------------------------------------------------------ source
def source_identity(items: Source) -> dict[str, str]:
    """What identifies ``items`` (see the module docstring)."""
    if isinstance(items, PathSource):
        if items.root is not None:
            return {"kind": "folder", "folder": str(Path(items.root).resolve())}
        identity = {"kind": "paths"}
        if not all(os.path.isabs(path) for path in items.paths):
            identity["relative_to"] = str(Path.cwd().resolve())
        return identity
    if isinstance(items, DatasetSource):
        dataset = items.dataset
        identity = {"kind": "dataset",
                    "class": f"{type(dataset).__module__}.{type(dataset).__qualname__}"}
        root = getattr(dataset, "root", None)
        if isinstance(root, (str, os.PathLike)):
            identity["root"] = str(Path(root).resolve())
        return identity
    return {"kind": str(items.kind)}


def describe_source(identity: Mapping[str, Any]) -> str:
    """A few words that name the source of a store's identity record, for messages."""
    kind = identity.get("kind")
    if kind == "folder":
        return f"folder {identity.get('folder')!r}"
    if kind == "paths":
        relative = identity.get("relative_to")
        return "a list of paths" + (f" relative to {relative!r}" if relative else "")
    if kind == "dataset":
        root = identity.get("root")
        return f"Dataset {identity.get('class')}" + (f" with root {root!r}" if root else "")
    return f"a source of kind {kind!r}"


def check_source(store: Store, source: Mapping[str, Any]) -> dict[str, Any]:
    """The source to record: the store's, with the entries ``source`` adds.
    :class:`StoreRefused` naming both when the store was written from
    another source."""
    marker = read_marker(store.root)
    recorded = (marker or {}).get("source")
    if not recorded:
        return dict(source)
    if recorded.get("kind") != source.get("kind") \
            or any(recorded[key] != source[key] for key in recorded.keys() & source.keys()):
        raise StoreRefused(f"out {str(store.root)!r} holds results of another source "
                           f"({describe_source(recorded)} in the store, {describe_source(source)}"
                           " now); nothing was changed: resume with the same source, or choose "
                           "another folder, or pass ", OPTION, " to replace its results")
    return {**recorded, **source}


# ------------------------------------------------------------------- items
def file_identity(path: str) -> tuple[int, int]:
    """(size, modification time in ns) of a regular file, else NO_FILE."""
    if not path:
        return NO_FILE
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return NO_FILE
    return (int(info.st_size), int(info.st_mtime_ns)) if stat.S_ISREG(info.st_mode) else NO_FILE


class FileStats:
    """The file identities of the items one process explains (ascending
    positions), taken before the files are decoded: a file that changes
    during the run is explained again by the next one."""

    def __init__(self, items: Source, positions: Sequence[int]):
        self.positions = np.asarray(positions, dtype=np.int64)
        self.identities = np.empty((len(positions), 2), dtype=np.int64)
        for k, position in enumerate(positions):
            self.identities[k] = file_identity(items.item_path(int(position)))

    def annotate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of one item, with ``file_size`` and ``file_mtime_ns``."""
        if rows:
            position = rows[0]["position"]
            k = int(np.searchsorted(self.positions, position))
            found = k < len(self.positions) and self.positions[k] == position
            size, mtime = self.identities[k].tolist() if found else NO_FILE
            for row in rows:
                row["file_size"], row["file_mtime_ns"] = size, mtime
        return rows


class DoneItems:
    """The items of a store's committed shards, with the file identity
    their rows recorded (one row index per id, into ``sizes`` and
    ``mtimes``)."""

    def __init__(self, store: Store):
        self.rows: dict[str, int] = {}
        sizes, mtimes = [], []
        offset = 0
        for path in store.committed_shards():
            data = read_shard(path, ("id", "file_size", "file_mtime_ns"))
            ids = data["id"].tolist()
            for k, item_id in enumerate(ids):
                self.rows.setdefault(item_id, offset + k)
            unknown = np.full(len(ids), _UNKNOWN, np.int64)
            sizes.append(data.get("file_size", unknown))
            mtimes.append(data.get("file_mtime_ns", unknown))
            offset += len(ids)
        self.sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
        self.mtimes = np.concatenate(mtimes) if mtimes else np.zeros(0, np.int64)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.rows

    def identity(self, item_id: str) -> tuple[int, int]:
        k = self.rows[item_id]
        return int(self.sizes[k]), int(self.mtimes[k])


def changed_ids(items: Source, done: DoneItems, rank: int = 0, world_size: int = 1) -> list[str]:
    """The ids of rank ``rank``'s share of the done items of ``items``
    whose file is not the one their rows recorded."""
    positions = [p for p in range(len(items)) if items.item_id(p) in done]
    changed = []
    for position in share(positions, rank, world_size):
        item_id = items.item_id(position)
        recorded = done.identity(item_id)
        if recorded[0] != _UNKNOWN and file_identity(items.item_path(position)) != recorded:
            changed.append(item_id)
    return changed


def _without(data: dict[str, np.ndarray], drop: np.ndarray) -> dict[str, np.ndarray]:
    """A shard's arrays without the rows ``drop`` (a mask); the maps of the
    rows kept are renumbered."""
    keep = ~drop
    map_rows = data["map_row"][keep]
    has_map = map_rows >= 0
    arrays = {name: array[keep] for name, array in data.items() if name not in ("maps", "map_row")}
    arrays["maps"] = data["maps"][map_rows[has_map]]
    arrays["map_row"] = np.full(len(map_rows), -1, np.int64)
    arrays["map_row"][has_map] = np.arange(int(has_map.sum()))
    return arrays


def drop_items(store: Store, ids: Sequence[str]) -> int:
    """Delete the rows of ``ids`` from the store's shards: each shard that
    holds one is rewritten without them, atomically under its own name
    (deleted when nothing is left). Returns the rows deleted."""
    wanted = np.asarray(sorted(set(ids)), dtype=str)
    deleted = 0
    for path in store.committed_shards():
        drop = np.isin(read_shard(path, ("id",))["id"], wanted)
        if not drop.any():
            continue
        deleted += int(drop.sum())
        if drop.all():
            path.unlink()
            continue
        _rewrite(path, _without(read_shard(path), drop))
    return deleted


def _rewrite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    save: Callable[..., None] = np.savez
    atomic_write(path, lambda handle: save(handle, **arrays))


# ------------------------------------------------------------ the plan
@dataclass
class Plan:
    """What a run explains: ``remaining`` (the positions of every rank), and
    the ids among them explained again because their file changed."""

    remaining: list[int]
    changed: list[str]


def prepare(store: Store, items: Source, config: Mapping[str, Any], context: Context,
            overwrite: bool, token: str) -> Plan:
    """Check the store (every rank alike: no rank waits for one that
    failed), create it (rank 0, after every rank checked, recording every
    rank's shard series from its ``token``), then find what is done and
    what changed (every rank reads before any rank writes)."""
    source = source_identity(items)
    if not overwrite:  # with overwrite, rank 0 clears the store first: checked after that
        store.check_config(config)
        source = check_source(store, source)
    tokens = context.all_gather(token)
    if context.is_main:
        store.create(config, overwrite, source=source,
                     series=[shard_series(rank, t) for rank, t in enumerate(tokens)])
    context.barrier()
    store.check_config(config)
    check_source(store, source)
    done = DoneItems(store)
    mine = changed_ids(items, done, context.rank, context.world_size)
    changed = [item_id for part in context.all_gather(mine) for item_id in part]
    if context.is_main and changed:
        drop_items(store, changed)
    context.barrier()  # nobody writes before everybody has read what is done
    again = set(changed)
    remaining = [p for p in range(len(items))
                 if items.item_id(p) not in done or items.item_id(p) in again]
    return Plan(remaining, changed)
