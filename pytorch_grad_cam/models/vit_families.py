"""The Vision Transformer families whose attention the attention methods
(LeGrad, attention rollout, gradient-weighted attention) read.

:func:`find_transformer` finds the Vision Transformer of a model (the
model itself, or the first supported one inside a wrapper module) and
returns a :class:`Transformer`: where it keeps its transformer blocks and
their attention modules, how the attention is computed (which kernel
``attention.capture_attention`` must see), how many prefix tokens (class,
distillation, register) come before the patch tokens, and the model's own
final norm and head as a function of a block's output tokens
(:attr:`Transformer.head`).

Supported families: torchvision ``VisionTransformer``; timm
``VisionTransformer`` and its subclasses (ViT, DeiT and distilled DeiT,
register tokens, any ``global_pool``) whose blocks use timm's
``Attention``; Hugging Face transformers 5 ``ViTModel``,
``ViTForImageClassification``, ``DeiTModel``,
``DeiTForImageClassification(WithTeacher)``, ``CLIPVisionModel``,
``CLIPVisionModelWithProjection`` and ``CLIPModel`` (its vision tower),
with ``config._attn_implementation`` ``"eager"`` or ``"sdpa"``; open_clip's
``VisionTransformer`` (the image tower ``visual`` of its ``CLIP`` models)
with the standard ``ResidualAttentionBlock``. Each may
be the model itself or inside a wrapper module (for example a CLIP
wrapper whose output is an image embedding). A family is recognised only
if its library is already imported: nothing is imported here.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["HF_IMPLEMENTATIONS", "SUPPORTED_FAMILIES", "Transformer", "find_transformer",
           "main_tensor"]

#: the model families whose attention can be captured, for messages
SUPPORTED_FAMILIES = (
    "torchvision VisionTransformer; timm VisionTransformer (ViT, DeiT, distilled DeiT, "
    "register tokens); Hugging Face ViTModel, ViTForImageClassification, DeiTModel, "
    "DeiTForImageClassification(WithTeacher), CLIPVisionModel, CLIPVisionModelWithProjection "
    "and CLIPModel; open_clip VisionTransformer (CLIP's visual tower); each also inside a "
    "wrapper module")

#: Hugging Face attention implementations whose probabilities can be captured
HF_IMPLEMENTATIONS = ("eager", "sdpa")


@dataclass(frozen=True)
class Transformer:
    """A Vision Transformer found in a model (:func:`find_transformer`).

    Attributes:
        family: where the model comes from: ``"torchvision"``, ``"timm"``,
            ``"transformers"`` or ``"open_clip"``.
        module: the Vision Transformer (the model itself, or a module
            inside the user's wrapper).
        path: its name inside the model (``""`` for the model itself).
        blocks: the transformer blocks, in the order the forward pass runs
            them.
        attentions: the attention module of each block.
        kind: how the attention is captured: ``"mha"`` (torchvision's
            and open_clip's ``nn.MultiheadAttention``), ``"timm"`` or ``"hf"``.
        num_prefix_tokens: the tokens before the patch tokens (class,
            distillation, register tokens).
        class_token: whether the first token is a class token.
        head: the model's final norm and head as a function of a block's
            output tokens (B x N x C), returning what ``module`` returns
            (a tensor, or the Hugging Face ``ModelOutput`` of the class),
            so that a target receives the same kind of output as from the
            model; ``None`` where the family has no head of its own.
        head_text: what ``head`` computes, in words (for messages).
        config: the Hugging Face config (its ``_attn_implementation`` is
            read at every call), else ``None``.
    """

    family: str
    module: torch.nn.Module
    path: str
    blocks: tuple[torch.nn.Module, ...]
    attentions: tuple[torch.nn.Module, ...]
    kind: str
    num_prefix_tokens: int
    class_token: bool
    head: Callable[[torch.Tensor], Any] | None
    head_text: str
    config: Any = None

    @property
    def wrapped(self) -> bool:
        """The Vision Transformer is inside the user's model, not the model."""
        return self.path != ""

    @property
    def name(self) -> str:
        """The class name of the Vision Transformer (and where it is)."""
        where = f" at {self.path}" if self.path else ""
        return f"{type(self.module).__name__}{where}"

    def block_index(self, layer: torch.nn.Module) -> int | None:
        """The index of ``layer`` among the blocks, or ``None``."""
        for index, block in enumerate(self.blocks):
            if block is layer:
                return index
        return None

    def check_implementation(self) -> None:
        """Raise ValueError, before any forward pass, if a Hugging Face
        model's attention implementation is one whose probabilities cannot
        be captured (``flash_attention_2``, ``flex_attention``, ...)."""
        if self.config is None:
            return
        implementation = getattr(self.config, "_attn_implementation", None)
        if implementation not in HF_IMPLEMENTATIONS:
            raise ValueError(
                f"{self.name} uses config._attn_implementation={implementation!r}, whose "
                f"attention probabilities cannot be read; allowed: "
                f"{', '.join(map(repr, HF_IMPLEMENTATIONS))} (load the model with "
                "attn_implementation='sdpa' or 'eager')")


def _class(module_name: str, class_name: str) -> type | None:
    """A class of an already imported module (a model of that library
    exists only if the library is imported; nothing is imported here)."""
    module = sys.modules.get(module_name)
    cls = getattr(module, class_name, None) if module is not None else None
    return cls if isinstance(cls, type) else None


def _is(module: torch.nn.Module, module_name: str, *class_names: str) -> bool:
    classes = [c for c in (_class(module_name, n) for n in class_names) if c is not None]
    return bool(classes) and isinstance(module, tuple(classes))


def _child(module: torch.nn.Module, *paths: str) -> torch.nn.Module | None:
    """The first of the dotted child paths that exists."""
    for path in paths:
        current: torch.nn.Module | None = module
        for name in path.split("."):
            current = current._modules.get(name) if current is not None else None
        if current is not None:
            return current
    return None


def _unsupported_block(name: str, index: int, block: torch.nn.Module, reason: str) -> ValueError:
    return ValueError(f"block {index} ({type(block).__name__}) of {name} {reason}; the attention "
                      f"of these blocks cannot be captured (supported: {SUPPORTED_FAMILIES})")


def _attention_of(blocks: tuple[torch.nn.Module, ...], attribute: str,
                  name: str) -> tuple[torch.nn.Module, ...]:
    """The attention module of every block, its attribute ``attribute``;
    ValueError naming the first block (of the model ``name``) without one."""
    attentions = []
    for index, block in enumerate(blocks):
        attention = getattr(block, attribute, None)
        if not isinstance(attention, torch.nn.Module):
            raise _unsupported_block(name, index, block, f"has no {attribute} module")
        attentions.append(attention)
    return tuple(attentions)


def _torchvision(module: torch.nn.Module, path: str) -> Transformer | None:
    if not _is(module, "torchvision.models.vision_transformer", "VisionTransformer"):
        return None
    vit: Any = module
    name = type(vit).__name__
    blocks = tuple(vit.encoder.layers)
    attentions = []
    for index, block in enumerate(blocks):
        mha = getattr(block, "self_attention", None)
        if not isinstance(mha, torch.nn.MultiheadAttention):
            raise _unsupported_block(name, index, block, "has no nn.MultiheadAttention "
                                                         "self_attention")
        if not (mha.batch_first and mha._qkv_same_embed_dim) or mha.bias_k is not None \
                or mha.add_zero_attn:
            raise _unsupported_block(name, index, block, "uses an nn.MultiheadAttention with "
                                                         "separate key/value sizes, bias_k or "
                                                         "add_zero_attn")
        attentions.append(mha)
    encoder_norm, heads = vit.encoder.ln, vit.heads

    def head(tokens: torch.Tensor) -> torch.Tensor:
        return heads(encoder_norm(tokens[:, 0]))

    return Transformer("torchvision", vit, path, blocks, tuple(attentions), "mha", 1, True,
                       head, "encoder.ln and heads on the class token")


def _timm(module: torch.nn.Module, path: str) -> Transformer | None:
    if not _is(module, "timm.models.vision_transformer", "VisionTransformer"):
        return None
    vit: Any = module
    attention_class = _class("timm.layers.attention", "Attention")
    name = type(vit).__name__
    blocks = tuple(vit.blocks)
    attentions: list[torch.nn.Module] = []
    for index, block in enumerate(blocks):
        attn: Any = getattr(block, "attn", None)
        if attention_class is None or type(attn) is not attention_class \
                or not isinstance(getattr(attn, "attn_drop", None), torch.nn.Module):
            raise _unsupported_block(name, index, block, f"does not use timm's Attention (its "
                                                         f"attn is {type(attn).__name__})")
        attentions.append(block.attn)

    def head(tokens: torch.Tensor) -> torch.Tensor:
        return vit.forward_head(vit.norm(tokens))

    return Transformer("timm", vit, path, blocks, tuple(attentions), "timm",
                       int(vit.num_prefix_tokens), bool(getattr(vit, "has_class_token", True)),
                       head, "norm and forward_head")


def _hf_outputs() -> Any:
    return sys.modules.get("transformers.modeling_outputs")


def _hf_encoder(model: torch.nn.Module, name: str) -> tuple[tuple[torch.nn.Module, ...],
                                                              tuple[torch.nn.Module, ...]]:
    """The layers of a ViT/DeiT encoder (transformers 5: ``layers``; 4.x:
    ``encoder.layer``) and their attention modules."""
    container: Any = _child(model, "layers", "encoder.layer")
    if container is None:
        raise ValueError(f"{name} has neither layers nor encoder.layer; its blocks cannot be "
                         f"found (supported: {SUPPORTED_FAMILIES})")
    blocks = tuple(container)
    return blocks, _attention_of(blocks, "attention", name)


def _hf_vit(module: torch.nn.Module, path: str) -> Transformer | None:
    model: Any = module
    vit_module, deit_module = "transformers.models.vit.modeling_vit", \
        "transformers.models.deit.modeling_deit"
    outputs = _hf_outputs()
    name = type(model).__name__
    if _is(model, vit_module, "ViTForImageClassification") or \
            _is(model, deit_module, "DeiTForImageClassification"):
        base: Any = model.vit if hasattr(model, "vit") else model.deit
        classifier = model.classifier
        blocks, attentions = _hf_encoder(base, name)

        def head(tokens: torch.Tensor) -> Any:
            return outputs.ImageClassifierOutput(logits=classifier(base.layernorm(tokens)[:, 0]))

        prefix = 2 if hasattr(model, "deit") else 1
        return Transformer("transformers", model, path, blocks, attentions, "hf", prefix, True,
                           head, "layernorm and classifier on the class token", model.config)
    if _is(model, deit_module, "DeiTForImageClassificationWithTeacher"):
        deit_outputs = sys.modules[deit_module]
        base = model.deit
        teacher: Any = model
        blocks, attentions = _hf_encoder(base, name)

        def head(tokens: torch.Tensor) -> Any:
            normed = base.layernorm(tokens)
            cls_logits = teacher.cls_classifier(normed[:, 0])
            distillation_logits = teacher.distillation_classifier(normed[:, 1])
            return deit_outputs.DeiTForImageClassificationWithTeacherOutput(
                logits=(cls_logits + distillation_logits) / 2, cls_logits=cls_logits,
                distillation_logits=distillation_logits)

        return Transformer("transformers", model, path, blocks, attentions, "hf", 2, True, head,
                           "layernorm, then the mean of cls_classifier on the class token and "
                           "distillation_classifier on the distillation token", model.config)
    if _is(model, vit_module, "ViTModel") or _is(model, deit_module, "DeiTModel"):
        base = model
        blocks, attentions = _hf_encoder(base, name)

        def head(tokens: torch.Tensor) -> Any:
            normed = base.layernorm(tokens)
            pooled = base.pooler(normed) if base.pooler is not None else None
            return outputs.BaseModelOutputWithPooling(last_hidden_state=normed,
                                                      pooler_output=pooled)

        prefix = 2 if _is(model, deit_module, "DeiTModel") else 1
        return Transformer("transformers", model, path, blocks, attentions, "hf", prefix, True,
                           head, "layernorm (and the pooler)", model.config)
    return None


def _hf_clip(module: torch.nn.Module, path: str) -> Transformer | None:
    model: Any = module
    clip_module = "transformers.models.clip.modeling_clip"
    outputs = _hf_outputs()
    if not _is(model, clip_module, "CLIPVisionModel", "CLIPVisionModelWithProjection",
               "CLIPModel"):
        return None
    name = type(model).__name__
    tower: Any = model.vision_model if hasattr(model, "vision_model") else model
    if hasattr(tower, "vision_model"):  # transformers 4.x: CLIPVisionModel.vision_model
        tower = tower.vision_model
    layers: Any = _child(tower, "encoder.layers")
    if layers is None:
        raise ValueError(f"{name} has no encoder.layers in its vision tower (supported: "
                         f"{SUPPORTED_FAMILIES})")
    blocks = tuple(layers)
    attentions = _attention_of(blocks, "self_attn", name)
    projection: Any = getattr(model, "visual_projection", None)
    clip_outputs = sys.modules[clip_module]

    def pooled(tokens: torch.Tensor) -> torch.Tensor:
        return tower.post_layernorm(tokens[:, 0])

    if _is(model, clip_module, "CLIPModel"):
        def head(tokens: torch.Tensor) -> Any:
            return projection(pooled(tokens))
        text = "post_layernorm on the class token, then visual_projection (the image embedding)"
    elif projection is not None:
        def head(tokens: torch.Tensor) -> Any:
            return clip_outputs.CLIPVisionModelOutput(image_embeds=projection(pooled(tokens)),
                                                      last_hidden_state=tokens)
        text = "post_layernorm on the class token, then visual_projection (image_embeds)"
    else:
        def head(tokens: torch.Tensor) -> Any:
            return outputs.BaseModelOutputWithPooling(last_hidden_state=tokens,
                                                      pooler_output=pooled(tokens))
        text = "post_layernorm on the class token (pooler_output)"
    return Transformer("transformers", model, path, blocks, attentions, "hf", 1, True,
                       head, text, tower.config)


def _open_clip(module: torch.nn.Module, path: str) -> Transformer | None:
    if not _is(module, "open_clip.transformer", "VisionTransformer"):
        return None
    vit: Any = module
    name = type(vit).__name__
    block_class = _class("open_clip.transformer", "ResidualAttentionBlock")
    if not getattr(vit.transformer, "batch_first", False):
        raise ValueError(f"{name} runs its blocks with batch_first=False; the attention of "
                         f"these blocks cannot be captured (supported: {SUPPORTED_FAMILIES})")
    blocks = tuple(vit.transformer.resblocks)
    attentions = []
    for index, block in enumerate(blocks):
        mha = getattr(block, "attn", None)
        if block_class is None or type(block) is not block_class \
                or not isinstance(mha, torch.nn.MultiheadAttention):
            raise _unsupported_block(name, index, block, "is not open_clip's "
                                                         "ResidualAttentionBlock with an "
                                                         "nn.MultiheadAttention")
        attentions.append(mha)

    def head(tokens: torch.Tensor) -> Any:
        pooled, pooled_tokens = vit._pool(tokens)
        if vit.proj is not None:
            pooled = pooled @ vit.proj
        return (pooled, pooled_tokens) if vit.output_tokens else pooled

    return Transformer("open_clip", vit, path, blocks, tuple(attentions), "mha", 1, True, head,
                       "ln_post, the pooling and proj (the image embedding)")


_FINDERS = (_torchvision, _timm, _hf_vit, _hf_clip, _open_clip)


def find_transformer(model: torch.nn.Module) -> Transformer:
    """The Vision Transformer of ``model``: the model itself or the first
    module inside it (in ``model.modules()`` order) of a supported family.

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``.
        ValueError: no supported Vision Transformer is found (a CNN, a Swin
            Transformer, ...), or one of its blocks does not use the
            family's attention module; the message names the model's class
            and the supported families.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for path, module in model.named_modules():
        for finder in _FINDERS:
            found = finder(module, path)
            if found is not None:
                return found
    raise ValueError(f"model ({type(model).__name__}) is not and does not contain a Vision "
                     "Transformer whose attention probabilities can be captured; these methods "
                     f"support: {SUPPORTED_FAMILIES}")


def main_tensor(output: Any) -> Any:
    """The score tensor of what a family's head returns: the tensor itself,
    else the ``logits``, ``image_embeds`` or ``pooler_output`` of a
    ``ModelOutput`` (used for a Vision Transformer inside a wrapper, whose
    own output selection the library does not know)."""
    if isinstance(output, torch.Tensor):
        return output
    for name in ("logits", "image_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return output
