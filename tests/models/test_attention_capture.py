"""pytorch_grad_cam.attention: the attention probabilities of every
supported family, captured without changing the model.

For each tiny Vision Transformer of tests/conftest.py (torchvision; timm
fused, eager, with register tokens, distilled DeiT, without class token;
Hugging Face ViT eager and sdpa, ViTModel, DeiT with teacher, CLIP's
vision tower with and without projection; open_clip's image tower):
- the model's outputs with the capture equal those without it;
- the captured probabilities equal softmax(Q K^T * scale) computed here
  from the attention module's input and its own weights;
- they are the tensor the model multiplies with its values: a small
  change of them changes the output by the first-order amount their
  gradient predicts (float64, central differences), and editing them
  changes the output;
- nothing of the model is left changed, also when the forward raises.
"""
import threading
import warnings

import pytest
import torch
from torch import nn
from vit_cases import MORE_VIT_CASES, VIT_CASES, module_inputs  # tests/vit_cases.py

from pytorch_grad_cam import AttentionRollout, GradientWeightedAttention, LeGrad
from pytorch_grad_cam.attention import capture_attention, find_transformer, patch_grid
from pytorch_grad_cam.scoring import select_output
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
CASES = {**VIT_CASES, **MORE_VIT_CASES}


@pytest.fixture(params=list(CASES))
def vit(request):
    """Every family of conftest.py, and a few more (timm's distilled DeiT and
    a ViT without class token, Hugging Face's ViTModel and CLIP's vision
    tower with projection)."""
    return CASES[request.param]


def scores(vit, output):
    return select_output(output, vit.output_selector)


def hand_probabilities(transformer, attention, h):
    """softmax(Q K^T * scale) of one attention module, from its weights."""
    batch, tokens, width = h.shape
    if transformer.kind == "mha":
        heads = attention.num_heads
        q, k, _ = (h @ attention.in_proj_weight.T + attention.in_proj_bias).chunk(3, dim=-1)
    elif transformer.kind == "timm":
        heads = attention.num_heads
        qkv = attention.qkv(h).reshape(batch, tokens, 3, heads, width // heads)
        q, k = qkv[:, :, 0].flatten(2), qkv[:, :, 1].flatten(2)
    else:
        heads = transformer.config.num_attention_heads
        q, k = attention.q_proj(h), attention.k_proj(h)
    d = width // heads
    q = q.reshape(batch, tokens, heads, d).transpose(1, 2)
    k = k.reshape(batch, tokens, heads, d).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-2, -1) * d ** -0.5, dim=-1)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_outputs_are_unchanged_and_probabilities_are_the_softmax(vit, grad):
    model = vit.build()
    transformer = find_transformer(model)
    assert transformer.num_prefix_tokens == vit.prefix
    with torch.no_grad():
        plain = scores(vit, model(X))
    with torch.set_grad_enabled(grad), capture_attention(transformer, [0, 1]) as captured:
        output = scores(vit, model(X))
    torch.testing.assert_close(output.detach(), plain, atol=1e-5, rtol=0)
    tokens = 16 + vit.prefix
    expected = [hand_probabilities(transformer, a, h)
                for a, h in zip(transformer.attentions, module_inputs(transformer.attentions, model, X))]
    for got, want in zip(captured.attentions, expected):
        assert got.shape == (2, 2, tokens, tokens)
        torch.testing.assert_close(got.detach(), want, atol=1e-6, rtol=0)
        torch.testing.assert_close(got.detach().sum(dim=-1), torch.ones(2, 2, tokens),
                                   atol=1e-6, rtol=0)
    assert captured.runs == [1, 1]
    assert (captured.attentions[0].grad_fn is not None) == grad


def test_probabilities_are_the_tensor_the_model_multiplies(vit):
    """d(output)/dA predicts what a change of A does to the output (float64),
    and an edited A changes the output: A is used, and its gradient is the
    model's real sensitivity."""
    model = vit.build().double()
    transformer = find_transformer(model)
    x = X.double()
    weights = torch.randn(vit.outputs, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)

    def score(output):
        return (scores(vit, output) * weights).sum()

    for block in (0, 1):
        with torch.enable_grad(), capture_attention(transformer, [block]) as captured:
            base = score(model(x))
        grad = torch.autograd.grad(base, captured.attentions[0])[0]
        direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(2),
                                dtype=torch.float64)
        moved = []
        for eps in (1e-4, -1e-4):  # central differences

            def shifted(position, probs, direction=direction, eps=eps):
                return probs + eps * direction

            with torch.no_grad(), capture_attention(transformer, [block], edit=shifted):
                moved.append(score(model(x)))
        predicted = 2e-4 * (grad * direction).sum()
        assert abs(float(predicted)) > 1e-8
        # (to 1e-4: transformers computes its eager softmax in float32)
        assert float((moved[0] - moved[1]) / predicted) == pytest.approx(1, abs=1e-4)
        with torch.no_grad(), capture_attention(transformer, [block],
                                                edit=lambda p, a: torch.full_like(a, 0.05)):
            uniform = score(model(x))
        assert abs(float(uniform - base.detach())) > 1e-6


def test_capture_leaves_the_model_as_it_was(vit):
    model = vit.build()
    transformer = find_transformer(model)

    def hooks():
        return [(len(m._forward_hooks), len(m._forward_pre_hooks),
                 len(m._forward_hooks_with_kwargs), len(m._forward_pre_hooks_with_kwargs))
                for m in model.modules()]

    def attributes():
        return [{k: v for k, v in vars(m).items() if isinstance(v, (bool, int, float, str))}
                for m in model.modules()]

    before, before_attributes = hooks(), attributes()
    config = getattr(model, "config", None)
    implementation = getattr(config, "_attn_implementation", None)

    class Boom(Exception):
        pass

    def explode(position, probs):
        raise Boom

    with pytest.raises(Boom), capture_attention(transformer, [1], edit=explode, detach_inputs=True,
                           keep_outputs=True):
        model(X)
    assert hooks() == before and attributes() == before_attributes
    assert all("forward" not in vars(m) for m in model.modules())
    assert torch._C._len_torch_function_stack() == 0  # the mode is left
    if config is not None:
        assert config._attn_implementation == implementation
    with torch.no_grad():
        model(X)  # and the model runs as before


def test_detached_inputs_and_kept_outputs(vit):
    model = vit.build()
    transformer = find_transformer(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with torch.enable_grad(), capture_attention(transformer, [0, 1], detach_inputs=True,
                                                keep_outputs=True) as captured:
        model(X)
    first, second = captured.outputs
    assert captured.last_output is second and second.shape == (2, 16 + vit.prefix, 16)
    # the second block's attention depends on its own (leaf) input only
    grad = torch.autograd.grad(captured.attentions[1].sum(), captured.attentions[0],
                               allow_unused=True)[0]
    assert grad is None
    assert captured.attentions[0].requires_grad and captured.attentions[1].requires_grad


def test_a_vit_inside_a_wrapper_is_found():
    import torchvision

    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                               num_heads=2, hidden_dim=16, mlp_dim=32)
    model = nn.Sequential(nn.Identity(), vit)
    transformer = find_transformer(model)
    assert transformer.module is vit and transformer.path == "1" and transformer.wrapped
    assert transformer.blocks == tuple(vit.encoder.layers)
    assert transformer.name == "VisionTransformer at 1"


def test_unsupported_attention_is_named():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=32, image_size=32, patch_size=8)
    model = transformers.ViTForImageClassification(config).eval()
    transformer = find_transformer(model)
    model.config._attn_implementation = "flex_attention"
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="config._attn_implementation='flex_attention'.*"
                                             "allowed: 'eager', 'sdpa'"), capture_attention(transformer, [0]):
            model(X)
    finally:
        handle.remove()
    assert not calls

    from timm.models.vision_transformer import VisionTransformer

    timm_model = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2)
    timm_model.blocks[1].attn = nn.Identity()
    with pytest.raises(ValueError, match=r"block 1 \(Block\) of VisionTransformer does not use "
                                         r"timm's Attention \(its attn is Identity\)"):
        find_transformer(timm_model)


def test_patch_grid_follows_the_input_shape():
    assert patch_grid(16, (32, 32)) == (4, 4)
    assert patch_grid(8, (16, 32)) == (2, 4)
    assert patch_grid(12, (48, 64)) == (3, 4)
    assert patch_grid(7, (32, 32)) == (1, 7)  # a prime count: one row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="no patch tokens"):
            patch_grid(0, (32, 32))


@pytest.mark.parametrize("family", list(MORE_VIT_CASES))
def test_every_method_on_the_more_families(family):
    """Beyond the families the guarantees run on: a batch equals single
    calls, and the maps are maps, for every attention method."""
    vit = MORE_VIT_CASES[family]
    model = vit.build()
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    for method in (LeGrad, AttentionRollout, GradientWeightedAttention):
        cam = method(model, output_selector=vit.output_selector)
        maps = cam(X, targets)
        singles = torch.cat([torch.from_numpy(cam(X[i:i + 1], targets[i:i + 1]))
                             for i in range(2)])
        assert maps.shape == (2, 32, 32) and maps.min() >= 0
        assert float(maps.max()) == pytest.approx(1, abs=1e-6)
        torch.testing.assert_close(torch.from_numpy(maps), singles, atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [{"detach_inputs": True}, {"leaf_input": True}])
def test_a_keyword_hook_called_without_keywords_by_another_thread_does_nothing(vit, options):
    """torch registers and removes a hook that takes keyword arguments in two
    steps (the hook, then its with_kwargs flag): a forward pass of another
    thread in between calls it with (module, args) only. Such a call is not
    the capturing thread's and must leave the input alone, not raise."""
    model = vit.build()
    transformer = find_transformer(model)
    block = transformer.blocks[0]
    outcomes = []
    with capture_attention(transformer, [0], **options):
        hooks = [hook for hook_id, hook in block._forward_pre_hooks.items()
                 if hook_id in block._forward_pre_hooks_with_kwargs]
        assert hooks
        tokens = torch.randn(1, 5, 8)

        def other_thread():
            try:
                outcomes.extend(hook(block, (tokens,)) for hook in hooks)
            except BaseException as error:  # reported below
                outcomes.append(error)

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(30)
    assert outcomes == [None] * len(hooks)
