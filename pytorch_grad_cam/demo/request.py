"""The request behind the web demo's *Explain* button, as a plain function.

:func:`explain` takes a photo, a model name, method names, a class and a
layer, and returns an :class:`Explanation`: each method's map and overlay,
the top-5 predictions and, on request, the faithfulness metrics of each
map. The Gradio page (:mod:`pytorch_grad_cam.demo.app`) only converts its
inputs and outputs; tests call this function directly::

    from pytorch_grad_cam.demo import explain

    result = explain("examples/chelsea.jpg", methods=["gradcam", "layercam"])
    result.maps["gradcam"]          # 224 x 224 float32 in [0, 1]
    result.predictions[0]           # Prediction(index=285, name='Egyptian cat', ...)

The map is exactly what the library gives for the same input: the photo is
decoded as RGB (PIL, EXIF orientation applied), resized to the model's
input side with ``cv2.resize`` (bilinear), scaled to [0, 1] and normalised
with :func:`pytorch_grad_cam.utils.image.preprocess_image`; each method is
a CAM object of :data:`pytorch_grad_cam.METHODS` on the shared model, kept
by the model store for that model, method and layer and shared by the
requests (:meth:`~pytorch_grad_cam.demo.models.ModelStore.explainer`),
called with ``ClassifierOutputTarget(class)``. Several classes of the photo
(``target_class=["top 3", "tabby"]``) are explained by one call of each
method with the K targets (:func:`pytorch_grad_cam.app.targets.class_maps`):
one result per method and class, each map the one-class call's.

Every problem of the request is a :class:`~pytorch_grad_cam.demo.models.DemoError`
with the message the page shows: a file that is not an image, an image too
large to read, an unknown method or class (close matches offered), a model
that is unknown or whose weights are missing, a layer path that does not
resolve.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from pytorch_grad_cam.app.methods import MethodError, method_error_message, method_tokens
from pytorch_grad_cam.app.targets import class_maps
from pytorch_grad_cam.demo.classes import AUTOMATIC, MAX_CLASSES, chosen_classes, parse_classes, resolve_class
from pytorch_grad_cam.demo.models import DEFAULT_MODEL, DemoError, DemoModel, ModelStore, TargetLayers
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
from pytorch_grad_cam.registry import MethodInfo, get_method, registered_methods
from pytorch_grad_cam.scoring import select_output
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.image_io import (
    MAX_READ_PIXELS,
    ImageError,
    TooManyPixels,
    check_pixels,
    fit_size,
    megapixels,
    open_pillow,
    read_file,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

__all__ = [
    "AUTOMATIC",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_METHODS",
    "MAX_CLASSES",
    "MAX_READ_PIXELS",
    "Explanation",
    "ImageSource",
    "MethodMap",
    "MetricRow",
    "Prediction",
    "default_store",
    "explain",
    "method_choices",
    "parse_methods",
    "read_image",
    "resolve_class",
]

#: photos with more pixels than this are downscaled (the model sees 224 x 224 anyway)
DEFAULT_MAX_PIXELS = 4_000_000
#: the long side of the overlays
OVERLAY_SIDE = 640
DEFAULT_METHODS: tuple[str, ...] = ("gradcam",)
#: the metrics of the table, both cheap: two forward passes each per map
METRIC_NAMES = ("DropInConfidence", "IncreaseInConfidence")

ImageSource = str | Path | np.ndarray | Image.Image


@dataclass(frozen=True)
class Prediction:
    """One of the top-5 classes: index, name (or ``class <index>``), probability."""

    index: int
    name: str
    probability: float

    @property
    def label(self) -> str:
        """``"tabby (281)"``."""
        return f"{self.name} ({self.index})"


@dataclass(frozen=True)
class MethodMap:
    """One method's result for one class.

    Attributes:
        method: the registry name (``"gradcam"``).
        title: the class name (``"GradCAM"``).
        map: the S x S float32 map in [0, 1] the library returned.
        overlay: the map on the photo, H x W x 3 uint8 RGB (the photo's
            aspect ratio, the long side at most 640 pixels).
        category: the class it explains.
        class_label: its name and index, ``"tabby (281)"``.
    """

    method: str
    title: str
    map: np.ndarray
    overlay: np.ndarray
    category: int
    class_label: str


@dataclass(frozen=True)
class MetricRow:
    """The faithfulness of one map, on the class probability.

    Attributes:
        method: the registry name.
        drop_in_confidence: max(0, Y - O) / Y, where Y is the class
            probability of the photo and O that of the photo multiplied by
            the map (lower is better); ``DropInConfidence``.
        increase_in_confidence: 1.0 when O > Y, else 0.0 (higher is
            better); ``IncreaseInConfidence``.
        category: the class of the map.
    """

    method: str
    drop_in_confidence: float
    increase_in_confidence: float
    category: int


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` returns.

    Attributes:
        model: the model's name.
        layers: the target layer paths explained.
        category: the (first) explained class index.
        class_label: its name and index, ``"tabby (281)"``.
        predictions: the top-5 classes, most probable first.
        results: one entry per method that succeeded and class, in the
            order asked: a method's classes one after the other.
        failures: method name -> why it failed (the other methods ran).
        metrics: one row per result when asked for, else ``None``.
        notes: what the page should say besides (a downscaled photo, ...).
        image: the photo as used, H x W x 3 uint8 RGB.
        input_tensor: the model's input, 1 x 3 x S x S on the model's device.
        seconds: the time the request took.
        categories: every explained class index, in order (``category``
            first).
        class_labels: their labels.
    """

    model: str
    layers: tuple[str, ...]
    category: int
    class_label: str
    predictions: tuple[Prediction, ...]
    results: tuple[MethodMap, ...]
    failures: dict[str, str]
    metrics: tuple[MetricRow, ...] | None
    notes: tuple[str, ...]
    image: np.ndarray
    input_tensor: torch.Tensor
    seconds: float
    categories: tuple[int, ...]
    class_labels: tuple[str, ...]

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """method name -> its S x S map; with several classes its K x S x S
        maps, in the order of ``categories``."""
        maps: dict[str, list[np.ndarray]] = {}
        for result in self.results:
            maps.setdefault(result.method, []).append(result.map)
        return {method: found[0] if len(self.categories) <= 1 else np.stack(found)
                for method, found in maps.items()}


_DEFAULT_STORE: ModelStore | None = None
_DEFAULT_STORE_LOCK = threading.Lock()


def default_store() -> ModelStore:
    """The process's shared :class:`ModelStore` (CUDA when available), made
    on first use."""
    global _DEFAULT_STORE
    with _DEFAULT_STORE_LOCK:
        if _DEFAULT_STORE is None:
            _DEFAULT_STORE = ModelStore()
        return _DEFAULT_STORE


# ----------------------------------------------------------------- methods
def method_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered method, the costly ones marked:
    what the Methods box lists."""
    choices = []
    for info in registered_methods():
        label = info.cls.__name__
        if info.attention:
            label += " (Vision Transformers)"  # it reads the attention of every block
        elif info.sampling:
            label += " (very slow)"  # thousands of forward passes
        elif info.perturbation:
            label += " (slow)"  # a forward pass per channel of the layer
        choices.append((label, info.name))
    return choices


def parse_methods(names: Sequence[str] | str | None) -> list[MethodInfo]:
    """Method names (registry names or class names, case-insensitive; a
    string may hold several separated by commas) -> their registry
    entries, without repeats. DemoError on an unknown name or none."""
    if names is None:
        names = []
    if isinstance(names, str):
        names = [names]
    try:
        return [get_method(name) for name in method_tokens(names)]
    except TypeError as error:
        raise DemoError(str(error)) from None
    except MethodError as error:
        raise DemoError(method_error_message(
            error, "choose at least one method (for example gradcam)",
            "unknown method {text!r}{hint} (the methods: {methods})", "; did you mean {close}?")
        ) from None


# ------------------------------------------------------------------- images
def _downscale_note(width: int, height: int, new_width: int, new_height: int,
                    max_pixels: int) -> str:
    return (f"The photo ({width} x {height}, {width * height / 1e6:.1f} megapixels) was "
            f"downscaled to {new_width} x {new_height} (the limit is "
            f"{max_pixels / 1e6:.1f} megapixels).")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise DemoError(f"an image array must be H x W, H x W x 3 or H x W x 4, got shape "
                        f"{tuple(array.shape)}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    array = array[..., :3]
    if array.dtype != np.uint8:
        values = np.asarray(array, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DemoError("the image array holds NaN or infinite values")
        if values.min() < 0 or values.max() > 255:
            raise DemoError("an image array must hold values in 0..255 (or 0..1 as floats)")
        if values.max() <= 1.0:
            values = values * 255
        array = np.round(values).astype(np.uint8)
    return np.ascontiguousarray(array)


def read_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> tuple[np.ndarray, list[str]]:
    """A photo as H x W x 3 uint8 RGB, and the notes about it.

    ``source`` is a file path, a PIL image or a numpy array (H x W, H x W x
    3 or x 4; uint8, or floats in [0, 1]). EXIF orientation is applied, and
    a photo with more than ``max_pixels`` pixels is downscaled (a note says
    so). DemoError for a file that is not an image, a photo above
    :data:`MAX_READ_PIXELS`, or a broken file.
    """
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
        height, width = rgb.shape[:2]
        if width * height > max_pixels:
            new_size = fit_size(width, height, max_pixels)
            rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
            notes.append(_downscale_note(width, height, *new_size, max_pixels))
        return rgb, notes
    if isinstance(source, Image.Image):
        return _decode(source, "the image", max_pixels, notes), notes
    if not isinstance(source, (str, Path)):
        raise DemoError(f"the photo must be a file, an image or an array, got "
                        f"{type(source).__name__}")
    path = Path(source)
    if not os.path.lexists(path):
        raise DemoError(f"no photo at {path.name!r}; upload one or pick a bundled photo")
    try:  # a regular file (not a pipe or a device) of at most image_io.MAX_FILE_BYTES
        data = read_file(path)
    except ImageError as error:
        raise DemoError(f"{path.name!r}: {error.reason}") from None
    try:
        image = open_pillow(data)  # its header only
    except ImageError as error:
        if error.status != "unreadable":
            raise DemoError(f"{path.name!r}: {error.reason}") from None
        raise DemoError(f"the file {path.name!r} is not an image this demo can read; upload a "
                        "JPEG, PNG, WebP, BMP, GIF or TIFF photo") from None
    with image:
        return _decode(image, repr(path.name), max_pixels, notes), notes


def _decode(image: Image.Image, what: str, max_pixels: int, notes: list[str]) -> np.ndarray:
    width, height = image.size
    try:  # the shared header check, before anything is decoded
        check_pixels(width, height, MAX_READ_PIXELS)
    except TooManyPixels:
        raise DemoError(f"{what} is too large: {width} x {height} is "
                        f"{megapixels(width * height)} megapixels, and the demo reads photos of "
                        f"up to {megapixels(MAX_READ_PIXELS)} megapixels; downscale it first") \
            from None
    try:
        if width * height > max_pixels:
            image.draft("RGB", fit_size(width, height, max_pixels))  # JPEG: decode at a lower scale
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise DemoError(f"{what} could not be read: {str(error) or type(error).__name__}") \
            from None
    if image.width * image.height > max_pixels:
        new_size = fit_size(image.width, image.height, max_pixels)
        image = image.resize(new_size, Image.Resampling.LANCZOS)
    if (image.width, image.height) != (width, height) and width * height > max_pixels:
        notes.append(_downscale_note(width, height, image.width, image.height, max_pixels))
    return np.asarray(image, dtype=np.uint8).copy()


def model_input(rgb: np.ndarray, loaded: DemoModel, device: torch.device) -> torch.Tensor:
    """The model's 1 x 3 x S x S input for a photo: bilinear resize to S x
    S, [0, 1], the model's mean/std (``preprocess_image``)."""
    side = loaded.input_size
    resized = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_LINEAR)
    return preprocess_image(np.float32(resized) / 255, loaded.mean, loaded.std).to(device)


def _overlay(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = min(1.0, OVERLAY_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    photo = rgb if size == (width, height) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(cam, size, interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(np.float32(photo) / 255, np.clip(mask, 0, 1), use_rgb=True)


def _class_name(index: int, names: Sequence[str] | None) -> str:
    return names[index] if names is not None else f"class {index}"


# ----------------------------------------------------------------- requests
def _run_method(info: MethodInfo, store: ModelStore, loaded: DemoModel, layers: TargetLayers,
                input_tensor: torch.Tensor, categories: Sequence[int]) -> np.ndarray:
    """The method's K x S x S maps of the classes, from one call."""
    # the model's shared CAM object: its hooks live only inside this call, and
    # there is nothing to release after it (no ``with``, which would end it for
    # the other requests too)
    cam = store.explainer(loaded, info, layers)
    return np.asarray(class_maps(cam, input_tensor, [list(categories)])[0], dtype=np.float32)


def _metrics(results: Sequence[MethodMap], loaded: DemoModel,
             input_tensor: torch.Tensor) -> tuple[MetricRow, ...]:
    """The metrics of every result; each method's maps of its K classes are
    scored together, on K copies of the photo."""
    rows = []
    by_method: dict[str, list[MethodMap]] = {}
    for result in results:
        by_method.setdefault(result.method, []).append(result)
    for method, found in by_method.items():
        cams = np.stack([result.map for result in found])
        copies = input_tensor.repeat(len(found), 1, 1, 1)
        targets = [ClassifierOutputSoftmaxTarget(result.category) for result in found]
        drop = DropInConfidence(relative=True)(copies, cams, targets, loaded.model)
        increase = IncreaseInConfidence()(copies, cams, targets, loaded.model)
        rows += [MetricRow(method, float(drop[k]), float(increase[k]), result.category)
                 for k, result in enumerate(found)]
    return tuple(rows)


def explain(image: ImageSource, model: str | None = DEFAULT_MODEL,
            methods: Sequence[str] | str | None = DEFAULT_METHODS,
            target_class: str | int | Sequence[str | int] | None = None,
            layer: str | None = None, metrics: bool = False, *,
            store: ModelStore | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> Explanation:
    """Explain one photo with one or more CAM methods, for one or more classes.

    Args:
        image: a file path, a PIL image or an RGB numpy array.
        model: a model name (see :mod:`pytorch_grad_cam.demo.models`);
            empty: the bundled EfficientNet-Lite0.
        methods: names of :data:`pytorch_grad_cam.METHODS` (``"gradcam"``,
            or several, in a list or separated by commas).
        target_class: the class to explain (a name, an index, ``"tabby
            (281)"``); empty or ``"auto"``: the model's top class; ``"top
            3"``: its three best classes; or a list of these (``["top 3",
            "tabby"]``), each class explained once, at most
            :data:`MAX_CLASSES` (see :mod:`pytorch_grad_cam.demo.classes`).
            Each method explains all of them in one call.
        layer: a layer path such as ``"layer4[-1]"`` (several separated by
            commas); empty: the model family's default.
        metrics: also score each map (DropInConfidence and
            IncreaseInConfidence on the class probability).
        store: where the models come from (default: the process's shared
            store, :func:`default_store`).
        max_pixels: photos with more pixels are downscaled first.

    Returns:
        the maps, overlays, predictions, metrics and notes.

    Raises:
        DemoError: the request cannot be served (the message says why).
        If every method fails, DemoError with their reasons; when some
        fail, the others' results come back with ``failures`` filled in.
    """
    started = time.perf_counter()
    chosen = parse_methods(methods)
    rgb, notes = read_image(image, max_pixels)
    store = store if store is not None else default_store()
    loaded = store.get(model)
    layers = store.target_layers(loaded, layer)
    wanted = parse_classes(target_class, layers.class_names, layers.num_classes)
    input_tensor = model_input(rgb, loaded, store.device)
    with torch.inference_mode():
        scores = select_output(loaded.model(input_tensor))
        probabilities = torch.softmax(scores.float(), dim=-1)[0]
        top = torch.topk(probabilities, k=min(5, probabilities.shape[0]))
    top_values, top_indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
    predictions = tuple(Prediction(int(i), _class_name(int(i), layers.class_names), float(p))
                        for p, i in zip(top_values, top_indices))
    categories = chosen_classes(wanted, probabilities[None])
    labels = [f"{_class_name(c, layers.class_names)} ({c})" for c in categories]
    results: list[MethodMap] = []
    failures: dict[str, str] = {}
    for info in chosen:
        try:
            maps = _run_method(info, store, loaded, layers, input_tensor, categories)
        except (ValueError, TypeError, RuntimeError) as error:  # e.g. CAM on a model without
            # a final nn.Linear: reported in the page, the other methods still run
            failures[info.name] = " ".join(str(error).split()) or type(error).__name__
            continue
        results += [MethodMap(info.name, info.cls.__name__, cam, _overlay(rgb, cam), category,
                              label) for cam, category, label in zip(maps, categories, labels)]
    if not results:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        raise DemoError(f"no method could explain this model and layer ({reasons})")
    rows = _metrics(results, loaded, input_tensor) if metrics else None
    return Explanation(model=loaded.name, layers=layers.names, category=categories[0],
                       class_label=labels[0], predictions=predictions, results=tuple(results),
                       failures=failures, metrics=rows, notes=tuple(notes), image=rgb,
                       input_tensor=input_tensor, seconds=time.perf_counter() - started,
                       categories=tuple(categories), class_labels=tuple(labels))
