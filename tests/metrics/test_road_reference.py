"""ROAD against grad-cam 1.5.7 (its percentile threshold, its noise from torch's global
generator), the exact-count ``removal="rank"``, and the imputation's two solvers
(``metrics.imputation``).
"""
import importlib.util

import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics import imputation
from pytorch_grad_cam.metrics.imputation import linear_imputation
from pytorch_grad_cam.metrics.road import (
    NoisyLinearImputer,
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

needs_scipy = pytest.mark.skipif(importlib.util.find_spec("scipy") is None,
                                 reason="the direct solver needs SciPy")

# grad-cam 1.5.7's values of the tutorial's calls on SETUP below, each call after
# torch.manual_seed(0); printed by `python bench/road_parity.py --reference-python
# <a Python with grad-cam 1.5.7 and scikit-learn>` (torch 2.14.1, scipy 1.17.1)
REFERENCE_157 = {
    "MoRF75": [0.2542034089565277, 0.2038002610206604],
    "LeRF25": [-0.7323753833770752, 1.4701170921325684],
    "MoRFAverage": [0.21692129969596863, 0.3621861934661865],
    "LeRFAverage": [-0.284725546836853, 0.7034193873405457],
    "Combined": [-0.24706457555294037, 0.1672566831111908],
}


def setup():
    """bench/road_parity.py's SETUP: a fixed linear model of 3 x 12 x 12 images and two
    maps with a flat zero area and a clipped plateau at 1 (change both together)."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.normal(size=(2, 3, 12, 12)).astype(np.float32))
    weights = torch.from_numpy(rng.normal(size=(3, 3 * 12 * 12)).astype(np.float32) / 20)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weights)
    model.eval()
    y, x = np.mgrid[0:12, 0:12] / 11.0
    cams = np.stack([np.clip(1.6 - 3 * np.hypot(y - 0.3, x - 0.6), 0, 1),
                     np.clip(2 * (x + 0.5 * y) - 1.2, 0, 1)]).astype(np.float32)
    return model, images, cams


def tutorial_metrics(**kwargs):
    return {
        "MoRF75": ROADMostRelevantFirst(percentile=75, **kwargs),
        "LeRF25": ROADLeastRelevantFirst(percentile=25, **kwargs),
        "MoRFAverage": ROADMostRelevantFirstAverage(percentiles=[20, 40, 60, 80], **kwargs),
        "LeRFAverage": ROADLeastRelevantFirstAverage(percentiles=[20, 40, 60, 80], **kwargs),
        "Combined": ROADCombined(percentiles=[20, 40, 60, 80], **kwargs),
    }


@needs_scipy
def test_tutorial_calls_give_the_reference_numbers():
    model, images, cams = setup()
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    for name, metric in tutorial_metrics().items():
        torch.manual_seed(0)
        np.testing.assert_allclose(metric(images, cams, targets, model), REFERENCE_157[name],
                                   atol=2e-6, err_msg=name)


def test_rank_removal_differs_from_the_reference_on_ties_and_is_reproducible():
    model, images, cams = setup()
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    metric = tutorial_metrics(removal="rank", seed=0)["Combined"]
    first = metric(images, cams, targets, model)
    torch.manual_seed(123)  # a fixed seed: the global generator plays no part
    assert np.array_equal(metric(images, cams, targets, model), first)
    assert np.abs(first - np.asarray(REFERENCE_157["Combined"])).max() > 0.1
    # map 0 has 52 zeros of 144 pixels: percentile 20 keeps round(0.2 x 144) = 29 pixels
    # by rank, none by the threshold (no value is below the percentile, 0)
    first_map = torch.from_numpy(cams[:1])
    assert int((first_map == 0).sum()) == 52
    rank = ROADMostRelevantFirst(20, removal="rank").perturbation.keep_mask(first_map)
    threshold = ROADMostRelevantFirst(20).perturbation.keep_mask(first_map)
    assert int(rank.sum()) == 29 and int(threshold.sum()) == 0


def test_noise_of_the_default_imputer_is_drawn_as_the_reference_draws_it():
    rng = np.random.default_rng(4)
    image = torch.from_numpy(rng.normal(size=(2, 2, 5, 6)).astype(np.float32))
    mask = torch.from_numpy(rng.uniform(size=(2, 5, 6)) < 0.5)
    torch.manual_seed(3)
    out = NoisyLinearImputer(noise=0.1)(image, mask)
    clean = NoisyLinearImputer(noise=0.0)(image, mask)
    torch.manual_seed(3)
    for b in range(2):  # image by image: randn(C, n) over the n imputed pixels, row-major
        unknown = (~mask[b]).flatten().nonzero().flatten()
        expected = torch.randn(2, unknown.numel()) * 0.1
        got = (out[b] - clean[b]).flatten(1)
        torch.testing.assert_close(got[:, unknown], expected, atol=1e-6, rtol=0)
        assert float(got[:, mask[b].flatten()].abs().max()) == 0


@needs_scipy
def test_direct_and_cg_solvers_agree_with_a_dense_solve():
    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.normal(size=(2, 3, 9, 7)).astype(np.float32))
    known = torch.from_numpy(rng.uniform(size=(2, 9, 7)) < 0.4)
    known[1, :, :4] = False  # a large connected region
    direct = linear_imputation(image, known, solver="direct")
    cg = linear_imputation(image, known, solver="cg", tol=1e-7)
    torch.testing.assert_close(direct, cg, atol=2e-5, rtol=0)
    # the system by hand for one unknown pixel: its value is the weighted mean of its
    # neighbours' (imputed or known) values
    values, y, x = direct[1, 0].double(), 4, 2
    weights = {(dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)}
    mean = sum(w * values[y + dy, x + dx] for (dy, dx), w in weights.items())
    assert float(values[y, x]) == pytest.approx(float(mean), abs=1e-6)


@needs_scipy
def test_direct_solver_imputes_zeros_where_nothing_is_known():
    image = torch.ones(2, 1, 6, 6)
    known = torch.zeros(2, 6, 6, dtype=torch.bool)
    known[1, 0, 0] = True  # image 1: one known pixel, the rest is interpolated from it
    out = linear_imputation(image, known, solver="direct")
    assert torch.equal(out[0], torch.zeros(1, 6, 6))
    torch.testing.assert_close(out[1], torch.ones(1, 6, 6))


def test_solver_argument_is_checked(monkeypatch):
    with pytest.raises(ValueError, match=r"solver must be one of \('auto', 'direct', 'cg'\), "
                                         r"got 'lu'"):
        NoisyLinearImputer(solver="lu")
    real = importlib.util.find_spec
    monkeypatch.setattr(imputation.importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real(name, *a))
    with pytest.raises(ImportError, match=r"solver='direct' needs SciPy: pip install scipy"):
        NoisyLinearImputer(solver="direct")
    assert imputation.check_solver("auto") == "cg"
