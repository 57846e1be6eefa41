"""
Metrics and tuning: is the map faithful?
========================================

A map that looks plausible is not necessarily one that explains the model.
The metrics of :mod:`pytorch_grad_cam.metrics` test a map against the model
itself: they change the pixels the map calls relevant (or irrelevant) and
measure how the model's score for the explained class moves. A faithful map
points at pixels whose removal costs the score.

This tutorial scores Grad-CAM maps of the bundled pretrained
EfficientNet-Lite0 on two photos with each family of metrics (confidence
change, ROAD, deletion / insertion), checks that the metrics tell a real map
from a deliberately bad one, and then uses them to compare smoothing
options. :doc:`/metrics` lists every metric and what "better" means for it.
"""

# %%
# The model, two photos and their maps
# ------------------------------------
# The batch holds the cat (``chelsea``, explained as class 285 "Egyptian
# cat", the model's top class; 281 "tabby" comes second) and the espresso
# (``coffee``, class 967). The metrics score the targets they are
# given; the papers score probabilities, so the targets here are
# :class:`pytorch_grad_cam.utils.model_targets.ClassifierOutputSoftmaxTarget`:
# every number below is a change of the class's probability. The maps are
# computed for the class's logit as usual (a map of the softmax would mix in
# the other classes).
import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from pytorch_grad_cam import GradCAM, RandomCAM
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
)
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.road import ROADCombined, ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

torch.manual_seed(0)
model = load_efficientnet_lite0()
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
photos = [cv2.resize(image, (224, 224)).astype(np.float32) / 255
          for image in (data.chelsea(), data.coffee())]
input_tensor = torch.cat([preprocess_image(rgb, mean=MEAN, std=STD) for rgb in photos])
classes = [285, 967]
logit_targets = [ClassifierOutputTarget(c) for c in classes]
targets = [ClassifierOutputSoftmaxTarget(c) for c in classes]

with torch.no_grad():
    probabilities = model(input_tensor).softmax(dim=1)
for name, c, p in zip(["chelsea", "coffee"], classes, probabilities):
    print(f"{name}: p(class {c}) = {float(p[c]):.3f}")

with GradCAM(model=model, target_layers=[model.head_activation]) as cam:
    gradcam = cam(input_tensor, targets=logit_targets)

# %%
# Confidence change: keep what the map shows
# ------------------------------------------
# The simplest test multiplies the image by its map (pixels with a low map
# value fade to the normalised image's zero, the mean colour) and scores the
# result. :class:`pytorch_grad_cam.metrics.cam_mult_image.CamMultImageConfidenceChange`
# returns the change of the score;
# :class:`pytorch_grad_cam.metrics.cam_mult_image.DropInConfidence` only the
# drop (``relative=True`` divides it by the original score, the terms of the
# "Average Drop" of the Grad-CAM++ paper: lower is better);
# :class:`pytorch_grad_cam.metrics.cam_mult_image.IncreaseInConfidence` is 1
# where the score rose. Each returns one value per image.
change = CamMultImageConfidenceChange()(input_tensor, gradcam, targets, model)
drop = DropInConfidence(relative=True)(input_tensor, gradcam, targets, model)
increase = IncreaseInConfidence()(input_tensor, gradcam, targets, model)
print("confidence change:", np.round(change, 3))
print("relative drop:    ", np.round(drop, 3))
print("increase:         ", increase)

# %%
# ROAD: remove pixels, fill them in, score again
# ----------------------------------------------
# ROAD (:class:`pytorch_grad_cam.metrics.road.ROADMostRelevantFirst` and
# :class:`pytorch_grad_cam.metrics.road.ROADLeastRelevantFirst`) removes a
# share of the pixels in the map's order and replaces them by a noisy linear
# interpolation of their neighbours, which hides the removed region's shape
# from the model (a black hole would itself be a feature). ``percentile`` is
# the share of pixels *kept*: MoRF at 80 removes the 20 % most relevant
# pixels, LeRF at 20 removes the 80 % least relevant ones. A faithful map
# makes the score fall under MoRF (lower is better) and hold under LeRF
# (higher is better). ``return_visualization=True`` also returns the
# perturbed inputs the model was scored on.
morf, morf_inputs = ROADMostRelevantFirst(percentile=80)(
    input_tensor, gradcam, targets, model, return_visualization=True)
lerf, lerf_inputs = ROADLeastRelevantFirst(percentile=20)(
    input_tensor, gradcam, targets, model, return_visualization=True)
print("ROAD MoRF, 20 % most relevant removed: ", np.round(morf, 3))
print("ROAD LeRF, 80 % least relevant removed:", np.round(lerf, 3))


def unnormalise(tensor):
    """A normalised 3 x H x W input -> an RGB picture in [0, 1]."""
    picture = tensor.permute(1, 2, 0).cpu().numpy() * np.array(STD) + np.array(MEAN)
    return picture.clip(0, 1)


# %%
# What ROAD feeds the model
# -------------------------
# The perturbed inputs are normalised as the model takes them;
# ``unnormalise`` above turns them back into pictures. The titles give each
# image's change of probability, the metric's value.
fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
for row, name in enumerate(["Egyptian cat", "espresso"]):
    axes[row, 0].imshow(show_cam_on_image(photos[row], gradcam[row], use_rgb=True))
    axes[row, 0].set_title(f"Grad-CAM, {name}", fontsize=9)
    axes[row, 1].imshow(unnormalise(morf_inputs[row]))
    axes[row, 1].set_title(f"MoRF: 20 % most relevant removed\nchange {morf[row]:+.3f}",
                           fontsize=9)
    axes[row, 2].imshow(unnormalise(lerf_inputs[row]))
    axes[row, 2].set_title(f"LeRF: 80 % least relevant removed\nchange {lerf[row]:+.3f}",
                           fontsize=9)
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()

# %%
# MoRF blurs away what the map points at; LeRF keeps only that and blurs
# the rest. Compare the two changes of each image: the gap between them is
# what ROAD rewards.
#
# Deletion and insertion: the whole curve
# ---------------------------------------
# :class:`pytorch_grad_cam.metrics.deletion_insertion.DeletionAUC` replaces
# the pixels by zeros, most relevant first, in ``n_steps`` steps, and
# returns the area under the score curve (lower is better);
# :class:`pytorch_grad_cam.metrics.deletion_insertion.InsertionAUC` puts the
# pixels back into a blurred copy, most relevant first (higher is better).
# ``.curves(...)`` returns the curves too. Each step is a forward pass, so
# keep ``n_steps`` small on a CPU.
deletion = DeletionAUC(n_steps=16).curves(input_tensor, gradcam, targets, model)
insertion = InsertionAUC(n_steps=16).curves(input_tensor, gradcam, targets, model)
print("deletion AUC: ", np.round(deletion.areas, 3))
print("insertion AUC:", np.round(insertion.areas, 3))

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
fraction = np.linspace(0, 1, 17)
for ax, result, title in [(axes[0], deletion, "deletion"), (axes[1], insertion, "insertion")]:
    for curve, name in zip(result.curves, ["chelsea: Egyptian cat", "coffee: espresso"]):
        ax.plot(fraction, curve, marker=".", label=name)
    ax.set_title(f"{title} (Grad-CAM order)")
    ax.set_xlabel("share of pixels " + ("deleted" if title == "deletion" else "inserted"))
axes[0].set_ylabel("probability of the class")
axes[0].legend()
fig.tight_layout()

# %%
# A sanity baseline: a deliberately bad map
# -----------------------------------------
# A metric is only worth using if it separates a good map from a bad one.
# Two bad maps: :class:`pytorch_grad_cam.random_cam.RandomCAM` (random
# channel weights) and the Grad-CAM map turned upside down (``1 - map``),
# which calls the background relevant. :class:`pytorch_grad_cam.metrics.road.ROADCombined`
# summarises ROAD in one number per image, (LeRF - MoRF) / 2 averaged over
# the percentiles (higher is better); one percentile (50: half of the
# pixels removed each way) keeps it cheap here, use several for real work.
with RandomCAM(model=model, target_layers=[model.head_activation]) as cam:
    random_maps = cam(input_tensor, targets=logit_targets)
candidates = {"Grad-CAM": gradcam, "RandomCAM": random_maps, "1 - Grad-CAM": 1 - gradcam}

road = ROADCombined(percentiles=[50])
deletion_metric, insertion_metric = DeletionAUC(n_steps=16), InsertionAUC(n_steps=16)


def score(maps):
    """Each metric's mean over the two photos."""
    return {"ROAD combined (higher)": road(input_tensor, maps, targets, model).mean(),
            "deletion (lower)": deletion_metric(input_tensor, maps, targets, model).mean(),
            "insertion (higher)": insertion_metric(input_tensor, maps, targets, model).mean(),
            "relative drop (lower)": DropInConfidence(relative=True)(
                input_tensor, maps, targets, model).mean()}


def print_table(rows):
    columns = list(next(iter(rows.values())))
    print(f"{'':>14}" + "".join(f"{c:>23}" for c in columns))
    for name, row in rows.items():
        print(f"{name:>14}" + "".join(f"{row[c]:>23.3f}" for c in columns))


table = {name: score(maps) for name, maps in candidates.items()}
print_table(table)

# %%
# Read the table column by column: a metric is worth using on your data only
# if it ranks the real map above both bad ones. ROAD and deletion, which
# remove pixels in the map's order, should put the inverted map last. The
# confidence-change metrics are the weakest test: multiplying by a map keeps
# every pixel a little, and an inverted map keeps the large background at
# full strength, so the probability may barely drop and the relative drop
# may even favour the inverted map. Scores that saturate weaken every
# metric (the raw logit of a very confident prediction barely moves, hence
# the probabilities here).
#
# Tuning with the metrics: smoothing
# ----------------------------------
# ``aug_smooth=True`` averages the maps of flipped and rescaled copies of the
# input (6 passes); ``eigen_smooth=True`` keeps the first principal component
# of the weighted activations. Whether either helps depends on the model and
# the image, so measure: the same table for the three variants.
with GradCAM(model=model, target_layers=[model.head_activation]) as cam:
    variants = {"plain": gradcam,
                "aug_smooth": cam(input_tensor, targets=logit_targets, aug_smooth=True),
                "eigen_smooth": cam(input_tensor, targets=logit_targets, eigen_smooth=True)}
scores = {"plain": table["Grad-CAM"]}  # scored above
scores.update({name: score(maps) for name, maps in variants.items() if name != "plain"})
print_table(scores)

fig, axes = plt.subplots(2, 3, figsize=(9, 6))
for column, (name, maps) in enumerate(variants.items()):
    for row in range(2):
        axes[row, column].imshow(show_cam_on_image(photos[row], maps[row], use_rgb=True))
        axes[row, column].set_title(f"Grad-CAM, {name}", fontsize=9)
        axes[row, column].axis("off")
fig.tight_layout()

# %%
# Read such a table with care: two photos are far too few to choose a
# setting (the differences between the variants are often smaller than
# those between images), and each metric has its own bias -- deletion's
# black pixels are out of distribution, which ROAD's imputation avoids.
# Score a few hundred images of your own data, with the
# :doc:`dataset runner </datasets>` or
# :func:`pytorch_grad_cam.metrics.evaluate.evaluate_cam_methods`, before
# you trust a difference.
