"""
Explaining a dataset: the runner and its results store
======================================================

One map at a time is fine for a photo; for a folder of thousands you want
the images read in the background, every map kept, the run resumable after
a crash, the metrics averaged over the dataset and a report to look at.
:func:`pytorch_grad_cam.datasets.runner.explain_dataset` does all of that
and writes a **results store**: a folder of shards that
:func:`pytorch_grad_cam.datasets.results.load_results` reads as a pandas
table and :func:`pytorch_grad_cam.datasets.results.open_results` opens for
the maps. :doc:`/datasets` documents every option; this tutorial runs it
on a small folder with the bundled pretrained EfficientNet-Lite0.
"""

# %%
# A small folder of photos
# ------------------------
# The script writes five photos of ``skimage.data`` into a temporary folder,
# shrunk to 160 pixels wide so that decoding is cheap (the runner resizes
# every image to the model's 224 x 224 anyway). Subfolders are fine: an
# image's id in the store is its path relative to the folder.
import shutil
import tempfile
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
from skimage import data

from pytorch_grad_cam.app.classes import IMAGENET_CLASSES
from pytorch_grad_cam.datasets import explain_dataset, load_results, open_results
from pytorch_grad_cam.datasets.cost import run_cost
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

work = Path(tempfile.mkdtemp(prefix="grad-cam-tutorial-"))
photos = work / "photos"
(photos / "animals").mkdir(parents=True)
(photos / "things").mkdir()
(photos / "people").mkdir()
for name, image in [("animals/chelsea", data.chelsea()), ("people/astronaut", data.astronaut()),
                    ("things/coffee", data.coffee()), ("things/rocket", data.rocket()),
                    ("things/hubble", data.hubble_deep_field())]:
    height, width = image.shape[:2]
    small = cv2.resize(image, (160, round(160 * height / width)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(photos / f"{name}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
print(sorted(str(p.relative_to(photos)) for p in photos.rglob("*.png")))

# %%
# One call: two methods, a metric, a report
# -----------------------------------------
# Each image is explained for its top class with Grad-CAM and Grad-CAM++ (one
# forward and one backward pass per batch each) and every map is scored with
# ``DropInConfidence`` (one more forward pass; the relative drop, lower is
# better: see :doc:`/metrics`). The layer comes from the library's table of
# model families (``head_activation`` for this model). ``workers=0`` decodes
# in the main process, which is quickest for five small files; on a real
# dataset keep the default and let DataLoader workers decode in parallel.
# Before the first image, ``on_start`` receives what the run will do;
# :func:`pytorch_grad_cam.datasets.cost.run_cost` turns it into the lines
# the command line prints.
model = load_efficientnet_lite0()
out = work / "results"
summary = explain_dataset(photos, model, ["gradcam", "gradcam++"], out=out,
                          metrics=["DropInConfidence"], report=True, workers=0,
                          progress=False,
                          on_start=lambda start: print(run_cost(start)))
print(summary)

# %%
# The table: one row per image and method
# ---------------------------------------
# ``load_results`` returns a pandas DataFrame: the image's id, the
# explained class and its probability, the top-5 predictions, the status
# (every bad image gets a row with the reason instead of stopping the run)
# and one column per metric.
frame = load_results(out)
frame["class"] = [IMAGENET_CLASSES[c][:18] for c in frame.target]
print(frame[["id", "method", "status", "target", "class", "prob", "DropInConfidence"]]
      .to_string(index=False, float_format="%.3f"))
print(frame.groupby("method")["DropInConfidence"].mean().round(3))

# %%
# The maps: stored small, read at any size
# ----------------------------------------
# The store keeps each map at the target layer's resolution (7 x 7 here,
# float16: 98 bytes an image); ``Results.map(row, size=...)`` returns it
# bilinearly enlarged to any size, for example the photo's own. The photos
# below are read back from the folder; the maps come from the store alone.
results = open_results(out)
print("complete:", results.complete, "| stored map shape:", results.map(0).shape)
ids = sorted(set(frame.id))
fig, axes = plt.subplots(2, len(ids), figsize=(2.6 * len(ids), 5.4))
for column, image_id in enumerate(ids):
    rgb = cv2.cvtColor(cv2.imread(str(photos / image_id)), cv2.COLOR_BGR2RGB) / 255.0
    for row, method in enumerate(["gradcam", "gradcam++"]):
        index = results.find(image_id, method)
        grayscale = results.map(index, size=rgb.shape[:2])
        ax = axes[row, column]
        ax.imshow(show_cam_on_image(rgb.astype("float32"), grayscale, use_rgb=True))
        ax.set_title(f"{method}: {image_id.split('/')[-1]}\n{frame['class'][index]}", fontsize=8)
        ax.axis("off")
fig.tight_layout()

# %%
# ``report=True`` wrote a static HTML page next to the store, with the
# summary, the metric per method (a table and plots) and a gallery of the
# most and least confident explanations. Open it in a browser.
print(sorted(p.name for p in out.iterdir()))

# %%
# Resuming: a second run skips what is done
# -----------------------------------------
# Running the same call on the same store explains only what is missing, so
# a run killed halfway continues where it stopped. Add a photo and run
# again: only the new one is explained. A run with another configuration
# (another method, layer or metric) on the same folder is refused, naming
# what differs; ``overwrite=True`` starts afresh.
small = cv2.resize(data.astronaut()[:256, 128:384], (160, 160), interpolation=cv2.INTER_AREA)
cv2.imwrite(str(photos / "people" / "astronaut_face.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
again = explain_dataset(photos, model, ["gradcam", "gradcam++"], out=out,
                        metrics=["DropInConfidence"], report=True, workers=0, progress=False)
print(again)
print("rows in the store:", len(load_results(out)))

# %%
# The same from the command line, and on several processes
# --------------------------------------------------------
# The command line runs the same code (see :doc:`/cli`); ``--model
# efficientnet_lite0`` is the bundled pretrained model:
#
# .. code-block:: bash
#
#    grad-cam explain-dataset photos/ --model efficientnet_lite0 \
#        --method gradcam gradcam++ --metrics DropInConfidence --out results/ --report
#
# Under ``torchrun`` each process explains its share of the images and
# writes its own shards; rank 0 writes the index and the report:
#
# .. code-block:: bash
#
#    # 8 GPUs on one machine
#    torchrun --nproc_per_node=8 -m pytorch_grad_cam.datasets.cli photos/ --out results/ \
#        --model efficientnet_lite0 --method gradcam gradcam++
#    # 2 CPU processes
#    torchrun --standalone --nproc_per_node=2 -m pytorch_grad_cam.datasets.cli photos/ \
#        --out results/ --model efficientnet_lite0
#
# The temporary folder of this tutorial is removed at the end.
shutil.rmtree(work)
