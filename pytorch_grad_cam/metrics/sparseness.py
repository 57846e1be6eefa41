"""Sparseness: the Gini index of the absolute map.

Chalasani, Chen, Chowdhury, Wu, Jha, "Concise Explanations of Neural
Networks using Adversarial Training", ICML 2020,
https://arxiv.org/abs/1810.06583 (the Gini index as Hurley and Rickard,
"Comparing Measures of Sparsity", 2009, define it): with the n values
``|L|`` sorted ascending, a_(1) <= ... <= a_(n),

    G = sum_k (2k - n - 1) a_(k) / (n sum_k a_(k))

which is 0 when every pixel has the same relevance and (n - 1) / n when
one pixel holds it all. Higher is better: a sparser, more concise map.
"""
import numpy as np
import torch

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.pointing_game import as_maps


class Sparseness:
    """Per image: the Gini index of ``|map|`` over its pixels, in [0, 1 -
    1/n] (higher is better). An all-zero map, whose relevance is spread
    evenly (there is none), is 0. Scale-invariant: a map and the map times
    c > 0 have the same value."""

    def __call__(self, grayscale_cams: Maps) -> np.ndarray:
        cams = as_maps(grayscale_cams)
        if not bool(torch.isfinite(cams).all()):
            raise ValueError("grayscale_cams contains NaN or inf values")
        values = cams.flatten(1).abs().double().sort(dim=1).values
        n = values.shape[1]
        weights = 2 * torch.arange(1, n + 1, dtype=torch.float64, device=values.device) - n - 1
        total = values.sum(dim=1)
        gini = (values * weights).sum(dim=1) / (n * total.clamp_min(1e-300))
        return torch.where(total > 0, gini, torch.zeros_like(gini)).to(torch.float32).cpu().numpy()
