"""Every method on real torchvision architectures (random weights).

The usual target layers: ResNet ``layer4[-1]``, VGG ``features[-2]`` (the
last convolution's in-place ReLU), DenseNet ``features[-1]``, MnasNet
``layers[-1]``, MobileNetV3 ``features[-1]`` and ViT
``encoder.layers[-1].ln_1`` with ``vit_reshape_transform``; the attention
methods (LeGrad, attention rollout, gradient-weighted attention) run on the
ViT only, on all its blocks.

Inputs are as small as the architectures allow while the target layer
keeps at least two positions (a one-pixel feature map gives a constant,
hence empty, map): the gradient methods get two images, the perturbation
methods (one forward pass per channel) one image, in one chunk.

With random weights a map may legitimately be empty (no location has a
positive weighted activation); then it must be all zeros and the library
must say so with a RuntimeWarning. Where the maths guarantees a
non-empty map, it must peak at exactly 1:
- Score-CAM on a layer whose outputs are >= 0 (after a ReLU): softmax
  weights are positive, so the weighted sum is positive where any channel is;
- Grad-CAM and XGrad-CAM on a layer after a ReLU followed by global
  average pooling and a linear classifier: the weights are the
  classifier row of the target class, and the map's mean is that class's
  logit minus its bias, positive for the class where it is largest.
"""
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torchvision
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py

from pytorch_grad_cam import GradCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

# Every registered method except the sampling ones (SSCAM, ISCAM: tens of
# ScoreCAM runs per image; tests/methods/test_sscam_iscam.py covers them on
# small networks).
METHODS = [get_method(name) for name in REGISTRY_PARAMS["non_sampling_method"]]


class Arch(NamedTuple):
    build: Callable[[], torch.nn.Module]
    layer: Callable[[torch.nn.Module], torch.nn.Module]
    gradient_size: tuple[int, int]
    perturbation_size: tuple[int, int]
    nonnegative_layer: bool = False
    linear_head: Callable[[torch.nn.Module], torch.nn.Linear] | None = None
    reshape_transform: Callable | None = None


def _vit():
    model = torchvision.models.vit_b_16(weights=None, image_size=32)  # 2 x 2 patches
    # torchvision initialises the classifier with zeros, which makes every
    # gradient zero; give it random weights
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


ARCHS = {
    "resnet18": Arch(lambda: torchvision.models.resnet18(weights=None),
                     lambda m: m.layer4[-1], (64, 64), (32, 64),
                     nonnegative_layer=True, linear_head=lambda m: m.fc),
    "vgg11": Arch(lambda: torchvision.models.vgg11(weights=None),
                  lambda m: m.features[-2], (32, 32), (32, 32), nonnegative_layer=True),
    "densenet121": Arch(lambda: torchvision.models.densenet121(weights=None),
                        lambda m: m.features[-1], (64, 64), (32, 64)),
    "mnasnet1_0": Arch(lambda: torchvision.models.mnasnet1_0(weights=None),
                       lambda m: m.layers[-1], (64, 64), (32, 64),
                       nonnegative_layer=True, linear_head=lambda m: m.classifier[-1]),
    "mobilenet_v3_small": Arch(lambda: torchvision.models.mobilenet_v3_small(weights=None),
                               lambda m: m.features[-1], (64, 64), (32, 64)),
    "vit_b_16": Arch(_vit, lambda m: m.encoder.layers[-1].ln_1, (32, 32), (32, 32),
                     reshape_transform=vit_reshape_transform),
}

_models = {}


def get_model(name):
    if name not in _models:
        torch.manual_seed(0)
        _models[name] = ARCHS[name].build().eval()
    return _models[name]


def teardown_module():
    _models.clear()


def must_be_nonempty(arch: Arch, method) -> bool:
    if method is ScoreCAM:
        return arch.nonnegative_layer
    return method in (GradCAM, XGradCAM) and arch.linear_head is not None


# CAM reads the weights of a linear classifier on pooled features: only the
# architectures that end so; the attention methods (LeGrad, ...) only the
# Vision Transformer, with their default target layers (all its blocks)
CASES = [(name, info) for name in ARCHS for info in METHODS
         if not (info.needs_linear_head and ARCHS[name].linear_head is None)
         and (not info.attention or ARCHS[name].reshape_transform is not None)]


@pytest.mark.parametrize("name,info", CASES, ids=[f"{n}-{i.name}" for n, i in CASES])
def test_method_runs_on_architecture(name, info):
    method = info.cls
    arch = ARCHS[name]
    model = get_model(name)
    if method.uses_gradients:
        x = torch.randn((2, 3) + arch.gradient_size, generator=torch.Generator().manual_seed(1))
        kwargs = {}
    else:
        x = torch.randn((1, 3) + arch.perturbation_size, generator=torch.Generator().manual_seed(1))
        kwargs = {"batch_size": 2048, "progress": False}
    targets = None
    if arch.linear_head is not None:
        # the class whose logit exceeds its bias the most (see the docstring)
        with torch.no_grad():
            margin = model(x) - arch.linear_head(model).bias
        assert bool((margin.amax(dim=1) > 0).all())
        targets = [ClassifierOutputTarget(int(c)) for c in margin.argmax(dim=1)]

    if not info.uses_target_layers:
        kwargs["reshape_transform"] = None  # FullGrad explains every convolution itself
    layers = [arch.layer(model)]
    if info.attention:
        # the transformer blocks, found by the model's family; they read
        # attention probabilities, no reshape_transform
        layers, kwargs["reshape_transform"] = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: the target layer is ignored
        cam = method(model=model, target_layers=layers,
                     **{"reshape_transform": arch.reshape_transform, **kwargs})
    if info.attention:  # every block, or the last (the method's ``default_blocks``)
        blocks = list(model.encoder.layers)
        assert cam.target_layers == (blocks if method.default_blocks == "all" else blocks[-1:])
    with cam:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            maps = cam(input_tensor=x, targets=targets)
        outputs = cam.outputs

    batch = x.shape[0]
    assert maps.shape == (batch,) + tuple(x.shape[2:])
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert tuple(outputs.shape) == (batch, 1000)
    peaks = maps.reshape(batch, -1).max(axis=1)
    empty = [i for i in range(batch) if peaks[i] == 0]
    for i in range(batch):
        # a map is either normalised to peak 1 or entirely empty
        assert peaks[i] == pytest.approx(1, abs=1e-6) or not maps[i].any()
    if empty:
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert any("all zeros" in m and str(empty) in m for m in messages), messages
    if must_be_nonempty(arch, method):
        assert not empty
    assert model.training is False  # the model is not switched to train mode either

