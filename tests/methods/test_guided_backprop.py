"""Guided backpropagation: per-image guided input gradients, computed by
hand on a tiny ReLU network, and the model's own ReLU modules put back.

The guided rule at a ReLU with input x: R_in = (x > 0) * ReLU(R_out).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam import GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class Boom(Exception):
    pass


class ReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(5 * 6 * 6, 3)
        self.fail = False
        with torch.no_grad():
            self.conv1.bias.add_(0.1)

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        if self.fail:
            raise Boom("forward")
        return self.fc(x.flatten(1))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ReluNet().eval()


@pytest.fixture
def x():
    return torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(8))


def hand_guided(model, image, category, guided=True):
    """Input gradient of logit[category] by hand, H x W x C (float64)."""
    p = {k: v.detach().double() for k, v in model.state_dict().items()}
    pre1 = F.conv2d(image.double()[None], p["conv1.weight"], p["conv1.bias"], padding=1)
    pre2 = F.conv2d(pre1.clamp(min=0), p["conv2.weight"], p["conv2.bias"], padding=1)
    gate = (lambda r: r.clamp(min=0)) if guided else (lambda r: r)
    r = p["fc.weight"][category].reshape(1, 5, 6, 6)
    r = (pre2 > 0) * gate(r)
    r = F.conv_transpose2d(r, p["conv2.weight"], padding=1)
    r = (pre1 > 0) * gate(r)
    r = F.conv_transpose2d(r, p["conv1.weight"], padding=1)
    return r[0].permute(1, 2, 0).numpy()


def test_single_image_equals_hand_computation(model, x):
    result = GuidedBackpropReLUModel(model, "cpu")(x[:1], target_category=2)
    expected = hand_guided(model, x[0], 2)
    assert result.shape == (6, 6, 3) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6, rtol=1e-5)
    # the guided rule matters here: the plain gradient is different
    assert np.abs(expected - hand_guided(model, x[0], 2, guided=False)).max() > 1e-2


def test_every_image_of_a_batch(model, x):
    gb = GuidedBackpropReLUModel(model)
    batch = gb(x, target_category=[2, 0])
    assert batch.shape == (2, 6, 6, 3)
    singles = np.stack([gb(x[:1], target_category=2), gb(x[1:], target_category=0)])
    np.testing.assert_allclose(batch, singles, atol=1e-6, rtol=0)
    np.testing.assert_allclose(batch[1], hand_guided(model, x[1], 0), atol=1e-6, rtol=1e-5)
    targets = gb(x, targets=[ClassifierOutputTarget(2), ClassifierOutputTarget(0)])
    np.testing.assert_allclose(targets, batch, atol=0, rtol=0)


def test_default_target_is_each_images_top_class(model, x):
    with torch.no_grad():
        top = model(x).argmax(dim=1).tolist()
    result = GuidedBackpropReLUModel(model)(x)
    for i in range(2):
        np.testing.assert_allclose(result[i], hand_guided(model, x[i], top[i]),
                                   atol=1e-6, rtol=1e-5)


def _relus(model):
    return [(name, m, m.inplace) for name, m in model.named_modules()
            if isinstance(m, nn.ReLU)]


@pytest.mark.parametrize("failure", [None, "target", "forward"])
def test_model_relus_are_put_back(model, x, failure):
    for p in model.fc.parameters():
        p.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    relus = _relus(model)
    modules = dict(model.named_modules())
    flags = [(p.requires_grad, None if p.grad is None else p.grad.clone())
             for p in model.parameters()]
    gb = GuidedBackpropReLUModel(model)

    def failing_target(output):
        raise Boom("target")

    if failure is None:
        gb(x, target_category=1)
    else:
        model.fail = failure == "forward"
        with pytest.raises(Boom):
            gb(x, targets=[failing_target] * 2)
    model.fail = False
    assert _relus(model) == relus  # the same objects with the same inplace flags
    assert dict(model.named_modules()).keys() == modules.keys()
    assert all(modules[name] is m for name, m in model.named_modules())
    assert model.training is False
    for p, (requires_grad, grad) in zip(model.parameters(), flags):
        assert p.requires_grad == requires_grad
        assert (p.grad is None) if grad is None else torch.equal(p.grad, grad)
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    # the model is the plain model again: an ordinary backward is not guided
    image = x[:1].clone().requires_grad_(True)
    model(image)[0, 1].backward()
    np.testing.assert_allclose(image.grad[0].permute(1, 2, 0).numpy(),
                               hand_guided(model, x[0], 1, guided=False), atol=1e-6, rtol=1e-5)
