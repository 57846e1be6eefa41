"""Finding the target layers of a model by itself.

``find_target_layers(model)`` answers "which layer should I explain, and
how are its outputs laid out?":

1. **By table** for the families the library knows
   (:data:`pytorch_grad_cam.models.families.DEFAULT_LAYERS`, by class
   name: the torchvision classifiers, timm's ViT/DeiT/Swin, the bundled
   EfficientNet-Lite0, ...).
2. **By probing** any other model (``models.probe``): one forward pass of
   one image (the model's own input size where it says it, else 224 x
   224) with hooks on every module, and one backward pass of its top
   score. The chosen layer is the *last* layer, in the order the forward
   pass finishes them, whose output is a spatial map (B x C x H x W, B x
   H x W x C after a ``LayerNorm``/``Linear``, or B x tokens x C with 0
   to 8 prefix tokens before a square grid of patch tokens:
   ``models.tokens.output_layout``) that the score reaches at two
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
error that says so and what to pass instead; a ``torch.compile``d model
is searched through its original module (``models.compiled``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.models.compiled import check_hookable, check_not_torchscript, unwrap_compiled
from pytorch_grad_cam.models.families import default_layers_row, reshape_transform_for
from pytorch_grad_cam.models.paths import LayerError, resolve_layers
from pytorch_grad_cam.models.probe import Probe, ProbeFailure, Seen, probe, probe_input_size
from pytorch_grad_cam.models.tokens import ChannelsLast, TokenGrid, output_layout, stated_prefix_tokens
from pytorch_grad_cam.scoring import model_device, select_output

__all__ = ["FoundLayers", "TokenGrid", "ChannelsLast", "find_target_layers", "locate_layers",
           "check_hookable", "check_not_torchscript", "unwrap_compiled"]

_EMBEDDING_NAMES = ("patch_embed", "conv_proj", "embeddings", "patch_embedding", "stem")


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

    layers: list[torch.nn.Module]
    names: list[str]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None
    source: str
    candidates: tuple[tuple[str, tuple[int, ...], bool], ...] = ()


def _top_score(output_selector: Callable | None) -> Callable[[Any], torch.Tensor]:
    """The probe's score: the first image's top score of the model's output."""

    def score(output: Any) -> torch.Tensor:
        scores = select_output(output, output_selector)
        if not isinstance(scores, torch.Tensor) or scores.dim() < 2:
            raise ValueError("cannot find target layers by probing: the model's output "
                             "is not a B x classes score tensor; pass target_layers=[...]")
        flat = scores.reshape(scores.shape[0], -1)
        return flat[0, flat[0].argmax()]

    return score


def _probe(model: torch.nn.Module, output_selector: Callable | None) -> Probe:
    """The probe (``models.probe.probe``) of a model the table does not
    know: one forward pass of a random image of the model's input size
    with hooks on every module, and the gradient of the top score with
    respect to every output."""
    height, width = probe_input_size(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, height, width, generator=generator).to(model_device(model))
    modules = [(name, module) for name, module in model.named_modules() if name]
    try:
        return probe(model, modules, x, score=_top_score(output_selector))
    except ProbeFailure as failure:
        error = failure.error
        raise ValueError(
            f"cannot find target layers by probing: the model fails on one "
            f"{height} x {width} image ({type(error).__name__}: {error}); pass "
            "target_layers=[...] (and reshape_transform=...) yourself") from error


def _inside_attention(name: str) -> bool:
    """A layer inside an attention module (its query/key/value projections):
    the score reaches the keys and values of every token, but the layer to
    explain is the norm before the attention, which feeds all three."""
    return any("attn" in part.lower() or "attention" in part.lower()
               for part in name.split(".")[:-1])


def _reaches(grad: torch.Tensor | None, output: torch.Tensor,
             transform: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """The score's gradient is non-zero at two positions or more."""
    if grad is None:
        return False
    maps = transform(grad) if transform is not None else grad
    if maps.dim() != 4:
        return False
    positions = (maps[0].abs().sum(dim=0) > 0).sum()
    return int(positions) >= 2


def _describe_candidates(candidates: Sequence[tuple[str, tuple[int, ...], bool]]) -> str:
    lines = [f"  {name}: output {tuple(shape)}{'' if reached else ' (the score does not reach it)'}"
             for name, shape, reached in candidates[-12:]]
    return "\n".join(lines) or "  (none)"


def locate_layers(model: torch.nn.Module, output_selector: Callable | None = None,
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
    result = _probe(model, output_selector)
    # the modules whose last call returned a tensor; outputs that a later
    # in-place operation overwrote are not what the module returned (a
    # convolution followed by an in-place ReLU)
    records = [(index, r) for index, r in result.in_order()
               if isinstance(r.output, torch.Tensor) and r.output._version == r.version]
    groups: dict[tuple[int, int], list[Seen]] = {}
    for _, record in records:  # the modules that returned the same tensor
        groups.setdefault((record.output.data_ptr(), record.version), []).append(record)
    num_prefix_tokens, input_size = stated_prefix_tokens(model), probe_input_size(model)
    candidates: list[tuple[str, tuple[int, ...], bool]] = []
    best: tuple[Seen, Callable[[torch.Tensor], torch.Tensor] | None] | None = None
    ambiguous: tuple[Seen, Any] | None = None
    for index, record in records:
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
        layout = output_layout(record.output.shape, record.module, num_prefix_tokens,
                               input_size)
        if layout is None:
            continue
        transform, alternatives = layout
        shape = tuple(record.output.shape)
        grad = result.gradients.get(index)
        if alternatives is not None:
            reached = grad is not None
            candidates.append((record.name, shape, reached))
            if reached:
                ambiguous, best = (record, alternatives), None
            continue
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


def find_target_layers(model: torch.nn.Module, output_selector: Callable | None = None
                       ) -> tuple[list[torch.nn.Module],
                                  Callable[[torch.Tensor], torch.Tensor] | None]:
    """``(target_layers, reshape_transform)`` for ``model``: what a CAM
    method uses when it is given no ``target_layers``.

    Example::

        layers, reshape = find_target_layers(torchvision.models.resnet50())
        # ([Bottleneck(...)], None): layer4[-1]
    """
    found = locate_layers(model, output_selector)
    return found.layers, found.reshape_transform
