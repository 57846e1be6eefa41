"""Warnings attributed to the user's code."""
import os
import sys
import warnings
from types import FrameType

__all__ = ["warn_at_caller"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside this package:
    the user's line, however many overrides of a method lie in between."""
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
