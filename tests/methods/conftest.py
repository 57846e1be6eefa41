"""The tiny inputs of the hand-computed method tests."""
import numpy as np
import pytest
from method_cases import C, H, K, W


@pytest.fixture
def tiny():
    rng = np.random.default_rng(7)
    v = rng.normal(size=(K, C, H, W))
    u = rng.normal(size=(K, C, H, W)) * 0.3
    x = rng.normal(size=(2, C, H, W))
    return v, u, x
