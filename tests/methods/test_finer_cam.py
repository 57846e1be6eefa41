"""Finer-CAM: the map of the logit differences to the nearest classes, by hand and by
finite differences; any base method.
"""
import numpy as np
from method_cases import H, Head, W, normalise, run, weighted

from pytorch_grad_cam import FEM, FinerCAM, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def test_finercam_single_comparison_is_gradcam_of_the_logit_difference(tiny):
    v, _, x = tiny
    model = Head(v)
    y = np.einsum("kchw,bchw->bk", v, x)
    weights = []
    for b in range(2):
        main = int(y[b].argmax())
        distance = np.abs(y[b] - y[b, main])
        distance[main] = np.inf
        nearest = int(distance.argmin())
        weights.append((v[main] - 0.7 * v[nearest]).mean(axis=(1, 2)))
    expected = normalise(weighted(np.array(weights), x))
    # (the target's p / (p + 1e-9) factor moves the map by ~1e-5)
    cam = FinerCAM(model, [model.target], alpha=0.7, comparison_categories=[1])
    np.testing.assert_allclose(run(cam, x), expected, atol=1e-4)
    # the same options given to one call instead of the constructor
    cam = FinerCAM(model, [model.target])
    np.testing.assert_allclose(run(cam, x, alpha=0.7, comparison_categories=[1]), expected,
                               atol=1e-4)
    assert cam.finer_options == (1.0, [1, 2, 3], None)  # a call's options are its own


def test_finercam_default_matches_finite_differences_of_the_weighted_target(tiny):
    v, _, x = tiny
    model = Head(v)
    c = 0

    def target(a):  # numpy float64 version of FinerWeightedTarget for the 3 nearest classes
        y = np.einsum("kchw,chw->k", v, a)
        distance = np.abs(y - y[c])
        distance[c] = np.inf
        others = np.argsort(distance, kind="stable")[:3]
        p = np.exp(y - y.max())
        p /= p.sum()
        return sum(p[d] * (y[c] - y[d]) for d in others) / (sum(p[d] for d in others) + 1e-9)

    weights = []
    for a in x:
        grad = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            step = np.zeros_like(a)
            step[index] = 1e-5
            grad[index] = (target(a + step) - target(a - step)) / 2e-5
        weights.append(grad.mean(axis=(1, 2)))
    got = run(FinerCAM(model, [model.target]), x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(weighted(np.array(weights), x)), atol=1e-4)


def test_finercam_and_refinecam_combine_with_any_base_method(tiny):
    v, _, x = tiny
    model = Head(v)
    for base in (HiResCAM, LayerCAM, ScoreCAM, FEM):
        cam = FinerCAM(model, [model.target], base_method=base, progress=False)
        assert isinstance(cam, base) and isinstance(cam, FinerCAM) and cam.base_method is base
        assert type(cam).__name__ == "FinerCAM"
        maps = run(cam, x)
        assert maps.shape == (2, H, W) and np.isfinite(maps).all()
    # alpha = 0 explains the main class alone: the base method's map
    np.testing.assert_allclose(run(FinerCAM(model, [model.target], base_method=HiResCAM, alpha=0),
                                   x, [ClassifierOutputTarget(1)] * 2),
                               run(HiResCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(1)] * 2), atol=1e-5)
    # target_idx replaces the top class
    np.testing.assert_allclose(run(FinerCAM(model, [model.target], target_idx=4), x),
                               run(FinerCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(4)] * 2), atol=1e-6)
