"""Sparseness (``metrics.sparseness``), the Gini index of the absolute map, by hand on 2 x 2
maps; argument errors; the maps left as they were.
"""
import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics.sparseness import Sparseness


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


def test_bad_maps_name_the_argument():
    with pytest.raises(ValueError, match=r"grayscale_cams must be B x H x W, got shape \(4,\)"):
        Sparseness()(np.zeros(4))
    with pytest.raises(TypeError, match="grayscale_cams must be a numpy array or tensor"):
        Sparseness()("map")
    with pytest.raises(ValueError, match="grayscale_cams contains NaN or inf values"):
        Sparseness()(np.full((1, 2, 2), np.nan))


def test_the_maps_are_left_as_they_were():
    # (Quantus 0.6.0 adds 1e-7 to the array it is given)
    maps = np.array([[[0, -1], [2, -3]]], dtype=np.float32)
    tensor = torch.from_numpy(maps.copy())
    Sparseness()(maps)
    Sparseness()(tensor)
    np.testing.assert_array_equal(maps, [[[0, -1], [2, -3]]])
    np.testing.assert_array_equal(tensor.numpy(), maps)
