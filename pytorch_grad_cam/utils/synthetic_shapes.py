"""Synthetic shape images with known ground truth, and a small CNN and
Vision Transformer trained on them: a sanity check for explanation methods
that needs no pretrained model (the map of a method that works must lie on
the shape). ``tests/quality/test_quality.py`` scores every registered method on
them and ``examples/make_gallery.py`` draws the ViT methods' maps.

Every image shows one shape, its class (``CLASSES``: disc, ring, cross),
of random size, rotation and colour at a random position, on a cluttered
background: a random base colour, smooth colour blobs, thin line segments
of random colour, and pixel noise. The clutter holds no class shape and is
independent of the class, so a model that classifies these images must
find the shape and read its form. The shape is brighter than the
background in every colour channel by a random amount (its hue is
random); the lines are brighter or darker, by less.

Both choices keep the ViT's training within the test's budget (measured
on held-out images with the ViT below, trained with cross-entropy): with
the shape's contrast of random sign per channel, as the lines have it, it
reaches 88% accuracy after 600 steps (97% with bright shapes), and with
square and triangle classes (disc, square, triangle, cross) 63% after 300
steps: its linear patch embedding on 8 x 8 patches tells a disc from a
square only slowly.

``train_vit`` trains the ViT as a detector of each class by default
(``multilabel_batch``: images with no shape, one shape, or, a few, two of
different classes; binary cross-entropy), so that each class's logit is evidence for
its own shape. With cross-entropy on one shape per image, a small ViT can
decide one class partly by the absence of the others, and the methods that
read its attention gradients without weighting them by the attention
(LeGrad) then often put that class's maps on the background;
``bench/vit_quality_sweep.py`` measures both recipes over several seeds.

Each image comes with the mask of the shape's pixels and the shape's
region: the pixels inside its outline (for the ring, its hole too).

Everything is made in torch from a seed, deterministically, with no files.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

#: the classes, in label order
CLASSES = ("disc", "ring", "cross")
#: the images' height and width in pixels
SIZE = 48
M = TypeVar("M", bound=torch.nn.Module)

#: the ViT's patch size: a 6 x 6 token grid at SIZE
PATCH = 8
#: the range of the shapes' radii, in pixels
MIN_RADIUS, MAX_RADIUS = 7.0, 11.0


class Shapes(NamedTuple):
    images: torch.Tensor  # N x 3 x H x W, float32 in [0, 1]
    labels: torch.Tensor  # N, int64 index into CLASSES
    masks: torch.Tensor  # N x H x W, bool: the shape's pixels
    regions: torch.Tensor  # N x H x W, bool: inside the shape's outline


# each shape as (pixels, region) in its own coordinates u, v, for radius r
def _disc(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inside = u * u + v * v <= r * r
    return inside, inside


def _ring(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d2 = u * u + v * v
    outline = d2 <= r * r
    return outline & (d2 >= (0.55 * r) ** 2), outline


def _cross(u: torch.Tensor, v: torch.Tensor,
           r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    arm = 0.3 * r
    inside = ((u.abs() <= r) & (v.abs() <= arm)) | ((v.abs() <= r) & (u.abs() <= arm))
    return inside, inside


_SHAPES: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "disc": _disc, "ring": _ring, "cross": _cross}


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def _draw_shapes(labels: torch.Tensor, size: int, g: torch.Generator, min_radius: float,
                 max_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """N x H x W pixels and regions of the shapes: radius r, centre and
    rotation random, the whole shape inside the image."""
    n = labels.shape[0]
    radius = _uniform((n,), min_radius, max_radius, g)
    cy = radius + 1 + (size - 3 - 2 * radius) * torch.rand(n, generator=g)
    cx = radius + 1 + (size - 3 - 2 * radius) * torch.rand(n, generator=g)
    angle = _uniform((n,), 0, math.pi, g)
    coords = torch.arange(size, dtype=torch.float32)
    dy = coords[None, :, None] - cy[:, None, None]
    dx = coords[None, None, :] - cx[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx  # the shape's own axes
    r = radius[:, None, None]
    drawn = [_SHAPES[name](u, v, r) for name in CLASSES]
    index = torch.arange(n)
    pixels = torch.stack([p for p, _ in drawn], dim=1)[index, labels]
    regions = torch.stack([q for _, q in drawn], dim=1)[index, labels]
    return pixels, regions


def _labels_and_shapes(n: int, g: torch.Generator, size: int, min_radius: float,
                       max_radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced labels in random order, and their shapes' pixels and regions."""
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    return (labels, *_draw_shapes(labels, size, g, min_radius, max_radius))


def make_shapes(n: int, seed: int, size: int = SIZE, min_radius: float = MIN_RADIUS,
                max_radius: float = MAX_RADIUS, lines: int = 4, blobs: int = 3,
                noise: float = 0.06) -> Shapes:
    """``n`` images of ``size`` x ``size`` pixels with their labels
    (balanced, in random order), the shapes' masks and regions, from
    ``seed``."""
    g = torch.Generator().manual_seed(seed)
    labels, masks, regions = _labels_and_shapes(n, g, size, min_radius, max_radius)

    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = coords[None, :, None], coords[None, None, :]
    base = _uniform((n, 3), 0.1, 0.45, g)
    images = base[:, :, None, None].expand(n, 3, size, size).clone()
    # smooth blobs: wide gaussians of a nearby colour (no edges, no shape)
    for _ in range(blobs):
        by, bx = size * torch.rand(n, 1, 1, generator=g), size * torch.rand(n, 1, 1, generator=g)
        width = _uniform((n, 1, 1), 0.1, 0.25, g) * size
        bump = torch.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * width ** 2))
        images = images + _uniform((n, 3, 1, 1), -0.15, 0.15, g) * bump[:, None]
    # thin line segments, 1 to 2 pixels wide, brighter or darker by 0.15-0.3
    for _ in range(lines):
        p0, p1 = size * torch.rand(n, 2, 1, 1, generator=g), size * torch.rand(n, 2, 1, 1, generator=g)
        d = p1 - p0
        t = (((yy - p0[:, 0]) * d[:, 0] + (xx - p0[:, 1]) * d[:, 1])
             / (d * d).sum(dim=1).clamp_min(1.0)).clamp(0, 1)
        dist = torch.hypot(yy - p0[:, 0] - t * d[:, 0], xx - p0[:, 1] - t * d[:, 1])
        on_line = (dist <= _uniform((n, 1, 1), 0.5, 1.0, g))[:, None]
        sign = torch.where(torch.rand(n, 3, generator=g) < 0.5, -1.0, 1.0)
        colour = (base + sign * _uniform((n, 3), 0.15, 0.3, g)).clamp(0, 1)
        images = torch.where(on_line, colour[:, :, None, None], images)
    colour = (base + _uniform((n, 3), 0.3, 0.55, g)).clamp(0, 1)
    images = torch.where(masks[:, None], colour[:, :, None, None], images)
    images = images + noise * torch.randn(images.shape, generator=g)
    return Shapes(images.clamp(0, 1), labels, masks, regions)


def dilated(regions: torch.Tensor, pixels: int) -> torch.Tensor:
    """N x H x W bool regions grown by ``pixels`` in every direction (a
    square neighbourhood of 2 * pixels + 1)."""
    return F.max_pool2d(regions[:, None].float(), 2 * pixels + 1, stride=1,
                        padding=pixels)[:, 0] > 0


def peak_hits(maps: np.ndarray, regions: torch.Tensor) -> torch.Tensor:
    """Per image: whether the map's argmax lies in the region (an all-zero
    map: False)."""
    flat = torch.from_numpy(np.asarray(maps).reshape(len(maps), -1))
    inside = regions.flatten(1)[torch.arange(len(maps)), flat.argmax(dim=1)]
    return inside & (flat.amax(dim=1) > 0)


def background_colour(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """N x 3: each image's median colour outside its shape."""
    hidden = images.masked_fill(masks[:, None], float("nan"))
    return hidden.flatten(2).nanmedian(dim=2).values


#: multi-label training batches: the share of images whose shape is
#: removed, and the share that are offered a second shape (see
#: ``multilabel_batch``)
EMPTY, SECOND = 0.15, 0.5


def multilabel_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images for a detector of each class, and their N x
    classes multi-hot targets: the images of ``make_shapes(n, seed)``,
    whose shape is painted over with the image's background colour in a
    share ``EMPTY`` of them, and a share ``SECOND`` of them is offered a
    second shape (from another seed) that is kept where its class differs
    from the first's and it does not come within 2 pixels of a first shape
    that is still there; it is brighter than the background by 0.3-0.55
    in every channel, as the first. In all, about 10% of the images show no
    shape, 83% one and 6% two (measured over 12,800 images)."""
    g = torch.Generator().manual_seed(seed)
    first = make_shapes(n, seed=seed)
    other_labels, other_masks, _ = _labels_and_shapes(
        n, torch.Generator().manual_seed(seed + 7_919), SIZE, MIN_RADIUS, MAX_RADIUS)
    keep = torch.rand(n, generator=g) >= EMPTY
    background = background_colour(first.images, first.masks)
    images = torch.where((~keep[:, None, None] & first.masks)[:, None],
                         background[:, :, None, None], first.images)
    hot = F.one_hot(first.labels, len(CLASSES)).float() * keep[:, None]
    near_first = dilated(first.masks & keep[:, None, None], 2)
    second = ((torch.rand(n, generator=g) < SECOND) & (other_labels != first.labels)
              & ~(near_first & other_masks).flatten(1).any(dim=1))
    colour = (background + 0.3 + 0.25 * torch.rand(n, 3, generator=g)).clamp(0, 1)
    images = torch.where((second[:, None, None] & other_masks)[:, None],
                         colour[:, :, None, None], images)
    hot = torch.where(second[:, None],
                      torch.maximum(hot, F.one_hot(other_labels, len(CLASSES)).float()), hot)
    return images.clamp(0, 1), hot


def model_input(images: torch.Tensor) -> torch.Tensor:
    """What the models take: the images centred on zero."""
    return images - 0.5


# ------------------------------------------------------------- the models
class SmallCNN(torch.nn.Module):
    """Four 3 x 3 convolutions with batch norm and ReLU, two 2 x 2 max-pools
    (a 12 x 12 map at 48 px), global average pooling and one linear head.
    ``features[-1]`` is the last convolution's ReLU, the target layer."""

    def __init__(self, classes: int = len(CLASSES), width: int = 32) -> None:
        super().__init__()

        def conv(cin: int, cout: int, dilation: int = 1) -> list:
            return [torch.nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
                    torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]

        self.features = torch.nn.Sequential(
            *conv(3, 16), torch.nn.MaxPool2d(2), *conv(16, width), torch.nn.MaxPool2d(2),
            *conv(width, width), *conv(width, width, dilation=2))
        self.fc = torch.nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def small_vit(classes: int = len(CLASSES)) -> torchvision.models.VisionTransformer:
    """A torchvision VisionTransformer for SIZE px images in PATCH px patches,
    3 blocks of width 64 with 4 heads."""
    return torchvision.models.vision_transformer.VisionTransformer(
        image_size=SIZE, patch_size=PATCH, num_layers=3, num_heads=4, hidden_dim=64,
        mlp_dim=128, num_classes=classes)


def train(model: M, steps: int, lr: float, seed: int, batch: int = 64,
          multilabel: bool = False) -> M:
    """Train ``model`` on ``steps`` fresh batches of synthetic images
    (AdamW, one-cycle learning rate); returns it in eval mode. By default
    every image shows one shape and the loss is cross-entropy;
    ``multilabel=True`` trains a detector of each class instead
    (``multilabel_batch``: images with no shape, one, or two of different
    classes; binary cross-entropy)."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                                   pct_start=0.15)
    model.train()
    for step in range(steps):
        if multilabel:
            images, hot = multilabel_batch(batch, seed * 1_000_003 + step)
            loss = F.binary_cross_entropy_with_logits(model(model_input(images)), hot)
        else:
            data = make_shapes(batch, seed=seed * 1_000_003 + step)
            loss = F.cross_entropy(model(model_input(data.images)), data.labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    return model


def train_cnn(seed: int = 1, steps: int = 250) -> tuple[SmallCNN, float]:
    """The trained SmallCNN and the seconds its training took."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = train(SmallCNN(), steps, lr=3e-3, seed=seed)
    return model, time.perf_counter() - start


def train_vit(seed: int = 2, steps: int = 1000, multilabel: bool = True
              ) -> tuple[torchvision.models.VisionTransformer, float]:
    """The trained small_vit (by default as a detector of each class, see
    ``train``) and the seconds its training took."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = train(small_vit(), steps, lr=1e-3, seed=seed, multilabel=multilabel)
    return model, time.perf_counter() - start
