"""EigenCAM, EigenGrad-CAM, SegEigenCAM and KPCA-CAM against numpy's principal components
on a tiny model.
"""
import numpy as np
import pytest
from method_cases import C, H, Head, K, W, normalise, run

from pytorch_grad_cam import KPCA_CAM, EigenCAM, EigenGradCAM, SegEigenCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def first_component(points):
    """N x C -> projection on the first right singular vector of the
    uncentred points, with the sign that makes it sum to >= 0."""
    _, _, vt = np.linalg.svd(points, full_matrices=False)
    projection = points @ vt[0]
    return projection if projection.sum() >= 0 else -projection


def test_eigencam_is_the_uncentred_first_component(tiny):
    _, _, x = tiny
    x = np.abs(x) + np.linspace(0, 1, H * W).reshape(1, 1, H, W)  # post-ReLU-like activations
    model = Head(np.zeros((K, C, H, W)))
    expected = [first_component(a.reshape(C, -1).T).reshape(H, W) for a in x]
    got = run(EigenCAM(model, [model.target]), x, [ClassifierOutputTarget(0)] * 2)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-5)
    # class-agnostic: another target gives the same map
    np.testing.assert_allclose(run(EigenCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(4)] * 2), got, atol=1e-6)


def test_eigengradcam_and_segeigencam_match_hand_computed(tiny):
    v, _, x = tiny
    model = Head(v)
    targets = [ClassifierOutputTarget(2), ClassifierOutputTarget(0)]
    g = v[[2, 0]]
    eigen_grad = [first_component((gi * a).reshape(C, -1).T).reshape(H, W)
                  for gi, a in zip(g, x)]
    got = run(EigenGradCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, normalise(eigen_grad), atol=1e-5)

    seg = []
    for gi, a in zip(g, x):
        points = (np.abs(gi) * a).reshape(C, -1).T
        points = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(points, full_matrices=False)
        projection = points @ vt[0]
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection
        seg.append(projection.reshape(H, W))
    got = run(SegEigenCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, normalise(seg), atol=1e-5)


@pytest.mark.parametrize("kernel", ["sigmoid", "rbf", "poly", "linear", "cosine"])
def test_kpca_cam_matches_hand_computed_kernel_pca(tiny, kernel):
    _, _, x = tiny
    model = Head(np.zeros((K, C, H, W)))
    expected = []
    for a in x:
        points = a.reshape(C, -1).T
        points = points - points.mean(axis=0)
        gram, gamma = points @ points.T, 1.0 / C
        if kernel == "sigmoid":
            k = np.tanh(gamma * gram + 1)
        elif kernel == "rbf":
            sq = (points ** 2).sum(axis=1)
            k = np.exp(-gamma * (sq[:, None] + sq[None] - 2 * gram))
        elif kernel == "poly":
            k = (gamma * gram + 1) ** 3
        elif kernel == "linear":
            k = gram
        else:
            unit = points / np.linalg.norm(points, axis=1, keepdims=True)
            k = unit @ unit.T
        n = len(k)
        one = np.full((n, n), 1.0 / n)
        k = k - one @ k - k @ one + one @ k @ one
        values, vectors = np.linalg.eigh(k)
        projection = vectors[:, -1] * np.sqrt(max(values[-1], 0))
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection  # scikit-learn's sign: largest magnitude positive
        expected.append(projection.reshape(H, W))
    got = run(KPCA_CAM(model, [model.target], kernel=kernel), x, [ClassifierOutputTarget(0)] * 2)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-4)
