"""Preparing and running the image command's job.

1. :func:`prepare` checks everything the user gave (images readable,
   method names, device, model, weights, target layer, class) and loads
   the model; nothing is computed or written before it has passed. Every
   problem is a :class:`~pytorch_grad_cam.cli.errors.UsageError`.
2. :func:`explain_image` computes the predictions, each method's map and
   the guided backpropagation of one image (:class:`ImageResult`).
3. :func:`pytorch_grad_cam.cli.outputs.write_outputs` writes the pictures
   of one image, each file complete or not at all; :func:`run` does 2 and 3
   for every image and prints the report.

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
from pytorch_grad_cam.cli import outputs
from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.cli.models import LoadedModel, load_model
from pytorch_grad_cam.cli.parser import DEFAULT_IMAGE, PROG
from pytorch_grad_cam.layers import (
    LayerError,
    default_target_layers,
    family_layout,
    probe_target_layers,
    reshape_transform_for,
    resolve_layer,
)
from pytorch_grad_cam.registry import METHODS
from pytorch_grad_cam.scoring import describe, select_output
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGE_SUFFIXES",
    "ImageResult",
    "Job",
    "check_output_dir",
    "choose_device",
    "collect_images",
    "explain_image",
    "make_cams",
    "parse_methods",
    "prepare",
    "read_image",
    "resolve_category",
    "resolve_target_layers",
    "run",
]

#: a clone's root, where the default image lives (examples/chelsea.jpg)
SOURCE_ROOT = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
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
    aug_smooth: bool = False
    eigen_smooth: bool = False
    batch_size: int | None = None
    progress: bool = True
    guided_backprop: bool = True
    evaluate: bool = False
    cams: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """One image explained: what the pictures (and any scoring) are made from."""

    path: Path
    bgr: np.ndarray                 # the original image, uint8 H x W x 3, BGR
    input_tensor: torch.Tensor      # 1 x 3 x S x S, normalised, on the model's device
    probabilities: np.ndarray       # softmax over the classes
    category: int                   # the explained class
    maps: dict[str, np.ndarray]     # method -> S x S map in [0, 1]
    guided: np.ndarray | None       # S x S x 3 guided backpropagation (RGB), or None


# ------------------------------------------------------------ checking input
def read_image(path: Path) -> np.ndarray | None:
    """uint8 BGR image, or None when the file is not a readable image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:  # unreadable (permissions, a broken link, ...)
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def collect_images(paths: Sequence[str] | None, default: str = DEFAULT_IMAGE) -> list[Path]:
    """The image files named or contained in ``paths`` (folders: every image
    file directly inside, sorted); each one is decoded once to make sure it
    is readable. Without paths: ``default``, in a clone's root if it is
    there, else relative to the working directory."""
    if not paths:
        bundled = SOURCE_ROOT / default
        paths = [str(bundled if bundled.exists() else default)]
    images: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"--image-path {text}: the folder holds no image "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise UsageError(f"--image-path {text}: no such file or folder")
    stems: dict[str, Path] = {}
    for path in images:
        if read_image(path) is None:
            raise UsageError(f"--image-path {path}: cannot read it as an image")
        if path.stem in stems and stems[path.stem] != path:
            raise UsageError(f"--image-path: {stems[path.stem]} and {path} would write the same "
                             f"output files ({path.stem}_*.jpg); rename one")
        stems[path.stem] = path
    return list(dict.fromkeys(images))


def parse_methods(names: Sequence[str]) -> list[str]:
    """Registered method names (keys of ``pytorch_grad_cam.METHODS``),
    case-insensitive; class names (GradCAMPlusPlus) and 'all' work too."""
    lookup = {}
    for key, cls in METHODS.items():
        lookup[key.lower()] = key
        lookup[cls.__name__.lower()] = key
    chosen: list[str] = []
    for text in names:
        for part in text.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name == "all":
                chosen.extend(METHODS)
            elif name in lookup:
                chosen.append(lookup[name])
            else:
                close = difflib.get_close_matches(name, list(METHODS), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise UsageError(f"--method: unknown method {describe(part.strip())}{hint}; "
                                 f"choose from {', '.join(METHODS)} or all")
    if not chosen:
        raise UsageError("--method: give at least one method")
    return list(dict.fromkeys(chosen))


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


def _normalise_name(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


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
    wanted = _normalise_name(text)
    normalised = [_normalise_name(name) for name in class_names]
    matches = [i for i, name in enumerate(normalised) if name == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({class_names[i]})" for i in matches)
        raise UsageError(f"--target-category {text!r} is ambiguous: {listed}; give the index")
    close = [i for i, name in enumerate(normalised) if wanted in name]
    close += [normalised.index(name) for name in
              difflib.get_close_matches(wanted, normalised, n=5, cutoff=0.6)]
    words = set(wanted.split())
    if len(words) > 1:  # 'tabby cat' -> 'tiger cat', 'Persian cat', ...
        close += [i for i, name in enumerate(normalised) if words & set(name.split())]
    close = list(dict.fromkeys(close))[:8]
    hint = ("; close matches: " + ", ".join(f"{i} ({class_names[i]})" for i in close)
            if close else f"; {_list_classes_command(prog)} prints all of them")
    raise UsageError(f"--target-category {text!r}: no class has that name{hint}")


def _list_classes_command(prog: str) -> str:
    return f"{'python ' if prog.endswith('.py') else ''}{prog} --list-classes"


def check_output_dir(text: str) -> Path:
    """``--output-dir``: a folder, or a path where one can be made."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output-dir {text}: exists and is not a folder")
    return path


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
           device: torch.device, prog: str) -> int:
    try:
        probe = probe_target_layers(model, layers, names, reshape, input_size, device)
    except LayerError as error:
        if error.layer is not None:
            raise UsageError(f"--target-layer {error.layer}: {error.reason}") from None
        hint = (f"; {prog} explains image classifiers"
                if error.reason.startswith("the model's output") else "")
        raise UsageError(error.reason + hint) from None
    return probe.num_classes


def prepare(args: argparse.Namespace, load: Loader | None = None,
            guided_backprop: bool = True, prog: str = PROG) -> Job:
    """Check everything, cheapest first, and load the model (``load(args)``,
    default ``--model``/``--weights`` of the image command). Raises
    UsageError."""
    images = collect_images(args.image_path)
    methods = parse_methods(args.method)
    device = choose_device(args.device, args.use_cuda)
    output_dir = check_output_dir(args.output_dir)
    if args.target_category is not None and not re.fullmatch(r"\s*[+-]?\d+\s*",
                                                             args.target_category):
        resolve_category(args.target_category, prog=prog)  # a name: fail before loading a model
    loaded = load_model(args.model, args.weights) if load is None else load(args)
    model = loaded.model.to(device).eval()
    try:
        if args.target_layer:
            layer_names, layout = list(args.target_layer), family_layout(model)
        else:
            layer_names, layout = default_target_layers(model)
    except LayerError as error:
        raise UsageError(f"{error.reason}; name one with --target-layer (see README, "
                         "'Choosing the target layer')") from None
    layers = resolve_target_layers(model, layer_names)
    try:
        reshape = reshape_transform_for(model, layout)
    except LayerError as error:
        raise UsageError(error.reason) from None
    num_classes = _probe(model, layers, layer_names, reshape, loaded.input_size, device, prog)
    class_names = IMAGENET_CLASSES if num_classes == len(IMAGENET_CLASSES) else None
    category = resolve_category(args.target_category, class_names, num_classes, prog=prog)
    return Job(images=images, methods=methods, device=device, model=model,
               model_name=loaded.name, input_size=loaded.input_size, mean=loaded.mean,
               std=loaded.std, target_layers=layers, layer_names=layer_names,
               reshape_transform=reshape, category=category, class_names=class_names,
               output_dir=output_dir, aug_smooth=args.aug_smooth,
               eigen_smooth=args.eigen_smooth, batch_size=args.batch_size,
               progress=not args.no_progress, guided_backprop=guided_backprop,
               evaluate=getattr(args, "evaluate", False))


# -------------------------------------------------------------- computing
def make_cams(job: Job, stack: contextlib.ExitStack) -> None:
    """One CAM object per method (closed when ``stack`` closes)."""
    for name in job.methods:
        options: dict[str, Any] = {
            "model": job.model, "target_layers": job.target_layers,
            "reshape_transform": job.reshape_transform, "progress": job.progress}
        if job.batch_size is not None:
            options["batch_size"] = job.batch_size
        cam = METHODS[name](**options)
        job.cams[name] = stack.enter_context(cam) if hasattr(cam, "__enter__") else cam


def explain_image(job: Job, path: Path) -> ImageResult:
    """Predictions, every method's map and the guided backpropagation of one image."""
    bgr = read_image(path)
    if bgr is None:  # it was readable when checked; it changed since
        raise UsageError(f"--image-path {path}: cannot read it as an image")
    rgb = cv2.cvtColor(cv2.resize(bgr, (job.input_size, job.input_size)), cv2.COLOR_BGR2RGB)
    input_tensor = preprocess_image(np.float32(rgb) / 255, job.mean, job.std).to(job.device)
    with torch.inference_mode():
        scores = select_output(job.model(input_tensor))
        probabilities = torch.softmax(scores.float(), dim=-1)[0].cpu().numpy()
    category = job.category if job.category is not None else int(np.argmax(probabilities))
    targets = [ClassifierOutputTarget(category)]
    maps = {}
    for name in job.methods:
        maps[name] = job.cams[name](input_tensor=input_tensor, targets=targets,
                                    aug_smooth=job.aug_smooth, eigen_smooth=job.eigen_smooth)[0]
    guided = None
    if job.guided_backprop:
        guided = GuidedBackpropReLUModel(model=job.model)(input_tensor, targets=targets)
    return ImageResult(path=path, bgr=bgr, input_tensor=input_tensor,
                       probabilities=probabilities, category=category, maps=maps, guided=guided)


def run(job: Job, out: TextIO | None = None) -> list[Path]:
    """Explain every image of the job, write its pictures and print its
    report (top-5 predictions, the explained class, the files; with
    ``--evaluate`` the metrics table)."""
    out = out or sys.stdout
    written: list[Path] = []
    layers = ", ".join(job.layer_names)
    print(f"model {job.model_name} on {job.device}, target layer {layers}, "
          f"methods {', '.join(job.methods)}", file=out, flush=True)
    with contextlib.ExitStack() as stack:
        make_cams(job, stack)
        images = tqdm(job.images, desc="images", disable=not job.progress or len(job.images) < 2,
                      leave=False)
        for path in images:
            result = explain_image(job, path)
            files = outputs.write_outputs(job, result)
            report = outputs.image_report(job, result, files)
            if job.evaluate:
                report += "\n" + outputs.evaluation_report(job, result)
            tqdm.write(report, file=out)
            written.extend(files)
    return written
