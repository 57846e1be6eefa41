"""
Which map to trust, and models you cannot hook
==============================================

A saliency map can look convincing and still ignore the model: an edge
detector draws the outline of the object whatever the network learned
(Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018). This
tutorial trains a small CNN on synthetic shapes, where the evidence of each
class is known pixel by pixel, and

- runs two sanity checks on Grad-CAM and on an edge detector dressed up as a
  method: the model parameter randomisation test (MPRT) and the random-logit
  test; the edge detector fails both;
- explains the same network compiled to TorchScript, which no hook-based
  method can read, with RISE, which needs only forward passes;
- shows which method ``grad-cam --method recommended`` picks, from the
  ground-truth benchmark of :doc:`/quality`.

See :doc:`/metrics` for the checks' definitions and thresholds.
"""

# %%
# A CNN trained on synthetic shapes
# ---------------------------------
# ``utils.synthetic_shapes`` draws a disc, a ring or a cross on a cluttered
# background; the shape is the only evidence of the class. 150 training steps
# of the small CNN take a few seconds on a CPU.
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam import RISE, GradCAM
from pytorch_grad_cam.app.recommended_table import RECOMMENDED
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.metrics import MPRT, RandomLogitTest
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    make_shapes,
    model_input,
    train_cnn,
)

cnn, seconds = train_cnn(seed=1, steps=150)
cnn.eval()
held_out = make_shapes(8, seed=12345)
x = model_input(held_out.images)
with torch.no_grad():
    accuracy = (cnn(x).argmax(1) == held_out.labels).float().mean().item()
print(f"trained in {seconds:.1f} s; held-out accuracy {accuracy:.2f}")
targets = [ClassifierOutputTarget(int(label)) for label in held_out.labels]


# %%
# An edge detector is not an explanation
# --------------------------------------
# ``EdgeCAM`` below returns the Sobel edges of the image, whatever the model
# and the class. Its maps look plausible on these images: the shape has the
# strongest edges.
class EdgeCAM(BaseCAM):
    """The Sobel edge map of the input's grey levels (not a method)."""

    uses_gradients = False

    def forward(self, input_tensor, targets, eigen_smooth=False):
        grey = input_tensor.float().mean(dim=1, keepdim=True)
        kernel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
        edges = (F.conv2d(grey, kernel, padding=1).abs()
                 + F.conv2d(grey, kernel.transpose(2, 3), padding=1).abs())[:, 0]
        return edges / edges.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]


layer = [cnn.features[-1]]
with GradCAM(cnn, layer) as cam:
    gradcam_maps = cam(x, targets)
with EdgeCAM(cnn, layer) as cam:
    edge_maps = cam(x, targets)

# %%
# MPRT re-initialises the model's layers, from the output down, and compares
# each map with the map of the trained model (Spearman rank correlation); the
# random-logit test compares the map of the true class with the map of a
# random other class (SSIM). Both work on a copy of the model: ``cnn`` itself
# is not changed. A method passes when the similarity falls below the
# threshold: its map depends on the weights and on the class.
for name, method in (("Grad-CAM", GradCAM), ("edges", EdgeCAM)):
    for check in (MPRT(), RandomLogitTest()):
        result = check(x, targets, cnn, method, layer)
        print(f"{name:8} {result.test:12} {result.measure}: {result.value:.3f} "
              f"(pass below {result.threshold}) -> {result.verdict}")

# %%
# Models you cannot hook: RISE
# ----------------------------
# TorchScript runs the network in its own interpreter, where Python hooks do
# not fire, so Grad-CAM refuses it and says what to use instead:
scripted = torch.jit.script(cnn)
try:
    GradCAM(scripted, target_layers=[])
except TypeError as error:
    print(textwrap.fill(str(error), 100))

# %%
# RISE (Petsiuk et al., BMVC 2018) scores randomly masked copies of the image
# and averages the masks, weighted by the score: forward passes only. Here
# 500 masks per image, seeded.
with RISE(scripted, num_masks=500, batch_size=250, seed=0, progress=False) as rise:
    rise_maps = rise(x[:4], targets[:4])

fig, axes = plt.subplots(4, 4, figsize=(8, 8))
for row in range(4):
    for col, (title, picture) in enumerate((
            (CLASSES[int(held_out.labels[row])], held_out.images[row].permute(1, 2, 0)),
            ("Grad-CAM", gradcam_maps[row]), ("edges", edge_maps[row]),
            ("RISE (TorchScript)", rise_maps[row]))):
        axes[row, col].imshow(np.asarray(picture), cmap=None if col == 0 else "jet")
        axes[row, col].set_title(title if row == 0 or col == 0 else "", fontsize=9)
        axes[row, col].axis("off")
plt.tight_layout()
plt.show()

# %%
# The method the benchmark recommends
# -----------------------------------
# ``bench/quality_benchmark.py`` scores every registered method on such
# models (3 seeds, held-out images, confidence intervals) and records, per
# model family, the best method among those that pass both sanity checks.
# ``grad-cam --method recommended`` reads this table:
for family, choice in RECOMMENDED.items():
    print(f"{family}: {choice['method']} ({choice['reason']})")
