"""Determinism: the same inputs give bit-identical maps, call after call and
object after object, for every method (perturbation methods included)."""
import numpy as np
import pytest
import torch
from registry_cases import EIGEN_REFUSED, refuses_eigen_smooth  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# the tests take ``method_name``: every method for CNNs, from the registry
# (tests/registry_cases.py); the attention methods, which need a Vision
# Transformer, are checked in tests/methods/test_attention_guarantees.py


def small_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():
        model[3].bias.uniform_(0.0, 0.2)
    return model.train()  # dropout would make it random if it were left on


X = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(7))
X_COPY = X.clone()
TARGETS = [ClassifierOutputTarget(0), ClassifierOutputTarget(2), ClassifierOutputTarget(4)]


@pytest.mark.parametrize("options", [{}, {"eigen_smooth": True}, {"aug_smooth": True}],
                         ids=["plain", "eigen_smooth", "aug_smooth"])
def test_bit_identical_maps(method_name, options):
    model = small_cnn()
    cam = METHODS[method_name](model=model, target_layers=[model[3]], progress=False, batch_size=3)
    if options.get("eigen_smooth") and refuses_eigen_smooth(method_name):  # no channels
        with pytest.raises(ValueError, match=EIGEN_REFUSED):
            cam(input_tensor=X, targets=TARGETS, **options)
        return
    first = cam(input_tensor=X, targets=TARGETS, **options)
    second = cam(input_tensor=X, targets=TARGETS, **options)
    other = METHODS[method_name](model=model, target_layers=[model[3]], progress=False,
                            batch_size=3)(input_tensor=X.clone(), targets=list(TARGETS), **options)
    assert torch.equal(X, X_COPY) and not X.requires_grad, "the input was changed"
    assert first.max() > 0 and np.isfinite(first).all()
    assert first.tobytes() == second.tobytes(), "two calls in a row differ"
    assert first.tobytes() == other.tobytes(), "a second CAM object gives another map"


def test_guided_backprop_bit_identical():
    model = small_cnn()
    gb = GuidedBackpropReLUModel(model)
    first, second = gb(X, targets=TARGETS), gb(X, targets=TARGETS)
    assert np.abs(first).max() > 0
    assert first.tobytes() == second.tobytes()
