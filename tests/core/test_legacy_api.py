"""The seed's API keeps working, with a DeprecationWarning, and gives the
maps of the current API; argument errors are clear.

The seed's snippet (README.md):

    cam = GradCAM(model=model, target_layer=model.layer4[-1], use_cuda=True)
    grayscale_cam = cam(input_tensor=input_tensor, target_category=281)
"""
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from pytorch_grad_cam import (
    AblationCAM,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackpropReLUModel,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

METHODS = [GradCAM, GradCAMPlusPlus, XGradCAM, AblationCAM, ScoreCAM]
IDS = [m.__name__ for m in METHODS]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.fixture
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))


def current(resnet, x, categories):
    with GradCAM(model=resnet, target_layers=[resnet.layer4[-1]]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in categories])


def deprecations(caught):
    return [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_seed_snippet_runs_warns_and_stays_on_cpu(resnet, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cam = GradCAM(model=resnet, target_layer=resnet.layer4[-1], use_cuda=True)
    messages = deprecations(caught)
    assert any("target_layers=[" in m for m in messages)  # shows the current form
    assert any("use_cuda" in m for m in messages)
    assert any(issubclass(w.category, RuntimeWarning) and "CUDA is not available" in str(w.message)
               for w in caught)
    assert cam.use_cuda is False and cam.device.type == "cpu"
    assert next(resnet.parameters()).device.type == "cpu"
    with pytest.warns(DeprecationWarning, match="targets=") as caught:
        maps = cam(input_tensor=x, target_category=281)
    assert maps.shape == (2, 64, 64)
    np.testing.assert_allclose(maps, current(resnet, x, [281, 281]), atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_seed_snippet_moves_model_to_cuda(x):
    model = torchvision.models.resnet18(weights=None).eval()
    with pytest.warns(DeprecationWarning):
        cam = GradCAM(model=model, target_layer=model.layer4[-1], use_cuda=True)
    assert cam.use_cuda and next(model.parameters()).is_cuda
    with pytest.warns(DeprecationWarning):
        maps = cam(input_tensor=x, target_category=281)
    assert maps.shape == (2, 64, 64) and maps.max() == pytest.approx(1)


@pytest.mark.parametrize("category, expected", [
    (281, [281, 281]),
    ([281, 5], [281, 5]),
    (np.int64(7), [7, 7]),
])
def test_target_category_int_or_list(resnet, x, category, expected):
    cam = GradCAM(model=resnet, target_layers=[resnet.layer4[-1]])
    with pytest.warns(DeprecationWarning, match=r"targets=\[ClassifierOutputTarget"):
        maps = cam(input_tensor=x, target_category=category)
    np.testing.assert_allclose(maps, current(resnet, x, expected), atol=1e-6, rtol=0)


def test_target_category_none_is_each_images_top_class(resnet, x):
    cam = GradCAM(model=resnet, target_layers=[resnet.layer4[-1]])
    with pytest.warns(DeprecationWarning):
        maps = cam(input_tensor=x, target_category=None)
    top = cam.outputs.argmax(dim=1).tolist()
    np.testing.assert_allclose(maps, current(resnet, x, top), atol=1e-6, rtol=0)
    assert np.abs(maps - current(resnet, x, [(c + 1) % 1000 for c in top])).max() > 1e-3


def test_seed_positional_forms(resnet, x):
    """GradCAM(model, target_layer, use_cuda) and cam(input, category)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cam = GradCAM(resnet, resnet.layer4[-1], False)
        maps = cam(x, 281)
        listed = cam(x, [281, 3])
    assert len(deprecations(caught)) >= 4  # one module, use_cuda, twice target categories
    np.testing.assert_allclose(maps, current(resnet, x, [281, 281]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(listed, current(resnet, x, [281, 3]), atol=1e-6, rtol=0)


def test_current_readme_example(resnet, x):
    rgb_img = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current API warns about nothing
        with GradCAM(model=resnet, target_layers=[resnet.layer4[-1]]) as cam:
            grayscale_cam = cam(input_tensor=x[:1], targets=[ClassifierOutputTarget(281)])
            visualization = show_cam_on_image(rgb_img, grayscale_cam[0], use_rgb=True)
            outputs = cam.outputs
    assert visualization.shape == (64, 64, 3) and visualization.dtype == np.uint8
    assert tuple(outputs.shape) == (1, 1000)


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, 3)
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", [ScoreCAM, AblationCAM], ids=["ScoreCAM", "AblationCAM"])
def test_batch_size_attribute_is_settable(method):
    torch.manual_seed(0)
    model = Counting().eval()
    x = torch.randn(1, 3, 8, 8)
    cam = method(model=model, target_layers=[model.relu], progress=False)
    reference = cam(x, [ClassifierOutputTarget(0)])
    cam.batch_size = 4
    assert cam.batch_size == 4
    model.batches.clear()
    maps = cam(x, [ClassifierOutputTarget(0)])
    np.testing.assert_allclose(maps, reference, atol=1e-6, rtol=0)
    if method is ScoreCAM:  # 6 masked images in chunks of 4 after the recording pass
        assert model.batches == [1, 4, 2]
    else:  # the layers before the target run once per chunk of 4 ablated copies
        assert model.batches == [1, 1, 1]
    with pytest.raises(ValueError, match="batch_size"):
        cam.batch_size = 0
    with pytest.raises(TypeError, match="batch_size"):
        cam.batch_size = "4"


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_targets_of_the_wrong_length_are_a_value_error(method):
    torch.manual_seed(0)
    model = Counting().eval()
    cam = method(model=model, target_layers=[model.relu], progress=False)
    x = torch.randn(3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"targets has 2 entries but the batch has 3"):
        cam(x, [ClassifierOutputTarget(0)] * 2)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="targets"):
        cam(x, target_category=[0, 1])
    assert model.batches == []  # raised before any forward pass


def test_guided_backprop_seed_arguments():
    """GuidedBackpropReLUModel(model=model, use_cuda=False) of the seed."""
    torch.manual_seed(0)
    model = Counting().eval()
    x = torch.randn(1, 3, 8, 8)
    expected = GuidedBackpropReLUModel(model=model, device="cpu")(x, target_category=1)
    with pytest.warns(DeprecationWarning, match="use_cuda"):
        gb_model = GuidedBackpropReLUModel(model=model, use_cuda=False)
    np.testing.assert_allclose(gb_model(x, target_category=1), expected, atol=1e-7, rtol=0)
