"""Preparing and running the image command's job.

1. :func:`prepare` checks everything the user gave (the device, then what
   :func:`pytorch_grad_cam.cli.request.check_arguments` checks without the
   model: method names, images, output folder, class names; then the
   images decoded, the model, weights, target layer, the classes and
   ``--top-k``) and loads the model; nothing is computed or written before
   it has passed. Every problem is a
   :class:`~pytorch_grad_cam.app.errors.UsageError`.
2. :func:`run` prints the run's header (model, target layer and how it was
   found, methods, their cost per image), then for every image computes
   the predictions, the classes it is explained for (those given, its
   ``--top-k`` best, else its best) and their guided backpropagation
   (:func:`predict_classes`: one :class:`ImageResult` per class), and
   method by method the maps of all its classes from ONE call of the
   method (:func:`compute_maps`), writing that method's pictures of every
   class as soon as the call is done
   (:func:`pytorch_grad_cam.cli.outputs.write_method`), so that a long run
   that is stopped leaves the finished methods' files behind; the
   side-by-side picture of several methods is written, per class, when the
   image's last method is done. Every file is complete or not there at all.
   :func:`explain_classes` does all of one image at once.

Scoring the maps (``--evaluate``, :mod:`pytorch_grad_cam.metrics`) and the sanity checks
(``--sanity-checks``, :mod:`pytorch_grad_cam.cli.sanity`) take the same
``ImageResult`` objects (model, input tensor, class, maps).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from pytorch_grad_cam.app.applicable import applicable_methods
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES as _IMAGENET
from pytorch_grad_cam.app.classes import check_top_k, resolve_categories, resolve_category
from pytorch_grad_cam.app.cost import cost_report
from pytorch_grad_cam.app.devices import device_option as choose_device
from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.folders import check_output_folder
from pytorch_grad_cam.app.layers import choose_target_layers
from pytorch_grad_cam.app.methods import affordable, parse_methods, select_methods
from pytorch_grad_cam.app.models import load_from_options
from pytorch_grad_cam.app.recommended import resolve_recommended
from pytorch_grad_cam.app.targets import class_maps, class_targets, explained_classes
from pytorch_grad_cam.cli import outputs, sanity
from pytorch_grad_cam.cli.images import IMAGE_SUFFIXES, collect_images, read_checked, read_image
from pytorch_grad_cam.cli.outputs import class_label, class_slug, model_tag, slug
from pytorch_grad_cam.cli.parser import PROG
from pytorch_grad_cam.cli.records import ImageResult, Job
from pytorch_grad_cam.cli.request import check_arguments, sess_options
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.layers import LayerError, LayerProbe, probe_target_layers
from pytorch_grad_cam.models.loading import DEFAULT_MODEL, LoadedModel
from pytorch_grad_cam.registry import METHODS, get_method
from pytorch_grad_cam.scoring import batch_size_or_default, select_output
from pytorch_grad_cam.sess import SESS
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS, bounded_copy

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGE_SUFFIXES",
    "ImageResult",
    "Job",
    "affordable",
    "applicable_methods",
    "check_output_dir",
    "choose_device",
    "choose_target_layers",
    "class_slug",
    "collect_images",
    "compute_map",
    "compute_maps",
    "explain_classes",
    "explain_image",
    "header",
    "make_cams",
    "model_tag",
    "parse_methods",
    "predict",
    "predict_classes",
    "prepare",
    "read_image",
    "resolve_category",
    "resolve_target_layers",
    "run",
    "select_methods",
    "sess_options",
    "slug",
]

IMAGENET_CLASSES: list[str] = list(_IMAGENET)

Loader = Callable[[argparse.Namespace], LoadedModel]


# ------------------------------------------------------------ checking input
def check_output_dir(text: str) -> Path:
    """``--output-dir``: a folder, or a path where one can be made, that
    files can be written in (:func:`~pytorch_grad_cam.app.folders.check_output_folder`)."""
    return check_output_folder("--output-dir", text)


def resolve_target_layers(model: torch.nn.Module,
                          names: Sequence[str]) -> list[torch.nn.Module]:
    """``--target-layer`` paths -> the modules (UsageError on a bad path)."""
    return choose_target_layers(model, names)[0]


def _probe(model: torch.nn.Module, layers: list[torch.nn.Module], names: list[str],
           reshape: Callable[[torch.Tensor], torch.Tensor] | None, input_size: int,
           device: torch.device, prog: str) -> LayerProbe:
    try:
        return probe_target_layers(model, layers, names, reshape, input_size, device)
    except LayerError as error:
        if error.layer is not None:
            raise UsageError(f"--target-layer {error.layer}: {error.reason}") from None
        hint = (f"; {prog} explains image classifiers"
                if error.reason.startswith("the model's output") else "")
        raise UsageError(error.reason + hint) from None


def prepare(args: argparse.Namespace, load: Loader | None = None,
            guided_backprop: bool = True, prog: str = PROG,
            default_model: str | None = DEFAULT_MODEL) -> Job:
    """Check everything, cheapest first, and load the model (``load(args)``,
    default ``--model``/``--weights`` of the image command). Raises
    UsageError. ``default_model``: the model whose name the file names
    leave out (None: every model is named, as ``vit`` does)."""
    device = choose_device(args.device, args.use_cuda)
    checked = check_arguments(args, prog)
    methods, left_out = select_methods(args.method, device)
    max_pixels = getattr(args, "max_pixels", MAX_READ_PIXELS)
    images = collect_images(args.image_path, max_pixels=max_pixels)  # after the cheaper checks
    loaded = load_from_options(args) if load is None else load(args)
    model = loaded.model.to(device).eval()
    methods, recommended = resolve_recommended(methods, model)
    methods, not_applicable = applicable_methods(methods, model, args.method, loaded.name)
    if not methods:
        raise UsageError(f"--method: none of {', '.join(not_applicable)} applies to "
                         f"--model {loaded.name}")
    layers, layer_names, reshape, source = choose_target_layers(model, args.target_layer)
    probe = _probe(model, layers, layer_names, reshape, loaded.input_size, device, prog)
    num_classes = probe.num_classes
    given_names = checked.class_names
    if given_names is not None:
        if len(given_names) != num_classes:
            raise UsageError(f"--class-names {args.class_names}: names {len(given_names)} "
                             f"classes, the model has {num_classes}")
        class_names: list[str] | None = given_names
    elif loaded.class_names is not None and len(loaded.class_names) == num_classes:
        class_names = list(loaded.class_names)
    else:
        class_names = IMAGENET_CLASSES if num_classes == len(IMAGENET_CLASSES) else None
    categories = resolve_categories(args.target_category, class_names, num_classes, prog=prog)
    top_k = getattr(args, "top_k", None)
    check_top_k(top_k, num_classes)
    tag = model_tag(args, default_model)
    parts = [tag] if tag else []
    class_position = len(parts) if categories is not None or top_k is not None else None
    if checked.sess is not None:
        parts.append("sess")
    return Job(images=images, methods=methods, device=device, model=model,
               model_name=loaded.name, input_size=loaded.input_size, mean=loaded.mean,
               std=loaded.std, target_layers=layers, layer_names=layer_names,
               reshape_transform=reshape, categories=categories, top_k=top_k,
               class_names=class_names,
               output_dir=checked.output_dir, layer_source=source,
               channels=[shape[0] for shape in probe.map_shapes], left_out=left_out,
               not_applicable=not_applicable, recommended=recommended,
               name_parts=parts, class_position=class_position, aug_smooth=args.aug_smooth,
               eigen_smooth=args.eigen_smooth, sess=checked.sess, batch_size=args.batch_size,
               progress=not args.no_progress, guided_backprop=guided_backprop,
               evaluate=getattr(args, "evaluate", False), max_pixels=max_pixels,
               sanity_checks=checked.sanity_checks)


# -------------------------------------------------------------- computing
def make_cams(job: Job, stack: contextlib.ExitStack) -> None:
    """One CAM object per method (closed when ``stack`` closes)."""
    for name in job.methods:
        options: dict[str, Any] = {
            "model": job.model, "target_layers": job.target_layers,
            "reshape_transform": job.reshape_transform, "progress": job.progress}
        info = get_method(name)
        # attention: every block of the transformer, its own layout; a black
        # box (RISE): no layer at all
        if info.attention or info.black_box:
            options.update(target_layers=None, reshape_transform=None)
        if job.batch_size is not None:
            options["batch_size"] = job.batch_size
        if job.sess is not None:
            cam: Any = SESS(base_method=name, **options, **job.sess)
        else:
            cam = METHODS[name](**options)
        job.cams[name] = stack.enter_context(cam) if hasattr(cam, "__enter__") else cam


def predict_classes(job: Job, path: Path) -> list[ImageResult]:
    """An image read, its predictions and (when the job has it) its guided
    backpropagation, one :class:`ImageResult` per class it is explained
    for (the classes given, else its ``--top-k`` best, else its best); no
    maps yet. The model sees the image as read; the pictures are made from
    a copy of at most ``image_io.PICTURE_PIXELS``. The guided
    backpropagation of the K classes is one pass of K copies of the image
    (of ``--batch-size`` copies at a time, when K is larger)."""
    bgr = read_checked(path, job.max_pixels)  # it was readable when checked; it may have changed since
    rgb = cv2.cvtColor(cv2.resize(bgr, (job.input_size, job.input_size)), cv2.COLOR_BGR2RGB)
    input_tensor = preprocess_image(np.float32(rgb) / 255, job.mean, job.std).to(job.device)
    with torch.inference_mode():
        scores = select_output(job.model(input_tensor))
        probabilities = torch.softmax(scores.float(), dim=-1)[0].cpu().numpy()
    # the printed top-5 list's order: --top-k K explains its first K lines
    categories = explained_classes(probabilities[None], job.categories, job.top_k)[0]
    guided: list[np.ndarray | None] = [None] * len(categories)
    if job.guided_backprop:
        guided = []
        targets = class_targets([categories])[0]
        size = batch_size_or_default(job.batch_size, job.device)
        for start in range(0, len(targets), size):
            chunk = targets[start:start + size]
            found = GuidedBackpropReLUModel(model=job.model)(
                input_tensor.repeat(len(chunk), 1, 1, 1), targets=chunk)
            guided += list(found[None] if len(chunk) == 1 else found)
    picture = bounded_copy(bgr)
    return [ImageResult(path=path, bgr=picture, input_tensor=input_tensor,
                        probabilities=probabilities, category=category, maps={},
                        guided=guided_map)
            for category, guided_map in zip(categories, guided)]


def predict(job: Job, path: Path) -> ImageResult:
    """:func:`predict_classes` of a job that explains one class per image."""
    return predict_classes(job, path)[0]


def compute_maps(job: Job, results: Sequence[ImageResult], name: str) -> np.ndarray:
    """Method ``name``'s maps of one image for its classes (``results``,
    from :func:`predict_classes`), K x S x S, from ONE call of the CAM object
    (:func:`make_cams`) with the K targets; each is also stored in its
    result's ``maps``."""
    maps = class_maps(job.cams[name], results[0].input_tensor,
                      [[result.category for result in results]],
                      aug_smooth=job.aug_smooth, eigen_smooth=job.eigen_smooth)[0]
    for result, cam_map in zip(results, maps):
        result.maps[name] = cam_map
    return maps


def compute_map(job: Job, result: ImageResult, name: str) -> np.ndarray:
    """Method ``name``'s map of the image for its class (also stored in
    ``result.maps``)."""
    return compute_maps(job, [result], name)[0]


def explain_classes(job: Job, path: Path) -> list[ImageResult]:
    """Predictions, every method's maps and the guided backpropagation of
    one image, one result per explained class."""
    results = predict_classes(job, path)
    for name in job.methods:
        compute_maps(job, results, name)
    return results


def explain_image(job: Job, path: Path) -> ImageResult:
    """:func:`explain_classes` of a job that explains one class per image."""
    return explain_classes(job, path)[0]


def header(job: Job) -> str:
    """The lines printed before the run: model, target layer(s) and how they
    were found, methods, what --method all left out, and the cost."""
    layers = ", ".join(job.layer_names)
    how = f" (found by {job.layer_source})" if job.layer_source else ""
    lines = [f"model {job.model_name} on {job.device}, target layer {layers}{how}, "
             f"methods {', '.join(job.methods)}"]
    if job.recommended:
        lines.append(job.recommended)
    attention = [name for name in job.methods if get_method(name).attention]
    # what each reads by default (AttentionCAM.reads), in the methods' order
    reads: dict[str, list[str]] = {}
    for name in attention:
        what = getattr(get_method(name).cls, "reads", "the attention of every transformer block")
        reads.setdefault(what, []).append(name)
    for what, names in reads.items():
        lines.append(f"{', '.join(names)}: {what} (not the target layer)")
    if job.not_applicable:
        lines.append(f"--method all leaves out {', '.join(job.not_applicable)}: they read a "
                     f"Vision Transformer's attention, and {job.model_name} is not one")
    if job.left_out:
        lines.append(f"--method all leaves out {', '.join(job.left_out)} on {job.device.type} "
                     "(sampling methods: tens of thousands of forward passes per image); "
                     "--method everything takes them too")
    black_box = [name for name in job.methods if get_method(name).black_box]
    if black_box:
        lines.append(f"{', '.join(black_box)}: the whole model as a black box, from forward "
                     "passes of randomly masked copies of the image (not the target layer)")
    if job.sess is not None:
        lines.append("every method wrapped in SESS: its map of every window of the rescaled "
                     "copies, fused (files named <image>_sess_<method>_...)")
    lines.append(cost_report(job.methods, job.channels, job.device, job.aug_smooth, job.cams,
                             len(job.images), input_size=job.input_size,
                             classes=job.classes_per_image))
    if job.sanity_checks:
        lines.append(sanity.sanity_header(job))
    return "\n".join(lines)


def _say(text: str, out: TextIO) -> None:
    """A line of the report, above any progress bar, at once."""
    tqdm.write(text, file=out)
    out.flush()


def run(job: Job, out: TextIO | None = None) -> list[Path]:
    """Explain every image of the job: print the header and, per image, its
    predictions and explained classes; write each method's pictures of
    every class as soon as the method's one call for them is done (and the
    side-by-side pictures after the image's last method); with
    ``--evaluate`` print the metrics tables. Returns the files written."""
    out = out or sys.stdout
    written: list[Path] = []
    with contextlib.ExitStack() as stack:
        make_cams(job, stack)
        print(header(job), file=out, flush=True)
        images = tqdm(job.images, desc="images", disable=not job.progress or len(job.images) < 2,
                      leave=False)
        for path in images:
            results = predict_classes(job, path)
            _say(outputs.prediction_report(job, results), out)
            for name in job.methods:
                compute_maps(job, results, name)
                for result in results:
                    files = outputs.write_method(job, result, name)
                    _say(f"  {name}{_for_class(job, results, result)}: wrote "
                         f"{', '.join(str(f) for f in files)}", out)
                    written.extend(files)
            for result in results:
                files = outputs.write_comparison(job, result)
                if files:
                    _say(f"  wrote {', '.join(str(f) for f in files)}", out)
                    written.extend(files)
            if job.evaluate:
                _say(f"  scoring the maps of {', '.join(job.methods)} with the metrics "
                     f"({outputs.metric_names(job)})", out)
                _say(outputs.evaluation_report(job, results), out)
            if job.sanity_checks:
                _say(f"  sanity checks of {', '.join(job.methods)}: "
                     f"{', '.join(job.sanity_checks)}", out)
                _say(sanity.sanity_report(job, results), out)
    return written


def _for_class(job: Job, results: Sequence[ImageResult], result: ImageResult) -> str:
    """`` for 281 (tabby)`` when the image is explained for several classes."""
    return f" for {class_label(result.category, job.class_names)}" if len(results) > 1 else ""
