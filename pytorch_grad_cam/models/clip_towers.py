"""CLIP models: their image and text towers, for the explanations that
need both (Grad-ECLIP's map for a prompt and relevance of a prompt's words,
``pytorch_grad_cam.grad_eclip``).

:func:`find_clip` recognises open_clip's ``CLIP`` and ``CustomTextCLIP``
(text towers built from open_clip's ``ResidualAttentionBlock``) and Hugging
Face's ``CLIPModel`` (attention implementation ``"eager"`` or ``"sdpa"``)
and returns a :class:`ClipTowers`: the image embedding and the text
embedding as functions, the text tower's blocks as a
``models.vit_families.Transformer`` (so that ``attention.capture_attention``
records their attention), the rule by which the text tower picks the token
whose output becomes the text embedding (the end-of-text token), and how a
token id is spelled. A family is recognised only if its library is already
imported: nothing is imported here.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.models.vit_families import Transformer

__all__ = ["CLIP_FAMILIES", "ClipTowers", "ImageEmbedding", "find_clip"]

#: the CLIP models whose towers are known, for messages
CLIP_FAMILIES = ("open_clip CLIP and CustomTextCLIP (standard ResidualAttentionBlock towers); "
                 "Hugging Face CLIPModel")


@dataclass(frozen=True)
class ClipTowers:
    """The two towers of a CLIP model (:func:`find_clip`).

    Attributes:
        family: ``"open_clip"`` or ``"transformers"``.
        model: the CLIP model.
        encode_image: images (B x 3 x H x W) -> image embeddings (B x D),
            not normalised.
        encode_text: token ids (B x L) -> text embeddings (B x D), not
            normalised.
        text: the text tower's blocks and attention modules (for
            ``attention.capture_attention``; no head, no prefix tokens).
        end_positions: token ids (B x L) -> the position of the token whose
            output the text tower pools (B), as the model picks it.
    """

    family: str
    model: torch.nn.Module
    encode_image: Callable[[torch.Tensor], torch.Tensor]
    encode_text: Callable[[torch.Tensor], torch.Tensor]
    text: Transformer
    end_positions: Callable[[torch.Tensor], torch.Tensor]


class ImageEmbedding(torch.nn.Module):
    """A CLIP model's image tower as a model: images in, image embeddings
    (B x D, not normalised) out. The CLIP model is a submodule, unchanged;
    the CAM methods explain this module with an embedding target
    (``SimilarityToConceptTarget`` of a text embedding)."""

    def __init__(self, clip: torch.nn.Module) -> None:
        super().__init__()
        self.clip = clip
        self.towers = find_clip(clip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.towers.encode_image(images)


def _class(module_name: str, class_name: str) -> type | None:
    module = sys.modules.get(module_name)
    cls = getattr(module, class_name, None) if module is not None else None
    return cls if isinstance(cls, type) else None


def _is(model: Any, module_name: str, *class_names: str) -> bool:
    classes = [c for c in (_class(module_name, n) for n in class_names) if c is not None]
    return bool(classes) and isinstance(model, tuple(classes))


def _not_supported(model: Any, reason: str) -> ValueError:
    return ValueError(f"model ({type(model).__name__}) {reason}; Grad-ECLIP's maps for a prompt "
                      f"and its word relevance support: {CLIP_FAMILIES}. For a Vision "
                      "Transformer classifier use GradECLIP(model) with a class target")


def _open_clip(model: Any) -> ClipTowers:
    tower: Any = model.text if hasattr(model, "text") else model  # CustomTextCLIP: .text
    transformer: Any = getattr(tower, "transformer", None)
    block_class = _class("open_clip.transformer", "ResidualAttentionBlock")
    blocks = tuple(getattr(transformer, "resblocks", ()))
    if not blocks or block_class is None or not all(type(b) is block_class for b in blocks) \
            or not getattr(transformer, "batch_first", False):
        raise _not_supported(model, "has a text tower that is not a batch-first stack of "
                                    "open_clip's ResidualAttentionBlock")
    attentions = tuple(block.attn for block in blocks)
    text = Transformer("open_clip", transformer, "text transformer", blocks, attentions, "mha",
                       0, False, None, "")
    pool_type = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
    eos_id = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))

    def end_positions(ids: torch.Tensor) -> torch.Tensor:
        if pool_type == "argmax":
            return ids.argmax(dim=-1)
        if pool_type == "eos" and eos_id is not None:
            return (ids == eos_id).int().argmax(dim=-1)
        if pool_type == "last":
            return torch.full(ids.shape[:1], ids.shape[-1] - 1, device=ids.device)
        raise _not_supported(model, f"pools its text tokens with pool_type={pool_type!r}, "
                                    "which has no end-of-text token (allowed: 'argmax', 'eos', "
                                    "'last')")

    return ClipTowers("open_clip", model, model.encode_image, model.encode_text, text,
                      end_positions)


def _transformers(model: Any) -> ClipTowers:
    text_model: Any = model.text_model
    blocks = tuple(text_model.encoder.layers)
    attentions = tuple(block.self_attn for block in blocks)
    text = Transformer("transformers", text_model, "text_model", blocks, attentions, "hf", 0,
                       False, None, "", text_model.config)
    eos_id = text_model.config.eos_token_id

    def features(output: Any) -> torch.Tensor:
        # transformers 5 returns the output object with the projected pooler
        # output; 4.x returns the tensor
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def encode_image(images: torch.Tensor) -> torch.Tensor:
        return features(model.get_image_features(pixel_values=images))

    def encode_text(ids: torch.Tensor) -> torch.Tensor:
        return features(model.get_text_features(input_ids=ids))

    def end_positions(ids: torch.Tensor) -> torch.Tensor:
        if eos_id == 2:  # the configs before transformers' PR 24773: argmax, as the model does
            return ids.argmax(dim=-1)
        return (ids == eos_id).int().argmax(dim=-1)

    return ClipTowers("transformers", model, encode_image, encode_text, text, end_positions)


def find_clip(model: torch.nn.Module) -> ClipTowers:
    """The towers of a CLIP model.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ValueError: ``model`` is not a supported CLIP model (a classifier,
            a vision tower alone, ...); the message names its class and the
            supported ones.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a CLIP model (a torch.nn.Module), got "
                        f"{type(model).__name__}")
    if _is(model, "open_clip.model", "CLIP", "CustomTextCLIP"):
        return _open_clip(model)
    if _is(model, "transformers.models.clip.modeling_clip", "CLIPModel"):
        return _transformers(model)
    raise _not_supported(model, "is not a CLIP model with an image and a text tower")
