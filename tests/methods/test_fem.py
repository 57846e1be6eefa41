"""FEM: channel means times the k-sigma masks, by hand.
"""
import numpy as np
from method_cases import C, H, Head, K, W, normalise, run

from pytorch_grad_cam import FEM


def test_fem_is_channel_means_times_k_sigma_masks():
    x = np.zeros((1, C, H, W))
    x[0, 0] = 1.0
    x[0, 0, 1, 2] = 9.0          # a spike far above mean + 2 std
    x[0, 1] = np.arange(H * W).reshape(H, W) / 10  # a ramp: nothing above mean + 2 std
    x[0, 2, 3, 0], x[0, 2, 0, 3] = 5.0, 4.0
    model = Head(np.zeros((K, C, H, W)))
    expected = np.zeros((1, H, W))
    for a in x[0]:
        mean, std = a.mean(), a.std()
        expected[0] += mean * (a >= mean + 2 * std)
    assert expected[0, 1, 2] > 0 and expected[0, 3, 0] > 0 and expected.sum() > expected.max()
    got = run(FEM(model, [model.target]), x)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-5)
    # with k = 0 every position above its channel's mean counts
    expected0 = np.zeros((1, H, W))
    for a in x[0]:
        expected0[0] += a.mean() * (a >= a.mean())
    got0 = run(FEM(model, [model.target], k=0), x)
    np.testing.assert_allclose(got0, normalise(expected0), atol=1e-5)
