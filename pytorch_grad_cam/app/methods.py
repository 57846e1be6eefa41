"""Method lists as the front-ends take them: names of the registry or class
names, case-insensitive, several in one string separated by commas
(``"gradcam, GradCAMPlusPlus"``), and on the command line ``all``,
``everything`` and ``recommended`` (the method the quality benchmark
measured best for the model's family; it stays in the list as that word
until the model is loaded, :func:`pytorch_grad_cam.app.recommended.resolve_recommended`).

:func:`method_tokens` checks the names without importing any method (nor
torch): the command line reports a typo before it loads anything. The
front-ends word the errors (:class:`MethodError`) their own way.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.messages import describe
from pytorch_grad_cam.registry import find_method_name, get_method, method_names

__all__ = ["GROUPS", "MethodError", "RECOMMENDED_WORD", "affordable", "check_method_option", "close_methods",
           "method_error_message", "method_tokens", "parse_methods", "select_methods"]

#: the word of ``--method recommended`` (see :mod:`pytorch_grad_cam.app.recommended`)
RECOMMENDED_WORD = "recommended"
#: the command line's names for groups of methods, and ``recommended``
GROUPS = ("all", "everything", RECOMMENDED_WORD)


class MethodError(ValueError):
    """No method, or a name that is not a method.

    Attributes:
        text: the name as given (None: no method was given).
        close: the methods whose names are close to it.
        note: the whole message, for a method-list word where it is not
            allowed (``recommended`` in the demo); empty for an unknown name.
    """

    def __init__(self, text: str | None, close: Sequence[str] = (), note: str = "") -> None:
        super().__init__(note or ("no method given" if text is None else
                                  f"unknown method {describe(text)}"))
        self.text = text
        self.close = list(close)
        self.note = note


def close_methods(text: str, words: Sequence[str] = ()) -> list[str]:
    """Up to three method names (or of ``words``, the group words allowed)
    close to ``text``."""
    return difflib.get_close_matches(text.strip().lower(), method_names() + list(words), n=3,
                                     cutoff=0.5)


def method_tokens(names: Iterable[Any], groups: Sequence[str] = ()) -> list[str]:
    """The methods named in ``names`` (each a name, a class name, or several
    separated by commas) as registry names, and the ``groups`` words
    (``all``, ``everything``) where they are allowed, in the order given,
    without repeats. MethodError for an unknown name or none; TypeError for
    an entry that is not a string. Imports no method."""
    chosen: list[str] = []
    for text in names:
        if not isinstance(text, str):
            raise TypeError(f"a method must be a name such as gradcam, got {text!r}")
        for part in text.split(","):
            word = part.strip().lower()
            if not word:
                continue
            name = word if word in groups else find_method_name(word)
            if name is None and word == RECOMMENDED_WORD:
                raise MethodError(part.strip(), note=f"{RECOMMENDED_WORD!r} picks a method for "
                                  "the model's family on the command line (grad-cam --method "
                                  f"{RECOMMENDED_WORD}); here, name a method such as gradcam")
            if name is None:
                raise MethodError(part.strip(), close_methods(word, groups))
            chosen.append(name)
    if not chosen:
        raise MethodError(None)
    return list(dict.fromkeys(chosen))


def method_error_message(error: MethodError, none: str, unknown: str, hint: str) -> str:
    """``error`` in a front-end's words: ``none`` when no method was given;
    else the template ``unknown`` filled with ``text`` (the name as given),
    ``name`` (its repr, shortened), ``methods`` (the registered methods,
    comma-separated) and ``hint``: the template ``hint`` filled with
    ``close`` (the close method names) when there are any, else empty.
    An error with a ``note`` is that note."""
    if error.note:
        return error.note
    if error.text is None:
        return none
    close = hint.format(close=", ".join(error.close)) if error.close else ""
    return unknown.format(text=error.text, name=describe(error.text),
                          methods=", ".join(method_names()), hint=close)


def check_method_option(names: Sequence[str]) -> list[str]:
    """``--method`` of the commands: :func:`method_tokens` with ``all`` and
    ``everything``, its errors as UsageError."""
    try:
        return method_tokens(names, GROUPS)
    except MethodError as error:
        raise UsageError(method_error_message(
            error, "--method: give at least one method",
            "--method: unknown method {name}{hint}; choose from {methods}, all, everything or "
            "recommended",
            " (did you mean {close}?)")) from None


def _device_type(device: Any) -> str | None:
    if device is None:
        return None
    return str(getattr(device, "type", None) or str(device).split(":")[0])


def affordable(device: Any) -> list[str]:
    """What ``--method all`` means on ``device``: every method on CUDA (and
    without a device), elsewhere every method but the sampling ones (registry
    trait ``sampling``: SSCAM, ISCAM), which make tens of thousands of
    forward passes per image."""
    names = method_names()
    if _device_type(device) in (None, "cuda"):
        return names
    return [name for name in names if not get_method(name).sampling]


def select_methods(names: Sequence[str], device: Any = None) -> tuple[list[str], list[str]]:
    """Registered method names (keys of ``pytorch_grad_cam.METHODS``),
    case-insensitive; class names (GradCAMPlusPlus) work too, 'everything'
    is every method and 'all' the methods affordable on ``device``
    (:func:`affordable`); 'recommended' stays as that word (resolved when
    the model is known). Returns (the methods, those 'all' left out and
    no other name asked for). UsageError for an unknown name."""
    chosen: list[str] = []
    by_all = False
    for token in check_method_option(names):
        if token == "everything":
            chosen.extend(method_names())
        elif token == "all":
            chosen.extend(affordable(device))
            by_all = True
        else:
            chosen.append(token)
    methods = list(dict.fromkeys(chosen))
    left_out = [name for name in method_names() if by_all and name not in methods]
    return methods, left_out


def parse_methods(names: Sequence[str], device: Any = None) -> list[str]:
    """The methods of :func:`select_methods` (without a device, 'all' is
    every method)."""
    return select_methods(names, device)[0]
