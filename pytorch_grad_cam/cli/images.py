"""The image command's images: the files named by ``--image-path`` (and
the folders' images), each checked before anything is computed, and read
through :mod:`pytorch_grad_cam.utils.image_io`: regular files only (a named
pipe or a link to a device is refused, never waited on), at most
``--max-pixels`` pixels by the header, before decoding."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.cli.parser import DEFAULT_IMAGE
from pytorch_grad_cam.utils.image_io import (
    IMAGE_SUFFIXES,
    MAX_READ_PIXELS,
    ImageError,
    check_file_pixels,
    check_regular_file,
    find_images,
    read_bgr,
)

__all__ = ["IMAGE_SUFFIXES", "SOURCE_ROOT", "check_image_sizes", "collect_images",
           "find_image_paths", "read_checked", "read_image"]

#: a clone's root, where the default image lives (examples/chelsea.jpg)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def read_image(path: Path, max_pixels: int = MAX_READ_PIXELS) -> np.ndarray | None:
    """uint8 BGR image, or None when the file is not a readable image (or
    not a regular file, or larger than ``max_pixels``: see
    :func:`pytorch_grad_cam.utils.image_io.read_bgr`)."""
    try:
        return read_bgr(path, max_pixels)
    except ImageError:
        return None


def read_checked(path: Path, max_pixels: int) -> np.ndarray:
    """The image, or a UsageError that says why not (one line)."""
    try:
        return read_bgr(path, max_pixels, option="--max-pixels")
    except ImageError as error:
        raise UsageError(f"--image-path {path}: {error.reason}") from None


def check_image_sizes(paths: Sequence[Path], max_pixels: int) -> None:
    """A UsageError for the first image whose header gives more than
    ``max_pixels`` pixels (``--max-pixels``) or that no image format
    recognises; nothing is decoded. Run with the checks made before torch
    is imported, so that a decompression bomb costs no model."""
    for path in paths:
        try:
            check_file_pixels(path, max_pixels, option="--max-pixels")
        except ImageError as error:
            raise UsageError(f"--image-path {path}: {error.reason}") from None


def find_image_paths(paths: Sequence[str] | None, default: str = DEFAULT_IMAGE) -> list[Path]:
    """The image files named or contained in ``paths`` (folders: every image
    file directly inside, sorted, hidden ones left out), each a regular file
    (a named pipe or a link to a device is refused, never opened); nothing
    is read. Without paths: ``default``, in a clone's root if it is there,
    else relative to the working directory."""
    if not paths:
        bundled = SOURCE_ROOT / default
        paths = [str(bundled if bundled.exists() else default)]
    images: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found, others = find_images(path, recursive=False)
            if others:  # a named pipe, a link to a device, a broken link
                other, error = others[0]
                raise UsageError(f"--image-path {other}: {error.reason}")
            if not found:
                raise UsageError(f"--image-path {text}: the folder holds no image "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            images.extend(found)
        elif os.path.lexists(path):  # a named pipe or a link to a device: refused below
            images.append(path)
        else:
            raise UsageError(f"--image-path {text}: no such file or folder")
    for path in images:
        try:
            check_regular_file(path)
        except ImageError as error:
            raise UsageError(f"--image-path {path}: {error.reason}") from None
    return images


def collect_images(paths: Sequence[str] | None, default: str = DEFAULT_IMAGE,
                   max_pixels: int = MAX_READ_PIXELS) -> list[Path]:
    """The image files of :func:`find_image_paths`, each decoded once to
    make sure it is readable and of at most ``max_pixels`` pixels, and no
    two of the same name (their output files would be the same)."""
    images = find_image_paths(paths, default)
    stems: dict[str, Path] = {}
    for path in images:
        read_checked(path, max_pixels)
        if path.stem in stems and stems[path.stem] != path:
            raise UsageError(f"--image-path: {stems[path.stem]} and {path} would write the same "
                             f"output files ({path.stem}_*.jpg); rename one")
        stems[path.stem] = path
    return list(dict.fromkeys(images))
