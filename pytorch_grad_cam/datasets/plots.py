"""The report's plots of the metrics: for each metric one PNG with two
panels, the mean of each method with its 95% confidence interval as
whiskers (the numbers of the metrics table: the store's index), and the
distribution of its values over the images, a box per method (median,
quartiles, whiskers at 1.5 times the interquartile range, the values
beyond them as points).

:func:`metric_plots` computes what is plotted (no matplotlib needed);
:func:`draw` makes the figure and :func:`write_plots` the files, with
matplotlib (an optional dependency, imported when called).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pytorch_grad_cam.datasets.atomic import atomic_write
from pytorch_grad_cam.datasets.evaluation import DATASET_METRICS

__all__ = ["MetricPlot", "draw", "metric_plots", "plot_name", "write_plots"]


@dataclass
class MetricPlot:
    """What one metric's PNG shows.

    Attributes:
        metric: its name; better: "higher" or "lower".
        methods: the methods, in the run's order.
        means, ci_low, ci_high: per method, the mean over the images and its
            95% confidence interval (NaN when undefined: fewer than two
            values), as the store's index (and the metrics table) has them.
        values: per method, its finite values, one per explained image.
    """

    metric: str
    better: str
    methods: list[str]
    means: list[float]
    ci_low: list[float]
    ci_high: list[float]
    values: list[np.ndarray]


def plot_name(metric: str) -> str:
    """The PNG's file name in ``report_files/``."""
    return f"metric-{metric}.png"


def metric_plots(frame: Any, index: Mapping[str, Any], methods: Sequence[str],
                 metrics: Sequence[str]) -> list[MetricPlot]:
    """One :class:`MetricPlot` per metric: the means and intervals from
    ``index["metrics"]`` (the finalised index, or ``compute_index``'s), the
    values from the ``ok`` rows of ``frame`` (``Results.frame``)."""
    ok = frame[frame["status"] == "ok"]
    plots = []
    for metric in metrics:
        stats = [index.get("metrics", {}).get(method, {}).get(metric, {}) for method in methods]
        values = []
        for method in methods:
            column = ok.loc[ok["method"] == method, metric].to_numpy(dtype=np.float64)
            values.append(column[np.isfinite(column)])
        plots.append(MetricPlot(
            metric=metric, better=DATASET_METRICS.get(metric, "?"), methods=list(methods),
            means=[float(s.get("mean", math.nan)) for s in stats],
            ci_low=[float(s.get("ci95_low", math.nan)) for s in stats],
            ci_high=[float(s.get("ci95_high", math.nan)) for s in stats],
            values=values))
    return plots


def draw(plot: MetricPlot) -> Any:
    """The matplotlib Figure of ``plot`` (Agg canvas: no display needed;
    the means' line has the gid "means", each box's median line "median");
    ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(plot.methods)
    figure = Figure(figsize=(4 + 1.6 * count, 3.4), dpi=100)
    FigureCanvasAgg(figure)
    means_axes, box_axes = figure.subplots(1, 2)
    positions = np.arange(1, count + 1)
    means = np.asarray(plot.means, dtype=np.float64)
    below = np.nan_to_num(means - np.asarray(plot.ci_low, dtype=np.float64))
    above = np.nan_to_num(np.asarray(plot.ci_high, dtype=np.float64) - means)
    bars = means_axes.errorbar(positions, means, yerr=[below, above], fmt="o", capsize=6)
    bars.lines[0].set_gid("means")  # the points (the others: caps and whiskers)
    means_axes.set_title("mean, 95% confidence interval", fontsize=9)
    drawn = [k for k, values in enumerate(plot.values) if values.size]
    if drawn:
        boxes = box_axes.boxplot([plot.values[k] for k in drawn], positions=positions[drawn],
                                 widths=0.5)
        for line in boxes["medians"]:
            line.set_gid("median")
    box_axes.set_title("over the images", fontsize=9)
    for axes in (means_axes, box_axes):
        axes.set_xticks(positions)
        axes.set_xticklabels([f"{m}\n(n={v.size})" for m, v in zip(plot.methods, plot.values)],
                             fontsize=8)
        axes.set_xlim(0.5, count + 0.5)
        axes.set_ylabel(plot.metric)
    figure.suptitle(f"{plot.metric} ({plot.better} is better)", fontsize=10)
    figure.tight_layout()
    return figure


def write_plots(plots: Sequence[MetricPlot], folder: Path) -> list[Path]:
    """Each plot as ``folder/metric-<name>.png``, written atomically;
    returns the files. ImportError without matplotlib."""
    written = []
    for plot in plots:
        path = folder / plot_name(plot.metric)
        atomic_write(path, partial(draw(plot).savefig, format="png"))
        written.append(path)
    return written
