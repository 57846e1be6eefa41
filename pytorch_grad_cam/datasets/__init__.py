"""Explain a whole dataset: a resumable runner with a sharded results
store, dataset-level metrics, an HTML report, and several processes, GPUs
or nodes through torchrun::

    from pytorch_grad_cam.datasets import explain_dataset, load_results, open_results

    summary = explain_dataset("photos/", model, ["gradcam", "scorecam"],
                              target_layers=["layer4[-1]"], out="results/")
    frame = load_results("results/")            # pandas, one row per (image, method)
    cam = open_results("results/").map(0, size=(480, 640))

Modules: :mod:`~pytorch_grad_cam.datasets.runner` (``explain_dataset``),
:mod:`~pytorch_grad_cam.datasets.checks` (its arguments, checked before
any work), :mod:`~pytorch_grad_cam.datasets.loop` (the DataLoader, the
progress bar, every finished image's rows to the store),
:mod:`~pytorch_grad_cam.datasets.explainer` (the methods, predictions and
metrics of each item), :mod:`~pytorch_grad_cam.datasets.target_modes` (the
classes explained in each image: one, ``TopClasses(k)``, ``MultiLabel``),
:mod:`~pytorch_grad_cam.datasets.sources` (folders, lists, Datasets,
decoding), :mod:`~pytorch_grad_cam.datasets.store` (the shards),
:mod:`~pytorch_grad_cam.datasets.results` (the loader),
:mod:`~pytorch_grad_cam.datasets.ownership` (the files a store owns),
:mod:`~pytorch_grad_cam.datasets.identity` (the source and files the
results come from),
:mod:`~pytorch_grad_cam.datasets.atomic` (atomic writes),
:mod:`~pytorch_grad_cam.datasets.evaluation` (metrics per image, streaming
statistics, ranking), :mod:`~pytorch_grad_cam.datasets.sanity` (the sanity
checks on a sample of the run, ``sanity.json``),
:mod:`~pytorch_grad_cam.datasets.summary` (the
finalised index, what a run will do and what it did),
:mod:`~pytorch_grad_cam.datasets.report` and
:mod:`~pytorch_grad_cam.datasets.plots` (HTML, the metrics' plots),
:mod:`~pytorch_grad_cam.datasets.distributed` (torchrun),
:mod:`~pytorch_grad_cam.datasets.cost` (the passes a run will make),
:mod:`~pytorch_grad_cam.datasets.options` (``explain-dataset``'s options,
checked before torch is imported) and :mod:`~pytorch_grad_cam.datasets.cli`
(``explain-dataset``).

The names below are imported when first used, so that the command's
arguments are checked (:mod:`~pytorch_grad_cam.datasets.options`) before
torch is imported.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytorch_grad_cam.lazy import submodule

if TYPE_CHECKING:  # what the lazy names are, for type checkers
    from pytorch_grad_cam.datasets.evaluation import (
        DATASET_METRICS,
        BatchMetrics,
        RunningStats,
        check_metrics,
        rank_methods,
    )
    from pytorch_grad_cam.datasets.ownership import StoreRefused
    from pytorch_grad_cam.datasets.report import write_overlays, write_report
    from pytorch_grad_cam.datasets.results import Results, load_results, open_results, resize_map
    from pytorch_grad_cam.datasets.runner import explain_dataset, model_fingerprint
    from pytorch_grad_cam.datasets.sources import STATUSES, Preprocess, decode_image
    from pytorch_grad_cam.datasets.summary import RunStart, RunSummary
    from pytorch_grad_cam.datasets.target_modes import MultiLabel, TopClasses

__all__ = [
    "DATASET_METRICS", "STATUSES", "BatchMetrics", "MultiLabel", "Preprocess", "Results",
    "RunStart", "RunSummary", "RunningStats", "StoreRefused", "TopClasses", "check_metrics",
    "decode_image",
    "explain_dataset", "load_results", "model_fingerprint", "open_results", "rank_methods",
    "resize_map", "write_overlays", "write_report",
]

#: public name -> the submodule that defines it
_HOMES = {
    **dict.fromkeys(("DATASET_METRICS", "BatchMetrics", "RunningStats", "check_metrics",
                     "rank_methods"), "evaluation"),
    "StoreRefused": "ownership",
    **dict.fromkeys(("write_overlays", "write_report"), "report"),
    **dict.fromkeys(("explain_dataset", "model_fingerprint"), "runner"),
    **dict.fromkeys(("STATUSES", "Preprocess", "decode_image"), "sources"),
    **dict.fromkeys(("Results", "load_results", "open_results", "resize_map"), "results"),
    **dict.fromkeys(("RunStart", "RunSummary"), "summary"),
    **dict.fromkeys(("MultiLabel", "TopClasses"), "target_modes"),
}


def __getattr__(name: str) -> Any:
    """A name of :data:`__all__` or a submodule, imported on first use."""
    if name in _HOMES:
        return getattr(submodule(__name__, _HOMES[name]), name)
    return submodule(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
