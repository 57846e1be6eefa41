"""
Choosing a method
=================

The library has more than twenty CAM methods. They all answer the same
question (*which pixels made the model give this score?*) but in different
ways: some read the gradients of the score, some perturb the input or the
layer and watch the score fall, some ignore the class altogether. This
tutorial runs the main ones side by side on the bundled pretrained
EfficientNet-Lite0 and the photo of a tabby cat, shows what differs between
them (class-specific or not, cost in forward passes, sharpness) and how to
judge them with metrics rather than by eye. The reference is
:doc:`/methods`; the metrics are described in :doc:`/metrics`.
"""

# %%
# The methods, by kind
# --------------------
# Every method is registered with its command-line name and its traits
# (:mod:`pytorch_grad_cam.registry`). :func:`pytorch_grad_cam.registry.get_method`
# returns a :class:`pytorch_grad_cam.registry.MethodInfo`, so the methods
# can be sorted by what they need without reading their code:
#
# - *gradient* methods use one backward pass of the target's score;
# - *class-agnostic* methods give the same map whatever the target;
# - *perturbation* methods run many forward passes, about one per channel
#   of the target layer;
# - *attention* methods read a Vision Transformer's attention and do not
#   apply to a CNN (see :doc:`/vit`).
import time

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, RandomCAM, ScoreCAM
from pytorch_grad_cam.metrics.evaluate import evaluate_cam_methods, format_table
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.registry import get_method, method_names
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

kinds: dict[str, list[str]] = {"attention (ViT only)": [], "perturbation": [],
                               "class-agnostic": [], "gradient": [], "other": []}
for name in method_names():
    info = get_method(name)
    if info.attention:
        kinds["attention (ViT only)"].append(name)
    elif info.perturbation:
        kinds["perturbation"].append(name)
    elif not info.class_specific:
        kinds["class-agnostic"].append(name)
    elif info.uses_gradients:
        kinds["gradient"].append(name)
    else:
        kinds["other"].append(name)
for kind, names in kinds.items():
    print(f"{kind:>21}: {', '.join(names)}")

# %%
# The model, the photo and the target
# -----------------------------------
# The same set-up as in the first tutorial: class 281 ("tabby cat") of the
# pretrained EfficientNet-Lite0, explained at its last convolutional layer
# ``model.head_activation`` (1280 channels on a 7 x 7 grid).
model = load_efficientnet_lite0()
rgb = cv2.resize(data.chelsea(), (224, 224)).astype(np.float32) / 255
input_tensor = preprocess_image(rgb, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
layer = [model.head_activation]
cat = [ClassifierOutputTarget(281)]
with torch.no_grad():
    print("top class:", int(model(input_tensor).argmax()))


def show_row(maps: dict[str, np.ndarray], title_size: int = 9) -> None:
    """One overlay per map, titled with its name."""
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9))
    for ax, (title, grayscale) in zip(np.atleast_1d(axes), maps.items()):
        ax.imshow(show_cam_on_image(rgb, grayscale, use_rgb=True))
        ax.set_title(title, fontsize=title_size)
        ax.axis("off")
    fig.tight_layout()


def peak(grayscale: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's maximum."""
    y, x = np.unravel_index(grayscale.argmax(), grayscale.shape)
    return int(x), int(y)


# %%
# Gradient methods: one backward pass
# -----------------------------------
# The gradient methods cost one forward and one backward pass, whatever the
# layer. They differ in how they turn the gradients into weights:
# Grad-CAM averages them per channel; Grad-CAM++ weighs the positive ones
# with higher-order terms; HiResCAM multiplies gradient and activation
# position by position, so its map follows the layer's grid exactly;
# LayerCAM keeps only positive gradients, position by position (it is the
# one to try on earlier, finer layers). On the last layer of a good
# classifier they mostly agree.
maps: dict[str, np.ndarray] = {}
seconds: dict[str, float] = {}
for name in ("gradcam", "gradcam++", "hirescam", "layercam"):
    start = time.perf_counter()
    with get_method(name).cls(model=model, target_layers=layer) as cam:
        maps[name] = cam(input_tensor=input_tensor, targets=cat)[0]
    seconds[name] = time.perf_counter() - start
    print(f"{name:>10}: peak at {peak(maps[name])}, {seconds[name]:.2f} s")
show_row(maps)

# %%
# Class-specific or not: EigenCAM
# -------------------------------
# EigenCAM takes the first principal component of the layer's activations:
# no gradients, no target. It shows what the layer sees most strongly,
# which is often the main object, but it cannot tell two classes apart.
# Below, Grad-CAM for "tabby cat" (281) and for "espresso" (967, not in the
# photo) give different maps; EigenCAM gives one map for both.
espresso = [ClassifierOutputTarget(967)]
with GradCAM(model=model, target_layers=layer) as cam:
    grad_espresso = cam(input_tensor=input_tensor, targets=espresso)[0]
with EigenCAM(model=model, target_layers=layer) as cam:
    eigen_cat = cam(input_tensor=input_tensor, targets=cat)[0]
    eigen_espresso = cam(input_tensor=input_tensor, targets=espresso)[0]
maps["eigencam"] = eigen_cat
print("EigenCAM identical for 281 and 967:", np.array_equal(eigen_cat, eigen_espresso))
print("Grad-CAM 281 vs 967, correlation:",
      round(float(np.corrcoef(maps["gradcam"].ravel(), grad_espresso.ravel())[0, 1]), 3))
show_row({"Grad-CAM, 281 tabby": maps["gradcam"], "Grad-CAM, 967 espresso": grad_espresso,
          "EigenCAM, 281": eigen_cat, "EigenCAM, 967": eigen_espresso})

# %%
# Perturbation methods: many forward passes
# ------------------------------------------
# AblationCAM zeroes one channel at a time and weighs it by how much the
# score drops; ScoreCAM masks the *input* with each upsampled channel and
# weighs it by the score of the masked image. They need no gradients, so
# they also explain models whose gradients are saturated or noisy, but they
# cost about one forward pass per channel: 1280 here.
#
# - AblationCAM runs the layers before the target once and only the rest of
#   the network on the ablated copies (``cam.ablation_mode`` says so). After
#   this model's last convolution that rest is a pooling and one linear
#   layer, so all 1280 ablations take well under a second.
#   ``ratio_channels_to_ablate`` (0.05: the 5 % of channels with the largest
#   mean activation) cuts the cost where the rest is a deep network.
# - ScoreCAM runs the *whole* model on each of the 1280 masked images: the
#   most expensive call on this page (tens of seconds on a CPU core; a GPU
#   takes a few seconds).
#
# ``batch_size`` sets how many perturbed copies run per forward pass (memory
# against speed) and ``progress=False`` turns the progress bar off.

start = time.perf_counter()
with AblationCAM(model=model, target_layers=layer, batch_size=64, progress=False) as cam:
    maps["ablationcam"] = cam(input_tensor=input_tensor, targets=cat)[0]
    print("AblationCAM ran in mode", repr(cam.ablation_mode))
seconds["ablationcam"] = time.perf_counter() - start
start = time.perf_counter()
with ScoreCAM(model=model, target_layers=layer, batch_size=64, progress=False) as cam:
    maps["scorecam"] = cam(input_tensor=input_tensor, targets=cat)[0]
seconds["scorecam"] = time.perf_counter() - start
for name in ("ablationcam", "scorecam"):
    print(f"{name:>11}: peak at {peak(maps[name])}, {seconds[name]:.2f} s")
show_row({"Grad-CAM": maps["gradcam"], "EigenCAM": maps["eigencam"],
          "AblationCAM": maps["ablationcam"], "ScoreCAM": maps["scorecam"]})

# %%
# Sharpness
# ---------
# A sharp map puts its weight on few pixels; one simple measure is the share
# of the image where the map is above half its maximum. At the 7 x 7 head
# layer every method is as coarse as the grid and the shares are close. The
# methods part ways on earlier, finer layers: on ``net._blocks[10]`` (14 x 14)
# Grad-CAM picks out the cat's eyes, while LayerCAM, which weighs each
# position by its own positive gradient, spreads weak weight over face and
# background and peaks at the top edge. A finer layer gives a sharper map,
# not necessarily a better one: check it with a metric.
for name, grayscale in maps.items():
    print(f"{name:>11}: {float((grayscale > 0.5).mean()):.2f} of the image above 0.5")
finer = {}
for name in ("gradcam", "layercam"):
    with get_method(name).cls(model=model, target_layers=["net._blocks[10]"]) as cam:
        finer[f"{name}, net._blocks[10]"] = cam(input_tensor=input_tensor, targets=cat)[0]
for name, grayscale in finer.items():
    print(f"{name}: {float((grayscale > 0.5).mean()):.2f} of the image above 0.5, peak at {peak(grayscale)}")
show_row(finer)

# %%
# Judging methods with metrics
# ----------------------------
# Looking at maps is not evidence. The metrics of :mod:`pytorch_grad_cam.metrics`
# perturb the image *according to the map* and watch the model's score:
# ``DropInConfidence`` (lower is better) multiplies the image by the map and
# measures the relative drop of the class probability;
# ``ROADCombined`` (higher is better) removes the most and the least relevant
# pixels with a noisy imputation and compares the two. Include a
# :class:`pytorch_grad_cam.random_cam.RandomCAM` row: a method that does not
# beat random channel weights on a metric is not telling you anything there.
#
# :func:`pytorch_grad_cam.metrics.evaluate.evaluate_cam_methods` computes each
# method's maps and every metric; one ROAD percentile keeps it fast on a CPU.
# Read the table with care: on this photo ``DropInConfidence`` is 0 for
# every row (keeping only the map's region never lowers the cat's
# probability), so it cannot tell the methods apart here; ROAD can, and
# RandomCAM is the only method below zero. ``Complexity`` is lowest for
# RandomCAM: a simple map is not a faithful one, so never read one metric
# alone.
rows = evaluate_cam_methods(model, layer, input_tensor, cat,
                            methods=["gradcam", "gradcam++", EigenCAM, RandomCAM],
                            metrics=["DropInConfidence", "ROADCombined", "Complexity"],
                            road_percentiles=(50,))
print(format_table(rows))

# %%
# The metric classes also score maps you already have, such as the two
# perturbation maps above (the papers score probabilities, hence
# :class:`pytorch_grad_cam.utils.model_targets.ClassifierOutputSoftmaxTarget`):
road = ROADCombined(percentiles=[50])
probability = [ClassifierOutputSoftmaxTarget(281)]
for name in ("ablationcam", "scorecam"):
    value = road(input_tensor, maps[name][None], probability, model)[0]
    print(f"{name:>11}: ROADCombined {float(value):+.3f}")

# %%
# When to use which
# -----------------
# ======================  ==============================  ===================================
# method                  cost                            use it when
# ======================  ==============================  ===================================
# Grad-CAM                1 forward + 1 backward          the default for CNNs; fast, class-specific
# Grad-CAM++, XGradCAM    1 forward + 1 backward          several instances of the class
# HiResCAM, LayerCAM      1 forward + 1 backward          you need the map faithful to the grid,
#                                                         or an earlier, finer layer
# EigenCAM                1 forward                       no target (detection), or gradients
#                                                         are unavailable; not class-specific
# AblationCAM             1 + ~1 pass per channel         gradients are unreliable; budget the
#                         (only after the layer)          channels on a CPU
# ScoreCAM                1 + 1 full pass per channel     gradient-free and faithful, on a GPU
#                                                         or with few channels
# ======================  ==============================  ===================================
#
# Whatever you choose, check it with a metric on your own images and keep
# a :class:`pytorch_grad_cam.random_cam.RandomCAM` baseline. The command
# line does the same comparison with ``grad-cam --evaluate`` (:doc:`/cli`).
