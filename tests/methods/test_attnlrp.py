"""AttnLRP: each rule checked by hand on tiny tensors, the whole method
against an LRP computed here in explicit operations, its cost (one
forward and one backward pass), and that it patches nothing and stays in
its thread. The guarantees every attention method owes run on it in
tests/methods/test_attention_guarantees.py (generated from the registry).
"""
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from fault_helpers import Counter, Gate  # tests/fault_helpers.py
from torch import nn
from vit_cases import MORE_VIT_CASES, VIT_CASES  # tests/vit_cases.py

from pytorch_grad_cam import METHODS, AttnLRP
from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.attnlrp_rules import lrp_rules
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def leaf(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64).requires_grad_(True)


def ruled_grads(fn, *inputs, model=None):
    """The gradients of ``fn(*inputs).sum()`` built under the rules."""
    with lrp_rules(model if model is not None else nn.Identity()):
        output = fn(*inputs)
    return output, torch.autograd.grad(output.sum(), inputs)


# ---------------------------------------------------------------- the rules
def test_softmax_rule_is_the_papers():
    """R(x_i) = x_i (R_i - s_i sum_j R_j), R_j = s_j c_j for the score
    sum_j c_j s_j (Proposition 3.1 of the paper)."""
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25]], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[1.0, 2.0, -1.0, 3.0]], dtype=torch.float64)
    _, (grad,) = ruled_grads(lambda t: torch.softmax(t, dim=-1) * c, x)
    s = torch.softmax(x.detach(), dim=-1)
    r_out = s * c
    expected = x.detach() * (r_out - s * r_out.sum())
    torch.testing.assert_close(x.detach() * grad, expected, rtol=1e-12, atol=1e-12)


def test_uniform_rule_halves_each_factor_of_a_product_of_activations():
    a, b = leaf(2, 3, seed=1), leaf(3, 2, seed=2)
    output, (grad_a, grad_b) = ruled_grads(torch.matmul, a, b)
    plain_a, plain_b = torch.autograd.grad((a @ b).sum(), (a, b))
    torch.testing.assert_close(grad_a, 0.5 * plain_a)
    torch.testing.assert_close(grad_b, 0.5 * plain_b)
    # conservation: the two factors share the product's relevance
    total = (a * grad_a).sum() + (b * grad_b).sum()
    torch.testing.assert_close(total, output.sum())
    for product in (lambda p, q: p @ q, lambda p, q: torch.bmm(p[None], q[None])[0],
                    lambda p, q: p.matmul(q)):
        _, grads = ruled_grads(product, a, b)
        torch.testing.assert_close(grads[0], 0.5 * plain_a)


def test_a_product_with_a_frozen_weight_is_a_linear_layer():
    a, weight = leaf(2, 3, seed=1), torch.randn(3, 2, dtype=torch.float64)
    _, (grad,) = ruled_grads(lambda t: t @ weight, a)
    torch.testing.assert_close(grad, torch.ones(2, 2, dtype=torch.float64) @ weight.T)


def test_layer_norm_identity_rule():
    """y = (x - mean) / std * w + b with std a constant of the backward
    pass: gradient (g w / std) minus its mean; forward values unchanged."""
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.5, 2.0, -1.0, 1.5], dtype=torch.float64)
    b = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    g = torch.tensor([[1.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    with lrp_rules(nn.Identity()):
        y = F.layer_norm(x, (4,), w, b, 1e-5)
    (grad,) = torch.autograd.grad((y * g).sum(), x)
    assert torch.equal(y, F.layer_norm(x, (4,), w, b, 1e-5))
    std = torch.sqrt(x.detach().var(unbiased=False) + 1e-5)
    scaled = g * w / std
    torch.testing.assert_close(grad, scaled - scaled.mean(), rtol=1e-12, atol=1e-12)
    # the layer is linear in x: x * gradient sums to the output's relevance less the bias's
    torch.testing.assert_close((x * grad).sum(), (g * (y - b)).sum())


def test_rms_norm_identity_rule():
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.5, 2.0, -1.0, 1.5], dtype=torch.float64)
    y, (grad,) = ruled_grads(lambda t: F.rms_norm(t, (4,), w, 1e-6), x)
    rms = torch.sqrt(x.detach().pow(2).mean() + 1e-6)
    torch.testing.assert_close(grad, (w / rms).expand(1, 4), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close((x * grad).sum(), y.sum())


@pytest.mark.parametrize("activation", [F.gelu, F.silu, nn.GELU(), nn.SiLU()],
                         ids=["gelu", "silu", "nn.GELU", "nn.SiLU"])
def test_identity_rule_on_elementwise_activations(activation):
    """R(x) = R(f(x)): the gradient is f(x) / (x + 1e-10)."""
    x = torch.tensor([[-2.0, -0.5, 0.3, 1.5]], dtype=torch.float64, requires_grad=True)
    y, (grad,) = ruled_grads(activation, x)
    assert torch.equal(y, activation(x))
    torch.testing.assert_close(grad, y.detach() / (x.detach() + 1e-10))
    torch.testing.assert_close(x * grad, y.detach())


def test_identity_rule_on_a_composite_activation_module():
    """CLIP's QuickGELU is x * sigmoid(1.702 x), several torch functions:
    a forward hook gives its output the identity rule."""
    from transformers.activations import QuickGELUActivation

    module = QuickGELUActivation()
    x = leaf(1, 5, seed=3)
    y, (grad,) = ruled_grads(module, x, model=module)
    torch.testing.assert_close(x * grad, y.detach())
    assert not module._forward_hooks  # removed with the rules


def test_scaled_dot_product_attention_gets_the_uniform_rule():
    """Q K^T and A V: the gradients of Q and K are a quarter of the plain
    ones (half at A V, half again at Q K^T), V's half, as lxt divides them;
    the values are the kernel's."""
    q, k, v = leaf(1, 2, 5, 4, seed=4), leaf(1, 2, 5, 4, seed=5), leaf(1, 2, 5, 4, seed=6)
    output, grads = ruled_grads(F.scaled_dot_product_attention, q, k, v)
    plain = F.scaled_dot_product_attention(q, k, v)
    assert torch.equal(output, plain)
    # the same as the explicit softmax(Q K^T / sqrt(d)) V with both products halved
    with lrp_rules(nn.Identity()):
        explicit = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1) @ v
    torch.testing.assert_close(explicit, plain)
    for grad, other in zip(grads, torch.autograd.grad(explicit.sum(), (q, k, v))):
        torch.testing.assert_close(grad, other)
    for grad, factor, expected in zip(grads, (0.25, 0.25, 0.5),
                                      torch.autograd.grad(plain.sum(), (q, k, v))):
        torch.testing.assert_close(grad, factor * expected)


def test_conservation_in_a_bias_free_network_without_softmax():
    """LayerNorm, linear layers, GELU and a product of two activations, no
    bias: the input's relevance sums to the output (every rule conserves)."""
    torch.manual_seed(0)
    norm = nn.LayerNorm(6, bias=False).double()
    first, second = nn.Linear(6, 6, bias=False).double(), nn.Linear(6, 6, bias=False).double()
    for parameter in (*norm.parameters(), *first.parameters(), *second.parameters()):
        parameter.requires_grad_(False)

    def network(x):
        h = second(F.gelu(first(norm(x))))
        return (h @ h.transpose(-2, -1)).sum(dim=(-2, -1))

    x = leaf(2, 3, 6, seed=7)
    output, (grad,) = ruled_grads(network, x)
    torch.testing.assert_close((x * grad).sum(dim=(1, 2)), output.detach())


# ------------------------------------------------ the method, by hand
def tiny_vit(seed=0):
    """A float64 torchvision ViT on 4 x 4 images in 1 x 1 patches."""
    torch.manual_seed(seed)
    model = torchvision.models.VisionTransformer(
        image_size=4, patch_size=1, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16,
        num_classes=3)
    nn.init.normal_(model.heads.head.weight, std=1.0)
    with torch.no_grad():
        model.encoder.pos_embedding.normal_(std=1.0)
    return model.double().eval()


def half(t):
    """Value t, gradient halved (the uniform rule written with detach)."""
    return 0.5 * t + 0.5 * t.detach()


def lrp_by_hand(model, x, category):
    """The relevance of the input pixels of a torchvision ViT, in explicit
    operations with the rules written as detached factors: LayerNorm with
    its std detached, GELU as x * (gelu(x) / x) detached, Q, K, A and V
    with halved gradients, the softmax as it is."""
    x = x.clone().requires_grad_(True)

    def norm(layer, h):
        mean = h.mean(-1, keepdim=True)
        std = torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + layer.eps).detach()
        return (h - mean) / std * layer.weight + layer.bias

    batch = x.shape[0]
    tokens = model.conv_proj(x).flatten(2).transpose(1, 2)
    h = torch.cat([model.class_token.expand(batch, -1, -1), tokens], dim=1)
    h = h + model.encoder.pos_embedding
    for block in model.encoder.layers:
        mha = block.self_attention
        heads, width = mha.num_heads, h.shape[-1]
        d = width // heads
        y = norm(block.ln_1, h)
        q, k, v = (y @ mha.in_proj_weight.T + mha.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, d).transpose(1, 2) for t in (q, k, v))
        probs = torch.softmax(half(q) @ half(k).transpose(-2, -1) / math.sqrt(d), dim=-1)
        context = (half(probs) @ half(v)).transpose(1, 2).reshape(batch, -1, width)
        h = h + mha.out_proj(context)
        pre = block.mlp[0](norm(block.ln_2, h))
        activated = pre * (F.gelu(pre) / (pre + 1e-10)).detach()
        h = h + block.mlp[3](activated)
    logits = model.heads(norm(model.encoder.ln, h)[:, 0])
    (grad,) = torch.autograd.grad(logits[:, category].sum(), x)
    return (x * grad).sum(dim=1).detach()


def test_pixel_relevance_is_lrp_computed_by_hand():
    model = tiny_vit()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cam = AttnLRP(model)
    maps = cam(x, [ClassifierOutputTarget(2)] * 2)
    expected = lrp_by_hand(model, x, 2)
    torch.testing.assert_close(cam.relevance.double(), expected, rtol=1e-5, atol=1e-9)
    positive = expected.clamp(min=0).flatten(1)
    low, high = positive.min(1, keepdim=True)[0], positive.max(1, keepdim=True)[0]
    np.testing.assert_allclose(maps, ((positive - low) / (high - low)).reshape(2, 4, 4).numpy(),
                               atol=1e-5)


def test_token_relevance_of_a_block():
    """With target_layers the map is the relevance of the blocks' patch
    tokens (x * gradient summed over the channels); the head reads only
    the class token, so the last block's patch tokens get none."""
    model = tiny_vit()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    layers = model.encoder.layers
    cam = AttnLRP(model, target_layers=[layers[0], layers[1]])
    maps = cam(x, [ClassifierOutputTarget(2)] * 2)
    assert cam.relevance.shape == (2, 2, 4, 4)
    assert torch.all(cam.relevance[:, 1] == 0)
    first = AttnLRP(model, target_layers=[layers[0]])
    first_maps = first(x, [ClassifierOutputTarget(2)] * 2)
    torch.testing.assert_close(first.relevance[:, 0], cam.relevance[:, 0])
    assert first_maps.std() > 0.1
    np.testing.assert_allclose(maps, first_maps, atol=1e-6)  # the mean with zeros, rescaled


def test_every_family_gives_a_map_and_the_implementations_agree():
    relevance = {}
    for name, vit in {**VIT_CASES, **MORE_VIT_CASES}.items():
        model = vit.build()
        cam = AttnLRP(model, output_selector=vit.output_selector)
        maps = cam(X, TARGETS)
        assert maps.shape == (2, 32, 32) and maps.std() > 0.05, name
        relevance[name] = cam.relevance
        assert cam.relevance.shape == (2, 32, 32) and torch.isfinite(cam.relevance).all()
    # the same model computed by the fused kernel or explicitly: the same relevance
    torch.testing.assert_close(relevance["timm"], relevance["timm-eager"], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(relevance["hf-vit-eager"], relevance["hf-vit-sdpa"], rtol=1e-4,
                               atol=1e-7)


# --------------------------------------------------------- cost and state
def test_one_forward_and_one_backward_pass(vit, monkeypatch):
    model = vit.build()
    cam = get_method("attnlrp").cls(model, output_selector=vit.output_selector)
    counter = Counter(model, monkeypatch)
    try:
        cam(X, TARGETS)
    finally:
        counter.handle.remove()
    assert (counter.forwards, counter.backwards) == (1, 1)


FUNCTIONS = {"F.softmax": F.softmax, "F.layer_norm": F.layer_norm, "F.gelu": F.gelu,
             "F.scaled_dot_product_attention": F.scaled_dot_product_attention,
             "F.multi_head_attention_forward": F.multi_head_attention_forward,
             "torch.matmul": torch.matmul, "Tensor.__matmul__": torch.Tensor.__matmul__}


def patched_state(model):
    """What a monkey patch would change: every module's forward (its class's
    and its own), and the torch functions AttnLRP gives rules to."""
    modules = [(name, type(m).forward, vars(m).get("forward"))
               for name, m in model.named_modules()]
    functions = {name: getattr(F if name.startswith("F.") else
                               (torch.Tensor if name.startswith("Tensor") else torch),
                               name.split(".")[-1]) for name in FUNCTIONS}
    return modules, functions


@pytest.mark.parametrize("family", ["torchvision", "timm", "hf-clip-vision"])
def test_nothing_is_patched_during_or_after_the_call(family):
    vit = VIT_CASES[family]
    model = vit.build()
    before = patched_state(model)
    during = []
    block = find_transformer(model).blocks[-1]
    handle = block.register_forward_hook(lambda m, i, o: during.append(patched_state(model)))
    try:
        AttnLRP(model, output_selector=vit.output_selector)(X, TARGETS)
    finally:
        handle.remove()
    assert len(during) == 1
    for state in (during[0], patched_state(model)):
        assert state[0] == before[0]
        assert all(state[1][name] is FUNCTIONS[name] for name in FUNCTIONS)
    assert torch._C._len_torch_function_stack() == 0


class Gated(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit, self.gate = vit, Gate()

    def forward(self, x):
        return self.gate(self.vit(x).pooler_output)


def test_the_rules_stay_in_the_calling_thread():
    """Thread A stops after its forward pass under the rules (the function
    mode and the QuickGELU hooks active); meanwhile the main thread's plain
    gradient of the same model is the plain gradient."""
    model = Gated(VIT_CASES["hf-clip-vision"].build())
    x = X[:1].clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(x)[0, 1], x)
    expected = AttnLRP(model)(X[:1], TARGETS[:1])
    got = {}
    model.gate.hold = "A"
    thread = threading.Thread(name="A", target=lambda: got.update(
        a=AttnLRP(model)(X[:1], TARGETS[:1])))
    thread.start()
    try:
        assert model.gate.reached.wait(30)
        (during,) = torch.autograd.grad(model(x)[0, 1], x)
    finally:
        model.gate.release.set()
        thread.join(30)
    assert not thread.is_alive()
    assert torch.equal(during, plain)
    np.testing.assert_allclose(got["a"], expected, atol=1e-6)


def test_registered_among_the_attention_methods():
    info = get_method("attnlrp")
    assert info.cls is AttnLRP is METHODS["attnlrp"]
    assert info.attention and info.uses_gradients and info.class_specific
    assert not info.perturbation and not info.extra_passes
