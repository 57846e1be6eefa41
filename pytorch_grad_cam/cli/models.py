"""Loading the model the command line explains, by its earlier name.

The loaders are the library's (:mod:`pytorch_grad_cam.models.loading`),
with the command line's option names in their messages and their errors
as UsageError (:mod:`pytorch_grad_cam.app.models`); the names here keep
working for code that imported them from this module.
"""
from pytorch_grad_cam.app.classes import read_class_names
from pytorch_grad_cam.app.models import (
    load_bundled,
    load_checkpoint,
    load_hf,
    load_model,
    load_timm,
    load_torchvision,
    read_checkpoint,
)
from pytorch_grad_cam.models.loading import (
    BUNDLED_MODEL,
    DEFAULT_CLASSES,
    DEFAULT_MODEL,
    HF_PREFIX,
    HF_URL,
    MEAN,
    STD,
    TIMM_PREFIX,
    LoadedModel,
    WeightsUnavailable,
    classifier_key,
    hub_offline,
    model_slug,
    online,
    randomise,
    socket_timeout,
    torchvision_input_size,
    torchvision_pretrained,
)

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_CLASSES",
    "DEFAULT_MODEL",
    "HF_PREFIX",
    "HF_URL",
    "MEAN",
    "STD",
    "TIMM_PREFIX",
    "LoadedModel",
    "WeightsUnavailable",
    "classifier_key",
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
    "read_class_names",
    "socket_timeout",
    "torchvision_input_size",
    "torchvision_pretrained",
]
