"""Faithfulness correlation (``metrics.faithfulness_correlation``) by hand on tiny linear
models: the correlation, the seeded subsets, their independence of the batch and of the
chunking, the argument errors (before any forward pass) and the model left as it was.
"""
import numpy as np
import pytest
import torch
from metric_cases import logits
from torch import nn

from pytorch_grad_cam.metrics.faithfulness_correlation import FaithfulnessCorrelation, random_subsets
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def weighted_sum():
    """One logit: 1 x11 + 2 x12 + 3 x21 + 4 x22 of a 1 x 2 x 2 image."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    return model.eval()


def test_faithfulness_correlation_by_hand():
    x = torch.ones(1, 1, 2, 2)
    cam = np.array([[[1.0, 0.0], [2.0, 0.0]]], dtype=np.float32)
    # subsets {0, 1}, {0, 2}, {1, 3} (raster order) replaced by 0:
    #   score drops 1 + 2 = 3, 1 + 3 = 4, 2 + 4 = 6; map sums 1 + 0 = 1, 1 + 2 = 3, 0 + 0 = 0
    #   map sums minus their mean 4/3: -1/3, 5/3, -4/3; drops minus 13/3: -4/3, -1/3, 5/3
    #   covariance sum (4 - 5 - 20) / 9 = -21/9; both squared norms 42/9: r = -21/42 = -0.5
    metric = FaithfulnessCorrelation()
    assert metric(x, cam, None, weighted_sum(), subsets=[[0, 1], [0, 2], [1, 3]])[0] \
        == pytest.approx(-0.5, abs=1e-6)
    # the map equal to the weights: every map sum equals its drop, r = 1
    weights = np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32)
    assert metric(x, weights, None, weighted_sum(), subsets=[[0, 1], [0, 2], [1, 3]])[0] \
        == pytest.approx(1.0, abs=1e-6)
    # baseline 1 on an all-ones image changes nothing: constant drops correlate 0
    assert FaithfulnessCorrelation(baseline=1.0)(x, cam, None, weighted_sum(),
                                                 subsets=[[0, 1], [0, 2], [1, 3]])[0] == 0
    # an all-zero map: constant sums, 0
    assert metric(x, np.zeros((1, 2, 2)), None, weighted_sum(), subsets=[[0], [3]])[0] == 0


def test_faithfulness_correlation_matches_the_model_by_hand(model, images, cams):
    """The tiny two-logit model of the other metric tests, per-image subsets: the Pearson
    correlation of numpy's map sums and of the logits computed by hand."""
    rng = np.random.default_rng(5)
    subsets = np.stack([[rng.permutation(16)[:5] for _ in range(7)] for _ in range(3)])
    targets = [ClassifierOutputTarget(1)] * 3
    got = FaithfulnessCorrelation(baseline=0.25)(torch.from_numpy(images), cams, targets, model,
                                                 subsets=subsets)
    for i in range(3):
        drops, sums = [], []
        for subset in subsets[i]:
            changed = images[i].reshape(16).copy()
            changed[subset] = 0.25
            drops.append(logits(images[i:i + 1])[0, 1] - logits(changed[None])[0, 1])
            sums.append(cams[i].reshape(16)[subset].sum())
        assert got[i] == pytest.approx(np.corrcoef(sums, drops)[0, 1], abs=1e-5)


def test_the_seed_fixes_the_subsets_for_every_batch_and_chunking(model, images, cams):
    x = torch.from_numpy(images)
    targets = [ClassifierOutputTarget(0)] * 3
    first = FaithfulnessCorrelation(n_runs=6, subset_size=5, seed=3)(x, cams, targets, model)
    # the subsets: the first 5 of a randperm of the 16 pixels per run, one generator seeded 3
    generator = torch.Generator().manual_seed(3)
    subsets = random_subsets(16, 6, 5, 3)
    assert subsets.shape == (6, 5)
    assert subsets[0].tolist() == torch.randperm(16, generator=generator)[:5].tolist()
    np.testing.assert_allclose(FaithfulnessCorrelation()(x, cams, targets, model,
                                                         subsets=subsets), first, atol=1e-6)
    # same seed, same values; another batch size; one image alone
    again = FaithfulnessCorrelation(n_runs=6, subset_size=5, seed=3, batch_size=1)
    np.testing.assert_allclose(again(x, cams, targets, model), first, atol=1e-6)
    alone = FaithfulnessCorrelation(n_runs=6, subset_size=5, seed=3)(x[1:2], cams[1:2],
                                                                      targets[1:2], model)
    assert alone[0] == pytest.approx(first[1], abs=1e-6)
    other = FaithfulnessCorrelation(n_runs=6, subset_size=5, seed=4)(x, cams, targets, model)
    assert not np.allclose(other, first)


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


@pytest.mark.parametrize("build, message", [
    (lambda: FaithfulnessCorrelation(n_runs=1), "n_runs must be at least 2 .*, got 1"),
    (lambda: FaithfulnessCorrelation(n_runs=2.5), r"n_runs must be a positive int, got 2.5"),
    (lambda: FaithfulnessCorrelation(subset_size=0), "subset_size must be >= 1, got 0"),
    (lambda: FaithfulnessCorrelation(baseline="black"),
     r"baseline must be a number .*, got 'black' \(str\)"),
    (lambda: FaithfulnessCorrelation(baseline=float("nan")), "baseline must be finite, got nan"),
    (lambda: FaithfulnessCorrelation(seed=None), r"seed must be an int, got None"),
    (lambda: FaithfulnessCorrelation(batch_size=0), "batch_size must be >= 1, got 0"),
])
def test_bad_arguments_name_the_argument(build, message):
    with pytest.raises((TypeError, ValueError), match=message):
        build()


@pytest.mark.parametrize("metric, subsets, error, message", [
    (FaithfulnessCorrelation(subset_size=17), None, ValueError,
     "subset_size is 17, but the maps have only 16 pixels"),
    (FaithfulnessCorrelation(), [[0, 1]], ValueError,
     r"subsets has shape \(1, 2\); expected \(runs, size\) or \(3, runs, size\)"),
    (FaithfulnessCorrelation(), np.zeros((2, 2, 3), dtype=int), ValueError,
     r"subsets has shape \(2, 2, 3\)"),
    (FaithfulnessCorrelation(), [[0, 1], [2, 16]], ValueError,
     r"subsets holds pixel indices from 0 to 16; the maps have pixels 0 \.\. 15"),
    (FaithfulnessCorrelation(), [[0, 1], [2, 2]], ValueError,
     r"subsets\[1\] holds a pixel twice"),
    (FaithfulnessCorrelation(), [[0.0, 1.0], [2.0, 3.0]], TypeError,
     "subsets must be integer pixel indices, got dtype float64"),
])
def test_bad_subsets_name_the_argument_before_any_forward_pass(model, images, cams, metric,
                                                                subsets, error, message):
    counting = Counting(model)
    with pytest.raises(error, match=message):
        metric(torch.from_numpy(images), cams, None, counting, subsets=subsets)
    assert counting.calls == 0


def test_bad_maps_and_targets_name_the_argument(model, images, cams):
    x = torch.from_numpy(images)
    with pytest.raises(ValueError, match=r"grayscale_cams has shape \(3, 4\), expected "
                                         r"\(3, 4, 4\)"):
        FaithfulnessCorrelation()(x, cams[:, 0], None, model)
    with pytest.raises(TypeError, match="targets must be a list"):
        FaithfulnessCorrelation()(x, cams, ClassifierOutputTarget(0), model)


def test_the_model_is_left_as_it_was(images, cams):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 2)).train()
    model[2].bias.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(images)
    metric = FaithfulnessCorrelation(n_runs=4, subset_size=3)
    first = metric(x, cams, None, model)
    np.testing.assert_array_equal(metric(x, cams, None, model), first)  # eval inside
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, False]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
