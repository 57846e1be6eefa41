"""Images, targets, reshape transforms and file reading for the methods.

The submodules and the names below are imported when first used, so that
``pytorch_grad_cam.utils.image_io`` and ``class_names`` can be used without
torch (the command line checks its arguments with them first).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytorch_grad_cam.lazy import submodule

if TYPE_CHECKING:
    from pytorch_grad_cam.utils import image, model_targets, reshape_transforms
    from pytorch_grad_cam.utils.image import deprocess_image, preprocess_image, show_cam_on_image

__all__ = ["image", "model_targets", "reshape_transforms", "deprocess_image", "preprocess_image",
           "show_cam_on_image"]

_FROM_IMAGE = ("deprocess_image", "preprocess_image", "show_cam_on_image")


def __getattr__(name: str) -> Any:
    """A name of :data:`__all__` or a submodule, imported on first use."""
    if name in _FROM_IMAGE:
        return getattr(submodule(__name__, "image"), name)
    return submodule(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
