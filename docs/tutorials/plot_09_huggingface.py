"""
Hugging Face models: outputs, layers and token reshapes
=======================================================

``transformers`` image classifiers differ from torchvision's in two ways
that matter for a CAM: they return a ``ModelOutput`` object rather than a
tensor, and their Vision Transformers' layers output tokens rather than
maps. The library handles both: it scores the output's ``logits``, and its
table of model families knows the layers of ``ViTForImageClassification``,
``ConvNextForImageClassification``, ``SwinForImageClassification``,
``ResNetForImageClassification`` and more, with the reshape of their tokens
(see :doc:`/target_layers` and :doc:`/vit`).

.. note::
   The models below are built from small configs with **random weights**:
   there is no network here to download trained ones. The output types,
   layers, shapes and reshapes are real; the maps mean nothing. With
   ``ViTForImageClassification.from_pretrained("google/vit-base-patch16-224")``
   (or a ConvNeXt, Swin, ... checkpoint) the same code explains a trained
   model.
"""

# %%
# Two classifiers from configs
# ----------------------------
# A two-layer ViT with 16 x 16 patches (196 patch tokens and a class token at
# 224 x 224) and a two-stage ConvNeXt. Their output is an
# ``ImageClassifierOutput``-like object whose ``logits`` hold the scores.
import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data
from transformers import ConvNextConfig, ConvNextForImageClassification, ViTConfig, ViTForImageClassification

from pytorch_grad_cam import DeepFeatureFactorization, GradCAM
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

torch.manual_seed(0)
labels = {0: "cat", 1: "coffee", 2: "rocket"}
vit = ViTForImageClassification(ViTConfig(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
    id2label=labels, label2id={v: k for k, v in labels.items()})).eval()
convnext = ConvNextForImageClassification(ConvNextConfig(
    hidden_sizes=[16, 32], depths=[1, 1], num_stages=2,
    id2label=labels, label2id={v: k for k, v in labels.items()})).eval()

rgb = cv2.resize(data.chelsea(), (224, 224)).astype(np.float32) / 255
input_tensor = preprocess_image(rgb, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
with torch.no_grad():
    output = vit(input_tensor)
print(type(output).__name__, "logits:", tuple(output.logits.shape))

# %%
# Automatic layer choice
# ----------------------
# Given no ``target_layers``, the CAM looks the model up in its table:
# ``cam.target_layers_source`` is ``"table"``, ``cam.target_layers`` the
# modules and ``cam.reshape_transform`` what turns the ViT's B x 197 x 64
# tokens into a B x 64 x 14 x 14 map (the class token dropped). The
# ConvNeXt's last stage already outputs a map, so it needs none. The targets
# score ``logits``: ``ClassifierOutputTarget(0)`` is the "cat" logit.


def layer_name(model, layer):
    return next(name for name, module in model.named_modules() if module is layer)


automatic = {}
for name, model in [("ViT", vit), ("ConvNeXt", convnext)]:
    with GradCAM(model=model) as cam:
        print(f"{name}: {cam.target_layers_source} -> "
              f"{[layer_name(model, layer) for layer in cam.target_layers]}, reshape "
              f"{getattr(cam.reshape_transform, '__name__', cam.reshape_transform)}")
        automatic[name] = cam(input_tensor, targets=[ClassifierOutputTarget(0)])[0]

# %%
# Naming the layers yourself
# --------------------------
# Any module can be the target layer, given as the module or as a path
# string; for a token layer, pass the reshape. Here the ViT's *first* block
# with :func:`pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform`
# (it infers the 14 x 14 grid from the token count; give ``height`` and
# ``width`` for a non-square one), and the ConvNeXt's first stage.
# Never pick the norm *after* a ViT's last block (``vit.layernorm``): only the
# class token reaches the classifier from there, so the patch tokens get no
# gradient and the map is empty.
named = {}
with GradCAM(model=vit, target_layers=["vit.layers[0].layernorm_before"],
             reshape_transform=vit_reshape_transform) as cam:
    named["ViT"] = cam(input_tensor, targets=[ClassifierOutputTarget(0)])[0]
with GradCAM(model=convnext, target_layers=[convnext.convnext.encoder.stages[0]]) as cam:
    named["ConvNeXt"] = cam(input_tensor, targets=[ClassifierOutputTarget(0)])[0]

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
panels = [("ViT, automatic: last block", automatic["ViT"]),
          ("ViT, named: first block", named["ViT"]),
          ("ConvNeXt, automatic: last stage", automatic["ConvNeXt"]),
          ("ConvNeXt, named: first stage", named["ConvNeXt"])]
for ax, (title, grayscale) in zip(axes, panels):
    ax.imshow(show_cam_on_image(rgb, grayscale, use_rgb=True))
    ax.set_title(title + "\n(random weights)", fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# The maps' grain shows the layer's grid: 14 x 14 patches for the ViT (in
# both blocks), 28 x 28 and 56 x 56 cells for this two-stage ConvNeXt's last
# and first stage (a four-stage ConvNeXt ends at 7 x 7).
#
# Wrapping the output yourself
# ----------------------------
# Code written for grad-cam 1.5.7 wraps a Hugging Face model so that it
# returns the logits tensor. That still works, and it is what you do for an
# output the library does not know (a model returning a tuple, or an output
# whose scores are not called ``logits``). The wrapper hides the family from
# the table, so the library probes the model instead, and finds the same
# layer here.


class LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


with GradCAM(model=LogitsOnly(vit)) as cam:
    wrapped = cam(input_tensor, targets=[ClassifierOutputTarget(0)])[0]
    print("wrapped ViT:", cam.target_layers_source, "->",
          layer_name(cam.model, cam.target_layers[0]))
print("same map as unwrapped:", np.allclose(wrapped, automatic["ViT"], atol=1e-5))

# %%
# Deep Feature Factorization with a reshape that runs a module
# ------------------------------------------------------------
# :class:`pytorch_grad_cam.feature_factorization.deep_feature_factorization.DeepFeatureFactorization`
# factorises a layer's activations into a few concepts and, with
# ``computation_on_concepts``, passes each concept's embedding through the
# head to name it. In a Hugging Face ConvNeXt the head is not just
# ``classifier``: the pooled features go through ``convnext.layernorm``
# first. As grad-cam 1.5.7's Hugging Face tutorial does, the reshape
# transform applies that layer norm (over the channels, so the map is
# permuted to channels-last and back) to the last stage's activations, so
# the concepts live where the classifier reads them.


def convnext_layernorm(activations):
    """B x C x H x W -> the same, after the model's final layer norm."""
    return convnext.convnext.layernorm(activations.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


with DeepFeatureFactorization(model=convnext, target_layer=convnext.convnext.encoder.stages[-1],
                              reshape_transform=convnext_layernorm,
                              computation_on_concepts=convnext.classifier) as dff:
    concepts, explanations, concept_scores = dff(input_tensor, n_components=3)
print("concepts:", concepts.shape, "explanations:", explanations.shape,
      "scores per concept:", concept_scores.shape)

fig, axes = plt.subplots(1, 3, figsize=(9, 3.8))
for index, ax in enumerate(axes):
    best = int(np.argmax(concept_scores[index]))
    ax.imshow(show_cam_on_image(rgb, explanations[0, index], use_rgb=True))
    ax.set_title(f"concept {index}: scores highest for\n{labels[best]!r} (random weights)",
                 fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# With trained weights, each concept is a part of the picture (the cat's
# fur, its face, the background) and the names come from the model's
# ``config.id2label``; ``run_dff_on_image`` of
# :mod:`pytorch_grad_cam.feature_factorization.deep_feature_factorization`
# draws them with a legend. See :doc:`/methods` for DFF itself.
