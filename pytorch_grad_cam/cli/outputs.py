"""What the image command writes and prints for one image.

The files of an image are named ``<stem>_<method>_cam.jpg`` (the map over
the photo), ``<stem>_<method>_gb.jpg`` (guided backpropagation),
``<stem>_<method>_cam_gb.jpg`` (their product) and, with several methods,
``<stem>_methods.jpg`` (the photo and the maps side by side, labelled),
where ``<stem>`` is the image's name followed by what distinguishes the run
(:func:`file_stem`): the model unless it is the default, and the explained
class when classes were asked for (``--target-category`` or ``--top-k``:
``chelsea_resnet18_tabby``); a default run writes
``chelsea_gradcam_cam.jpg``. An image explained for K classes gets K sets
of files, one per class.

:func:`method_pictures` makes one method's pictures in memory and
:func:`write_method` writes them as soon as that method is done;
:func:`comparison_pictures` / :func:`write_comparison` the side-by-side
picture once all methods are done; :func:`pictures` and
:func:`write_outputs` do all of an image at once. Each file is written
whole or not at all. :func:`prediction_report`, :func:`image_report` and
:func:`evaluation_report` are the text printed for the image.
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pytorch_grad_cam.cli.records import ImageResult, Job
from pytorch_grad_cam.metric_names import OPT_IN_METRICS, REGION_METRICS
from pytorch_grad_cam.metrics.evaluate import (
    METRICS,
    evaluate_cam_methods,
    format_table,
)
from pytorch_grad_cam.models.loading import DEFAULT_MODEL, model_slug
from pytorch_grad_cam.scoring import batch_size_or_default
from pytorch_grad_cam.utils.image import deprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.visualization import label_panel, overlay_cam, side_by_side

__all__ = [
    "class_label",
    "class_slug",
    "comparison_pictures",
    "evaluation_report",
    "file_stem",
    "image_report",
    "method_pictures",
    "metric_names",
    "model_tag",
    "pictures",
    "prediction_report",
    "slug",
    "top_predictions",
    "write_comparison",
    "write_jpeg",
    "write_method",
    "write_outputs",
    "write_pictures",
]


def slug(text: str) -> str:
    """``coffee mug`` -> ``coffee_mug``: lower-case letters, digits and _."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def class_slug(index: int, class_names: Sequence[str] | None) -> str:
    """The explained class as a part of a file name: its name's slug
    (``tabby``, ``coffee_mug``), with the index when another class has the
    same name (``cardigan_264``), or ``class7`` for a model without names."""
    if not class_names:
        return f"class{index}"
    name = slug(class_names[index])
    if not name:
        return f"class{index}"
    if sum(slug(other) == name for other in class_names) > 1:
        return f"{name}_{index}"
    return name


def model_tag(args: argparse.Namespace, default_model: str | None) -> str | None:
    """The model as a part of the file names, or None for the default model
    (``--model`` not given or ``default_model``, without --weights or
    --random-weights). ``default_model=None``: always named. A checkpoint
    adds its file's name (and stands alone without --model), random
    weights ``random``."""
    weights = getattr(args, "weights", None)
    random_weights = getattr(args, "random_weights", False)
    spec = args.model.strip() if args.model else None
    if default_model is not None and not weights and not random_weights and (
            spec is None or spec.lower() == default_model):
        return None
    # a checkpoint without --model: its file names the model (it may hold a whole one)
    parts = [] if spec is None and weights else [model_slug(spec or default_model
                                                            or DEFAULT_MODEL)]
    if weights:
        parts.append(slug(Path(weights).stem) or "weights")
    if random_weights:
        parts.append("random")
    return "_".join(parts)


def class_label(index: int, class_names: Sequence[str] | None) -> str:
    """``281 (tabby)``, or ``class 281`` for a model without class names."""
    return f"{index} ({class_names[index]})" if class_names else f"class {index}"


def top_predictions(result: ImageResult, class_names: Sequence[str] | None, k: int = 5) -> str:
    """The ``k`` most probable classes, one indented line each."""
    order = np.argsort(-result.probabilities, kind="stable")[:k]  # as --top-k ranks them
    width = max(len(class_names[i]) for i in order) if class_names else 0
    lines = []
    for i in order:
        name = class_names[i] if class_names else ""
        lines.append(f"  {i:>4}  {name:<{width}}  {100 * result.probabilities[i]:5.1f}%")
    return "\n".join(lines)


def file_stem(job: Job, result: ImageResult) -> str:
    """The start of every file name of the image for the result's class:
    its name and the job's ``name_parts``, with the class after the model's
    name when the job names classes (``chelsea``, ``chelsea_tabby``,
    ``chelsea_resnet18``, ``chelsea_resnet18_tabby_sess``)."""
    parts = list(job.name_parts)
    if job.class_position is not None:
        parts.insert(job.class_position, class_slug(result.category, job.class_names))
    return "_".join([result.path.stem, *parts])


def method_pictures(job: Job, result: ImageResult, name: str) -> dict[str, np.ndarray]:
    """File name -> uint8 BGR picture, for method ``name``'s map of the image."""
    stem = file_stem(job, result)
    h, w = result.bgr.shape[:2]
    small_map = result.maps[name]
    out = {f"{stem}_{name}_cam.jpg": overlay_cam(result.bgr, small_map)}
    if result.guided is not None:
        guided = cv2.resize(result.guided, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = np.clip(cv2.resize(small_map, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
        out[f"{stem}_{name}_gb.jpg"] = cv2.cvtColor(deprocess_image(guided), cv2.COLOR_RGB2BGR)
        out[f"{stem}_{name}_cam_gb.jpg"] = cv2.cvtColor(
            deprocess_image(mask[..., None] * guided), cv2.COLOR_RGB2BGR)
    return out


def comparison_pictures(job: Job, result: ImageResult) -> dict[str, np.ndarray]:
    """With several maps, ``<stem>_methods.jpg``: the photo (labelled with
    the explained class) and every map over it, side by side; else nothing."""
    if len(result.maps) < 2:
        return {}
    label = class_label(result.category, job.class_names)
    panels = [label_panel(result.bgr, label)]
    panels += [label_panel(overlay_cam(result.bgr, small_map), name)
               for name, small_map in result.maps.items()]
    return {f"{file_stem(job, result)}_methods.jpg": side_by_side(panels)}


def pictures(job: Job, result: ImageResult) -> dict[str, np.ndarray]:
    """File name -> uint8 BGR picture, for one image: every method's and the
    side-by-side one."""
    out: dict[str, np.ndarray] = {}
    for name in result.maps:
        out.update(method_pictures(job, result, name))
    out.update(comparison_pictures(job, result))
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


def write_pictures(job: Job, files: dict[str, np.ndarray]) -> list[Path]:
    """Write pictures (all computed before) into ``job.output_dir``; the paths."""
    job.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in files.items():
        path = job.output_dir / name
        write_jpeg(path, picture)
        written.append(path)
    return written


def write_method(job: Job, result: ImageResult, name: str) -> list[Path]:
    """Write method ``name``'s pictures of the image (as soon as it is done)."""
    return write_pictures(job, method_pictures(job, result, name))


def write_comparison(job: Job, result: ImageResult) -> list[Path]:
    """Write the side-by-side picture (after the image's last method); [] for one method."""
    return write_pictures(job, comparison_pictures(job, result))


def write_outputs(job: Job, result: ImageResult) -> list[Path]:
    """Write all pictures of one image into ``job.output_dir``; the paths."""
    return write_pictures(job, pictures(job, result))  # all computed before the first is written


def prediction_report(job: Job, results: Sequence[ImageResult]) -> str:
    """What is printed for an image before its maps: its top-5 predictions
    and the explained class(es) (``results``: one per class, of one image)."""
    first = results[0]
    labels = ", ".join(class_label(result.category, job.class_names) for result in results)
    explained = "explained classes" if len(results) > 1 else "explained class"
    return (f"{first.path}: top-5 predictions\n{top_predictions(first, job.class_names)}\n"
            f"  {explained} {labels}")


def image_report(job: Job, result: ImageResult, files: Sequence[Path]) -> str:
    """What is printed for one image: its top-5 predictions, the explained
    class and the files written."""
    return (f"{result.path}: top-5 predictions\n{top_predictions(result, job.class_names)}\n"
            f"  explained class {class_label(result.category, job.class_names)}; "
            f"wrote {', '.join(str(f) for f in files)}")


def metric_names(job: Job) -> str:
    """The metrics --evaluate computes: evaluate_cam_methods' default ones
    (those that need no regions, less those computed only when named)."""
    return ", ".join(name for name in METRICS
                     if name not in REGION_METRICS and name not in OPT_IN_METRICS)


def evaluation_report(job: Job, results: Sequence[ImageResult]) -> str:
    """The metrics of every method's maps of one image (``results``: one
    per explained class), as a table per class (with progress bars, one per
    metric and method, unless --no-progress). The K classes are scored in
    one evaluation of a batch of K copies of the image, copy k explaining
    class k (``--batch-size`` copies at a time, when K is larger)."""
    size = batch_size_or_default(job.batch_size, job.device)
    rows: dict[str, dict[str, list[float]]] = {}
    for start in range(0, len(results), size):
        chunk = results[start:start + size]
        copies = chunk[0].input_tensor.repeat(len(chunk), 1, 1, 1)
        found = evaluate_cam_methods(
            job.model, job.target_layers, copies,
            targets=[ClassifierOutputTarget(r.category) for r in chunk], methods=job.methods,
            reshape_transform=job.reshape_transform, batch_size=job.batch_size,
            progress=job.progress, per_image=True)
        for method, row in found.items():
            for metric, values in row.items():
                rows.setdefault(method, {}).setdefault(metric, []).extend(
                    float(v) for v in np.asarray(values).reshape(-1))
    better = ", ".join(f"{name} {direction}" for name, direction in METRICS.items()
                       if any(name in row for row in rows.values()))
    lines = [f"  metrics (better: {better})"]
    for index, result in enumerate(results):
        table: dict[str, dict[str, object]] = {
            method: {metric: values[index] for metric, values in row.items()}
            for method, row in rows.items()}
        if len(results) > 1:
            lines.append(f"  class {class_label(result.category, job.class_names)}:")
        lines += ["  " + line for line in format_table(table).splitlines()]
    return "\n".join(lines)
