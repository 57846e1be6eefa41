"""SSCAM and ISCAM: hand computations on tiny models, one noiseless sample is Score-CAM,
batching, chunking, determinism, seeds and argument errors.
"""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import ISCAM, METHODS, SSCAM, ScoreCAM
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
