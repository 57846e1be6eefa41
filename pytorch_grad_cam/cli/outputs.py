"""What the image command writes and prints for one image.

:func:`pictures` makes every picture of an :class:`~pytorch_grad_cam.cli.job.ImageResult`
in memory (``<image>_<method>_cam.jpg``: the map over the photo;
``<image>_<method>_gb.jpg``: guided backpropagation;
``<image>_<method>_cam_gb.jpg``: their product; with several methods
``<image>_methods.jpg``: the photo and the maps side by side, labelled);
:func:`write_outputs` writes them, each file whole or not at all.
:func:`image_report` and :func:`evaluation_report` are the text printed
for the image.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pytorch_grad_cam.metrics.evaluate import (
    METRICS,
    evaluate_cam_methods,
    format_table,
)
from pytorch_grad_cam.utils.image import deprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.visualization import label_panel, overlay_cam, side_by_side

if TYPE_CHECKING:
    from pytorch_grad_cam.cli.job import ImageResult, Job

__all__ = [
    "class_label",
    "evaluation_report",
    "image_report",
    "pictures",
    "top_predictions",
    "write_jpeg",
    "write_outputs",
]


def class_label(index: int, class_names: Sequence[str] | None) -> str:
    """``281 (tabby)``, or ``class 281`` for a model without class names."""
    return f"{index} ({class_names[index]})" if class_names else f"class {index}"


def top_predictions(result: ImageResult, class_names: Sequence[str] | None, k: int = 5) -> str:
    """The ``k`` most probable classes, one indented line each."""
    order = np.argsort(-result.probabilities)[:k]
    width = max(len(class_names[i]) for i in order) if class_names else 0
    lines = []
    for i in order:
        name = class_names[i] if class_names else ""
        lines.append(f"  {i:>4}  {name:<{width}}  {100 * result.probabilities[i]:5.1f}%")
    return "\n".join(lines)


def pictures(job: Job, result: ImageResult) -> dict[str, np.ndarray]:
    """File name -> uint8 BGR picture, for one image."""
    stem = result.path.stem
    h, w = result.bgr.shape[:2]
    out: dict[str, np.ndarray] = {}
    guided = None
    if result.guided is not None:
        guided = cv2.resize(result.guided, (w, h), interpolation=cv2.INTER_LINEAR)
        gb_picture = cv2.cvtColor(deprocess_image(guided), cv2.COLOR_RGB2BGR)
    overlays = {}
    for name, small_map in result.maps.items():
        overlays[name] = overlay_cam(result.bgr, small_map)
        out[f"{stem}_{name}_cam.jpg"] = overlays[name]
        if guided is not None:
            mask = np.clip(cv2.resize(small_map, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
            out[f"{stem}_{name}_gb.jpg"] = gb_picture
            out[f"{stem}_{name}_cam_gb.jpg"] = cv2.cvtColor(
                deprocess_image(mask[..., None] * guided), cv2.COLOR_RGB2BGR)
    if len(result.maps) > 1:
        label = class_label(result.category, job.class_names)
        panels = [label_panel(result.bgr, label)]
        panels += [label_panel(picture, name) for name, picture in overlays.items()]
        out[f"{stem}_methods.jpg"] = side_by_side(panels)
    return out


def write_jpeg(path: Path, picture: np.ndarray, quality: int = 95) -> None:
    """Write the whole file or nothing (encode first, then rename into place)."""
    ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {path.name}")
    partial_path = path.with_name(f".{path.name}.partial")
    try:
        partial_path.write_bytes(data.tobytes())
        os.replace(partial_path, path)
    finally:
        if partial_path.exists():
            partial_path.unlink()


def write_outputs(job: Job, result: ImageResult) -> list[Path]:
    """Write the pictures of one image into ``job.output_dir``; the paths."""
    files = pictures(job, result)  # all computed before the first file is written
    job.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in files.items():
        path = job.output_dir / name
        write_jpeg(path, picture)
        written.append(path)
    return written


def image_report(job: Job, result: ImageResult, files: Sequence[Path]) -> str:
    """What is printed for one image: its top-5 predictions, the explained
    class and the files written."""
    return (f"{result.path}: top-5 predictions\n{top_predictions(result, job.class_names)}\n"
            f"  explained class {class_label(result.category, job.class_names)}; "
            f"wrote {', '.join(str(f) for f in files)}")


def evaluation_report(job: Job, result: ImageResult) -> str:
    """The metrics of every method's map of one image, as a table."""
    rows = evaluate_cam_methods(job.model, job.target_layers, result.input_tensor,
                                targets=[ClassifierOutputTarget(result.category)],
                                methods=job.methods, reshape_transform=job.reshape_transform,
                                batch_size=job.batch_size, progress=job.progress)
    better = ", ".join(f"{name} {direction}" for name, direction in METRICS.items()
                       if any(name in row for row in rows.values()))
    return (f"  metrics (better: {better})\n"
            + "\n".join("  " + line for line in format_table(rows).splitlines()))
