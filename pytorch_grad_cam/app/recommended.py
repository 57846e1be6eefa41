"""``--method recommended``: the method the quality benchmark measured best
for the model's family.

``bench/quality_benchmark.py`` scores every method on a small CNN and a
small Vision Transformer trained on images whose evidence is known pixel
by pixel (docs/quality.md) and writes its choice per family into
:mod:`pytorch_grad_cam.app.recommended_table`: among the methods that pass
the sanity checks, the best mean of the pointing game and the relevance
mass accuracy. Here a model's family is found and the word
``recommended`` of a method list is replaced by that family's method; a
model of no measured family gets :data:`FALLBACK`, and the line printed
says why.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

from pytorch_grad_cam.app import recommended_table
from pytorch_grad_cam.app.methods import RECOMMENDED_WORD
from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.registry import find_method_name

__all__ = ["FALLBACK", "FAMILY_TITLES", "RECOMMENDED_WORD", "Recommendation", "model_family",
           "recommend", "resolve_recommended"]

#: the method of a model whose family has no measured choice
FALLBACK = "gradcam"
#: the families of the benchmark, as the printed line names them
FAMILY_TITLES = {"cnn": "CNN", "vit": "ViT"}


class Recommendation(NamedTuple):
    """The method chosen for a model, its family (None: none measured) and
    the line that tells the user what was chosen and why."""

    method: str
    family: str | None
    line: str


def model_family(model: torch.nn.Module) -> tuple[str | None, str]:
    """(family, what the model is): ``"vit"`` for a Vision Transformer the
    library reads (:func:`pytorch_grad_cam.attention.find_transformer`),
    ``"cnn"`` for a network with 2-D convolutions and no attention module,
    else None (a Swin, an MLP, ...)."""
    try:
        find_transformer(model)
        return "vit", "a Vision Transformer"
    except ValueError:
        pass
    modules = [module for name, module in model.named_modules() if name]  # not the model itself
    attention = [m for m in modules if isinstance(m, torch.nn.MultiheadAttention)
                 or "attention" in type(m).__name__.lower()]
    if attention:
        return None, (f"{type(model).__name__} has attention modules "
                      f"({type(attention[0]).__name__}) but is not a Vision Transformer the "
                      "library reads")
    if any(isinstance(m, torch.nn.Conv2d) for m in modules):
        return "cnn", "a CNN"
    return None, f"{type(model).__name__} has no 2-D convolution and is not a Vision Transformer"


def recommend(model: torch.nn.Module,
              table: Mapping[str, Mapping[str, str]] | None = None) -> Recommendation:
    """The recommended method for ``model`` from ``table`` (family ->
    ``{"method", "reason"}``; default the benchmark's,
    :mod:`pytorch_grad_cam.app.recommended_table`)."""
    family, what = model_family(model)
    table = recommended_table.RECOMMENDED if table is None else table
    if family is None:
        return Recommendation(FALLBACK, None, f"recommended: {FALLBACK} (fallback: {what}; the "
                              "quality benchmark measured CNNs and Vision Transformers only, "
                              "docs/quality.md)")
    entry = table.get(family)
    title = FAMILY_TITLES[family]
    if entry is None:
        return Recommendation(FALLBACK, family, f"recommended for {title}: {FALLBACK} (fallback: "
                              f"the quality benchmark's table has no choice for a {title}, "
                              "docs/quality.md)")
    name = find_method_name(entry["method"])
    if name is None:
        return Recommendation(FALLBACK, family, f"recommended for {title}: {FALLBACK} (fallback: "
                              f"the quality benchmark's choice {entry['method']!r} is not a "
                              "registered method, docs/quality.md)")
    return Recommendation(name, family, f"recommended for {title}: {name} ({entry['reason']})")


def resolve_recommended(methods: Sequence[str], model: torch.nn.Module
                        ) -> tuple[list[str], str | None]:
    """``methods`` (registry names and the word ``recommended``) with the
    word replaced by the model's recommended method (no repeats), and the
    line to print (None when the word is not there)."""
    if RECOMMENDED_WORD not in methods:
        return list(methods), None
    chosen = recommend(model)
    names = [chosen.method if name == RECOMMENDED_WORD else name for name in methods]
    return list(dict.fromkeys(names)), chosen.line
