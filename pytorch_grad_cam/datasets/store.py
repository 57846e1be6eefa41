"""The results store of a dataset run: sharded, written atomically,
resumable, readable with numpy and pandas.

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
holding, for every (item, method) row, the columns of :data:`COLUMNS`, the
top-k predictions (``pred_classes``, ``pred_probs``: rows x k), the metric
values (``metric__<name>``) and the maps of the rows that have one
(``maps``: float16, maps x H x W; ``map_row`` is a row's index into it, -1
for none). With 512 items a shard and maps at a 7 x 7 layer's resolution, a
million images are about 2,000 files and 100 MB of maps per method.

Safety: a shard is written to a hidden temporary name in ``shards/``,
flushed and fsync'ed, then renamed over its final name (``os.replace``,
atomic on POSIX and Windows) and the folder fsync'ed. A process killed at
any moment (SIGKILL, power loss) leaves either the whole shard or only a
hidden temporary file, which readers ignore and the next run deletes. The
items of committed shards are done; a later run skips them (by id).

A store belongs to one configuration (model weights, target layers,
methods, targets, preprocessing, map size, metrics: see
:func:`fingerprint`); a run with another configuration on the same folder
is refused before any work (``overwrite=True`` starts the store afresh).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.scoring import given

__all__ = [
    "COLUMNS",
    "CONFIG_NAME",
    "INDEX_NAME",
    "SHARD_DIR",
    "STORE_FORMAT",
    "STORE_VERSION",
    "Results",
    "ShardWriter",
    "Store",
    "atomic_write",
    "config_differences",
    "fingerprint",
    "load_results",
    "open_results",
    "read_shard",
    "resize_map",
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
    "status": "U",         # ok, unreadable, too_small, no_label, model_error
    "reason": "U",         # why not ok (or a metric that failed), else ""
    "height": "int32",     # the image's size as decoded (0 when unreadable)
    "width": "int32",
    "target": "int64",     # the explained class (-1 when not explained)
    "score": "float32",    # the model's score (logit) of the explained class
    "prob": "float32",     # its softmax probability
    "empty_map": "bool",   # the map is all zeros
    "map_row": "int64",    # index into the shard's maps, -1 for none
}


# ------------------------------------------------------------ atomic files
def _fsync_dir(folder: Path) -> None:
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
    _fsync_dir(path.parent)


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1, sort_keys=True, allow_nan=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ------------------------------------------------------------ fingerprint
def fingerprint(config: Mapping[str, Any]) -> str:
    """The SHA-256 of the configuration, as canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found.extend(config_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            show_a, show_b = json.dumps(a)[:60], json.dumps(b)[:60]
            found.append(f"{prefix}{key}: {show_a} in the store, {show_b} now")
    return found


# ------------------------------------------------------------------- store
class Store:
    """A results store folder (see the module docstring)."""

    def __init__(self, root: Union[str, "os.PathLike[str]"]):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"out must be a folder path, got {given(root)}")
        self.root = Path(root)
        self.config_path = self.root / CONFIG_NAME
        self.index_path = self.root / INDEX_NAME
        self.shard_dir = self.root / SHARD_DIR

    # ---------------------------------------------------- configuration
    def check_config(self, config: Mapping[str, Any]) -> bool:
        """Whether the store already exists; ValueError if it was written
        with another configuration, or is not a results store."""
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"out {str(self.root)!r} is a file, not a folder")
        if not self.config_path.exists():
            if self.shard_dir.exists() and any(self.committed_shards()):
                raise ValueError(f"out {str(self.root)!r} holds shards but no {CONFIG_NAME}; "
                                 "it is not a store this library can resume: choose another "
                                 "folder or pass overwrite=True")
            return False
        try:
            stored = _read_json(self.config_path)
        except (OSError, ValueError) as error:
            raise ValueError(f"out {str(self.root)!r}: cannot read {CONFIG_NAME} ({error}); "
                             "choose another folder or pass overwrite=True") from None
        if not isinstance(stored, dict) or stored.get("format") != STORE_FORMAT:
            raise ValueError(f"out {str(self.root)!r}: {CONFIG_NAME} is not a results store "
                             "of pytorch_grad_cam.datasets")
        if stored.get("fingerprint") != fingerprint(config):
            changes = config_differences(stored.get("config", {}), config)
            listed = "; ".join(changes[:6]) + ("; ..." if len(changes) > 6 else "")
            raise ValueError(f"out {str(self.root)!r} holds results of another configuration "
                             f"({listed or 'fingerprints differ'}); resume only with the same "
                             "configuration, or choose another folder, or pass overwrite=True "
                             "to replace its results")
        return True

    def create(self, config: Mapping[str, Any], overwrite: bool = False) -> None:
        """Prepare the folder for a run (the main process only): with
        ``overwrite`` delete the store's own files first; write
        config.json if absent; delete the finalised index (it is rewritten
        at the end) and the temporary files of killed runs."""
        if overwrite:
            self.clear()
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            _write_json(self.config_path, {"format": STORE_FORMAT, "version": STORE_VERSION,
                                           "fingerprint": fingerprint(config),
                                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                           "config": dict(config)})
        self.index_path.unlink(missing_ok=True)
        for stale in self.shard_dir.glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
        _fsync_dir(self.shard_dir)

    def clear(self) -> None:
        """Delete the files this library writes in the store (shards,
        config, index, report); other files are left alone."""
        if self.shard_dir.is_dir():
            for path in self.shard_dir.iterdir():
                if path.is_file() and (path.suffix == SHARD_SUFFIX or ".tmp-" in path.name):
                    path.unlink()
        for name in (INDEX_NAME, CONFIG_NAME, "report.html"):
            (self.root / name).unlink(missing_ok=True)
        pictures = self.root / "report_files"
        if pictures.is_dir():
            for path in pictures.iterdir():
                if path.is_file():
                    path.unlink()

    def config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{str(self.root)!r} is not a results store (no "
                                    f"{CONFIG_NAME})")
        stored = _read_json(self.config_path)
        return dict(stored.get("config", {}))

    # ----------------------------------------------------------- shards
    def committed_shards(self) -> list[Path]:
        """The complete shards, sorted by name (temporary files excluded)."""
        if not self.shard_dir.is_dir():
            return []
        return sorted(p for p in self.shard_dir.iterdir()
                      if p.suffix == SHARD_SUFFIX and not p.name.startswith("."))

    def done_ids(self) -> set[str]:
        """The ids of every item in a committed shard."""
        done: set[str] = set()
        for path in self.committed_shards():
            done.update(read_shard(path, ("id",))["id"].tolist())
        return done

    def index(self) -> Optional[dict[str, Any]]:
        """The finalised index, or None while it is absent."""
        if not self.index_path.exists():
            return None
        return dict(_read_json(self.index_path))

    def write_index(self, index: Mapping[str, Any]) -> None:
        _write_json(self.index_path, dict(index))


def read_shard(path: Path, names: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
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
    """

    def __init__(self, store: Store, rank: int, methods: Sequence[str], metrics: Sequence[str],
                 top_k: int, map_shape: tuple[int, int], shard_size: int):
        self.store = store
        self.rank = rank
        self.methods = list(methods)
        self.metrics = list(metrics)
        self.top_k = top_k
        self.map_shape = map_shape
        self.shard_size = shard_size
        self.token = secrets.token_hex(4)
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
        """The rows of one item (one per method): the :data:`COLUMNS`
        except ``map_row``, plus ``pred_classes`` / ``pred_probs`` (k
        values, or None), ``metrics`` ({name: value}) and ``map`` (H x W
        float16, or None). Writes a shard when ``shard_size`` items are
        collected."""
        for row in rows:
            for name in COLUMNS:
                if name == "map_row":
                    continue
                self.columns[name].append(row[name])
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

    def flush(self) -> Optional[Path]:
        """Write the collected rows as a shard (nothing when there are
        none); returns its path."""
        if self.items == 0:
            return None
        arrays = self.arrays()
        self.sequence += 1
        path = self.store.shard_dir / (f"part-r{self.rank:04d}-{self.token}-"
                                       f"{self.sequence:06d}{SHARD_SUFFIX}")
        save: Callable[..., None] = np.savez
        atomic_write(path, lambda handle: save(handle, **arrays))
        self.written.append(path)
        self._reset()
        return path


# ------------------------------------------------------------------ reading
def resize_map(cam: np.ndarray, size: Optional[tuple[int, int]]) -> np.ndarray:
    """A stored map as float32, resized to ``size`` = (height, width) with
    bilinear interpolation (``align_corners=False``, the sampling the CAM
    methods use to enlarge maps); values are not renormalised."""
    array = np.asarray(cam, dtype=np.float32)
    if size is None or tuple(size) == array.shape:
        return array
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size)):
        raise ValueError(f"size must be (height, width) with positive ints, got {given(size)}")
    tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    mode = "area" if size[0] <= array.shape[0] and size[1] <= array.shape[1] else "bilinear"
    options = {} if mode == "area" else {"align_corners": False}
    resized = F.interpolate(tensor, size=(int(size[0]), int(size[1])), mode=mode, **options)
    return resized[0, 0].clamp(0, 1).numpy()


class Results:
    """A results store opened for reading.

    Attributes:
        path: the store folder.
        frame: one row per (item, method): the :data:`COLUMNS`, ``shard``
            (the file holding the row), the predictions as ``top1_class``,
            ``top1_prob``, ..., ``top{k}_prob``, and one column per metric;
            sorted by position, id and the configuration's method order.
        config: the configuration the store was written with.
        index: the finalised index (counts, dataset-level metrics, ranking),
            or None when the last run did not finish.
        complete: whether the index exists and covers every shard.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self.store = Store(path)
        self.path = self.store.root
        if not self.store.root.is_dir():
            raise FileNotFoundError(f"results {str(self.path)!r}: no such folder")
        self.config = self.store.config()
        self.index = self.store.index()
        shards = self.store.committed_shards()
        listed = {entry["name"] for entry in (self.index or {}).get("shards", [])}
        self.complete = self.index is not None and listed == {p.name for p in shards}
        self.frame = self._load(shards)
        # the map lookup, as plain arrays (no pandas row per call)
        self._shards = self.frame["shard"].astype(str).to_numpy()
        self._map_rows = self.frame["map_row"].to_numpy(dtype=np.int64)

    def _load(self, shards: Sequence[Path]):
        import pandas as pd

        methods = list(self.config.get("methods", []))
        metrics = list(self.config.get("metrics", []))
        top_k = int(self.config.get("top_k", 0))
        parts = []
        for path in shards:
            data = read_shard(path, [*COLUMNS, "pred_classes", "pred_probs",
                                     *(METRIC_PREFIX + m for m in metrics)])
            columns: dict[str, Any] = {name: data[name] for name in COLUMNS}
            columns["shard"] = np.full(len(data["id"]), path.name)
            for j in range(top_k):
                columns[f"top{j + 1}_class"] = data["pred_classes"][:, j]
                columns[f"top{j + 1}_prob"] = data["pred_probs"][:, j]
            for name in metrics:
                columns[name] = data[METRIC_PREFIX + name]
            parts.append(pd.DataFrame(columns))
        if parts:
            frame = pd.concat(parts, ignore_index=True)
        else:
            names = [*COLUMNS, "shard",
                     *(f"top{j + 1}_{kind}" for j in range(top_k) for kind in ("class", "prob")),
                     *metrics]
            frame = pd.DataFrame({name: [] for name in names})
        order = {name: i for i, name in enumerate(methods)}
        frame["_method_order"] = frame["method"].map(order).fillna(len(order))
        frame = frame.sort_values(["position", "id", "_method_order"], kind="stable")
        frame = frame.drop(columns="_method_order").reset_index(drop=True)
        for name in ("status", "method", "shard"):
            frame[name] = frame[name].astype("category")
        frame.attrs["store"] = str(self.path)
        return frame

    def __len__(self) -> int:
        return len(self.frame)

    def _shard_maps(self, name: str) -> np.ndarray:
        return _cached_maps(str(self.store.shard_dir / name))

    def map(self, row: int, size: Optional[tuple[int, int]] = None) -> np.ndarray:
        """The map of row ``row`` of :attr:`frame` (its position, as
        ``frame.iloc[row]``) as float32 in [0, 1], at the stored
        resolution or resized to ``size`` = (height, width), for example
        the image's ``(frame.height[row], frame.width[row])``. ValueError
        for a row without a map (an item that was not explained)."""
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"row must be an int position in results.frame, got {given(row)}")
        if not -len(self.frame) <= row < len(self.frame):
            raise IndexError(f"row {row} is out of range for {len(self.frame)} rows")
        index = int(self._map_rows[row])
        if index < 0:
            entry = self.frame.iloc[int(row)]
            raise ValueError(f"row {row} ({entry['id']!r}, {entry['method']}) has no map: its "
                             f"status is {entry['status']} ({entry['reason']})")
        return resize_map(self._shard_maps(str(self._shards[row]))[index], size)

    def find(self, item_id: str, method: Optional[str] = None) -> int:
        """The row of item ``item_id`` (and ``method``, default the first
        method of the configuration)."""
        method = method if method is not None else self.config["methods"][0]
        hits = np.flatnonzero((self.frame["id"] == item_id).to_numpy()
                              & (self.frame["method"] == method).to_numpy())
        if hits.size == 0:
            raise KeyError(f"no row for id {item_id!r} and method {method!r}")
        return int(hits[0])

    def iter_maps(self, rows: Optional[Sequence[int]] = None,
                  size: Optional[tuple[int, int]] = None) -> Iterator[tuple[int, np.ndarray]]:
        """(row, map) for the rows that have a map (all, or ``rows``), one
        shard in memory at a time when the rows are in shard order."""
        chosen = range(len(self.frame)) if rows is None else rows
        for row in chosen:
            if self._map_rows[int(row)] >= 0:
                yield int(row), self.map(int(row), size)


@lru_cache(maxsize=4)
def _cached_maps(path: str) -> np.ndarray:
    return read_shard(Path(path), ("maps",))["maps"]


def open_results(path: Union[str, "os.PathLike[str]"]) -> Results:
    """A results store as a :class:`Results` (the table as a pandas
    DataFrame in ``.frame``, maps with ``.map(row, size)``, the
    configuration and the finalised index)."""
    return Results(path)


def load_results(path: Union[str, "os.PathLike[str]"]):
    """The table of a results store as a pandas DataFrame, one row per
    (item, method) (see :class:`Results`; its ``attrs["store"]`` is the
    folder). For the maps use :func:`open_results` and ``.map(row,
    size)``."""
    return Results(path).frame
