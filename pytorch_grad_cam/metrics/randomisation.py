"""What the randomisation sanity checks (:mod:`pytorch_grad_cam.metrics.sanity`)
share: a deep copy of the user's model whose layers are re-initialised,
seeded, one layer or a cascade of layers at a time, and a CAM method run on
the model or on that copy with the same target layers, found in the copy
by their paths in the model.

The user's model is never changed: its parameters, buffers, modes, hooks
and ``requires_grad`` flags stay as they are (the copy is made by
``copy.deepcopy`` and only the copy is re-initialised), and the global
random generators come back as they were (the re-initialisation draws from
them inside ``torch.random.fork_rng``).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.messages import describe, given
from pytorch_grad_cam.models.paths import resolve_layer
from pytorch_grad_cam.registry import get_method

__all__ = ["CamRunner", "cascading", "independent", "layer_paths", "model_copy",
           "randomisable_layers", "resolve_method"]


def resolve_method(method: Any) -> type:
    """A CAM class (a BaseCAM subclass) or a name of the registry -> the
    class."""
    if isinstance(method, str):
        try:
            return get_method(method).cls
        except KeyError as error:
            raise ValueError(f"method: {error.args[0]}") from None
    if isinstance(method, type) and issubclass(method, BaseCAM):
        return method
    raise TypeError(f"method must be a BaseCAM subclass (e.g. GradCAM) or the name of a "
                    f"registered method (e.g. 'gradcam'), got {given(method)}")


def randomisable_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The layers the checks re-initialise, as (path, module), in the
    order of ``model.named_modules()`` (the order the model defines them):
    every module with a ``reset_parameters`` method and parameters or
    buffers of its own, as Quantus's ``get_random_layer_generator``
    chooses them (convolutions, linear layers, normalisation layers, ...).
    The root module itself is left out."""
    layers = []
    for name, module in model.named_modules():
        if not name or not callable(getattr(module, "reset_parameters", None)):
            continue
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if own:
            layers.append((name, module))
    if not layers:
        raise ValueError(f"model ({type(model).__name__}) has no layer with parameters and a "
                         "reset_parameters() method, so none can be re-initialised")
    return layers


def layer_paths(model: torch.nn.Module, target_layers: Sequence[Any] | None) -> list[str] | None:
    """The path in ``model`` of every target layer (a module of ``model``
    or a layer path such as ``"layer4[-1]"``, checked by
    :func:`~pytorch_grad_cam.models.paths.resolve_layer`); None stays None
    (the method chooses its layers)."""
    if target_layers is None:
        return None
    if isinstance(target_layers, (torch.nn.Module, str)) or \
            not isinstance(target_layers, (list, tuple)):
        raise TypeError(f"target_layers must be a list of modules of the model or of layer "
                        f"paths, got {given(target_layers)}")
    names = {id(module): name for name, module in model.named_modules()}
    paths = []
    for index, layer in enumerate(target_layers):
        if isinstance(layer, str):
            resolve_layer(model, layer)  # a LayerError (ValueError) naming the path
            paths.append(layer)
        elif isinstance(layer, torch.nn.Module) and id(layer) in names:
            paths.append(names[id(layer)])
        else:
            raise ValueError(f"target_layers[{index}] ({describe(layer)}) is not a module of "
                             "the model nor a layer path; give modules of the model")
    return paths


def model_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` without its parameters' ``.grad``."""
    try:
        duplicate = copy.deepcopy(model)
    except Exception as error:
        raise TypeError(f"model ({type(model).__name__}) cannot be deep-copied ({error}); the "
                        "randomisation checks re-initialise a copy, never the model") from error
    for parameter in duplicate.parameters():
        parameter.grad = None
    return duplicate


def _reinitialise(module: torch.nn.Module, seed: int) -> None:
    """``module.reset_parameters()`` drawing from the global generators
    seeded with ``seed``, which are put back afterwards."""
    devices = sorted({t.device.index or 0 for t in module.parameters(recurse=False)
                      if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        reset: Callable[[], None] = getattr(module, "reset_parameters")  # noqa: B009
        reset()


def _saved(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone()
            for name, tensor in list(module.named_parameters(recurse=False))
            + list(module.named_buffers(recurse=False))}


def _restore(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, tensor in list(module.named_parameters(recurse=False)) \
                + list(module.named_buffers(recurse=False)):
            tensor.copy_(state[name])


def cascading(duplicate: torch.nn.Module, seed: int) -> Iterator[str]:
    """Re-initialise the layers of ``duplicate`` (:func:`randomisable_layers`)
    from the top (the last defined, the output) down, one more at each
    step, yielding the path of the layer just re-initialised. Layer i (in
    definition order) draws from seed ``seed + i``, the same in
    :func:`independent`."""
    layers = randomisable_layers(duplicate)
    for index in reversed(range(len(layers))):
        name, module = layers[index]
        _reinitialise(module, seed + index)
        yield name


def independent(duplicate: torch.nn.Module, seed: int) -> Iterator[str]:
    """Re-initialise one layer of ``duplicate`` at a time, top first, the
    others as trained (each layer is put back before the next one is
    re-initialised), yielding the path of the layer re-initialised."""
    layers = randomisable_layers(duplicate)
    for index in reversed(range(len(layers))):
        name, module = layers[index]
        state = _saved(module)
        _reinitialise(module, seed + index)
        try:
            yield name
        finally:
            _restore(module, state)


class CamRunner:
    """A CAM method, its constructor arguments and its target layers (by
    path), run on the user's model or on a copy of it: the maps of
    ``inputs`` for ``targets`` as a float32 tensor B x H x W."""

    def __init__(self, method: Any, model: torch.nn.Module, target_layers: Sequence[Any] | None,
                 reshape_transform: Callable | None = None,
                 method_kwargs: dict[str, Any] | None = None) -> None:
        self.method = resolve_method(method)
        if method_kwargs is not None and not isinstance(method_kwargs, dict):
            raise TypeError(f"method_kwargs must be a dict of constructor arguments or None, "
                            f"got {given(method_kwargs)}")
        self.kwargs = dict(method_kwargs or {})
        clash = sorted({"model", "target_layers", "reshape_transform"} & set(self.kwargs))
        if clash:
            raise ValueError(f"method_kwargs must not hold {', '.join(clash)}; they are "
                             "arguments of the check itself")
        self.kwargs.setdefault("progress", False)
        self.paths = layer_paths(model, target_layers)
        self.reshape_transform = reshape_transform

    def maps(self, model: torch.nn.Module, inputs: torch.Tensor,
             targets: Sequence[Callable] | None, randomised: bool = False) -> torch.Tensor:
        """The method's maps of ``inputs`` on ``model`` (the user's or a
        copy), its target layers looked up in ``model`` by path.

        ``randomised``: ``model`` is a re-initialised copy. Its maps are
        often all zero, and the library's warning for an all-zero map
        (which suggests an earlier target layer for the user's model) does
        not apply to it: that CAM object does not give it. The maps of the
        user's model warn as usual; other warnings are not touched."""
        layers = None if self.paths is None else [resolve_layer(model, p) for p in self.paths]
        with self.method(model=model, target_layers=layers,
                         reshape_transform=self.reshape_transform, **self.kwargs) as cam:
            if randomised:
                cam._warned_empty = True  # the once-per-object warning, as if given already
            maps = cam(input_tensor=inputs, targets=targets)
        return torch.as_tensor(maps, dtype=torch.float32)
