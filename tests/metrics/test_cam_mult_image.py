"""The confidence metrics (``metrics.cam_mult_image``: the score change of the input
multiplied by the map, drop and increase in confidence) against values computed by hand
on a tiny linear model.
"""
import numpy as np
import pytest
import torch
from metric_cases import logits

from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- confidence
def test_cam_mult_image_is_score_change_of_the_masked_input(model, images, cams):
    targets = [ClassifierOutputTarget(c) for c in (0, 1, 0)]
    result, visual = CamMultImageConfidenceChange()(torch.from_numpy(images), cams, targets,
                                                    model, return_visualization=True)
    masked = images * cams[:, None]
    cls = [0, 1, 0]
    expected = logits(masked)[range(3), cls] - logits(images)[range(3), cls]
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    assert result.dtype == np.float32 and result.shape == (3,)
    np.testing.assert_allclose(visual.numpy(), masked, rtol=1e-6)
    after = CamMultImageConfidenceChange()(torch.from_numpy(images), cams, targets, model,
                                           return_diff=False)
    np.testing.assert_allclose(after, logits(masked)[range(3), cls], rtol=1e-5, atol=1e-6)


def test_drop_and_increase_in_confidence_by_hand(model, images, cams):
    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 1)]
    y = softmax(logits(images))[range(3), [0, 1, 1]]
    o = softmax(logits(images * cams[:, None]))[range(3), [0, 1, 1]]
    np.testing.assert_allclose(DropInConfidence(relative=True)(x, cams, targets, model),
                               np.maximum(0, y - o) / y, rtol=1e-5, atol=1e-7)
    # the default is grad-cam 1.5.7's absolute drop
    np.testing.assert_allclose(DropInConfidence()(x, cams, targets, model),
                               np.maximum(0, y - o), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(IncreaseInConfidence()(x, cams, targets, model),
                                  (o > y).astype(np.float32))
    assert 0 < (o > y).sum() < 3  # the case covers both outcomes


def test_relative_drop_refuses_non_positive_scores(model, images, cams):
    targets = [ClassifierOutputTarget(0)] * 3
    assert (logits(images)[:, 0] <= 0).any()
    with pytest.raises(ValueError, match="ClassifierOutputSoftmaxTarget"):
        DropInConfidence(relative=True)(torch.from_numpy(images), cams, targets, model)


def test_targets_none_is_the_top_class(model, images, cams):
    top = logits(images).argmax(axis=1)
    explicit = CamMultImageConfidenceChange()(torch.from_numpy(images), cams,
                                              [ClassifierOutputTarget(int(c)) for c in top], model)
    np.testing.assert_array_equal(
        CamMultImageConfidenceChange()(torch.from_numpy(images), cams, None, model), explicit)
