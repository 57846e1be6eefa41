"""The batch loop of one process: the DataLoader that decodes the items in
worker processes, the progress bar, and the loop that hands every finished
image's rows to the shard writer.

Rows are written per image, not per batch: each item's rows go to the
writer as soon as :meth:`~pytorch_grad_cam.datasets.explainer.Explainer.
explain` finishes the item, and the writer's rows are committed as a shard
when the loop ends for any reason (Ctrl-C included), so an interrupted run
keeps every image it finished; a run killed with SIGKILL keeps its
committed shards (``shard_size`` items each).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pytorch_grad_cam.datasets.explainer import Explainer
from pytorch_grad_cam.datasets.identity import FileStats
from pytorch_grad_cam.datasets.sources import Preprocess, Source, WorkItems, collate_records
from pytorch_grad_cam.datasets.store import ShardWriter
from pytorch_grad_cam.utils.settings import temporary_setting

__all__ = ["Worker", "explain_items", "make_loader", "opencv_threads", "progress_bar"]


class Worker:
    """DataLoader ``worker_init_fn``: the user's own, if any.

    It does not call ``cv2.setNumThreads`` in the worker: in a forked
    child that can deadlock on the condition variable of the parent's
    OpenCV thread pool (seen here with OpenCV's pthreads backend), while
    OpenCV's functions themselves run safely after a fork. The parent sets
    one OpenCV thread before the workers fork (:func:`opencv_threads`)."""

    def __init__(self, user: Callable[[int], None] | None):
        self.user = user

    def __call__(self, worker_id: int) -> None:
        if self.user is not None:
            self.user(worker_id)


def opencv_threads(count: int) -> contextlib.AbstractContextManager[None]:
    """OpenCV's thread count set in this process while the block runs, so
    that the DataLoader workers forked inside it inherit it (each worker is
    one core's worth of decoding; setting it inside a forked worker can
    deadlock, see :class:`Worker`). Restored afterwards."""
    return temporary_setting(cv2.getNumThreads, cv2.setNumThreads, count)


def make_loader(items: Source, positions: Sequence[int], preprocess: Preprocess,
                min_image_size: int, max_pixels: int, batch_size: int, workers: int,
                device: torch.device, loader_settings: dict[str, Any]) -> DataLoader:
    """The DataLoader of the items at ``positions``, in order, decoded and
    preprocessed in ``workers`` processes (0: in this one), collated into
    :class:`~pytorch_grad_cam.datasets.sources.Batch` objects. A
    DataLoader source's own prefetch factor, multiprocessing context,
    timeout and worker_init_fn are kept."""
    options: dict[str, Any] = {}
    if workers > 0:  # a DataLoader's own settings, else PyTorch's defaults
        for name in ("prefetch_factor", "multiprocessing_context", "timeout"):
            if loader_settings.get(name):
                options[name] = loader_settings[name]
    return DataLoader(WorkItems(items, positions, preprocess, min_image_size, max_pixels),
                      batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate_records, pin_memory=device.type == "cuda",
                      worker_init_fn=Worker(loader_settings.get("worker_init_fn")), **options)


def progress_bar(to_explain: int, done: int, world_size: int, enabled: bool) -> tqdm:
    """The bar of a run (rank 0): it advances per image, in ``image`` units
    (tqdm writes the rate as image/s, or as s/image when an image takes
    longer than a second, and ``?`` before the first image). A resumed run
    of one process starts at the items already done, out of all of them;
    under torchrun the bar counts rank 0's share."""
    parts = []
    if world_size > 1:
        parts.append(f"rank 0's share, {world_size} processes")
    if done:
        parts.append(f"resumed: {done} already done")
    initial = done if world_size == 1 else 0
    return tqdm(total=initial + to_explain, initial=initial, unit="image",
                desc="explain" + (f" ({'; '.join(parts)})" if parts else ""),
                disable=not enabled, smoothing=0.05, mininterval=0.5, dynamic_ncols=True)


def explain_items(loader: DataLoader, explainer: Explainer, writer: ShardWriter,
                  files: FileStats, bar: tqdm, failure_limit: int, store: Path) -> None:
    """Explain every batch of ``loader``, giving each finished image's rows
    (with its file's identity) to ``writer``; the rows collected are
    committed when the loop ends, also by an exception or Ctrl-C.
    RuntimeError when every method raised on ``failure_limit`` images in a
    row."""
    bad = 0
    try:
        for batch in loader:
            for rows in explainer.explain(batch):
                writer.add(files.annotate(rows))
                if rows and rows[0]["status"] != "ok":
                    bad += 1
                    bar.set_postfix_str(f"bad {bad}", refresh=False)
                bar.update(1)
                if explainer.consecutive_failures >= failure_limit:
                    raise RuntimeError(
                        f"the model raised on the last {failure_limit} images in a row; that "
                        "is a problem of the model or the settings, not of the data (see the "
                        f"'reason' column of the store {str(store)!r})")
    finally:
        writer.flush()  # every finished image, also when interrupted
