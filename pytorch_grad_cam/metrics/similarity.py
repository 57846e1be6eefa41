"""How alike two maps are, and how complex one map is: the measures of
the sanity checks (:mod:`pytorch_grad_cam.metrics.sanity`), in torch,
one value per pair of maps (B x H x W each).

- :func:`spearman`: Spearman's rank correlation, ties given their average
  rank (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
  compare maps by it, with and without the absolute value);
- :func:`ssim`: the structural similarity index of Wang, Bovik, Sheikh,
  Simoncelli, "Image Quality Assessment: From Error Visibility to
  Structural Similarity", IEEE TIP 2004, with their 11 x 11 Gaussian
  window of standard deviation 1.5, on maps scaled to [0, 1];
- :func:`top_k_intersection`: the share of the k most relevant pixels of
  one map that are also among the k most relevant of the other (Ghorbani,
  Abid, Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019);
- :func:`histogram_entropy`: the entropy of a map's histogram, the
  complexity of Hedström et al.'s eMPRT.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.arcc import batch_pearson_coherency
from pytorch_grad_cam.metrics.pointing_game import as_maps

__all__ = ["SSIM_C1", "SSIM_C2", "SSIM_SIGMA", "SSIM_WINDOW", "average_ranks", "histogram_entropy",
           "minmax_scaled", "ssim", "spearman", "top_k_intersection"]

#: SSIM's Gaussian window: SSIM_WINDOW x SSIM_WINDOW pixels, standard
#: deviation SSIM_SIGMA (Wang et al. 2004)
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
#: SSIM's stabilising constants (K1 L)^2 and (K2 L)^2 for K1 = 0.01,
#: K2 = 0.03 and the dynamic range L = 1 of maps scaled to [0, 1]
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2


def _maps(value: Maps, name: str) -> torch.Tensor:
    """A batch of maps (B x H x W, numpy or torch) as a float64 tensor,
    finite (``pointing_game.as_maps``)."""
    return as_maps(value, name, torch.float64, finite=True)


def _pair(a: Maps, b: Maps) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of maps of one shape, float64 on ``a``'s device."""
    first, second = _maps(a, "a"), _maps(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"a and b differ in shape: {tuple(first.shape)} and "
                         f"{tuple(second.shape)}; compare maps of one size")
    return first, second.to(first.device)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """The rank (1 .. n) of every entry of each row of ``values`` (B x n),
    tied entries given the mean of the ranks they share."""
    ranks = torch.empty_like(values, dtype=torch.float64)
    for row in range(values.shape[0]):
        unique, inverse, counts = torch.unique(values[row], return_inverse=True,
                                               return_counts=True)
        first = torch.cumsum(counts, 0) - counts  # the number of smaller values
        ranks[row] = (first.double() + (counts.double() + 1) / 2)[inverse]
    return ranks


def spearman(a: Maps, b: Maps) -> torch.Tensor:
    """Spearman's rank correlation of each pair of maps (B x H x W): the
    Pearson correlation of their pixels' ranks, tied pixels given their
    average rank (as ``scipy.stats.spearmanr``). In [-1, 1]; 0 when a map
    is constant (an all-zero map has no ranking to agree with). Float32,
    B values."""
    first, second = _pair(a, b)
    return batch_pearson_coherency(average_ranks(first.flatten(1)),
                                   average_ranks(second.flatten(1)))


def minmax_scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] by its own minimum and maximum (a
    constant map becomes all zeros)."""
    flat = maps.flatten(1)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(1e-300), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - SSIM_WINDOW // 2
    line = torch.exp(-offsets ** 2 / (2 * SSIM_SIGMA ** 2))
    line = line / line.sum()
    return torch.outer(line, line)[None, None]


def ssim(a: Maps, b: Maps) -> torch.Tensor:
    """The mean structural similarity of each pair of maps (B x H x W,
    both at least 11 x 11), each map first scaled to [0, 1] by its minimum
    and maximum (:func:`minmax_scaled`).

    As Wang et al. (2004) define it: local means, variances and covariance
    under an 11 x 11 Gaussian window of standard deviation 1.5 (weights
    summing to 1, population statistics), at every position where the
    window lies inside the map (no padding), ::

        SSIM(x, y) = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
                     / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

    with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 1, averaged over those
    positions. This is ``skimage.metrics.structural_similarity(x, y,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1)``. 1 for identical maps; float32, B values."""
    first, second = _pair(a, b)
    if min(first.shape[1:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs maps of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels (its "
                         f"Gaussian window), got {first.shape[1]} x {first.shape[2]}")
    x, y = minmax_scaled(first)[:, None], minmax_scaled(second)[:, None]
    window = _gaussian_window(x.device)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x ** 2
    var_y = F.conv2d(y * y, window) - mu_y ** 2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
             / ((mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return index.flatten(1).mean(dim=1).float()


def top_k_intersection(a: Maps, b: Maps, k: int) -> torch.Tensor:
    """The share of the ``k`` highest pixels of each map of ``a`` that are
    also among the ``k`` highest of its partner in ``b``, in [0, 1].

    Pixels tied at the k-th value are taken in raster order (the first
    ones), so the value is exact for maps without ties there. Float32, B
    values."""
    first, second = _pair(a, b)
    pixels = first[0].numel() if first.shape[0] else 0
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max(pixels, 1):
        raise ValueError(f"k must be an int from 1 to the number of pixels ({pixels}), "
                         f"got {k!r}")

    def top(maps: torch.Tensor) -> torch.Tensor:
        order = torch.argsort(maps.flatten(1), dim=1, descending=True, stable=True)[:, :k]
        chosen = torch.zeros(maps.shape[0], pixels, dtype=torch.bool, device=maps.device)
        return chosen.scatter_(1, order, True)

    return ((top(first) & top(second)).sum(dim=1).double() / k).float()


def histogram_entropy(maps: Maps, n_bins: int = 100) -> torch.Tensor:
    """The entropy (natural logarithm) of each map's histogram of
    ``n_bins`` equal bins from its minimum to its maximum (the last bin
    closed), the counts normalised to sum to 1::

        H = - sum_b p_b ln p_b

    ``np.histogram(map, bins=n_bins)`` then ``scipy.stats.entropy`` (the
    complexity of Quantus's EfficientMPRT, ``discrete_entropy``). In
    [0, ln n_bins]; 0 for a constant map (one bin). Float32, B values."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    values = _maps(maps, "maps").flatten(1)
    low = values.amin(dim=1, keepdim=True)
    span = values.amax(dim=1, keepdim=True) - low
    position = torch.where(span > 0, (values - low) / span.clamp_min(1e-300),
                           torch.zeros_like(values))
    bins = (position * n_bins).floor().long().clamp(0, n_bins - 1)
    counts = torch.zeros(values.shape[0], n_bins, dtype=torch.float64, device=values.device)
    counts.scatter_add_(1, bins, torch.ones_like(values))
    p = counts / counts.sum(dim=1, keepdim=True)
    terms = torch.where(p > 0, p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))
    return (0.0 - terms.sum(dim=1)).float()  # 0.0, not -0.0, for a constant map
