#!/usr/bin/env python
"""How the ViT methods' quality scores depend on the small ViT's training
recipe and seed: the measurements behind the ViT model of
``tests/quality/test_quality.py``, and behind what its docstring says of LeGrad and
of Grad-CAM at the last block's ``ln_1``.

    python bench/vit_quality_sweep.py [--seeds 2 3 4 5 6] [--training softmax multilabel]
                                      [--json sweep.json]

For every training recipe and seed it trains the quality test's small
torchvision ViT (``synthetic_shapes.small_vit``: 3 blocks, width 64, 4
heads, 8 x 8 patches at 48 px; 1000 steps of 64 fresh images, AdamW,
one-cycle learning rate 1e-3) and scores it on the quality test's held-out
images (64 images, seed 20 251, each shape's region dilated by 4 pixels):
the share of images whose map peaks inside the shape, for LeGrad,
gradient-weighted attention, attention rollout and Grad-CAM at every
block's ``ln_1`` (with ``vit_reshape_transform``), and per class for LeGrad
and Grad-CAM at the last block.

Recipes:

- ``softmax``: ``synthetic_shapes.train_vit(seed)``, the quality test's own
  recipe (one shape per image, cross-entropy); seed 2 is the test's model.
- ``multilabel``: the same model, steps and optimiser, but every class is a
  detector of its own shape (``synthetic_shapes.multilabel_batch``): about
  10% of the training images show no shape, 83% one and 6% two of
  different classes, and the loss is binary cross-entropy on the classes
  present. No class can then be "none of the other two". The quality test
  uses this recipe, with seed 2.

Two more columns tell how each model decides, without any explanation
method: ``own logit`` is the mean logit of the true class on the held-out
images, ``shape removed`` the same logit after the shape's pixels are
painted with the image's median background colour (the shape gone, the
clutter kept), and ``no-shape logits`` every class's mean logit on those
shape-less images. A class whose logit stays high on an image with no
shape at all is decided partly by the absence of the others' evidence.

Every run trains in this process, one after another, on the CPU (about a
minute each on two cores). The numbers move with the seed, so read them as
a distribution.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

import torch

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    background_colour,
    dilated,
    make_shapes,
    model_input,
    peak_hits,
    train_vit,
)

#: the quality test's held-out images and scoring (tests/quality/test_quality.py)
HELD_OUT, HELD_OUT_SEED, DILATION = 64, 20_251, 4


def measure(vit: torch.nn.Module) -> dict[str, Any]:
    data = make_shapes(HELD_OUT, seed=HELD_OUT_SEED)
    inputs = model_input(data.images)
    regions = dilated(data.regions, DILATION)
    targets = [ClassifierOutputTarget(int(c)) for c in data.labels]
    rows = torch.arange(HELD_OUT)
    with torch.no_grad():
        logits = vit(inputs)
        background = background_colour(data.images, data.masks)
        removed = vit(model_input(torch.where(data.masks[:, None], background[:, :, None, None],
                                              data.images)))
    result: dict[str, Any] = {
        "accuracy": float((logits.argmax(dim=1) == data.labels).float().mean()),
        "own logit": float(logits[rows, data.labels].mean()),
        "shape removed": float(removed[rows, data.labels].mean()),
        "no-shape logits": [float(v) for v in removed.mean(dim=0)]}
    blocks = list(vit.encoder.layers)
    cams = {"legrad": lambda: METHODS["legrad"](vit),
            "gradattention": lambda: METHODS["gradattention"](vit),
            "attentionrollout": lambda: METHODS["attentionrollout"](vit)}
    for index, block in enumerate(blocks):
        cams[f"gradcam ln_1[{index}]"] = (lambda b=block: METHODS["gradcam"](
            vit, [b.ln_1], vit_reshape_transform))
    last = f"gradcam ln_1[{len(blocks) - 1}]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-zero map is a miss
        for name, make in cams.items():
            with make() as cam:
                hits = peak_hits(cam(inputs, targets), regions)
            result[name] = float(hits.float().mean())
            if name in ("legrad", last):
                result[f"{name} by class"] = [float(hits[data.labels == c].float().mean())
                                              for c in range(len(CLASSES))]
    return result


def markdown(runs: list[dict[str, Any]]) -> str:
    methods = [k for k in runs[0]["scores"] if isinstance(runs[0]["scores"][k], float)
               and k not in ("accuracy", "own logit", "shape removed")]
    head = ["training", "seed", "accuracy", *methods, "legrad by class", "last gradcam by class",
            "own logit", "shape removed", "no-shape logits"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        s = run["scores"]
        by_class = [k for k in s if k.endswith("by class")]
        cells = [run["training"], str(run["seed"]), f"{s['accuracy']:.2f}",
                 *[f"{s[m]:.2f}" for m in methods],
                 *[" / ".join(f"{v:.2f}" for v in s[k]) for k in by_class],
                 f"{s['own logit']:.1f}", f"{s['shape removed']:.1f}",
                 " / ".join(f"{v:.1f}" for v in s["no-shape logits"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nby class: {' / '.join(CLASSES)}"


def main(argv: list[str] = sys.argv[1:]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--training", nargs="+", choices=["softmax", "multilabel"],
                        default=["softmax", "multilabel"])
    parser.add_argument("--json", help="also write the results to this file")
    given = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    runs = []
    for training in given.training:
        for seed in given.seeds:
            start = time.perf_counter()
            vit, _ = train_vit(seed, multilabel=training == "multilabel")
            scores = measure(vit)
            runs.append({"training": training, "seed": seed, "scores": scores,
                         "seconds": time.perf_counter() - start})
            print(f"{training} seed {seed}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else
                f"{k} {'/'.join(f'{x:.2f}' for x in v)}" if isinstance(v, list) else f"{k} {v}"
                for k, v in scores.items()) + f" ({runs[-1]['seconds']:.0f} s)", flush=True)
    print()
    print(markdown(runs))
    if given.json:
        partial = given.json + ".partial"
        with open(partial, "w") as handle:
            json.dump(runs, handle, indent=1)
        os.replace(partial, given.json)  # whole or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main())
