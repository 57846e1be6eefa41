"""
Vision Transformers and Swin
============================

A Vision Transformer's layers output *tokens* (B x tokens x channels), not
feature maps, so a CAM method needs to be told how to lay them out on the
patch grid, and which layer still carries the class's gradient. This
tutorial trains a small ViT on synthetic shapes inside the script (so that
its maps can be checked against the known position of the shape), explains
it with Grad-CAM and with the three methods made for transformers (LeGrad,
attention rollout, gradient-weighted attention), and ends with the
mechanics of a Swin Transformer. The reference is :doc:`/vit`.
"""

# %%
# A small ViT trained on shapes
# -----------------------------
# :mod:`pytorch_grad_cam.utils.synthetic_shapes` draws 48 x 48 images of one
# shape (disc, ring or cross) on a cluttered background, with the mask of the
# shape, and :func:`pytorch_grad_cam.utils.synthetic_shapes.train_vit` trains
# a torchvision ``VisionTransformer`` on them (8 x 8 patches: a 6 x 6 token
# grid, 3 blocks), seeded, as a detector of each class. It trains for 150
# steps here instead of the test suite's 1000, so that the page builds
# quickly: the held-out accuracy printed below is lower than the suite's,
# but the maps already land on the shapes, which is what this page checks.
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.models import swin_t

from pytorch_grad_cam import AttentionRollout, GradCAM, GradientWeightedAttention, LeGrad
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform
from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    dilated,
    make_shapes,
    model_input,
    peak_hits,
    train_vit,
)

STEPS = 150
vit, seconds = train_vit(seed=2, steps=STEPS)
shapes = make_shapes(60, seed=12345)  # held-out images
inputs = model_input(shapes.images)
with torch.no_grad():
    predicted = vit(inputs).argmax(dim=1)
print(f"trained {STEPS} steps in {seconds:.1f} s; held-out accuracy "
      f"{float((predicted == shapes.labels).float().mean()):.2f} on {len(CLASSES)} classes {CLASSES}")

# the targets: each image's true class; the score: does the map peak on the shape?
targets = [ClassifierOutputTarget(int(label)) for label in shapes.labels]
regions = dilated(shapes.regions, 2)  # the shape's outline, grown by 2 px
print(f"a random peak would land on the shape in {float(regions.float().mean()):.2f} of cases")


def show_maps(maps: dict[str, np.ndarray], count: int = 4) -> None:
    """The first ``count`` images, one row per method."""
    fig, axes = plt.subplots(len(maps), count, figsize=(1.9 * count, 2.0 * len(maps)), squeeze=False)
    for row, (title, grayscale) in zip(axes, maps.items()):
        for i, ax in enumerate(row):
            rgb = shapes.images[i].permute(1, 2, 0).numpy()
            ax.imshow(show_cam_on_image(rgb, grayscale[i], use_rgb=True))
            ax.set_title(f"{title}: {CLASSES[int(shapes.labels[i])]}", fontsize=7)
            ax.axis("off")
    fig.tight_layout()


# %%
# Grad-CAM with a reshape transform
# ---------------------------------
# The tokens of a torchvision ViT are one class token followed by the 6 x 6
# patch tokens. :func:`pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform`
# drops the class token and lays the patch tokens out on their grid, B x C x
# 6 x 6, and the usual methods apply.
#
# The layer matters: the class score is read from the class token only, so
# after the last block nothing reads the patch tokens and their gradient is
# zero. Inside the last block, the class token attends to every patch
# token; the output of the block's first LayerNorm, ``ln_1``, feeds that
# attention and has a gradient at every patch. Even there a map can come out
# all zero, when no patch has a positive weighted activation for the
# target; the library then warns, names the image and suggests an earlier
# layer, and such a map counts as a miss below.
layer = vit.encoder.layers[-1].ln_1
with GradCAM(model=vit, target_layers=[layer], reshape_transform=vit_reshape_transform) as cam:
    gradcam = cam(input_tensor=inputs, targets=targets)
print("Grad-CAM maps:", gradcam.shape, "peak on the shape:",
      f"{float(peak_hits(gradcam, regions).float().mean()):.2f}")

# %%
# The automatic choice
# --------------------
# Leave ``target_layers`` out and the library recognises the family (here
# torchvision's ``VisionTransformer``) and picks the same layer and the
# reshape transform for the model's patch grid (see :doc:`/target_layers`).
with GradCAM(model=vit) as cam:
    print("chosen by", cam.target_layers_source, "; same layer:", cam.target_layers[0] is layer)
    automatic = cam(input_tensor=inputs, targets=targets)
print("same maps as above:", np.allclose(automatic, gradcam, atol=1e-5))

# %%
# Methods made for transformers
# -----------------------------
# Three methods read the attention probabilities of the blocks instead of a
# layer's feature map. They take the transformer blocks as target layers (by
# default all of them) and need no reshape transform:
#
# - :class:`pytorch_grad_cam.legrad.LeGrad`: each block's positive gradient
#   of its own score with respect to its attention, averaged;
# - :class:`pytorch_grad_cam.attention_rollout.AttentionRollout`: the product
#   of the blocks' attention (plus identity): how much each patch flows into
#   the class token. No gradient, so **not class-specific**;
# - :class:`pytorch_grad_cam.gradient_attention.GradientWeightedAttention`:
#   the attention weighted by its gradient, accumulated block by block
#   (Chefer et al. 2021).
#
# The fraction of images whose map peaks on the shape is printed for each,
# against the random level above.
maps = {"Grad-CAM": gradcam}
for method in (LeGrad, AttentionRollout, GradientWeightedAttention):
    with method(model=vit) as cam:
        maps[method.__name__] = cam(input_tensor=inputs, targets=targets)
for name, grayscale in maps.items():
    print(f"{name:>25}: peak on the shape in {float(peak_hits(grayscale, regions).float().mean()):.2f}")
show_maps(maps)

# %%
# Swin Transformers
# -----------------
# A Swin Transformer has no class token: its stages keep a grid of patches
# (B x H x W x C in torchvision) that shrinks stage by stage, and the head
# pools it. :func:`pytorch_grad_cam.utils.reshape_transforms.swinT_reshape_transform`
# turns that layout into B x C x H x W; the layer is the first norm of the
# last block, ``model.features[-1][-1].norm1`` (7 x 7 at 224 px). The
# attention methods above do not apply to Swin (its attention is windowed).
#
# torchvision's ``swin_t`` is built here with ``weights=None``: **random
# weights**, so the map below shows only that the shapes and the transform
# fit; with ``weights="DEFAULT"`` (a download) the same code explains the
# ImageNet classifier.
torch.manual_seed(0)
swin = swin_t(weights=None).eval()
image = torch.rand(1, 3, 224, 224)
with GradCAM(model=swin, target_layers=[swin.features[-1][-1].norm1],
             reshape_transform=swinT_reshape_transform) as cam:
    swin_map = cam(input_tensor=image, targets=[ClassifierOutputTarget(281)])
print("Swin map:", swin_map.shape)
with GradCAM(model=swin) as cam:
    print("chosen by", cam.target_layers_source, "; same layer:",
          cam.target_layers[0] is swin.features[-1][-1].norm1)
