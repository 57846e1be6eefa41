"""Several targets per image, for one call that explains them all.

A CAM call takes, for each image, a list of K targets (the same K for
every image) and returns B x K x H x W maps from one forward pass (and one
set of perturbation passes); see ``BaseCAM.__call__``. These helpers build
the lists for the common cases::

    scores = model(x)                       # B x classes
    targets = top_k_targets(scores, 5)      # each image's 5 best classes
    maps = cam(input_tensor=x, targets=targets)   # B x 5 x H x W

- :func:`ranked_targets`: every image's k best classes, chosen from the
  explainer's own forward pass (no pass of your own to find them);
- :func:`top_k_targets`: the k highest-scoring classes of every image,
  from scores you computed;
- :func:`multilabel_targets`: every class whose probability (sigmoid of
  the score, for multi-label models) reaches a threshold; the number
  differs between images, so :func:`groups_by_count` splits a batch into
  calls whose images have the same number;
- :func:`box_targets`: one target per box a detector found (a
  ``FasterRCNNBoxScoreTarget`` for each detection above a score).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.scoring import check_positive_int, given, select_output
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    RankedClassTarget,
)

__all__ = ["ranked_targets", "top_k_targets", "top_k_classes", "multilabel_targets", "multilabel_classes",
           "groups_by_count", "box_targets"]


def _scores(scores: Any, name: str = "scores") -> torch.Tensor:
    """A B x classes float tensor (detached, on the CPU) from a model output
    (a tensor, a numpy array, or an output holding ``logits``)."""
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(scores)
    elif not isinstance(scores, torch.Tensor):
        try:
            scores = select_output(scores)
        except TypeError as error:
            raise TypeError(f"{name} must be the model's scores, a tensor B x classes, got "
                            f"{given(scores)}") from error
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else None
        raise ValueError(f"{name} must be a tensor B x classes (one row of class scores per "
                         f"image), got shape {shape}")
    if scores.shape[1] == 0:
        raise ValueError(f"{name} has no classes (shape {tuple(scores.shape)})")
    return scores.detach().float().cpu()


def ranked_targets(batch_size: int, k: int) -> list[list[RankedClassTarget]]:
    """``batch_size`` lists of ``RankedClassTarget(0) .. RankedClassTarget(k -
    1)``: each image's k best classes, best first, chosen from the output of
    the explainer's own forward pass (the maps are those of
    :func:`top_k_targets` on the same scores, without a forward pass of
    your own to compute them). The classes explained are the top k of
    ``cam.outputs`` after the call."""
    batch_size = check_positive_int("batch_size", batch_size)
    k = check_positive_int("k", k)
    return [[RankedClassTarget(rank) for rank in range(k)] for _ in range(batch_size)]


def top_k_classes(scores: Any, k: int) -> list[list[int]]:
    """The ``k`` classes of highest score of every image, best first (ties
    in the order of the class index)."""
    k = check_positive_int("k", k)
    table = _scores(scores)
    if k > table.shape[1]:
        raise ValueError(f"k is {k} but the model has only {table.shape[1]} classes")
    order = torch.argsort(table, dim=1, descending=True, stable=True)[:, :k]
    return [[int(c) for c in row] for row in order.tolist()]


def top_k_targets(scores: Any, k: int,
                  target: Callable[[int], Callable] = ClassifierOutputTarget
                  ) -> list[list[Callable]]:
    """One list per image of ``target(c)`` for its ``k`` best classes c,
    best first: the ``targets`` of a call that explains each image's top-k
    classes in one pass (maps B x k x H x W).

    Args:
        scores: the model's output for the batch, B x classes (a tensor, a
            numpy array, or an output with ``logits``).
        k: how many classes per image (at most the number of classes).
        target: builds the target of a class (default
            ``ClassifierOutputTarget``; for example
            ``ClassifierOutputSoftmaxTarget``).
    """
    return [[target(c) for c in row] for row in top_k_classes(scores, k)]


def multilabel_classes(scores: Any, threshold: float = 0.5, sigmoid: bool = True,
                       max_classes: int | None = None) -> list[list[int]]:
    """Every class of every image whose probability reaches ``threshold``,
    most probable first. ``sigmoid=True`` (multi-label models output one
    logit per class) takes ``sigmoid(score)`` as the probability; False
    compares the scores themselves. ``max_classes`` keeps at most that
    many per image. An image may get no class (an empty list)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number, got {given(threshold)}")
    if not isinstance(sigmoid, bool):
        raise TypeError(f"sigmoid must be True or False, got {given(sigmoid)}")
    limit = check_positive_int("max_classes", max_classes, allow_none=True)
    table = _scores(scores)
    probabilities = torch.sigmoid(table) if sigmoid else table
    order = torch.argsort(probabilities, dim=1, descending=True, stable=True)
    result = []
    for row, ranked in zip(probabilities, order):
        chosen = [int(c) for c in ranked.tolist() if float(row[c]) >= threshold]
        result.append(chosen[:limit] if limit is not None else chosen)
    return result


def multilabel_targets(scores: Any, threshold: float = 0.5, sigmoid: bool = True,
                       max_classes: int | None = None,
                       target: Callable[[int], Callable] = ClassifierOutputTarget
                       ) -> list[list[Callable]]:
    """One list per image of ``target(c)`` for every class c above the
    threshold (:func:`multilabel_classes`). The lists may differ in length:
    a call takes the same number per image, so explain the images of each
    :func:`groups_by_count` group together (or one image per call)."""
    return [[target(c) for c in row]
            for row in multilabel_classes(scores, threshold, sigmoid, max_classes)]


def groups_by_count(target_lists: Sequence[Sequence[Any]]) -> list[list[int]]:
    """The indices of the images, grouped by how many targets each has
    (groups in order of first appearance; images without targets left
    out): each group can be explained in one call,
    ``cam(x[group], [target_lists[i] for i in group])``."""
    groups: dict[int, list[int]] = {}
    for index, targets in enumerate(target_lists):
        if not isinstance(targets, (list, tuple)):
            raise TypeError(f"target_lists[{index}] must be a list of targets, "
                            f"got {given(targets)}")
        if targets:
            groups.setdefault(len(targets), []).append(index)
    return list(groups.values())


def box_targets(detections: Sequence[Mapping[str, Any]], score_threshold: float = 0.5,
                max_boxes: int | None = None, iou_threshold: float = 0.5
                ) -> list[list[FasterRCNNBoxScoreTarget]]:
    """One ``FasterRCNNBoxScoreTarget`` per detected box of every image (its
    label and box), for the boxes whose score reaches ``score_threshold``,
    highest score first, at most ``max_boxes`` per image.

    ``detections``: what a torchvision-style detector returns for the
    batch, one dict with ``boxes`` (N x 4), ``labels`` and ``scores`` per
    image. The lists may differ in length between images (see
    :func:`groups_by_count`); an image with no box gets an empty list."""
    limit = check_positive_int("max_boxes", max_boxes, allow_none=True)
    if not isinstance(detections, (list, tuple)):
        raise TypeError(f"detections must be a list with one dict of boxes, labels and scores "
                        f"per image, got {given(detections)}")
    result = []
    for index, detection in enumerate(detections):
        if not isinstance(detection, Mapping) or not {"boxes", "labels",
                                                      "scores"} <= set(detection):
            raise ValueError(f"detections[{index}] must be a dict with 'boxes', 'labels' and "
                             f"'scores', got {given(detection)}")
        boxes = torch.as_tensor(detection["boxes"]).detach().float().cpu().reshape(-1, 4)
        labels = torch.as_tensor(detection["labels"]).detach().cpu().reshape(-1)
        scores = torch.as_tensor(detection["scores"]).detach().float().cpu().reshape(-1)
        order = torch.argsort(scores, descending=True, stable=True)
        kept = [int(i) for i in order.tolist() if float(scores[i]) >= score_threshold]
        if limit is not None:
            kept = kept[:limit]
        result.append([FasterRCNNBoxScoreTarget([int(labels[i])], boxes[i:i + 1].tolist(),
                                                iou_threshold=iou_threshold) for i in kept])
    return result
