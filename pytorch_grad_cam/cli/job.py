"""Preparing and running the image command's job.

1. :func:`prepare` checks everything the user gave (images readable,
   method names, device, model, weights, target layer, class) and loads
   the model; nothing is computed or written before it has passed. Every
   problem is a :class:`~pytorch_grad_cam.cli.errors.UsageError`.
2. :func:`run` prints the run's header (model, target layer and how it was
   found, methods, their cost per image), then for every image computes
   the predictions and the guided backpropagation (:func:`predict`), and
   method by method the map (:func:`compute_map`), writing that method's
   pictures as soon as it is done
   (:func:`pytorch_grad_cam.cli.outputs.write_method`), so that a long run
   that is stopped leaves the finished methods' files behind; the
   side-by-side picture of several methods is written when the image's
   last method is done. Every file is complete or not there at all.
   :func:`explain_image` does all of one image at once.

Scoring the maps (``--evaluate``, :mod:`pytorch_grad_cam.metrics`) takes
the same ``ImageResult`` (model, input tensor, class, maps).
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from pytorch_grad_cam import GuidedBackpropReLUModel
from pytorch_grad_cam.attention import SUPPORTED_FAMILIES, find_transformer
from pytorch_grad_cam.cli import outputs
from pytorch_grad_cam.cli.cost import cost_report
from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.cli.folders import check_output_folder
from pytorch_grad_cam.cli.images import IMAGE_SUFFIXES, collect_images, read_checked, read_image
from pytorch_grad_cam.cli.models import (
    DEFAULT_MODEL,
    HF_PREFIX,
    TIMM_PREFIX,
    LoadedModel,
    load_model,
    model_slug,
    read_class_names,
)
from pytorch_grad_cam.cli.parser import PROG
from pytorch_grad_cam.layer_finder import locate_layers
from pytorch_grad_cam.layers import (
    LayerError,
    LayerProbe,
    family_layout,
    probe_target_layers,
    reshape_transform_for,
    resolve_layer,
)
from pytorch_grad_cam.registry import METHODS, get_method
from pytorch_grad_cam.scoring import describe, select_output
from pytorch_grad_cam.sess import SESS
from pytorch_grad_cam.utils.class_names import match_class_name
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS, bounded_copy
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGE_SUFFIXES",
    "ImageResult",
    "Job",
    "affordable",
    "check_output_dir",
    "choose_device",
    "choose_target_layers",
    "class_slug",
    "collect_images",
    "compute_map",
    "explain_image",
    "header",
    "make_cams",
    "model_tag",
    "parse_methods",
    "predict",
    "prepare",
    "read_image",
    "resolve_category",
    "resolve_target_layers",
    "run",
    "select_methods",
    "slug",
]

IMAGENET_CLASSES: list[str] = list(
    torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])

Loader = Callable[[argparse.Namespace], LoadedModel]


@dataclass
class Job:
    """Everything a run needs, checked."""

    images: list[Path]
    methods: list[str]
    device: torch.device
    model: torch.nn.Module
    model_name: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_layers: list[torch.nn.Module]
    layer_names: list[str]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None
    category: int | None
    class_names: list[str] | None
    output_dir: Path
    #: how the target layers were chosen: "table", "probe", or None (--target-layer)
    layer_source: str | None = None
    #: the channels of every target layer's map (the cost of the perturbation methods)
    channels: list[int] = field(default_factory=list)
    #: what --method all left out on this device (the sampling methods on a CPU)
    left_out: list[str] = field(default_factory=list)
    #: what --method all left out because the model is not a Vision Transformer
    #: whose attention the library can read (the attention methods on a CNN)
    not_applicable: list[str] = field(default_factory=list)
    #: the parts of the file names after the image's name: the model (unless it is
    #: the default) and the explained class (when it was given)
    name_parts: list[str] = field(default_factory=list)
    aug_smooth: bool = False
    eigen_smooth: bool = False
    #: with --sess: SESS's options (every method is wrapped in SESS), else None
    sess: dict[str, Any] | None = None
    batch_size: int | None = None
    progress: bool = True
    guided_backprop: bool = True
    evaluate: bool = False
    #: --max-pixels: images with more pixels (by their header) are refused
    max_pixels: int = MAX_READ_PIXELS
    cams: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """One image explained: what the pictures (and any scoring) are made from."""

    path: Path
    bgr: np.ndarray                 # the image pictured, uint8 H x W x 3, BGR (image_io.bounded_copy)
    input_tensor: torch.Tensor      # 1 x 3 x S x S, normalised, on the model's device
    probabilities: np.ndarray       # softmax over the classes
    category: int                   # the explained class
    maps: dict[str, np.ndarray]     # method -> S x S map in [0, 1]
    guided: np.ndarray | None       # S x S x 3 guided backpropagation (RGB), or None


# ------------------------------------------------------------ checking input
def affordable(device: torch.device | None) -> list[str]:
    """What ``--method all`` means on ``device``: every method on CUDA (and
    without a device), elsewhere every method but the sampling ones (registry
    trait ``sampling``: SSCAM, ISCAM), which make tens of thousands of
    forward passes per image."""
    if device is None or torch.device(device).type == "cuda":
        return list(METHODS)
    return [name for name in METHODS if not get_method(name).sampling]


def select_methods(names: Sequence[str], device: torch.device | None = None
                   ) -> tuple[list[str], list[str]]:
    """Registered method names (keys of ``pytorch_grad_cam.METHODS``),
    case-insensitive; class names (GradCAMPlusPlus) work too, 'everything'
    is every method and 'all' the methods affordable on ``device``
    (:func:`affordable`). Returns (the methods, those 'all' left out and
    no other name asked for)."""
    lookup = {}
    for key, cls in METHODS.items():
        lookup[key.lower()] = key
        lookup[cls.__name__.lower()] = key
    chosen: list[str] = []
    by_all: set[str] = set()
    for text in names:
        for part in text.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "everything":
                chosen.extend(METHODS)
            elif name == "all":
                chosen.extend(affordable(device))
                by_all.add(name)
            elif name in lookup:
                chosen.append(lookup[name])
            else:
                close = difflib.get_close_matches(name, list(METHODS), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise UsageError(f"--method: unknown method {describe(part.strip())}{hint}; "
                                 f"choose from {', '.join(METHODS)}, all or everything")
    if not chosen:
        raise UsageError("--method: give at least one method")
    methods = list(dict.fromkeys(chosen))
    left_out = [name for name in METHODS if by_all and name not in methods]
    return methods, left_out


def applicable_methods(methods: Sequence[str], model: torch.nn.Module, asked: Sequence[str],
                       model_name: str) -> tuple[list[str], list[str]]:
    """The methods that apply to ``model``, and those ``--method all`` or
    ``everything`` brought in that do not: the attention methods (registry
    trait ``attention``) need a Vision Transformer whose attention the
    library reads (``pytorch_grad_cam.attention.find_transformer``). One of
    them named on its own for another model is a UsageError."""
    attention = [name for name in methods if get_method(name).attention]
    if not attention:
        return list(methods), []
    try:
        find_transformer(model)
        return list(methods), []
    except ValueError:
        pass
    named = {part.strip().lower() for text in asked for part in text.split(",")}
    for name in attention:
        if name in named or get_method(name).cls.__name__.lower() in named:
            raise UsageError(f"--method {name} reads the attention of a Vision Transformer, and "
                             f"--model {model_name} ({type(model).__name__}) is not one that "
                             f"the library can read (supported: {SUPPORTED_FAMILIES})")
    return [name for name in methods if name not in attention], attention


def parse_methods(names: Sequence[str], device: torch.device | None = None) -> list[str]:
    """The methods of :func:`select_methods` (without a device, 'all' is
    every method)."""
    return select_methods(names, device)[0]


def choose_device(requested: str, use_cuda: bool) -> torch.device:
    """``--device`` (and the older ``--use-cuda``) -> the device."""
    if use_cuda:
        if requested not in ("auto", "cuda"):
            raise UsageError(f"--use-cuda contradicts --device {requested}; give one of them")
        if not torch.cuda.is_available():
            warnings.warn("--use-cuda: CUDA is not available; running on the CPU", UserWarning,
                          stacklevel=2)
            return torch.device("cpu")
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    mps_available = bool(mps is not None and mps.is_available())
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: CUDA is not available here (torch {torch.__version__}); "
                         "use --device cpu or auto")
    if requested == "mps" and not mps_available:
        raise UsageError("--device mps: Apple's MPS backend is not available here; "
                         "use --device cpu or auto")
    return torch.device(requested)


def resolve_category(text: str | None, class_names: Sequence[str] | None = IMAGENET_CLASSES,
                     num_classes: int | None = None, prog: str = PROG) -> int | None:
    """An index or a class name (case-insensitive) -> the class index."""
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        index = int(text)
        count = num_classes if num_classes is not None else (
            len(class_names) if class_names else None)
        if index < 0 or (count is not None and index >= count):
            allowed = f"0..{count - 1}" if count is not None else "0 or more"
            raise UsageError(f"--target-category {text}: out of range (allowed {allowed})")
        return index
    if not class_names:
        raise UsageError(f"--target-category {text!r}: this model's classes have no names; "
                         "give the class index")
    matches, close = match_class_name(text, class_names)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({class_names[i]})" for i in matches)
        raise UsageError(f"--target-category {text!r} is ambiguous: {listed}; give the index")
    hint = ("; close matches: " + ", ".join(f"{i} ({class_names[i]})" for i in close)
            if close else f"; {_list_classes_command(prog)} prints all of them")
    raise UsageError(f"--target-category {text!r}: no class has that name{hint}")


def _list_classes_command(prog: str) -> str:
    return f"{'python ' if prog.endswith('.py') else ''}{prog} --list-classes"


def check_output_dir(text: str) -> Path:
    """``--output-dir``: a folder, or a path where one can be made, that
    files can be written in (:func:`~pytorch_grad_cam.cli.folders.check_output_folder`)."""
    return check_output_folder("--output-dir", text)


def resolve_target_layers(model: torch.nn.Module,
                          names: Sequence[str]) -> list[torch.nn.Module]:
    """``--target-layer`` paths -> the modules (UsageError on a bad path)."""
    layers = []
    for name in names:
        try:
            layers.append(resolve_layer(model, name))
        except LayerError as error:
            raise UsageError(f"--target-layer {name!r}: {error.reason}") from None
    return layers


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


def _one_line(text: str) -> str:
    """A multi-line library message (a list of candidates) as one line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) <= 1:
        return " ".join(lines)
    return f"{lines[0]} {'; '.join(lines[1:])}"


def choose_target_layers(model: torch.nn.Module, names: Sequence[str] | None
                         ) -> tuple[list[torch.nn.Module], list[str],
                                    Callable[[torch.Tensor], torch.Tensor] | None, str | None]:
    """``--target-layer`` paths, or the layers the library finds
    (:func:`pytorch_grad_cam.layer_finder.locate_layers`: by its table, else
    by probing): (layers, names, reshape transform, "table" / "probe" / None
    for given ones). UsageError when neither works."""
    if names:
        layers = resolve_target_layers(model, names)
        try:
            reshape = reshape_transform_for(model, family_layout(model))
        except LayerError as error:
            raise UsageError(error.reason) from None
        return layers, list(names), reshape, None
    try:
        found = locate_layers(model)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{_one_line(str(error))}; name one with --target-layer (see README, "
                         "'Choosing the target layer')") from None
    return list(found.layers), list(found.names), found.reshape_transform, found.source


def slug(text: str) -> str:
    """``coffee mug`` -> ``coffee_mug``: lower-case letters, digits and _."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def class_slug(index: int, class_names: Sequence[str] | None) -> str:
    """The explained class as a part of a file name: its name's slug
    (``tabby``, ``coffee_mug``), with the index when another class has the
    same name (``cardigan_264``), or ``class7`` for a model without names."""
    if not class_names:
        return f"class{index}"
    name = slug(class_names[index])
    if not name:
        return f"class{index}"
    if sum(slug(other) == name for other in class_names) > 1:
        return f"{name}_{index}"
    return name


def model_tag(args: argparse.Namespace, default_model: str | None) -> str | None:
    """The model as a part of the file names, or None for the default model
    (``--model`` not given or ``default_model``, without --weights or
    --random-weights). ``default_model=None``: always named. A checkpoint
    adds its file's name (and stands alone without --model), random
    weights ``random``."""
    weights = getattr(args, "weights", None)
    random_weights = getattr(args, "random_weights", False)
    spec = args.model.strip() if args.model else None
    if default_model is not None and not weights and not random_weights and (
            spec is None or spec.lower() == default_model):
        return None
    # a checkpoint without --model: its file names the model (it may hold a whole one)
    parts = [] if spec is None and weights else [model_slug(spec or default_model
                                                            or DEFAULT_MODEL)]
    if weights:
        parts.append(slug(Path(weights).stem) or "weights")
    if random_weights:
        parts.append("random")
    return "_".join(parts)


def _imagenet_for_sure(args: argparse.Namespace) -> bool:
    """Whether the model will be an ImageNet classifier whatever loads
    (class names can then be checked before loading it)."""
    spec = (args.model or "").strip().lower()
    return not (getattr(args, "weights", None) or getattr(args, "num_classes", None)
                or spec.startswith((TIMM_PREFIX, HF_PREFIX)))


#: --sess-* option -> SESS argument
SESS_OPTIONS = {"sess_scales": "num_scales", "sess_step": "step_size",
                "sess_pre_filter": "pre_filter_ratio", "sess_pool": "pool"}


def sess_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """SESS's arguments from --sess and its options; None without --sess
    (its options alone are a usage error)."""
    given = {argument: getattr(args, option) for option, argument in SESS_OPTIONS.items()
             if getattr(args, option, None) is not None}
    if not getattr(args, "sess", False):
        if given:
            flags = ", ".join("--" + option.replace("_", "-") for option in SESS_OPTIONS
                              if getattr(args, option, None) is not None)
            raise UsageError(f"{flags} only work with --sess (give --sess too)")
        return None
    return given


def _default_load(args: argparse.Namespace) -> LoadedModel:
    return load_model(args.model, args.weights, num_classes=getattr(args, "num_classes", None),
                      random_weights=getattr(args, "random_weights", False),
                      trust_checkpoint=getattr(args, "trust_checkpoint", False))


def prepare(args: argparse.Namespace, load: Loader | None = None,
            guided_backprop: bool = True, prog: str = PROG,
            default_model: str | None = DEFAULT_MODEL) -> Job:
    """Check everything, cheapest first, and load the model (``load(args)``,
    default ``--model``/``--weights`` of the image command). Raises
    UsageError. ``default_model``: the model whose name the file names
    leave out (None: every model is named, as ``vit`` does)."""
    device = choose_device(args.device, args.use_cuda)
    methods, left_out = select_methods(args.method, device)
    sess = sess_options(args)
    max_pixels = getattr(args, "max_pixels", MAX_READ_PIXELS)
    images = collect_images(args.image_path, max_pixels=max_pixels)  # after the cheaper checks
    output_dir = check_output_dir(args.output_dir)
    given_names = read_class_names(args.class_names) if getattr(args, "class_names", None) \
        else None
    text = args.target_category
    if text is not None and not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        if given_names is not None:  # a name: fail before loading a model
            resolve_category(text, given_names, prog=prog)
        elif _imagenet_for_sure(args):
            resolve_category(text, prog=prog)
    loaded = _default_load(args) if load is None else load(args)
    model = loaded.model.to(device).eval()
    methods, not_applicable = applicable_methods(methods, model, args.method, loaded.name)
    if not methods:
        raise UsageError(f"--method: none of {', '.join(not_applicable)} applies to "
                         f"--model {loaded.name}")
    layers, layer_names, reshape, source = choose_target_layers(model, args.target_layer)
    probe = _probe(model, layers, layer_names, reshape, loaded.input_size, device, prog)
    num_classes = probe.num_classes
    if given_names is not None:
        if len(given_names) != num_classes:
            raise UsageError(f"--class-names {args.class_names}: names {len(given_names)} "
                             f"classes, the model has {num_classes}")
        class_names: list[str] | None = given_names
    elif loaded.class_names is not None and len(loaded.class_names) == num_classes:
        class_names = list(loaded.class_names)
    else:
        class_names = IMAGENET_CLASSES if num_classes == len(IMAGENET_CLASSES) else None
    category = resolve_category(text, class_names, num_classes, prog=prog)
    parts = [part for part in (model_tag(args, default_model),
                               None if category is None else class_slug(category, class_names))
             if part]
    if sess is not None:
        parts.append("sess")
    return Job(images=images, methods=methods, device=device, model=model,
               model_name=loaded.name, input_size=loaded.input_size, mean=loaded.mean,
               std=loaded.std, target_layers=layers, layer_names=layer_names,
               reshape_transform=reshape, category=category, class_names=class_names,
               output_dir=output_dir, layer_source=source,
               channels=[shape[0] for shape in probe.map_shapes], left_out=left_out,
               not_applicable=not_applicable,
               name_parts=parts, aug_smooth=args.aug_smooth,
               eigen_smooth=args.eigen_smooth, sess=sess, batch_size=args.batch_size,
               progress=not args.no_progress, guided_backprop=guided_backprop,
               evaluate=getattr(args, "evaluate", False), max_pixels=max_pixels)


# -------------------------------------------------------------- computing
def make_cams(job: Job, stack: contextlib.ExitStack) -> None:
    """One CAM object per method (closed when ``stack`` closes)."""
    for name in job.methods:
        options: dict[str, Any] = {
            "model": job.model, "target_layers": job.target_layers,
            "reshape_transform": job.reshape_transform, "progress": job.progress}
        if get_method(name).attention:  # every block of the transformer, its own layout
            options.update(target_layers=None, reshape_transform=None)
        if job.batch_size is not None:
            options["batch_size"] = job.batch_size
        if job.sess is not None:
            cam: Any = SESS(base_method=name, **options, **job.sess)
        else:
            cam = METHODS[name](**options)
        job.cams[name] = stack.enter_context(cam) if hasattr(cam, "__enter__") else cam


def predict(job: Job, path: Path) -> ImageResult:
    """An image read, its predictions and (when the job has it) its guided
    backpropagation; no maps yet. The model sees the image as read; the
    pictures are made from a copy of at most ``image_io.PICTURE_PIXELS``."""
    bgr = read_checked(path, job.max_pixels)  # it was readable when checked; it may have changed since
    rgb = cv2.cvtColor(cv2.resize(bgr, (job.input_size, job.input_size)), cv2.COLOR_BGR2RGB)
    input_tensor = preprocess_image(np.float32(rgb) / 255, job.mean, job.std).to(job.device)
    with torch.inference_mode():
        scores = select_output(job.model(input_tensor))
        probabilities = torch.softmax(scores.float(), dim=-1)[0].cpu().numpy()
    category = job.category if job.category is not None else int(np.argmax(probabilities))
    guided = None
    if job.guided_backprop:
        guided = GuidedBackpropReLUModel(model=job.model)(
            input_tensor, targets=[ClassifierOutputTarget(category)])
    return ImageResult(path=path, bgr=bounded_copy(bgr), input_tensor=input_tensor,
                       probabilities=probabilities, category=category, maps={}, guided=guided)


def compute_map(job: Job, result: ImageResult, name: str) -> np.ndarray:
    """Method ``name``'s map of the image (also stored in ``result.maps``);
    the CAM objects come from :func:`make_cams`."""
    targets = [ClassifierOutputTarget(result.category)]
    result.maps[name] = job.cams[name](input_tensor=result.input_tensor, targets=targets,
                                       aug_smooth=job.aug_smooth,
                                       eigen_smooth=job.eigen_smooth)[0]
    return result.maps[name]


def explain_image(job: Job, path: Path) -> ImageResult:
    """Predictions, every method's map and the guided backpropagation of one image."""
    result = predict(job, path)
    for name in job.methods:
        compute_map(job, result, name)
    return result


def header(job: Job) -> str:
    """The lines printed before the run: model, target layer(s) and how they
    were found, methods, what --method all left out, and the cost."""
    layers = ", ".join(job.layer_names)
    how = f" (found by {job.layer_source})" if job.layer_source else ""
    lines = [f"model {job.model_name} on {job.device}, target layer {layers}{how}, "
             f"methods {', '.join(job.methods)}"]
    attention = [name for name in job.methods if get_method(name).attention]
    if attention:
        lines.append(f"{', '.join(attention)}: the attention of every transformer block "
                     "(not the target layer)")
    if job.not_applicable:
        lines.append(f"--method all leaves out {', '.join(job.not_applicable)}: they read a "
                     f"Vision Transformer's attention, and {job.model_name} is not one")
    if job.left_out:
        lines.append(f"--method all leaves out {', '.join(job.left_out)} on {job.device.type} "
                     "(sampling methods: tens of thousands of forward passes per image); "
                     "--method everything takes them too")
    if job.sess is not None:
        lines.append("every method wrapped in SESS: its map of every window of the rescaled "
                     "copies, fused (files named <image>_sess_<method>_...)")
    lines.append(cost_report(job.methods, job.channels, job.device, job.aug_smooth, job.cams,
                             len(job.images), input_size=job.input_size))
    return "\n".join(lines)


def _say(text: str, out: TextIO) -> None:
    """A line of the report, above any progress bar, at once."""
    tqdm.write(text, file=out)
    out.flush()


def run(job: Job, out: TextIO | None = None) -> list[Path]:
    """Explain every image of the job: print the header and, per image, its
    predictions; write each method's pictures as soon as the method is done
    (and the side-by-side picture after the image's last method); with
    ``--evaluate`` print the metrics table. Returns the files written."""
    out = out or sys.stdout
    written: list[Path] = []
    with contextlib.ExitStack() as stack:
        make_cams(job, stack)
        print(header(job), file=out, flush=True)
        images = tqdm(job.images, desc="images", disable=not job.progress or len(job.images) < 2,
                      leave=False)
        for path in images:
            result = predict(job, path)
            _say(outputs.prediction_report(job, result), out)
            for name in job.methods:
                compute_map(job, result, name)
                files = outputs.write_method(job, result, name)
                _say(f"  {name}: wrote {', '.join(str(f) for f in files)}", out)
                written.extend(files)
            files = outputs.write_comparison(job, result)
            if files:
                _say(f"  wrote {', '.join(str(f) for f in files)}", out)
                written.extend(files)
            if job.evaluate:
                _say(f"  scoring the maps of {', '.join(job.methods)} with the metrics "
                     f"({outputs.metric_names(job)})", out)
                _say(outputs.evaluation_report(job, result), out)
    return written
