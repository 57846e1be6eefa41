"""Dataset-level evaluation: the faithfulness metrics of
:mod:`pytorch_grad_cam.metrics` per batch, streaming accumulators of their
values over a dataset, and a ranked comparison of the methods.

The metrics are the library's classes, called on a batch of images (the
runner's: one image) with the maps at the input size
(:class:`BatchMetrics`; its ``passes`` counts what they cost), scored on class
probabilities (``ClassifierOutputSoftmaxTarget``) as the papers and
``metrics.evaluate.evaluate_cam_methods`` do. :class:`RunningStats` keeps
count, mean and the sum of squared deviations (Welford's update, Chan et
al.'s merge), so that a million values never sit in memory and partial
results of several processes or shards combine exactly.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.metric_names import DATASET_METRICS, check_metrics
from pytorch_grad_cam.metrics.arcc import Coherency, Complexity, arcc_from_parts
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.road import (
    ROADCombined,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.scoring import check_positive_int
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

__all__ = ["DATASET_METRICS", "BatchMetrics", "RunningStats", "check_metrics", "rank_methods"]

#: two-sided 95% quantile of the normal distribution
Z95 = 1.959963984540054


class BatchMetrics:
    """The chosen metrics of one method's maps for one batch.

    Args:
        names: metric names (see :data:`DATASET_METRICS`).
        batch_size: images per forward pass of the perturbed inputs.
        road_percentiles: percentiles of the ROAD metrics (as
            ``evaluate_cam_methods``, default 20, 40, 60, 80).
        n_steps: steps of the deletion / insertion curves (default 50).

    The ROAD metrics remove pixels by rank with fixed noise
    (``removal="rank", seed=0``), as ``evaluate_cam_methods`` does.
    ROADCombined is (LeRF - MoRF) / 2 of the averaged curves: when MoRF and
    LeRF are computed anyway it is derived from them (the score before
    removal cancels), else ``ROADCombined`` runs. ARCC is
    ``arcc_from_parts`` of Coherency, Complexity and ROADCombined.
    """

    def __init__(self, names: Sequence[str], batch_size: int | None = None,
                 road_percentiles: Sequence[float] = (20, 40, 60, 80), n_steps: int = 50):
        self.names = list(names)
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.road_percentiles = list(road_percentiles)
        self.n_steps = check_positive_int("n_steps", n_steps)
        wanted = set(self.names)
        if "ARCC" in wanted:
            wanted |= {"Coherency", "Complexity", "ROADCombined"}
        self.wanted = wanted
        bs = self.batch_size
        # built once, checked before any work
        self.drop = DropInConfidence(bs, relative=True)  # the paper's Average Drop
        self.increase = IncreaseInConfidence(bs)
        # ROAD as evaluate_cam_methods: exact pixel counts, fixed noise
        self.morf = ROADMostRelevantFirstAverage(self.road_percentiles, bs, seed=0, removal="rank")
        self.lerf = ROADLeastRelevantFirstAverage(self.road_percentiles, bs, seed=0,
                                                  removal="rank")
        self.combined = ROADCombined(self.road_percentiles, bs, seed=0, removal="rank")
        self.deletion = DeletionAUC(self.n_steps, batch_size=bs)
        self.insertion = InsertionAUC(self.n_steps, batch_size=bs)
        self.complexity = Complexity()
        self.coherency = Coherency(bs)

    def config(self) -> dict[str, Any]:
        return {"road_percentiles": [float(p) for p in self.road_percentiles],
                "n_steps": self.n_steps}

    def passes(self, method_forward: int, method_backward: int = 0
               ) -> dict[str, tuple[int, int]]:
        """The (forward, backward) passes of the model that each metric
        computed makes for one image (every metric of ``names``, and the
        parts ARCC is made of), in the order of :data:`DATASET_METRICS`.
        ``method_forward`` / ``method_backward``: the passes of the method
        whose map is scored (Coherency explains the masked image with it
        again). Per image: DropInConfidence and IncreaseInConfidence 2
        (the image and the masked image), ROADMoRF and ROADLeRF one per
        percentile plus the image, ROADCombined two per percentile (none
        when MoRF and LeRF are computed: it is derived from them),
        Deletion and Insertion ``n_steps`` + 1, Complexity none, ARCC none
        beyond its parts."""
        percentiles = len(self.road_percentiles)
        own = {"DropInConfidence": (2, 0), "IncreaseInConfidence": (2, 0),
               "ROADMoRF": (percentiles + 1, 0), "ROADLeRF": (percentiles + 1, 0),
               "ROADCombined": (2 * percentiles, 0),
               "Deletion": (self.n_steps + 1, 0), "Insertion": (self.n_steps + 1, 0),
               "Complexity": (0, 0), "Coherency": (int(method_forward), int(method_backward)),
               "ARCC": (0, 0)}
        if {"ROADMoRF", "ROADLeRF"} <= self.wanted:
            own["ROADCombined"] = (0, 0)
        return {name: own[name] for name in DATASET_METRICS if name in self.wanted}

    def __call__(self, inputs: torch.Tensor, maps: torch.Tensor, classes: Sequence[int],
                 model: torch.nn.Module, cam: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """({metric: B values}, {metric: error}) for B images: their model
        inputs, their maps at the input size and the explained classes. A
        metric that raises gives NaN for the batch and its error message."""
        probability: list[Callable] = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
        logit: list[Callable] = [ClassifierOutputTarget(int(c)) for c in classes]
        values: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        batch = inputs.shape[0]

        def attempt(name: str, compute: Any) -> None:
            if name not in self.wanted or name in values:
                return
            try:
                values[name] = np.asarray(compute(), dtype=np.float32).reshape(batch)
            except Exception as error:  # noqa: BLE001  (a metric's failure is a NaN with its reason)
                values[name] = np.full(batch, np.nan, np.float32)
                text = str(error).strip().splitlines()
                errors[name] = f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")

        attempt("DropInConfidence", lambda: self.drop(inputs, maps, probability, model))
        attempt("IncreaseInConfidence", lambda: self.increase(inputs, maps, probability, model))
        attempt("ROADMoRF", lambda: self.morf(inputs, maps, probability, model))
        attempt("ROADLeRF", lambda: self.lerf(inputs, maps, probability, model))
        if "ROADMoRF" in values and "ROADLeRF" in values:
            attempt("ROADCombined", lambda: (values["ROADLeRF"] - values["ROADMoRF"]) / 2)
        attempt("ROADCombined", lambda: self.combined(inputs, maps, probability, model))
        attempt("Deletion", lambda: self.deletion(inputs, maps, probability, model))
        attempt("Insertion", lambda: self.insertion(inputs, maps, probability, model))
        attempt("Complexity", lambda: self.complexity(maps))
        attempt("Coherency", lambda: self.coherency(inputs, maps, logit, model, cam))
        attempt("ARCC", lambda: arcc_from_parts(values["Coherency"], values["Complexity"],
                                                values["ROADCombined"]))
        return {name: values[name] for name in self.names}, \
            {name: errors[name] for name in self.names if name in errors}


# ----------------------------------------------------------- accumulators
@dataclass
class RunningStats:
    """Streaming statistics of one metric over a dataset.

    ``update(values)`` adds a batch (NaN values are counted, not averaged),
    ``skip(n)`` counts items without a value (not explained), ``merge``
    combines two accumulators exactly (Chan et al.). ``result()`` gives
    the mean, the sample standard deviation and the 95% confidence interval
    of the mean, mean +- 1.96 std / sqrt(n) (the normal approximation,
    good for the hundreds of images and more of a dataset run)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    nan: int = 0
    skipped: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    def update(self, values: Any) -> RunningStats:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = np.isfinite(array)
        self.nan += int(array.size - finite.sum())
        array = array[finite]
        if array.size:
            batch = RunningStats(count=int(array.size), mean=float(array.mean()),
                                 m2=float(((array - array.mean()) ** 2).sum()),
                                 minimum=float(array.min()), maximum=float(array.max()))
            self.merge(batch)
        return self

    def skip(self, count: int = 1) -> RunningStats:
        self.skipped += int(count)
        return self

    def merge(self, other: RunningStats) -> RunningStats:
        self.nan += other.nan
        self.skipped += other.skipped
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
        else:
            total = self.count + other.count
            delta = other.mean - self.mean
            self.mean += delta * other.count / total
            self.m2 += other.m2 + delta * delta * self.count * other.count / total
            self.count = total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        return self

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else math.nan

    def result(self) -> dict[str, float]:
        """count, mean, std, ci95_low, ci95_high, min, max, nan, skipped
        (NaN where undefined)."""
        mean = self.mean if self.count else math.nan
        half = Z95 * self.std / math.sqrt(self.count) if self.count > 1 else math.nan
        return {"count": self.count, "mean": mean, "std": self.std,
                "ci95_low": mean - half, "ci95_high": mean + half,
                "min": self.minimum if self.count else math.nan,
                "max": self.maximum if self.count else math.nan,
                "nan": self.nan, "skipped": self.skipped}


def _average_ranks(values: Sequence[float], higher_is_better: bool) -> list[float]:
    """Rank 1 for the best; ties share their average rank; NaN ranks last."""
    keyed = [(-v if higher_is_better else v) if not math.isnan(v) else math.inf for v in values]
    order = sorted(range(len(keyed)), key=lambda i: keyed[i])
    ranks = [0.0] * len(keyed)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and keyed[order[j + 1]] == keyed[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_methods(stats: Mapping[str, Mapping[str, Mapping[str, float]]],
                 metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Which method is most faithful on this data: the methods ranked by
    their mean rank over the metrics.

    Args:
        stats: ``{method: {metric: RunningStats.result()}}``.
        metrics: the metrics to rank by (default: all in ``stats``).

    Returns:
        one dict per method, best first: ``method``, ``mean_rank``,
        ``ranks`` ({metric: rank, 1 = best, by the metric's direction in
        :data:`DATASET_METRICS`}) and ``wins`` (the metrics it is best
        at); for each metric where it is best also whether its 95%
        interval ``separated`` it from the second (``clear``: the intervals
        do not overlap).
    """
    methods = list(stats)
    if not methods:
        return []
    if metrics is None:
        metrics = [m for m in DATASET_METRICS if any(m in stats[x] for x in methods)]
    ranks: dict[str, dict[str, float]] = {method: {} for method in methods}
    clear: dict[str, dict[str, bool]] = {method: {} for method in methods}
    for metric in metrics:
        higher = DATASET_METRICS.get(metric, "higher") == "higher"
        means = [float(stats[m].get(metric, {}).get("mean", math.nan)) for m in methods]
        metric_ranks = _average_ranks(means, higher)
        for method, rank in zip(methods, metric_ranks):
            ranks[method][metric] = rank
        order = sorted(range(len(methods)), key=lambda i: metric_ranks[i])
        if len(order) > 1 and metric_ranks[order[0]] == 1.0:
            best, second = stats[methods[order[0]]][metric], stats[methods[order[1]]][metric]
            if higher:
                separated = best["ci95_low"] > second["ci95_high"]
            else:
                separated = best["ci95_high"] < second["ci95_low"]
            clear[methods[order[0]]][metric] = bool(separated)
    rows: list[dict[str, Any]] = []
    for method in methods:
        finite = list(ranks[method].values())
        rows.append({"method": method,
                     "mean_rank": float(np.mean(finite)) if finite else math.nan,
                     "ranks": ranks[method],
                     "wins": [m for m, r in ranks[method].items() if r == 1.0],
                     "clear": clear[method]})
    rows.sort(key=lambda row: (row["mean_rank"], methods.index(row["method"])))
    return rows
