"""FullGrad: bias gradients and the input term, by hand.
"""
import warnings

import numpy as np
import pytest
import torch
from method_cases import C, H, K, W, normalise, run
from torch import nn

from pytorch_grad_cam import FullGrad
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def test_fullgrad_matches_hand_computed_bias_and_input_gradients():
    rng = np.random.default_rng(5)
    cin, cmid = 2, 3
    conv_w, conv_b = rng.normal(size=(cmid, cin)), rng.normal(size=cmid)
    gamma, beta = rng.normal(size=cmid), rng.normal(size=cmid)
    mean, var = rng.normal(size=cmid), rng.uniform(0.5, 2, size=cmid)
    v = rng.normal(size=(K, cmid, H, W))
    x = rng.normal(size=(2, cin, H, W))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cmid, 1)
            self.bn = nn.BatchNorm2d(cmid)
            self.head = nn.Linear(cmid * H * W, K)
            with torch.no_grad():
                self.conv.weight.copy_(torch.as_tensor(conv_w)[:, :, None, None])
                self.conv.bias.copy_(torch.as_tensor(conv_b))
                self.bn.weight.copy_(torch.as_tensor(gamma))
                self.bn.bias.copy_(torch.as_tensor(beta))
                self.bn.running_mean.copy_(torch.as_tensor(mean))
                self.bn.running_var.copy_(torch.as_tensor(var))
                self.head.weight.copy_(torch.as_tensor(v.reshape(K, -1)))

        def forward(self, inputs):
            return self.head(torch.relu(self.bn(self.conv(inputs))).flatten(1))

    model = Net().eval()
    c = 1
    scale = gamma / np.sqrt(var + 1e-5)
    z1 = np.einsum("oc,bchw->bohw", conv_w, x) + conv_b[:, None, None]
    z2 = scale[:, None, None] * (z1 - mean[:, None, None]) + beta[:, None, None]
    g2 = v[c] * (z2 > 0)                       # dY/dz2 (through the ReLU)
    g1 = g2 * scale[:, None, None]             # dY/dz1
    gx = np.einsum("oc,bohw->bchw", conv_w, g1)  # dY/dx
    bn_bias = beta - mean * scale

    def psi_sum(t):  # |.|, min-max per channel, summed over the channels
        t = np.abs(t)
        low = t.min(axis=(2, 3), keepdims=True)
        high = t.max(axis=(2, 3), keepdims=True)
        return ((t - low) / (high - low + 1e-7)).sum(axis=1)

    total = (psi_sum(gx * x) + psi_sum(g1 * conv_b[:, None, None])
             + psi_sum(g2 * bn_bias[:, None, None]))
    with pytest.warns(UserWarning, match="ignores target_layers"):
        cam = FullGrad(model, [model.bn])
    assert cam.target_layers == [model.conv, model.bn]
    got = run(cam, x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(total), atol=1e-5)
    for p in model.parameters():
        assert p.grad is None and p.requires_grad


def test_fullgrad_of_a_bias_free_network_is_its_input_term():
    """No bias anywhere: the full-gradient is the input-gradient alone
    (for a bias-free ReLU network df/dx . x is the score)."""
    rng = np.random.default_rng(9)
    weight = rng.normal(size=(4, C))
    x = rng.normal(size=(2, C, H, W))
    model = nn.Sequential(nn.Conv2d(C, 4, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten()).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(weight)[:, :, None, None])
    c = 2
    z = np.einsum("oc,bchw->bohw", weight, x)
    gx = weight[c][None, :, None, None] * (z[:, c:c + 1] > 0) / (H * W)  # dY/dx
    t = np.abs(gx * x)
    low, high = t.min(axis=(2, 3), keepdims=True), t.max(axis=(2, 3), keepdims=True)
    expected = normalise(((t - low) / (high - low + 1e-7)).sum(axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        cam = FullGrad(model)
    assert cam.target_layers == []
    np.testing.assert_allclose(run(cam, x, [ClassifierOutputTarget(c)] * 2), expected, atol=1e-5)
    # with a bias, its term is added: the map changes
    biased = nn.Sequential(nn.Conv2d(C, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                           nn.Flatten()).eval()
    with torch.no_grad():
        biased[0].weight.copy_(model[0].weight)
        biased[0].bias.fill_(0.5)
    assert np.abs(run(FullGrad(biased), x, [ClassifierOutputTarget(c)] * 2) - expected).max() > 0.05
