"""
Object detection
================

A detector has no single class score: it returns boxes, labels and scores,
and its backbone returns a feature pyramid (a dict of maps) rather than one
map. This tutorial explains torchvision's Faster R-CNN with EigenCAM and
AblationCAM, then a YOLOv8 from ultralytics, following :doc:`/detection`.

.. warning::

   No detector weights ship with grad-cam and this site is built offline, so
   **every model on this page has random weights**: its "detections" are
   noise, and the maps show the *mechanics* only (shapes, layers, targets,
   transforms), not what a trained detector looks at. With
   ``weights="DEFAULT"`` (Faster R-CNN) or ``YOLO("yolov8n.pt")`` (both
   download their weights) the same code explains real detections.
"""

# %%
# A Faster R-CNN and its detections
# ---------------------------------
# ``fasterrcnn_resnet50_fpn`` with ``weights=None`` and
# ``weights_backbone=None`` builds the network without any download. A
# small ``min_size``/``max_size`` keeps it fast on a CPU, and
# ``box_score_thresh=0.0`` keeps the random model's low-scoring boxes so
# that there is something to explain. The model returns one dict of
# ``boxes``, ``labels`` and ``scores`` per image.
import os

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from skimage import data

from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN
from pytorch_grad_cam.utils.image import scale_cam_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import combine_levels, fasterrcnn_reshape_transform

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: no update checks
try:  # optional: ``pip install ultralytics``
    from ultralytics.nn.tasks import DetectionModel
except ImportError:
    DetectionModel = None

SIZE = 160
torch.manual_seed(0)
model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, min_size=SIZE, max_size=SIZE, box_score_thresh=0.0,
    box_detections_per_img=3, rpn_post_nms_top_n_test=50).eval()
rgb = cv2.resize(data.coffee(), (SIZE, SIZE)).astype(np.float32) / 255
input_tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # torchvision normalises itself
with torch.no_grad():
    detections = model(input_tensor)[0]
boxes = detections["boxes"][:2]
labels = detections["labels"][:2]
print("boxes:", boxes.round().int().tolist())
print("labels:", labels.tolist(), "scores:", [round(float(s), 3) for s in detections["scores"][:2]])


def draw_boxes(image: np.ndarray, boxes: torch.Tensor) -> np.ndarray:
    """The image with the boxes drawn in white."""
    image = image.copy()
    for x1, y1, x2, y2 in boxes.round().int().tolist():
        cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), 1)
    return image


# %%
# The target and the layer
# ------------------------
# :class:`pytorch_grad_cam.utils.model_targets.FasterRCNNBoxScoreTarget`
# scores the detections that match the given boxes (same label, IoU above
# 0.5): here the two boxes found above, so the map explains *these*
# detections. The target layer is the whole backbone, ``model.backbone``,
# which returns the feature pyramid as an ``OrderedDict`` of five levels;
# :func:`pytorch_grad_cam.utils.reshape_transforms.fasterrcnn_reshape_transform`
# resizes every level to the smallest one and stacks them on the channels,
# as grad-cam 1.5.7 did.
with torch.no_grad():
    pyramid = model.backbone(model.transform(input_tensor)[0].tensors)
print({key: tuple(level.shape) for key, level in pyramid.items()})
targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]

# %%
# EigenCAM
# --------
# EigenCAM is the usual first choice for detectors: it needs no gradient
# (the box coordinates and the non-maximum suppression make gradients
# awkward) and one forward pass. It is class-agnostic: the target is
# accepted but does not change the map, which is the first principal
# component of the pyramid.
with EigenCAM(model, target_layers=[model.backbone],
              reshape_transform=fasterrcnn_reshape_transform) as cam:
    eigen = cam(input_tensor, targets=targets)[0]
y, x = np.unravel_index(eigen.argmax(), eigen.shape)
print("EigenCAM:", eigen.shape, f"peak at x={x}, y={y}")

# %%
# AblationCAM with the Faster R-CNN ablation layer
# ------------------------------------------------
# AblationCAM is class-specific: it removes one channel of the pyramid at a
# time and watches the boxes' score fall.
# :class:`pytorch_grad_cam.ablation_layer.AblationLayerFasterRCNN` knows how
# to remove a channel of a dict of levels (it sets it to -1000, as 1.5.7).
# The pyramid has 5 x 256 = 1280 channels; ``ratio_channels_to_ablate=0.02``
# ablates only the 2 % with the largest mean activation (25 passes through
# the backbone and heads), which is what makes it affordable on a CPU.
with AblationCAM(model, target_layers=[model.backbone],
                 reshape_transform=fasterrcnn_reshape_transform,
                 ablation_layer=AblationLayerFasterRCNN(), ratio_channels_to_ablate=0.02,
                 batch_size=8, progress=False) as cam:
    ablation = cam(input_tensor, targets=targets)[0]
    print("AblationCAM ran in mode", repr(cam.ablation_mode))
y, x = np.unravel_index(ablation.argmax(), ablation.shape)
print("AblationCAM:", ablation.shape, f"peak at x={x}, y={y}")

# %%
# For a gradient method use
# :func:`pytorch_grad_cam.utils.reshape_transforms.combine_levels` instead:
# it keeps the signs and resizes to the finest level, where the gradient of
# every box is visible (see :doc:`/detection`).
with GradCAM(model, target_layers=[model.backbone], reshape_transform=combine_levels()) as cam:
    grad = cam(input_tensor, targets=targets)[0]
print("Grad-CAM:", grad.shape)

# %%
# Renormalising the map inside the boxes
# --------------------------------------
# A map over the whole image is dominated by its strongest region, which
# need not be inside the boxes. To see what matters *within* each detection,
# normalise the map to [0, 1] inside each box with
# :func:`pytorch_grad_cam.utils.image.scale_cam_image` and set it to zero
# outside.


def renormalize_in_boxes(grayscale: np.ndarray, boxes: torch.Tensor) -> np.ndarray:
    """The map, normalised to [0, 1] inside each box and 0 elsewhere."""
    renormalized = np.zeros_like(grayscale)
    for x1, y1, x2, y2 in boxes.round().int().clamp(min=0).tolist():
        if x2 > x1 and y2 > y1:
            renormalized[y1:y2, x1:x2] = scale_cam_image(grayscale[None, y1:y2, x1:x2])[0]
    return scale_cam_image(renormalized[None])[0]


inside = renormalize_in_boxes(eigen, boxes)
fig, axes = plt.subplots(1, 4, figsize=(11, 3.2))
pictures = {"EigenCAM": eigen, "AblationCAM (2 % of channels)": ablation,
            "Grad-CAM, combine_levels()": grad, "EigenCAM, renormalised in the boxes": inside}
for ax, (title, grayscale) in zip(axes, pictures.items()):
    ax.imshow(draw_boxes(show_cam_on_image(rgb, grayscale, use_rgb=True), boxes))
    ax.set_title(title + "\n(random weights)", fontsize=8)
    ax.axis("off")
fig.tight_layout()

# %%
# YOLO (ultralytics)
# ------------------
# ultralytics builds a YOLOv8 from its YAML config without any download
# (``pip install ultralytics``; set ``YOLO_OFFLINE=1``). In eval mode the
# model returns a tuple whose first element is ``B x (4 + classes) x
# anchors``: four box coordinates, then the class scores of every anchor. A
# target is any function of that output; the one below is one anchor's
# class score. Following :doc:`/detection`, Grad-CAM uses the C2f block the
# head reads at stride 8 (``model.model[15]``) and EigenCAM the last layer
# before the head (``model.model[-2]``). Again: **random weights**,
# mechanics only. If ultralytics is not installed this step is skipped.
if DetectionModel is None:
    print("ultralytics is not installed: the YOLO example is skipped")
else:
    yolo = DetectionModel("yolov8n.yaml", nc=3, verbose=False).eval()
    yolo_input = input_tensor[:, :, :SIZE, :SIZE]  # a multiple of 32
    with torch.no_grad():
        prediction = yolo(yolo_input)[0][0]  # (4 + 3) x anchors
    category, anchor = divmod(int(prediction[4:].argmax()), prediction.shape[1])
    print("YOLO output:", tuple(prediction.shape), "explaining class", category, "of anchor", anchor)

    def anchor_score(output: torch.Tensor) -> torch.Tensor:
        """That anchor's class score."""
        return output[4 + category, anchor]

    with GradCAM(yolo, target_layers=[yolo.model[15]]) as cam:
        yolo_grad = cam(yolo_input, [anchor_score])[0]
    with EigenCAM(yolo, target_layers=[yolo.model[-2]]) as cam:
        yolo_eigen = cam(yolo_input, [anchor_score])[0]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    for ax, (title, grayscale) in zip(axes, {"YOLOv8n Grad-CAM, model[15]": yolo_grad,
                                             "YOLOv8n EigenCAM, model[-2]": yolo_eigen}.items()):
        ax.imshow(show_cam_on_image(rgb, grayscale, use_rgb=True))
        ax.set_title(title + "\n(random weights)", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
