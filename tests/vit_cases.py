"""Tiny Vision Transformers of every family the attention methods support,
for the tests (``from vit_cases import VIT_CASES``; the ``vit`` fixture of
tests/conftest.py gives one per family), and ``module_inputs``, the inputs
some of their modules get in a forward pass."""
from collections.abc import Callable
from typing import Any, NamedTuple

import torch


def module_inputs(modules, model, x):
    """The input (the first positional argument, else ``hidden_states``)
    each of ``modules`` gets in one no-grad forward pass of ``model`` on
    ``x``, in call order; recorded by test hooks, removed afterwards."""
    seen = []

    def hook(module, args, kwargs):
        seen.append(args[0] if args else kwargs["hidden_states"])

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen

class ViTCase(NamedTuple):
    """A tiny Vision Transformer of one supported family (2 blocks, 2 heads,
    width 16, 32 x 32 inputs in 8 x 8 patches: 16 patch tokens).

    Attributes:
        family: its name in VIT_FAMILIES.
        build: a fresh model, in eval mode, seeded; ``build(dropout=p)``
            gives every dropout of the family probability p (to make
            training mode matter).
        output_selector: what the CAMs need to find the scores in its
            output (None where the default finds them).
        outputs: the number of scores per image (classes, or embedding
            dimensions for CLIP's vision tower).
        prefix: its prefix tokens (class, distillation, register).
    """

    family: str
    build: Callable[..., torch.nn.Module]
    output_selector: Callable[[Any], torch.Tensor] | None
    outputs: int
    prefix: int


def _torchvision_vit(dropout=0.0):
    import torchvision

    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5, dropout=dropout, attention_dropout=dropout)
    # torchvision initialises the classifier with zeros (every gradient zero)
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


def _timm_class(name):
    import timm.models.deit

    return getattr(timm.models.deit, name)


def _timm_vit(dropout=0.0, registers=0, fused=True, class_=None, **options):
    from timm.models.vision_transformer import VisionTransformer

    model = (class_ or VisionTransformer)(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                              num_classes=5, reg_tokens=registers, drop_rate=dropout,
                              attn_drop_rate=dropout, proj_drop_rate=dropout, **options)
    for block in model.blocks:
        block.attn.fused_attn = fused
    return model


def _hf(kind, implementation, dropout=0.0):
    import transformers

    common = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 32, "image_size": 32, "patch_size": 8,
                  "attn_implementation": implementation}
    if kind in ("clip", "clip-projection"):
        config = transformers.CLIPVisionConfig(attention_dropout=dropout, projection_dim=8,
                                               **common)
        if kind == "clip-projection":
            return transformers.CLIPVisionModelWithProjection(config)
        return transformers.CLIPVisionModel(config)
    drop = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    if kind == "vit":
        config = transformers.ViTConfig(num_labels=5, **drop, **common)
        return transformers.ViTForImageClassification(config)
    if kind == "vitmodel":
        return transformers.ViTModel(transformers.ViTConfig(**drop, **common))
    config = transformers.DeiTConfig(num_labels=5, **drop, **common)
    return transformers.DeiTForImageClassificationWithTeacher(config)


def _open_clip_vit(dropout=0.0):
    from open_clip.transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, width=16, layers=2, heads=2,
                             mlp_ratio=2.0, output_dim=5)


def _seeded(make):
    def build(dropout=0.0):
        torch.manual_seed(0)
        return make(dropout).eval()
    return build


def _pooler_output(output):
    return output.pooler_output


def _image_embeds(output):
    return output.image_embeds


VIT_CASES = {
    "torchvision": ViTCase("torchvision", _seeded(_torchvision_vit), None, 5, 1),
    "timm": ViTCase("timm", _seeded(_timm_vit), None, 5, 1),
    "timm-registers": ViTCase("timm-registers", _seeded(lambda p: _timm_vit(p, registers=2)),
                              None, 5, 3),
    "timm-eager": ViTCase("timm-eager", _seeded(lambda p: _timm_vit(p, fused=False)), None, 5, 1),
    "hf-vit-eager": ViTCase("hf-vit-eager", _seeded(lambda p: _hf("vit", "eager", p)), None, 5, 1),
    "hf-vit-sdpa": ViTCase("hf-vit-sdpa", _seeded(lambda p: _hf("vit", "sdpa", p)), None, 5, 1),
    "hf-deit-teacher": ViTCase("hf-deit-teacher", _seeded(lambda p: _hf("deit", "sdpa", p)),
                               None, 5, 2),
    "hf-clip-vision": ViTCase("hf-clip-vision", _seeded(lambda p: _hf("clip", "sdpa", p)),
                              _pooler_output, 16, 1),
}
VIT_FAMILIES = tuple(VIT_CASES)

#: more families, for the tests of the attention capture and the methods'
#: formulas (the guarantees run on VIT_CASES)
MORE_VIT_CASES = {
    "timm-deit-distilled": ViTCase(
        "timm-deit-distilled",
        _seeded(lambda p: _timm_vit(p, class_=_timm_class("VisionTransformerDistilled"))),
        None, 5, 2),
    "timm-no-class-token": ViTCase(
        "timm-no-class-token",
        _seeded(lambda p: _timm_vit(p, class_token=False, global_pool="avg")), None, 5, 0),
    "hf-vitmodel": ViTCase("hf-vitmodel", _seeded(lambda p: _hf("vitmodel", "eager", p)),
                           _pooler_output, 16, 1),
    "hf-clip-projection": ViTCase(
        "hf-clip-projection", _seeded(lambda p: _hf("clip-projection", "eager", p)),
        _image_embeds, 8, 1),
    # open_clip's image tower (no dropout in its blocks: ``dropout`` is ignored)
    "open_clip-vision": ViTCase("open_clip-vision", _seeded(_open_clip_vit), None, 5, 1),
}
