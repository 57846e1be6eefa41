"""The sanity checks (``metrics.sanity``): an edge detector that ignores the
model fails them, Grad-CAM on a CNN trained on the synthetic shapes passes
them; the similarity measures by hand; the user's model is never changed;
``evaluate_cam_methods`` computes them when named and its table flags a
failing method.

The CNN and the edge detector are tests/sanity_cases.py's (the CNN
trained once per session, its held-out accuracy asserted). ``pytest -s`` prints the similarities of every
randomisation step.
"""
import math
import threading
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from core.test_model_state import assert_same_state, snapshot, user_model  # tests/core/
from sanity_cases import EdgeCAM, trained_shapes_cnn  # tests/sanity_cases.py
from skimage.metrics import structural_similarity

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metric_names import (
    BATCH_ONLY_METRICS,
    METRICS,
    OPT_IN_METRICS,
    SANITY_CHECKS,
    check_metrics,
)
from pytorch_grad_cam.metrics.evaluate import _metric_names, evaluate_cam_methods, format_table
from pytorch_grad_cam.metrics.randomisation import randomisable_layers
from pytorch_grad_cam.metrics.sanity import (
    MPRT,
    EfficientMPRT,
    RandomLogitTest,
    SanityResult,
    SmoothMPRT,
    other_classes,
)
from pytorch_grad_cam.metrics.similarity import histogram_entropy, spearman, ssim, top_k_intersection
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.synthetic_shapes import model_input

#: the first N_CHECKED held-out images are checked
N_CHECKED = 6


@pytest.fixture(scope="module")
def shapes_cnn():
    """The trained SmallCNN and N_CHECKED held-out inputs."""
    model, data, accuracy = trained_shapes_cnn()
    print(f"\n[sanity] held-out accuracy {accuracy:.3f}")
    return model, model_input(data.images)[:N_CHECKED]


def run(check, method, shapes_cnn):
    model, inputs = shapes_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-zero maps of random models
        return check(inputs, None, model, method, [model.features[-1]])


def show(result):
    print(f"\n[sanity] {result}")
    for key, values in result.details.items():
        print(f"  {key:22s} {np.round(np.asarray(values, dtype=np.float64).mean(axis=-1), 3)}")


# ---------------------------------------------------------------- the verdicts
def test_edge_detector_fails_mprt(shapes_cnn):
    result = run(MPRT(), EdgeCAM, shapes_cnn)
    show(result)
    layers = [name for name, _ in randomisable_layers(shapes_cnn[0])]
    assert result.layers == tuple(reversed(layers)) and result.layers[0] == "fc"
    for order in ("cascading", "independent"):
        for measure in ("spearman", "ssim", "top_k"):
            values = result.details[f"{order}/{measure}"]
            assert values.shape == (len(layers), N_CHECKED)
            assert values.min() > 0.999, (order, measure, values.min())
    assert not result.passed and result.verdict == "FAIL"
    assert str(result) == ("MPRT: FAIL (Spearman rank correlation after full randomisation "
                           "1.0000 >= 0.5)")


def test_gradcam_passes_mprt(shapes_cnn):
    result = run(MPRT(), GradCAM, shapes_cnn)
    show(result)
    final = result.details["cascading/spearman"][-1]
    assert np.array_equal(result.values, final)
    assert result.passed and result.value < 0.5, result
    assert str(result).startswith("MPRT: PASS (Spearman rank correlation after full "
                                  f"randomisation {result.value:.4f} < 0.5")
    # step 0 re-initialises fc alone in both orders, the same way (seed + index);
    # the last independent step re-initialises only features.0, the others put back
    for measure in ("spearman", "ssim", "top_k"):
        cascade, alone = (result.details[f"{o}/{measure}"] for o in ("cascading", "independent"))
        np.testing.assert_array_equal(cascade[0], alone[0])
    assert result.details["independent/spearman"][-1].mean() > 0.3 > final.mean()
    # already the top layer alone moves the map far from the original
    assert result.details["cascading/ssim"][0].mean() < 0.7
    assert result.details["cascading/ssim"][-1].mean() < 0.3


def test_edge_detector_fails_and_gradcam_passes_the_random_logit_test(shapes_cnn):
    edge = run(RandomLogitTest(), EdgeCAM, shapes_cnn)
    gradcam = run(RandomLogitTest(), GradCAM, shapes_cnn)
    show(edge)
    show(gradcam)
    assert edge.details["ssim"].min() > 0.999 and edge.details["spearman"].min() > 0.999
    assert not edge.passed
    assert gradcam.passed and gradcam.value < 0.5
    model, inputs = shapes_cnn
    with torch.no_grad():
        predicted = model(inputs).argmax(dim=1)
    assert np.array_equal(gradcam.details["class"], predicted.numpy())
    assert (gradcam.details["other_class"] != gradcam.details["class"]).all()


def test_smooth_and_efficient_mprt(shapes_cnn):
    edge_s = run(SmoothMPRT(n_samples=6), EdgeCAM, shapes_cnn)
    gradcam_s = run(SmoothMPRT(n_samples=6), GradCAM, shapes_cnn)
    edge_e = run(EfficientMPRT(), EdgeCAM, shapes_cnn)
    gradcam_e = run(EfficientMPRT(), GradCAM, shapes_cnn)
    for result in (edge_s, gradcam_s, edge_e, gradcam_e):
        show(result)
    # noise changes the edge map, but the same way before and after: equal maps
    assert edge_s.values.min() > 0.999 and not edge_s.passed
    assert gradcam_s.passed
    assert np.array_equal(edge_e.values, np.ones(N_CHECKED, dtype=np.float32))
    assert not edge_e.passed and str(edge_e).endswith("1.0000 <= 1)")
    ratio = gradcam_e.details["randomised_entropy"] / gradcam_e.details["original_entropy"]
    np.testing.assert_allclose(gradcam_e.values, ratio, rtol=1e-6)
    # the randomised model leaves 4 of Grad-CAM's 6 maps all zero (entropy 0,
    # ratio 0: eMPRT's caveat for ReLU'd maps), so eMPRT fails it here; the map
    # that keeps its extent grows more complex
    empty = gradcam_e.details["randomised_entropy"] == 0
    assert empty.sum() == 4 and (gradcam_e.values[empty] == 0).all()
    assert gradcam_e.values.max() > 1.3
    assert not gradcam_e.passed and str(gradcam_e).endswith(f"{gradcam_e.value:.4f} <= 1)")


def test_seeded_and_independent_of_the_batch(shapes_cnn):
    model, inputs = shapes_cnn
    check = MPRT(independent=False, seed=3)
    layer = [model.features[-1]]
    whole = check(inputs, None, model, GradCAM, layer)
    again = check(inputs, None, model, "gradcam", ["features[-1]"])  # a name, a layer path
    alone = check(inputs[2:3], None, model, GradCAM, layer)
    for key in whole.details:
        np.testing.assert_array_equal(whole.details[key], again.details[key])
        np.testing.assert_allclose(alone.details[key][:, 0], whole.details[key][:, 2], atol=1e-5)
    other = MPRT(independent=False, seed=4)(inputs, None, model, GradCAM, layer)
    assert not np.array_equal(other.details["cascading/spearman"],
                              whole.details["cascading/spearman"])
    # the other class depends on the class and the seed only
    assert other_classes(torch.tensor([0, 1, 2, 0]), 3, 0).tolist()[0] == \
        other_classes(torch.tensor([0]), 3, 0).tolist()[0]


# --------------------------------------------------- the measures, by hand
def test_spearman_with_ties():
    a = np.array([[[1, 2], [2, 3]]], dtype=np.float32)  # ranks 1, 2.5, 2.5, 4
    b = np.array([[[1, 3], [2, 4]]], dtype=np.float32)  # ranks 1, 3, 2, 4
    # deviations from 2.5: (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5): 4.5 / sqrt(4.5 * 5)
    assert spearman(a, b).item() == pytest.approx(3 / math.sqrt(10), abs=1e-6)
    assert spearman(a, b).item() == pytest.approx(scipy.stats.spearmanr(a.ravel(),
                                                                        b.ravel())[0], abs=1e-6)
    assert spearman(a, -b).item() == pytest.approx(-3 / math.sqrt(10), abs=1e-6)
    assert spearman(a, np.zeros_like(a)).item() == 0  # a constant map has no ranking


def test_ssim_of_identical_maps_and_of_a_known_pair():
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 20)).astype(np.float32)
    np.testing.assert_allclose(ssim(x, x).numpy(), [1, 1], atol=1e-6)
    np.testing.assert_allclose(ssim(x, 3 * x + 1).numpy(), [1, 1], atol=1e-6)  # scaled to [0, 1]
    # an 11 x 11 pair is one window: its Gaussian-weighted statistics by hand
    left = np.zeros((11, 11))
    left[:, :5] = 1.0
    flipped = 1 - left
    line = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5 ** 2))
    w = np.outer(line, line) / line.sum() ** 2
    p = (w * left).sum()  # the window's weight on the ones, below 1/2
    mu_x, mu_y, var, cov = p, 1 - p, p * (1 - p), -p * (1 - p)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                / ((mu_x ** 2 + mu_y ** 2 + c1) * (2 * var + c2)))
    assert ssim(left[None], flipped[None]).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(-0.8645, abs=1e-4)  # p = 1.3796 / 3.7592 = 0.367
    # skimage with Wang et al.'s settings agrees on a random pair
    y = rng.random((16, 20))
    scaled_x = (x[0] - x[0].min()) / (x[0].max() - x[0].min())
    reference = structural_similarity(scaled_x.astype(np.float64), (y - y.min()) / np.ptp(y),
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1)
    assert ssim(x[:1], y[None]).item() == pytest.approx(reference, abs=1e-6)
    with pytest.raises(ValueError, match="ssim needs maps of at least 11 x 11 pixels"):
        ssim(np.zeros((1, 10, 12)), np.zeros((1, 10, 12)))


def test_top_k_intersection_on_3x3():
    a = np.array([[[9, 8, 1], [2, 7, 3], [4, 5, 6]]], dtype=np.float32)  # top 3: 9, 8, 7
    b = np.array([[[9, 1, 2], [3, 8, 4], [5, 6, 7]]], dtype=np.float32)  # top 3: 9, 8, 7
    # a's top 3 at (0,0), (0,1), (1,1); b's at (0,0), (1,1), (2,2): two shared
    assert top_k_intersection(a, b, 3).item() == pytest.approx(2 / 3)
    assert top_k_intersection(a, b, 1).item() == 1.0  # both peak at (0,0)
    assert top_k_intersection(a, b, 2).item() == 0.5  # {(0,0),(0,1)} vs {(0,0),(1,1)}
    assert top_k_intersection(a, b, 9).item() == 1.0
    with pytest.raises(ValueError, match=r"k must be an int from 1 to the number of pixels "
                                         r"\(9\), got 10"):
        top_k_intersection(a, b, 10)


def test_histogram_entropy_by_hand():
    maps = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 1]], [[5, 5], [5, 5]]], dtype=np.float32)
    assert histogram_entropy(maps[:1], n_bins=2).item() == pytest.approx(math.log(2))
    # 4 bins over [0, 1]: counts 3, 0, 0, 1
    assert histogram_entropy(maps[1:2], n_bins=4).item() == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-6)
    assert histogram_entropy(maps[2:], n_bins=4).item() == 0  # one bin
    # numpy's histogram and scipy's entropy, as Quantus's discrete_entropy
    values = np.random.default_rng(1).random((1, 12, 12))
    counts, _ = np.histogram(values[0], bins=100)
    assert histogram_entropy(values).item() == pytest.approx(scipy.stats.entropy(counts),
                                                             abs=1e-5)


# --------------------------------------------------- the user's model
class RaisesOnSecondModel(GradCAM):
    """Grad-CAM that raises on its second construction (for MPRT and eMPRT
    on the re-initialised copy, for sMPRT and the random logit test on the
    user's model)."""

    built = 0

    def __init__(self, *args, **kwargs):
        type(self).built += 1
        if type(self).built == 2:
            raise RuntimeError("boom on the second map")
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("check", [MPRT(), SmoothMPRT(n_samples=2), EfficientMPRT(),
                                   RandomLogitTest()], ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("raises", [False, True], ids=["returns", "raises"])
def test_the_model_is_not_changed(check, raises):
    model = user_model()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    before = snapshot(model)
    values = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    method = type("Raises", (RaisesOnSecondModel,), {"built": 0}) if raises else GradCAM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if raises:
            with pytest.raises(RuntimeError, match="boom on the second map"):
                check(x, None, model, method, [model.relu])
        else:
            assert isinstance(check(x, None, model, method, [model.relu]), SanityResult)
    assert_same_state(before, snapshot(model))
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_bad_arguments_are_named():
    model = user_model().eval()
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(ValueError, match="method: unknown CAM method 'gradkam'; did you "
                                         "mean gradcam"):
        MPRT()(x, None, model, "gradkam", [model.relu])
    with pytest.raises(TypeError, match="method must be a BaseCAM subclass"):
        MPRT()(x, None, model, len, [model.relu])
    with pytest.raises(ValueError, match=r"target_layers\[0\] \(Linear"):
        MPRT()(x, None, model, GradCAM, [torch.nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="targets\\[0\\] is .*; the random logit test needs "
                                        "class targets"):
        RandomLogitTest()(x, [lambda out: out[0]], model, GradCAM, [model.relu])
    with pytest.raises(ValueError, match=r"top_k_share must lie in \(0, 1\]"):
        MPRT(top_k_share=0)
    built = []

    class Counted(GradCAM):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    with pytest.raises(ValueError, match="input_tensor has images of 10 x 12 pixels; MPRT "
                                         "compares maps by SSIM, whose window needs at least "
                                         "11 x 11"):
        MPRT()(torch.randn(1, 3, 10, 12), None, model, Counted, [model.relu])
    model.lock = threading.Lock()  # cannot be deep-copied
    for check in (MPRT(), SmoothMPRT(n_samples=2), EfficientMPRT()):
        with pytest.raises(TypeError, match=r"model \(Net\) cannot be deep-copied \(cannot "
                                            r"pickle '_thread.lock' object\); the "
                                            "randomisation checks re-initialise a copy, never "
                                            "the model"):
            check(x, None, model, Counted, [model.relu])
    assert not built  # before any map


# --------------------------------------------------- evaluate_cam_methods
def test_names_directions_and_opt_in():
    assert SANITY_CHECKS == ("MPRT", "sMPRT", "eMPRT", "RandomLogit")
    assert [METRICS[m] for m in SANITY_CHECKS] == ["lower", "lower", "higher", "lower"]
    assert set(SANITY_CHECKS) <= set(OPT_IN_METRICS) and set(SANITY_CHECKS) <= set(
        BATCH_ONLY_METRICS)
    assert not set(SANITY_CHECKS) & set(_metric_names(None, None))
    with pytest.raises(ValueError, match=r"metrics\[0\] is 'MPRT' \(a dataset run does not "
                                         "compute it"):
        check_metrics(["MPRT"])


def test_evaluate_computes_them_and_flags_a_failing_method(shapes_cnn):
    model, inputs = shapes_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rows = evaluate_cam_methods(model, [model.features[-1]], inputs[:3],
                                    methods=[GradCAM, EdgeCAM],
                                    metrics=["Complexity", "MPRT", "eMPRT", "RandomLogit"])
    table = format_table(rows)
    print("\n" + table)
    targets = [ClassifierOutputTarget(int(c)) for c in model(inputs[:3]).argmax(dim=1)]
    alone = MPRT(independent=False)(inputs[:3], targets, model, GradCAM, [model.features[-1]])
    assert rows["GradCAM"]["MPRT"] == pytest.approx(alone.value, abs=1e-6)
    assert rows["EdgeCAM"]["MPRT"] == pytest.approx(1.0, abs=1e-4)
    lines = table.splitlines()
    gradcam, edge = (next(line for line in lines if line.startswith(n)).split()
                     for n in ("GradCAM", "EdgeCAM"))
    assert gradcam == ["GradCAM", f"{rows['GradCAM']['Complexity']:.4f}",
                       f"{rows['GradCAM']['MPRT']:.4f}", f"{rows['GradCAM']['eMPRT']:.4f}",
                       "FAIL", f"{rows['GradCAM']['RandomLogit']:.4f}"]  # see eMPRT's caveat
    assert edge == ["EdgeCAM", f"{rows['EdgeCAM']['Complexity']:.4f}", "1.0000", "FAIL",
                    "1.0000", "FAIL", "1.0000", "FAIL"]
    assert lines[-1] == ("FAIL: the method fails that sanity check (a pass needs MPRT < 0.5, "
                         "eMPRT > 1, RandomLogit < 0.5)")
