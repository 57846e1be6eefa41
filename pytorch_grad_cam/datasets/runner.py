"""``explain_dataset``: explain every image of a folder, a list of paths, a
torch Dataset or a DataLoader with one or several CAM methods, into a
resumable results store::

    from pytorch_grad_cam.datasets import explain_dataset, open_results

    summary = explain_dataset("val/", model, ["gradcam", "scorecam"],
                              target_layers=[model.layer4[-1]], out="results/",
                              metrics=["ROADCombined", "Deletion"], report=True)
    print(summary)
    results = open_results("results/")
    frame = results.frame                       # pandas: one row per (image, method)
    cam = results.map(0, size=(frame.height[0], frame.width[0]))

This module checks the request, records the run's configuration, prepares
the store, runs the loop and finalises the index. The parts:
:mod:`~pytorch_grad_cam.datasets.checks` (the arguments, before any work;
``resolve_methods``, ``resolve_target_layers``, ``default_workers``),
:mod:`~pytorch_grad_cam.datasets.loop` (the DataLoader, the progress bar,
the loop that writes every finished image's rows) and
:mod:`~pytorch_grad_cam.datasets.explainer` (the methods, predictions and
metrics of each item). Decoding and resizing run in DataLoader workers,
overlapping the model.

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
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.base_cam import model_state_guard
from pytorch_grad_cam.datasets.checks import (
    TargetLayers,
    check_map_size,
    check_workers,
    choose_device,
    default_workers,
    resolve_methods,
    resolve_target_layers,
)
from pytorch_grad_cam.datasets.distributed import Context, join, share
from pytorch_grad_cam.datasets.evaluation import BatchMetrics, check_metrics
from pytorch_grad_cam.datasets.explainer import Explainer, make_cams, reads_attention
from pytorch_grad_cam.datasets.identity import FileStats, prepare
from pytorch_grad_cam.datasets.loop import explain_items, make_loader, opencv_threads, progress_bar
from pytorch_grad_cam.datasets.ownership import read_marker
from pytorch_grad_cam.datasets.report import write_report
from pytorch_grad_cam.datasets.sanity import DEFAULT_SANITY_IMAGES, read_sanity, run_sanity_checks
from pytorch_grad_cam.datasets.sources import PathSource, Preprocess, Source, make_source, model_input_size
from pytorch_grad_cam.datasets.store import STORE_VERSION, ShardWriter, Store, config_differences, fingerprint
from pytorch_grad_cam.datasets.summary import RunStart, RunSummary, finalise, summary_from_index
from pytorch_grad_cam.datasets.target_modes import MultiLabel, TargetSpec, TopClasses, check_targets
from pytorch_grad_cam.layers import LayerProbe, probe_target_layers
from pytorch_grad_cam.metric_names import check_sanity_checks
from pytorch_grad_cam.metrics.sanity_table import sanity_cost_text
from pytorch_grad_cam.scoring import (
    batch_size_or_default,
    check_model,
    check_positive_int,
    given,
    model_device,
)
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS

__all__ = ["MultiLabel", "RunStart", "TopClasses", "default_workers", "explain_dataset", "model_fingerprint",
           "resolve_methods", "resolve_target_layers"]


# ---------------------------------------------------------- configuration
def _callable_name(function: Any) -> str | None:
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


@dataclass
class _Request:
    """``explain_dataset``'s arguments, checked."""

    items: Source
    loader_settings: dict[str, Any]
    model: torch.nn.Module
    entries: list[tuple[str, type]]
    store: Store
    layers: list[torch.nn.Module]
    layer_names: list[str]
    reshape_transform: Callable | None
    targets: TargetSpec
    class_names: list[str] | None
    map_spec: str | tuple[int, int]
    metric_names: list[str]
    batch_metrics: BatchMetrics | None
    top_k: int | None
    batch_size: int | None
    workers: int | None
    shard_size: int
    preprocess: Preprocess
    progress: bool
    report: bool
    overwrite: bool
    min_image_size: int
    max_pixels: int
    options: dict[str, Any]
    on_start: Callable[[RunStart], None] | None
    sanity_checks: list[str]
    sanity_images: int


def _map_shape(request: _Request, probe: LayerProbe) -> tuple[int, int]:
    if request.map_spec == "layer":
        shape = max((tuple(shape[-2:]) for shape in probe.map_shapes),
                    key=lambda hw: hw[0] * hw[1])
    elif request.map_spec == "input":
        shape = request.preprocess.size
    else:
        shape = request.map_spec  # type: ignore[assignment]
    return int(shape[0]), int(shape[1])


def _config(request: _Request, probe: LayerProbe, top_k: int,
            map_shape: tuple[int, int]) -> dict[str, Any]:
    """What the store records of the run (its fingerprint decides whether
    a store can be resumed)."""
    return {
        "store_version": STORE_VERSION,
        "model": model_fingerprint(request.model),
        "target_layers": request.layer_names,
        "reshape_transform": _callable_name(request.reshape_transform),
        "methods": [name for name, _ in request.entries],
        "method_classes": [f"{cls.__module__}.{cls.__qualname__}" for _, cls in request.entries],
        "method_options": {name: {k: repr(v) for k, v in sorted(opts.items())}
                           for name, opts in sorted(request.options.items())},
        "targets": request.targets.config(),
        "preprocess": request.preprocess.config(),
        "min_image_size": request.min_image_size,
        "map_size": list(map_shape),
        "map_dtype": "float16",
        "top_k": top_k,
        "metrics": request.metric_names,
        "metric_settings": (request.batch_metrics.config()
                            if request.batch_metrics is not None else {}),
        "num_classes": probe.num_classes,
        # only when given: the configurations (and fingerprints) of older stores stay the same
        **({"class_names": request.class_names} if request.class_names is not None else {}),
    }


# ------------------------------------------------------------------ the API
def explain_dataset(source: Any,
                    model: torch.nn.Module,
                    methods: str | type | Sequence[str | type] = "gradcam",
                    *,
                    out: str | os.PathLike[str],
                    target_layers: TargetLayers = None,
                    targets: None | str | int | TopClasses | MultiLabel = None,
                    class_names: Sequence[str] | None = None,
                    reshape_transform: Callable | None = None,
                    preprocess: Preprocess | None = None,
                    map_size: str | tuple[int, int] = "layer",
                    metrics: None | str | Sequence[str] = None,
                    top_k: int | None = None,
                    batch_size: int | None = None,
                    workers: int | None = None,
                    shard_size: int = 512,
                    device: None | str | torch.device = None,
                    progress: bool = True,
                    report: bool = False,
                    overwrite: bool = False,
                    min_image_size: int = 8,
                    max_pixels: int = MAX_READ_PIXELS,
                    recursive: bool = True,
                    method_options: Mapping[str, Mapping[str, Any]] | None = None,
                    road_percentiles: Sequence[float] = (20, 40, 60, 80),
                    n_steps: int = 50,
                    on_start: Callable[[RunStart], None] | None = None,
                    sanity_checks: None | str | Sequence[str] = None,
                    sanity_images: int = DEFAULT_SANITY_IMAGES) -> RunSummary:
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
            image, ``"label"`` (each item's label: a Dataset's, or the
            label of (path, label) pairs), ``TopClasses(k)`` (each image's
            k best classes) or ``MultiLabel(threshold, max_labels=None)``
            (every class whose sigmoid(score) >= threshold); the last two
            give one row per (image, method, class), ``rank`` 0 the best,
            each method explaining all of an image's classes in one call
            (see ``target_modes``).
        class_names: the names of the model's classes (one per class), for
            the ``class_name`` column and the report; default: ImageNet's
            for a model of 1,000 classes, else none.
        reshape_transform: for token layouts (Vision Transformers).
        preprocess: resizing and normalisation (:class:`Preprocess`);
            default: the model's input size if it declares one (timm), else
            224 x 224, ImageNet mean and std.
        map_size: "layer" (default: the target layer's resolution),
            "input" or (height, width); maps are stored as float16.
        metrics: None, "all", or names from ``evaluation.DATASET_METRICS``
            (faithfulness metrics of ``pytorch_grad_cam.metrics``), scored
            per image and accumulated per method.
        top_k: predictions kept per image (default min(5, classes), or
            the ``TopClasses`` k when it is larger).
        batch_size: images per forward pass (default
            ``scoring.default_batch_size``: 8 on a CPU, 64 on a GPU).
        workers: DataLoader worker processes that decode (default:
            :func:`default_workers`: with a GPU half the CPUs, at most 8; on
            a CPU the cores torch's threads leave free; 0 decodes in this
            process, between the batches).
        shard_size: items per shard; a run killed with SIGKILL loses at most
            this many. An interrupted run (Ctrl-C, an exception) commits
            the rows of every image it finished.
        device: where to run (default: the model's device).
        progress: a tqdm bar (rank 0 only) that advances per image, with
            the rate (image/s, or s/image when an image takes longer than
            a second) and the ETA; a resumed run's bar starts at the items
            already done and says so.
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
        on_start: called once (rank 0) after every check and before the
            first image, with a :class:`RunStart`: what the run is about to
            do (items, methods, the target layers' channels, metrics), from
            which ``datasets.cost.run_cost`` tells its passes per image.
        sanity_checks: None, "all" or names of
            ``metric_names.SANITY_CHECKS`` (MPRT, sMPRT, eMPRT,
            RandomLogit): run them for every method on the first
            ``sanity_images`` images every method explained, after the
            run, into ``out/sanity.json``; the summary and the report show
            them with PASS / FAIL (see ``datasets.sanity``). Per method
            and check, in maps of a batch of ``sanity_images`` images:
            MPRT 1 + one per layer with parameters, sMPRT 100, eMPRT 2,
            RandomLogit 2.
        sanity_images: the size of that sample (default 8).

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
    sanity_names = check_sanity_checks(sanity_checks)
    sanity_images = int(check_positive_int("sanity_images", sanity_images) or 1)
    target_spec = check_targets(targets)
    if class_names is not None:
        if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence) \
                or not all(isinstance(name, str) for name in class_names):
            raise TypeError(f"class_names must be a list of str (one per class), got "
                            f"{given(class_names)}")
        class_names = list(class_names)
    map_spec = check_map_size(map_size)
    shard_size = int(check_positive_int("shard_size", shard_size) or 1)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    top_k = check_positive_int("top_k", top_k, allow_none=True)
    min_image_size = int(check_positive_int("min_image_size", min_image_size) or 1)
    max_pixels = int(check_positive_int("max_pixels", max_pixels) or 1)
    workers = check_workers(workers)
    if on_start is not None and not callable(on_start):
        raise TypeError(f"on_start must be None or a callable, got {given(on_start)}")
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
    attention = [name for name, cls in entries if reads_attention(cls)]
    if attention:  # before any file is written
        try:
            find_transformer(model)
        except ValueError as error:
            raise ValueError(f"methods {attention}: {error}") from None
    store = Store(out)
    read_marker(store.root)  # a folder that is not a results store: refused before any work
    items, loader_settings = make_source(source, recursive)
    if target_spec.mode == "label" and isinstance(items, PathSource) and items.labels is None:
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
    request = _Request(
        items=items, loader_settings=loader_settings, model=model, entries=entries,
        store=store, layers=layers, layer_names=layer_names, reshape_transform=reshape_transform,
        targets=target_spec, class_names=class_names, map_spec=map_spec,
        metric_names=metric_names, batch_metrics=batch_metrics, top_k=top_k,
        batch_size=batch_size, workers=workers, shard_size=shard_size, preprocess=preprocess,
        progress=progress, report=report, overwrite=overwrite, min_image_size=min_image_size,
        max_pixels=max_pixels, options=options, on_start=on_start,
        sanity_checks=sanity_names, sanity_images=sanity_images)

    distributed = (dist.is_available() and dist.is_initialized()) or \
        int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    run_device = choose_device(device, model, int(os.environ.get("LOCAL_RANK", "0") or 0),
                               distributed)
    context = join(run_device)
    try:
        return _run(request, context, run_device)
    finally:
        context.close()


def _sanity_cost(request: _Request, model: torch.nn.Module) -> str:
    """What the sanity checks will cost after the run, or ""."""
    if not request.sanity_checks:
        return ""
    return (f"sanity checks after the run, on the first {request.sanity_images} image(s) every "
            f"method explained, per method: "
            f"{sanity_cost_text(request.sanity_checks, model)}")


def _say(text: str) -> None:
    """A line about the run, above any progress bar."""
    tqdm.write(text)


def _run(request: _Request, context: Context, device: torch.device) -> RunSummary:
    model, items, store = request.model, request.items, request.store
    if model_device(model) != device:
        model.to(device)
    # ------------------------------------------- the model and its layers
    with model_state_guard(model):
        probe = probe_target_layers(model, request.layers, request.layer_names,
                                    request.reshape_transform, request.preprocess.size, device)
    num_classes = probe.num_classes
    spec = request.targets
    if spec.fixed_class is not None and spec.fixed_class >= num_classes:
        raise ValueError(f"targets={spec.fixed_class} is out of range: the model has "
                         f"{num_classes} classes")
    if spec.mode == "top_classes" and spec.k > num_classes:
        raise ValueError(f"targets=TopClasses({spec.k}) asks for more classes than the model's "
                         f"{num_classes}")
    if request.class_names is not None and len(request.class_names) != num_classes:
        raise ValueError(f"class_names has {len(request.class_names)} names but the model has "
                         f"{num_classes} classes")
    top_k = request.top_k
    if top_k is None:
        top_k = min(max(5, spec.k), num_classes)
    elif top_k > num_classes:
        raise ValueError(f"top_k={top_k} is more than the model's {num_classes} classes")
    map_shape = _map_shape(request, probe)
    config = _config(request, probe, top_k, map_shape)
    # ------------------------------------------------------- the store
    configs = context.all_gather(config)  # every rank raises alike, none waits for another
    for rank, other in enumerate(configs):
        if other != configs[0]:
            changes = "; ".join(config_differences(configs[0], other)[:4])
            raise ValueError(f"rank {rank}'s configuration differs from rank 0's ({changes}); "
                             "every process must explain the same model with the same settings")
    token = secrets.token_hex(4)  # this rank's part of its shard names
    plan = prepare(store, items, config, context, request.overwrite, token)
    remaining = plan.remaining
    skipped = len(items) - len(remaining)
    mine = share(remaining, context.rank, context.world_size)
    files = FileStats(items, mine)

    # --------------------------------------------------------- the loop
    batch = batch_size_or_default(request.batch_size, device)
    workers = default_workers(device, context.local_world_size) if request.workers is None \
        else int(request.workers)
    loader = make_loader(items, mine, request.preprocess, request.min_image_size,
                         request.max_pixels, batch, workers, device, request.loader_settings)
    writer = ShardWriter(store, context.rank, [name for name, _ in request.entries],
                         request.metric_names, top_k, map_shape, request.shard_size, token)
    with contextlib.ExitStack() as stack:
        if workers > 0:
            stack.enter_context(opencv_threads(1))
        cams = make_cams(stack, request.entries, model, request.layers,
                         request.reshape_transform, request.options, request.batch_size)
        if request.on_start is not None and context.is_main:
            request.on_start(RunStart(
                out=store.root, items=len(items), skipped=skipped, to_explain=len(remaining),
                changed=len(plan.changed), methods=[name for name, _ in cams],
                cams=dict(cams), target_layers=list(request.layer_names),
                channels=[int(shape[0]) for shape in probe.map_shapes],
                input_size=request.preprocess.size, device=device, batch_size=batch,
                workers=workers, world_size=context.world_size,
                metrics=request.batch_metrics, targets=spec,
                sanity=_sanity_cost(request, model)))
        explainer = Explainer(model, cams, device, spec, num_classes, top_k, map_shape,
                              request.batch_metrics)
        bar = stack.enter_context(progress_bar(len(mine), skipped, context.world_size,
                                               request.progress and context.is_main))
        started = time.perf_counter()
        explain_items(loader, explainer, writer, files, bar, max(64, 4 * batch), store.root)
    seconds = time.perf_counter() - started
    seconds = max(context.all_gather(seconds))

    # ----------------------------------------------------- finalising
    context.barrier()
    if context.is_main:
        finalise(store, config)
        if request.sanity_checks:
            with model_state_guard(model):
                run_sanity_checks(
                    store, items, request.preprocess, request.min_image_size,
                    request.max_pixels, model, request.entries, request.layers,
                    request.reshape_transform, request.options, request.batch_size,
                    request.sanity_checks, request.sanity_images, fingerprint(config), device,
                    reads_attention, say=_say if request.progress else None)
        if request.report:
            write_report(store.root, source=items, preprocess=request.preprocess)
    context.barrier()
    index = store.index() or {}
    report_path: Path | None = store.root / "report.html" if request.report else None
    sanity = read_sanity(store.root) if request.sanity_checks else None
    return summary_from_index(index, store.root, items=len(items), skipped=skipped,
                              processed=len(remaining), seconds=seconds,
                              world_size=context.world_size, workers=workers, batch_size=batch,
                              device=str(device), report=report_path, changed=len(plan.changed),
                              sanity=sanity)
