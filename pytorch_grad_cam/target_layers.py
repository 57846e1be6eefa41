"""The target layers of a CAM: given as modules or layer paths, checked,
or found for the model (``layer_finder.locate_layers``); their outputs as
B x C x H x W; why a map came out empty, and a better layer to suggest."""
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.activations_and_gradients import describe_output
from pytorch_grad_cam.call_context import CallContext
from pytorch_grad_cam.layer_finder import locate_layers
from pytorch_grad_cam.models.compiled import check_not_torchscript
from pytorch_grad_cam.models.paths import resolve_layer
from pytorch_grad_cam.scoring import describe, given, score_ignores_input

__all__ = ["resolve_target_layers", "check_target_layers", "choose_target_layers",
           "layer_output_as_bchw", "earlier_layer_hint", "empty_map_reason"]


def resolve_target_layers(model: torch.nn.Module, target_layers: Any) -> list[torch.nn.Module]:
    """``target_layers`` as modules of ``model``: each entry a module of
    the model or a layer path (``"layer4[-1]"``, resolved by
    ``models.paths.resolve_layer``, with close matches on a typo); checked by
    :func:`check_target_layers`; a TorchScript model or part is refused
    first (``models.compiled.check_not_torchscript``)."""
    check_not_torchscript(model, target_layers)
    if isinstance(target_layers, (list, tuple)):
        target_layers = [resolve_layer(model, layer) if isinstance(layer, str) else layer
                         for layer in target_layers]
    check_target_layers(model, target_layers)
    return list(target_layers)


def check_target_layers(model: torch.nn.Module, target_layers: Any) -> None:
    """Raise TypeError/ValueError, naming the entry and the value given,
    unless ``target_layers`` is a non-empty list of modules of ``model``."""
    if not isinstance(target_layers, (list, tuple)):
        hint = (f"; for a layer path write target_layers=[{target_layers!r}]"
                if isinstance(target_layers, str) else "")
        raise TypeError(f"target_layers must be a list of torch.nn.Module (or layer paths), "
                        f"got {given(target_layers)}{hint}")
    if len(target_layers) == 0:
        raise ValueError(f"target_layers is empty ({target_layers!r}); give at least one "
                         "module of the model, for example target_layers=[model.layer4[-1]]")
    module_ids = {id(m) for m in model.modules()}
    for index, layer in enumerate(target_layers):
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"target_layers[{index}] must be a torch.nn.Module or a layer path "
                            f"such as 'layer4[-1]', got {given(layer)}")
        if id(layer) not in module_ids:
            raise ValueError(f"target_layers[{index}] ({describe(layer)}) is not "
                             "a module of the model; take it from the model itself, "
                             "for example model.layer4[-1]")


def choose_target_layers(model: torch.nn.Module, target_layers: Any,
                         reshape_transform: Callable | None,
                         output_selector: Callable | None, find: bool
                         ) -> tuple[list[torch.nn.Module], str, Callable | None]:
    """(target layers, how they were chosen, reshape_transform) of a CAM:
    the given ones resolved and checked ("given"), or, when none are given
    and ``find`` is set, those ``layer_finder.locate_layers`` finds for the
    model ("table" or "probe") with the reshape transform that goes with
    them unless one is given (an explicit reshape_transform always wins)."""
    if target_layers is not None:
        return resolve_target_layers(model, target_layers), "given", reshape_transform
    if not find:
        return [], "given", reshape_transform
    found = locate_layers(model, output_selector)
    if reshape_transform is None:
        reshape_transform = found.reshape_transform
    return list(found.layers), found.source, reshape_transform


#: the names of the norm before a transformer block's attention, by family
_BLOCK_NORMS = ("ln_1", "norm1", "layernorm_before", "layer_norm1")


def earlier_layer_hint(model: torch.nn.Module,
                       target_layers: Sequence[torch.nn.Module] = ()) -> str:
    """An earlier layer than ``target_layers``, named as this model names
    it: the norm before the attention of the last transformer block that
    runs before the target layers end (a norm inside a target block
    counts), and is not a target layer itself (for the last block's norm,
    the ViTs' default target layer: the previous block's); "an earlier
    layer" when the model has no such norm."""
    modules = list(model.named_modules())
    targets = {id(layer) for layer in target_layers}
    end = len(modules)
    positions = [i for i, (_, module) in enumerate(modules) if id(module) in targets]
    if positions:  # after the last target layer and the modules inside it
        inside = {id(module) for module in modules[max(positions)][1].modules()}
        end = max(positions) + 1
        while end < len(modules) and id(modules[end][1]) in inside:
            end += 1
    names = [name for name, module in modules[:end]
             if name.rsplit(".", 1)[-1] in _BLOCK_NORMS and id(module) not in targets]
    if names:
        return f"an earlier layer (for this model: {names[-1]})"
    return "an earlier layer"


#: the most images with an empty map whose scores ``empty_map_reason`` checks
_DIAGNOSED = 8


def empty_map_reason(model: torch.nn.Module, target_layers: Sequence[torch.nn.Module],
                     images: list[int], context: CallContext | None,
                     score: Callable[[list[Callable], Any], torch.Tensor]) -> str:
    """The warning for all-zero maps of ``images`` of a layer CAM: in a
    call (``context``) whose target scores of those images do not depend on
    the input (``scoring.score_ignores_input``, three more forward passes;
    ``score(targets, model output)`` gives them), that, and no layer to
    try; else why a layer's map can be empty and :func:`earlier_layer_hint`
    (never a target layer)."""
    if context is not None and context.input_tensor is not None and context.targets:
        # a small batch as it is; of a larger one (or of many targets per
        # image) only a few of the images with an empty map: a diagnostic
        # costs no more than a small batch
        rows = len(context.targets)
        chosen = (list(range(rows)) if rows <= _DIAGNOSED
                  else [i for i in images if 0 <= i < rows][:_DIAGNOSED])
        positions = [chosen.index(i) for i in images if i in chosen]
        targets = [context.targets[i] for i in chosen]
        try:
            ignores = bool(positions) and score_ignores_input(
                model, context.input_tensor[chosen], lambda output: score(targets, output),
                positions)
        except Exception:  # a diagnostic only: a model that cannot take the
            ignores = False  # negated or all-zero input gets the layer hint
        if ignores:
            return (f"the class activation map is all zeros for image(s) {images}: the target "
                    "score does not depend on the input (it is the same for other inputs, as "
                    "with a classifier whose weights are all zero, such as torchvision's "
                    "VisionTransformer head without pretrained weights); load trained weights "
                    "or explain another target")
    return (f"the class activation map is all zeros for image(s) {images}: no location of "
            "the target layer has a positive weighted activation, or all have the same "
            "value (for example zero gradients, as at a Vision Transformer's last block). "
            f"Try {earlier_layer_hint(model, target_layers)}, another target or another method")


def layer_output_as_bchw(output: Any, reshape_transform: Callable | None,
                         target_layers: Sequence[torch.nn.Module], index: int, what: str,
                         batch: int, spatial: int) -> torch.Tensor:
    """The recorded output of ``target_layers[index]``, or its gradients
    (``what``), as B x C x H x W (B x C x D x H x W for volumes): through
    ``reshape_transform`` when there is one; a ValueError that says which
    transform to use when the layout is another."""
    if reshape_transform is not None:
        output = reshape_transform(output)
    elif not isinstance(output, torch.Tensor):
        raise ValueError(
            f"target_layers[{index}] ({describe(target_layers[index])}) returns "
            f"{describe_output(output)}, not a tensor; pass a reshape_transform that turns "
            "it into B x C x H x W, for example from pytorch_grad_cam.utils."
            "reshape_transforms: select_output_key(key) for one entry, combine_levels() for "
            "all of them resized to one size and concatenated, or "
            "fasterrcnn_reshape_transform for the backbone of torchvision's Faster R-CNN")
    if not isinstance(output, torch.Tensor) or output.dim() != 2 + spatial \
            or output.shape[0] != batch:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        expected = "B x C x H x W" if spatial == 2 else "B x C x D x H x W"
        hint = (f"check reshape_transform ({describe(reshape_transform)}), "
                "which must return that layout" if reshape_transform is not None else
                "pass a reshape_transform that turns it into that layout (for token "
                "outputs of Vision Transformers: reshape_transforms.vit_reshape_transform)")
        raise ValueError(f"the {what} of target_layers[{index}] have shape {shape}, "
                         f"expected {expected} with B={batch}; {hint}")
    return output
