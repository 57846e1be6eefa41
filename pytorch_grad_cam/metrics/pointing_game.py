"""Localisation against annotated regions: the pointing game and the
energy-based pointing game.

Pointing game: Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-down
Neural Attention by Excitation Backprop", ECCV 2016 / IJCV 2018,
https://arxiv.org/abs/1608.00507: a hit when the map's maximum lies inside
the annotated region, with a tolerance of 15 pixels; the accuracy is
hits / (hits + misses) over a data set.

Energy-based pointing game: Wang et al., "Score-CAM", CVPR Workshops 2020,
https://arxiv.org/abs/1910.01279: the share of the map's energy that falls
inside the region, sum_{inside} L / sum L.

A region is given per image as a box ``(x1, y1, x2, y2)`` in pixels of the
map (the pixels ``map[y1:y2, x1:x2]``), a list of boxes (their union) or a
boolean mask of the map's shape. ``regions`` is a list with one region per
image, an array of B boxes (B x 4) or of B masks (B x H x W). The maps are
never changed, so no model is needed.
"""
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pytorch_grad_cam.metrics._common import Maps

#: one region per image: B x 4 boxes, B x H x W masks, or a list of boxes,
#: lists of boxes or masks
Regions = np.ndarray | torch.Tensor | Sequence[Any]


def as_maps(grayscale_cams: Maps, name: str = "grayscale_cams",
            dtype: torch.dtype = torch.float32, finite: bool = False) -> torch.Tensor:
    """The maps as a tensor B x H x W of ``dtype`` (on their own device);
    with ``finite``, a ValueError for NaN or inf values. Errors name the
    argument ``name``."""
    if isinstance(grayscale_cams, torch.Tensor):
        cams = grayscale_cams.detach().to(dtype)
    elif isinstance(grayscale_cams, (np.ndarray, list, tuple)):
        cams = torch.as_tensor(np.asarray(grayscale_cams,
                                          dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    else:
        raise TypeError(f"{name} must be a numpy array or tensor B x H x W, "
                        f"got {type(grayscale_cams).__name__}")
    if cams.dim() != 3:
        raise ValueError(f"{name} must be B x H x W, got shape {tuple(cams.shape)}")
    if finite and not bool(torch.isfinite(cams).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return cams


def _box_mask(box: npt.ArrayLike, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape != (4,):
        raise ValueError(f"a box is (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = values
    if not (x1 <= x2 and y1 <= y2):
        raise ValueError(f"a box (x1, y1, x2, y2) needs x1 <= x2 and y1 <= y2, got {box!r}")
    ys = torch.arange(shape[0], device=device)[:, None]
    xs = torch.arange(shape[1], device=device)[None, :]
    return (ys >= y1) & (ys < y2) & (xs >= x1) & (xs < x2)


def region_masks(regions: Regions, cams: torch.Tensor) -> torch.Tensor:
    """The regions as a boolean tensor B x H x W."""
    batch, shape = cams.shape[0], tuple(cams.shape[1:])
    if isinstance(regions, torch.Tensor):
        regions = regions.detach().cpu().numpy()
    if isinstance(regions, np.ndarray):
        if regions.shape == (batch,) + shape:
            return torch.as_tensor(regions.astype(bool), device=cams.device)
        if regions.shape == (batch, 4):
            return torch.stack([_box_mask(box, shape, cams.device) for box in regions])
        raise ValueError(f"regions has shape {regions.shape}; expected {(batch, 4)} boxes or "
                         f"{(batch,) + shape} masks, one per map")
    if not isinstance(regions, (list, tuple)) or len(regions) != batch:
        raise ValueError(f"regions must give one region per map ({batch}): a list of boxes "
                         "(x1, y1, x2, y2), lists of boxes or H x W masks")
    masks = []
    for index, region in enumerate(regions):
        array = np.asarray(region.detach().cpu() if isinstance(region, torch.Tensor) else region)
        if array.shape == shape:
            masks.append(torch.as_tensor(array.astype(bool), device=cams.device))
        elif array.shape == (4,):
            masks.append(_box_mask(array, shape, cams.device))
        elif array.ndim == 2 and array.shape[1] == 4:
            union = torch.zeros(shape, dtype=torch.bool, device=cams.device)
            for box in array:
                union |= _box_mask(box, shape, cams.device)
            masks.append(union)
        else:
            raise ValueError(f"regions[{index}] has shape {array.shape}; expected a box "
                             f"(x1, y1, x2, y2), N x 4 boxes or a mask of shape {shape}")
    return torch.stack(masks)


class PointingGame:
    """Per image: 1.0 when the map's maximum (the first one in raster
    order) lies within ``tolerance`` pixels (Euclidean distance) of the
    region, else 0.0. The mean over images is the pointing accuracy
    (higher is better). ``tolerance`` is 15 pixels in the paper."""

    def __init__(self, tolerance: float = 15) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) \
                or not tolerance >= 0:
            raise ValueError(f"tolerance must be a number of pixels >= 0, got {tolerance!r}")
        self.tolerance: float = float(tolerance)

    def __call__(self, grayscale_cams: Maps, regions: Regions) -> np.ndarray:
        cams = as_maps(grayscale_cams)
        masks = region_masks(regions, cams)
        batch, height, width = cams.shape
        peak = cams.flatten(1).argmax(dim=1)
        py, px = (peak // width).reshape(-1, 1, 1), (peak % width).reshape(-1, 1, 1)
        ys = torch.arange(height, device=cams.device).reshape(1, -1, 1)
        xs = torch.arange(width, device=cams.device).reshape(1, 1, -1)
        near = (ys - py) ** 2 + (xs - px) ** 2 <= self.tolerance ** 2
        return (masks & near).flatten(1).any(dim=1).cpu().numpy().astype(np.float32)


class EnergyPointingGame:
    """Per image: the share of the map's energy inside the region,
    sum_{region} L / sum L (in [0, 1], higher is better; 0 for an all-zero
    map)."""

    #: what the error on negative maps calls the metric
    title = "the energy-based pointing game"

    def __call__(self, grayscale_cams: Maps, regions: Regions) -> np.ndarray:
        cams = as_maps(grayscale_cams)
        if bool((cams < 0).any()):
            raise ValueError(f"grayscale_cams has negative values; {self.title} needs "
                             "non-negative maps (as the CAM methods return)")
        masks = region_masks(regions, cams)
        total = cams.flatten(1).double().sum(dim=1)
        inside = (cams * masks).flatten(1).double().sum(dim=1)
        share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
        return share.cpu().numpy().astype(np.float32)
