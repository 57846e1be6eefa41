"""The pointing game and the energy-based pointing game (``metrics.pointing_game``) by hand.
"""
import numpy as np
import pytest
import torch

from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, PointingGame


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


def test_energy_pointing_game_bad_maps_and_the_maps_left_as_they_were():
    cam = np.array([[[0.0, 1.0], [0.5, 0.5]]], dtype=np.float32)
    # box x 0..0, y 0..1: (0 + 0.5) / 2 = 0.25
    assert EnergyPointingGame()(cam, [(0, 0, 1, 2)])[0] == pytest.approx(0.25)
    np.testing.assert_array_equal(cam, [[[0.0, 1.0], [0.5, 0.5]]])
    with pytest.raises(ValueError, match="grayscale_cams has negative values; the energy-based "
                                         "pointing game needs non-negative maps"):
        EnergyPointingGame()(-cam, [(0, 0, 1, 2)])
    with pytest.raises(ValueError, match=r"grayscale_cams must be B x H x W, got shape \(2, 2\)"):
        EnergyPointingGame()(cam[0], [(0, 0, 1, 2)])
    with pytest.raises(ValueError, match="regions must give one region per map"):
        EnergyPointingGame()(cam, [(0, 0, 1, 2), (0, 0, 1, 1)])
