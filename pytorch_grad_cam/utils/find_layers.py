"""Finding and replacing modules of a model by identity, type or predicate.

These are grad-cam 1.5.7's helpers (``pytorch_grad_cam.utils.find_layers``),
kept with their names, arguments and results, so that code written for it
runs unchanged. They walk the model's submodules depth first, in the order
the modules were registered; a module registered in two places is visited
(and found) twice, as in 1.5.7. To name a target layer by its path
(``"layer4.2"``), see :func:`pytorch_grad_cam.models.paths.resolve_layer`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = ["find_layer_predicate_recursive", "find_layer_types_recursive",
           "replace_all_layer_type_recursive", "replace_layer_recursive"]


def _check_model(model: object) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def replace_layer_recursive(model: torch.nn.Module, old_layer: torch.nn.Module,
                            new_layer: torch.nn.Module) -> bool:
    """Put ``new_layer`` where ``old_layer`` is registered (its first place,
    depth first); True when it was found, False when the model does not
    hold it (the model is then unchanged)."""
    for name, layer in list(_check_model(model)._modules.items()):
        if layer is None:
            continue
        if layer is old_layer:
            model._modules[name] = new_layer
            return True
        if replace_layer_recursive(layer, old_layer, new_layer):
            return True
    return False


def replace_all_layer_type_recursive(model: torch.nn.Module, old_layer_type: type | tuple[type, ...],
                                     new_layer: torch.nn.Module) -> None:
    """Put ``new_layer`` (one module, shared) in place of every submodule
    that is an instance of ``old_layer_type``. The submodules of a replaced
    module are searched too (they are no longer in the model, as in 1.5.7)."""
    for name, layer in list(_check_model(model)._modules.items()):
        if layer is None:
            continue
        if isinstance(layer, old_layer_type):
            model._modules[name] = new_layer
        replace_all_layer_type_recursive(layer, old_layer_type, new_layer)


def find_layer_types_recursive(model: torch.nn.Module,
                               layer_types: Iterable[type]) -> list[torch.nn.Module]:
    """Every submodule whose type is exactly one of ``layer_types`` (not a
    subclass), depth first."""
    types = tuple(layer_types)
    return find_layer_predicate_recursive(model, lambda layer: type(layer) in types)


def find_layer_predicate_recursive(model: torch.nn.Module,
                                   predicate: Callable[[torch.nn.Module], bool]
                                   ) -> list[torch.nn.Module]:
    """Every submodule (the model itself excluded) for which ``predicate``
    is true, depth first."""
    found: list[torch.nn.Module] = []
    for layer in _check_model(model)._modules.values():
        if layer is None:
            continue
        if predicate(layer):
            found.append(layer)
        found.extend(find_layer_predicate_recursive(layer, predicate))
    return found
