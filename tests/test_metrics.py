"""The metrics against values computed by hand on a tiny linear model."""
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
)
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC, gaussian_blur
from pytorch_grad_cam.metrics.evaluate import METRICS, evaluate_cam_methods, format_table
from pytorch_grad_cam.metrics.perturbation_confidence import otsu_threshold
from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, PointingGame
from pytorch_grad_cam.metrics.road import (
    NoisyLinearImputer,
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
    linear_imputation,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

# The tiny model: two logits, each a fixed linear function of a 1 x 4 x 4 image.
W = np.stack([np.linspace(-1, 1, 16), np.cos(np.arange(16))]).astype(np.float32)
B = np.array([0.3, -0.2], dtype=np.float32)
# neighbour weights of the ROAD imputation, (dy, dx) -> w
NEIGHBOURS = {(dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12)
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)}


class Linear2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(16, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(W))
            self.fc.bias.copy_(torch.from_numpy(B))

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def logits(x: np.ndarray) -> np.ndarray:
    """The model by hand: B x 1 x 4 x 4 -> B x 2."""
    return x.reshape(len(x), 16) @ W.T + B


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def model():
    return Linear2().eval()


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    return rng.uniform(-1, 1, (3, 1, 4, 4)).astype(np.float32)


@pytest.fixture
def cams():
    rng = np.random.default_rng(2)
    order = np.stack([rng.permutation(16) for _ in range(3)])
    return order.astype(np.float32).reshape(3, 4, 4) / 15


def solve_imputation(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The ROAD imputation by a dense solve: each unknown pixel is the
    weighted mean of its neighbours inside the image (C x H x W, H x W)."""
    h, w = known.shape
    unknown = [(y, x) for y in range(h) for x in range(w) if not known[y, x]]
    index = {p: i for i, p in enumerate(unknown)}
    a = np.zeros((len(unknown), len(unknown)))
    rhs = np.zeros((len(unknown), image.shape[0]))
    for i, (y, x) in enumerate(unknown):
        for (dy, dx), weight in NEIGHBOURS.items():
            ny, nx = y + dy, x + dx
            if not (0 <= ny < h and 0 <= nx < w):
                continue
            a[i, i] += weight
            if known[ny, nx]:
                rhs[i] += weight * image[:, ny, nx]
            else:
                a[i, index[(ny, nx)]] -= weight
    result = image.astype(np.float64).copy()
    if unknown:
        solution = np.linalg.solve(a, rhs)
        for i, (y, x) in enumerate(unknown):
            result[:, y, x] = solution[i]
    return result


def removed_most_relevant(cam: np.ndarray, count: int) -> np.ndarray:
    """Mask of the `count` highest pixels (cam values distinct)."""
    threshold = np.sort(cam.ravel())[::-1][count - 1]
    return cam >= threshold


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
    np.testing.assert_allclose(DropInConfidence()(x, cams, targets, model),
                               np.maximum(0, y - o) / y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(DropInConfidence(relative=False)(x, cams, targets, model),
                               np.maximum(0, y - o), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(IncreaseInConfidence()(x, cams, targets, model),
                                  (o > y).astype(np.float32))
    assert 0 < (o > y).sum() < 3  # the case covers both outcomes


def test_relative_drop_refuses_non_positive_scores(model, images, cams):
    targets = [ClassifierOutputTarget(0)] * 3
    assert (logits(images)[:, 0] <= 0).any()
    with pytest.raises(ValueError, match="ClassifierOutputSoftmaxTarget"):
        DropInConfidence()(torch.from_numpy(images), cams, targets, model)


def test_targets_none_is_the_top_class(model, images, cams):
    top = logits(images).argmax(axis=1)
    explicit = CamMultImageConfidenceChange()(torch.from_numpy(images), cams,
                                              [ClassifierOutputTarget(int(c)) for c in top], model)
    np.testing.assert_array_equal(
        CamMultImageConfidenceChange()(torch.from_numpy(images), cams, None, model), explicit)


# ---------------------------------------------------------------------- ROAD
def test_imputation_of_single_pixels_by_hand():
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) ** 1.5
    known = np.ones((1, 4, 4), dtype=bool)
    known[0, 1, 2] = False  # interior: all 8 neighbours known
    known[0, 3, 0] = False  # corner: neighbours (2, 0), (3, 1) direct, (2, 1) diagonal
    out = linear_imputation(torch.from_numpy(image), torch.from_numpy(known)).numpy()[0, 0]
    img = image[0, 0]
    interior = sum(w * img[1 + dy, 2 + dx] for (dy, dx), w in NEIGHBOURS.items())
    corner = (img[2, 0] / 6 + img[3, 1] / 6 + img[2, 1] / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    assert out[1, 2] == pytest.approx(interior, rel=1e-5)
    assert out[3, 0] == pytest.approx(corner, rel=1e-5)
    keep = known[0]
    np.testing.assert_array_equal(out[keep], img[keep])


def test_imputation_matches_a_dense_solve_of_the_linear_system():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(2, 3, 9, 7)).astype(np.float32)
    known = rng.uniform(size=(2, 9, 7)) < 0.4
    known[1, :, :4] = False  # a large connected region
    out = linear_imputation(torch.from_numpy(image), torch.from_numpy(known), tol=1e-7).numpy()
    for b in range(2):
        np.testing.assert_allclose(out[b], solve_imputation(image[b], known[b]), atol=2e-5)


def test_imputation_with_nothing_known_is_zero():
    image = torch.ones(1, 2, 5, 5)
    out = linear_imputation(image, torch.zeros(1, 5, 5, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(image))


def test_noisy_imputer_adds_seeded_noise_only_to_imputed_pixels():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(2, 6, 6)).astype(np.float32)
    mask = (rng.uniform(size=(6, 6)) < 0.5).astype(np.float32)
    out = NoisyLinearImputer(noise=0.1, seed=7)(torch.from_numpy(image), torch.from_numpy(mask))
    noise = torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(7)).numpy() * 0.1
    expected = solve_imputation(image, mask > 0.5) + noise * (mask < 0.5)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    again = NoisyLinearImputer(noise=0.1, seed=7)(torch.from_numpy(image), torch.from_numpy(mask))
    assert torch.equal(out, again)


def test_weighting_must_be_symmetric():
    with pytest.raises(ValueError, match="symmetric"):
        NoisyLinearImputer(weighting=[((0, 1), 1.0)])


@pytest.mark.parametrize("percentile", [75, 50, 12.5])
def test_road_most_relevant_first_by_hand(model, images, cams, percentile):
    removed_count = 16 - int(round(percentile / 100 * 16))
    targets = [ClassifierOutputTarget(1)] * 3
    result = ROADMostRelevantFirst(percentile, noise=0.0)(torch.from_numpy(images), cams,
                                                          targets, model)
    expected = []
    for b in range(3):
        removed = removed_most_relevant(cams[b], removed_count)
        imputed = solve_imputation(images[b], ~removed)
        after = logits(imputed[None].astype(np.float32))[0, 1]
        expected.append(after - logits(images[b:b + 1])[0, 1])
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


def test_road_least_relevant_first_by_hand(model, images, cams):
    # percentile 25 keeps the 4 most relevant pixels and imputes the other 12
    targets = [ClassifierOutputTarget(0)] * 3
    result = ROADLeastRelevantFirst(25, noise=0.0)(torch.from_numpy(images), cams, targets, model)
    expected = []
    for b in range(3):
        kept = removed_most_relevant(cams[b], 4)
        imputed = solve_imputation(images[b], kept)
        after = logits(imputed[None].astype(np.float32))[0, 0]
        expected.append(after - logits(images[b:b + 1])[0, 0])
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


def test_road_removes_exactly_the_share_when_the_map_has_ties(model):
    cam = np.zeros((1, 4, 4), dtype=np.float32)
    cam[0, 0, :2] = 1.0  # two relevant pixels, 14 tied zeros
    x = torch.ones(1, 1, 4, 4)
    _, visual = ROADLeastRelevantFirst(25, noise=0.0)(x, cam, [ClassifierOutputTarget(0)], model,
                                                      return_visualization=True)
    # 4 pixels kept: the two relevant ones and two of the tied zeros; the
    # image is constant, so every imputed pixel is 1 as well
    np.testing.assert_allclose(visual.numpy(), np.ones((1, 1, 4, 4)), atol=1e-5)
    keep = ROADLeastRelevantFirst(25).perturbation.keep_mask(torch.from_numpy(cam))
    assert int(keep.sum()) == 4 and bool(keep[0, 0, :2].all())
    keep = ROADMostRelevantFirst(75).perturbation.keep_mask(torch.from_numpy(cam))
    assert int((~keep).sum()) == 4 and not bool(keep[0, 0, :2].any())


def test_road_auto_threshold_is_otsu():
    rng = np.random.default_rng(5)
    cams = np.clip(np.concatenate([rng.normal(0.25, 0.08, 200), rng.normal(0.75, 0.1, 56)]),
                   0, 1).reshape(1, 16, 16).astype(np.float32)
    level, _ = cv2.threshold(np.uint8(cams[0] * 255), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    assert int(otsu_threshold(torch.from_numpy(cams))[0]) == int(level)
    keep = ROADMostRelevantFirst("auto").perturbation.keep_mask(torch.from_numpy(cams))
    np.testing.assert_array_equal(keep.numpy()[0], np.uint8(cams[0] * 255) <= level)


def test_road_averages_and_combined_are_means_of_single_percentiles(model, images, cams):
    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 0)]
    percentiles = [25, 50, 75]
    morf = [ROADMostRelevantFirst(p)(x, cams, targets, model) for p in percentiles]
    lerf = [ROADLeastRelevantFirst(p)(x, cams, targets, model) for p in percentiles]
    np.testing.assert_allclose(ROADMostRelevantFirstAverage(percentiles)(x, cams, targets, model),
                               np.mean(morf, axis=0), atol=1e-6)
    np.testing.assert_allclose(ROADLeastRelevantFirstAverage(percentiles)(x, cams, targets, model),
                               np.mean(lerf, axis=0), atol=1e-6)
    np.testing.assert_allclose(ROADCombined(percentiles)(x, cams, targets, model),
                               (np.mean(lerf, axis=0) - np.mean(morf, axis=0)) / 2, atol=1e-6)


def test_road_accepts_one_image_as_in_the_reference_library():
    image = torch.from_numpy(np.random.default_rng(6).normal(size=(3, 5, 5)).astype(np.float32))
    cam = torch.linspace(0, 1, 25).reshape(5, 5)
    perturbation = ROADMostRelevantFirst(60).perturbation
    single = perturbation(image, cam)
    batch = perturbation(image[None], cam[None])[0]
    assert single.shape == (3, 5, 5) and torch.allclose(single, batch)


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


# ------------------------------------------------------- complexity, coherency
def test_complexity_is_the_mean_absolute_value(cams):
    np.testing.assert_allclose(Complexity()(cams), np.abs(cams).reshape(3, -1).mean(axis=1),
                               rtol=1e-6)
    assert Complexity()(np.ones((1, 3, 3)))[0] == 1


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


# ------------------------------------------------------------- pointing games
def test_pointing_game_by_hand():
    cams = np.zeros((4, 40, 40), dtype=np.float32)
    for cam in cams:
        cam[10, 30] = 1.0  # the peak at x=30, y=10
    regions = [(25, 5, 35, 15),                 # contains the peak
               (0, 0, 10, 10),                  # 20 px away: a miss
               [(0, 0, 5, 5), (28, 22, 33, 30)],  # y distance 12 <= 15: a hit
               np.zeros((40, 40), dtype=bool)]  # empty mask: a miss
    assert PointingGame()(cams, regions).tolist() == [1, 0, 1, 0]
    assert PointingGame(tolerance=0)(cams, regions).tolist() == [1, 0, 0, 0]
    masks = np.zeros((4, 40, 40), dtype=bool)
    masks[:, 10, 30] = True
    assert PointingGame(tolerance=0)(torch.from_numpy(cams), masks).tolist() == [1, 1, 1, 1]


def test_energy_pointing_game_by_hand():
    cam = np.array([[[0.0, 1.0, 0.5], [0.25, 0.25, 0.0]]], dtype=np.float32)
    # box x 1..2, y 0..0 holds 1.0 + 0.5 of the 2.0 total
    assert EnergyPointingGame()(cam, [(1, 0, 3, 1)])[0] == pytest.approx(0.75)
    mask = np.array([[[True, False, False], [True, True, False]]])
    assert EnergyPointingGame()(cam, mask)[0] == pytest.approx(0.25)
    assert EnergyPointingGame()(np.zeros((1, 2, 3)), mask)[0] == 0


def test_pointing_game_rejects_bad_regions():
    with pytest.raises(ValueError, match="one region per map"):
        PointingGame()(np.zeros((2, 4, 4)), [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="x1 <= x2"):
        PointingGame()(np.zeros((1, 4, 4)), [(3, 0, 1, 1)])


# ---------------------------------------------------- batching and model state
METRIC_CALLS = {
    "cam_mult": lambda bs: CamMultImageConfidenceChange(batch_size=bs),
    "drop": lambda bs: DropInConfidence(batch_size=bs),
    "increase": lambda bs: IncreaseInConfidence(batch_size=bs),
    "morf": lambda bs: ROADMostRelevantFirst(60, batch_size=bs),
    "lerf_average": lambda bs: ROADLeastRelevantFirstAverage([30, 70], batch_size=bs),
    "combined": lambda bs: ROADCombined([30, 70], batch_size=bs),
    "deletion": lambda bs: DeletionAUC(5, batch_size=bs),
    "insertion": lambda bs: InsertionAUC(5, batch_size=bs),
}


@pytest.mark.parametrize("name", sorted(METRIC_CALLS))
def test_batch_equals_single_images_and_chunking(model, images, cams, name):
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 0)]
    x = torch.from_numpy(images)
    batched = METRIC_CALLS[name](2)(x, cams, targets, model)
    singles = [METRIC_CALLS[name](1)(x[b:b + 1], cams[b:b + 1], targets[b:b + 1], model)[0]
               for b in range(3)]
    whole = METRIC_CALLS[name](64)(x, cams, targets, model)
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, batched, rtol=1e-5, atol=1e-6)


class TrainingModel(nn.Module):
    """Dropout and batch norm make train mode visible in the outputs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 2))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("metric", [
    lambda m: DropInConfidence(relative=False),
    lambda m: ROADCombined([50]),
    lambda m: DeletionAUC(4),
    lambda m: ARCC(GradCAM(m, [m.features[2]]), road_percentiles=[50]),
])
def test_model_state_is_restored(images, cams, metric):
    torch.manual_seed(0)
    model = TrainingModel().train()
    model.head[2].weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(0)] * 3
    first = metric(model)(x, cams, targets, model)
    second = metric(model)(x, cams, targets, model)
    np.testing.assert_array_equal(first, second)  # eval mode inside: no dropout
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, False, True]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())


def test_metrics_run_under_no_grad_and_on_inference_tensors(model, images, cams):
    with torch.inference_mode():
        x = torch.from_numpy(images).clone()
    with torch.no_grad():
        result = ROADCombined([50])(x, cams, None, model)
    assert result.shape == (3,) and np.isfinite(result).all()


def test_argument_errors(model, images, cams):
    x = torch.from_numpy(images)
    with pytest.raises(ValueError, match="grayscale_cams has shape"):
        CamMultImageConfidenceChange()(x, cams[:2], None, model)
    with pytest.raises(ValueError, match="targets has 1 entries"):
        CamMultImageConfidenceChange()(x, cams, [ClassifierOutputTarget(0)], model)
    with pytest.raises(ValueError, match="percentile must be in"):
        ROADMostRelevantFirst(120)
    with pytest.raises(TypeError, match="batch_size"):
        ROADCombined(batch_size=1.5)
    with pytest.raises(ValueError, match="n_steps=20 is more than the 16 pixels"):
        DeletionAUC(20)(x, cams, None, model)
    with pytest.raises(ValueError, match="substrate must be one of"):
        InsertionAUC(substrate="noise")


# ------------------------------------------------------------------ evaluate
class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_evaluate_rows_match_the_single_metrics():
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(2, 3, 12, 12)
    layer = model.features[-1]
    regions = [(0, 0, 6, 6), (6, 6, 12, 12)]
    rows = evaluate_cam_methods(model, [layer], x, methods=[GradCAM, "scorecam"], regions=regions,
                                per_image=True, n_steps=6, batch_size=5)
    assert list(rows) == ["GradCAM", "scorecam"]
    assert list(rows["GradCAM"]) == list(METRICS)
    maps = GradCAM(model, [layer])(x)
    top = model(x).argmax(dim=1).tolist()
    probs = [ClassifierOutputSoftmaxTarget(c) for c in top]
    got = rows["GradCAM"]
    np.testing.assert_allclose(got["DropInConfidence"], DropInConfidence()(x, maps, probs, model),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["ROADCombined"],
                               ROADCombined([20, 40, 60, 80])(x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["ROADMoRF"],
                               ROADMostRelevantFirstAverage([20, 40, 60, 80])(x, maps, probs,
                                                                               model), atol=1e-6)
    np.testing.assert_allclose(got["Deletion"], DeletionAUC(6)(x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["Insertion"], InsertionAUC(6)(x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["Complexity"], Complexity()(maps), rtol=1e-6)
    with GradCAM(model, [layer]) as cam:
        coherency = Coherency()(x, maps, [ClassifierOutputTarget(c) for c in top], model, cam)
    np.testing.assert_allclose(got["Coherency"], coherency, rtol=1e-5)
    np.testing.assert_allclose(got["PointingGame"], PointingGame()(maps, regions))
    np.testing.assert_allclose(got["EnergyPointingGame"], EnergyPointingGame()(maps, regions),
                               rtol=1e-6)

    means = evaluate_cam_methods(model, [layer], x, methods=[GradCAM], n_steps=6,
                                 metrics=["Complexity", "ROADLeRF"])
    assert list(means["GradCAM"]) == ["Complexity", "ROADLeRF"]
    assert means["GradCAM"]["Complexity"] == pytest.approx(float(Complexity()(maps).mean()),
                                                           rel=1e-5)
    table = format_table(means)
    lines = table.splitlines()
    assert lines[0].split() == ["method", "Complexity", "ROADLeRF"]
    assert lines[1].split() == ["(lower)", "(higher)"]
    assert lines[3].split()[0] == "GradCAM"
    assert float(lines[3].split()[1]) == pytest.approx(means["GradCAM"]["Complexity"], abs=1e-4)


def test_evaluate_argument_errors():
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 8, 8)
    layers = [model.features[-1]]
    with pytest.raises(ValueError, match="needs regions"):
        evaluate_cam_methods(model, layers, x, methods=[GradCAM], metrics=["PointingGame"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_cam_methods(model, layers, x, methods=[GradCAM], metrics=["Accuracy"])
    with pytest.raises(ValueError, match="not one of"):
        evaluate_cam_methods(model, layers, x, methods=["nocam"])
    with pytest.raises(TypeError, match="BaseCAM subclass"):
        evaluate_cam_methods(model, layers, x, methods=[ScoreCAM(model, layers)])


# ------------------------------------------------------------ progress bars
def _bars(text: str) -> str:
    """What tqdm drew on stderr, its carriage returns as new lines."""
    return text.replace("\r", "\n")


@pytest.mark.parametrize("make, desc, total", [
    (lambda p: DropInConfidence(progress=p), "DropInConfidence", 3),
    (lambda p: IncreaseInConfidence(progress=p), "IncreaseInConfidence", 3),
    (lambda p: ROADMostRelevantFirst(80, progress=p), "ROAD MoRF 80 (imputing + scoring)", 3),
    (lambda p: ROADLeastRelevantFirst(20, progress=p), "ROAD LeRF 20 (imputing + scoring)", 3),
    (lambda p: ROADMostRelevantFirstAverage([20, 80], progress=p),
     "ROAD MoRF (imputing + scoring)", 6),
    (lambda p: ROADLeastRelevantFirstAverage([20, 80], progress=p),
     "ROAD LeRF (imputing + scoring)", 6),
    (lambda p: ROADCombined([20, 80], progress=p), "ROADCombined (imputing + scoring)", 12),
    (lambda p: DeletionAUC(4, progress=p), "DeletionAUC (4 steps)", 15),
    (lambda p: InsertionAUC(4, progress=p), "InsertionAUC (4 steps)", 15),
])
def test_metric_progress_bar_names_the_metric_and_is_off_by_default(make, desc, total, model,
                                                                    images, cams, capsys):
    images = torch.from_numpy(images)
    probs = [ClassifierOutputSoftmaxTarget(0)] * len(images)
    quiet = make(False)(images, cams, probs, model)
    assert capsys.readouterr().err == ""
    loud = make(True)(images, cams, probs, model)
    err = _bars(capsys.readouterr().err)
    # tqdm draws '<desc>:   0%|   | 0/<total> ...': the metric's name and its perturbed passes
    assert f"{desc}:" in err and f"0/{total} " in err, err
    np.testing.assert_array_equal(quiet, loud)  # the bar changes nothing else


def test_coherency_and_arcc_progress(model, images, cams, capsys):
    images = torch.from_numpy(images)
    targets = [ClassifierOutputTarget(0)] * len(images)
    with GradCAM(model, [model.features]) as cam:
        Coherency(progress=True)(images, cams, targets, model, cam)
        assert "Coherency:" in _bars(capsys.readouterr().err)
        ARCC(cam, road_percentiles=[20, 80], progress=True)(images, cams, targets, model)
        err = _bars(capsys.readouterr().err)
        assert "Coherency:" in err and "ROADCombined (imputing + scoring):" in err
        ARCC(cam, road_percentiles=[20, 80])(images, cams, targets, model)
        assert capsys.readouterr().err == ""


def test_evaluate_progress_shows_one_bar_per_metric_and_method(capsys):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 12, 12)
    layers = [model.features[-1]]
    quiet = evaluate_cam_methods(model, layers, x, methods=[GradCAM, "scorecam"], n_steps=4)
    assert capsys.readouterr().err == ""
    loud = evaluate_cam_methods(model, layers, x, methods=[GradCAM, "scorecam"], n_steps=4,
                                progress=True)
    err = _bars(capsys.readouterr().err)
    for row in ("GradCAM", "scorecam"):
        for what in ("Drop/IncreaseInConfidence", "ROADMoRF/LeRF/Combined (imputing + scoring)",
                     "Deletion (4 steps)", "Insertion (4 steps)",
                     "Coherency (the map of the masked input)"):
            assert f"{row}: {what}:" in err, (row, what)
    assert "ScoreCAM:" in err  # the method's own bar
    assert quiet == loud
