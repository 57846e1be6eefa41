"""What the library knows about target layers: layer paths, the default
target layer of each model family, token layouts and the layer probe.

A *layer path* names a module of a model the way Python code reaches it,
without ``model.``: ``"layer4[-1]"``, ``"features.29"``,
``"encoder.layers[-1].ln_1"``. :func:`resolve_layer` looks such a path up
attribute by attribute and index by index (nothing is evaluated) and, on a
typo, names the close matches::

    >>> resolve_layer(model, "layer4[-1]")          # a torchvision ResNet
    Bottleneck(...)
    >>> resolve_layer(model, "layr4[-1]")
    LayerError: layer path 'layr4[-1]': model has no layer 'layr4'; did you mean layer4? ...

:data:`DEFAULT_LAYERS` is the table of model families (by class name) with
their target layer path(s) and the *token layout* of those layers'
outputs: ``None`` for B x C x H x W feature maps, ``"vit"`` for a Vision
Transformer's B x tokens x C (class token first), ``"swin"`` for a Swin
Transformer's B x H x W x C, ``"fasterrcnn"`` and ``"levels"`` for the
dict of feature pyramid levels of a detection backbone (grad-cam 1.5.7's
``fasterrcnn_reshape_transform``, or ``combine_levels()`` for pyramids
without its ``'pool'`` level). :func:`default_target_layers` picks a model's
row, :func:`reshape_transform_for` turns a layout into the
``reshape_transform`` the CAM methods take, and
:func:`probe_target_layers` checks with one forward pass of a blank image
that the layers run and give maps::

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.layers import (default_target_layers, reshape_transform_for,
                                         resolve_layers)

    paths, layout = default_target_layers(model)        # (["layer4[-1]"], None)
    cam = GradCAM(model, target_layers=resolve_layers(model, paths),
                  reshape_transform=reshape_transform_for(model, layout))

Every problem is a :class:`LayerError` (a ``ValueError``) whose ``layer``
and ``reason`` let a caller (the command line) phrase it its own way.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from pytorch_grad_cam.activations_and_gradients import describe_output
from pytorch_grad_cam.scoring import describe, model_device, select_output
from pytorch_grad_cam.utils.reshape_transforms import (
    combine_levels,
    fasterrcnn_reshape_transform,
    swinT_reshape_transform,
    vit_reshape_transform,
)

__all__ = [
    "DEFAULT_LAYERS",
    "LAYOUTS",
    "FamilyLayers",
    "LayerError",
    "LayerProbe",
    "default_layers_row",
    "default_target_layers",
    "family_layout",
    "family_of",
    "family_rows",
    "probe_target_layers",
    "reshape_transform_for",
    "resolve_layer",
    "resolve_layers",
    "vit_patch_grid",
    "vit_tokens_to_maps",
]

ReshapeTransform = Callable[[Any], torch.Tensor]


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


# ------------------------------------------------------ the family table
@dataclass(frozen=True)
class FamilyLayers:
    """One row of :data:`DEFAULT_LAYERS`.

    Attributes:
        family: the model's class name (``type(model).__name__``).
        paths: the target layer path(s), explained together.
        layout: the token layout of their outputs: ``None`` (B x C x H x W
            maps), or a key of :data:`LAYOUTS` (``"vit"``, ``"swin"``,
            ``"tokens"``, ``"fasterrcnn"``, ``"levels"``).
        source: where models of this family come from (``"torchvision"``,
            ``"timm"``, ``"transformers"``, ``"open_clip"``, ``"bundled"``).
    """

    family: str
    paths: tuple[str, ...]
    layout: str | None = None
    source: str = "torchvision"


def _rows(*rows: tuple[Any, ...]) -> tuple[FamilyLayers, ...]:
    return tuple(FamilyLayers(family, (paths,) if isinstance(paths, str) else tuple(paths),
                              *rest) for family, paths, *rest in rows)


#: The default target layer(s) of each model family. A family may have
#: several rows (the same class name in torchvision and in timm): the first
#: row whose paths all exist in the model is used.
DEFAULT_LAYERS: tuple[FamilyLayers, ...] = _rows(
    ("EfficientNetLite0", "head_activation", None, "bundled"),  # utils.pretrained
    ("ResNet", "layer4[-1]"),                   # resnet*, resnext*, wide_resnet*
    ("VGG", "features[-1]"),
    ("DenseNet", "features[-1]"),
    ("MNASNet", "layers[-1]"),
    ("MobileNetV2", "features[-1]"),
    ("MobileNetV3", "features[-1]"),
    ("EfficientNet", "features[-1]"),
    ("ConvNeXt", "features[-1]"),
    ("RegNet", "trunk_output"),
    ("AlexNet", "features[-1]"),
    ("SqueezeNet", "features[-1]"),
    ("ShuffleNetV2", "conv5"),
    ("GoogLeNet", "inception5b"),
    ("Inception3", "Mixed_7c"),
    ("MaxVit", "blocks[-1]"),
    ("VisionTransformer", "encoder.layers[-1].ln_1", "vit"),
    ("VisionTransformer", "blocks[-1].norm1", "vit", "timm"),           # ViT, DeiT
    ("VisionTransformerDistilled", "blocks[-1].norm1", "vit", "timm"),  # distilled DeiT
    ("SwinTransformer", "features[-1][-1].norm1", "swin"),                # v1 and v2
    ("SwinTransformer", "layers[-1].blocks[-1].norm1", "swin", "timm"),
    # timm (the families whose class names torchvision shares come first above)
    ("ConvNeXt", "stages[-1]", None, "timm"),
    ("EfficientNet", "bn2", None, "timm"),
    ("MobileNetV3", "blocks[-1]", None, "timm"),   # timm pools before its conv_head
    ("RegNet", "s4", None, "timm"),
    ("Beit", "blocks[-1].norm1", "vit", "timm"),
    ("Eva", "blocks[-1].norm1", "vit", "timm"),
    # Hugging Face transformers (outputs are ModelOutputs with .logits); the
    # layouts of transformers 5 first, then those of 4.x
    ("ViTForImageClassification", "vit.layers[-1].layernorm_before", "tokens", "transformers"),
    ("ViTForImageClassification", "vit.encoder.layer[-1].layernorm_before", "tokens",
     "transformers"),
    ("DeiTForImageClassification", "deit.layers[-1].layernorm_before", "tokens", "transformers"),
    ("DeiTForImageClassification", "deit.encoder.layer[-1].layernorm_before", "tokens",
     "transformers"),
    ("DeiTForImageClassificationWithTeacher", "deit.layers[-1].layernorm_before", "tokens",
     "transformers"),
    ("DeiTForImageClassificationWithTeacher", "deit.encoder.layer[-1].layernorm_before",
     "tokens", "transformers"),
    ("BeitForImageClassification", "beit.layers[-1].layernorm_before", "tokens", "transformers"),
    ("BeitForImageClassification", "beit.encoder.layer[-1].layernorm_before", "tokens",
     "transformers"),
    ("Dinov2ForImageClassification", "dinov2.encoder.layer[-1].norm1", "tokens", "transformers"),
    ("SwinForImageClassification", "swin.encoder.layers[-1].blocks[-1].layernorm_before",
     "tokens", "transformers"),
    ("ConvNextForImageClassification", "convnext.encoder.stages[-1]", None, "transformers"),
    ("ResNetForImageClassification", "resnet.encoder.stages[-1]", None, "transformers"),
    ("CLIPModel", "vision_model.encoder.layers[-1].layer_norm1", "tokens", "transformers"),
    ("CLIPVisionModel", "encoder.layers[-1].layer_norm1", "tokens", "transformers"),
    ("CLIPVisionModel", "vision_model.encoder.layers[-1].layer_norm1", "tokens",
     "transformers"),
    ("CLIPVisionModelWithProjection", "encoder.layers[-1].layer_norm1", "tokens",
     "transformers"),
    ("CLIPVisionModelWithProjection", "vision_model.encoder.layers[-1].layer_norm1", "tokens",
     "transformers"),
    # open_clip visual towers (model.visual) and whole models
    ("VisionTransformer", "transformer.resblocks[-1].ln_1", "tokens", "open_clip"),
    ("ModifiedResNet", "layer4[-1]", None, "open_clip"),
    ("CLIP", "visual.transformer.resblocks[-1].ln_1", "tokens", "open_clip"),
    ("CLIP", "visual.layer4[-1]", None, "open_clip"),
    # torchvision segmentation models (outputs {"out": B x classes x H x W}; explain
    # with SemanticSegmentationTarget): the last stage of the backbone
    ("FCN", "backbone.layer4"),                             # fcn_resnet50/101
    ("DeepLabV3", "backbone.layer4"),                       # deeplabv3_resnet50/101
    ("DeepLabV3", "backbone.16"),                           # deeplabv3_mobilenet_v3_large
    ("LRASPP", "backbone.16"),                              # lraspp_mobilenet_v3_large
    # torchvision detection models (a list of dicts per image; explain with
    # FasterRCNNBoxScoreTarget): the backbone, whose output is the dict of
    # feature pyramid levels, as grad-cam 1.5.7's Faster R-CNN tutorial
    ("FasterRCNN", "backbone", "fasterrcnn"),   # resnet50_fpn(_v2), mobilenet_v3_large(_320)_fpn
    ("MaskRCNN", "backbone", "fasterrcnn"),
    ("KeypointRCNN", "backbone", "fasterrcnn"),
    ("RetinaNet", "backbone", "levels"),        # levels '0', '1', '2', 'p6', 'p7'
    ("FCOS", "backbone", "levels"),
    ("SSD", "backbone", "levels"),              # ssd300_vgg16, ssdlite320_mobilenet_v3_large
)


def family_of(model: torch.nn.Module) -> str:
    """The family of a model: its class name, the key of :data:`DEFAULT_LAYERS`."""
    return type(model).__name__


def family_rows(model: torch.nn.Module,
                table: Sequence[FamilyLayers] = DEFAULT_LAYERS) -> list[FamilyLayers]:
    """The rows of ``table`` for the model's family, in table order."""
    family = family_of(model)
    return [row for row in table if row.family == family]


def default_layers_row(model: torch.nn.Module,
                       table: Sequence[FamilyLayers] = DEFAULT_LAYERS) -> FamilyLayers:
    """The first row of the model's family whose paths all exist in the model.

    Raises:
        LayerError: the family has no row, or none of its rows fits.
    """
    for row in family_rows(model, table):
        try:
            resolve_layers(model, row.paths)
        except LayerError:
            continue
        return row
    raise LayerError(None, f"no default target layer for a {family_of(model)}")


def default_target_layers(model: torch.nn.Module) -> tuple[list[str], str | None]:
    """The default target layer path(s) of the model's family and the token
    layout of their outputs, for example ``(["layer4[-1]"], None)`` or
    ``(["encoder.layers[-1].ln_1"], "vit")``. LayerError for a family the
    table does not know."""
    row = default_layers_row(model)
    return list(row.paths), row.layout


def family_layout(model: torch.nn.Module) -> str | None:
    """The token layout of the model's family (its first row), for target
    layers chosen by hand; ``None`` for families of plain feature maps and
    for unknown families."""
    rows = family_rows(model)
    return rows[0].layout if rows else None


# ------------------------------------------------------- token layouts
def vit_patch_grid(model: torch.nn.Module) -> tuple[int, int]:
    """(rows, columns) of a Vision Transformer's patch grid, read off the
    model: timm's ``patch_embed.grid_size`` or torchvision's ``image_size
    // patch_size``. LayerError when the model has neither."""
    patch_embed = getattr(model, "patch_embed", None)
    grid_size = getattr(patch_embed, "grid_size", None)
    if grid_size is not None:  # timm
        rows, columns = (int(v) for v in grid_size)
        return rows, columns
    image_size, patch_size = getattr(model, "image_size", None), getattr(model, "patch_size", None)
    if isinstance(image_size, int) and isinstance(patch_size, int):  # torchvision
        return image_size // patch_size, image_size // patch_size
    raise LayerError(None, f"cannot find the patch grid of a {family_of(model)} (neither "
                           "patch_embed.grid_size nor image_size and patch_size)")


def vit_tokens_to_maps(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B x tokens x C -> B x C x ``height`` x ``width``, dropping the class
    (and distillation or register) tokens that come first; a tensor that
    already is B x C x H x W passes unchanged."""
    if tensor.dim() == 4:
        return tensor
    return vit_reshape_transform(tensor, height=height, width=width)


def _vit_transform(model: torch.nn.Module) -> ReshapeTransform:
    rows, columns = vit_patch_grid(model)
    return partial(vit_tokens_to_maps, height=rows, width=columns)


def _swin_transform(model: torch.nn.Module) -> ReshapeTransform:
    return swinT_reshape_transform


#: token layout -> a function of the model that builds its reshape transform
LAYOUTS: dict[str, Callable[[torch.nn.Module], ReshapeTransform]] = {
    "vit": _vit_transform,
    "swin": _swin_transform,
    # B x tokens x C whose grid is square: the prefix tokens (0 to 8) and the
    # grid derived from the token count at every call (any input size)
    "tokens": lambda model: vit_reshape_transform,
    # the dict of feature pyramid levels of torchvision's R-CNN backbones
    # (levels '0'... and 'pool'): grad-cam 1.5.7's transform, every level's
    # absolute value at the size of 'pool', concatenated
    "fasterrcnn": lambda model: fasterrcnn_reshape_transform,
    # any dict / tuple / list of levels: all at the size of the first
    # (largest) level, concatenated, signs kept
    "levels": lambda model: combine_levels(),
}


def reshape_transform_for(model: torch.nn.Module,
                          layout: str | None) -> ReshapeTransform | None:
    """The ``reshape_transform`` that turns outputs of the token ``layout``
    into B x C x H x W maps for this model (``None`` for the layout
    ``None``: the outputs are maps already)."""
    if layout is None:
        return None
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be None or one of {', '.join(LAYOUTS)}, got "
                         f"{describe(layout)}")
    return LAYOUTS[layout](model)


# ------------------------------------------------------------- the probe
@dataclass(frozen=True)
class LayerProbe:
    """What :func:`probe_target_layers` saw.

    Attributes:
        num_classes: the number of scores the model gives per image.
        map_shapes: per target layer, the C x H x W shape of its map (after
            the reshape transform).
    """

    num_classes: int
    map_shapes: tuple[tuple[int, ...], ...]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def probe_target_layers(model: torch.nn.Module, layers: Sequence[torch.nn.Module],
                        names: Sequence[str] | None = None,
                        reshape_transform: ReshapeTransform | None = None,
                        input_size: int | tuple[int, int] = 224,
                        device: str | torch.device | None = None) -> LayerProbe:
    """Check, with one forward pass of a blank image, that ``model`` is an
    image classifier and every layer of ``layers`` can be explained.

    The model must give B x classes scores (found with
    :func:`pytorch_grad_cam.scoring.select_output`), and every layer must
    run in the forward pass and output a tensor (or, with a
    ``reshape_transform``, a dict / tuple / list of tensors) that after
    ``reshape_transform`` is a 1 x C x H x W map. The forward pass runs
    under ``torch.inference_mode`` with a temporary forward hook per layer,
    removed before this returns (also when it raises); nothing else about
    the model changes (put it in eval mode first).

    Args:
        model: the classifier.
        layers: the target layers (modules of ``model``).
        names: their names for the messages (default ``layers[i]``).
        reshape_transform: the transform the CAM will use.
        input_size: the side (or (height, width)) of the blank image.
        device: where the blank image goes (default: the model's device).

    Returns:
        the number of classes and every layer's map shape.

    Raises:
        LayerError: ``layer`` None for a problem of the model (it fails on
            the image, or its output is no B x classes scores), else the
            name of the layer that cannot be explained.
    """
    names = list(names) if names is not None else [f"layers[{i}]" for i in range(len(layers))]
    if len(names) != len(layers):
        raise ValueError(f"names has {len(names)} entries for {len(layers)} layers")
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    device = torch.device(device) if device is not None else model_device(model)
    seen: dict[int, Any] = {}

    def recorder(index: int) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: Any, output: Any) -> None:
            seen[index] = output  # the last call's output, as the CAM records it
        return record

    handles = [layer.register_forward_hook(recorder(index)) for index, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            output = model(torch.zeros(1, 3, height, width, device=device))
    except Exception as error:  # noqa: BLE001  (any failure of the user's model is reported)
        raise LayerError(None, f"the model fails on a {height} x {width} image "
                               f"({_first_line(error)})") from None
    finally:
        for handle in handles:
            handle.remove()
    try:
        scores = select_output(output)
    except TypeError:
        scores = None
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) \
            else type(output).__name__
        raise LayerError(None, f"the model's output is {shape}, not B x classes scores")
    map_shapes = []
    for index, name in enumerate(names):
        if index not in seen:
            raise LayerError(name, "the layer is not used in the model's forward pass; "
                                   "pick another one")
        value = seen[index]
        if not isinstance(value, torch.Tensor) and reshape_transform is None:
            raise LayerError(name, f"its output is a {type(value).__name__}, not a tensor; "
                                   "pick one of its sub-layers, or pass a reshape_transform "
                                   "that makes it B x C x H x W (utils.reshape_transforms."
                                   "select_output_key, combine_levels)")
        shape = (tuple(value.shape) if isinstance(value, torch.Tensor)
                 else describe_output(value))
        try:
            maps = reshape_transform(value) if reshape_transform is not None else value
        except Exception:  # noqa: BLE001  (a transform that fails: not a map, reported below)
            maps = None
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[0] != 1:
            raise LayerError(name, f"its output has shape {shape}, not a B x C x H x W "
                                   "feature map; pick a convolutional layer (or, for "
                                   "transformers, a layer of the last block such as its "
                                   "norm1/ln_1)")
        map_shapes.append(tuple(int(v) for v in maps.shape[1:]))
    return LayerProbe(num_classes=int(scores.shape[1]), map_shapes=tuple(map_shapes))
