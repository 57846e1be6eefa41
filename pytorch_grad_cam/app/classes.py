"""Class names and the class to explain, for every front-end.

- :data:`IMAGENET_CLASSES`: ImageNet's 1000 class names, in index order
  (torchvision's, read from a file of this package: no torch needed, so
  that the command line checks ``--target-category tabby`` before it
  loads anything);
- :func:`read_class_names`: a ``--class-names`` file, one name a line;
- :func:`find_class`: an index or a name (case and underscores do not
  matter) -> the class index, or a :class:`ClassError` that the front-ends
  word their own way (:func:`resolve_category` is the command line's);
- :func:`resolve_categories`: the command line's several classes
  (``--target-category 281 285 tabby``), each given once;
  :func:`check_top_k`: ``--top-k`` against the model's classes.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pytorch_grad_cam.app.errors import UsageError, first_line
from pytorch_grad_cam.utils.class_names import match_class_name

__all__ = ["IMAGENET_CLASSES", "ClassError", "check_top_k", "find_class", "is_index",
           "list_classes_command", "read_class_names", "resolve_categories", "resolve_category"]

IMAGENET_CLASSES: tuple[str, ...] = tuple(
    (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines())


class ClassError(ValueError):
    """A class that cannot be found.

    Attributes:
        kind: ``out_of_range`` (an index beyond ``count``), ``no_names`` (a
            name, and the classes have none), ``ambiguous`` (several classes
            have the name: ``matches``), ``unknown`` (none has it: ``close``
            are similar ones).
        text: what was given, stripped.
        count: the number of classes, where known.
        matches, close: class indices.
    """

    def __init__(self, kind: str, text: str, count: int | None = None,
                 matches: Sequence[int] = (), close: Sequence[int] = ()) -> None:
        super().__init__(f"class {text!r}: {kind.replace('_', ' ')}")
        self.kind = kind
        self.text = text
        self.count = count
        self.matches = list(matches)
        self.close = list(close)


def is_index(text: str) -> bool:
    """Whether ``text`` is a class index (an integer, signs and spaces allowed)."""
    return re.fullmatch(r"\s*[+-]?\d+\s*", text) is not None


def find_class(text: str, class_names: Sequence[str] | None,
               num_classes: int | None = None) -> int:
    """An index (checked against ``num_classes``, else the number of names)
    or a class name -> the class index; ClassError otherwise."""
    text = text.strip()
    if is_index(text):
        index = int(text)
        count = num_classes if num_classes is not None else (
            len(class_names) if class_names else None)
        if index < 0 or (count is not None and index >= count):
            raise ClassError("out_of_range", text, count)
        return index
    if not class_names:
        raise ClassError("no_names", text, num_classes)
    matches, close = match_class_name(text, class_names)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ClassError("ambiguous", text, len(class_names), matches=matches)
    raise ClassError("unknown", text, len(class_names), close=close)


def read_class_names(path: str) -> list[str]:
    """``--class-names FILE``: one class name a line, in class-index order
    (surrounding spaces and empty lines are dropped)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "no such file" if not file.exists() else first_line(error)
        raise UsageError(f"--class-names {path}: {reason}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UsageError(f"--class-names {path}: the file names no class (one name a line)")
    return names


def list_classes_command(prog: str) -> str:
    """How to list the classes with the command ``prog``."""
    return f"{'python ' if prog.endswith('.py') else ''}{prog} --list-classes"


def resolve_category(text: str | None, class_names: Sequence[str] | None = IMAGENET_CLASSES,
                     num_classes: int | None = None, prog: str = "grad-cam") -> int | None:
    """``--target-category``: an index or a class name (case-insensitive)
    -> the class index (None when not given); UsageError otherwise."""
    if text is None:
        return None
    try:
        return find_class(text, class_names, num_classes)
    except ClassError as error:
        names = class_names or ()
        given = error.text
        if error.kind == "out_of_range":
            allowed = f"0..{error.count - 1}" if error.count is not None else "0 or more"
            raise UsageError(f"--target-category {given}: out of range (allowed {allowed})") \
                from None
        if error.kind == "no_names":
            raise UsageError(f"--target-category {given!r}: this model's classes have no names; "
                             "give the class index") from None
        if error.kind == "ambiguous":
            listed = ", ".join(f"{i} ({names[i]})" for i in error.matches)
            raise UsageError(f"--target-category {given!r} is ambiguous: {listed}; give the "
                             "index") from None
        hint = ("; close matches: " + ", ".join(f"{i} ({names[i]})" for i in error.close)
                if error.close else f"; {list_classes_command(prog)} prints all of them")
        raise UsageError(f"--target-category {given!r}: no class has that name{hint}") from None


def resolve_categories(texts: Sequence[str] | str | None,
                       class_names: Sequence[str] | None = IMAGENET_CLASSES,
                       num_classes: int | None = None, prog: str = "grad-cam") -> list[int] | None:
    """``--target-category`` given once or several times (``281 285
    tabby``) -> the class indices in the order given (None when not
    given), each checked by :func:`resolve_category`; UsageError for a
    class named twice (``281`` and ``tabby``)."""
    if texts is None:
        return None
    if isinstance(texts, str):
        texts = [texts]
    first: dict[int, str] = {}
    indices = []
    for text in texts:
        index = resolve_category(text, class_names, num_classes, prog=prog)
        assert index is not None  # a text is never None
        if index in first:
            name = f" ({class_names[index]})" if class_names else ""
            raise UsageError(f"--target-category {first[index].strip()!r} and {text.strip()!r} "
                             f"are the same class, {index}{name}; give each class once")
        first[index] = text
        indices.append(index)
    return indices


def check_top_k(top_k: int | None, num_classes: int | None) -> None:
    """``--top-k K``: UsageError when the model (of ``num_classes``
    classes, None: not known yet) has fewer than K classes."""
    if top_k is not None and num_classes is not None and top_k > num_classes:
        raise UsageError(f"--top-k {top_k}: more classes than the model has (allowed "
                         f"1..{num_classes})")
