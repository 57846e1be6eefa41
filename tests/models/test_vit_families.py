"""pytorch_grad_cam.models.vit_families: a Hugging Face transformer whose
block lacks its attention module is refused with the block named."""
import pytest

from pytorch_grad_cam.models.vit_families import SUPPORTED_FAMILIES, find_transformer

transformers = pytest.importorskip("transformers")

COMMON = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 32, "image_size": 32, "patch_size": 8}


def test_a_vit_block_without_attention_is_named():
    model = transformers.ViTForImageClassification(transformers.ViTConfig(num_labels=3, **COMMON))
    found = find_transformer(model)
    assert found.attentions == tuple(block.attention for block in found.blocks)
    block = found.blocks[1]  # transformers 5: vit.layers; 4.x: vit.encoder.layer
    del block.attention
    with pytest.raises(ValueError) as caught:
        find_transformer(model)
    assert str(caught.value) == (
        f"block 1 ({type(block).__name__}) of ViTForImageClassification has no attention "
        f"module; the attention of these blocks cannot be captured (supported: "
        f"{SUPPORTED_FAMILIES})")


def test_a_clip_block_without_self_attn_is_named():
    model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**COMMON))
    found = find_transformer(model)
    assert len(found.attentions) == 2
    assert found.attentions == tuple(block.self_attn for block in found.blocks)
    block = found.blocks[0]
    del block.self_attn
    with pytest.raises(ValueError) as caught:
        find_transformer(model)
    assert str(caught.value) == (
        f"block 0 ({type(block).__name__}) of CLIPVisionModel has no self_attn module; the "
        f"attention of these blocks cannot be captured (supported: {SUPPORTED_FAMILIES})")
