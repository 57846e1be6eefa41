"""Batches, chunks and test-time augmentation do not change the maps.

- a batch of N images gives the maps of N single-image calls;
- the perturbation methods give the same maps whatever their chunk size
  (``batch_size``), and really run in chunks of that size;
- ``aug_smooth=True`` equals the average of the maps of the augmented
  images (horizontal flip x brightness 0.9/1.0/1.1), each flipped back.
"""
import warnings

import numpy as np
import pytest
import torch
import ttach as tta
from registry_cases import EIGEN_REFUSED, REGISTRY_PARAMS, refuses_eigen_smooth  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# Tests that take ``method_name`` run for every registered method (conftest.py).
PERTURBATION = [get_method(name).cls for name in REGISTRY_PARAMS["perturbation_method"]]


class BatchSizes(nn.Module):
    """Identity that records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return x


class SmallNet(nn.Module):
    """conv-BN-ReLU, conv-ReLU (the target), then a linear classifier on
    the flattened map; ``concat_skip`` concatenates the first block's
    features after the target layer (as DenseNet does)."""

    def __init__(self, concat_skip=False, classes=5, pooled=False):
        super().__init__()
        self.concat_skip = concat_skip
        self.pooled = pooled  # global average pooling before the classifier (for CAM)
        self.block1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.after = BatchSizes()
        self.pool = nn.AvgPool2d(2)
        channels = 8 + (6 if concat_skip else 0)
        self.fc = nn.Linear(channels * (1 if pooled else 8 * 8), classes)
        with torch.no_grad():
            bn = self.block1[1]
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            self.conv2.bias.add_(0.1)

    def forward(self, x):
        first = self.block1(x)
        features = self.after(self.relu2(self.conv2(first)))
        if self.concat_skip:
            features = torch.cat([features, self.pool(first)], dim=1)
        if self.pooled:
            features = features.mean(dim=(2, 3))
        return self.fc(features.flatten(1))


@pytest.fixture
def model():
    return SmallNet().eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def make(method, model, **kwargs):
    if not method.uses_gradients:
        kwargs.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: target layers ignored
        return method(model=model, target_layers=[model.relu2], **kwargs)


def method_and_model(method_name):
    """The class of a registered method and a SmallNet it applies to (CAM
    reads a classifier on globally pooled features)."""
    info = get_method(method_name)
    return info.cls, SmallNet(pooled=info.needs_linear_head).eval()


def targets_for(categories):
    return [ClassifierOutputTarget(c) for c in categories]


@pytest.mark.parametrize("eigen_smooth", [False, True], ids=["plain", "eigen"])
def test_batch_equals_single_calls(method_name, eigen_smooth, images):
    method, model = method_and_model(method_name)
    categories = [1, 4, 1]
    cam = make(method, model)
    if eigen_smooth and refuses_eigen_smooth(method_name):  # no channels to project
        with pytest.raises(ValueError, match=EIGEN_REFUSED):
            cam(images, targets_for(categories), eigen_smooth=True)
        return
    batched = cam(images, targets_for(categories), eigen_smooth=eigen_smooth)
    single = np.concatenate([cam(images[i:i + 1], targets_for([c]), eigen_smooth=eigen_smooth)
                             for i, c in enumerate(categories)])
    assert batched.shape == (3, 16, 16)
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    assert np.abs(batched[0] - batched[2]).max() > 0.05  # different images, different maps


def test_batch_with_default_targets_equals_single_calls(method_name, images):
    method, model = method_and_model(method_name)
    cam = make(method, model)
    batched = cam(images)
    top = cam.outputs.argmax(dim=1).tolist()
    single = np.concatenate([cam(images[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    explicit = cam(images, targets_for(top))
    np.testing.assert_allclose(batched, explicit, atol=1e-6, rtol=0)


@pytest.mark.parametrize("concat_skip", [False, True], ids=["plain", "concat-skip"])
@pytest.mark.parametrize("method", PERTURBATION, ids=[m.__name__ for m in PERTURBATION])
def test_chunk_size_does_not_change_maps(method, concat_skip, images):
    model = SmallNet(concat_skip=concat_skip).eval()
    targets = targets_for([0, 3, 2])
    maps = {}
    for batch_size in (1, 5, 64):
        cam = make(method, model, batch_size=batch_size)
        model.after.sizes.clear()
        maps[batch_size] = cam(images, targets)
        sizes = model.after.sizes
        # first the recording pass of the 3 images, then the perturbation
        # chunks, none larger than batch_size
        assert sizes[0] == 3
        assert max(sizes[1:]) <= batch_size
        if batch_size == 5:
            assert max(sizes[1:]) == 5
    np.testing.assert_allclose(maps[1], maps[64], atol=1e-5, rtol=0)
    np.testing.assert_allclose(maps[5], maps[64], atol=1e-5, rtol=0)
    assert np.allclose(maps[64].reshape(3, -1).max(axis=1), 1, atol=1e-5)


def test_ablation_runs_only_the_layers_after_the_target_when_it_can(images):
    """The plain network runs its first layers once per image; the
    concatenating one needs full forward passes. Both give the weights
    that ablating each channel with a hook of our own gives."""
    for concat_skip, prefix_once in ((False, True), (True, False)):
        model = SmallNet(concat_skip=concat_skip).eval()
        cam = AblationCAM(model=model, target_layers=[model.relu2], batch_size=64,
                          progress=False)
        captured = {}
        original = cam.get_cam_weights

        def spy(*args, original=original, captured=captured):
            captured["weights"] = original(*args)
            return captured["weights"]

        cam.get_cam_weights = spy
        cam(images[:1], targets_for([2]))
        assert cam.used_prefix_once is prefix_once

        with torch.no_grad():
            y = model(images[:1])[0, 2]
            expected = []
            for k in range(8):
                def zero_channel(module, inputs, output, k=k):
                    output = output.clone()
                    output[:, k] = 0
                    return output
                handle = model.relu2.register_forward_hook(zero_channel)
                try:
                    y_k = model(images[:1])[0, 2]
                finally:
                    handle.remove()
                expected.append((y - y_k) / y)
        torch.testing.assert_close(captured["weights"][0], torch.stack(expected),
                                   atol=1e-5, rtol=1e-4)


def test_batch_size_of_perturbation_methods_is_the_constructor_argument_or_attribute(model, images):
    cam = make(ScoreCAM, model, batch_size=2)
    assert cam.batch_size == 2
    cam.batch_size = 7
    assert cam.batch_size == 7
    cam(images[:1], targets_for([0]))
    assert max(model.after.sizes[1:]) == 7


def _hand_aug_smooth(cam, images, targets, transforms):
    maps = []
    for flip, factor in transforms:
        x = images * factor
        if flip:
            x = torch.flip(x, dims=[3])
        m = cam(x, targets)
        maps.append(m[:, :, ::-1] if flip else m)
    return np.mean(maps, axis=0)


def test_aug_smooth_is_the_average_of_deaugmented_maps(method_name, images):
    method, model = method_and_model(method_name)
    targets = targets_for([2, 0, 4])
    cam = make(method, model, batch_size=64)
    smoothed = cam(images, targets, aug_smooth=True)
    default = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]
    expected = _hand_aug_smooth(cam, images, targets, default)
    assert smoothed.shape == (3, 16, 16) and smoothed.dtype == np.float32
    np.testing.assert_allclose(smoothed, expected, atol=1e-5, rtol=0)
    # the flipped copies matter (the maps are not mirror-symmetric)
    plain = cam(images, targets)
    assert np.abs(smoothed - plain).max() > 1e-2


def test_aug_smooth_uses_the_given_transforms(model, images):
    targets = targets_for([1, 1, 3])
    cam = make(GradCAM, model, tta_transforms=tta.Compose([tta.HorizontalFlip()]))
    smoothed = cam(images, targets, aug_smooth=True)
    expected = _hand_aug_smooth(cam, images, targets, [(False, 1.0), (True, 1.0)])
    np.testing.assert_allclose(smoothed, expected, atol=1e-5, rtol=0)
