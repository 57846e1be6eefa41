"""The model families the library knows: for each (by class name), the
default target layer path(s) and the token layout of their outputs.

:data:`DEFAULT_LAYERS` is the table: ``None`` for B x C x H x W feature
maps, ``"vit"`` for a Vision Transformer's B x tokens x C (class token
first), ``"swin"`` for a Swin Transformer's B x H x W x C, ``"tokens"``
for B x tokens x C whose grid is derived from the token count,
``"fasterrcnn"`` and ``"levels"`` for the dict of feature pyramid levels of
a detection backbone (grad-cam 1.5.7's ``fasterrcnn_reshape_transform``, or
``combine_levels()`` for pyramids without its ``'pool'`` level).
:func:`default_target_layers` picks a model's row and
:func:`reshape_transform_for` turns a layout into the ``reshape_transform``
the CAM methods take::

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.layers import (default_target_layers, reshape_transform_for,
                                         resolve_layers)

    paths, layout = default_target_layers(model)        # (["layer4[-1]"], None)
    cam = GradCAM(model, target_layers=resolve_layers(model, paths),
                  reshape_transform=reshape_transform_for(model, layout))

The Vision Transformers whose attention the attention methods read are
found by ``models.vit_families``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from pytorch_grad_cam.models.paths import LayerError, resolve_layers
from pytorch_grad_cam.models.tokens import ReshapeTransform, vit_tokens_to_maps
from pytorch_grad_cam.scoring import describe
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
    "default_layers_row",
    "default_target_layers",
    "family_layout",
    "family_of",
    "family_rows",
    "reshape_transform_for",
    "vit_patch_grid",
]

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


# ------------------------------------------- the layouts' reshape transforms
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
