"""Values and exceptions as error messages show them.

The one home of these helpers: the methods, the loaders and the front-ends
all word what was given the same way. Nothing here imports torch (numpy only).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["describe", "first_line", "given"]


def describe(value: Any) -> str:
    """A value's repr, shortened to 80 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def given(value: Any) -> str:
    """The value given, for error messages: its (shortened) repr and type,
    or the type and shape of an array."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) or isinstance(value, np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return f"{describe(value)} ({type(value).__name__})"


#: an object's default repr, such as ``<_io.BytesIO object at 0x7f3a...>`` (Pillow's
#: ``cannot identify image file`` names its file that way) or a Pillow image's: a
#: memory address that tells the reader nothing
_OBJECT_REPR = re.compile(r"<([A-Za-z_][\w.]*)[^<>]*? at 0x[0-9A-Fa-f]+>")


def _object_name(match: re.Match) -> str:
    name = match[1].rpartition(".")[2]
    if name == "BytesIO":
        return "(bytes in memory)"
    return f"({'an' if name[0].lower() in 'aeiou' else 'a'} {name} object)"


def first_line(error: BaseException, with_type: bool = True) -> str:
    """An exception as one line: its type and the first line of its message
    (``with_type=False``: the first line alone); its type's name when the
    message is empty. An object's repr with its memory address in it is
    named by its class instead (``cannot identify image file (bytes in
    memory)``)."""
    text = _OBJECT_REPR.sub(_object_name, str(error)).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].strip()
    return f"{type(error).__name__}: {line}" if with_type else line
