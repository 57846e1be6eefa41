"""Deep Feature Factorization (``feature_factorization``): the non-negative factorization
by hand, the concepts and heat maps it recovers, on a tiny model and through
``run_dff_on_image``.
"""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import DeepFeatureFactorization, run_dff_on_image
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    dff,
    non_negative_matrix_factorization,
)


# ------------------------------------------------------------------ DFF
def test_dff_shifts_every_channel_by_its_minimum():
    concept = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    heat = np.linspace(0.5, 1.0, 16, dtype=np.float32).reshape(1, 4, 4)
    activations = concept[None, :, None, None] * heat[:, None]  # positive everywhere
    # as grad-cam 1.5.7: every channel, also a positive one, is shifted by its
    # minimum (0.5 c here, -0.25 c below): c (h - 0.5) is factorised and the shift
    # is added back to the embedding
    for shift in (0.0, 0.75):
        shifted = activations - shift * concept[None, :, None, None]
        found, explanations = dff(shifted, n_components=1, max_iter=100, peak_normalize=True)
        np.testing.assert_allclose(explanations[0, 0], (heat[0] - 0.5) / 0.5, atol=1e-3)
        np.testing.assert_allclose(found[:, 0], (1 - shift) * concept, rtol=1e-3)
        # without peak_normalize the product is the same, the scale is the solver's
        raw_concepts, raw_maps = dff(shifted, n_components=1, max_iter=100)
        offset = (0.5 - shift) * concept
        np.testing.assert_allclose((raw_concepts[:, 0] - offset)[:, None, None] * raw_maps[0, 0],
                                   shifted[0] - offset[:, None, None], atol=1e-4)
        assert abs(float(raw_maps.max()) - 1) > 0.01


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_nmf_error_never_increases_and_fits_an_exact_factorization(solver):
    g = torch.Generator().manual_seed(0)
    w = torch.rand(12, 3, generator=g)
    h = torch.rand(3, 40, generator=g)
    v = w @ h
    result = non_negative_matrix_factorization(v, 3, max_iter=200, tol=1e-9, seed=0,
                                               solver=solver)
    errors = result.errors
    assert len(errors) == 200
    assert bool((errors[1:] <= errors[:-1] * (1 + 1e-6) + 1e-7).all())
    assert float(errors[-1]) < 0.05 * float(errors[0])
    assert float(torch.linalg.norm(v - result.W @ result.H) / torch.linalg.norm(v)) < 0.02
    assert bool((result.W >= 0).all() and (result.H >= 0).all())
    first, again = (non_negative_matrix_factorization(v, 3, max_iter=20, seed=0, solver=solver)
                    for _ in range(2))
    assert torch.equal(again.W, first.W) and torch.equal(again.H, first.H)
    other = non_negative_matrix_factorization(v, 3, max_iter=20, seed=1, solver=solver)
    assert not torch.equal(other.W, first.W)
    with pytest.raises(ValueError, match="negative"):
        non_negative_matrix_factorization(-v, 2, solver=solver)


def test_nmf_stops_on_tol():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(12, 3, generator=g) @ torch.rand(3, 40, generator=g)
    # "mu": once 10 iterations gain less than tol of the first error
    assert len(non_negative_matrix_factorization(v, 3, tol=0.5, solver="mu").errors) == 20
    # "cd": once an iteration's projected gradient is at most tol of the first's
    stopped = non_negative_matrix_factorization(v, 3, tol=0.5, solver="cd")
    assert len(stopped.errors) < 10


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
    found, explanations = dff(activations, n_components=2, max_iter=100, tol=1e-10,
                              peak_normalize=True)
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
