"""Which classes a dataset run explains in every image: ``explain_dataset``'s
``targets`` argument, checked (:func:`check_targets`), as the store records it.

- ``None``: each image's top class (one row per image and method);
- a class index: that class in every image;
- ``"label"``: each item's own label;
- :class:`TopClasses` ``(k)``: each image's ``k`` best classes, best first
  (``k`` rows per image and method, ranks 0 .. k-1);
- :class:`MultiLabel` ``(threshold, max_labels)``: every class whose
  sigmoid(score) reaches ``threshold``, most probable first, at most
  ``max_labels`` (for multi-label models: one logit per class). The number
  differs between images; an image with none gets one ``no_target`` row
  per method.

For the last two the classes come from one forward pass over the batch;
each method then explains all of an image's classes in one call
(``cam(x, targets=[[t1, t2, ...], ...])``, see
:mod:`pytorch_grad_cam.utils.target_sets`), never once per class.

No torch here: the command's options (:mod:`~pytorch_grad_cam.datasets.
options`) use these classes before torch is imported.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from pytorch_grad_cam.messages import given

__all__ = ["MultiLabel", "TargetSpec", "TopClasses", "check_targets"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {given(value)}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


@dataclass(frozen=True)
class TopClasses:
    """``targets=TopClasses(k)``: explain each image's ``k`` best classes
    (by the model's score), best first: ``k`` rows per image and method,
    ``rank`` 0 (the best) to ``k - 1``. ``TopClasses(1)`` is the default
    (each image's top class)."""

    k: int

    def __post_init__(self) -> None:
        _positive_int("TopClasses(k)", self.k)


@dataclass(frozen=True)
class MultiLabel:
    """``targets=MultiLabel(threshold, max_labels=None)``: explain every
    class whose sigmoid(score) is at least ``threshold`` (0 < threshold <=
    1), most probable first, at most ``max_labels`` of them; for models
    with one independent logit per class. An image with no such class gets
    a ``no_target`` row per method, with the most probable class in its
    reason."""

    threshold: float = 0.5
    max_labels: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real):
            raise TypeError(f"MultiLabel(threshold) must be a number in (0, 1], got "
                            f"{given(self.threshold)}")
        if not (0 < float(self.threshold) <= 1) or math.isnan(float(self.threshold)):
            raise ValueError(f"MultiLabel(threshold) must be in (0, 1] (a sigmoid probability), "
                             f"got {self.threshold}")
        if self.max_labels is not None:
            _positive_int("MultiLabel(max_labels)", self.max_labels)


@dataclass(frozen=True)
class TargetSpec:
    """``targets``, checked.

    Attributes:
        mode: "top" (each image's top class), "class" (``fixed_class``),
            "label", "top_classes" (``k``) or "multilabel" (``threshold``,
            ``max_labels``).
    """

    mode: str = "top"
    fixed_class: int | None = None
    k: int = 1
    threshold: float = 0.5
    max_labels: int | None = None

    @property
    def from_scores(self) -> bool:
        """Whether the classes are chosen from a forward pass over the batch
        before the methods run (several classes per image)."""
        return self.mode in ("top_classes", "multilabel")

    @property
    def choosing_pass(self) -> bool:
        """Whether a forward pass over the batch chooses the classes before
        the methods run: for "multilabel", whose number of classes per
        image the scores decide. "top_classes" needs none: the first
        method's call chooses them from its own forward pass
        (``RankedClassTarget``), and the others explain the same classes."""
        return self.mode == "multilabel"

    @property
    def sigmoid(self) -> bool:
        """Whether the rows' probabilities are sigmoid(score) (multi-label),
        not the softmax over the classes."""
        return self.mode == "multilabel"

    @property
    def per_image(self) -> int:
        """The classes explained per image: exact for all modes but
        "multilabel", where it is ``max_labels`` (or 1 without it), an
        estimate."""
        if self.mode == "top_classes":
            return self.k
        if self.mode == "multilabel":
            return self.max_labels or 1
        return 1

    def config(self) -> Any:
        """What the store's configuration records (part of its fingerprint:
        a store resumes only with the same targets). The single-class modes
        are recorded as before multi-target runs existed, so older stores
        resume."""
        if self.mode == "class":
            return self.fixed_class
        if self.mode == "top_classes":
            return {"top_classes": self.k}
        if self.mode == "multilabel":
            return {"multilabel": float(self.threshold), "max_labels": self.max_labels}
        return self.mode

    @classmethod
    def from_config(cls, value: Any) -> TargetSpec:
        """The spec a store's configuration records (:meth:`config`)."""
        if isinstance(value, dict) and "top_classes" in value:
            return cls("top_classes", k=int(value["top_classes"]))
        if isinstance(value, dict) and "multilabel" in value:
            return cls("multilabel", threshold=float(value["multilabel"]),
                       max_labels=value.get("max_labels"))
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return cls("class", fixed_class=int(value))
        return cls("label" if value == "label" else "top")

    def describe(self) -> str:
        """A few words for the report and the printed cost."""
        if self.mode == "class":
            return f"class {self.fixed_class} in every image"
        if self.mode == "label":
            return "each item's label"
        if self.mode == "top_classes":
            return f"each image's {self.k} best classes"
        if self.mode == "multilabel":
            most = f", at most {self.max_labels}" if self.max_labels else ""
            return f"every class with sigmoid(score) >= {self.threshold:g}{most}"
        return "each image's top class"


def check_targets(targets: Any) -> TargetSpec:
    """``explain_dataset``'s ``targets`` -> :class:`TargetSpec`; ValueError
    or TypeError naming what was given and what is allowed."""
    if isinstance(targets, TopClasses):
        return TargetSpec("top") if targets.k == 1 else TargetSpec("top_classes", k=targets.k)
    if targets is None or (isinstance(targets, str) and targets == "top"):
        return TargetSpec("top")
    if isinstance(targets, MultiLabel):
        return TargetSpec("multilabel", threshold=float(targets.threshold),
                          max_labels=targets.max_labels)
    allowed = ("None (each image's top class), 'label' (each item's label), a class index, "
               "TopClasses(k) or MultiLabel(threshold, max_labels)")
    if isinstance(targets, str):
        if targets == "label":
            return TargetSpec("label")
        raise ValueError(f"targets must be {allowed}, got {targets!r}")
    if isinstance(targets, numbers.Integral) and not isinstance(targets, bool):
        if targets < 0:
            raise ValueError(f"targets must be a class index >= 0, got {targets}")
        return TargetSpec("class", fixed_class=int(targets))
    raise TypeError(f"targets must be {allowed}, got {given(targets)}")
