"""Reading image files safely: bounded in time, in bytes and in pixels.

What the command line, the dataset runner and the web demo read photos
with. A hostile or broken input never blocks, never makes the process
read without bound, and never gets decoded when its header promises more
pixels than the caller allows:

- :func:`find_images`: the image files of a folder (by suffix,
  :data:`IMAGE_SUFFIXES`), keeping only regular files (after resolving
  symbolic links) and returning the other entries (named pipes, devices,
  sockets, broken links) with the reason, for the caller to report;
- :func:`check_regular_file`: the one regular-file check, by ``os.stat``,
  so that a device or a pipe is never even opened;
- :func:`read_file`: the one bounded read: ``os.open`` with
  ``O_NONBLOCK`` (a named pipe opens without waiting for a writer),
  ``os.fstat`` of the opened descriptor (closing the race between the
  check and the read), at most :data:`MAX_FILE_BYTES`;
- :func:`image_size`: the one header reader (Pillow's format detection,
  which reads the header and decodes nothing);
- :func:`decode`: the one decoder: the header's size checked against
  ``max_pixels`` (:class:`TooManyPixels`) before OpenCV decodes (Pillow
  for the formats OpenCV cannot read, such as PCX or TGA);
- :func:`bounded_copy`: a picture for the eyes (overlays, reports) with at
  most :data:`PICTURE_PIXELS` pixels.

Every problem is an :class:`ImageError` whose ``status`` is one of the
dataset runner's statuses (``unreadable``, ``not_a_file``, ``too_large``)
and whose ``reason`` says why in words, without the path (the caller
names it).

Pillow's own decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) is
not used: it is a process-wide setting, it warns or refuses at its own
limits, and its error does not tell the image's width and height. The
limit here is the caller's ``max_pixels``.
"""
from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from pytorch_grad_cam.messages import first_line

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_READ_PIXELS",
    "PICTURE_PIXELS",
    "ImageError",
    "TooManyPixels",
    "bounded_copy",
    "check_file_pixels",
    "check_pixels",
    "check_regular_file",
    "decode",
    "find_images",
    "first_line",
    "fit_size",
    "has_image_suffix",
    "image_size",
    "megapixels",
    "open_pillow",
    "pillow_array",
    "read_bgr",
    "read_file",
]

#: the file suffixes a folder is searched for (case-insensitive)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                  ".pgm", ".pbm")
#: images with more pixels than this (by their header) are refused before decoding
MAX_READ_PIXELS = 80_000_000
#: files larger than this are not read
MAX_FILE_BYTES = 1 << 30
#: the most pixels of a picture made for the eyes (overlays, report pictures)
PICTURE_PIXELS = 4_000_000

PathLike = Union[str, "os.PathLike[str]"]

#: os.open's flags: a named pipe opens at once (O_NONBLOCK), Windows reads bytes (O_BINARY)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
#: what a file is when it is not a regular one
_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
#: what Pillow's openers raise for data that is not their format
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, ValueError, struct.error, EOFError)
#: Pillow modes that become numpy arrays as they are (others are converted to RGB(A))
_ARRAY_MODES = ("1", "L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F")


class ImageError(Exception):
    """A file or item that cannot be used as an image.

    Attributes:
        status: what kind of problem, as the dataset runner's ``status``
            column says it: ``unreadable`` (missing, empty, corrupt, not an
            image), ``not_a_file`` (a named pipe, a device, a socket, a
            folder, a broken link), ``too_large`` (more pixels than allowed,
            or a file larger than :data:`MAX_FILE_BYTES`), and the runner's
            own (``too_small``, ...).
        reason: why, in words, without the path.
    """

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TooManyPixels(ImageError):
    """An image whose header gives more than ``limit`` pixels; ``option``
    is the name of the setting that allows more (``max_pixels``,
    ``--max-pixels``)."""

    def __init__(self, width: int, height: int, limit: int, option: str = "max_pixels"):
        self.width, self.height, self.limit = width, height, limit
        setting = f"{option} {limit}" if option.startswith("-") else f"{option}={limit}"
        super().__init__("too_large", f"{width} x {height} pixels ({megapixels(width * height)} "
                                      f"megapixels) is more than {setting}; downscale it or "
                                      f"raise {option}")


def megapixels(pixels: int) -> str:
    """400000000 -> '400', 89478485 -> '89.5'."""
    return f"{round(pixels / 1e6, 1):g}"


def _size_text(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def has_image_suffix(name: PathLike) -> bool:
    """Whether the name ends with one of :data:`IMAGE_SUFFIXES` (any case)."""
    return os.path.splitext(os.fspath(name))[1].lower() in IMAGE_SUFFIXES


# ------------------------------------------------------------------ files
def _not_regular(path: str, mode: int) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    target = f" ({os.path.realpath(path)})" if os.path.islink(path) else ""
    return f"{kind}{target}, not a regular file"


def check_regular_file(path: PathLike) -> None:
    """Nothing when ``path`` is a regular file (symbolic links resolved),
    else :class:`ImageError`: ``not_a_file`` for a named pipe, a device, a
    socket, a folder or a broken link (the reason says which, and where a
    link leads), ``unreadable`` for a path that does not exist or cannot be
    examined. Only ``os.stat``: nothing is opened."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        if os.path.islink(name):
            raise ImageError("not_a_file", f"a broken symbolic link (to {os.readlink(name)}), "
                                           "not a regular file") from None
        raise ImageError("unreadable", "no such file") from None
    except (OSError, ValueError) as error:  # permissions, a loop of links, a NUL in the name
        raise ImageError("unreadable", f"cannot read the file ({first_line(error)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not_a_file", _not_regular(name, info.st_mode))


def read_file(path: PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, read without blocking and with a
    bound: :func:`check_regular_file` first (a device is never opened),
    then ``os.open(O_RDONLY | O_NONBLOCK)`` and ``os.fstat`` of the opened
    descriptor (a file swapped for a pipe in between is refused, not
    waited on), and at most ``max_bytes`` bytes (``too_large`` above).
    Raises :class:`ImageError`."""
    name = os.fspath(path)
    check_regular_file(name)
    try:
        descriptor = os.open(name, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageError("unreadable", "no such file") from None
    except OSError as error:
        raise ImageError("unreadable", f"cannot read the file ({first_line(error)})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("not_a_file", _not_regular(name, info.st_mode))
        too_large = ImageError("too_large", f"the file is larger than {_size_text(max_bytes)} "
                                            "(the most that is read)")
        if info.st_size > max_bytes:
            raise too_large
        try:
            data = handle.read(max_bytes + 1)
        except OSError as error:
            raise ImageError("unreadable", f"cannot read the file ({first_line(error)})") \
                from None
    if len(data) > max_bytes:  # it grew since fstat
        raise too_large
    return data


def find_images(folder: PathLike, recursive: bool = True
                ) -> tuple[list[Path], list[tuple[Path, ImageError]]]:
    """The image files in ``folder`` (by suffix; names starting with "."
    left out; subfolders too when ``recursive``, without following links
    to folders), sorted by their path relative to it: (the regular files,
    symbolic links to regular files included; the other entries with an
    image suffix, each with the :class:`ImageError` of
    :func:`check_regular_file`). Folders named like images are not
    entries."""
    root = Path(folder)
    images: list[Path] = []
    others: list[tuple[Path, ImageError]] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".")) if recursive else []
        for name in files:
            if name.startswith(".") or not has_image_suffix(name):
                continue
            path = Path(directory) / name
            try:
                check_regular_file(path)
            except ImageError as error:
                others.append((path, error))
            else:
                images.append(path)

    def key(path: Path) -> str:
        return path.relative_to(root).as_posix()

    return sorted(images, key=key), sorted(others, key=lambda entry: key(entry[0]))


# ----------------------------------------------------------------- headers
def open_pillow(data: bytes) -> Image.Image:
    """The image in ``data`` opened by Pillow: its header read, nothing
    decoded. Pillow's format detection (its registered openers, in its
    order, as ``Image.open`` does) without ``Image.open``'s
    decompression-bomb check (see the module's notes); ImageError
    ``unreadable`` when no format recognises it."""
    if not data:
        raise ImageError("unreadable", "the file is empty (0 bytes)")
    Image.init()
    prefix = data[:16]
    for format_id in list(Image.ID):
        factory, accept = Image.OPEN[format_id]
        accepted = True if accept is None else accept(prefix)
        if not accepted or isinstance(accepted, str):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except _NOT_THIS_FORMAT:
            continue
        except Image.DecompressionBombError as error:  # some openers check Pillow's own limit
            raise ImageError("too_large", f"Pillow refuses to open it ({first_line(error)})") \
                from None
        except OSError as error:  # a format that recognised it, and a broken header
            raise ImageError("unreadable", f"not a readable image ({first_line(error)})") \
                from None
    raise ImageError("unreadable", "not a readable image (no image format recognises it)")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the image in ``data``, from its header alone."""
    with open_pillow(data) as image:
        return image.size


def check_pixels(width: int, height: int, max_pixels: int = MAX_READ_PIXELS,
                 option: str = "max_pixels") -> None:
    """:class:`TooManyPixels` when ``width x height`` is more than ``max_pixels``."""
    if width * height > max_pixels:
        raise TooManyPixels(width, height, max_pixels, option)


def check_file_pixels(path: PathLike, max_pixels: int = MAX_READ_PIXELS,
                      option: str = "max_pixels") -> None:
    """:class:`TooManyPixels` when the header of the image file ``path``
    gives more than ``max_pixels`` pixels; nothing is decoded (the file is
    read with :func:`read_file`, so every refusal of that applies)."""
    check_pixels(*image_size(read_file(path)), max_pixels, option)


# ---------------------------------------------------------------- decoding
def pillow_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as a numpy array, its mode kept where numpy has one
    (1, L, LA, RGB, RGBA, I;16, I, F); other modes become RGB, or RGBA
    where there is transparency. An image opened but not yet decoded (as
    ``Image.open`` leaves it) is decoded here: ImageError ``unreadable``
    when its data is truncated or corrupt."""
    try:
        if image.mode not in _ARRAY_MODES:
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info
                                  else "RGB")
        return np.asarray(image)
    except (OSError, *_NOT_THIS_FORMAT) as error:
        raise ImageError("unreadable", f"not a readable image ({first_line(error)})") from None


def _decode_with_pillow(data: bytes, color: bool) -> np.ndarray:
    try:
        with open_pillow(data) as opened:
            image = ImageOps.exif_transpose(opened)
            if color:
                return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
            return pillow_array(image)
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise ImageError("unreadable", f"not a readable image ({first_line(error)})") from None
    except Image.DecompressionBombError as error:  # frames larger than the header (GIF)
        raise ImageError("too_large", f"Pillow refuses to decode it ({first_line(error)})") \
            from None


def decode(data: bytes, max_pixels: int = MAX_READ_PIXELS, option: str = "max_pixels",
           color: bool = False) -> tuple[np.ndarray, bool]:
    """The image in ``data``, decoded only after its header's size passed
    :func:`check_pixels`: (the array, whether its channels are in BGR
    order). EXIF orientation is applied. OpenCV decodes; the formats it
    cannot read (PCX, TGA, GIF with older OpenCV) go through Pillow.

    ``color=False``: as stored: H x W (grayscale) or H x W x C (BGR(A)
    from OpenCV, RGB(A) from Pillow), uint8, uint16 or what Pillow gives.
    ``color=True``: uint8 H x W x 3 BGR, alpha dropped, as
    ``cv2.imread(path)`` gives. Raises :class:`ImageError`."""
    width, height = image_size(data)
    check_pixels(width, height, max_pixels, option)
    flags = cv2.IMREAD_COLOR if color else cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        return _decode_with_pillow(data, color), color
    return image, True


def read_bgr(path: PathLike, max_pixels: int = MAX_READ_PIXELS,
             option: str = "max_pixels") -> np.ndarray:
    """An image file as uint8 H x W x 3 BGR: :func:`read_file`, then
    :func:`decode` with ``color=True``. Raises :class:`ImageError`."""
    return decode(read_file(path), max_pixels, option, color=True)[0]


# ---------------------------------------------------------------- pictures
def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) scaled down, keeping the aspect ratio, to at most
    ``max_pixels`` pixels (each side at least 1); unchanged when it has
    no more."""
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def bounded_copy(image: Any, max_pixels: int = PICTURE_PIXELS) -> np.ndarray:
    """``image`` (H x W or H x W x C) itself when it has at most
    ``max_pixels`` pixels, else a copy shrunk to that (area interpolation,
    the aspect ratio kept): what the pictures of a very large image are
    made from."""
    height, width = image.shape[:2]
    size = fit_size(width, height, max_pixels)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
