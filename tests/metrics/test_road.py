"""ROAD (``metrics.road``): the imputation by a dense solve of its linear system, and the
most/least relevant first scores by hand on a tiny linear model.
"""
import cv2
import numpy as np
import pytest
import torch
from metric_cases import logits, removed_most_relevant

from pytorch_grad_cam.metrics.perturbation_confidence import otsu_threshold
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

# neighbour weights of the ROAD imputation, (dy, dx) -> w
NEIGHBOURS = {(dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12)
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)}


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


def test_road_rank_removal_removes_exactly_the_share_when_the_map_has_ties(model):
    cam = np.zeros((1, 4, 4), dtype=np.float32)
    cam[0, 0, :2] = 1.0  # two relevant pixels, 14 tied zeros
    x = torch.ones(1, 1, 4, 4)
    _, visual = ROADLeastRelevantFirst(25, noise=0.0, removal="rank")(
        x, cam, [ClassifierOutputTarget(0)], model, return_visualization=True)
    # 4 pixels kept: the two relevant ones and two of the tied zeros; the
    # image is constant, so every imputed pixel is 1 as well
    np.testing.assert_allclose(visual.numpy(), np.ones((1, 1, 4, 4)), atol=1e-5)
    keep = ROADLeastRelevantFirst(25, removal="rank").perturbation.keep_mask(
        torch.from_numpy(cam))
    assert int(keep.sum()) == 4 and bool(keep[0, 0, :2].all())
    keep = ROADMostRelevantFirst(75, removal="rank").perturbation.keep_mask(
        torch.from_numpy(cam))
    assert int((~keep).sum()) == 4 and not bool(keep[0, 0, :2].any())


def test_road_threshold_removal_is_the_reference_rule_on_ties():
    # grad-cam 1.5.7: MoRF keeps map < np.percentile(map, p); LeRF the same on 1 - map
    cam = np.zeros((1, 4, 4), dtype=np.float32)
    cam[0, 0, :2] = 1.0  # two relevant pixels, 14 tied zeros
    cams = torch.from_numpy(cam)
    # the 75th percentile is 0, and no pixel is below it: MoRF removes all 16
    keep = ROADMostRelevantFirst(75).perturbation.keep_mask(cams)
    assert int(keep.sum()) == 0
    # 1 - map: 14 ones and 2 zeros, the 25th percentile is 1: LeRF keeps the two zeros
    keep = ROADLeastRelevantFirst(25).perturbation.keep_mask(cams)
    assert keep[0].nonzero().tolist() == [[0, 0], [0, 1]]
    # 90th percentile of the map: 1 - 0.5 * (1 - 0) ... interpolated, 0.5; the 14 zeros stay
    keep = ROADMostRelevantFirst(90).perturbation.keep_mask(cams)
    assert float(np.percentile(cam, 90)) == 0.5 and int(keep.sum()) == 14


def test_road_auto_threshold_is_otsu():
    rng = np.random.default_rng(5)
    cams = np.clip(np.concatenate([rng.normal(0.25, 0.08, 200), rng.normal(0.75, 0.1, 56)]),
                   0, 1).reshape(1, 16, 16).astype(np.float32)
    level, _ = cv2.threshold(np.uint8(cams[0] * 255), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    assert int(otsu_threshold(torch.from_numpy(cams))[0]) == int(level)
    keep = ROADMostRelevantFirst("auto", removal="rank").perturbation.keep_mask(
        torch.from_numpy(cams))
    np.testing.assert_array_equal(keep.numpy()[0], np.uint8(cams[0] * 255) <= level)
    # grad-cam 1.5.7's rule keeps the pixels above the threshold (cv2's binary mask)
    keep = ROADMostRelevantFirst("auto").perturbation.keep_mask(torch.from_numpy(cams))
    np.testing.assert_array_equal(keep.numpy()[0], np.uint8(cams[0] * 255) > level)
    flipped = np.uint8((1 - torch.from_numpy(cams[0])) * 255)
    level, _ = cv2.threshold(flipped, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    keep = ROADLeastRelevantFirst("auto").perturbation.keep_mask(torch.from_numpy(cams))
    np.testing.assert_array_equal(keep.numpy()[0], flipped > level)


def test_road_averages_and_combined_are_means_of_single_percentiles(model, images, cams):
    # a fixed noise (seed=0), the same in every call
    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 0)]
    percentiles = [25, 50, 75]
    morf = [ROADMostRelevantFirst(p, seed=0)(x, cams, targets, model) for p in percentiles]
    lerf = [ROADLeastRelevantFirst(p, seed=0)(x, cams, targets, model) for p in percentiles]
    np.testing.assert_allclose(ROADMostRelevantFirstAverage(percentiles, seed=0)(x, cams, targets, model),
                               np.mean(morf, axis=0), atol=1e-6)
    np.testing.assert_allclose(ROADLeastRelevantFirstAverage(percentiles, seed=0)(x, cams, targets, model),
                               np.mean(lerf, axis=0), atol=1e-6)
    np.testing.assert_allclose(ROADCombined(percentiles, seed=0)(x, cams, targets, model),
                               (np.mean(lerf, axis=0) - np.mean(morf, axis=0)) / 2, atol=1e-6)


def test_road_accepts_one_image_as_in_the_reference_library():
    image = torch.from_numpy(np.random.default_rng(6).normal(size=(3, 5, 5)).astype(np.float32))
    cam = torch.linspace(0, 1, 25).reshape(5, 5)
    perturbation = ROADMostRelevantFirst(60).perturbation
    torch.manual_seed(0)  # the noise comes from the global generator, as in 1.5.7
    single = perturbation(image, cam)
    torch.manual_seed(0)
    batch = perturbation(image[None], cam[None])[0]
    assert single.shape == (3, 5, 5) and torch.allclose(single, batch)
