"""The results store of a dataset run: sharded, written atomically,
resumable, readable with numpy and pandas
(:mod:`~pytorch_grad_cam.datasets.results`: ``Results``, ``open_results``,
``load_results``, ``resize_map``, still importable from here).

Layout of a store folder::

    results/
      config.json          the run's configuration and its fingerprint (written first)
      shards/
        part-r0000-1a2b3c4d-000001.npz    one shard: up to shard_size items, every method
        ...
      index.json           the finalised index: shards, counts, dataset-level metrics
                           (written last; absent while a run is going on or after a kill)
      report.html          with report=True, and report_files/ beside it

No file per image: a shard is one uncompressed ``.npz`` (numpy's zip of
``.npy`` arrays, read with ``numpy.load(path, allow_pickle=False)``)
holding, for every (item, method, target) row, the columns of :data:`COLUMNS`, the
top-k predictions (``pred_classes``, ``pred_probs``: rows x k), the metric
values (``metric__<name>``) and the maps of the rows that have one
(``maps``: float16, maps x H x W; ``map_row`` is a row's index into it, -1
for none). With 512 items a shard and maps at a 7 x 7 layer's resolution, a
million images are about 2,000 files and 100 MB of maps per method.

Safety: a shard is written to a hidden temporary name in ``shards/``,
flushed and fsync'ed, then renamed over its final name (``os.replace``,
atomic on POSIX and Windows) and the folder fsync'ed
(:mod:`~pytorch_grad_cam.datasets.atomic`). A process killed at any moment
(SIGKILL, power loss) leaves either the whole shard or only a hidden
temporary file, which readers ignore and the next run deletes. The items
of committed shards are done; a later run skips them (by id).

A store is marked by ``grad-cam-store.json``, which records every file it
writes: a run refuses a folder that is neither new, empty nor a store, and
``overwrite=True`` deletes only the recorded files (see
:mod:`~pytorch_grad_cam.datasets.ownership`). A store belongs to one
configuration (model weights, target layers, methods, targets,
preprocessing, map size, metrics: see :func:`fingerprint`) and one source
(see :mod:`~pytorch_grad_cam.datasets.identity`); a run with another one on
the same folder is refused before any work (``overwrite=True`` starts the
store afresh).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytorch_grad_cam.datasets.atomic import atomic_write, fsync_dir, read_json, write_json
from pytorch_grad_cam.datasets.ownership import (
    OPTION,
    SEQUENCE,
    StoreRefused,
    owned_series,
    read_marker,
    record,
    remove_owned,
    remove_temporaries,
)
from pytorch_grad_cam.lazy import submodule
from pytorch_grad_cam.scoring import given

if TYPE_CHECKING:  # the reading side, importable from here (see __getattr__ at the end)
    from pytorch_grad_cam.datasets.results import Results, load_results, open_results, resize_map

__all__ = [
    "COLUMNS",
    "CONFIG_NAME",
    "DEFAULTS",
    "INDEX_NAME",
    "SHARD_DIR",
    "STORE_FORMAT",
    "STORE_VERSION",
    "Results",
    "ShardWriter",
    "Store",
    "StoreRefused",
    "atomic_write",
    "config_differences",
    "fingerprint",
    "load_results",
    "open_results",
    "read_shard",
    "resize_map",
    "shard_series",
]

STORE_FORMAT = "pytorch_grad_cam.datasets/results"
STORE_VERSION = 1
CONFIG_NAME = "config.json"
INDEX_NAME = "index.json"
SHARD_DIR = "shards"
SHARD_SUFFIX = ".npz"
METRIC_PREFIX = "metric__"

#: the per-row columns of a shard and their numpy dtypes ("U": text)
COLUMNS: dict[str, str] = {
    "position": "int64",   # the item's position in the source of the run that explained it
    "id": "U",             # the item's key: relative path, path as given, or Dataset index
    "path": "U",           # its file, or ""
    "label": "int64",      # its class label, -1 when none
    "method": "U",         # the CAM method of this row
    "rank": "int32",       # the target's rank among the image's targets (0: the best)
    "status": "U",         # ok, unreadable, too_small, no_label, model_error
    "reason": "U",         # why not ok (or a metric that failed), else ""
    "height": "int32",     # the image's size as decoded (0 when unreadable)
    "width": "int32",
    "target": "int64",     # the explained class (-1 when not explained)
    "score": "float32",    # the model's score (logit) of the explained class
    "prob": "float32",     # its softmax probability (sigmoid of the score: multi-label runs)
    "empty_map": "bool",   # the map is all zeros
    "map_row": "int64",    # index into the shard's maps, -1 for none
    "file_size": "int64",      # the item's file when the run started: its size in bytes,
    "file_mtime_ns": "int64",  # its modification time (ns); -1 for none or an unreadable one
}
#: what a row without them gets (the rows of a Dataset item without a file, older shards;
#: shards written before several targets per image have one row per (item, method): rank 0)
DEFAULTS = {"file_size": -1, "file_mtime_ns": -1, "rank": 0}


# ------------------------------------------------------------ fingerprint
def fingerprint(config: Mapping[str, Any]) -> str:
    """The SHA-256 of the configuration, as canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: the characters of a value shown whole in a line of config_differences
_SHOWN = 80


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """What differs between two configurations, one line each: ``key: <value
    in the store> in the store, <value now> now``. Mappings are compared
    key by key, and long lists of the same length entry by entry
    (``target_layers[5]: ...``): a line shows whole values, never one cut
    short (see :func:`_shown` for long lists of different lengths)."""
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        found.extend(_differences(a, b, f"{prefix}{key}"))
    return found


def _differences(a: Any, b: Any, name: str) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return config_differences(a, b, f"{name}.")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) \
            and max(len(json.dumps(a)), len(json.dumps(b))) > _SHOWN:
        return [line for i, (x, y) in enumerate(zip(a, b))
                for line in _differences(x, y, f"{name}[{i}]")]
    return [f"{name}: {_shown(a)} in the store, {_shown(b)} now"] if a != b else []


def _shown(value: Any, limit: int = _SHOWN) -> str:
    """A value as JSON; a long list as its first entries and its last, whole,
    around ``... N more ...``."""
    text = json.dumps(value)
    if len(text) <= limit or not isinstance(value, list) or len(value) < 3:
        return text
    entries = [json.dumps(entry) for entry in value]
    shown = 1
    while shown < len(entries) - 2 and sum(map(len, entries[:shown + 1])) + len(entries[-1]) <= limit:
        shown += 1
    return (f"[{', '.join(entries[:shown])}, ... {len(entries) - shown - 1} more ..., "
            f"{entries[-1]}] ({len(entries)} entries)")


def shard_series(rank: int, token: str) -> str:
    """The names of the shards of one writer (``######``: the sequence
    number), as the store's marker records them."""
    return f"{SHARD_DIR}/part-r{rank:04d}-{token}-{SEQUENCE}{SHARD_SUFFIX}"


# ------------------------------------------------------------------- store
class Store:
    """A results store folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"out must be a folder path, got {given(root)}")
        self.root = Path(root)
        self.config_path = self.root / CONFIG_NAME
        self.index_path = self.root / INDEX_NAME
        self.shard_dir = self.root / SHARD_DIR

    # ---------------------------------------------------- configuration
    def check_config(self, config: Mapping[str, Any]) -> bool:
        """Whether the store already exists; :class:`StoreRefused` (a
        ValueError) if the folder is not a results store (see
        :func:`~pytorch_grad_cam.datasets.ownership.read_marker`) or the
        store was written with another configuration."""
        if read_marker(self.root) is None or not self.config_path.exists():
            if self.shard_dir.exists() and any(self.committed_shards()):
                raise StoreRefused(f"out {str(self.root)!r} holds shards but no {CONFIG_NAME}; "
                                   "it is not a store this library can resume: choose another "
                                   "folder or pass ", OPTION, " to delete its results")
            return False
        try:
            stored = read_json(self.config_path)
        except (OSError, ValueError) as error:
            raise StoreRefused(f"out {str(self.root)!r}: cannot read {CONFIG_NAME} ({error}); "
                               "choose another folder or pass ", OPTION, " to delete its "
                               "results") from None
        if not isinstance(stored, dict) or stored.get("format") != STORE_FORMAT:
            raise StoreRefused(f"out {str(self.root)!r}: {CONFIG_NAME} is not a results store "
                               "of pytorch_grad_cam.datasets; choose another folder or pass ",
                               OPTION, " to delete its results")
        if stored.get("fingerprint") != fingerprint(config):
            changes = config_differences(stored.get("config", {}), config)
            listed = "; ".join(changes[:6]) + ("; ..." if len(changes) > 6 else "")
            raise StoreRefused(f"out {str(self.root)!r} holds results of another configuration "
                               f"({listed or 'fingerprints differ'}); resume only with the same "
                               "configuration, or choose another folder, or pass ", OPTION,
                               " to replace its results")
        return True

    def create(self, config: Mapping[str, Any], overwrite: bool = False, *,
               source: Mapping[str, Any] | None = None, series: Sequence[str] = ()) -> None:
        """Prepare the folder for a run (the main process only): refuse a
        folder that is not new, empty or a store; with ``overwrite``
        delete the store's own files first (:meth:`clear`); record its
        files, the shard ``series`` of the run's writers and its ``source``
        in the marker; write config.json if absent; delete the finalised
        index (it is rewritten at the end) and the temporary files of
        killed runs."""
        read_marker(self.root)
        if overwrite:
            self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        record(self.root, files=[CONFIG_NAME, INDEX_NAME], series=series, source=source,
               folders=[] if self.shard_dir.exists() else [SHARD_DIR])
        self.shard_dir.mkdir(exist_ok=True)
        if not self.config_path.exists():
            write_json(self.config_path, {"format": STORE_FORMAT, "version": STORE_VERSION,
                                          "fingerprint": fingerprint(config),
                                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "config": dict(config)})
        self.index_path.unlink(missing_ok=True)
        remove_temporaries(self.root)
        fsync_dir(self.shard_dir)

    def clear(self) -> None:
        """Delete the files the store recorded as its own (shards, config,
        index, report; see :func:`~pytorch_grad_cam.datasets.ownership.
        remove_owned`); other files are left alone."""
        remove_owned(self.root)

    def config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{str(self.root)!r} is not a results store (no "
                                    f"{CONFIG_NAME})")
        stored = read_json(self.config_path)
        return dict(stored.get("config", {}))

    # ----------------------------------------------------------- shards
    def committed_shards(self) -> list[Path]:
        """The complete shards of the store's writers, sorted by name
        (temporary files and other files excluded)."""
        if not self.shard_dir.is_dir():
            return []
        series = owned_series(self.root)
        return sorted(p for p in self.shard_dir.iterdir()
                      if p.suffix == SHARD_SUFFIX and not p.name.startswith(".")
                      and (series is None or any(s.fullmatch(f"{SHARD_DIR}/{p.name}")
                                                 for s in series)))

    def done_ids(self) -> set[str]:
        """The ids of every item in a committed shard."""
        done: set[str] = set()
        for path in self.committed_shards():
            done.update(read_shard(path, ("id",))["id"].tolist())
        return done

    def index(self) -> dict[str, Any] | None:
        """The finalised index, or None while it is absent."""
        if not self.index_path.exists():
            return None
        return dict(read_json(self.index_path))

    def write_index(self, index: Mapping[str, Any]) -> None:
        write_json(self.index_path, dict(index))


def read_shard(path: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of one shard (all, or ``names``); ValueError naming the
    file if it cannot be read (committed shards are complete, so this
    means the disk changed it: delete it to recompute its items)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            wanted = data.files if names is None else [n for n in names if n in data.files]
            return {name: data[name] for name in wanted}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"shard {str(path)!r} cannot be read ({error}); delete it and run "
                         "again to recompute its items") from None
    except Exception as error:  # noqa: BLE001  (zipfile.BadZipFile and other container errors)
        raise ValueError(f"shard {str(path)!r} cannot be read ({type(error).__name__}: "
                         f"{error}); delete it and run again to recompute its items") from None


class ShardWriter:
    """Collects rows and writes a shard every ``shard_size`` items.

    Args:
        store: the store.
        rank: this process's rank (part of the shard names).
        methods: the methods, in the order of every item's rows.
        metrics: the metric names (a column each).
        top_k: predictions per row.
        map_shape: (H, W) of the stored maps.
        shard_size: items per shard.
        token: this writer's part of the shard names; its series
            (:func:`shard_series`) must be recorded in the store's marker
            before (the runner records every rank's at once). None: a new
            one, recorded here.
    """

    def __init__(self, store: Store, rank: int, methods: Sequence[str], metrics: Sequence[str],
                 top_k: int, map_shape: tuple[int, int], shard_size: int,
                 token: str | None = None):
        self.store = store
        self.rank = rank
        self.methods = list(methods)
        self.metrics = list(metrics)
        self.top_k = top_k
        self.map_shape = map_shape
        self.shard_size = shard_size
        self.token = token or secrets.token_hex(4)
        self.series = shard_series(rank, self.token)
        if token is None:  # the runner records every rank's series at once
            record(store.root, series=[self.series])
        self.sequence = 0
        self.written: list[Path] = []
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.pred_classes: list[np.ndarray] = []
        self.pred_probs: list[np.ndarray] = []
        self.metric_values: dict[str, list[float]] = {name: [] for name in self.metrics}
        self.maps: list[np.ndarray] = []
        self.items = 0

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The rows of one item (one per method and target; all of an item's
        rows are in one shard, so a resumed run never finds half an item
        done): the :data:`COLUMNS`
        except ``map_row``, plus ``pred_classes`` / ``pred_probs`` (k
        values, or None), ``metrics`` ({name: value}) and ``map`` (H x W
        float16, or None). Writes a shard when ``shard_size`` items are
        collected."""
        for row in rows:
            for name in COLUMNS:
                if name != "map_row":
                    self.columns[name].append(row.get(name, DEFAULTS[name]) if name in DEFAULTS
                                              else row[name])
            picture = row.get("map")
            if picture is not None:
                self.columns["map_row"].append(len(self.maps))
                self.maps.append(picture)
            else:
                self.columns["map_row"].append(-1)
            classes, probs = row.get("pred_classes"), row.get("pred_probs")
            self.pred_classes.append(np.full(self.top_k, -1, np.int64) if classes is None
                                     else np.asarray(classes, np.int64))
            self.pred_probs.append(np.full(self.top_k, np.nan, np.float32) if probs is None
                                   else np.asarray(probs, np.float32))
            values = row.get("metrics") or {}
            for name in self.metrics:
                self.metric_values[name].append(float(values.get(name, np.nan)))
        self.items += 1
        if self.items >= self.shard_size:
            self.flush()

    def arrays(self) -> dict[str, np.ndarray]:
        """The collected rows as the shard's arrays."""
        arrays: dict[str, np.ndarray] = {}
        for name, kind in COLUMNS.items():
            values = self.columns[name]
            arrays[name] = (np.array(values, dtype=str) if kind == "U"
                            else np.array(values, dtype=kind))
            if kind == "U" and not values:
                arrays[name] = np.zeros(0, dtype="<U1")
        rows = len(self.columns["id"])
        arrays["pred_classes"] = (np.stack(self.pred_classes) if rows
                                  else np.zeros((0, self.top_k), np.int64))
        arrays["pred_probs"] = (np.stack(self.pred_probs) if rows
                                else np.zeros((0, self.top_k), np.float32))
        for name in self.metrics:
            arrays[METRIC_PREFIX + name] = np.array(self.metric_values[name], dtype=np.float32)
        arrays["maps"] = (np.stack(self.maps).astype(np.float16) if self.maps
                          else np.zeros((0,) + tuple(self.map_shape), np.float16))
        return arrays

    def flush(self) -> Path | None:
        """Write the collected rows as a shard (nothing when there are
        none); returns its path."""
        if self.items == 0:
            return None
        arrays = self.arrays()
        self.sequence += 1
        path = self.store.root / self.series.replace(SEQUENCE, f"{self.sequence:06d}")
        save: Callable[..., None] = np.savez
        atomic_write(path, lambda handle: save(handle, **arrays))
        self.written.append(path)
        self._reset()
        return path


#: the reading side's names, defined in :mod:`~pytorch_grad_cam.datasets.results`
#: (which reads stores through this module, so this one cannot import it at its
#: top) and importable from here as before
_READING = ("Results", "load_results", "open_results", "resize_map")


def __getattr__(name: str) -> Any:
    """A name of the reading side (:data:`_READING`), from its module,
    imported when the name is first asked for."""
    if name in _READING:
        return getattr(submodule("pytorch_grad_cam.datasets", "results"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
