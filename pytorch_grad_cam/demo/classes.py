"""The demo's Class box: which classes of the photo to explain.

The box takes one entry or several (a list: the page's box is a
multi-select), each of them

- a class: an index (``"281"``, ``281``), a name (``"tabby"``,
  ``"Egyptian cat"``; case and underscores do not matter) or the page's
  label form ``"tabby (281)"`` (:func:`resolve_class`);
- the model's best classes: empty, ``"auto"`` or ``"top class"`` for the
  best one, ``"top 3"`` (or ``"top 3 classes"``) for the three best.

:func:`parse_classes` reads the entries into a :class:`ClassRequest` before
anything is computed; :func:`chosen_classes` turns it into the class
indices once the model's scores are known: the best classes first, then
the named ones, each class once, at most :data:`MAX_CLASSES`. Every
problem is a :class:`~pytorch_grad_cam.demo.models.DemoError`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytorch_grad_cam.app.classes import ClassError, find_class
from pytorch_grad_cam.app.targets import explained_classes
from pytorch_grad_cam.demo.models import DemoError

__all__ = ["AUTOMATIC", "MAX_CLASSES", "TOP_CHOICES", "ClassRequest", "chosen_classes",
           "parse_classes", "resolve_class", "top_count"]

#: what the Class box says for "the model's top class"
AUTOMATIC = "auto"
_AUTOMATIC_WORDS = {"", AUTOMATIC, "automatic", "top", "top class", "top class (automatic)"}
_TOP = re.compile(r"top[\s_-]*(\d+)(?:\s+class(?:es)?)?(?:\s*\(automatic\))?", re.IGNORECASE)
#: the Class box's entries for the model's best classes besides the top one
TOP_CHOICES: tuple[tuple[str, str], ...] = (("top 3 classes", "top 3"), ("top 5 classes", "top 5"))
#: the most classes one request explains (each is an overlay per method)
MAX_CLASSES = 10


@dataclass(frozen=True)
class ClassRequest:
    """What the Class box asks for.

    Attributes:
        top: how many of the model's best classes (0: none).
        named: the classes named, as indices, in the order given.
    """

    top: int
    named: tuple[int, ...]


def top_count(text: str) -> int | None:
    """``"top 3"`` -> 3; ``"auto"``, ``"top class"`` or empty -> 1; None
    for an entry that names a class. DemoError for ``"top 0"``."""
    stripped = text.strip()
    if stripped.lower() in _AUTOMATIC_WORDS:
        return 1
    match = _TOP.fullmatch(stripped)
    if match is None:
        return None
    count = int(match.group(1))
    if count < 1:
        raise DemoError(f"{stripped!r}: choose at least the top 1 class")
    return count


def resolve_class(text: str | int | None, class_names: Sequence[str] | None,
                  num_classes: int) -> int | None:
    """One entry of the Class box -> a class index, or ``None`` for the
    top class.

    Takes an index (``"281"``), a class name (``"tabby"``, ``"Egyptian
    cat"``; case and underscores do not matter), the page's label form
    ``"tabby (281)"``, or empty / ``auto`` for the top class. DemoError for
    an index out of range, an ambiguous name, or an unknown name (with the
    close matches).
    """
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, (int, np.integer)):
        text = str(int(text))
    if not isinstance(text, str):
        raise DemoError(f"the class must be a name or an index, got {text!r}")
    stripped = text.strip()
    if stripped.lower() in _AUTOMATIC_WORDS:
        return None
    labelled = re.fullmatch(r"(.*\S)\s*\((\d+)\)", stripped)
    if labelled is not None:
        stripped = labelled.group(2)
    try:
        return find_class(stripped, class_names, num_classes)
    except ClassError as error:
        names = class_names or ()
        if error.kind == "out_of_range":
            raise DemoError(f"class {int(stripped)}: out of range; this model has {num_classes} "
                            f"classes (0 to {num_classes - 1})") from None
        if error.kind == "no_names":
            raise DemoError(f"class {stripped!r}: this model's classes have no names; give the "
                            f"class index (0 to {num_classes - 1})") from None
        if error.kind == "ambiguous":
            listed = ", ".join(f"{names[i]} ({i})" for i in error.matches)
            raise DemoError(f"class {stripped!r} is ambiguous: {listed}; choose one of them") \
                from None
        if error.close:
            hint = "; close matches: " + ", ".join(f"{names[i]} ({i})" for i in error.close)
        else:
            hint = "; no class name is close (type a part of a name, such as 'cat', to search)"
        raise DemoError(f"unknown class {stripped!r}{hint}") from None


def parse_classes(value: Any, class_names: Sequence[str] | None,
                  num_classes: int) -> ClassRequest:
    """The Class box's value (one entry, a list of entries, or None) -> a
    :class:`ClassRequest`; no entry at all is the top class. DemoError for
    an entry that is not a class (see :func:`resolve_class`), for more best
    classes than the model has, or for more than :data:`MAX_CLASSES`."""
    if value is None or isinstance(value, (str, int, bool, np.integer)):
        entries: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        entries = list(value) or [None]
    else:
        raise DemoError(f"the class must be a name, an index or a list of them, got "
                        f"{type(value).__name__}")
    top = 0
    named: list[int] = []
    for entry in entries:
        count = top_count(entry) if isinstance(entry, str) else None
        if count is not None:
            top = max(top, count)
            continue
        index = resolve_class(entry, class_names, num_classes)
        if index is None:  # None or a bool: the top class
            top = max(top, 1)
        elif index not in named:
            named.append(index)
    if top > num_classes:
        raise DemoError(f"top {top}: this model has only {num_classes} classes")
    if top > MAX_CLASSES or len(named) > MAX_CLASSES:
        raise DemoError(f"at most {MAX_CLASSES} classes at once (asked for "
                        f"{max(top, len(named))})")
    return ClassRequest(top, tuple(named))


def chosen_classes(request: ClassRequest, scores: Any) -> list[int]:
    """The classes to explain: the ``request.top`` best by ``scores`` (the
    model's output for the photo, 1 x classes), then the named ones not
    among them. DemoError when that makes more than :data:`MAX_CLASSES`."""
    best = explained_classes(scores, top_k=request.top)[0] if request.top else []
    classes = best + [index for index in request.named if index not in best]
    if len(classes) > MAX_CLASSES:
        raise DemoError(f"at most {MAX_CLASSES} classes at once; the top {request.top} and "
                        f"the {len(request.named)} named make {len(classes)}")
    return classes
