"""Layer paths: a module of a model named the way Python code reaches it,
without ``model.``: ``"layer4[-1]"``, ``"features.29"``,
``"encoder.layers[-1].ln_1"``.

:func:`resolve_layer` looks such a path up attribute by attribute and index
by index (nothing is evaluated) and, on a typo, names the close matches::

    >>> resolve_layer(model, "layer4[-1]")          # a torchvision ResNet
    Bottleneck(...)
    >>> resolve_layer(model, "layr4[-1]")
    LayerError: layer path 'layr4[-1]': model has no layer 'layr4'; did you mean layer4? ...

Every problem with a target layer, here and in the family table and the
probe, is a :class:`LayerError` (a ``ValueError``) whose ``layer`` and
``reason`` let a caller (the command line) phrase it its own way.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import torch

from pytorch_grad_cam.scoring import describe

__all__ = ["LayerError", "resolve_layer", "resolve_layers"]


class LayerError(ValueError):
    """A layer path that does not resolve, or a target layer that cannot be
    explained.

    Attributes:
        layer: the layer path (or name) the problem is about; ``None`` when
            it is about the model as a whole.
        reason: what is wrong, without the layer's name.
    """

    def __init__(self, layer: str | None, reason: str, what: str = "layer"):
        self.layer = layer
        self.reason = reason
        super().__init__(f"{what} {describe(layer)}: {reason}" if layer is not None else reason)


# --------------------------------------------------------------- layer paths
_NAME = r"[A-Za-z_]\w*|\d+"
_LAYER_PATH = re.compile(rf"(?:{_NAME})(?:\.(?:{_NAME})|\[-?\d+\])*")
_TOKEN = re.compile(rf"{_NAME}|\[-?\d+\]")
_INDEXABLE = (torch.nn.Sequential, torch.nn.ModuleList)


def _path_error(path: str, reason: str) -> LayerError:
    return LayerError(path, reason, what="layer path")


def _closest(word: str, names: Sequence[str]) -> list[str]:
    """The names most like ``word`` (all that tie for the best likeness,
    in their order; none when nothing is close)."""
    scores = {name: difflib.SequenceMatcher(None, word, name).ratio() for name in names}
    best = max(scores.values(), default=0.0)
    if best < 0.6:
        return []
    return [name for name in names if scores[name] == best]


def resolve_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """The module of ``model`` at ``path``.

    ``path`` is a dotted path such as ``"layer4[-1]"``, ``"features.29"``
    or ``"encoder.layers[-1].ln_1"`` (white space and a leading ``model.``
    are ignored). Only child modules are looked up, by name or by index
    into a ``Sequential``/``ModuleList``: nothing is evaluated, and
    parameters or other attributes are not layers.

    Raises:
        LayerError: the path is malformed, names no child module (the
            message lists the close matches and the children), or an index
            is out of range.
    """
    if not isinstance(path, str):
        raise TypeError(f"a layer path must be a string such as 'layer4[-1]', got "
                        f"{describe(path)} ({type(path).__name__})")
    text = "".join(path.split())
    text = text.removeprefix("model.")
    if not _LAYER_PATH.fullmatch(text):
        raise _path_error(path, "not a layer path; write it like layer4[-1], features.29 or "
                                "encoder.layers[-1].ln_1")
    module = model
    walked = "model"
    for token in _TOKEN.findall(text):
        if token.startswith("["):
            index = int(token[1:-1])
            if not isinstance(module, _INDEXABLE):
                raise _path_error(path, f"{walked} ({type(module).__name__}) cannot be indexed")
            if not -len(module) <= index < len(module):
                raise _path_error(path, f"{walked} has {len(module)} entries, index {index} "
                                        "is out of range")
            module = module[index]
            walked += f"[{index}]"
            continue
        child = module._modules.get(token)
        if child is None and token.isdigit() and isinstance(module, _INDEXABLE) \
                and int(token) < len(module):
            child = module[int(token)]
        if child is None:
            names = list(module._modules)
            close = _closest(token, names)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise _path_error(path, f"{walked} has no layer {token!r}{hint} "
                                    f"(its layers: {', '.join(names) or 'none'})")
        module = child
        walked += f".{token}"
    return module


def resolve_layers(model: torch.nn.Module, paths: Sequence[str]) -> list[torch.nn.Module]:
    """:func:`resolve_layer` for every path, in order."""
    return [resolve_layer(model, path) for path in paths]
