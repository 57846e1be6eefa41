"""Reading a results store (:mod:`~pytorch_grad_cam.datasets.store`): the
table of every (item, method, target) row as a pandas DataFrame, and the
maps at the stored resolution or resized.

pandas is optional (the runner does not need it): it is imported when a
store is opened for reading.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.datasets.store import COLUMNS, DEFAULTS, METRIC_PREFIX, Store, read_shard
from pytorch_grad_cam.scoring import given

if TYPE_CHECKING:  # pandas is optional: the results' table needs it, the runner does not
    import pandas as pd  # noqa: TID253

__all__ = ["Results", "load_results", "open_results", "resize_map"]


def class_names_of(config: dict[str, Any]) -> list[str] | None:
    """The class names of a store: those the run was given
    (``explain_dataset(class_names=...)``), else ImageNet's for a model of
    1,000 classes, else None."""
    names = config.get("class_names")
    if names:
        return [str(name) for name in names]
    return list(IMAGENET_CLASSES) if int(config.get("num_classes", 0)) == 1000 else None


def resize_map(cam: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
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
        frame: one row per (item, method, target): the :data:`COLUMNS`,
            ``class_name`` (the explained class's name, "" when the store
            has no names: :func:`class_names_of`), ``shard`` (the file
            holding the row), the predictions as ``top1_class``,
            ``top1_prob``, ..., ``top{k}_prob``, and one column per metric;
            sorted by position, id, the configuration's method order and
            rank.
        config: the configuration the store was written with.
        index: the finalised index (counts, dataset-level metrics, ranking),
            or None when the last run did not finish.
        complete: whether the index exists and covers every shard.
    """

    def __init__(self, path: str | os.PathLike[str]):
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

    def _load(self, shards: Sequence[Path]) -> pd.DataFrame:
        import pandas as pd

        methods = list(self.config.get("methods", []))
        metrics = list(self.config.get("metrics", []))
        top_k = int(self.config.get("top_k", 0))
        parts = []
        for path in shards:
            data = read_shard(path, [*COLUMNS, "pred_classes", "pred_probs",
                                     *(METRIC_PREFIX + m for m in metrics)])
            columns: dict[str, Any] = {name: data[name] if name in data
                                       else np.full(len(data["id"]), DEFAULTS[name])
                                       for name in COLUMNS}
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
        class_names = class_names_of(self.config)
        targets = frame["target"].to_numpy(dtype=np.int64)
        frame.insert(frame.columns.get_loc("target") + 1, "class_name",
                     [class_names[t] if class_names and 0 <= t < len(class_names) else ""
                      for t in targets])
        order = {name: i for i, name in enumerate(methods)}
        frame["_method_order"] = frame["method"].map(order).fillna(len(order))
        frame = frame.sort_values(["position", "id", "_method_order", "rank"], kind="stable")
        frame = frame.drop(columns="_method_order").reset_index(drop=True)
        for name in ("status", "method", "shard"):
            frame[name] = frame[name].astype("category")
        frame.attrs["store"] = str(self.path)
        return frame

    def __len__(self) -> int:
        return len(self.frame)

    def _shard_maps(self, name: str) -> np.ndarray:
        return _cached_maps(str(self.store.shard_dir / name))

    def map(self, row: int, size: tuple[int, int] | None = None) -> np.ndarray:
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

    def find(self, item_id: str, method: str | None = None, rank: int = 0) -> int:
        """The row of item ``item_id`` (and ``method``, default the first
        method of the configuration; ``rank``: which of the item's targets,
        0 its best)."""
        method = method if method is not None else self.config["methods"][0]
        hits = np.flatnonzero((self.frame["id"] == item_id).to_numpy()
                              & (self.frame["method"] == method).to_numpy()
                              & (self.frame["rank"] == rank).to_numpy())
        if hits.size == 0:
            raise KeyError(f"no row for id {item_id!r}, method {method!r} and rank {rank}")
        return int(hits[0])

    def iter_maps(self, rows: Sequence[int] | None = None,
                  size: tuple[int, int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(row, map) for the rows that have a map (all, or ``rows``), one
        shard in memory at a time when the rows are in shard order."""
        chosen = range(len(self.frame)) if rows is None else rows
        for row in chosen:
            if self._map_rows[int(row)] >= 0:
                yield int(row), self.map(int(row), size)


@lru_cache(maxsize=4)
def _cached_maps(path: str) -> np.ndarray:
    return read_shard(Path(path), ("maps",))["maps"]


def open_results(path: str | os.PathLike[str]) -> Results:
    """A results store as a :class:`Results` (the table as a pandas
    DataFrame in ``.frame``, maps with ``.map(row, size)``, the
    configuration and the finalised index)."""
    return Results(path)


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The table of a results store as a pandas DataFrame, one row per
    (item, method) (see :class:`Results`; its ``attrs["store"]`` is the
    folder). For the maps use :func:`open_results` and ``.map(row,
    size)``."""
    return Results(path).frame
