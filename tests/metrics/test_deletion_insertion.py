"""Deletion and insertion (``metrics.deletion_insertion``): curves and areas by hand on a
tiny linear model, the blurred substrate.
"""
import numpy as np
import pytest
import torch
from metric_cases import logits, removed_most_relevant

from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC, gaussian_blur
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


# ---------------------------------------------------------- deletion, insertion
def test_deletion_curve_and_auc_by_hand(model, images, cams):
    targets = [ClassifierOutputTarget(1)] * 3
    areas, curves = DeletionAUC(n_steps=4).curves(torch.from_numpy(images), cams, targets,
                                                  model)
    for b in range(3):
        expected = []
        for step in range(5):
            x = images[b].copy()
            if step:
                x[0][removed_most_relevant(cams[b], 4 * step)] = 0
            expected.append(logits(x[None])[0, 1])
        np.testing.assert_allclose(curves[b], expected, rtol=1e-5, atol=1e-6)
        trapezoid = (sum(expected) - (expected[0] + expected[-1]) / 2) / 4
        assert areas[b] == pytest.approx(trapezoid, rel=1e-5, abs=1e-6)


def test_the_metric_returns_areas_and_curves_returns_both(model, images, cams):
    """A call gives the areas (one array, whatever the arguments); curves()
    gives (areas, curves); return_curves=True still gives what curves()
    gives, with a DeprecationWarning pointing at the caller's line."""
    targets = [ClassifierOutputTarget(1)] * 3
    x = torch.from_numpy(images)
    metric = DeletionAUC(n_steps=4)
    both = metric.curves(x, cams, targets, model)
    assert both.areas.shape == (3,) and both.curves.shape == (3, 5)
    assert both.areas.dtype == both.curves.dtype == np.float32
    areas = metric(x, cams, targets, model)
    assert isinstance(areas, np.ndarray)
    np.testing.assert_array_equal(areas, both.areas)
    with pytest.warns(DeprecationWarning) as caught:
        old_areas, old_curves = metric(x, cams, targets, model, return_curves=True)
    assert [str(w.message) for w in caught] == [
        "return_curves=True is deprecated; metric.curves(input_tensor, cams, targets, model) "
        "returns (areas, curves)"]
    assert caught[0].filename == __file__
    np.testing.assert_array_equal(old_areas, both.areas)
    np.testing.assert_array_equal(old_curves, both.curves)


def test_insertion_with_a_constant_substrate_by_hand(model, images, cams):
    targets = [ClassifierOutputTarget(0)] * 3
    metric = InsertionAUC(n_steps=8, substrate=lambda t: torch.full_like(t, 0.5))
    areas, curves = metric.curves(torch.from_numpy(images), cams, targets, model)
    for b in range(3):
        expected = []
        for step in range(9):
            x = np.full_like(images[b], 0.5)
            if step:
                inserted = removed_most_relevant(cams[b], 2 * step)
                x[0][inserted] = images[b][0][inserted]
            expected.append(logits(x[None])[0, 0])
        np.testing.assert_allclose(curves[b], expected, rtol=1e-5, atol=1e-6)
        assert areas[b] == pytest.approx((sum(expected) - (expected[0] + expected[-1]) / 2) / 8,
                                         rel=1e-5, abs=1e-6)


def test_gaussian_blur_is_the_normalised_gaussian():
    delta = torch.zeros(1, 1, 21, 21)
    delta[0, 0, 10, 10] = 1
    out = gaussian_blur(delta, 11, 5.0)[0, 0].numpy()
    g = np.exp(-np.arange(-5, 6) ** 2 / 50.0)
    g /= g.sum()
    np.testing.assert_allclose(out[5:16, 5:16], np.outer(g, g), rtol=1e-5)
    assert out[:5].sum() == 0 and out.sum() == pytest.approx(1, rel=1e-5)
