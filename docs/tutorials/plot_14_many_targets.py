"""
Many targets in one call
========================

Which pixels speak for the cat's five most likely classes? A call can explain
several targets of every image at once: give each image a *list* of targets
(the same number K for every image) and the maps come back as
B x K x H x W. The model's forward pass runs once; only the scoring and the
gradients are per target. For Score-CAM and Ablation-CAM, whose cost is
hundreds of forward passes per image, every one of those passes is scored for
all K targets, so five classes cost about what one does.

This tutorial explains the top-5 classes of ``chelsea`` (a tabby cat) with
the bundled pretrained EfficientNet-Lite0, checks that each map equals the
one-target call's, times one call against five, and builds target lists for a
multi-label model and a detector. See :doc:`/usage` for the call's options.
"""

# %%
# The top five classes of one photo
# ---------------------------------
# ``top_k_targets(scores, k)`` turns the model's scores into one list of the
# k best classes per image, best first.
import time

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from pytorch_grad_cam import AblationCAM, GradCAM
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0
from pytorch_grad_cam.utils.target_sets import (
    box_targets,
    groups_by_count,
    multilabel_classes,
    top_k_classes,
    top_k_targets,
)

model = load_efficientnet_lite0()
photo = cv2.resize(data.chelsea(), (224, 224)).astype(np.float32) / 255
input_tensor = preprocess_image(photo, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
with torch.no_grad():
    scores = model(input_tensor)
probabilities = scores.softmax(dim=1)[0]
classes = top_k_classes(scores, 5)[0]
for rank, category in enumerate(classes):
    print(f"{rank + 1}. class {category} ({IMAGENET_CLASSES[category]}): "
          f"{float(probabilities[category]):.3f}")

cam = GradCAM(model=model, target_layers=[model.head_activation])
maps = cam(input_tensor=input_tensor, targets=top_k_targets(scores, 5))
print("maps:", maps.shape)  # 1 image x 5 targets x 224 x 224

fig, axes = plt.subplots(1, 5, figsize=(11, 2.8))
for ax, category, grayscale in zip(axes, classes, maps[0]):
    ax.imshow(show_cam_on_image(photo, grayscale, use_rgb=True))
    ax.set_title(f"{category} {IMAGENET_CLASSES[category]}\n"
                 f"p = {float(probabilities[category]):.2f}", fontsize=8)
    ax.axis("off")
fig.tight_layout()

# %%
# Each map is the one-target call's
# ---------------------------------
# Map ``[i, k]`` is exactly what a call with the single target
# ``targets[i][k]`` returns.
for k, category in enumerate(classes):
    single = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(category)])
    print(f"class {category}: largest difference {np.abs(single[0] - maps[0, k]).max():.1e}")

# %%
# What it costs
# -------------
# Timed on the machine that built this page (one run each, so expect some
# noise): one call for the top class, one call for the top five, and (for
# Grad-CAM) five separate calls. Grad-CAM's five gradients come from the
# graph of one forward pass. Ablation-CAM's ablated copies (one per channel
# of the layer, 1,280 here, each through the layers after it) run once and
# are scored for the five classes; five separate calls would cost five
# times its top-1 time, and Score-CAM shares its masked passes the same way.
# The benchmark ``bench/many_targets.py`` measures these ratios with
# repeats.
one, five = top_k_targets(scores, 1), top_k_targets(scores, 5)


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


cam(input_tensor=input_tensor, targets=one)  # warm-up
t_one = seconds(lambda: cam(input_tensor=input_tensor, targets=one))
t_five = seconds(lambda: cam(input_tensor=input_tensor, targets=five))
t_separate = seconds(lambda: [cam(input_tensor=input_tensor, targets=[row]) for row in five[0]])
print(f"Grad-CAM: top-1 {t_one:.2f} s, top-5 in one call {t_five:.2f} s "
      f"({t_five / t_one:.2f}x), five calls {t_separate:.2f} s ({t_separate / t_one:.2f}x)")

ablation_cam = AblationCAM(model=model, target_layers=[model.head_activation], progress=False)
t_one = seconds(lambda: ablation_cam(input_tensor=input_tensor, targets=one))
t_five = seconds(lambda: ablation_cam(input_tensor=input_tensor, targets=five))
print(f"Ablation-CAM: top-1 {t_one:.2f} s, top-5 in one call {t_five:.2f} s "
      f"({t_five / t_one:.2f}x)")

# %%
# Several images, several labels
# ------------------------------
# A multi-label model gives every image its own number of labels (every
# class whose sigmoid probability reaches a threshold). A call takes the same
# number of targets for every image, so ``groups_by_count`` groups the images
# that can share a call. Here the two photos' ImageNet scores stand in for a
# multi-label model's, with the threshold on the raw scores
# (``sigmoid=False``).
photos = [photo, cv2.resize(data.coffee(), (224, 224)).astype(np.float32) / 255]
batch = torch.cat([preprocess_image(p, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
                   for p in photos])
with torch.no_grad():
    batch_scores = model(batch)
labels = multilabel_classes(batch_scores, threshold=9.0, sigmoid=False, max_classes=3)
print("labels per image:", [[IMAGENET_CLASSES[c] for c in row] for row in labels])
for group in groups_by_count(labels):
    targets = [[ClassifierOutputTarget(c) for c in labels[i]] for i in group]
    group_maps = cam(input_tensor=batch[group], targets=targets)
    print(f"images {group}: maps {group_maps.shape}")

# %%
# Every box of a detector
# -----------------------
# ``box_targets`` makes one ``FasterRCNNBoxScoreTarget`` per detected box
# (above a score), highest score first, from a torchvision-style detector's
# output; :doc:`/auto_tutorials/plot_05_object_detection` explains a
# detector. Here a hand-written output of one image with three boxes:
detections = [{"boxes": torch.tensor([[10.0, 20, 120, 200], [90, 40, 210, 180], [0, 0, 30, 30]]),
               "labels": torch.tensor([17, 18, 1]), "scores": torch.tensor([0.92, 0.71, 0.30])}]
boxes = box_targets(detections, score_threshold=0.5)
print([f"label {t.labels[0]}, box {t.bounding_boxes[0]}" for t in boxes[0]])
