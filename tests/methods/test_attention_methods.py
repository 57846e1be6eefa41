"""LeGrad, attention rollout and gradient-weighted attention: every formula
checked against maps computed here by hand on tiny Vision Transformers,
then their options, targets, target layers and heads.

The hand computations run a torchvision VisionTransformer in explicit
operations (``hand_forward``): every block's attention probabilities are
computed from the block's own weights and multiplied with its values, so
the gradient of any score with respect to them is exact; LeGrad's
per-block gradients are taken one block at a time, without the library's
one-pass trick. The models have
1 x 1 patches on 4 x 4 images, so the patch grid is the map's resolution
and no resizing is involved; they run in float64.
"""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from vit_cases import module_inputs  # tests/vit_cases.py

from pytorch_grad_cam import METHODS, AttentionRollout, GradientWeightedAttention, LeGrad
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    SimilarityToConceptTarget,
)

CLASSES = 3


def tiny_vit(layers=2, seed=0):
    """A float64 torchvision ViT: 4 x 4 images in 1 x 1 patches (16 patch
    tokens and the class token), width 8, 2 heads."""
    torch.manual_seed(seed)
    model = torchvision.models.VisionTransformer(
        image_size=4, patch_size=1, num_layers=layers, num_heads=2, hidden_dim=8, mlp_dim=16,
        num_classes=CLASSES)
    torch.nn.init.normal_(model.heads.head.weight, std=1.0)
    with torch.no_grad():
        model.encoder.pos_embedding.normal_(std=1.0)  # a non-trivial attention pattern
    return model.double().eval()


def images(count=2, seed=1):
    return torch.randn(count, 3, 4, 4, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def hand_forward(model, x):
    """(logits, attention probabilities, block outputs) of a torchvision
    ViT, in explicit operations; each block's probabilities are the tensor
    multiplied with the values, in the autograd graph (the parameters
    require grad), so that autograd gives the total derivative of a score
    with respect to them."""
    batch = x.shape[0]
    tokens = model.conv_proj(x).flatten(2).transpose(1, 2)
    h = torch.cat([model.class_token.expand(batch, -1, -1), tokens], dim=1)
    h = h + model.encoder.pos_embedding
    attentions, outputs = [], []
    for block in model.encoder.layers:
        mha = block.self_attention
        heads, width = mha.num_heads, h.shape[-1]
        d = width // heads
        y = block.ln_1(h)
        q, k, v = (y @ mha.in_proj_weight.T + mha.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, d).transpose(1, 2) for t in (q, k, v))
        probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        attentions.append(probs)
        context = (probs @ v).transpose(1, 2).reshape(batch, -1, width)
        h = h + mha.out_proj(context)
        h = h + block.mlp(block.ln_2(h))
        outputs.append(h)
    logits = model.heads(model.encoder.ln(h)[:, 0])
    return logits, attentions, outputs


def normalise(maps):
    """Min-max per image, as every map is normalised."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    span = np.where(high > low, high - low, 1.0)
    return (maps - low[:, None, None]) / span[:, None, None]


def grid(relevance, prefix=1):
    """B x N token relevances -> B x 4 x 4 patch maps."""
    relevance = np.asarray(relevance)
    return relevance[:, prefix:].reshape(len(relevance), 4, 4)


def test_the_hand_forward_is_the_model():
    model, x = tiny_vit(), images()
    logits, attentions, _ = hand_forward(model, x)
    with torch.no_grad():
        np.testing.assert_allclose(logits.detach().numpy(), model(x).numpy(), atol=1e-12)
    assert [tuple(a.shape) for a in attentions] == [(2, 2, 17, 17)] * 2


# ------------------------------------------------------------- rollout
def hand_rollout(attentions, fusion, ratio, class_token=True, prefix=1):
    """Attention rollout with numpy loops, one image at a time."""
    maps = []
    for image in range(attentions[0].shape[0]):
        tokens = attentions[0].shape[-1]
        rollout = np.eye(tokens)
        for attention in attentions:
            a = attention[image].detach().numpy()
            fused = {"mean": a.mean(axis=0), "max": a.max(axis=0), "min": a.min(axis=0)}[fusion]
            fused = fused.copy()
            candidates = [(i, j) for i in range(tokens) for j in range(tokens)
                          if not (class_token and j == 0)]
            count = int(ratio * len(candidates))
            for i, j in sorted(candidates, key=lambda ij: fused[ij])[:count]:
                fused[i, j] = 0.0
            mixed = (fused + np.eye(tokens)) / 2
            mixed = mixed / mixed.sum(axis=1, keepdims=True)
            rollout = mixed @ rollout
        row = rollout[0] if class_token else rollout.mean(axis=0)
        maps.append(row)
    return grid(np.stack(maps), prefix)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_is_the_product_of_the_fused_attention_plus_identity(fusion, ratio):
    model, x = tiny_vit(), images()
    _, attentions, _ = hand_forward(model, x)
    expected = normalise(hand_rollout(attentions, fusion, ratio))
    cam = AttentionRollout(model, head_fusion=fusion, discard_ratio=ratio)
    maps = cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    assert maps.shape == (2, 4, 4) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    # the fusions and ratios give different maps (none of them is ignored)
    if (fusion, ratio) != ("mean", 0.0):
        plain = normalise(hand_rollout(attentions, "mean", 0.0))
        assert np.abs(expected - plain).max() > 0.05


def test_rollout_discard_keeps_the_class_tokens_column():
    """By hand: the 3 weakest of the 6 entries outside column 0 go; column 0
    stays although it holds the smallest values."""
    model = tiny_vit()
    cam = AttentionRollout(model, discard_ratio=0.5)
    fused = torch.tensor([[[0.10, 0.50, 0.40],
                           [0.05, 0.90, 0.05],
                           [0.01, 0.20, 0.79]]], dtype=torch.float64)
    expected = torch.tensor([[[0.10, 0.50, 0.00],
                              [0.05, 0.90, 0.00],
                              [0.01, 0.00, 0.79]]], dtype=torch.float64)
    torch.testing.assert_close(cam.discard(fused), expected)
    # the second image of a batch is discarded on its own
    both = cam.discard(torch.cat([fused, fused.flip(2)]))
    torch.testing.assert_close(both[0], expected[0])
    assert (both[1] == 0).sum() == 3


def test_rollout_of_a_model_without_class_token_is_the_mean_of_the_rows():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=4, patch_size=1, embed_dim=8, depth=2, num_heads=2,
                              num_classes=CLASSES, class_token=False, global_pool="avg",
                              reg_tokens=1).double().eval()
    with torch.no_grad():
        model.pos_embed.normal_(std=1.0)
    x = images()
    # the attention of every block by hand, from its input and its weights
    inputs = module_inputs([b.attn for b in model.blocks], model, x)
    attentions = []
    for block, h in zip(model.blocks, inputs):
        qkv = block.attn.qkv(h).reshape(2, 17, 3, 2, 4).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        attentions.append(torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1))
    expected = normalise(hand_rollout(attentions, "max", 0.3, class_token=False, prefix=1))
    maps = AttentionRollout(model, head_fusion="max", discard_ratio=0.3)(x, None)
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_rollout_does_not_depend_on_the_target():
    model, x = tiny_vit(), images()
    cam = AttentionRollout(model)
    first = cam(x, [ClassifierOutputTarget(0)] * 2)
    np.testing.assert_array_equal(first, cam(x, [ClassifierOutputTarget(2)] * 2))
    np.testing.assert_array_equal(first, cam(x))
    assert np.abs(first[0] - first[1]).max() > 0.05  # but on the image


# ------------------------------------------------ gradient-weighted attention
def hand_gradient_attention(model, x, categories):
    logits, attentions, _ = hand_forward(model, x)
    score = logits[torch.arange(len(x)), torch.tensor(categories)].sum()
    grads = torch.autograd.grad(score, attentions)
    maps = []
    for image in range(len(x)):
        relevance = np.eye(attentions[0].shape[-1])
        for a, g in zip(attentions, grads):
            weighted = np.maximum(g[image].numpy() * a[image].detach().numpy(), 0).mean(axis=0)
            relevance = relevance + weighted @ relevance
        maps.append(relevance[0])
    return normalise(grid(np.stack(maps)))


def test_gradient_weighted_attention_formula():
    model, x = tiny_vit(), images()
    categories = [2, 0]
    expected = hand_gradient_attention(model, x, categories)
    cam = GradientWeightedAttention(model)
    maps = cam(x, [ClassifierOutputTarget(c) for c in categories])
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    other = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(1)])
    assert np.abs(other - maps).max() > 0.05  # the target matters


def test_gradient_weighted_attention_of_some_blocks():
    """Only the given blocks enter R (in forward order, whatever the order given)."""
    model, x = tiny_vit(layers=3), images()
    logits, attentions, _ = hand_forward(model, x)
    score = logits[:, 1].sum()
    grads = torch.autograd.grad(score, attentions)
    maps = []
    for image in range(2):
        relevance = np.eye(17)
        for index in (0, 2):
            weighted = np.maximum(grads[index][image].numpy()
                                  * attentions[index][image].detach().numpy(), 0).mean(axis=0)
            relevance = relevance + weighted @ relevance
        maps.append(relevance[0])
    layers = [model.encoder.layers[2], "encoder.layers[0]"]
    cam = GradientWeightedAttention(model, target_layers=layers)
    assert cam.target_layers == [model.encoder.layers[0], model.encoder.layers[2]]
    np.testing.assert_allclose(cam(x, [ClassifierOutputTarget(1)] * 2),
                               normalise(grid(np.stack(maps))), atol=1e-5)


# ------------------------------------------------------------------ LeGrad
def block_scores(model, outputs, categories, pooling):
    """Every block's own score: the model's final norm and head on its
    tokens (their mean, or the class token)."""
    scores = []
    for h in outputs:
        pooled = h.mean(dim=1) if pooling == "mean" else h[:, 0]
        logits = model.heads(model.encoder.ln(pooled))
        scores.append(logits[torch.arange(len(h)), torch.tensor(categories)].sum())
    return scores


def hand_legrad(model, x, categories, pooling, leak=False):
    """LeGrad by hand: each block's gradient taken on its own (with
    ``leak``, the gradient of the sum of all blocks' scores instead: what
    the map would be if later blocks' gradients leaked in)."""
    _, attentions, outputs = hand_forward(model, x)
    scores = block_scores(model, outputs, categories, pooling)
    if leak:
        grads = torch.autograd.grad(sum(scores), attentions)
    else:
        grads = [torch.autograd.grad(s, a, retain_graph=True)[0]
                 for s, a in zip(scores, attentions)]
    per_block = [torch.relu(g).mean(dim=(1, 2)).numpy() for g in grads]
    return normalise(grid(np.mean(per_block, axis=0)))


@pytest.mark.parametrize("pooling", ["mean", "model"])
def test_legrad_formula(pooling):
    model, x = tiny_vit(layers=3), images()
    categories = [1, 2]
    targets = [ClassifierOutputTarget(c) for c in categories]
    expected = hand_legrad(model, x, categories, pooling)
    maps = LeGrad(model, pooling=pooling)(x, targets)
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_legrad_takes_each_blocks_gradient_of_its_own_score_only():
    """The gradients of later blocks' scores (which depend on earlier
    blocks' attention) would give another map: ours is the isolated one."""
    model, x = tiny_vit(layers=3), images()
    categories = [0, 2]
    isolated = hand_legrad(model, x, categories, "mean")
    leaked = hand_legrad(model, x, categories, "mean", leak=True)
    assert np.abs(isolated - leaked).max() > 0.05  # the test can tell them apart
    maps = LeGrad(model)(x, [ClassifierOutputTarget(c) for c in categories])
    np.testing.assert_allclose(maps, isolated, atol=1e-5)


def test_legrad_of_one_block_and_of_the_targets():
    model, x = tiny_vit(layers=3), images()
    _, attentions, outputs = hand_forward(model, x)
    score = block_scores(model, outputs, [1, 1], "model")[1]
    grad = torch.autograd.grad(score, attentions[1])[0]
    expected = normalise(grid(torch.relu(grad).mean(dim=(1, 2)).numpy()))
    cam = LeGrad(model, target_layers=["encoder.layers[1]"], pooling="model")
    np.testing.assert_allclose(cam(x, [ClassifierOutputTarget(1)] * 2), expected, atol=1e-5)
    # None: each image's top class; a callable target: what it scores
    top = model(x).argmax(dim=1).tolist()
    np.testing.assert_allclose(cam(x), cam(x, [ClassifierOutputTarget(c) for c in top]),
                               atol=1e-6)
    softmax = cam(x, [ClassifierOutputSoftmaxTarget(1)] * 2)
    assert np.abs(softmax - cam(x, [ClassifierOutputTarget(1)] * 2)).max() > 1e-3
    assert np.abs(cam(x, [ClassifierOutputTarget(0)] * 2)
                  - cam(x, [ClassifierOutputTarget(2)] * 2)).max() > 0.05


def test_map_is_upsampled_to_the_input_like_every_method():
    """8 x 8 patches on 32 x 32 images: the 4 x 4 map, normalised, resized
    bilinearly and normalised again."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16,
        num_classes=CLASSES).double().eval()
    with torch.no_grad():
        model.encoder.pos_embedding.normal_(std=1.0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cam = AttentionRollout(model)
    maps = cam(x)
    rollout_only = AttentionRollout(model)
    relevance = {}
    original = rollout_only.token_relevance

    def spy(attentions, grads):
        relevance["value"] = original(attentions, grads)
        return relevance["value"]

    rollout_only.token_relevance = spy
    rollout_only(x)
    small = torch.from_numpy(normalise(relevance["value"][:, 1:].reshape(2, 4, 4).numpy()))
    big = F.interpolate(small[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(maps, normalise(big[:, 0].numpy()), atol=1e-5)
    assert maps.shape == (2, 32, 32) and maps.min() == 0 and maps.max() == 1


# --------------------------------------------------- arguments and errors
def test_options_are_checked_before_any_work():
    model = tiny_vit()
    with pytest.raises(ValueError, match="head_fusion must be one of 'mean', 'max', 'min', got "
                                         "'avg'"):
        AttentionRollout(model, head_fusion="avg")
    with pytest.raises(ValueError, match=r"discard_ratio must be in \[0, 1\), got 1"):
        AttentionRollout(model, discard_ratio=1)
    with pytest.raises(TypeError, match="discard_ratio must be a number"):
        AttentionRollout(model, discard_ratio="0.5")
    with pytest.raises(ValueError, match="pooling must be one of 'mean', 'model', got 'cls'"):
        LeGrad(model, pooling="cls")
    with pytest.raises(TypeError, match="head must be a callable"):
        LeGrad(model, head=3)
    with pytest.raises(ValueError, match="uses_gradients=False: LeGrad needs gradients"):
        LeGrad(model, uses_gradients=False)
    with pytest.raises(ValueError, match="uses_gradients=True: AttentionRollout takes no "
                                         "gradients"):
        AttentionRollout(model, uses_gradients=True)


def test_the_seeds_target_layer_argument_names_one_block():
    model, x = tiny_vit(), images()
    with pytest.warns(DeprecationWarning, match="target_layer= is deprecated"):
        cam = LeGrad(model, target_layer=model.encoder.layers[1])
    assert cam.target_layers == [model.encoder.layers[1]]
    np.testing.assert_allclose(cam(x), LeGrad(model, target_layers=["encoder.layers[1]"])(x),
                               atol=0)


def test_target_layers_must_be_blocks(attention_method):
    method = METHODS[attention_method]
    model = tiny_vit()
    # every block by default, or the last (the method's ``default_blocks``)
    every = method.default_blocks == "all"
    with pytest.raises(ValueError, match=r"target_layers\[0\] \(encoder.layers.encoder_layer_1"
                                         r".ln_1, a LayerNorm\) is not a transformer block of "
                                         r"VisionTransformer.*leave target_layers out to use "
                                         + ("all 2" if every else "the last")):
        method(model, target_layers=[model.encoder.layers[1].ln_1])
    with pytest.raises(ValueError, match=r"target_layers\[1\] repeats target_layers\[0\]"):
        method(model, target_layers=[model.encoder.layers[1], "encoder.layers[-1]"])
    cam = method(model)
    assert cam.target_layers == list(model.encoder.layers)[0 if every else -1:]
    assert cam.target_layers_source == "table"
    with pytest.raises(ValueError, match="eigen_smooth=True: .* no channels to project"):
        cam(images(), eigen_smooth=True)
    with pytest.warns(UserWarning, match="ignores reshape_transform"):
        ignored = method(model, reshape_transform=lambda t: t)
    np.testing.assert_allclose(ignored(images()), cam(images()), atol=0)


def test_unsupported_models_are_named_before_any_forward_pass(attention_method):
    method = METHODS[attention_method]
    calls = []
    cnn = torchvision.models.resnet18(weights=None)
    swin = torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1],
                                              num_heads=[1, 1], window_size=[2, 2])
    for model, name in ((cnn, "ResNet"), (swin, "SwinTransformer")):
        handle = model.register_forward_pre_hook(lambda m, a: calls.append(1))
        try:
            with pytest.raises(ValueError, match=rf"model \({name}\) is not and does not contain "
                                                 r"a Vision Transformer.*torchvision "
                                                 r"VisionTransformer; timm VisionTransformer"):
                method(model)
        finally:
            handle.remove()
    assert not calls
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        method("vit")


# ------------------------------------------------------ heads and wrappers
class Embedding(torch.nn.Module):
    """The CLIP recipe of docs/recipes.md: the image embedding of a CLIPModel."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        return self.clip.get_image_features(pixel_values=x).pooler_output


class Similarities(Embedding):
    """Cosine similarities of the image to fixed prompt embeddings."""

    def __init__(self, clip, prompts):
        super().__init__(clip)
        self.prompts = prompts

    def forward(self, x):
        return F.normalize(super().forward(x), dim=-1) @ self.prompts.T


@pytest.fixture(scope="module")
def clip():
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 32},
        vision_config={"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "intermediate_size": 32, "image_size": 32, "patch_size": 8},
        projection_dim=8)
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        text = model.get_text_features(input_ids=torch.tensor([[49406, 320, 1125, 49407],
                                                               [49406, 320, 2368, 49407]]))
    return model, F.normalize(text.pooler_output, dim=-1)


def test_clip_recipe_with_every_attention_method(clip):
    model, prompts = clip
    wrapper = Embedding(model)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in (LeGrad, AttentionRollout, GradientWeightedAttention):
        cam = method(wrapper)
        assert cam.target_layers == list(model.vision_model.encoder.layers)
        cat = cam(x, [SimilarityToConceptTarget(prompts[0])])
        dog = cam(x, [SimilarityToConceptTarget(prompts[1])])
        assert cat.shape == (1, 32, 32) and cat.max() == pytest.approx(1, abs=1e-6)
        if method is not AttentionRollout:
            assert np.abs(cat - dog).max() > 0.02, method.__name__  # another prompt, another map


def test_legrad_needs_head_for_a_wrapper_that_does_more(clip):
    model, prompts = clip
    wrapper = Similarities(model, prompts)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"the head of CLIPModel at clip \(post_layernorm on the "
                                         r"class token, then visual_projection.*shape \(2, 8\) "
                                         r"on the last block where the model's output is shape "
                                         r"\(2, 2\).*Pass head=lambda tokens"):
        LeGrad(wrapper)(x, [ClassifierOutputTarget(0)] * 2)
    vision = model.vision_model

    def head(tokens):
        embedding = model.visual_projection(vision.post_layernorm(tokens[:, 0]))
        return F.normalize(embedding, dim=-1) @ prompts.T

    cam = LeGrad(wrapper, head=head)
    maps = cam(x, [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    # the similarity to prompt 0 is the cosine similarity of the embedding:
    # the same map as the embedding model's with SimilarityToConceptTarget
    expected = LeGrad(Embedding(model))(x, [SimilarityToConceptTarget(prompts[0]),
                                            SimilarityToConceptTarget(prompts[1])])
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    # a head that does not reproduce the model's output is refused
    with pytest.raises(ValueError, match="head= gives shape"):
        LeGrad(wrapper, head=lambda tokens: tokens[:, 0])(x, [ClassifierOutputTarget(0)] * 2)


def test_gradient_methods_agree_across_attention_implementations():
    """A Hugging Face ViT with "eager" and with "sdpa" attention: the same maps."""
    transformers = pytest.importorskip("transformers")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=32,
                                        image_size=32, patch_size=8, num_labels=5,
                                        attn_implementation=implementation)
        model = transformers.ViTForImageClassification(config).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            maps[implementation] = [method(model)(x, [ClassifierOutputTarget(3)] * 2)
                                    for method in (LeGrad, AttentionRollout,
                                                   GradientWeightedAttention)]
        assert model.config._attn_implementation == implementation
    for eager, sdpa in zip(maps["eager"], maps["sdpa"]):
        np.testing.assert_allclose(eager, sdpa, atol=1e-5)
