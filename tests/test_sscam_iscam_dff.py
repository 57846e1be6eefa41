"""SSCAM, ISCAM and Deep Feature Factorization: hand computations on tiny
models, batching, determinism, and the pretrained EfficientNet-Lite0."""
import cv2
import numpy as np
import pytest
import torch
from photo_regions import CAT_HEAD, EGYPTIAN_CAT, TABBY, load_photo, peak_in, region_mean
from torch import nn

from pytorch_grad_cam import ISCAM, METHODS, SSCAM, DeepFeatureFactorization, ScoreCAM, run_dff_on_image
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    dff,
    non_negative_matrix_factorization,
)
from pytorch_grad_cam.utils.image import create_labels_legend, preprocess_image, show_factorization_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

rng = np.random.default_rng(0)
# the tiny model: the target layer is the input itself (3 x 4 x 4), the head
# a ReLU and one linear layer, so every masked score is computable by hand
# (the ReLU matters: on a purely linear model a noise field shared by all
# channels shifts every channel's score alike and the softmax ignores it)
HEAD_W = rng.normal(size=(2, 48)).astype(np.float32)
HEAD_B = np.array([0.1, -0.3], dtype=np.float32)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(48, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(HEAD_W))
            self.fc.bias.copy_(torch.from_numpy(HEAD_B))

    def forward(self, x):
        return self.fc(torch.relu(self.features(x)).flatten(1))


def score(x: np.ndarray, category: int) -> float:
    return float(np.maximum(x, 0).reshape(-1) @ HEAD_W[category] + HEAD_B[category])


def cam_from_scores(activations: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """softmax weights -> ReLU(weighted sum) -> min-max normalised."""
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    cam = np.maximum((weights[:, None, None] * activations).sum(axis=0), 0)
    cam = cam - cam.min()
    return cam / (cam.max() + 1e-7)


def masks_of(image: np.ndarray) -> np.ndarray:
    """ScoreCAM's masks: every channel normalised to [0, 1] (0 if constant)."""
    low = image.min(axis=(1, 2), keepdims=True)
    span = image.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (image - low) / np.where(span > 0, span, 1), 0)


@pytest.fixture
def model():
    return Tiny().eval()


@pytest.fixture
def images():
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 4, 4)).astype(np.float32)
    x[1, 2] = 0.5  # a constant channel: an all-zero mask
    return x


def run(method, model, images, categories, **kwargs):
    targets = [ClassifierOutputTarget(c) for c in categories]
    with method(model, [model.features], progress=False, **kwargs) as cam:
        return cam(torch.from_numpy(images), targets=targets)


def test_sscam_mask_noise_by_hand(model, images):
    n, std, seed = 3, 0.4, 11
    result = run(SSCAM, model, images, [0, 1, 1], n_samples=n, noise_std=std, seed=seed)
    noise = torch.randn((n, 1, 4, 4), generator=torch.Generator().manual_seed(seed)).numpy() * std
    for b, c in enumerate([0, 1, 1]):
        masks = masks_of(images[b])
        scores = np.array([np.mean([score(images[b] * (masks[k] + noise[j]), c) for j in range(n)])
                           for k in range(3)])
        np.testing.assert_allclose(result[b], cam_from_scores(images[b], scores), atol=1e-5)


def test_sscam_input_noise_by_hand(model, images):
    n, std, seed = 2, 0.3, 5
    result = run(SSCAM, model, images, [1, 0, 0], n_samples=n, noise_std=std, seed=seed,
                 noise_on="input")
    noise = torch.randn((n, 3, 4, 4), generator=torch.Generator().manual_seed(seed)).numpy() * std
    for b, c in enumerate([1, 0, 0]):
        masks = masks_of(images[b])
        scores = np.array([np.mean([score((images[b] + noise[j]) * masks[k], c) for j in range(n)])
                           for k in range(3)])
        np.testing.assert_allclose(result[b], cam_from_scores(images[b], scores), atol=1e-5)


def test_iscam_by_hand(model, images):
    n = 4
    result = run(ISCAM, model, images, [0, 0, 1], n_samples=n)
    for b, c in enumerate([0, 0, 1]):
        masks = masks_of(images[b])
        scores = np.array([np.mean([score(images[b] * masks[k] * (i / n), c)
                                    for i in range(1, n + 1)]) for k in range(3)])
        np.testing.assert_allclose(result[b], cam_from_scores(images[b], scores), atol=1e-5)


@pytest.fixture
def conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).eval()


def test_one_sample_without_noise_is_scorecam(conv_model):
    model = conv_model
    x = torch.randn(2, 3, 16, 16)
    layers = [model[3]]
    reference = ScoreCAM(model, layers, progress=False)(x)
    iscam = ISCAM(model, layers, n_samples=1, progress=False)(x)
    sscam = SSCAM(model, layers, n_samples=2, noise_std=0.0, progress=False)(x)
    np.testing.assert_allclose(iscam, reference, atol=1e-6)
    np.testing.assert_allclose(sscam, reference, atol=1e-6)
    assert np.abs(SSCAM(model, layers, n_samples=2, noise_std=1.0, progress=False)(x)
                  - reference).max() > 1e-3


@pytest.mark.parametrize("method,kwargs", [(SSCAM, {"n_samples": 3, "noise_std": 0.5}),
                                           (ISCAM, {"n_samples": 3})])
def test_batch_equals_singles_chunking_and_determinism(model, images, method, kwargs):
    categories = [1, 0, 1]
    batch = run(method, model, images, categories, batch_size=4, **kwargs)
    for b, c in enumerate(categories):
        single = run(method, model, images[b:b + 1], [c], batch_size=64, **kwargs)
        np.testing.assert_allclose(single[0], batch[b], atol=1e-6)
    np.testing.assert_array_equal(run(method, model, images, categories, batch_size=4, **kwargs),
                                  batch)


@pytest.mark.parametrize("noise_on", ["mask", "input"])
def test_sscam_seed_changes_the_noise(conv_model, noise_on):
    # (on a linear model mask noise would not matter: the same noise field
    # for every channel shifts all channel scores equally)
    x = torch.randn(2, 3, 16, 16)
    maps = [SSCAM(conv_model, [conv_model[3]], n_samples=2, noise_std=1.0, noise_on=noise_on,
                  seed=seed, progress=False)(x) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert np.abs(maps[0] - maps[2]).max() > 1e-3


def test_registered_and_argument_errors(model):
    assert METHODS["sscam"] is SSCAM and METHODS["iscam"] is ISCAM
    layers = [model.features]
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        SSCAM(model, layers, n_samples=0)
    with pytest.raises(TypeError, match="n_samples must be a positive int"):
        ISCAM(model, layers, n_samples=2.5)
    with pytest.raises(ValueError, match="noise_on"):
        SSCAM(model, layers, noise_on="weights")
    with pytest.raises(ValueError, match="noise_std"):
        SSCAM(model, layers, noise_std=-1)
    with pytest.raises(TypeError, match="seed"):
        SSCAM(model, layers, seed="0")


# ------------------------------------------------------------------ DFF
def test_dff_keeps_positive_channels_and_shifts_negative_ones():
    concept = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    heat = np.linspace(0.5, 1.0, 16, dtype=np.float32).reshape(1, 4, 4)
    activations = concept[None, :, None, None] * heat[:, None]  # positive everywhere
    found, explanations = dff(activations, n_components=1, max_iter=100)
    np.testing.assert_allclose(found[:, 0], concept, rtol=1e-3)
    np.testing.assert_allclose(explanations[0, 0], heat[0], rtol=1e-3)  # not shifted to 0
    # channels with negative values are shifted by their minimum (-0.25 c):
    # c (h - 0.5) is factorised and the shift is added back to the embedding
    shifted = activations - 0.75 * concept[None, :, None, None]
    found, explanations = dff(shifted, n_components=1, max_iter=100)
    np.testing.assert_allclose(explanations[0, 0], (heat[0] - 0.5) / 0.5, atol=1e-3)
    np.testing.assert_allclose(found[:, 0], 0.5 * concept - 0.25 * concept, rtol=1e-3)


def test_nmf_error_never_increases_and_fits_an_exact_factorization():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(12, 3, generator=g)
    h = torch.rand(3, 40, generator=g)
    v = w @ h
    result = non_negative_matrix_factorization(v, 3, max_iter=200, tol=1e-9, seed=0)
    errors = result.errors
    assert len(errors) == 200
    assert bool((errors[1:] <= errors[:-1] * (1 + 1e-6) + 1e-7).all())
    assert float(errors[-1]) < 0.05 * float(errors[0])
    assert float(torch.linalg.norm(v - result.W @ result.H) / torch.linalg.norm(v)) < 0.02
    assert bool((result.W >= 0).all() and (result.H >= 0).all())
    first, again = (non_negative_matrix_factorization(v, 3, max_iter=20, seed=0) for _ in range(2))
    assert torch.equal(again.W, first.W) and torch.equal(again.H, first.H)
    other = non_negative_matrix_factorization(v, 3, max_iter=20, seed=1)
    assert not torch.equal(other.W, first.W)
    # stops early once 10 iterations gain less than tol of the first error
    assert len(non_negative_matrix_factorization(v, 3, max_iter=200, tol=0.5).errors) == 20
    with pytest.raises(ValueError, match="negative"):
        non_negative_matrix_factorization(-v, 2)


def _two_concepts():
    """Activations 2 images x 5 channels x 6 x 6 made of two concepts."""
    concept_a = np.array([1.0, 0.0, 2.0, 0.5, 0.0], dtype=np.float32)
    concept_b = np.array([0.0, 1.5, 0.0, 0.5, 1.0], dtype=np.float32)
    heat_a = np.zeros((2, 6, 6), dtype=np.float32)
    heat_b = np.zeros((2, 6, 6), dtype=np.float32)
    heat_a[0, :3, :3], heat_a[1, 3:, :] = 1.0, 0.6
    heat_b[0, 3:, 3:], heat_b[1, :3, 2:] = 0.8, 1.0
    activations = (concept_a[None, :, None, None] * heat_a[:, None]
                   + concept_b[None, :, None, None] * heat_b[:, None])
    return activations, (concept_a, concept_b), (heat_a, heat_b)


def test_dff_recovers_the_concepts_and_their_heat_maps():
    activations, concepts, heats = _two_concepts()
    found, explanations = dff(activations, n_components=2, max_iter=100, tol=1e-10)
    assert found.shape == (5, 2) and explanations.shape == (2, 2, 6, 6)
    # match each true concept to the closest component
    order = [int(np.argmax([np.dot(found[:, j], c) / np.linalg.norm(found[:, j]) / np.linalg.norm(c)
                            for j in range(2)])) for c in concepts]
    assert sorted(order) == [0, 1]
    for true_concept, true_heat, j in zip(concepts, heats, order):
        # heat maps peak at 1, so the embedding is the concept at full strength
        np.testing.assert_allclose(found[:, j], true_concept, atol=0.01)
        np.testing.assert_allclose(explanations[:, j], true_heat / true_heat.max(), atol=0.01)


class ConceptModel(nn.Module):
    """Its input is the activations; the head scores concept embeddings."""

    def __init__(self):
        super().__init__()
        self.features = nn.ReLU()
        self.fc = nn.Linear(5, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 1],
                                               [0, 0, 0, 1, 0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_deep_feature_factorization_on_a_tiny_model():
    activations, _, _ = _two_concepts()
    model = ConceptModel().train()
    x = torch.from_numpy(activations)
    with DeepFeatureFactorization(model, model.features, computation_on_concepts=model.fc,
                                  max_iter=50) as method:
        concepts, explanations, outputs = method(x, n_components=2)
    assert model.training and all(not m._forward_hooks for m in model.modules())
    expected_concepts, expected_maps = dff(activations, 2, max_iter=50)
    np.testing.assert_allclose(concepts, expected_concepts, rtol=1e-6)
    assert explanations.shape == (2, 2, 6, 6) and explanations.dtype == np.float32
    for b in range(2):
        for j in range(2):
            m = expected_maps[b, j]
            scaled = (m - m.min()) / (m.max() - m.min() + 1e-7)
            np.testing.assert_allclose(explanations[b, j], scaled, atol=1e-5)
    np.testing.assert_allclose(outputs, concepts.T @ model.fc.weight.detach().numpy().T, atol=1e-5)
    # the concept of channels 0 and 2 is class 0, that of 1 and 4 class 1
    assert sorted(outputs.argmax(axis=1).tolist()) == [0, 1]


def test_show_factorization_colours_by_the_strongest_concept():
    img = np.full((2, 2, 3), 0.5, dtype=np.float32)
    explanations = np.array([[[1.0, 0.2], [0.0, 0.5]], [[0.5, 0.4], [0.0, 1.0]]], dtype=np.float32)
    colors = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    out = show_factorization_on_image(img, explanations, colors=colors, image_weight=0.25)
    expected = np.empty((2, 2, 3))
    for y, x, color, value in [(0, 0, colors[0], 1.0), (0, 1, colors[1], 0.4),
                               (1, 0, colors[0], 0.0), (1, 1, colors[1], 1.0)]:
        expected[y, x] = 0.25 * 0.5 + 0.75 * color * value
    np.testing.assert_array_equal(out, np.uint8(255 * expected))
    with_legend = show_factorization_on_image(img, explanations, concept_labels=["a", "b"])
    assert with_legend.shape == (2, 4, 3) and with_legend.dtype == np.uint8


def test_labels_legend():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]])
    legend = create_labels_legend(scores, {0: "cat, tabby", 1: "dog", 2: "cup"}, top_k=2)
    assert legend == ["dog:0.70\ncup:0.20", "cat, tabby:0.50\ncup:0.40"]


def test_run_dff_on_image_on_a_tiny_model():
    activations, _, _ = _two_concepts()
    model = ConceptModel().eval()
    picture = np.uint8(np.random.default_rng(2).uniform(0, 255, (6, 6, 3)))
    result = run_dff_on_image(model, model.features, model.fc, picture,
                              torch.from_numpy(activations[0]), n_components=2,
                              labels=["a", "b", "c"])
    assert result.shape == (6, 18, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[:, :6], picture)
    assert not np.array_equal(result[:, 6:12], result[:, :6])


# ---------------------------------------------------- the pretrained model
@pytest.fixture(scope="module")
def chelsea_small():
    # 128 x 128 keeps the 1280-channel ScoreCAM passes affordable (a 4 x 4
    # head); the map is resized to 224 to be compared with CAT_HEAD
    return preprocess_image(load_photo("chelsea", 128))


# one noisy sample (the default noise_std) and two path steps: every sample
# costs a full ScoreCAM pass over the 1280 channels
@pytest.mark.parametrize("method,kwargs", [(SSCAM, {"n_samples": 1}), (ISCAM, {"n_samples": 2})])
def test_pretrained_maps_peak_on_the_cat(pretrained, chelsea_small, method, kwargs):
    top = int(pretrained(chelsea_small).argmax())
    assert top in (EGYPTIAN_CAT, TABBY)
    with method(pretrained, [pretrained.head_activation], progress=False, batch_size=64,
                **kwargs) as cam:
        result = cam(chelsea_small, targets=[ClassifierOutputTarget(top)])[0]
    big = cv2.resize(result, (224, 224))
    assert peak_in(big, CAT_HEAD)
    assert region_mean(big, CAT_HEAD) > big.mean()


def test_pretrained_dff_finds_a_cat_concept(pretrained, chelsea):
    img, x = chelsea
    with DeepFeatureFactorization(pretrained, pretrained.head_activation,
                                  computation_on_concepts=pretrained.net._fc) as method:
        _, explanations, outputs = method(x, n_components=4)
    categories = outputs.argmax(axis=1)
    cats = [j for j, c in enumerate(categories) if 281 <= c <= 285]
    assert cats, f"no concept scored as a cat: {categories.tolist()}"
    # the cat concepts cover the cat's head more than the background strip
    best = max(cats, key=lambda j: region_mean(explanations[0, j], CAT_HEAD))
    assert region_mean(explanations[0, best], CAT_HEAD) > explanations[0, best].mean()
