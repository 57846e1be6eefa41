"""Relevance mass accuracy and relevance rank accuracy: how much of a map
lies on a ground-truth mask.

Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset for the ground truth
evaluation of neural network explanations", Information Fusion 81 (2022),
https://arxiv.org/abs/2003.07258:

- relevance mass accuracy = R_within / R_total, the share of the map's sum
  that lies inside the ground truth GT;
- relevance rank accuracy = ``|P_top-K intersect GT| / K``, with
  ``K = |GT|`` and P_top-K the K pixels of highest relevance.

Both are in [0, 1], higher is better. The ground truth is given as in
:mod:`pytorch_grad_cam.metrics.pointing_game`: per image a box ``(x1, y1,
x2, y2)`` in pixels of the map, a list of boxes (their union) or a boolean
mask of the map's shape. The maps are never changed, so no model is needed.
"""
import numpy as np
import torch

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, Regions, as_maps, region_masks


class RelevanceMassAccuracy(EnergyPointingGame):
    """Per image: sum_{GT} L / sum L, the share of the map's relevance
    inside the ground truth (0 for an all-zero map). The maps must be
    non-negative (as the CAM methods return them; for signed relevance
    pass ``np.maximum(map, 0)`` or ``np.abs(map)``, as you mean it). For
    such maps this is the same number as :class:`EnergyPointingGame`."""

    title = "relevance mass accuracy"


class RelevanceRankAccuracy:
    """Per image: the share of the ``K = |GT|`` pixels of highest
    relevance that lie in the ground truth, ``|P_top-K intersect GT| / K``.

    Pixels tied with the K-th highest value share the places left among
    the top K: if ``m`` places are left for ``n`` tied pixels of which
    ``g`` lie in GT, they count ``m * g / n`` (the expected value over the
    orders of the tied pixels), so the value does not depend on how a sort
    orders equal values, for example the zero areas of a map after its
    ReLU. Signed maps are ranked as they are. An empty ground truth has no
    K and is an error."""

    def __call__(self, grayscale_cams: Maps, regions: Regions) -> np.ndarray:
        cams = as_maps(grayscale_cams)
        masks = region_masks(regions, cams).flatten(1)
        count = masks.sum(dim=1)
        empty = (count == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"regions[{empty[0]}] is empty; relevance rank accuracy needs a "
                             "ground truth of at least one pixel per image")
        flat = cams.flatten(1).double()
        ordered = flat.sort(dim=1, descending=True).values
        kth = ordered.gather(1, (count - 1)[:, None])  # the K-th highest value
        above, tied = flat > kth, flat == kth
        places = count - above.sum(dim=1)  # places among the top K left for the tied pixels
        hits = ((above & masks).sum(dim=1).double()
                + places * (tied & masks).sum(dim=1) / tied.sum(dim=1))
        return (hits / count).to(torch.float32).cpu().numpy()
