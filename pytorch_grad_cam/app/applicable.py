"""Which of the asked methods apply to a model: the attention methods
(registry trait ``attention``) read a Vision Transformer's attention, and
apply only to the transformers the library can read
(:func:`pytorch_grad_cam.attention.find_transformer`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.attention import SUPPORTED_FAMILIES, find_transformer
from pytorch_grad_cam.registry import get_method

__all__ = ["applicable_methods"]


def applicable_methods(methods: Sequence[str], model: torch.nn.Module, asked: Sequence[str],
                       model_name: str) -> tuple[list[str], list[str]]:
    """The methods that apply to ``model``, and those ``--method all`` or
    ``everything`` brought in that do not. One of them named on its own
    (in ``asked``, the ``--method`` arguments) for another model is a
    UsageError."""
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
