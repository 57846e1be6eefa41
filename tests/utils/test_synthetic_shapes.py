"""The synthetic shapes that the quality test trains and scores on
(``pytorch_grad_cam.utils.synthetic_shapes``): deterministic, and their
masks, labels and multi-label targets say what the images show."""
from __future__ import annotations

import numpy as np
import torch

from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    EMPTY,
    SECOND,
    background_colour,
    dilated,
    make_shapes,
    multilabel_batch,
    peak_hits,
)


def test_make_shapes_is_deterministic_balanced_and_masks_lie_in_regions() -> None:
    a, b = make_shapes(30, seed=4), make_shapes(30, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.images, make_shapes(30, seed=5).images)
    assert torch.bincount(a.labels, minlength=len(CLASSES)).tolist() == [10, 10, 10]
    assert bool((a.masks <= a.regions).all()) and bool(a.masks.flatten(1).any(dim=1).all())
    # the ring's region holds its hole, which is not its pixels
    ring = a.labels == CLASSES.index("ring")
    assert bool((a.regions[ring].flatten(1).sum(1) > a.masks[ring].flatten(1).sum(1)).all())


def test_background_colour_is_the_median_outside_the_shape() -> None:
    data = make_shapes(8, seed=3)
    expected = torch.stack([data.images[i][:, ~data.masks[i]].median(dim=1).values
                            for i in range(8)])
    assert torch.equal(background_colour(data.images, data.masks), expected)


def test_multilabel_batch_targets_match_what_the_images_show() -> None:
    n, seed = 600, 11
    images, hot = multilabel_batch(n, seed)
    again = multilabel_batch(n, seed)
    assert torch.equal(images, again[0]) and torch.equal(hot, again[1])
    assert images.shape == (n, 3, 48, 48) and hot.shape == (n, len(CLASSES))
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    counts = hot.sum(dim=1)
    assert set(counts.unique().tolist()) == {0.0, 1.0, 2.0}
    # EMPTY lose their shape, and a third of those get another (SECOND of
    # them are offered one, two thirds of those are of another class); two
    # shapes only where the second keeps away from the first: few
    empty = float((counts == 0).float().mean())
    assert abs(empty - EMPTY * (1 - SECOND * 2 / 3)) < 0.04, empty
    assert 0.02 < float((counts == 2).float().mean()) < 0.15

    first = make_shapes(n, seed=seed)
    background = background_colour(first.images, first.masks)
    removed = 0
    for i in range(n):
        pixels = images[i][:, first.masks[i]]
        if hot[i, first.labels[i]] == 1.0:  # the first shape is kept as it was
            assert torch.equal(pixels, first.images[i][:, first.masks[i]])
        else:  # painted over with the background colour (a second shape may lie on it)
            removed += 1
            painted = (pixels == background[i][:, None]).all(dim=0)
            assert bool(painted.any())
            if counts[i] == 0:
                assert bool(painted.all())
    assert removed == int((counts == 0).sum()) + int(((counts == 1) & (
        hot[torch.arange(n), first.labels] == 0)).sum())
    # a second shape: brighter than the background by at least 0.3 where it
    # is painted (unless the colour reached 1); with two shapes, away from
    # the first
    for i in range(n):
        added = (images[i] != first.images[i]).any(dim=0) & (
            images[i] != background[i][:, None, None]).any(dim=0)
        others = [c for c in torch.nonzero(hot[i]).flatten().tolist() if c != first.labels[i]]
        assert bool(added.any()) == bool(others), i
        if others:
            lift = images[i][:, added] - background[i][:, None]
            assert bool(((lift >= 0.3 - 1e-6) | (images[i][:, added] == 1.0)).all())
        if counts[i] == 2:
            assert not bool((added & dilated(first.masks[i:i + 1], 2)[0]).any())


def test_peak_hits_counts_argmax_inside_the_region() -> None:
    regions = torch.zeros(3, 4, 4, dtype=torch.bool)
    regions[:, 1:3, 1:3] = True
    maps = np.zeros((3, 4, 4), dtype=np.float32)
    maps[0, 2, 1] = 1.0  # inside
    maps[1, 0, 3] = 1.0  # outside
    # maps[2] all zero: its argmax (0, 0) is outside, and an empty map is a miss anyway
    assert peak_hits(maps, regions).tolist() == [True, False, False]
    regions[2, 0, 0] = True
    assert peak_hits(maps, regions).tolist() == [True, False, False]


def test_dilated_grows_a_region_by_a_square_neighbourhood() -> None:
    regions = torch.zeros(1, 5, 5, dtype=torch.bool)
    regions[0, 2, 2] = True
    grown = dilated(regions, 1)
    assert int(grown.sum()) == 9 and bool(grown[0, 1:4, 1:4].all())
    assert torch.equal(dilated(regions, 0), regions)
