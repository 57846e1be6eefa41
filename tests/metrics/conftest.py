"""The tiny linear model, its images and maps, for every metric test."""
import numpy as np
import pytest
from metric_cases import Linear2


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
