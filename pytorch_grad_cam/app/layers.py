"""The target layers of a front-end's run: given (modules of the model or
layer paths such as ``"layer4[-1]"``) and checked by the library's
:func:`pytorch_grad_cam.base_cam.resolve_target_layers`, or, when none are
given, found by :func:`pytorch_grad_cam.layer_finder.locate_layers` (the
family table, else one probing pass), with the reshape transform of their
token layout.

:func:`find_target_layers` is the one implementation;
:func:`resolve_target_layers` words its errors for the Python API
(``explain_dataset``), :func:`choose_target_layers` for the command line
(``--target-layer``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.app.errors import UsageError, one_line
from pytorch_grad_cam.base_cam import resolve_target_layers as library_resolve
from pytorch_grad_cam.layer_finder import locate_layers
from pytorch_grad_cam.layers import LayerError, family_layout, reshape_transform_for
from pytorch_grad_cam.messages import given

__all__ = ["ChosenLayers", "LayersNotFound", "TargetLayers", "choose_target_layers",
           "family_reshape", "find_target_layers", "resolve_target_layers"]

TargetLayers = Sequence[torch.nn.Module | str] | None
Reshape = Callable[..., Any] | None


@dataclass(frozen=True)
class ChosenLayers:
    """The target layers of a run.

    Attributes:
        layers: the modules.
        names: their paths as given, or their names in the model.
        reshape_transform: what turns their outputs into maps (None: maps already).
        source: how they were found, ``"table"`` or ``"probe"``; None when given.
    """

    layers: list[torch.nn.Module]
    names: list[str]
    reshape_transform: Reshape
    source: str | None


class LayersNotFound(ValueError):
    """No target layers were given and the library found none; ``error``
    is the library's reason (which may list the candidates, one a line)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def family_reshape(model: torch.nn.Module) -> Reshape:
    """The reshape transform of the token layout of the model's family, for
    target layers chosen by hand (None for feature maps and unknown families)."""
    return reshape_transform_for(model, family_layout(model))


def find_target_layers(model: torch.nn.Module, target_layers: TargetLayers,
                       reshape_transform: Reshape = None) -> ChosenLayers:
    """``target_layers`` (modules, layer paths, one of them alone, or None
    for the layers the library finds) -> :class:`ChosenLayers`, with
    ``reshape_transform`` (for found layers, when None, theirs). Raises
    LayersNotFound, the library's LayerError for a path that does not
    resolve, and its TypeError / ValueError for anything else."""
    if target_layers is None:
        try:
            found = locate_layers(model)
        except (ValueError, TypeError) as error:
            raise LayersNotFound(error) from None
        return ChosenLayers(list(found.layers), list(found.names),
                            reshape_transform or found.reshape_transform, found.source)
    if isinstance(target_layers, (torch.nn.Module, str)):
        target_layers = [target_layers]
    layers = library_resolve(model, target_layers)
    names = {id(module): name or "<model>" for name, module in model.named_modules()}
    labels = [entry if isinstance(entry, str) else names[id(layer)]
              for entry, layer in zip(target_layers, layers)]
    if reshape_transform is not None and not callable(reshape_transform):
        raise TypeError(f"reshape_transform must be callable or None, "
                        f"got {given(reshape_transform)}")
    return ChosenLayers(layers, labels, reshape_transform, None)


def resolve_target_layers(model: torch.nn.Module, target_layers: TargetLayers,
                          reshape_transform: Reshape
                          ) -> tuple[list[torch.nn.Module], list[str], Reshape]:
    """The target modules, their names in the model and the reshape
    transform (:func:`find_target_layers`), for the Python API: ValueError
    / TypeError that name ``target_layers``."""
    try:
        chosen = find_target_layers(model, target_layers, reshape_transform)
    except LayersNotFound as error:
        raise ValueError(f"target_layers=None: {error}; pass target_layers=[...] (modules of "
                         "the model or layer paths such as 'layer4[-1]')") from None
    return chosen.layers, chosen.names, chosen.reshape_transform


def choose_target_layers(model: torch.nn.Module, names: Sequence[str] | None
                         ) -> tuple[list[torch.nn.Module], list[str], Reshape, str | None]:
    """``--target-layer`` paths (with the reshape transform of the model
    family's layout), or the layers the library finds: (layers, names,
    reshape transform, "table" / "probe" / None for given ones).
    UsageError when neither works."""
    try:
        chosen = find_target_layers(model, list(names) if names else None)
        reshape = family_reshape(model) if names else chosen.reshape_transform
    except LayersNotFound as error:
        raise UsageError(f"{one_line(str(error))}; name one with --target-layer (see docs/target_layers.md, "
                         "'Choosing the target layer')") from None
    except LayerError as error:
        if error.layer is None:
            raise UsageError(error.reason) from None
        raise UsageError(f"--target-layer {error.layer!r}: {error.reason}") from None
    except (ValueError, TypeError) as error:
        raise UsageError(f"--target-layer: {one_line(str(error))}") from None
    return chosen.layers, chosen.names, reshape, chosen.source
