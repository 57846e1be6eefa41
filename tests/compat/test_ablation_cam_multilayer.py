"""pytorch_grad_cam.ablation_cam_multilayer: grad-cam 1.5.7's module."""
import pytest
import torch
from torch import nn

import pytorch_grad_cam
from pytorch_grad_cam.ablation_cam_multilayer import (
    ABLATION_VALUE,
    AblationCAM,
    AblationLayer,
    replace_layer_recursive,
)
from pytorch_grad_cam.utils import find_layers
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def test_the_names_are_the_library_ones():
    assert AblationCAM is pytorch_grad_cam.AblationCAM
    assert replace_layer_recursive is find_layers.replace_layer_recursive


def test_each_image_loses_its_own_channel_set_to_zero_after_a_relu():
    layer = nn.Sequential(nn.Conv2d(3, 5, 1), nn.ReLU())
    x = torch.rand(3, 3, 4, 4)
    plain = layer(x)
    assert float(plain.detach().min()) == 0
    ablated = AblationLayer(layer, None, indices=[4, 0])(x)
    expected = plain.clone()
    expected[0, 4] = 0
    expected[1, 0] = 0  # image 2 is past the indices: unchanged
    torch.testing.assert_close(ablated, expected)
    torch.testing.assert_close(layer(x), plain)  # the layer's own output is not written


def test_a_negative_output_gets_its_minimum_minus_1e5_on_the_last_axis_for_tokens():
    layer = nn.Linear(6, 4)
    tokens = torch.randn(2, 3, 6)
    plain = layer(tokens)
    ablated = AblationLayer(layer, lambda t: t, indices=[1, 3])(tokens)
    expected = plain.clone()
    value = plain.min() - ABLATION_VALUE
    expected[0, :, 1] = value
    expected[1, :, 3] = value
    torch.testing.assert_close(ablated, expected)


def test_a_channel_out_of_range_is_named():
    layer = nn.Conv2d(3, 2, 1)
    with pytest.raises(ValueError, match=r"indices \[7\] are not channels of an output with 2"):
        AblationLayer(layer, None, indices=[7])(torch.rand(1, 3, 2, 2))


def test_ablation_cam_of_this_module_explains_two_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    cam = AblationCAM(model=model, target_layers=[model[1], model[3]])
    maps = cam(torch.rand(2, 3, 8, 8), [ClassifierOutputTarget(1)] * 2)
    assert maps.shape == (2, 8, 8) and maps.max() <= 1
