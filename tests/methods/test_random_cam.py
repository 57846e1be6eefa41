"""RandomCAM: uniform weights from its seeded generator.
"""
import numpy as np
import torch
from method_cases import C, H, Head, K, W, normalise, run, weighted

from pytorch_grad_cam import RandomCAM


def test_randomcam_weights_are_uniform_draws_of_the_seeded_generator(tiny):
    _, _, x = tiny
    model = Head(np.zeros((K, C, H, W)))
    # one draw per channel, the same for every image of the call
    draws = torch.rand(C, generator=torch.Generator().manual_seed(5)).double().numpy()
    expected = normalise(weighted(np.tile(draws * 2 - 1, (2, 1)), x))
    got = run(RandomCAM(model, [model.target], seed=5), x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(run(RandomCAM(model, [model.target], seed=5), x), got)
    other = run(RandomCAM(model, [model.target], seed=6), x)
    assert np.abs(other - got).max() > 0.05
    # the default seed is fixed: the same inputs give the same map
    default = RandomCAM(model, [model.target])
    np.testing.assert_array_equal(run(default, x), run(default, x))
    np.testing.assert_array_equal(run(default, x), run(RandomCAM(model, [model.target], seed=0), x))
    unseeded = RandomCAM(model, [model.target], seed=None)
    assert np.abs(run(unseeded, x) - run(unseeded, x)).max() > 0.01
