"""CAM: the classifier's weights, by hand; binary classifiers and refused targets.
"""
import numpy as np
import pytest
from method_cases import C, H, K, PooledHead, W, normalise, run, weighted

from pytorch_grad_cam import CAM, GradCAM
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)


def test_cam_uses_the_classifier_weights():
    rng = np.random.default_rng(11)
    weight, bias = rng.normal(size=(K, C)), rng.normal(size=K)
    x = rng.normal(size=(2, C, H, W))
    model = PooledHead(weight, bias)
    logits = np.einsum("kc,bc->bk", weight, x.mean(axis=(2, 3))) + bias
    top = logits.argmax(axis=1)
    expected = normalise(weighted(weight[top], x))
    for cam in (CAM(model, [model.target]), CAM(model, [model.target], fc_layer=model.fc)):
        np.testing.assert_allclose(run(cam, x), expected, atol=1e-5)
    # a class target picks that row of the weights
    expected = normalise(weighted(weight[[2, 4]], x))
    got = run(CAM(model, [model.target]), x, [ClassifierOutputTarget(2), ClassifierOutputTarget(4)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Grad-CAM is the same map for global average pooling + linear layer
    np.testing.assert_allclose(run(GradCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(2), ClassifierOutputTarget(4)]),
                               got, atol=1e-5)


def test_cam_binary_classifier_and_refused_targets():
    rng = np.random.default_rng(12)
    weight = rng.normal(size=(1, C))
    x = rng.normal(size=(1, C, H, W))
    model = PooledHead(weight, np.zeros(1))
    cam = CAM(model, [model.target])
    np.testing.assert_allclose(run(cam, x, [BinaryClassifierOutputTarget(0)]),
                               normalise(weighted(-weight, x)), atol=1e-5)
    np.testing.assert_allclose(run(cam, x, [BinaryClassifierOutputTarget(1)]),
                               normalise(weighted(weight, x)), atol=1e-5)
    with pytest.raises(TypeError, match="ClassifierOutputTarget"):
        run(cam, x, [ClassifierOutputSoftmaxTarget(0)])
