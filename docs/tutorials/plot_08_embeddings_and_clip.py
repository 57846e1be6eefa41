"""
CLIP and embeddings: which pixels match a concept
=================================================

A classifier's map explains a class score. An embedding model has no
classes: it turns an image into a vector, and what you ask of it is *how
similar is this image to that concept?* -- another image, a region of one,
or (for CLIP) a sentence. The target
:class:`pytorch_grad_cam.utils.model_targets.SimilarityToConceptTarget`
scores the cosine similarity between the model's output embedding and a
concept vector, and the map shows which pixels raise it.

This tutorial first turns the bundled pretrained EfficientNet-Lite0 into an
embedding model (its 1280 pooled features), takes the embedding of the cat
in one photo as the concept, and finds the cat in another picture. Then it
runs the same mechanics on a CLIP model with a text prompt as the concept.
"""

# %%
# An embedding model from a classifier
# ------------------------------------
# The pooled features that feed EfficientNet-Lite0's last linear layer are a
# good general-purpose image embedding. Replacing that layer
# (``model.net._fc``) with ``torch.nn.Identity`` in a copy of the model
# makes the model's output the 1280-dimensional embedding itself. The rest of
# the network, and so the layer to explain (``head_activation``, 7 x 7), is
# unchanged.
import copy

import cv2
import matplotlib.pyplot as plt
import numpy as np
import open_clip
import torch
from skimage import data

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import SimilarityToConceptTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

classifier = load_efficientnet_lite0()
embedder = copy.deepcopy(classifier)
embedder.net._fc = torch.nn.Identity()


def to_input(rgb):
    """A float RGB image in [0, 1] -> the model's 1 x 3 x 224 x 224 input."""
    return preprocess_image(cv2.resize(rgb, (224, 224)), mean=MEAN, std=STD)


def embed(rgb):
    with torch.no_grad():
        return embedder(to_input(rgb))[0]


chelsea = data.chelsea().astype(np.float32) / 255   # 300 x 451, a tabby cat
coffee = data.coffee().astype(np.float32) / 255     # 400 x 600, a cup of espresso
print("embedding of the whole photo:", tuple(embed(chelsea).shape))

# %%
# A concept from a region of one photo
# ------------------------------------
# The concept is the embedding of a crop: the cat's face in ``chelsea``
# (rows 20-300, columns 90-370) for one, the cup in ``coffee`` for the
# other. Two unrelated concepts have a low cosine similarity. Any vector of
# the embedding's size works: the mean embedding of several photos of a
# thing is a more robust concept than one.
cat_crop = chelsea[20:300, 90:370]
cup_crop = coffee[40:330, 60:470]
cat_concept, cup_concept = embed(cat_crop), embed(cup_crop)
print(f"cosine similarity of the two concepts: "
      f"{float(torch.cosine_similarity(cat_concept, cup_concept, dim=0)):.3f}")

# %%
# Find the concept in another picture
# -----------------------------------
# The picture to explain puts the cat (mirrored, so not the pixels of the
# crop) and the cup side by side in one 224 x 224 image. For each concept,
# the target is the cosine similarity between this picture's embedding and
# the concept; Grad-CAM weighs the head's 7 x 7 activations by its gradient.
# ``GradCAM(model=embedder)`` finds the layer itself, as for the classifier
# (see :doc:`/target_layers`).
left = cv2.resize(chelsea[:, ::-1].copy(), (112, 224))
right = cv2.resize(coffee[:, 60:540], (112, 224))
scene = np.concatenate([left, right], axis=1)
scene_input = preprocess_image(scene, mean=MEAN, std=STD)

names = {module: name for name, module in embedder.named_modules()}
with GradCAM(model=embedder) as cam:
    print("layer chosen by", cam.target_layers_source, "->", names[cam.target_layers[0]])
    maps = {name: cam(scene_input, targets=[SimilarityToConceptTarget(concept)])[0]
            for name, concept in [("cat", cat_concept), ("cup", cup_concept)]}

with torch.no_grad():
    scene_embedding = embedder(scene_input)[0]
for name, concept in [("cat", cat_concept), ("cup", cup_concept)]:
    similarity = float(torch.cosine_similarity(scene_embedding, concept, dim=0))
    grayscale = maps[name]
    share_left = grayscale[:, :112].sum() / grayscale.sum()
    print(f"concept {name}: similarity {similarity:.3f}, "
          f"share of the map on the cat's half {share_left:.2f}")

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
axes[0].imshow(cat_crop)
axes[0].set_title("concept 1: the cat crop")
axes[1].imshow(cup_crop)
axes[1].set_title("concept 2: the cup crop")
axes[2].imshow(show_cam_on_image(scene, maps["cat"], use_rgb=True))
axes[2].set_title("similarity to concept 1")
axes[3].imshow(show_cam_on_image(scene, maps["cup"], use_rgb=True))
axes[3].set_title("similarity to concept 2")
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %%
# The map of the cat concept lies on the cat (almost all of its mass on the
# left half, as printed above), and the map of the cup concept on the cup:
# each map shows the pixels that make the picture resemble the
# concept. As with classes, a map says nothing about pixels that *lower* the
# similarity (Grad-CAM keeps the positive evidence only).
#
# CLIP: a text prompt as the concept
# ----------------------------------
# CLIP embeds images and sentences into one space, so the concept can be the
# embedding of a prompt such as "a photo of a cat". The image encoder is
# wrapped so that the model takes the image alone and returns its normalised
# embedding; the prompts are embedded once, outside the CAM. This is the
# recipe of :doc:`/recipes`.
#
# .. note::
#    The CLIP model below is built from open_clip's ``ViT-B-32`` config with
#    **random weights** (``pretrained=None``): there is no network here to
#    download the trained ones. The shapes, the layer the library finds and
#    the token reshape are real; the maps mean nothing. With
#    ``pretrained="openai"`` the same code explains the trained model.
torch.manual_seed(0)
clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
tokenizer = open_clip.get_tokenizer("ViT-B-32")
prompts = ["a photo of a cat", "a cup of coffee"]
with torch.no_grad():
    text = clip.encode_text(tokenizer(prompts), normalize=True)
print("text embeddings:", tuple(text.shape))


class ImageEmbedding(torch.nn.Module):
    """CLIP's image encoder as a model: image in, normalised embedding out."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        return self.clip.encode_image(x, normalize=True)


# %%
# The library recognises CLIP's vision transformer: it picks the first layer
# norm of the last residual block and the reshape of its 7 x 7 patch tokens
# (plus the class token) into a grid, as for any ViT (see :doc:`/vit`).
# CLIP has its own normalisation constants (``open_clip.OPENAI_DATASET_MEAN``
# and ``..._STD``).
clip_input = preprocess_image(scene, mean=open_clip.OPENAI_DATASET_MEAN,
                              std=open_clip.OPENAI_DATASET_STD)
clip_model = ImageEmbedding(clip)
names = {module: name for name, module in clip_model.named_modules()}
with GradCAM(model=clip_model) as cam:
    print("layer chosen by", cam.target_layers_source, "->", names[cam.target_layers[0]])
    clip_maps = [cam(clip_input, targets=[SimilarityToConceptTarget(t)])[0] for t in text]
print("map shape:", clip_maps[0].shape)

fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.6))
for ax, prompt, grayscale in zip(axes, prompts, clip_maps):
    ax.imshow(show_cam_on_image(scene, grayscale, use_rgb=True))
    ax.set_title(f'"{prompt}"\n(random weights: mechanics only)', fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %%
# With random weights the two maps are blotches at the 7 x 7 patch grid: the
# mechanics work (a map per prompt, at the input's size), the content does
# not. What to watch out for with trained CLIP weights:
#
# * normalise both embeddings (``normalize=True``) or rely on the target's
#   cosine similarity, which does it for you;
# * prompts do not compete: the map of one prompt shows what raises its
#   similarity, not what separates it from another prompt (compare the maps
#   of both, as above);
# * the class token's row is dropped by the reshape, so the map covers the
#   patch tokens only.
