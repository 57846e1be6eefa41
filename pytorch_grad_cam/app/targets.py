"""The classes a front-end explains for each image, and their maps from
one call per method.

A front-end explains, for every image, the classes the user named (the
same for every image), each image's ``k`` best classes, or by default its
best class. :func:`explained_classes` makes that table, one list of class
indices per image, from the model's scores
(:func:`~pytorch_grad_cam.utils.target_sets.top_k_classes`).
:func:`class_maps` gets every class's map of every image from ONE call of
a CAM object with the table of ``ClassifierOutputTarget`` (the forward
pass, and a perturbation method's passes, shared by the K classes), never
from one call per class; its maps are B x K x H x W, also for K = 1.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pytorch_grad_cam.scoring import check_positive_int
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.target_sets import top_k_classes

__all__ = ["class_maps", "class_targets", "explained_classes"]


def explained_classes(scores: Any, classes: Sequence[int] | None = None,
                      top_k: int | None = None) -> list[list[int]]:
    """The classes to explain, one list per image (the same length for
    every image): ``classes`` for every image when given, else each
    image's ``top_k`` best classes by ``scores`` (B x classes; best first,
    ties in class order), else (neither) each image's best class."""
    if classes is not None and top_k is not None:
        raise ValueError(f"give classes or top_k, not both (got classes={list(classes)!r}, "
                         f"top_k={top_k!r})")
    top_k = check_positive_int("top_k", top_k, allow_none=True)
    # checks the scores, and top_k against their classes
    table = top_k_classes(scores, 1 if top_k is None else top_k)
    if classes is None:
        return table
    chosen = [int(c) for c in classes]
    if not chosen:
        raise ValueError("classes is empty; give at least one class index, or None for each "
                         "image's best class")
    return [list(chosen) for _ in table]


def class_targets(table: Sequence[Sequence[int]]) -> list[list[ClassifierOutputTarget]]:
    """``ClassifierOutputTarget`` of every class of every image."""
    return [[ClassifierOutputTarget(int(c)) for c in row] for row in table]


def class_maps(cam: Callable[..., np.ndarray], input_tensor: Any,
               table: Sequence[Sequence[int]], **options: Any) -> np.ndarray:
    """The maps of every image's classes, B x K x H x W float32, from one
    call ``cam(input_tensor=..., targets=..., **options)`` (``options``:
    ``aug_smooth``, ``eigen_smooth``, ...). ``table``: one list of K class
    indices per image (:func:`explained_classes`). With K = 1 the call is
    the single-target one (one ``ClassifierOutputTarget`` per image), as
    a one-class run has always made it."""
    counts = sorted({len(row) for row in table})
    if len(table) == 0 or counts[0] == 0 or len(counts) > 1:
        raise ValueError(f"table must give every image the same number of classes (at least "
                         f"one), got {[len(row) for row in table]} for its {len(table)} images")
    targets = class_targets(table)
    if counts[0] == 1:
        return np.asarray(cam(input_tensor=input_tensor, targets=[row[0] for row in targets],
                              **options))[:, None]
    return np.asarray(cam(input_tensor=input_tensor, targets=targets, **options))
