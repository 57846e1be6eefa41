"""LLaVA-style vision-language models: where the image is in the model,
and how its image tokens become B x C x H x W maps.

Hugging Face's ``LlavaForConditionalGeneration`` encodes an image with a
vision tower (CLIP or SigLIP), takes the hidden states of
``config.vision_feature_layer`` (an index into the tower's
``hidden_states``: ``0`` is the embeddings, ``k >= 1`` the output of
encoder block ``k - 1``; LLaVA-1.5 uses ``-2``, the last block but one),
drops the class token when ``config.vision_feature_select_strategy`` is
``"default"`` (keeps it for ``"full"``), maps every remaining token with
the ``multi_modal_projector`` into the language model's embedding space,
and writes the projector's tokens, in order, over the prompt's image
tokens (``config.image_token_id``). The image tokens are the patches of
the tower's ``image_size / patch_size`` grid, row by row.

:func:`find_llava` reads that layout from a model and
:class:`ImageTokenGrid` is the reshape transform of the image tokens
(``pytorch_grad_cam.vlm`` builds the target layers and the targets on
it). Only the plain LLaVA layout is known here: LLaVA-NeXT and
LLaVA-OneVision (image tiles and newline tokens), InternVL and Qwen-VL
(merged patches, dynamic grids) lay their image tokens out differently
and are refused. Nothing is imported here: a model is recognised only if
transformers is already imported.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.messages import given
from pytorch_grad_cam.models.tokens import grid_to_maps

__all__ = ["LLAVA_CLASSES", "LLAVA_LAYERS", "ImageTokenGrid", "Llava", "check_layer",
           "find_llava"]

#: the model classes whose image-token layout is known
LLAVA_CLASSES = ("LlavaForConditionalGeneration",)
#: the target layers of a LLaVA model: the projector, or the vision features it reads
LLAVA_LAYERS = ("projector", "vision")
_LLAVA_MODULE = "transformers.models.llava.modeling_llava"


class ImageTokenGrid:
    """reshape_transform for the image tokens of a LLaVA model: B x N x C
    tokens with ``prefix`` leading tokens (the vision tower's class token)
    -> B x C x ``rows`` x ``columns``, the patches row by row.

    Raises ValueError when the token count is not ``prefix + rows *
    columns`` (an input whose size is not the tower's ``image_size``)."""

    def __init__(self, rows: int, columns: int, prefix: int) -> None:
        self.rows, self.columns, self.prefix = int(rows), int(columns), int(prefix)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            raise ValueError(f"{self!r} expects B x tokens x channels, got {given(tensor)}")
        expected = self.prefix + self.rows * self.columns
        if tensor.shape[1] != expected:
            raise ValueError(f"{self!r}: the layer returned {tensor.shape[1]} tokens, expected "
                             f"{expected} ({self.prefix} class token(s) and a {self.rows} x "
                             f"{self.columns} patch grid); is the image of the vision tower's "
                             "image_size?")
        return grid_to_maps(tensor, self.prefix, self.rows, self.columns)

    def __repr__(self) -> str:
        return f"ImageTokenGrid(rows={self.rows}, columns={self.columns}, prefix={self.prefix})"


@dataclass(frozen=True)
class Llava:
    """The image-token layout of a LLaVA model (:func:`find_llava`).

    Attributes:
        model: the user's model.
        config: its ``LlavaConfig``.
        vision_tower: the vision encoder (a ``CLIPVisionModel`` or
            ``SiglipVisionModel``).
        projector: the ``multi_modal_projector``.
        blocks: the vision tower's encoder blocks.
        feature_layers: the ``hidden_states`` indices the projector reads
            (``config.vision_feature_layer``), made non-negative.
        strategy: ``config.vision_feature_select_strategy``.
        class_token: whether the vision tower puts a class token first.
        rows, columns: the patch grid (``image_size // patch_size``).
        image_token_id: the id of the prompt's image tokens.
    """

    model: torch.nn.Module
    config: Any
    vision_tower: torch.nn.Module
    projector: torch.nn.Module
    blocks: tuple[torch.nn.Module, ...]
    feature_layers: tuple[int, ...]
    strategy: str
    class_token: bool
    rows: int
    columns: int
    image_token_id: int

    @property
    def image_tokens(self) -> int:
        """The image tokens per image in the language model's sequence."""
        return self.rows * self.columns + (1 if self.class_token and self.strategy == "full"
                                           else 0)

    def reshape_transform(self, layer: str = "projector") -> ImageTokenGrid:
        """The reshape transform of ``layer``'s tokens: the vision tower's
        hidden states (``"vision"``) keep the class token (dropped here);
        the projector's output (``"projector"``) keeps it only with the
        ``"full"`` strategy."""
        check_layer(layer)
        keeps_class = self.class_token and (layer == "vision" or self.strategy == "full")
        return ImageTokenGrid(self.rows, self.columns, 1 if keeps_class else 0)


def check_layer(layer: Any) -> None:
    """ValueError unless ``layer`` is one of :data:`LLAVA_LAYERS`."""
    if layer not in LLAVA_LAYERS:
        raise ValueError(f"layer must be one of {', '.join(map(repr, LLAVA_LAYERS))}, got "
                         f"{given(layer)}")


def _llava_classes() -> tuple[type, ...]:
    module = sys.modules.get(_LLAVA_MODULE)
    classes = [getattr(module, name, None) for name in LLAVA_CLASSES] if module else []
    return tuple(c for c in classes if isinstance(c, type))


def _not_llava(model: Any) -> ValueError:
    return ValueError(
        f"model must be a LLaVA-style vision-language model (transformers' "
        f"{', '.join(LLAVA_CLASSES)}), got {type(model).__name__}; other families "
        "(LLaVA-NeXT, LLaVA-OneVision, InternVL, Qwen-VL) lay their image tokens out "
        "differently (image tiles, merged patches) and are not supported")


def find_llava(model: Any) -> Llava:
    """The image-token layout of a LLaVA model.

    Raises:
        ValueError: ``model`` is not a ``LlavaForConditionalGeneration``,
            or its configuration gives no patch grid (a vision tower without ``encoder.layers``, a
            ``vision_feature_select_strategy`` other than ``"default"`` and
            ``"full"``, ``"default"`` on a tower without a class token).
    """
    classes = _llava_classes()
    if not classes or not isinstance(model, classes):
        raise _not_llava(model)
    llava: Any = model
    base: Any = llava.model
    config: Any = llava.config
    tower: Any = base.vision_tower
    vision_config = config.vision_config
    name = type(model).__name__
    layers = getattr(getattr(tower, "encoder", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{name}'s vision tower ({type(tower).__name__}) has no encoder.layers; "
                         "its blocks cannot be found (supported: CLIP and SigLIP towers)")
    strategy = config.vision_feature_select_strategy
    if strategy not in ("default", "full"):
        raise ValueError(f"{name}: config.vision_feature_select_strategy must be 'default' or "
                         f"'full', got {given(strategy)}")
    selected = config.vision_feature_layer
    selected = [selected] if isinstance(selected, int) else list(selected)
    states = len(layers) + 1  # the embeddings, then every block's output
    feature_layers = tuple(index % states for index in selected)
    class_token = getattr(getattr(tower, "embeddings", None), "class_embedding", None) is not None
    if strategy == "default" and not class_token:
        raise ValueError(f"{name}: vision_feature_select_strategy='default' drops the first "
                         f"token, but the vision tower ({type(tower).__name__}) has no class "
                         "token, so the image tokens are no patch grid")
    side = int(vision_config.image_size) // int(vision_config.patch_size)
    return Llava(llava, config, tower, base.multi_modal_projector, tuple(layers),
                 feature_layers, strategy, class_token, side, side, int(config.image_token_id))
