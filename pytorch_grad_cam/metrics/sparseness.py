"""Sparseness (the Gini index of the absolute map) and entropy complexity.

Chalasani, Chen, Chowdhury, Wu, Jha, "Concise Explanations of Neural
Networks using Adversarial Training", ICML 2020,
https://arxiv.org/abs/1810.06583 (the Gini index as Hurley and Rickard,
"Comparing Measures of Sparsity", 2009, define it): with the n values
``|L|`` sorted ascending, a_(1) <= ... <= a_(n),

    G = sum_k (2k - n - 1) a_(k) / (n sum_k a_(k))

which is 0 when every pixel has the same relevance and (n - 1) / n when
one pixel holds it all. Higher is better: a sparser, more concise map.

Entropy complexity: Bhatt, Weller, Moura, "Evaluating and Aggregating
Feature-based Model Explanations", IJCAI 2020,
https://arxiv.org/abs/2005.00631: the entropy of each pixel's fractional
contribution ``P_i = |L_i| / sum_j |L_j|``,

    H = - sum_i P_i ln P_i        (0 ln 0 = 0)

which is 0 when one pixel holds all the relevance and ln n when every
pixel has the same. Lower is better: a less complex map. (This is
Quantus's ``Complexity``; the library's :class:`~pytorch_grad_cam.metrics.arcc.Complexity`
is another metric, Poppi et al.'s mean ``|L|``.)
"""
import numpy as np
import torch

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.pointing_game import as_maps

__all__ = ["EntropyComplexity", "Sparseness"]


def _absolute_values(grayscale_cams: Maps) -> torch.Tensor:
    """B x n float64 ``|map|`` values of finite maps."""
    cams = as_maps(grayscale_cams)
    if not bool(torch.isfinite(cams).all()):
        raise ValueError("grayscale_cams contains NaN or inf values")
    return cams.flatten(1).abs().double()


class Sparseness:
    """Per image: the Gini index of ``|map|`` over its pixels, in [0, 1 -
    1/n] (higher is better). An all-zero map, whose relevance is spread
    evenly (there is none), is 0. Scale-invariant: a map and the map times
    c > 0 have the same value."""

    def __call__(self, grayscale_cams: Maps) -> np.ndarray:
        values = _absolute_values(grayscale_cams).sort(dim=1).values
        n = values.shape[1]
        weights = 2 * torch.arange(1, n + 1, dtype=torch.float64, device=values.device) - n - 1
        total = values.sum(dim=1)
        gini = (values * weights).sum(dim=1) / (n * total.clamp_min(1e-300))
        return torch.where(total > 0, gini, torch.zeros_like(gini)).to(torch.float32).cpu().numpy()


class EntropyComplexity:
    """Per image: the entropy ``-sum_i P_i ln P_i`` of the fractional
    contributions ``P_i = |L_i| / sum_j |L_j|`` (Bhatt et al. 2020), in
    [0, ln n] for n pixels (lower is better: the relevance sits on fewer
    pixels). An all-zero map, whose relevance is spread evenly (there is
    none), is ln n, as Sparseness counts it 0. Scale-invariant."""

    def __call__(self, grayscale_cams: Maps) -> np.ndarray:
        values = _absolute_values(grayscale_cams)
        n = values.shape[1]
        total = values.sum(dim=1, keepdim=True)
        shares = torch.where(total > 0, values / total.clamp_min(1e-300),
                             torch.full_like(values, 1.0 / n))
        entropy = -torch.special.xlogy(shares, shares).sum(dim=1)
        return entropy.to(torch.float32).cpu().numpy()
