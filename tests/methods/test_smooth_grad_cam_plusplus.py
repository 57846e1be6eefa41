"""Smooth Grad-CAM++: gradient moments averaged over seeded noisy copies, by hand.
"""
import numpy as np
import torch
from method_cases import C, H, Head, W, normalise, run

from pytorch_grad_cam import GradCAMPlusPlus, SmoothGradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def test_smoothgradcampp_averages_gradient_moments_over_seeded_noise(tiny):
    v, u, x = tiny
    model = Head(v, u)
    n, level, c = 3, 0.2, 2
    maps = []
    for a in x:
        generator = torch.Generator().manual_seed(0)
        sigma = level * (a.max() - a.min())
        grads = []
        for _ in range(n):
            noise = torch.randn((C, H, W), generator=generator).double().numpy()
            noisy = a + sigma * noise
            grads.append(v[c] + (u[c] * noisy).sum() * u[c])
        grads = np.array(grads)
        d1, d2, d3 = grads.mean(0), (grads ** 2).mean(0), (grads ** 3).mean(0)
        sums = a.sum(axis=(1, 2))[:, None, None]
        alpha = np.where(d2 > 0, d2 / (2 * d2 + sums * d3 + 1e-6), 0)
        w = (alpha * np.maximum(d1, 0)).sum(axis=(1, 2))
        maps.append((w[:, None, None] * a).sum(axis=0))
    cam = SmoothGradCAMPlusPlus(model, [model.target], num_samples=n, noise_level=level,
                                batch_size=2, progress=False)
    got = run(cam, x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(maps), atol=1e-5)
    # without noise it is Grad-CAM++
    quiet = SmoothGradCAMPlusPlus(model, [model.target], num_samples=2, noise_level=0.0)
    np.testing.assert_allclose(run(quiet, x, [ClassifierOutputTarget(c)] * 2),
                               run(GradCAMPlusPlus(model, [model.target]), x,
                                   [ClassifierOutputTarget(c)] * 2), atol=1e-5)
