"""Deep Feature Factorization gives grad-cam 1.5.7's concepts, heat maps and
concept outputs (1.5.7 factorises with scikit-learn's ``NMF(init="random",
random_state=0)``; ours with scikit-learn where it is installed, with its
solver ported to torch otherwise), and the NMF solvers against a line-by-line
transcription of scikit-learn's coordinate descent.
"""
import importlib.machinery
import importlib.util
import sys
import warnings

import numpy as np
import pytest
import torch

from pytorch_grad_cam import DeepFeatureFactorization
from pytorch_grad_cam.feature_factorization import _nmf as nmf_module
from pytorch_grad_cam.feature_factorization import dff, non_negative_matrix_factorization

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
SOLVERS = ["auto", "cd", pytest.param("sklearn", marks=pytest.mark.skipif(
    not HAS_SKLEARN, reason="scikit-learn is not installed"))]

# grad-cam 1.5.7's results on _small(), printed by
#   GRAD_CAM_157_SRC=<1.5.7 source> python bench/dff_parity.py --test-values \
#       --reference-python <an interpreter with torch and scikit-learn 1.9.1>
CONCEPTS = np.array([[0.07381907, 0.04217226, 0.25567028],
                     [0.21109764, 0.12020384, 0.01314674],
                     [0.32723528, 0., 0.9093538],
                     [0.50445414, 1.5327665, 0.8994287],
                     [0.6216152, -1.0761335, -2.2035098],
                     [-1.2776802, -1.0671879, 0.85973096]], dtype=np.float32)
EXPLANATIONS = np.array([[[[0.13309541, 0.1614261, 0.803163, 0.53574115],
                           [0.6510122, 0., 0.2830793, 0.69056493],
                           [0.6296588, 0.3412055, 0.73732007, 0.12636606],
                           [0.2697286, 0.42201355, 0.21089225, 0.99999994]],
                          [[0.99999994, 0.6714675, 0.19176464, 0.69954556],
                           [0.01817344, 0.14891411, 0.5587657, 0.],
                           [0.2890716, 0.07558192, 0.49783602, 0.15371172],
                           [0.19605368, 0.69460565, 0.74763745, 0.]],
                          [[0.30485946, 0.17233644, 0.228627, 0.],
                           [0., 0.5478507, 0.5928304, 0.8974517],
                           [0.07460171, 0.99999994, 0.35346016, 0.8798938],
                           [0.23347925, 0.05276906, 0.52912515, 0.8336675]]]], dtype=np.float32)
OUTPUTS = np.array([[-2.2096767, -1.83585, -0.52504325],
                    [-3.8089595, -1.9940027, -0.01517926],
                    [-2.7035232, 1.6913123, -0.66026974]], dtype=np.float32)


class _Model(torch.nn.Module):
    """The identity (the activations are the input) and a linear head on the mean."""

    def __init__(self, head):
        super().__init__()
        self.layer4 = torch.nn.Identity()
        self.fc = torch.nn.Linear(6, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(head))

    def forward(self, x):
        return self.fc(self.layer4(x).mean(dim=(2, 3)))


def _small():
    """bench/dff_parity.py's SMALL: 1 image, 6 channels (0-2 after a ReLU, 3 with a
    positive minimum, 4-5 with negative values), 4 x 4."""
    rng = np.random.default_rng(0)
    activations = rng.normal(size=(1, 6, 4, 4)).astype(np.float32)
    activations[:, :3] = np.maximum(activations[:, :3], 0)
    activations[:, 3] = np.abs(activations[:, 3]) + 0.5
    head = rng.normal(size=(3, 6)).astype(np.float32)
    return _Model(head).eval(), torch.from_numpy(activations)


@pytest.mark.parametrize("solver", SOLVERS)
def test_deep_feature_factorization_gives_157s_results(solver):
    model, images = _small()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
        dff_method = DeepFeatureFactorization(model=model, target_layer=model.layer4,
                                              computation_on_concepts=model.fc, solver=solver)
        concepts, batch_explanations, concept_outputs = dff_method(images, 3)
    # the same components in the same order: 1e-4 of the largest value
    np.testing.assert_allclose(concepts, CONCEPTS, rtol=0, atol=2e-4)
    np.testing.assert_allclose(batch_explanations, EXPLANATIONS, rtol=0, atol=1e-4)
    np.testing.assert_allclose(concept_outputs, OUTPUTS, rtol=0, atol=4e-4)


def test_peak_normalize_moves_the_scale_to_the_concepts():
    model, images = _small()
    plain = dff(images, 3)
    concepts, explanations = dff(images, 3, peak_normalize=True)
    peaks = plain[1].max(axis=(0, 2, 3))
    np.testing.assert_allclose(explanations.max(axis=(0, 2, 3)), [1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(explanations, plain[1] / peaks[None, :, None, None], rtol=1e-5)
    offset = images.numpy().min(axis=(0, 2, 3))[:, None]
    np.testing.assert_allclose(concepts - offset, (plain[0] - offset) * peaks[None], rtol=1e-4,
                               atol=1e-6)
    # the maps DeepFeatureFactorization returns are min-max scaled either way
    with DeepFeatureFactorization(model, model.layer4, computation_on_concepts=model.fc,
                                  peak_normalize=True) as method:
        found, maps, outputs = method(images, 3)
    np.testing.assert_allclose(maps, EXPLANATIONS, rtol=0, atol=1e-4)
    np.testing.assert_allclose(found, concepts, rtol=1e-6)
    np.testing.assert_allclose(outputs, concepts.T @ model.fc.weight.detach().numpy().T, atol=1e-5)


def _sklearn_cd_sweep(w, hht, xht):
    """scikit-learn's _update_cdnmf_fast (sklearn/decomposition/_cdnmf_fast.pyx), line
    by line, in float64."""
    violation = 0.0
    for t in range(w.shape[1]):
        for i in range(w.shape[0]):
            grad = -xht[i, t]
            for r in range(w.shape[1]):
                grad += hht[t, r] * w[i, r]
            pg = min(0.0, grad) if w[i, t] == 0 else grad
            violation += abs(pg)
            if hht[t, t] != 0:
                w[i, t] = max(w[i, t] - grad / hht[t, t], 0.0)
    return violation


def _sklearn_nmf(x, k, max_iter, tol):
    """scikit-learn's NMF(k, init="random", random_state=0, max_iter, tol).fit_transform,
    transcribed (_initialize_nmf's "random" branch, _fit_coordinate_descent)."""
    avg = np.sqrt(x.mean() / k)
    rng = np.random.RandomState(0)
    h = np.abs(avg * rng.standard_normal(size=(k, x.shape[1])))
    w = np.abs(avg * rng.standard_normal(size=(x.shape[0], k)))
    ht = np.ascontiguousarray(h.T)
    for n_iter in range(1, max_iter + 1):
        violation = _sklearn_cd_sweep(w, ht.T @ ht, x @ ht)
        violation += _sklearn_cd_sweep(ht, w.T @ w, x.T @ w)
        if n_iter == 1:
            first = violation
        if first == 0 or violation / first <= tol:
            break
    return w, ht.T, n_iter


def test_cd_solver_is_sklearns_coordinate_descent():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.normal(size=(7, 9)), 0) + rng.uniform(0, 0.1, size=(7, 9))
    for max_iter, tol in ((5, 1e-4), (200, 1e-2)):
        w, h, n_iter = _sklearn_nmf(x, 3, max_iter, tol)
        result = non_negative_matrix_factorization(torch.from_numpy(x), 3, max_iter=max_iter,
                                                   tol=tol, solver="cd")
        assert result.W.dtype == torch.float64 and len(result.errors) == n_iter
        np.testing.assert_allclose(result.W.numpy(), w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.H.numpy(), h, rtol=1e-9, atol=1e-12)
    assert 5 < n_iter < 200  # the second case stopped on tol
    errors = result.errors
    assert bool((errors[1:] <= errors[:-1] * (1 + 1e-12)).all())  # never increases
    np.testing.assert_allclose(float(errors[-1]), np.linalg.norm(x - w @ h), rtol=1e-9)


@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn is not installed")
def test_cd_and_sklearn_solvers_agree_with_sklearn():
    from sklearn.decomposition import NMF
    rng = np.random.default_rng(4)
    x = np.maximum(rng.normal(size=(40, 30)), 0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NMF(n_components=4, init="random", random_state=0)
        w = model.fit_transform(x.copy())
        ours = {solver: non_negative_matrix_factorization(torch.from_numpy(x), 4, solver=solver)
                for solver in ("cd", "sklearn", "auto")}
    assert torch.equal(ours["auto"].W, ours["sklearn"].W)
    np.testing.assert_array_equal(ours["sklearn"].W.numpy(), w)
    np.testing.assert_array_equal(ours["sklearn"].H.numpy(), model.components_)
    np.testing.assert_allclose(ours["cd"].W.numpy(), w, rtol=0, atol=1e-4 * w.max())


def test_auto_solver_without_sklearn_is_the_torch_port(monkeypatch):
    v = torch.rand(8, 12, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(nmf_module.importlib.util, "find_spec",
                        lambda name, *args: None if name == "sklearn" else
                        importlib.machinery.PathFinder.find_spec(name))
    for name in ("sklearn", "sklearn.decomposition"):  # importing them raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    auto = non_negative_matrix_factorization(v, 3, max_iter=30, solver="auto")
    cd = non_negative_matrix_factorization(v, 3, max_iter=30, solver="cd")
    assert torch.equal(auto.W, cd.W) and torch.equal(auto.H, cd.H)
    with pytest.raises(ImportError, match=r'solver="sklearn" needs scikit-learn: pip install '
                                          r'"grad-cam\[dff\]", or use solver="cd"'):
        non_negative_matrix_factorization(v, 3, solver="sklearn")
    with pytest.raises(ValueError, match="solver must be one of 'auto', 'cd', 'sklearn', "
                                         "'mu', got 'nndsvd'"):
        non_negative_matrix_factorization(v, 3, solver="nndsvd")
