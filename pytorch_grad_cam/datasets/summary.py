"""The finalised index of a results store, what a run is about to do
(:class:`RunStart`) and what it did (:class:`RunSummary`).

:func:`finalise` reads every committed shard once, one at a time (never
the whole store in memory), and writes ``index.json``: the shards, the
items by status (an item is ``ok`` when every method explained it, else it
takes its first other status), per method the statuses and the number of
empty maps (of its rows: one per image and target), the targets it
explained per rank (``ranks``: {"0": rows, "1": rows, ...}; rank 0 is each
image's best class), the dataset-level metric statistics (over the
(image, target) rows)
(:class:`~pytorch_grad_cam.datasets.evaluation.RunningStats`) and the ranked
comparison of the methods. It is computed from the store, not from one
run's memory, so a resumed run, or one made of several processes, gets the
numbers of the whole store.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.datasets.evaluation import DATASET_METRICS, BatchMetrics, RunningStats, rank_methods
from pytorch_grad_cam.datasets.sanity import sanity_lines
from pytorch_grad_cam.datasets.store import (
    DEFAULTS,
    METRIC_PREFIX,
    STORE_FORMAT,
    STORE_VERSION,
    Store,
    fingerprint,
    read_shard,
)
from pytorch_grad_cam.datasets.target_modes import TargetSpec

__all__ = ["RunStart", "RunSummary", "compute_index", "finalise", "rate_text",
           "summary_from_index"]

#: the target ranks the summary and the report show (the first ones, and the last)
SHOWN_RANKS = 10


def finalise(store: Store, config: Mapping[str, Any]) -> dict[str, Any]:
    """Compute (:func:`compute_index`) and write the store's ``index.json``;
    returns it."""
    index = compute_index(store, config)
    store.write_index(index)
    return index


def compute_index(store: Store, config: Mapping[str, Any]) -> dict[str, Any]:
    """The index of the store's committed shards (see the module
    docstring), reading one shard at a time. RuntimeError if an item
    appears in two shards (two runs wrote into the store at the same
    time)."""
    methods: list[str] = list(config["methods"])
    metrics: list[str] = list(config.get("metrics", []))
    shards = []
    item_status: Counter = Counter()
    method_status: dict[str, Counter] = {m: Counter() for m in methods}
    empty: Counter = Counter()
    ranks: dict[str, Counter] = {m: Counter() for m in methods}
    stats = {m: {name: RunningStats() for name in metrics} for m in methods}
    seen: set[str] = set()
    duplicates: list[str] = []
    rows_total = 0
    for path in store.committed_shards():
        data = read_shard(path, ["id", "method", "status", "empty_map", "rank",
                                 *(METRIC_PREFIX + name for name in metrics)])
        ids, row_methods, statuses = data["id"], data["method"], data["status"]
        row_ranks = data.get("rank", np.full(len(ids), DEFAULTS["rank"], np.int32))
        first: dict[str, str] = {}
        for item_id, status in zip(ids.tolist(), statuses.tolist()):
            if item_id not in first or (first[item_id] == "ok" and status != "ok"):
                first[item_id] = status
        for item_id, status in first.items():
            if item_id in seen:
                duplicates.append(item_id)
            seen.add(item_id)
            item_status[status] += 1
        ok = statuses == "ok"
        for method in methods:
            mine = row_methods == method
            for status, count in zip(*np.unique(statuses[mine], return_counts=True)):
                method_status[method][str(status)] += int(count)
            empty[method] += int((data["empty_map"] & mine).sum())
            for rank, count in zip(*np.unique(row_ranks[mine & ok], return_counts=True)):
                ranks[method][int(rank)] += int(count)
            for name in metrics:
                column = data.get(METRIC_PREFIX + name)
                if column is None:
                    continue
                stats[method][name].update(column[mine & ok])
                stats[method][name].skip(int((mine & ~ok).sum()))
        shards.append({"name": path.name, "rows": int(len(ids)), "items": len(first)})
        rows_total += int(len(ids))
    if duplicates:
        raise RuntimeError(f"{len(duplicates)} item(s) appear in more than one shard of "
                           f"{str(store.root)!r}, for example {duplicates[0]!r}: two runs wrote "
                           "into this store at the same time; run once more with overwrite=True")
    results = {m: {name: s.result() for name, s in by_metric.items()}
               for m, by_metric in stats.items()}
    index = {
        "format": STORE_FORMAT, "version": STORE_VERSION, "fingerprint": fingerprint(config),
        "finalised": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "shards": shards, "items": len(seen), "rows": rows_total,
        "status_counts": dict(sorted(item_status.items())),
        "methods": {m: {"status_counts": dict(sorted(method_status[m].items())),
                        "empty_maps": int(empty[m]),
                        "ranks": {str(r): n for r, n in sorted(ranks[m].items())}}
                    for m in methods},
        "metrics": results,
        "ranking": rank_methods(results, metrics) if metrics and len(methods) > 1 else [],
    }
    return index


def _number(value: float, digits: int = 4) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def rate_text(images: int, seconds: float) -> str:
    """How fast images went: ``12.3 images/s``, or ``25.1 s/image`` when an
    image took longer than a second (never "0.0 images/s"); "" when no
    image was explained or no time was measured."""
    if images <= 0 or not seconds > 0:
        return ""
    if images >= seconds:
        return f"{images / seconds:.1f} images/s"
    return f"{seconds / images:.1f} s/image"


@dataclass
class RunStart:
    """What a run is about to do, given to ``explain_dataset(on_start=...)``
    on rank 0 after every check and before the first image
    (``datasets.cost.run_cost`` tells its passes).

    Attributes:
        out: the store folder.
        items: items in the source.
        skipped: of these, already in the store: not explained again.
        to_explain: items this run explains (all processes), ``changed``
            of them again because their file changed since.
        methods: the method names, in the order of the rows.
        cams: the CAM object of each method (its ``n_samples`` and such).
        target_layers: the names of the target layers.
        channels: the channels of each target layer's map.
        input_size: the model input's (height, width).
        device, batch_size, workers, world_size: where and how the run goes.
        metrics: the metrics scored for every map, or None.
        targets: the classes explained in every image (several:
            ``TopClasses``, ``MultiLabel``).
        sanity: with sanity checks, what they cost after the run (the
            sample, the maps per method), else "".
    """

    out: Path
    items: int
    skipped: int
    to_explain: int
    changed: int
    methods: list[str]
    cams: dict[str, Any]
    target_layers: list[str]
    channels: list[int]
    input_size: tuple[int, int]
    device: torch.device
    batch_size: int
    workers: int
    world_size: int = 1
    metrics: BatchMetrics | None = None
    targets: TargetSpec = TargetSpec()
    sanity: str = ""


@dataclass
class RunSummary:
    """What a call of ``explain_dataset`` did, and what the store holds.

    Attributes:
        out: the store folder.
        items: items in the source.
        skipped: of these, already in the store before this run.
        processed: explained (or recorded as bad) by this run, all processes.
        changed: of these, items the store held whose file had changed
            since (another size or modification time): explained again.
        status_counts: the store's items by status (``ok``, ``unreadable``,
            ``too_small``, ``no_label``, ``model_error``).
        methods: per method ``status_counts`` (rows), ``empty_maps`` and
            ``ranks`` (its explained rows per target rank, as str keys).
        metrics: ``{method: {metric: statistics}}`` over the store (count,
            mean, std, ci95_low, ci95_high, min, max, nan, skipped).
        ranking: the methods, most faithful first (``rank_methods``).
        seconds: wall time of this run's explaining loop (slowest process).
        images_per_second: ``processed / seconds`` (printed as ``s/image``
            when below one).
        world_size: processes of the run; workers: DataLoader workers per
            process; batch_size: images per batch.
        report: the HTML report, when asked for.
        sanity: with ``sanity_checks``, what ``out/sanity.json`` holds
            (``datasets.sanity``: the sample, and a row per method and
            check with its value, threshold and verdict), else None.
    """

    out: Path
    items: int
    skipped: int
    processed: int
    status_counts: dict[str, int]
    methods: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, dict[str, float]]]
    ranking: list[dict[str, Any]]
    seconds: float
    world_size: int = 1
    workers: int = 0
    batch_size: int = 1
    device: str = "cpu"
    report: Path | None = None
    changed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    sanity: dict[str, Any] | None = None

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else math.nan

    @property
    def bad(self) -> int:
        """Items of the store that are not ``ok``."""
        return sum(n for status, n in self.status_counts.items() if status != "ok")

    def __str__(self) -> str:
        rate = rate_text(self.processed, self.seconds)
        lines = [f"results in {self.out}: {sum(self.status_counts.values())} items "
                 f"({', '.join(f'{n} {s}' for s, n in self.status_counts.items()) or 'none'})",
                 f"this run: {self.processed} explained"
                 + (f" ({self.changed} again: file(s) changed since)" if self.changed else "")
                 + f", {self.skipped} already done, {self.seconds:.1f} s"
                 + (f", {rate}" if rate else "")
                 + f" ({self.world_size} process(es) on {self.device}, {self.workers} "
                 f"DataLoader worker(s) each, batch {self.batch_size})"]
        for method, info in self.methods.items():
            if info.get("empty_maps"):
                lines.append(f"{method}: {info['empty_maps']} empty map(s)")
            by_rank = sorted((int(r), n) for r, n in info.get("ranks", {}).items())
            if len(by_rank) > 1:
                shown = [f"rank {r}: {n}" for r, n in by_rank]
                if len(shown) > SHOWN_RANKS:
                    shown = [*shown[:SHOWN_RANKS - 1], "...", shown[-1]]
                lines.append(f"{method}: targets explained by rank (0 = each image's best): "
                             + ", ".join(shown))
        for method, by_metric in self.metrics.items():
            for name, s in by_metric.items():
                better = DATASET_METRICS.get(name, "?")
                lines.append(f"{method:>12} {name:<20} mean {_number(s['mean'])} "
                             f"(95% CI {_number(s['ci95_low'])} .. {_number(s['ci95_high'])}, "
                             f"std {_number(s['std'])}, n {s['count']}, NaN {s['nan']}, "
                             f"skipped {s['skipped']}; {better} is better)")
        if self.ranking:
            order = ", ".join(f"{row['method']} (mean rank {row['mean_rank']:.2f})"
                              for row in self.ranking)
            lines.append(f"ranking, most faithful first: {order}")
        if self.sanity is not None:
            lines += sanity_lines(self.sanity)
        if self.report is not None:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


def summary_from_index(index: Mapping[str, Any], out: Path, items: int, skipped: int,
                       processed: int, seconds: float, **options: Any) -> RunSummary:
    """The :class:`RunSummary` of a run, its dataset-level figures read from the
    finalised index."""
    return RunSummary(out=out, items=items, skipped=skipped, processed=processed,
                      status_counts=dict(index.get("status_counts", {})),
                      methods=dict(index.get("methods", {})),
                      metrics=dict(index.get("metrics", {})),
                      ranking=list(index.get("ranking", [])), seconds=seconds, **options)
