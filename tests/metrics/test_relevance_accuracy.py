"""Relevance mass accuracy and relevance rank accuracy (``metrics.relevance_accuracy``) by
hand on 2 x 2 and 3 x 3 maps: ties, signed maps, argument errors, the maps left as they were.
"""
import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame
from pytorch_grad_cam.metrics.relevance_accuracy import RelevanceMassAccuracy, RelevanceRankAccuracy

# a 3 x 3 map and its ground truth, the pixels holding 9, 2 and 7
MAP = np.array([[[9, 8, 1], [2, 7, 3], [4, 5, 6]]], dtype=np.float32)
GT = np.array([[[True, False, False], [True, True, False], [False, False, False]]])


def test_relevance_mass_accuracy_by_hand():
    # (9 + 2 + 7) / (1 + 2 + ... + 9) = 18 / 45 = 0.4
    assert RelevanceMassAccuracy()(MAP, GT)[0] == pytest.approx(0.4)
    # box x 1..2, y 0..0: (8 + 1) / 45 = 0.2; an all-zero map: 0
    assert RelevanceMassAccuracy()(torch.from_numpy(MAP), [(1, 0, 3, 1)])[0] \
        == pytest.approx(0.2)
    assert RelevanceMassAccuracy()(np.zeros((1, 3, 3)), GT)[0] == 0
    # the energy-based pointing game's number, for non-negative maps
    assert RelevanceMassAccuracy()(MAP, GT)[0] == EnergyPointingGame()(MAP, GT)[0]


def test_relevance_rank_accuracy_by_hand():
    # K = |GT| = 3; the top 3 are 9, 8, 7, of which 9 and 7 lie in GT: 2 / 3
    assert RelevanceRankAccuracy()(MAP, GT)[0] == pytest.approx(2 / 3)
    # ties: map [[1, 0], [0, 0]], GT the top row (K = 2). 1 is in the top 2 and in GT; one
    # place is left for the three tied zeros, one of which (x=1, y=0) lies in GT: it counts
    # 1 * 1/3. (1 + 1/3) / 2 = 2/3
    tied = np.array([[[1.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    assert RelevanceRankAccuracy()(tied, [(0, 0, 2, 1)])[0] == pytest.approx(2 / 3)
    # an all-zero map: K = 1 place for 4 tied pixels, 1 in GT: 1/4
    assert RelevanceRankAccuracy()(np.zeros((1, 2, 2)), [(0, 0, 1, 1)])[0] == pytest.approx(0.25)
    # signed maps are ranked as they are: -1 is the highest of [[-1, -2], [-3, -4]]
    signed = np.array([[[-1.0, -2.0], [-3.0, -4.0]]], dtype=np.float32)
    assert RelevanceRankAccuracy()(signed, [(0, 0, 1, 1)])[0] == 1
    # a batch: each image its own K
    both = RelevanceRankAccuracy()(np.concatenate([MAP, MAP]), [GT[0], (0, 0, 3, 1)])
    np.testing.assert_allclose(both, [2 / 3, 2 / 3])  # top row: top 3 = 9, 8, 7; 9, 8 inside


@pytest.mark.parametrize("metric", [RelevanceMassAccuracy(), RelevanceRankAccuracy()])
def test_bad_maps_and_regions_name_the_argument(metric):
    with pytest.raises(ValueError, match="regions must give one region per map"):
        metric(np.zeros((2, 3, 3)), [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match=r"grayscale_cams must be B x H x W, got shape \(3, 3\)"):
        metric(np.zeros((3, 3)), [(0, 0, 1, 1)])
    with pytest.raises(TypeError, match="grayscale_cams must be a numpy array or tensor"):
        metric("map", [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match=r"regions\[0\] has shape \(2, 2\); expected a box"):
        metric(np.zeros((1, 3, 3)), [np.zeros((2, 2))])


def test_negative_maps_and_empty_ground_truths_are_errors():
    with pytest.raises(ValueError, match="grayscale_cams has negative values; relevance mass "
                                         "accuracy needs non-negative maps"):
        RelevanceMassAccuracy()(-MAP, GT)
    with pytest.raises(ValueError, match=r"regions\[1\] is empty; relevance rank accuracy "
                                         "needs a ground truth of at least one pixel"):
        RelevanceRankAccuracy()(np.concatenate([MAP, MAP]), [GT[0], (1, 1, 1, 2)])
    # an empty ground truth holds no mass
    assert RelevanceMassAccuracy()(MAP, [(1, 1, 1, 2)])[0] == 0


@pytest.mark.parametrize("metric", [RelevanceMassAccuracy(), RelevanceRankAccuracy()])
def test_the_maps_are_left_as_they_were(metric):
    maps, tensor = MAP.copy(), torch.from_numpy(MAP.copy())
    metric(maps, GT)
    metric(tensor, GT)
    np.testing.assert_array_equal(maps, MAP)
    np.testing.assert_array_equal(tensor.numpy(), MAP)
