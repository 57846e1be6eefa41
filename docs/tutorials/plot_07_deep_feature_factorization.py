"""
Deep Feature Factorizations
===========================

A CAM explains one score. Deep Feature Factorization (Collins et al. 2018)
asks a different question: *which concepts does the layer see in the
image, and where?* It factorises the layer's activations with non-negative
matrix factorisation (NMF) into a few concepts, each a C-dimensional
embedding with a heat map over the image. Passing each concept's embedding
through the model's classifier head names it by the classes it scores
highest. This tutorial runs it on the bundled pretrained EfficientNet-Lite0
(see :doc:`/methods`).
"""

# %%
# The model, the photos and the head
# ----------------------------------
# :class:`pytorch_grad_cam.feature_factorization.deep_feature_factorization.DeepFeatureFactorization`
# needs the model, one target layer and, to name the concepts, the function
# that maps a pooled C-dimensional embedding to class scores
# (``computation_on_concepts``). In EfficientNet-Lite0 the head after the
# last layer ``model.head_activation`` (1280 channels) is global average
# pooling, dropout (inactive in eval mode) and the linear classifier
# ``model.net._fc``: a concept's embedding is exactly what that linear layer
# reads. The ImageNet class names come with the package
# (``pytorch_grad_cam.app.classes.IMAGENET_CLASSES``).
import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from pytorch_grad_cam import DeepFeatureFactorization
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    non_negative_matrix_factorization,
    run_dff_on_image,
)
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

model = load_efficientnet_lite0()
head = model.net._fc
print("head:", head)
photos = [cv2.resize(photo, (224, 224)).astype(np.float32) / 255
          for photo in (data.chelsea(), data.coffee())]
input_tensor = torch.cat([preprocess_image(photo, mean=[0.485, 0.456, 0.406],
                                           std=[0.229, 0.224, 0.225]) for photo in photos])

# %%
# Concepts and their maps
# -----------------------
# One call factorises the activations of the whole batch together, so the
# concepts are shared by the images: a concept "cat fur" has one embedding,
# and a map on each image (zero where the image does not show it). It
# returns the concepts' embeddings (C x n_components), their maps (B x
# n_components x H x W, at the input's size) and, with
# ``computation_on_concepts``, the head's scores of every concept
# (n_components x classes).
dff = DeepFeatureFactorization(model=model, target_layer=model.head_activation,
                               computation_on_concepts=head)
concepts, maps, scores = dff(input_tensor, n_components=4)
print("embeddings", concepts.shape, "maps", maps.shape, "scores", scores.shape)


def concept_names(scores: np.ndarray, top_k: int = 2) -> list[str]:
    """Each concept's top classes with their softmax probabilities."""
    probabilities = torch.from_numpy(scores).softmax(dim=1)
    top = probabilities.topk(top_k, dim=1)
    return [", ".join(f"{IMAGENET_CLASSES[int(i)]} {float(p):.2f}" for p, i in zip(ps, idx))
            for ps, idx in zip(top.values, top.indices)]


names = concept_names(scores)
for k, name in enumerate(names):
    print(f"concept {k}: {name}; share of each image's map: "
          f"{[round(float(maps[b, k].sum() / maps[b].sum()), 2) for b in range(len(photos))]}")

fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 5.6))
for b, photo in enumerate(photos):
    for k, name in enumerate(names):
        heat = maps[b, k] / max(float(maps[:, k].max()), 1e-8)  # one scale per concept
        axes[b, k].imshow(show_cam_on_image(photo, heat, use_rgb=True))
        axes[b, k].set_title(f"concept {k}\n{name}", fontsize=7)
        axes[b, k].axis("off")
fig.tight_layout()

# %%
# The picture of one image: ``run_dff_on_image``
# ----------------------------------------------
# :func:`pytorch_grad_cam.feature_factorization.deep_feature_factorization.run_dff_on_image`
# draws the same for one image: each pixel coloured by its strongest concept
# (its brightness by the concept's strength), with a legend of each
# concept's top classes. The concepts are factorised on this image alone.
for photo, tensor in zip(photos, input_tensor):
    picture = run_dff_on_image(model, model.head_activation, head, photo, tensor,
                               n_components=4, top_k=2, labels=IMAGENET_CLASSES)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.imshow(picture)
    ax.axis("off")
    fig.tight_layout()

# %%
# What ``n_components`` changes
# -----------------------------
# ``n_components`` is how many concepts NMF may use. The cat photo shows
# little but the cat, so every concept is a part of it and the head names
# nearly all of them "Egyptian cat": two concepts split the head into upper
# and lower halves, four into forehead, eyes, muzzle and chest, eight into
# smaller fragments that no longer mean more. Choose about as many
# components as there are things you expect in the images; a concept whose
# top classes have low probabilities (like "spotlight, cup" in the batch
# above) is a mixture, often of background. The relative error of the factorisation
# (:func:`pytorch_grad_cam.feature_factorization.deep_feature_factorization.non_negative_matrix_factorization`
# of the cat photo's 1280 x 49 activations) falls as concepts are added; the
# pictures and each concept's top class show where the split stops being
# useful.
matrix = dff.activations(input_tensor[:1])[0].flatten(1)  # 1280 channels x 7 * 7 positions
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, n in zip(axes, (2, 4, 8)):
    error = non_negative_matrix_factorization(matrix, n).errors[-1] / torch.linalg.norm(matrix)
    with DeepFeatureFactorization(model, model.head_activation, computation_on_concepts=head) as one:
        _, chelsea_maps, chelsea_scores = one(input_tensor[:1], n_components=n)
    print(f"n_components={n}: relative reconstruction error {float(error):.2f}; concepts: "
          + " | ".join(concept_names(chelsea_scores, top_k=1)))
    ax.imshow(photos[0])
    ax.imshow(chelsea_maps[0].argmax(axis=0), cmap="tab10", vmin=0, vmax=9, alpha=0.55)
    ax.set_title(f"n_components={n}: strongest concept per pixel", fontsize=8)
    ax.axis("off")
fig.tight_layout()
