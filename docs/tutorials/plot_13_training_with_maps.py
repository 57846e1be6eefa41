"""
Maps in a training loop: right for the right reasons
====================================================

A map is usually computed after training, to look at a model. It can also
be part of training: ``cam.differentiable_maps(...)`` returns the maps of
the gradient methods as a torch tensor that carries the autograd graph to
the model's parameters, so a loss on the maps trains the model to look
where you say (see :doc:`/training`).

This tutorial builds a dataset with a shortcut: a small coloured square in
the corner that gives the class away. A small CNN trained on it the usual
way learns the square and ignores the shapes; the same model trained with
an extra loss that penalises map mass off the shape learns the shapes.
Both train in a few seconds on a CPU, from a fixed seed.
"""

# %%
# A dataset with a shortcut
# -------------------------
# :func:`pytorch_grad_cam.utils.synthetic_shapes.make_shapes` draws one
# shape (disc, ring or cross) per image on a cluttered background, with the
# shape's mask and region. The images here are 32 x 32 pixels with shapes of
# radius 4.5 to 7.5 (small, so that training is quick). ``with_tag`` paints a
# 4 x 4 square in the top-left corner, red for a disc, green for a ring,
# blue for a cross: in the training data it always agrees with the shape, so
# a model can classify by the corner alone.
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    SmallCNN,
    dilated,
    make_shapes,
    model_input,
    peak_hits,
)

SIZE = 32


def shapes(n, seed):
    return make_shapes(n, seed=seed, size=SIZE, min_radius=4.5, max_radius=7.5)


def with_tag(images, tag_classes):
    """The images with a 4 x 4 corner square of the colour of ``tag_classes``."""
    tagged = images.clone()
    tagged[:, :, 1:5, 1:5] = torch.eye(3)[tag_classes][:, :, None, None]
    return tagged


example = shapes(6, seed=1)
fig, axes = plt.subplots(1, 6, figsize=(10, 2))
for ax, image, label in zip(axes, with_tag(example.images, example.labels), example.labels):
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_title(CLASSES[label], fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# The loss on the map
# -------------------
# Both models are :class:`pytorch_grad_cam.utils.synthetic_shapes.SmallCNN`
# (four convolutions, an 8 x 8 map at 32 pixels), trained for 60 steps of 32
# fresh images with AdamW. The second one adds, for every image, the share
# of its Grad-CAM map (for its true class) that lies more than 2 pixels off
# the shape's region:
#
# .. code-block:: python
#
#     maps = cam.differentiable_maps(x, targets)          # B x H x W, in the graph
#     off = ~dilated(regions, 2)                           # where the evidence should not be
#     loss = cross_entropy + (maps * off).sum((1, 2)) / maps.sum((1, 2))
#
# ``differentiable_maps`` runs the model as it is (here in training mode,
# BatchNorm using the batch's statistics) and writes no ``.grad``: only the
# ``backward`` of the total loss does. It costs a second backward pass
# through the graph of the first, so a step takes about twice as long.


def train(map_weight, steps=60, batch=32, seed=0):
    torch.manual_seed(seed)
    model = SmallCNN(width=16)
    cam = GradCAM(model, target_layers=[model.features[-1]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        data = shapes(batch, seed=step)
        x = model_input(with_tag(data.images, data.labels))
        loss = F.cross_entropy(model(x), data.labels)
        if map_weight:
            targets = [ClassifierOutputTarget(int(c)) for c in data.labels]
            maps = cam.differentiable_maps(x, targets)
            off = ~dilated(data.regions, 2)
            off_share = (maps * off).sum(dim=(1, 2)) / (maps.sum(dim=(1, 2)) + 1e-6)
            loss = loss + map_weight * off_share.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


start = time.perf_counter()
plain = train(map_weight=0)
middle = time.perf_counter()
guided = train(map_weight=1.0)
print(f"trained: plain in {middle - start:.1f} s, with the map loss in "
      f"{time.perf_counter() - middle:.1f} s")

# %%
# What each model learned
# -----------------------
# The test images are new (another seed), in two versions: with the corner
# square telling the truth, as in training, and with it lying (the colour of
# another class). Accuracy says whether a model reads the shape or the
# corner; the peak-on-shape rate
# (:func:`pytorch_grad_cam.utils.synthetic_shapes.peak_hits`: whether the
# map's maximum lies inside the shape's region) says where its map looks.
test = shapes(150, seed=10_000)
liar = (test.labels + torch.randint(1, 3, test.labels.shape,
                                    generator=torch.Generator().manual_seed(5))) % 3
versions = {"corner tells the truth": with_tag(test.images, test.labels),
            "corner lies": with_tag(test.images, liar)}
test_targets = [ClassifierOutputTarget(int(c)) for c in test.labels]
maps = {}
for name, model in [("plain", plain), ("with map loss", guided)]:
    with GradCAM(model, target_layers=[model.features[-1]]) as cam:
        for version, images in versions.items():
            x = model_input(images)
            with torch.no_grad():
                accuracy = float((model(x).argmax(dim=1) == test.labels).float().mean())
            maps[name, version] = cam(x, targets=test_targets)
            hits = float(peak_hits(maps[name, version], test.regions).float().mean())
            print(f"{name:>14}, {version:<22}: accuracy {accuracy:.2f}, "
                  f"map peak on the shape {hits:.2f}")

# %%
# The plain model is right only while the corner tells the truth (chance is
# 0.33): it learned the shortcut. Its maps say so: below, where it follows
# the lying corner, the map of the class it *predicts* sits on the corner
# square, and the map of the true class rarely finds the shape. The model
# trained with the map loss keeps its accuracy when the corner lies and its
# maps peak on the shapes. (A warning about an all-zero map, if one is
# printed above, concerns a test image that gives the plain model no
# positive evidence for the true class at the last layer.)
x_liar = model_input(versions["corner lies"][:6])
with GradCAM(plain, target_layers=[plain.features[-1]]) as cam:
    predicted_maps = cam(x_liar)   # targets=None: each image's top class
    predicted = cam.outputs.argmax(dim=1)
rows = [("plain, predicted class", predicted_maps),
        ("plain, true class", maps["plain", "corner lies"]),
        ("map loss, true class", maps["with map loss", "corner lies"])]
fig, axes = plt.subplots(4, 6, figsize=(10, 7.2))
for column in range(6):
    picture = versions["corner lies"][column].permute(1, 2, 0).numpy()
    axes[0, column].imshow(picture)
    axes[0, column].set_title(f"{CLASSES[test.labels[column]]}, corner lies", fontsize=8)
    for row, (name, row_maps) in enumerate(rows, start=1):
        axes[row, column].imshow(show_cam_on_image(picture, row_maps[column], use_rgb=True))
        title = f"{name}\n({CLASSES[predicted[column]]})" if row == 1 else name
        axes[row, column].set_title(title, fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()

# %%
# What to watch out for
# ---------------------
# * The penalty needs ground truth (masks or boxes) for the training images;
#   with it, a few steps are enough to move the evidence, but a weight that
#   is too large can trade accuracy for tidy maps: check the accuracy too.
# * A model can satisfy a loss on one method's map without changing what it
#   uses (negative evidence that Grad-CAM's ReLU hides, for example). Test
#   the result as here, on data where the shortcut does not hold.
# * ``differentiable_maps`` supports the gradient methods (GradCAM, HiResCAM,
#   GradCAM++, XGradCAM, LayerCAM, GradCAMElementWise) and
#   ``aug_smooth=True``, not ``eigen_smooth``; see :doc:`/training`.
