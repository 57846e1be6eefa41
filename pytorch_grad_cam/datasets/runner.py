"""``explain_dataset``: explain every image of a folder, a list of paths, a
torch Dataset or a DataLoader with one or several CAM methods, into a
resumable results store.

    from pytorch_grad_cam.datasets import explain_dataset, open_results

    summary = explain_dataset("val/", model, ["gradcam", "scorecam"],
                              target_layers=[model.layer4[-1]], out="results/",
                              metrics=["ROADCombined", "Deletion"], report=True)
    print(summary)
    results = open_results("results/")
    frame = results.frame                       # pandas: one row per (image, method)
    cam = results.map(0, size=(frame.height[0], frame.width[0]))

A batch goes through the public CAM API: ``cam(input_tensor=batch,
targets=[ClassifierOutputTarget(c), ...])`` for each method, the
predictions from ``cam.outputs`` (the first method's forward pass: no
extra pass), the metrics from :mod:`pytorch_grad_cam.metrics`. Decoding and
resizing run in DataLoader workers, overlapping the model.

Maps: the methods return maps at the model's input size. By default
(``map_size="layer"``) the store keeps them at the target layer's
resolution (for example 7 x 7 for a 224 x 224 input to a ResNet's
``layer4``), as float16: each stored value is the mean of the input-size
map over the input pixels of that layer cell (area interpolation), which
is the layer's map up to the smoothing of the bilinear upsampling the
methods apply. ``map_size="input"`` keeps the maps at the input size
(100 KB an image at 224 x 224), or give (height, width).
``Results.map(row, size)`` returns a map at any size (bilinear).
"""
from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import secrets
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pytorch_grad_cam.app.layers import resolve_target_layers
from pytorch_grad_cam.base_cam import BaseCAM, model_state_guard
from pytorch_grad_cam.datasets.distributed import Context, join, share
from pytorch_grad_cam.datasets.evaluation import BatchMetrics, check_metrics
from pytorch_grad_cam.datasets.identity import FileStats, prepare
from pytorch_grad_cam.datasets.ownership import read_marker
from pytorch_grad_cam.datasets.sources import (
    Batch, PathSource, Preprocess, Record, Source, WorkItems, collate_records, make_source,
    model_input_size)
from pytorch_grad_cam.datasets.store import STORE_VERSION, ShardWriter, Store, config_differences
from pytorch_grad_cam.datasets.summary import RunSummary, finalise, summary_from_index
from pytorch_grad_cam.layers import probe_target_layers
from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.registry import get_method, method_info
from pytorch_grad_cam.scoring import (
    batch_size_or_default, check_model, check_positive_int, describe, given, model_device)
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = ["default_workers", "explain_dataset", "model_fingerprint", "resolve_methods",
           "resolve_target_layers"]

#: the library's warning for an all-zero map: the runner records it per row
#: (``empty_map``) and counts it in the summary instead
_EMPTY_MAP_WARNING = "the class activation map is all zeros"

TargetLayers = Optional[Sequence[Union[torch.nn.Module, str]]]


# ------------------------------------------------------------------ checks
def resolve_methods(methods: Any) -> list[tuple[str, type]]:
    """``methods``: a registered name (``"gradcam"``), a CAM class, or a
    list of them -> [(name, class)], names as the registry spells them."""
    if isinstance(methods, (str, type)):
        methods = [methods]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise TypeError(f"methods must be a method name, a CAM class or a non-empty list of "
                        f"them, got {given(methods)}")
    entries: list[tuple[str, type]] = []
    for index, method in enumerate(methods):
        if isinstance(method, str):
            try:
                info = get_method(method)
            except KeyError as error:
                raise ValueError(f"methods[{index}]: {error.args[0]}") from None
            entries.append((info.name, info.cls))
        elif isinstance(method, type) and issubclass(method, BaseCAM):
            try:
                name = method_info(method).name
                if method_info(method).cls is not method:
                    name = method.__name__
            except KeyError:
                name = method.__name__
            entries.append((name, method))
        else:
            raise TypeError(f"methods[{index}] must be a registered method name or a BaseCAM "
                            f"subclass, got {given(method)}")
    names = [name for name, _ in entries]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ValueError(f"methods[{index}] repeats {name!r}")
    return entries


def _check_targets(targets: Any) -> tuple[str, Optional[int]]:
    if targets is None or targets == "top":
        return "top", None
    if isinstance(targets, str):
        if targets == "label":
            return "label", None
        raise ValueError(f"targets must be None (each image's top class), 'label' (each "
                         f"item's label), or a class index, got {targets!r}")
    if isinstance(targets, numbers.Integral) and not isinstance(targets, bool):
        if targets < 0:
            raise ValueError(f"targets must be a class index >= 0, got {targets}")
        return "class", int(targets)
    raise TypeError(f"targets must be None, 'label' or a class index (int), got {given(targets)}")


def _check_map_size(map_size: Any) -> Union[str, tuple[int, int]]:
    if map_size in ("layer", "input"):
        return str(map_size)
    if (isinstance(map_size, (tuple, list)) and len(map_size) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
                    for v in map_size)):
        return int(map_size[0]), int(map_size[1])
    raise ValueError(f"map_size must be 'layer' (the target layer's resolution), 'input' (the "
                     f"model's input size) or (height, width), got {given(map_size)}")


def _callable_name(function: Any) -> Optional[str]:
    """A stable description of a callable (no memory addresses)."""
    if function is None:
        return None
    if isinstance(function, partial):
        keywords = ", ".join(f"{k}={v!r}" for k, v in sorted(function.keywords.items()))
        return f"partial({_callable_name(function.func)}, {keywords})"
    module = getattr(function, "__module__", "") or ""
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def model_fingerprint(model: torch.nn.Module) -> dict[str, Any]:
    """The model's class, number of parameters and the BLAKE2 hash of its
    state_dict (names, dtypes, shapes and values): a store resumes only with
    the same weights."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "state_dict_blake2b": digest.hexdigest()}


def default_workers(device: torch.device, local_processes: int = 1) -> int:
    """The DataLoader workers a run uses when ``workers`` is not given.

    With a GPU the CPUs only decode: half of this process's share of them,
    at most 8. On a CPU the decoding workers and torch's intra-op threads
    share the cores, and torch's OpenMP threads slow down badly when a core
    is taken from them: the default is the cores torch's threads leave free
    (at most 4), or, when torch uses them all, one worker on machines of 8
    cores or more and none below (decoding then runs between the batches,
    as in a plain loop). See docs/datasets.md for measurements."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the CPUs this process may use
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    share = max(1, cpus // max(1, local_processes))
    if device.type != "cpu":
        return int(min(8, max(1, share // 2)))
    free = share - torch.get_num_threads()
    if free > 0:
        return int(min(4, free))
    return 1 if share >= 8 else 0


def _choose_device(device: Any, model: torch.nn.Module, context_local_rank: int,
                   distributed: bool) -> torch.device:
    """None: the model's device, except that under torchrun a CUDA model
    goes to ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device is None:
        chosen = model_device(model)
    else:
        try:
            chosen = torch.device(device)
        except (TypeError, RuntimeError) as error:
            raise ValueError(f"device must be None or a torch device such as 'cpu' or 'cuda', "
                             f"got {describe(device)} ({error})") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(chosen)!r}: CUDA is not available here")
        if distributed:
            chosen = torch.device("cuda", context_local_rank)
    return chosen


# ------------------------------------------------------------ the batches
class _Worker:
    """DataLoader ``worker_init_fn``: the user's own, if any.

    It does not call ``cv2.setNumThreads`` in the worker: in a forked
    child that can deadlock on the condition variable of the parent's
    OpenCV thread pool (seen here with OpenCV's pthreads backend), while
    OpenCV's functions themselves run safely after a fork. The parent sets
    one OpenCV thread before the workers fork (:func:`_opencv_threads`)."""

    def __init__(self, user: Optional[Callable[[int], None]]):
        self.user = user

    def __call__(self, worker_id: int) -> None:
        if self.user is not None:
            self.user(worker_id)


@contextlib.contextmanager
def _opencv_threads(count: int) -> Iterator[None]:
    """OpenCV's thread count set in this process while the block runs, so
    that the DataLoader workers forked inside it inherit it (each worker is
    one core's worth of decoding; setting it inside a forked worker can
    deadlock, see :class:`_Worker`). Restored afterwards."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class _SplitBatch(Exception):
    """A method raised on a batch of several images: explain them one by one."""


class _Explainer:
    """Explains the batches of one process: every method's maps, the
    predictions and the metrics, as the rows of the store."""

    def __init__(self, model: torch.nn.Module, cams: list[tuple[str, Any]], device: torch.device,
                 target_mode: str, fixed_class: Optional[int], num_classes: int, top_k: int,
                 map_shape: tuple[int, int], input_size: tuple[int, int],
                 metrics: Optional[BatchMetrics]):
        self.model = model
        self.cams = cams
        self.device = device
        self.target_mode = target_mode
        self.fixed_class = fixed_class
        self.num_classes = num_classes
        self.top_k = top_k
        self.map_shape = map_shape
        self.input_size = input_size
        self.metrics = metrics
        self.consecutive_failures = 0

    # ------------------------------------------------------------ rows
    def _bad_rows(self, record: Record, status: str, reason: str) -> list[dict[str, Any]]:
        return [self._row(record, name, status, reason) for name, _ in self.cams]

    def _row(self, record: Record, method: str, status: str, reason: str = "",
             **values: Any) -> dict[str, Any]:
        row = {"position": record.position, "id": record.id, "path": record.path,
               "label": record.label, "method": method, "status": status, "reason": reason,
               "height": record.height, "width": record.width, "target": -1,
               "score": float("nan"), "prob": float("nan"), "empty_map": False, "map": None,
               "pred_classes": None, "pred_probs": None, "metrics": None}
        row.update(values)
        return row

    # --------------------------------------------------------- compute
    def _call(self, cam: Any, inputs: torch.Tensor, classes: Optional[list[int]]) -> np.ndarray:
        targets = None if classes is None else [ClassifierOutputTarget(c) for c in classes]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EMPTY_MAP_WARNING, category=RuntimeWarning)
            return cam(input_tensor=inputs, targets=targets)

    def _logits(self, cam: Any, inputs: torch.Tensor) -> torch.Tensor:
        outputs = getattr(cam, "outputs", None)
        if isinstance(outputs, torch.Tensor) and outputs.dim() == 2 \
                and outputs.shape[0] == inputs.shape[0]:
            return outputs.detach().float()
        from pytorch_grad_cam.scoring import select_output

        with model_state_guard(self.model), torch.inference_mode():
            return select_output(self.model(inputs)).detach().float()

    def _store_maps(self, maps: torch.Tensor) -> np.ndarray:
        """B x H x W input-size maps -> B x h x w float16 at the stored size."""
        height, width = self.map_shape
        if tuple(maps.shape[1:]) == (height, width):
            resized = maps
        elif height <= maps.shape[1] and width <= maps.shape[2]:
            resized = F.adaptive_avg_pool2d(maps[:, None], (height, width))[:, 0]
        else:
            resized = F.interpolate(maps[:, None], size=(height, width), mode="bilinear",
                                    align_corners=False)[:, 0]
        return resized.to(torch.float16).cpu().numpy()

    def _explain(self, inputs: torch.Tensor, records: list[Record],
                 classes: Optional[list[int]]) -> list[list[dict[str, Any]]]:
        """Rows of the images of ``inputs`` (all methods); _SplitBatch when a
        method raises on a batch of several images."""
        batch = inputs.shape[0]
        maps: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        logits: Optional[torch.Tensor] = None
        for name, cam in self.cams:
            try:
                maps[name] = self._call(cam, inputs, classes)
                if logits is None:
                    logits = self._logits(cam, inputs)
            except Exception as error:  # noqa: BLE001  (the user's model may raise anything)
                if batch > 1:
                    raise _SplitBatch() from error
                errors[name] = _first_line(error)
                continue
            if classes is None:
                classes = logits.argmax(dim=1).tolist()
        if logits is None:  # every method failed on this one image
            try:
                logits = self._logits(None, inputs)
            except Exception as error:  # noqa: BLE001
                reason = f"the model raised {_first_line(error)}"
                return [self._bad_rows(records[0], "model_error", reason)]
        if classes is None:
            classes = logits.argmax(dim=1).tolist()
        probabilities = torch.softmax(logits, dim=1)
        top_probs, top_classes = probabilities.topk(self.top_k, dim=1)
        index = torch.tensor(classes, device=logits.device)[:, None]
        scores = logits.gather(1, index)[:, 0].cpu().numpy()
        probs = probabilities.gather(1, index)[:, 0].cpu().numpy()
        top_classes_np, top_probs_np = top_classes.cpu().numpy(), top_probs.cpu().numpy()
        per_method: dict[str, Any] = {}
        for name, cam in self.cams:
            if name not in maps:
                continue
            full = torch.from_numpy(maps[name])
            values: dict[str, np.ndarray] = {}
            metric_errors: dict[str, str] = {}
            if self.metrics is not None:
                values, metric_errors = self.metrics(inputs, full.to(self.device), classes,
                                                     self.model, cam)
            empty = full.flatten(1).amax(dim=1) <= 0
            per_method[name] = (self._store_maps(full), empty.numpy(), values, metric_errors)
        rows_per_item = []
        for b, record in enumerate(records):
            rows = []
            for name, _ in self.cams:
                if name in errors:
                    rows.append(self._row(record, name, "model_error",
                                          f"{name} raised {errors[name]}"))
                    continue
                stored, empty_np, values, metric_errors = per_method[name]
                reason = "; ".join(f"metric {m} failed: {e}" for m, e in metric_errors.items())
                rows.append(self._row(
                    record, name, "ok", reason, target=int(classes[b]), score=float(scores[b]),
                    prob=float(probs[b]), empty_map=bool(empty_np[b]), map=stored[b],
                    pred_classes=top_classes_np[b], pred_probs=top_probs_np[b],
                    metrics={m: float(v[b]) for m, v in values.items()}))
            rows_per_item.append(rows)
        return rows_per_item

    def explain(self, batch: Batch) -> list[list[dict[str, Any]]]:
        """The rows of every item of a batch, in order."""
        records = batch.records
        rows: dict[int, list[dict[str, Any]]] = {}
        for i, record in enumerate(records):
            if record.status != "ok":
                rows[i] = self._bad_rows(record, record.status, record.reason)
        good = list(batch.good)
        inputs = batch.inputs
        if good and self.target_mode == "label":
            usable = []
            for k, i in enumerate(good):
                label = records[i].label
                if label < 0:
                    rows[i] = self._bad_rows(records[i], "no_label", "the item has no class "
                                             "label (targets='label')")
                elif label >= self.num_classes:
                    rows[i] = self._bad_rows(records[i], "no_label", f"label {label} is out of "
                                             f"range for the model's {self.num_classes} classes")
                else:
                    usable.append(k)
            if len(usable) < len(good):
                assert inputs is not None
                inputs = inputs[usable] if usable else None
                good = [good[k] for k in usable]
        if good:
            assert inputs is not None
            inputs = inputs.to(self.device, non_blocking=True)
            chosen = [records[i] for i in good]
            if self.target_mode == "label":
                classes: Optional[list[int]] = [r.label for r in chosen]
            elif self.target_mode == "class":
                classes = [int(self.fixed_class or 0)] * len(good)
            else:
                classes = None
            try:
                outcome = self._explain(inputs, chosen, classes)
            except _SplitBatch:
                outcome = []
                for k in range(len(good)):
                    single = None if classes is None else classes[k:k + 1]
                    outcome.extend(self._explain(inputs[k:k + 1], chosen[k:k + 1], single))
            for i, item_rows in zip(good, outcome):
                rows[i] = item_rows
                if all(row["status"] == "model_error" for row in item_rows):
                    self.consecutive_failures += 1
                else:
                    self.consecutive_failures = 0
        return [rows[i] for i in range(len(records))]


# ------------------------------------------------------------------ the API
def explain_dataset(source: Any,
                    model: torch.nn.Module,
                    methods: Union[str, type, Sequence[Union[str, type]]] = "gradcam",
                    *,
                    out: Union[str, "os.PathLike[str]"],
                    target_layers: TargetLayers = None,
                    targets: Union[None, str, int] = None,
                    reshape_transform: Optional[Callable] = None,
                    preprocess: Optional[Preprocess] = None,
                    map_size: Union[str, tuple[int, int]] = "layer",
                    metrics: Union[None, str, Sequence[str]] = None,
                    top_k: Optional[int] = None,
                    batch_size: Optional[int] = None,
                    workers: Optional[int] = None,
                    shard_size: int = 512,
                    device: Union[None, str, torch.device] = None,
                    progress: bool = True,
                    report: bool = False,
                    overwrite: bool = False,
                    min_image_size: int = 8,
                    max_pixels: int = MAX_READ_PIXELS,
                    recursive: bool = True,
                    method_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    road_percentiles: Sequence[float] = (20, 40, 60, 80),
                    n_steps: int = 50) -> RunSummary:
    """Explain every item of ``source`` with every method into the results
    store ``out``; returns a :class:`RunSummary`.

    Args:
        source: a folder (every image file in it, recursively, sorted by
            relative path), a list of paths or of (path, label) pairs, a
            map-style torch ``Dataset`` (see ``sources.DatasetSource`` for
            the items it may return) or a ``DataLoader`` (its dataset,
            batch size, workers and worker settings are used; its sampler and
            collate_fn are not: the runner needs every item's index to
            resume and to share the work, and explains in index order).
        model: the classifier (B x classes scores). Used in eval mode on its
            device (moved to ``device`` when one is given; under torchrun a
            CUDA model goes to ``cuda:LOCAL_RANK``); its state is restored.
        methods: a registered name (``"gradcam"``), a CAM class, or a list.
        out: the store folder: new, empty, or a store, which is resumed
            (see ``store``); any other folder is refused (``ownership``).
        target_layers: modules of the model or layer paths
            (``"layer4[-1]"``); None: the default of the model's family
            (``pytorch_grad_cam.layers.default_target_layers``).
        targets: None (each image's top class), a class index for every
            image, or ``"label"`` (each item's label: a Dataset's, or the
            label of (path, label) pairs).
        reshape_transform: for token layouts (Vision Transformers).
        preprocess: resizing and normalisation (:class:`Preprocess`);
            default: the model's input size if it declares one (timm), else
            224 x 224, ImageNet mean and std.
        map_size: "layer" (default: the target layer's resolution),
            "input" or (height, width); maps are stored as float16.
        metrics: None, "all", or names from ``evaluation.DATASET_METRICS``
            (faithfulness metrics of ``pytorch_grad_cam.metrics``), scored
            per image and accumulated per method.
        top_k: predictions kept per image (default min(5, classes)).
        batch_size: images per forward pass (default
            ``scoring.default_batch_size``: 8 on a CPU, 64 on a GPU).
        workers: DataLoader worker processes that decode (default:
            :func:`default_workers`: with a GPU half the CPUs, at most 8; on
            a CPU the cores torch's threads leave free; 0 decodes in this
            process, between the batches).
        shard_size: items per shard; a killed run loses at most this many.
        device: where to run (default: the model's device).
        progress: a tqdm bar with images/s and the ETA (rank 0 only).
        report: also write ``out/report.html`` (see ``report``).
        overwrite: delete the files the store wrote (nothing else) first.
            Else a store of another configuration or source is refused and
            a store of this one resumed: its items are skipped, except those
            whose file changed since, which are explained again (``identity``).
        min_image_size: images smaller than this on a side are recorded as
            ``too_small`` rather than explained.
        max_pixels: images whose header gives more pixels are recorded as
            ``too_large`` without being decoded (default 80 megapixels).
        recursive: search a folder's subfolders too.
        method_options: constructor arguments per method name, for example
            ``{"scorecam": {"batch_size": 32}}``.
        road_percentiles, n_steps: settings of the ROAD and deletion /
            insertion metrics.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError / TypeError: a bad argument, an empty source, target
            layers that cannot be explained; all before any image is
            explained.
        StoreRefused (a ValueError): ``out`` is not a store, or one of a
            newer version, another configuration or source; nothing changed.
    """
    # ---------------------------------------------------- cheap checks first
    check_model(model)
    entries = resolve_methods(methods)
    metric_names = check_metrics(metrics)
    target_mode, fixed_class = _check_targets(targets)
    map_spec = _check_map_size(map_size)
    shard_size = int(check_positive_int("shard_size", shard_size) or 1)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    top_k = check_positive_int("top_k", top_k, allow_none=True)
    min_image_size = int(check_positive_int("min_image_size", min_image_size) or 1)
    max_pixels = int(check_positive_int("max_pixels", max_pixels) or 1)
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
            raise ValueError(f"workers must be None or an int >= 0, got {given(workers)}")
    if preprocess is None:
        preprocess = Preprocess(size=model_input_size(model))
    elif not isinstance(preprocess, Preprocess):
        raise TypeError(f"preprocess must be a Preprocess(size, mean, std) or None, "
                        f"got {given(preprocess)}")
    options = dict(method_options or {})
    unknown = sorted(set(options) - {name for name, _ in entries})
    if unknown:
        raise ValueError(f"method_options has entries for {unknown}, which are not among the "
                         f"methods {[name for name, _ in entries]}")
    attention = [name for name, cls in entries if method_info(cls).attention]
    if attention:  # before any file is written
        try:
            find_transformer(model)
        except ValueError as error:
            raise ValueError(f"methods {attention}: {error}") from None
    store = Store(out)
    read_marker(store.root)  # a folder that is not a results store: refused before any work
    items, loader_settings = make_source(source, recursive)
    if target_mode == "label" and isinstance(items, PathSource) and items.labels is None:
        raise ValueError("targets='label' needs labels: a folder or a list of paths has none; "
                         "pass a list of (path, label) pairs or a Dataset that returns labels")
    layers, layer_names, reshape_transform = resolve_target_layers(model, target_layers,
                                                                   reshape_transform)
    batch_metrics = (BatchMetrics(metric_names, batch_size, road_percentiles, n_steps)
                     if metric_names else None)
    if batch_size is None and loader_settings.get("batch_size"):
        batch_size = int(loader_settings["batch_size"])
    if workers is None and "workers" in loader_settings:
        workers = int(loader_settings["workers"])

    import torch.distributed as dist

    distributed = (dist.is_available() and dist.is_initialized()) or \
        int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    run_device = _choose_device(device, model, int(os.environ.get("LOCAL_RANK", "0") or 0),
                                distributed)
    context = join(run_device)
    try:
        return _run(items, model, entries, store, context, run_device, layers, layer_names,
                    reshape_transform, target_mode, fixed_class, map_spec, metric_names,
                    batch_metrics, top_k, batch_size, workers, shard_size, preprocess,
                    progress, report, overwrite, min_image_size, options, loader_settings,
                    max_pixels)
    finally:
        context.close()


def _run(items: Source, model: torch.nn.Module, entries: list[tuple[str, type]], store: Store,
         context: Context, device: torch.device, layers: list[torch.nn.Module],
         layer_names: list[str], reshape_transform: Optional[Callable], target_mode: str,
         fixed_class: Optional[int], map_spec: Union[str, tuple[int, int]],
         metric_names: list[str], batch_metrics: Optional[BatchMetrics], top_k: Optional[int],
         batch_size: Optional[int], workers: Optional[int], shard_size: int,
         preprocess: Preprocess, progress: bool, report: bool, overwrite: bool,
         min_image_size: int, options: dict[str, Any],
         loader_settings: dict[str, Any], max_pixels: int = MAX_READ_PIXELS) -> RunSummary:
    if model_device(model) != device:
        model.to(device)
    # ------------------------------------------- the model and its layers
    with model_state_guard(model):
        probe = probe_target_layers(model, layers, layer_names, reshape_transform,
                                    preprocess.size, device)
    num_classes = probe.num_classes
    if fixed_class is not None and fixed_class >= num_classes:
        raise ValueError(f"targets={fixed_class} is out of range: the model has {num_classes} "
                         "classes")
    if top_k is None:
        top_k = min(5, num_classes)
    elif top_k > num_classes:
        raise ValueError(f"top_k={top_k} is more than the model's {num_classes} classes")
    if map_spec == "layer":
        map_shape = max((tuple(shape[-2:]) for shape in probe.map_shapes),
                        key=lambda hw: hw[0] * hw[1])
    elif map_spec == "input":
        map_shape = preprocess.size
    else:
        map_shape = map_spec  # type: ignore[assignment]
    map_shape = (int(map_shape[0]), int(map_shape[1]))
    config = {
        "store_version": STORE_VERSION,
        "model": model_fingerprint(model),
        "target_layers": layer_names,
        "reshape_transform": _callable_name(reshape_transform),
        "methods": [name for name, _ in entries],
        "method_classes": [f"{cls.__module__}.{cls.__qualname__}" for _, cls in entries],
        "method_options": {name: {k: repr(v) for k, v in sorted(opts.items())}
                           for name, opts in sorted(options.items())},
        "targets": target_mode if fixed_class is None else fixed_class,
        "preprocess": preprocess.config(),
        "min_image_size": min_image_size,
        "map_size": list(map_shape),
        "map_dtype": "float16",
        "top_k": top_k,
        "metrics": metric_names,
        "metric_settings": batch_metrics.config() if batch_metrics is not None else {},
        "num_classes": num_classes,
    }
    # ------------------------------------------------------- the store
    configs = context.all_gather(config)  # every rank raises alike, none waits for another
    for rank, other in enumerate(configs):
        if other != configs[0]:
            changes = "; ".join(config_differences(configs[0], other)[:4])
            raise ValueError(f"rank {rank}'s configuration differs from rank 0's ({changes}); "
                             "every process must explain the same model with the same settings")
    token = secrets.token_hex(4)  # this rank's part of its shard names
    plan = prepare(store, items, config, context, overwrite, token)
    remaining = plan.remaining
    mine = share(remaining, context.rank, context.world_size)
    files = FileStats(items, mine)

    # --------------------------------------------------------- the loop
    batch = batch_size_or_default(batch_size, device)
    workers = default_workers(device, context.local_world_size) if workers is None \
        else int(workers)
    loader_options: dict[str, Any] = {}
    if workers > 0:  # a DataLoader's own settings, else PyTorch's defaults
        for name in ("prefetch_factor", "multiprocessing_context", "timeout"):
            if loader_settings.get(name):
                loader_options[name] = loader_settings[name]
    loader = DataLoader(WorkItems(items, mine, preprocess, min_image_size, max_pixels),
                        batch_size=batch, shuffle=False, num_workers=workers,
                        collate_fn=collate_records,
                        pin_memory=device.type == "cuda",
                        worker_init_fn=_Worker(loader_settings.get("worker_init_fn")),
                        **loader_options)
    writer = ShardWriter(store, context.rank, [name for name, _ in entries], metric_names,
                         top_k, map_shape, shard_size, token)
    failure_limit = max(64, 4 * batch)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workers > 0:
            stack.enter_context(_opencv_threads(1))
        cams = []
        for name, cls in entries:
            kwargs = dict(options.get(name, {}))
            kwargs.setdefault("progress", False)
            if batch_size is not None and _chunks_by_batch_size(cls):
                kwargs.setdefault("batch_size", batch_size)
            if method_info(cls).attention:  # the attention of every block, its own layout
                cam = cls(model=model, **kwargs)
            else:
                cam = cls(model=model, target_layers=layers,
                          reshape_transform=reshape_transform, **kwargs)
            cams.append((name, stack.enter_context(cam) if hasattr(cam, "__enter__") else cam))
        explainer = _Explainer(model, cams, device, target_mode, fixed_class, num_classes, top_k,
                               map_shape, preprocess.size, batch_metrics)
        bar = stack.enter_context(tqdm(total=len(mine), unit="img", desc="explain",
                                       disable=not progress or not context.is_main,
                                       smoothing=0.05, mininterval=0.5, dynamic_ncols=True))
        bad = 0
        try:
            for loaded in loader:
                for item_rows in explainer.explain(loaded):
                    writer.add(files.annotate(item_rows))
                    if item_rows and item_rows[0]["status"] != "ok":
                        bad += 1
                bar.update(len(loaded.records))
                if bad:
                    bar.set_postfix_str(f"bad {bad}", refresh=False)
                if explainer.consecutive_failures >= failure_limit:
                    raise RuntimeError(f"the model raised on the last {failure_limit} images in "
                                       "a row; that is a problem of the model or the settings, "
                                       "not of the data (see the 'reason' column of the store "
                                       f"{str(store.root)!r})")
        finally:
            writer.flush()  # the complete rows so far, also when interrupted
    seconds = time.perf_counter() - started
    seconds = max(context.all_gather(seconds))

    # ----------------------------------------------------- finalising
    context.barrier()
    report_path: Optional[Path] = None
    if context.is_main:
        index = finalise(store, config)
        if report:
            from pytorch_grad_cam.datasets.report import write_report

            report_path = write_report(store.root, source=items, preprocess=preprocess)
    context.barrier()
    index = store.index() or {}
    if report:
        report_path = store.root / "report.html"
    return summary_from_index(index, store.root, items=len(items), skipped=len(items) - len(remaining),
                              processed=len(remaining), seconds=seconds,
                              world_size=context.world_size, workers=workers, batch_size=batch,
                              device=str(device), report=report_path, changed=len(plan.changed))


def _chunks_by_batch_size(cls: type) -> bool:
    """Whether the method's passes are chunked by ``batch_size`` (the
    perturbation methods and Smooth Grad-CAM++): those get the run's."""
    try:
        info = method_info(cls)
    except KeyError:
        return False
    return bool(info.extra_passes)
