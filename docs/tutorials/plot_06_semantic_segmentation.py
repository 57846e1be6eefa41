"""
Semantic segmentation
=====================

A segmentation model scores every pixel for every class, so "the score of a
class" has to be defined: usually the sum of the class's scores over the
pixels it was predicted for. This tutorial trains a tiny fully convolutional
segmentation network on synthetic shapes inside the script, then explains
one class's pixels with
:class:`pytorch_grad_cam.utils.model_targets.SemanticSegmentationTarget`,
Grad-CAM and Seg-Eigen-CAM. The reference is :doc:`/segmentation`.
"""

# %%
# Data and a tiny segmentation network
# ------------------------------------
# :func:`pytorch_grad_cam.utils.synthetic_shapes.make_shapes` returns images
# of one shape (disc, ring or cross) on a cluttered background, their labels
# and the masks of the shapes' pixels: together they give every pixel a
# class, background (0) or the shape's class + 1. The network has four
# convolutions, two of them dilated, and a 1 x 1 convolution to four
# classes on a 12 x 12 grid, upsampled to the input's 48 x 48; it trains in
# a few seconds on a CPU, seeded.
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam import GradCAM, SegEigenCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from pytorch_grad_cam.utils.synthetic_shapes import CLASSES, dilated, make_shapes, model_input

NAMES = ("background", *CLASSES)
torch.manual_seed(0)


def conv(cin: int, cout: int, dilation: int = 1) -> list[torch.nn.Module]:
    return [torch.nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
            torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]


class TinySegNet(torch.nn.Module):
    """B x 3 x H x W -> B x 4 x H x W class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(*conv(3, 16), torch.nn.MaxPool2d(2), *conv(16, 32),
                                            torch.nn.MaxPool2d(2), *conv(32, 32, 2), *conv(32, 32, 2))
        self.classifier = torch.nn.Conv2d(32, len(NAMES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.classifier(self.features(x)), size=x.shape[2:], mode="bilinear",
                             align_corners=False)


def pixel_classes(shapes) -> torch.Tensor:
    """N x H x W: 0 for background, the shape's class + 1 on its pixels."""
    return torch.where(shapes.masks, shapes.labels[:, None, None] + 1, 0)


model = TinySegNet()
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in range(150):
    batch = make_shapes(32, seed=step)
    loss = F.cross_entropy(model(model_input(batch.images)), pixel_classes(batch),
                           weight=torch.tensor([0.5, 1.0, 1.0, 1.0]))  # background is most pixels
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
model.eval()

held_out = make_shapes(64, seed=10**6)
with torch.no_grad():
    predicted = model(model_input(held_out.images)).argmax(dim=1)
truth = pixel_classes(held_out)
for c, name in enumerate(NAMES):
    iou = ((predicted == c) & (truth == c)).sum() / ((predicted == c) | (truth == c)).sum()
    print(f"held-out IoU of {name}: {float(iou):.2f}")

# %%
# Two shapes in one picture
# -------------------------
# To see whether a map is specific to a class, each test picture gets a
# second shape of another class, pasted from another image where it does
# not touch the first one. The network has never seen two shapes at once;
# being fully convolutional, it segments each where it is.
first, second = make_shapes(40, seed=7), make_shapes(40, seed=8)
apart = ~(dilated(first.masks, 3) & second.masks).flatten(1).any(dim=1)
keep = torch.nonzero(apart & (first.labels != second.labels))[:3, 0]
images = torch.where(second.masks[keep, None], second.images[keep], first.images[keep])
truth = torch.where(second.masks[keep], second.labels[keep, None, None] + 1,
                    pixel_classes(first)[keep])
with torch.no_grad():
    predicted = model(model_input(images)).argmax(dim=1)

fig, axes = plt.subplots(2, len(keep), figsize=(2.4 * len(keep), 4.8))
for i in range(len(keep)):
    axes[0, i].imshow(images[i].permute(1, 2, 0).numpy())
    axes[0, i].set_title(f"{CLASSES[int(first.labels[keep[i]])]} + "
                         f"{CLASSES[int(second.labels[keep[i]])]}", fontsize=8)
    axes[1, i].imshow(predicted[i].numpy(), cmap="tab10", vmin=0, vmax=9)
    axes[1, i].set_title("predicted classes", fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()

# %%
# Explaining one class's pixels
# -----------------------------
# :class:`pytorch_grad_cam.utils.model_targets.SemanticSegmentationTarget`
# takes a class and a mask, and scores the sum of that class's outputs
# inside the mask: here the pixels predicted as the first shape's class.
# The target layer is the last convolution block, ``model.features``
# (12 x 12). Grad-CAM weighs its channels by the mean gradient;
# :class:`pytorch_grad_cam.seg_eigen_cam.SegEigenCAM`, made for
# segmentation, takes the principal component of ``|gradient| x
# activation``, which keeps the position of both positive and negative
# gradients. Both should light up the first shape and not the second.
classes = [int(first.labels[k]) + 1 for k in keep]
targets = [SemanticSegmentationTarget(c, (predicted[i] == c).float()) for i, c in enumerate(classes)]
maps = {}
for method in (GradCAM, SegEigenCAM):
    with method(model=model, target_layers=[model.features]) as cam:
        maps[method.__name__] = cam(input_tensor=model_input(images), targets=targets)

on_first = dilated(first.masks[keep], 2).numpy()
on_second = dilated(second.masks[keep], 2).numpy()
for name, grayscale in maps.items():
    share_first = (grayscale * on_first).sum(axis=(1, 2)) / grayscale.sum(axis=(1, 2))
    share_second = (grayscale * on_second).sum(axis=(1, 2)) / grayscale.sum(axis=(1, 2))
    print(f"{name:>11}: share of the map on the explained shape {np.round(share_first, 2)}, "
          f"on the other shape {np.round(share_second, 2)}")

fig, axes = plt.subplots(len(maps), len(keep), figsize=(2.4 * len(keep), 2.5 * len(maps)))
for row, (name, grayscale) in zip(axes, maps.items()):
    for i, ax in enumerate(row):
        rgb = images[i].permute(1, 2, 0).numpy()
        ax.imshow(show_cam_on_image(rgb, grayscale[i], use_rgb=True))
        ax.set_title(f"{name}: {NAMES[classes[i]]} pixels", fontsize=8)
        ax.axis("off")
fig.tight_layout()

# %%
# torchvision's segmentation models
# ---------------------------------
# torchvision's models (FCN, DeepLabV3, LR-ASPP) return a dict; the library
# uses its ``"out"`` entry (B x 21 x H x W). The usual layer is the last
# stage of the backbone: ``model.backbone.layer4`` for the ResNet versions,
# ``model.backbone["16"]`` for ``deeplabv3_mobilenet_v3_large``; left out,
# ``target_layers`` is found by the library. :doc:`/segmentation` has the
# complete example, and :doc:`/target_layers` the choice of layers.
