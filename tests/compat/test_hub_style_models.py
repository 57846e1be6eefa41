"""Models as grad-cam 1.5.7's YOLOv5 tutorial loads them (a hub model):
parameters that are not leaves of autograd, and outputs with no class
axis, explained with ``targets=None`` by the methods that ignore targets."""
import warnings

import pytest
import torch
from torch import nn

from pytorch_grad_cam.registry import get_method


class Detector(nn.Module):
    """A backbone and a head that returns detections, B x N x 6 in a tuple
    with the features, as YOLOv5 does; the first convolution's weight is
    computed from a leaf (not a leaf itself)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 6, 1)
        self.source = nn.Parameter(self.backbone[0].weight.detach().clone())
        self.backbone[0]._parameters["weight"] = self.source * 1.0  # not a leaf

    def forward(self, x):
        features = self.backbone(x)
        return self.head(features).flatten(2).transpose(1, 2), features


def test_a_parameter_that_is_not_a_leaf_is_left_alone_and_the_leaves_are_put_back():
    model = Detector().eval()
    computed = model.backbone[0].weight
    assert not computed.is_leaf and computed.requires_grad
    cam = get_method("eigencam").cls(model, [model.backbone[-1]])
    maps = cam(torch.rand(2, 3, 16, 16))
    assert maps.shape == (2, 16, 16) and maps.max() == pytest.approx(1.0)
    assert model.backbone[0].weight is computed and computed.requires_grad
    assert all(p.requires_grad for p in model.parameters())


def test_every_method_that_ignores_targets_takes_none_whatever_the_output(class_agnostic_method):
    model = Detector().eval()
    cam = get_method(class_agnostic_method).cls(model, [model.backbone[-1]])
    maps = cam(torch.rand(2, 3, 16, 16), targets=None)
    assert maps.shape == (2, 16, 16)


def test_a_method_that_needs_a_class_still_says_that_none_needs_a_classifier_output(
        class_specific_method):
    model = Detector().eval()
    info = get_method(class_specific_method)
    expected = "targets=None picks each image's top class and needs a model output of shape " \
               "B x num_classes"
    if info.needs_linear_head:  # refused earlier: the model has no linear classifier head
        expected = "torch.nn.Linear classifier"
    with pytest.raises(ValueError, match=expected), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: target_layers are ignored
        info.cls(model, [model.backbone[-1]])(torch.rand(2, 3, 16, 16), targets=None)
