"""Sparseness (``metrics.sparseness``), the Gini index of the absolute map, and entropy
complexity, by hand on 2 x 2 maps; argument errors; the maps left as they were.
"""
import math

import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics.sparseness import EntropyComplexity, Sparseness


def test_sparseness_by_hand():
    maps = np.array([[[0, 0], [0, 1]],     # sorted 0, 0, 0, 1: weights 2k - n - 1 = -3, -1, 1, 3
                     [[0, 1], [2, 3]],     # (0 - 1 + 2 + 9) / (4 * 6) = 10 / 24 = 5 / 12
                     [[0, -1], [2, -3]],   # |map| is the map above: 5 / 12
                     [[1, 1], [1, 1]],     # (-3 - 1 + 1 + 3) / 16 = 0
                     [[0, 0], [0, 0]]],    # no relevance: 0
                    dtype=np.float32)
    # the first: 3 * 1 / (4 * 1) = 0.75 = (n - 1) / n, one pixel holds everything
    np.testing.assert_allclose(Sparseness()(maps), [0.75, 5 / 12, 5 / 12, 0, 0], rtol=1e-6)
    # scale-invariant; a tensor gives the same
    np.testing.assert_allclose(Sparseness()(torch.from_numpy(maps * 7)), Sparseness()(maps),
                               rtol=1e-6)


def test_entropy_complexity_by_hand():
    maps = np.array([[[0, 0], [0, 5]],     # one pixel holds everything: P = (0, 0, 0, 1), H = 0
                     [[1, 1], [1, 1]],     # P = 1/4 each: H = ln 4
                     [[0, 1], [-1, 2]],    # |map| 0, 1, 1, 2: P = 0, 1/4, 1/4, 1/2
                     [[0, 0], [0, 0]]],    # no relevance, spread evenly as Sparseness counts it
                    dtype=np.float32)
    third = -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))   # 1.5 ln 2 = 1.0397
    np.testing.assert_allclose(EntropyComplexity()(maps),
                               [0, math.log(4), third, math.log(4)], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(EntropyComplexity()(torch.from_numpy(maps * 3)),
                               EntropyComplexity()(maps), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("metric", [Sparseness(), EntropyComplexity()])
def test_bad_maps_name_the_argument(metric):
    with pytest.raises(ValueError, match=r"grayscale_cams must be B x H x W, got shape \(4,\)"):
        metric(np.zeros(4))
    with pytest.raises(TypeError, match="grayscale_cams must be a numpy array or tensor"):
        metric("map")
    with pytest.raises(ValueError, match="grayscale_cams contains NaN or inf values"):
        metric(np.full((1, 2, 2), np.nan))


def test_the_maps_are_left_as_they_were():
    # (Quantus 0.6.0 adds 1e-7 to the array it is given)
    maps = np.array([[[0, -1], [2, -3]]], dtype=np.float32)
    tensor = torch.from_numpy(maps.copy())
    Sparseness()(maps)
    Sparseness()(tensor)
    EntropyComplexity()(maps)
    EntropyComplexity()(tensor)
    np.testing.assert_array_equal(maps, [[[0, -1], [2, -3]]])
    np.testing.assert_array_equal(tensor.numpy(), maps)
