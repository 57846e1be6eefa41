"""ShapleyCAM: Grad-CAM's gradient plus the Hessian-vector product, by hand.
"""
import numpy as np
from method_cases import Head, normalise, run, weighted

from pytorch_grad_cam import GradCAM, ShapleyCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget


def test_shapleycam_adds_the_hessian_vector_product(tiny):
    v, u, x = tiny
    model = Head(v, u)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(4)]
    classes = [1, 4]
    weights = []
    for b, c in enumerate(classes):
        ua = (u[c] * x[b]).sum()
        gradient = v[c] + ua * u[c]
        hvp = ua * u[c]
        weights.append((gradient - 0.5 * hvp).mean(axis=(1, 2)))
    expected = normalise(weighted(np.array(weights), x))
    got = run(ShapleyCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # it differs from Grad-CAM here (the Hessian is not zero)
    gradcam = run(GradCAM(model, [model.target]), x, targets)
    assert np.abs(gradcam - got).max() > 0.05


def test_shapleycam_with_rest_target_matches_closed_form(tiny):
    v, _, x = tiny
    model = Head(v)  # linear: y = <V, A>
    c = 2
    y = np.einsum("kchw,bchw->bk", v, x)
    weights = []
    for b in range(2):
        p = np.exp(y[b] - y[b].max())
        p /= p.sum()
        gradient = 2 * v[c] - np.einsum("k,kchw->chw", p, v)      # d(y_c + log p_c)/dA
        hvp = -np.einsum("k,kchw->chw", p * (y[b] - p @ y[b]), v)  # d gradient(A + tA)/dt
        weights.append((gradient - 0.5 * hvp).mean(axis=(1, 2)))
    got = run(ShapleyCAM(model, [model.target]), x, [ClassifierOutputReST(c)] * 2)
    np.testing.assert_allclose(got, normalise(weighted(np.array(weights), x)), atol=1e-5)
