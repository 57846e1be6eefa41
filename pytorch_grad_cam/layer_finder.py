"""Finding the target layers of a model by itself.

``find_target_layers(model)`` answers "which layer should I explain, and
how are its outputs laid out?":

1. **By table** for the families the library knows
   (:data:`pytorch_grad_cam.layers.DEFAULT_LAYERS`, by class name: the
   torchvision classifiers, timm's ViT/DeiT/Swin, the bundled
   EfficientNet-Lite0, ...).
2. **By probing** any other model: one forward pass of one image (the
   model's own input size where it says it, else 224 x 224) with hooks on
   every module, and one backward pass of its top score. The chosen layer
   is the *last* layer, in the order the forward pass finishes them, whose
   output is a spatial map (B x C x H x W, B x H x W x C after a
   ``LayerNorm``/``Linear``, or B x tokens x C with 0 to 8 prefix tokens
   before a square grid of patch tokens) that the score reaches at two
   positions or more. So it never picks a layer the score cannot reach
   (the output of a ViT's last block, whose gradient reaches the class
   token only), the patch embedding (an earlier layer than any block), a
   pooling layer, a layer whose output a later in-place operation
   overwrote, or the classifier (no spatial map). Layers inside attention
   modules (query, key and value projections) are passed over for the norm
   that feeds them.

Where no layer qualifies, or a token layout is ambiguous, a ``ValueError``
lists the candidate layers with their output shapes.

Compiled or traced models (TorchScript) cannot be hooked: they get an
error that says so and what to pass instead (:func:`check_not_torchscript`,
which ``BaseCAM`` also runs on the target layers it is given).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from pytorch_grad_cam.layers import (LayerError, default_layers_row, reshape_transform_for,
                                     resolve_layers)
from pytorch_grad_cam.scoring import describe, model_device, select_output

__all__ = ["FoundLayers", "TokenGrid", "ChannelsLast", "find_target_layers", "locate_layers",
           "check_hookable", "check_not_torchscript"]

_MAX_PREFIX_TOKENS = 8
_EMBEDDING_NAMES = ("patch_embed", "conv_proj", "embeddings", "patch_embedding", "stem")


class TokenGrid:
    """reshape_transform for B x tokens x C outputs: drops the first
    ``prefix`` tokens (class, distillation, register tokens) and lays the
    rest out as a square grid, B x C x side x side."""

    def __init__(self, prefix: int) -> None:
        self.prefix = int(prefix)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4:
            return tensor
        patches = tensor[:, self.prefix:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patch tokens (after {self.prefix} prefix "
                             "tokens) are not a square grid; pass reshape_transform= with the "
                             "grid of your input size")
        return patches.reshape(tensor.shape[0], side, side, tensor.shape[2]).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return f"TokenGrid(prefix={self.prefix})"


class ChannelsLast:
    """reshape_transform for B x H x W x C outputs (Swin, timm ConvNeXt
    norms): B x C x H x W."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return "ChannelsLast()"


@dataclass(frozen=True)
class FoundLayers:
    """What :func:`locate_layers` chose and why.

    Attributes:
        layers: the target layers (modules of the model).
        names: their paths in the model (``named_modules`` names).
        reshape_transform: the transform their outputs need (None for
            B x C x H x W maps).
        source: ``"table"`` or ``"probe"``.
        candidates: with the probe, every layer it considered, as
            (name, output shape, reached) in the order the forward pass
            finished them.
    """

    layers: List[torch.nn.Module]
    names: List[str]
    reshape_transform: Optional[Callable[[torch.Tensor], torch.Tensor]]
    source: str
    candidates: Tuple[Tuple[str, Tuple[int, ...], bool], ...] = ()


def check_not_torchscript(model: Any, target_layers: Any = ()) -> None:
    """TypeError when ``model`` is TorchScript (``torch.jit.script`` or
    ``torch.jit.trace``), when one of ``target_layers`` is or (a layer
    path) lies in a TorchScript part of the model, or when one is not a
    module of a model that has TorchScript parts (the layers of a scripted
    ``model.layer4`` are not the modules that run): TorchScript runs
    without Python, so the hooks that record a layer never fire. Checked
    before the layer paths are resolved and the layers looked up."""
    subject = _torchscript_subject(model, target_layers)
    if subject is not None:
        raise TypeError(
            f"{subject}, whose layers cannot be hooked, so no CAM can record them; pass the "
            "original torch.nn.Module (before torch.jit.script/trace), for example by "
            "rebuilding it and loading its state_dict")


def _torchscript_subject(model: Any, target_layers: Any) -> Optional[str]:
    if isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        return f"the model is a TorchScript {type(model).__name__}"
    if not isinstance(model, torch.nn.Module) or not isinstance(target_layers, (list, tuple)):
        return None
    scripted = [(name, module) for name, module in model.named_modules()
                if isinstance(module, torch.jit.ScriptModule)]
    module_ids = {id(module) for module in model.modules()} if scripted else set()
    for index, layer in enumerate(target_layers):
        if isinstance(layer, torch.jit.ScriptModule):
            return (f"target_layers[{index}] ({describe(layer)}) is a TorchScript "
                    f"{type(layer).__name__}")
        if scripted and isinstance(layer, str):  # "layer4[-1]" lies in model.layer4
            path = layer.replace("[", ".").replace("]", "")
            for name, module in scripted:
                if path == name or path.startswith(name + "."):
                    return (f"target_layers[{index}] ({layer!r}) lies in model.{name}, a "
                            f"TorchScript {type(module).__name__}")
        if scripted and isinstance(layer, torch.nn.Module) and id(layer) not in module_ids:
            name, module = scripted[0]
            return (f"target_layers[{index}] ({describe(layer)}) is not a module of the model "
                    f"as it runs: model.{name} is a TorchScript {type(module).__name__}")
    return None


def check_hookable(model: Any) -> None:
    """TypeError for models whose modules cannot take forward hooks."""
    check_not_torchscript(model)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def unwrap_compiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``torch.compile``d model (``OptimizedModule``):
    its layers are the original module's, and the CAM runs it eagerly."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def _stated_input_size(module: torch.nn.Module) -> Optional[Tuple[int, int]]:
    config = getattr(module, "config", None)
    pretrained_cfg = getattr(module, "pretrained_cfg", None)
    candidates: List[Any] = [
        getattr(module, "image_size", None),                                 # torchvision ViT
        getattr(getattr(module, "patch_embed", None), "img_size", None),     # timm
        getattr(config, "image_size", None),                                 # Hugging Face
        getattr(getattr(config, "vision_config", None), "image_size", None),  # CLIP
        pretrained_cfg.get("input_size") if isinstance(pretrained_cfg, dict) else None,  # timm
    ]
    for value in candidates:
        if isinstance(value, int):
            return value, value
        if isinstance(value, (tuple, list)) and len(value) >= 2:
            return int(value[-2]), int(value[-1])
    return None


def _input_size(model: torch.nn.Module) -> Tuple[int, int]:
    """The input size the model (or, for a wrapper, the first of its
    modules that states one) says it takes, else 224 x 224."""
    for module in model.modules():
        size = _stated_input_size(module)
        if size is not None:
            return size
    return 224, 224


def _prefix_tokens(model: torch.nn.Module, tokens: int) -> List[int]:
    """The prefix-token counts that leave a square grid of patch tokens;
    the model's own count (timm ``num_prefix_tokens``) first if it has one."""
    own = getattr(model, "num_prefix_tokens", None)
    if isinstance(own, int) and own >= 0:
        side = math.isqrt(max(tokens - own, 0))
        return [own] if tokens - own > 1 and side * side == tokens - own else []
    found = []
    for prefix in range(_MAX_PREFIX_TOKENS + 1):
        rest = tokens - prefix
        side = math.isqrt(max(rest, 0))
        if rest > 1 and side * side == rest:
            found.append(prefix)
    return found


@dataclass
class _Seen:
    name: str
    module: torch.nn.Module
    output: torch.Tensor
    version: int
    calls: int
    order: int


def _probe(model: torch.nn.Module, output_selector: Optional[Callable]
           ) -> Tuple[List[_Seen], Dict[int, Optional[torch.Tensor]]]:
    """One forward pass with hooks on every module: the tensors each
    module returned (its last call), and the top score."""
    from pytorch_grad_cam.base_cam import model_state_guard

    names = {id(module): name for name, module in model.named_modules() if name}
    seen: Dict[int, _Seen] = {}
    counter = [0]

    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        counter[0] += 1
        previous = seen.get(id(module))
        calls = previous.calls + 1 if previous is not None else 1
        if isinstance(output, torch.Tensor):
            seen[id(module)] = _Seen(names[id(module)], module, output, output._version, calls,
                                     counter[0])
        elif previous is not None:
            previous.calls = calls

    height, width = _input_size(model)
    device = model_device(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, height, width, generator=generator).to(device)
    handles = [module.register_forward_hook(hook) for module in model.modules()
               if id(module) in names]
    try:
        with model_state_guard(model), torch.inference_mode(False), torch.enable_grad():
            x.requires_grad_(True)
            try:
                output = model(x)
            except Exception as error:
                raise ValueError(
                    f"cannot find target layers by probing: the model fails on one "
                    f"{height} x {width} image ({type(error).__name__}: {error}); pass "
                    "target_layers=[...] (and reshape_transform=...) yourself") from error
            scores = select_output(output, output_selector)
            if not isinstance(scores, torch.Tensor) or scores.dim() < 2:
                raise ValueError("cannot find target layers by probing: the model's output "
                                 "is not a B x classes score tensor; pass target_layers=[...]")
            flat = scores.reshape(scores.shape[0], -1)
            score = flat[0, flat[0].argmax()]
            records = sorted(seen.values(), key=lambda r: r.order)
            usable = [r for r in records if r.output.requires_grad
                      and r.output._version == r.version]  # not overwritten in place later
            grads = torch.autograd.grad(score, [r.output for r in usable], allow_unused=True,
                                        retain_graph=False) if usable else ()
    finally:
        for handle in handles:
            handle.remove()
    grad_of: Dict[int, Optional[torch.Tensor]] = {id(r): g for r, g in zip(usable, grads)}
    for record in records:
        record.output = record.output.detach()
    return records, grad_of


def _layout(record: _Seen, model: torch.nn.Module
            ) -> Optional[Tuple[Optional[Callable[[torch.Tensor], torch.Tensor]], Any]]:
    """(reshape_transform, ambiguity) for an output that is a spatial map,
    None for one that is not."""
    shape = tuple(record.output.shape)
    if len(shape) == 4:
        last_dim_op = isinstance(record.module, (torch.nn.LayerNorm, torch.nn.Linear))
        features = getattr(record.module, "normalized_shape", None) or \
            (getattr(record.module, "out_features", None),)
        if last_dim_op and tuple(features)[-1] == shape[-1] and shape[-1] != shape[1]:
            return ChannelsLast(), None
        return None, None
    if len(shape) == 3:
        prefixes = _prefix_tokens(model, shape[1])
        if len(prefixes) > 1:
            # patches tile the image: keep the grids whose side divides the input's
            height, width = _input_size(model)
            tiling = [p for p in prefixes
                      if height % math.isqrt(shape[1] - p) == 0
                      and width % math.isqrt(shape[1] - p) == 0]
            prefixes = tiling or prefixes
        if len(prefixes) == 1:
            return TokenGrid(prefixes[0]), None
        if prefixes:
            return None, prefixes  # ambiguous
    return None


def _inside_attention(name: str) -> bool:
    """A layer inside an attention module (its query/key/value projections):
    the score reaches the keys and values of every token, but the layer to
    explain is the norm before the attention, which feeds all three."""
    return any("attn" in part.lower() or "attention" in part.lower()
               for part in name.split(".")[:-1])


def _reaches(grad: Optional[torch.Tensor], output: torch.Tensor,
             transform: Optional[Callable[[torch.Tensor], torch.Tensor]]) -> bool:
    """The score's gradient is non-zero at two positions or more."""
    if grad is None:
        return False
    maps = transform(grad) if transform is not None else grad
    if maps.dim() != 4:
        return False
    positions = (maps[0].abs().sum(dim=0) > 0).sum()
    return int(positions) >= 2


def _describe_candidates(candidates: Sequence[Tuple[str, Tuple[int, ...], bool]]) -> str:
    lines = [f"  {name}: output {tuple(shape)}{'' if reached else ' (the score does not reach it)'}"
             for name, shape, reached in candidates[-12:]]
    return "\n".join(lines) or "  (none)"


def locate_layers(model: torch.nn.Module, output_selector: Optional[Callable] = None,
                  use_table: bool = True) -> FoundLayers:
    """The target layers of ``model`` by table (unless ``use_table`` is
    False) or by probing (see the module's docstring), with how they were
    found."""
    check_hookable(model)
    model = unwrap_compiled(model)
    row = None
    if use_table:
        try:
            row = default_layers_row(model)
        except LayerError:
            row = None
    if row is not None:
        layers = resolve_layers(model, row.paths)
        return FoundLayers(layers, list(row.paths), reshape_transform_for(model, row.layout),
                           "table")
    records, grad_of = _probe(model, output_selector)
    # outputs that a later in-place operation overwrote are not what the
    # module returned (a convolution followed by an in-place ReLU)
    records = [r for r in records if r.output._version == r.version]
    groups: Dict[Tuple[int, int], List[_Seen]] = {}
    for record in records:  # the modules that returned the same tensor
        groups.setdefault((record.output.data_ptr(), record.version), []).append(record)
    candidates: List[Tuple[str, Tuple[int, ...], bool]] = []
    best: Optional[Tuple[_Seen, Optional[Callable[[torch.Tensor], torch.Tensor]]]] = None
    ambiguous: Optional[Tuple[_Seen, Any]] = None
    for record in records:
        group = groups[(record.output.data_ptr(), record.version)]
        # the first module of its group that ran once stands for it
        chosen = next((r for r in group if r.calls == 1), None)
        if chosen is not record:
            continue
        if any("pool" in type(r.module).__name__.lower() for r in group):
            continue
        if any(part in record.name.split(".")[-1] for part in _EMBEDDING_NAMES):
            continue
        if _inside_attention(record.name):
            continue
        layout = _layout(record, model)
        if layout is None:
            continue
        transform, alternatives = layout
        shape = tuple(record.output.shape)
        if alternatives is not None:
            reached = id(record) in grad_of and grad_of[id(record)] is not None
            candidates.append((record.name, shape, reached))
            if reached:
                ambiguous, best = (record, alternatives), None
            continue
        grad = grad_of.get(id(record))
        reached = _reaches(grad, record.output, transform)
        candidates.append((record.name, shape, reached))
        if reached:
            best, ambiguous = (record, transform), None
    if ambiguous is not None:
        record, prefixes = ambiguous
        raise ValueError(
            f"cannot decide the token layout of {record.name} (output "
            f"{tuple(record.output.shape)}: {', '.join(map(str, prefixes))} prefix tokens all "
            "leave a square grid); pass target_layers=[...] and reshape_transform=... "
            "(for example reshape_transforms.vit_reshape_transform). Candidates:\n"
            + _describe_candidates(candidates))
    if best is None:
        raise ValueError("cannot find a target layer: no layer's output is a spatial map that "
                         "the score reaches at two positions or more; pass "
                         "target_layers=[...]. Candidates:\n" + _describe_candidates(candidates))
    record, transform = best
    return FoundLayers([record.module], [record.name], transform, "probe", tuple(candidates))


def find_target_layers(model: torch.nn.Module, output_selector: Optional[Callable] = None
                       ) -> Tuple[List[torch.nn.Module],
                                  Optional[Callable[[torch.Tensor], torch.Tensor]]]:
    """``(target_layers, reshape_transform)`` for ``model``: what a CAM
    method uses when it is given no ``target_layers``.

    Example::

        layers, reshape = find_target_layers(torchvision.models.resnet50())
        # ([Bottleneck(...)], None): layer4[-1]
    """
    found = locate_layers(model, output_selector)
    return found.layers, found.reshape_transform
