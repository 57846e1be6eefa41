"""Grad-ECLIP (pytorch_grad_cam.grad_eclip): the formula by hand, the image
map of a Vision Transformer against the paper's formula computed here from
the attention module's own projections and the gradient with respect to its
output before the output projection, CLIP's maps for prompts and the
relevance of a prompt's words (open_clip and Hugging Face, tiny random
models), the model left as it was, and the errors.

The registry-generated guarantees (batch = singles, model restored, thread
safety, ...) run on ``gradeclip`` like on every attention method
(tests/methods/test_attention_guarantees.py, tests/core/); the parity with
the authors' code is bench/grad_eclip_parity.py.
"""
import numpy as np
import pytest
import torch
from vit_cases import VIT_CASES  # tests/vit_cases.py

from pytorch_grad_cam import GradECLIP
from pytorch_grad_cam.grad_eclip import (
    clip_image_maps,
    clip_word_relevance,
    grad_eclip_scores,
    spatial_weights,
)
from pytorch_grad_cam.grad_eclip_text import words_of
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def open_clip_model():
    import open_clip

    torch.manual_seed(0)
    return open_clip.CLIP(
        embed_dim=8,
        vision_cfg={"image_size": 32, "patch_size": 8, "width": 16, "layers": 2,
                    "head_width": 8, "mlp_ratio": 2},
        text_cfg={"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2,
                  "layers": 2}).eval()


def hf_clip_model():
    import transformers

    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8)
    return transformers.CLIPModel(config).eval()


def tokenizer():
    import open_clip

    return open_clip.tokenizer.SimpleTokenizer(context_length=16)


CLIPS = {"open_clip": open_clip_model, "hf": hf_clip_model}


# ------------------------------------------------------------------ formula
def test_the_weights_by_hand():
    query = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]]])
    # cosines 1, 0, -1, 1/sqrt(2): min-max -> 1, 1/2, 0, (1 + 1/sqrt(2)) / 2
    lam = (1 + 2 ** -0.5) / 2
    torch.testing.assert_close(spatial_weights(query, keys), torch.tensor([[1.0, 0.5, 0.0, lam]]))
    # sum_c w_c v_i^c = 2, -1, 3, 1 -> ReLU(lambda * that)
    row = torch.tensor([[2.0, -1.0, 3.0, 1.0]])
    torch.testing.assert_close(grad_eclip_scores(row, query, keys),
                               torch.tensor([[2.0, 0.0, 0.0, lam]]))
    # every key equally similar: no spatial preference (ones, not 0 / 0)
    same = torch.tensor([[[2.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(spatial_weights(query, same), torch.ones(1, 2))


def hand_image_map(vit_case, model, target_class):
    """ReLU(lambda_i sum_c w_c v_i^c) over the patches of the last block, w
    the gradient of the class score with respect to the class token's
    attention output before the output projection, from hooks on the
    block's own projection modules."""
    seen = {}
    if vit_case.family == "timm":
        attention = model.blocks[-1].attn
        width = attention.qkv.out_features // 3

        def qkv(module, args, output):
            seen["q"], seen["k"], seen["v"] = output.split(width, dim=-1)
        handles = [attention.qkv.register_forward_hook(qkv)]
        projection = attention.proj
    else:  # Hugging Face CLIP vision tower
        attention = model.encoder.layers[-1].self_attn
        handles = [getattr(attention, f"{name}_proj").register_forward_hook(
            lambda module, args, output, name=name: seen.__setitem__(name, output))
            for name in "qkv"]
        projection = attention.out_proj
    handles.append(projection.register_forward_pre_hook(
        lambda module, args: seen.__setitem__("o", args[0])))
    try:
        output = model(X)
    finally:
        for handle in handles:
            handle.remove()
    score = (vit_case.output_selector(output) if vit_case.output_selector else output)[0,
                                                                                        target_class]
    (grad,) = torch.autograd.grad(score, seen["o"])
    w = grad[0, 0]
    q, k, v = seen["q"][0].detach(), seen["k"][0, 1:].detach(), seen["v"][0, 1:].detach()
    cosine = torch.nn.functional.cosine_similarity(q[0][None], k, dim=-1)
    lam = (cosine - cosine.min()) / (cosine.max() - cosine.min())
    relevance = torch.relu(lam * (v @ w))
    # min-max normalised, scaled to the input, and normalised again, as every
    # method's map (the bilinear scaling misses the cells' centres)
    return scale_cam_image(scale_cam_image(relevance.reshape(1, 4, 4), (32, 32)))[0].numpy()


@pytest.mark.parametrize("family", ["timm", "hf-clip-vision"])
def test_the_image_map_is_the_papers_formula(family):
    vit_case = VIT_CASES[family]
    model = vit_case.build()
    expected = hand_image_map(vit_case, model, 2)
    cam = GradECLIP(model, output_selector=vit_case.output_selector)
    assert cam.target_layers == [cam.transformer.blocks[-1]]
    assert cam.target_layers_source == "table"
    got = cam(X, [ClassifierOutputTarget(2)])[0]
    assert got.std() > 0.05
    np.testing.assert_allclose(got, expected, atol=1e-5)


# ------------------------------------------------------------------- CLIP
@pytest.mark.parametrize("family", list(CLIPS))
def test_prompt_maps_are_maps_that_change_with_the_prompt(family):
    model = CLIPS[family]()
    maps = clip_image_maps(model, X, ["a photo of a dog", "a red car"], tokenizer=tokenizer())
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    for grayscale in maps:
        assert grayscale.min() == 0 and grayscale.max() == pytest.approx(1, abs=1e-6)
        assert grayscale.std() > 0.05
    assert np.abs(maps[0] - maps[1]).max() > 0.1
    single = clip_image_maps(model, X[0], "a red car", tokenizer=tokenizer())
    np.testing.assert_allclose(single[0], maps[1], atol=1e-6)


@pytest.mark.parametrize("family", list(CLIPS))
def test_one_score_per_word_summing_to_one(family):
    model = CLIPS[family]()
    relevance = clip_word_relevance(model, X, "a dog zxqvw photo", tokenizer=tokenizer())
    assert relevance.tokens == ["a</w>", "dog</w>", "z", "x", "q", "vw</w>", "photo</w>"]
    assert relevance.words == ["a", "dog", "zxqvw", "photo"]
    assert relevance.token_scores.shape == (7,) and relevance.word_scores.shape == (4,)
    assert relevance.token_scores.min() >= 0
    assert float(relevance.token_scores.sum()) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(relevance.word_scores,
                               [*relevance.token_scores[:2], relevance.token_scores[2:6].sum(),
                                relevance.token_scores[6]], atol=1e-6)


def test_word_relevance_is_the_papers_formula():
    """One text block (blocks=1) by hand: the gradient of the cosine
    similarity with respect to the end-of-text token's attention output,
    before the output projection, times the values, weighted by the
    min-max cosine of that token's query with every key, ReLU, the tokens
    between start and end, divided by their sum."""
    model = hf_clip_model()
    ids = torch.as_tensor(tokenizer()(["a dog in a red car"]))
    end = int((ids[0] == 49407).nonzero()[0, 0])
    attention = model.text_model.encoder.layers[-1].self_attn
    seen = {}
    handles = [getattr(attention, f"{name}_proj").register_forward_hook(
        lambda module, args, output, name=name: seen.__setitem__(name, output)) for name in "qkv"]
    handles.append(attention.out_proj.register_forward_pre_hook(
        lambda module, args: seen.__setitem__("o", args[0])))
    try:
        with torch.no_grad():
            image = torch.nn.functional.normalize(model.get_image_features(pixel_values=X)
                                                  .pooler_output, dim=-1)
        text = model.get_text_features(input_ids=ids).pooler_output
    finally:
        for handle in handles:
            handle.remove()
    score = torch.nn.functional.cosine_similarity(text, image, dim=-1)[0]
    (grad,) = torch.autograd.grad(score, seen["o"])
    q, k, v = (seen[name][0].detach() for name in "qkv")
    cosine = torch.nn.functional.cosine_similarity(q[end][None], k, dim=-1)
    lam = (cosine - cosine.min()) / (cosine.max() - cosine.min())
    relevance = torch.relu(lam * (v @ grad[0, end]))[1:end]
    expected = (relevance / relevance.sum()).numpy()
    got = clip_word_relevance(model, X, ids, tokenizer=tokenizer(), blocks=1)
    assert got.words == ["a", "dog", "in", "a", "red", "car"]
    assert expected.max() > 0
    np.testing.assert_allclose(got.token_scores, expected, atol=1e-5)


def test_words_of_each_tokenizers_markers():
    scores = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    assert words_of(["trav", "elling</w>", "a</w>", "dog</w>"], scores)[0] == \
        ["travelling", "a", "dog"]
    words, totals = words_of(["\u2581a", "\u2581do", "g", "\u2581cat"], scores)
    assert words == ["a", "dog", "cat"]
    np.testing.assert_allclose(totals, [0.1, 0.5, 0.4])
    assert words_of(["17", "4", "9", "3"], scores)[0] == ["17", "4", "9", "3"]


def test_the_model_is_left_as_it_was():
    model = open_clip_model().train()
    model.visual.conv1.weight.requires_grad_(False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    clip_image_maps(model, X, ["a dog"], tokenizer=tokenizer())
    clip_word_relevance(model, X, "a dog", tokenizer=tokenizer())
    assert all(module.training for module in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    for name, parameter in model.named_parameters():
        assert parameter.grad is None
        torch.testing.assert_close(parameter.detach(), before[name], atol=0, rtol=0)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# ------------------------------------------------------------------- errors
def test_a_model_that_is_not_clip_is_named():
    import transformers

    vision_only = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8))
    for model in (torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), vision_only):
        name = type(model).__name__
        message = (rf"model \({name}\) is not a CLIP model with an image and a text tower; "
                   r"Grad-ECLIP's maps for a prompt and its word relevance support: open_clip "
                   r"CLIP and CustomTextCLIP .*; Hugging Face CLIPModel\. For a Vision "
                   r"Transformer classifier use GradECLIP\(model\) with a class target")
        with pytest.raises(ValueError, match=message):
            clip_image_maps(model, X, ["a dog"], tokenizer=tokenizer())
        with pytest.raises(ValueError, match=message):
            clip_word_relevance(model, X, "a dog", tokenizer=tokenizer())
    with pytest.raises(ValueError, match=r"model \(Sequential\) is not and does not contain a "
                                         "Vision Transformer"):
        GradECLIP(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))


def test_bad_arguments_are_named():
    model = open_clip_model()
    with pytest.raises(ValueError, match=r"prompts are strings: pass tokenizer= "
                                         r"\(open_clip.get_tokenizer\(name\), or a Hugging Face "
                                         r"CLIPTokenizer\), got tokenizer=None"):
        clip_image_maps(model, X, ["a dog"])
    with pytest.raises(ValueError, match=r"image must be one preprocessed image, a tensor of "
                                         r"shape 3 x H x W or 1 x 3 x H x W, got Tensor of shape "
                                         r"\(2, 3, 32, 32\)"):
        clip_image_maps(model, X.expand(2, 3, 32, 32), ["a dog"], tokenizer=tokenizer())
    with pytest.raises(ValueError, match=r"blocks must be a positive int \(the text tower's last "
                                         r"blocks to use\), got 0 \(int\)"):
        clip_word_relevance(model, X, "a dog", tokenizer=tokenizer(), blocks=0)
    with pytest.raises(TypeError, match=r"text must be one prompt \(a str\) or its token ids "
                                        r"\(a tensor\), got \['a dog'\] \(list\)"):
        clip_word_relevance(model, X, ["a dog"], tokenizer=tokenizer())
    with pytest.raises(ValueError, match=r"text has no tokens between its start and end-of-text "
                                         r"tokens \(the end-of-text token is at position 1\), "
                                         r"got '' \(str\)"):
        clip_word_relevance(model, X, "", tokenizer=tokenizer())
    with pytest.raises(ValueError, match="text must be one prompt, got 2 token sequences"):
        clip_word_relevance(model, X, torch.ones(2, 16, dtype=torch.long))
