"""
CNN classifiers
===============

This tutorial explains an image classifier in the ways you will use most:
several images in one batch with one target each, the top class against a
class you choose, the two smoothing options, guided backpropagation and
guided Grad-CAM, and how to do the same with any torchvision classifier. The
model is the bundled pretrained EfficientNet-Lite0 (ImageNet); the photos are
scikit-image's ``chelsea`` (a tabby cat) and ``coffee`` (a cup of espresso).
See :doc:`/usage` for every option of a call and :doc:`/target_layers` for
the choice of the layer.
"""

# %%
# Two images, one batch
# ---------------------
# Images of the same size stack into one batch; the CAM object then gives one
# map per image in one forward and one backward pass. ``targets`` holds one
# target per image: here each image's top class.
import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data
from torchvision.models import resnet50

from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.utils.image import deprocess_image, preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

model = load_efficientnet_lite0()
photos = [cv2.resize(photo, (224, 224)).astype(np.float32) / 255
          for photo in (data.chelsea(), data.coffee())]
input_tensor = torch.cat([preprocess_image(photo, mean=[0.485, 0.456, 0.406],
                                           std=[0.229, 0.224, 0.225]) for photo in photos])
with torch.no_grad():
    top = model(input_tensor).argmax(dim=1).tolist()
print("batch:", tuple(input_tensor.shape), "top classes:", [(c, IMAGENET_CLASSES[c]) for c in top])

cam = GradCAM(model=model, target_layers=[model.head_activation])
grayscale_cams = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(c) for c in top])
print("maps:", grayscale_cams.shape)

fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
for ax, photo, grayscale, category in zip(axes, photos, grayscale_cams, top):
    ax.imshow(show_cam_on_image(photo, grayscale, use_rgb=True))
    ax.set_title(f"Grad-CAM, top class {category}\n({IMAGENET_CLASSES[category]})", fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# The top class against a class you choose
# ----------------------------------------
# A target names what to explain; it need not be the prediction. For the cat
# photo, class 281 ("tabby cat") lights up the cat. A class that has nothing
# to do with the photo, 967 ("espresso"), still gets a map: it shows where
# the few features that speak for "espresso" lie, in scattered patches at
# the edge of the face. The map is normalised to [0, 1] per image, so it
# always has a bright spot (here its peak even falls next to the cat's):
# judge it by its shape and by the probability printed, not by its
# brightness.
cat = input_tensor[:1]
with torch.no_grad():
    probabilities = model(cat).softmax(dim=1)[0]
chosen = {281: None, 967: None}
for category in chosen:
    chosen[category] = cam(input_tensor=cat, targets=[ClassifierOutputTarget(category)])[0]
    y, x = np.unravel_index(chosen[category].argmax(), chosen[category].shape)
    print(f"class {category} ({IMAGENET_CLASSES[category]}): probability "
          f"{float(probabilities[category]):.4f}, map peaks at x={x}, y={y}")

fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
for ax, (category, grayscale) in zip(axes, chosen.items()):
    ax.imshow(show_cam_on_image(photos[0], grayscale, use_rgb=True))
    ax.set_title(f"class {category} ({IMAGENET_CLASSES[category]})", fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# Smoothing: ``aug_smooth`` and ``eigen_smooth``
# ----------------------------------------------
# ``aug_smooth=True`` runs the image through six test-time augmentations
# (horizontal flip x three brightnesses), undoes them on the maps and
# averages, at six times the cost; it helps where the map is noisy or
# off-centre, and on this clear, centred photo it changes little.
# ``eigen_smooth=True`` replaces the sum of the weighted activations by their
# first principal component, which removes much of the noise of the
# gradients and here concentrates the map on the eyes and forehead (half
# the area above 0.5); it costs almost nothing.
targets = [ClassifierOutputTarget(281)]
variants = {
    "plain": cam(input_tensor=cat, targets=targets)[0],
    "aug_smooth": cam(input_tensor=cat, targets=targets, aug_smooth=True)[0],
    "eigen_smooth": cam(input_tensor=cat, targets=targets, eigen_smooth=True)[0],
}
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, (title, grayscale) in zip(axes, variants.items()):
    ax.imshow(show_cam_on_image(photos[0], grayscale, use_rgb=True))
    ax.set_title(f"Grad-CAM, {title}", fontsize=9)
    ax.axis("off")
    print(f"{title:>12}: {float((grayscale > 0.5).mean()):.2f} of the image above 0.5")
fig.tight_layout()

# %%
# Guided backpropagation and guided Grad-CAM
# ------------------------------------------
# A CAM is coarse: a 7 x 7 grid upsampled to 224 x 224. Guided
# backpropagation (:class:`pytorch_grad_cam.guided_backprop.GuidedBackpropReLUModel`)
# is the gradient of the score with respect to the input pixels, with only
# positive gradients let back through every ReLU: fine edges, but hardly
# class-specific. Guided Grad-CAM multiplies the two: the fine detail
# inside the region the CAM selects. :func:`pytorch_grad_cam.utils.image.deprocess_image`
# stretches the contrast of the gradients into a viewable image. For a batch
# of one image the guided model returns H x W x 3.
guided_model = GuidedBackpropReLUModel(model=model)
guided = guided_model(cat, targets=targets)
print("guided backpropagation:", guided.shape, guided.dtype)
guided_gradcam = deprocess_image(variants["plain"][:, :, None] * guided)

fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, picture, title in zip(axes, (show_cam_on_image(photos[0], variants["plain"], use_rgb=True),
                                     deprocess_image(guided), guided_gradcam),
                              ("Grad-CAM", "guided backpropagation", "guided Grad-CAM")):
    ax.imshow(picture)
    ax.set_title(f"{title}, class 281", fontsize=9)
    ax.axis("off")
fig.tight_layout()
cam.release()  # removes the hooks (or use ``with GradCAM(...) as cam:``)

# %%
# Any torchvision classifier
# --------------------------
# Everything above works with any classifier; only the target layer changes.
# For a ResNet it is the last bottleneck block, ``model.layer4[-1]``: the last
# layer with a spatial grid (7 x 7 at 224 px) before the global pooling. The
# ResNet-50 below is built with ``weights=None``, **random weights**, only to
# show the layer choice offline; with ``weights="DEFAULT"`` (a download) the
# same code gives real maps. The library finds this layer by itself when
# ``target_layers`` is left out.
resnet = resnet50(weights=None).eval()
with GradCAM(model=resnet, target_layers=[resnet.layer4[-1]]) as resnet_cam:
    random_maps = resnet_cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(281)] * 2)
print("ResNet-50 (random weights) maps:", random_maps.shape)
with GradCAM(model=resnet) as automatic:
    print("chosen by", automatic.target_layers_source, "; is layer4[-1]:",
          automatic.target_layers[0] is resnet.layer4[-1])
