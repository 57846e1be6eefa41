"""Decoding the items of a dataset run: image files (or their bytes) and
in-memory images (PIL images, numpy arrays, uint8 tensors) as H x W x 3 RGB
arrays, with :class:`BadItem` (``image_io.ImageError``) for anything that is
not a usable image.

Files are read by :mod:`pytorch_grad_cam.utils.image_io`: regular files
only, without blocking, at most ``MAX_FILE_BYTES``, and decoded only when
their header's size is within ``max_pixels``. 8- and 16-bit files,
grayscale (copied to the three channels), RGB, and RGBA or grayscale +
alpha (the alpha channel is dropped, as ``PIL.Image.convert("RGB")``
does); EXIF orientation is applied.
"""
from __future__ import annotations

import os
from typing import Any, Union

import cv2
import numpy as np
import torch
from PIL import Image

from pytorch_grad_cam.utils.image_io import (
    MAX_READ_PIXELS,
    ImageError,
    bounded_copy,
    decode,
    pillow_array,
    read_file,
)

__all__ = ["BadItem", "PathLike", "check_dtype", "check_layout", "decode_image", "decode_source",
           "load_picture", "three_channels", "to_rgb", "to_unit"]

PathLike = Union[str, "os.PathLike[str]"]

#: one item that cannot be explained: ``BadItem(status, reason)``, ``status`` a key of
#: ``sources.STATUSES``; the image readers' own errors are BadItems too
BadItem = ImageError


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(1 / 65535)
    return np.clip(image.astype(np.float32), 0, 1)


# ----------------------------------------------------------------- decoding
def check_layout(image: np.ndarray) -> None:
    """Raise :class:`BadItem` unless ``image`` is H x W or H x W x 1-4 channels."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4)):
        return
    raise BadItem("unreadable", f"an image of shape {image.shape} is neither grayscale, RGB "
                                "nor RGBA")


def three_channels(image: np.ndarray, bgr: bool) -> np.ndarray:
    """Grayscale, gray + alpha, RGB(A) or BGR(A) -> H x W x 3 RGB, same dtype."""
    check_layout(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels in (1, 2):  # gray (+ alpha)
        return np.repeat(image[:, :, :1], 3, axis=2)
    if bgr and image.dtype in (np.uint8, np.uint16, np.float32):
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)
    rgb = image[:, :, :3]
    return np.ascontiguousarray(rgb[:, :, ::-1] if bgr else rgb)


def check_dtype(image: np.ndarray) -> np.ndarray:
    """``image`` as uint8, uint16 or float32: booleans become 0/255, integers
    in 0..65535 uint16, finite floats float32; :class:`BadItem` for NaN or
    infinite values, integers out of range and any other dtype."""
    if image.dtype in (np.uint8, np.uint16):
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise BadItem("unreadable", "the image holds NaN or infinite values")
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        if image.size and (image.min() < 0 or image.max() > 65535):
            raise BadItem("unreadable", f"{image.dtype} pixel values outside 0..65535")
        return image.astype(np.uint16)
    raise BadItem("unreadable", f"unsupported pixel type {image.dtype}")


def decode_image(source: PathLike | bytes, max_pixels: int = MAX_READ_PIXELS) -> np.ndarray:
    """A file (or its bytes) -> H x W x 3 RGB array, uint8 or uint16.

    Raises :class:`BadItem`: status ``unreadable`` for a missing, empty,
    corrupt or unsupported file, ``not_a_file`` for a named pipe, a device
    or a broken link, ``too_large`` for an image whose header gives more
    than ``max_pixels`` pixels (nothing is decoded then)."""
    return three_channels(*decode_source(source, max_pixels))


def decode_source(source: PathLike | bytes, max_pixels: int) -> tuple[np.ndarray, bool]:
    """The image as decoded (H x W, or H x W x C in BGR order when the
    flag is True) and the flag; the channels are fixed by
    :func:`three_channels`, after resizing, so that the full-size image
    is not copied once more."""
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) \
        else read_file(source)
    # as stored: 16-bit stays 16-bit, grayscale one channel, alpha is dropped (OpenCV)
    image, bgr = decode(data, max_pixels)
    return check_dtype(image), bgr


def load_picture(source: PathLike | bytes, max_pixels: int = MAX_READ_PIXELS
                 ) -> np.ndarray:
    """A file (or its bytes) as a picture for the report: H x W x 3
    float32 RGB in [0, 1], shrunk to at most ``image_io.PICTURE_PIXELS``
    pixels (before the channels are converted). Raises :class:`BadItem`."""
    image, bgr = decode_source(source, max_pixels)
    return to_unit(three_channels(bounded_copy(image), bgr))


def to_rgb(image: Any) -> np.ndarray:
    """An in-memory image -> H x W x 3 RGB array (uint8, uint16 or float32
    in [0, 1]): a PIL image, an H x W (x C) numpy array (RGB order, uint8,
    uint16 or float in [0, 1]) or a uint8 C x H x W tensor. Raises
    :class:`BadItem` for anything else."""
    if isinstance(image, Image.Image):
        return three_channels(check_dtype(pillow_array(image)), bgr=False)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.dtype != torch.uint8:
            raise BadItem("unreadable", f"a tensor image must be uint8 C x H x W here, got "
                                        f"{image.dtype} of shape {tuple(image.shape)}")
        image = image.permute(1, 2, 0).cpu().numpy()
    if isinstance(image, np.ndarray):
        return three_channels(check_dtype(image), bgr=False)
    raise BadItem("unreadable", f"an item must be an image (a path, bytes, a PIL image, a "
                                f"numpy array or a tensor), got {type(image).__name__}")
