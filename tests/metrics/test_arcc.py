"""Complexity, coherency and ARCC (``metrics.arcc``) by hand on a tiny linear model, and
their progress bars.
"""
import numpy as np
import pytest
import torch
from metric_cases import logits, tqdm_lines

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget


# ------------------------------------------------------- complexity, coherency
def test_complexity_is_the_mean_absolute_value(cams):
    np.testing.assert_allclose(Complexity()(cams), np.abs(cams).reshape(3, -1).mean(axis=1),
                               rtol=1e-6)
    assert Complexity()(np.ones((1, 3, 3)))[0] == 1


def test_complexity_by_hand_bad_maps_and_the_maps_left_as_they_were():
    cam = np.array([[[0.0, 1.0], [2.0, -3.0]]], dtype=np.float32)
    # (|0| + |1| + |2| + |-3|) / 4 = 6 / 4 = 1.5
    assert Complexity()(cam)[0] == 1.5
    assert Complexity()(torch.from_numpy(cam))[0] == 1.5
    np.testing.assert_array_equal(cam, [[[0.0, 1.0], [2.0, -3.0]]])
    with pytest.raises(ValueError, match=r"grayscale_cams must be B x H x W, got shape \(4,\)"):
        Complexity()(np.zeros(4))


def test_coherency_by_hand(model, images, cams):
    calls = []

    def first_channel(input_tensor, targets):  # a "method" whose map is the input itself
        calls.append([t.category for t in targets])
        return input_tensor[:, 0].numpy()

    targets = [ClassifierOutputTarget(c) for c in (1, 0, 1)]
    result = Coherency()(torch.from_numpy(images), cams, targets, model, first_channel)
    expected = [(np.corrcoef((images[b, 0] * cams[b]).ravel(), cams[b].ravel())[0, 1] + 1) / 2
                for b in range(3)]
    np.testing.assert_allclose(result, expected, rtol=1e-5)
    assert calls == [[1, 0, 1]]
    # targets=None: the top class of the unmasked input
    Coherency()(torch.from_numpy(images), cams, None, model, first_channel)
    assert calls[-1] == logits(images).argmax(axis=1).tolist()


def test_arcc_is_the_harmonic_mean_of_its_parts(model, images, cams):
    def method(input_tensor, targets):
        return input_tensor[:, 0].abs().numpy()

    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 1)]
    coherency = Coherency()(x, cams, targets, model, method)
    complexity = Complexity()(cams)
    road = ROADCombined([20, 40, 60, 80])(x, cams, targets, model)
    road_scaled = np.clip(2 * road, 0, 1)
    expected = 3 / (1 / (coherency + 1e-8) + 1 / (1 - complexity + 1e-8) + 1 / (road_scaled + 1e-8))
    np.testing.assert_allclose(ARCC(method)(x, cams, targets, model), expected, rtol=1e-5)


def test_coherency_and_arcc_progress(model, images, cams, capsys):
    images = torch.from_numpy(images)
    targets = [ClassifierOutputTarget(0)] * len(images)
    with GradCAM(model, [model.features]) as cam:
        Coherency(progress=True)(images, cams, targets, model, cam)
        assert "Coherency:" in tqdm_lines(capsys.readouterr().err)
        ARCC(cam, road_percentiles=[20, 80], progress=True)(images, cams, targets, model)
        err = tqdm_lines(capsys.readouterr().err)
        assert "Coherency:" in err and "ROADCombined (imputing + scoring):" in err
        ARCC(cam, road_percentiles=[20, 80])(images, cams, targets, model)
        assert capsys.readouterr().err == ""
