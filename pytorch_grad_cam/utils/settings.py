"""Process-wide settings changed for the length of a block (OpenCV's thread
count, the default socket time-out, ...) and put back afterwards."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

__all__ = ["temporary_setting"]

T = TypeVar("T")


@contextlib.contextmanager
def temporary_setting(get: Callable[[], T], set_to: Callable[[T], object],
                      value: T) -> Iterator[None]:
    """The setting that ``get`` reads and ``set_to`` writes set to ``value``
    while the block runs, and put back to what ``get`` read before it
    afterwards, also when the block raises."""
    previous = get()
    set_to(value)
    try:
        yield
    finally:
        set_to(previous)
