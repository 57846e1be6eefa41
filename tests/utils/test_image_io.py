"""pytorch_grad_cam.utils.image_io: reading image files bounded in time
(named pipes, devices), in bytes and in pixels (a decompression bomb is
refused by its header, never decoded), the folder lister, the bounded
picture copy, and the one list of image suffixes the front-ends share."""
import io
import sys

import cv2
import numpy as np
import pytest
from hostile_inputs import deadline, good_png, png_bomb, special_folder
from PIL import Image, UnidentifiedImageError

from pytorch_grad_cam.cli import job
from pytorch_grad_cam.datasets import sources
from pytorch_grad_cam.demo import request
from pytorch_grad_cam.utils import image_io
from pytorch_grad_cam.utils.image_io import ImageError, TooManyPixels

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="named pipes and /dev")


def _error(function, *args, **kwargs) -> ImageError:
    with deadline(20), pytest.raises(ImageError) as caught:
        function(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------ bombs
def test_a_bomb_is_measured_by_its_header_and_never_decoded(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    data = image_io.read_file(bomb)
    assert len(data) < 60_000  # 400 megapixels in under 60 KB
    assert image_io.image_size(data) == (20_000, 20_000)  # Pillow's own limit is not in the way
    error = _error(image_io.decode, data)
    assert isinstance(error, TooManyPixels) and error.status == "too_large"
    assert (error.width, error.height, error.limit) == (20_000, 20_000, 80_000_000)
    assert error.reason == ("20000 x 20000 pixels (400 megapixels) is more than "
                            "max_pixels=80000000; downscale it or raise max_pixels")
    assert _error(image_io.read_bgr, bomb, option="--max-pixels").reason == (
        "20000 x 20000 pixels (400 megapixels) is more than --max-pixels 80000000; downscale "
        "it or raise --max-pixels")


def test_the_pixel_limit_is_inclusive_and_the_callers(tmp_path):
    path = png_bomb(tmp_path / "small.png", 300, 200)  # 60000 pixels
    assert image_io.read_bgr(path, max_pixels=60_000).shape == (200, 300, 3)
    assert _error(image_io.read_bgr, path, max_pixels=59_999).reason.startswith(
        "300 x 200 pixels (0.1 megapixels) is more than max_pixels=59999")


def test_decoding_is_what_opencv_gives(tmp_path):
    path = good_png(tmp_path / "photo.png", 30, 40)
    np.testing.assert_array_equal(image_io.read_bgr(path), cv2.imread(str(path)))
    gray = tmp_path / "gray16.png"
    cv2.imwrite(str(gray), np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    image, bgr = image_io.decode(image_io.read_file(gray))
    assert bgr and image.dtype == np.uint16 and image.shape == (20, 30)  # as stored


def test_a_format_opencv_cannot_read_goes_through_pillow_with_the_same_limit(tmp_path):
    path = tmp_path / "photo.pcx"
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 10
    Image.fromarray(rgb).save(path)
    data = image_io.read_file(path)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None
    np.testing.assert_array_equal(image_io.read_bgr(path), rgb[..., ::-1])
    image, bgr = image_io.decode(data)
    assert not bgr
    np.testing.assert_array_equal(image, rgb)
    assert isinstance(_error(image_io.read_bgr, path, max_pixels=500), TooManyPixels)


@pytest.mark.parametrize("data, reason", [
    (b"", "the file is empty (0 bytes)"),
    (b"this is not an image", "not a readable image (no image format recognises it)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a readable image (no image format "
                                                   "recognises it)"),
])
def test_what_is_not_an_image(data, reason):
    error = _error(image_io.decode, data)
    assert (error.status, error.reason) == ("unreadable", reason)


def test_an_error_names_no_object_by_its_memory_address():
    """Pillow names an in-memory file by its repr (cannot identify image
    file <_io.BytesIO object at 0x7f...>): the reason says what it is."""
    # Pillow's own wording (PIL.Image.open), built here: which openers Image.open tries
    # depends on the plugins other packages registered in this process
    raised = UnidentifiedImageError(f"cannot identify image file {io.BytesIO(b'x')!r}")
    assert " at 0x" in str(raised)
    assert image_io.first_line(raised) == (
        "UnidentifiedImageError: cannot identify image file (bytes in memory)")
    error = ValueError(f"got {object()!r} and {Image.new('RGB', (2, 2))!r}\nsecond line")
    assert image_io.first_line(error) == "ValueError: got (an object object) and (an Image object)"


def test_a_pillow_image_that_cannot_be_decoded_is_an_image_error():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buffer, "PNG")
    opened = Image.open(io.BytesIO(buffer.getvalue()[:60]))  # the header only: decoded later
    error = _error(image_io.pillow_array, opened)
    assert (error.status, error.reason) == ("unreadable", "not a readable image (OSError: "
                                                          "image file is truncated)")


# ---------------------------------------------------------- special files
@posix_only
@pytest.mark.parametrize("name, reason", [
    ("pipe.png", "a named pipe, not a regular file"),
    ("zero.png", "a character device (/dev/zero), not a regular file"),
    ("random.png", "a character device (/dev/urandom), not a regular file"),
])
def test_pipes_and_devices_are_refused_without_blocking(tmp_path, name, reason):
    folder = special_folder(tmp_path / "photos")
    for function in (image_io.check_regular_file, image_io.read_file, image_io.read_bgr):
        error = _error(function, folder / name)
        assert (error.status, error.reason) == ("not_a_file", reason)


@posix_only
def test_the_opened_descriptor_is_checked_too(tmp_path, monkeypatch):
    """A file swapped for a named pipe after the check: os.open does not
    wait for a writer (O_NONBLOCK) and fstat refuses it."""
    folder = special_folder(tmp_path / "photos")
    monkeypatch.setattr(image_io, "check_regular_file", lambda path: None)
    error = _error(image_io.read_file, folder / "pipe.png")
    assert (error.status, error.reason) == ("not_a_file", "a named pipe, not a regular file")
    assert _error(image_io.read_file, folder / "zero.png").reason == (
        "a character device (/dev/zero), not a regular file")


@posix_only
def test_links_and_missing_files(tmp_path):
    folder = special_folder(tmp_path / "photos")
    error = _error(image_io.read_file, folder / "gone.png")
    assert (error.status, error.reason) == (
        "not_a_file", f"a broken symbolic link (to {folder / 'missing.png'}), not a regular file")
    assert image_io.read_file(folder / "link.png") == (folder / "a_good.png").read_bytes()
    error = _error(image_io.read_file, tmp_path / "nowhere.png")
    assert (error.status, error.reason) == ("unreadable", "no such file")
    error = _error(image_io.read_file, folder)
    assert (error.status, error.reason) == ("not_a_file", "a folder, not a regular file")


def test_the_number_of_bytes_read_is_bounded(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(bytes(100))
    error = _error(image_io.read_file, path, max_bytes=99)
    assert (error.status, error.reason) == (
        "too_large", "the file is larger than 99 bytes (the most that is read)")
    assert image_io.read_file(path, max_bytes=100) == bytes(100)
    with open(path, "wb") as handle:  # sparse: 1 GiB + 1 byte, nothing written
        handle.truncate(image_io.MAX_FILE_BYTES + 1)
    assert _error(image_io.read_file, path).reason == (
        "the file is larger than 1 GiB (the most that is read)")


@posix_only
def test_the_lister_keeps_regular_files_and_names_the_others(tmp_path):
    folder = special_folder(tmp_path / "photos")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image suffix")
    (folder / "sub.png").mkdir()  # a folder named like an image: not an entry
    good_png(folder / "sub.png" / "inner.PNG")
    images, others = image_io.find_images(folder)
    assert images == [folder / "a_good.png", folder / "link.png", folder / "sub.png" / "inner.PNG"]
    assert [(path.name, error.status, error.reason) for path, error in others] == [
        ("gone.png", "not_a_file",
         f"a broken symbolic link (to {folder / 'missing.png'}), not a regular file"),
        ("pipe.png", "not_a_file", "a named pipe, not a regular file"),
        ("random.png", "not_a_file", "a character device (/dev/urandom), not a regular file"),
        ("zero.png", "not_a_file", "a character device (/dev/zero), not a regular file"),
    ]
    assert image_io.find_images(folder, recursive=False)[0] == [folder / "a_good.png",
                                                                folder / "link.png"]
    assert sources.list_images(folder) == images  # the dataset runner's public lister


# ------------------------------------------------------------- the sharing
def test_one_list_of_suffixes_and_one_limit():
    assert job.IMAGE_SUFFIXES is sources.IMAGE_SUFFIXES is image_io.IMAGE_SUFFIXES
    old_cli = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
    old_datasets = old_cli + (".gif", ".ppm", ".pgm", ".pbm")
    assert set(old_cli) | set(old_datasets) <= set(image_io.IMAGE_SUFFIXES)
    assert request.MAX_READ_PIXELS is image_io.MAX_READ_PIXELS == 80_000_000
    assert sources.BadItem is ImageError
    assert {"too_large", "not_a_file"} <= set(sources.STATUSES)


def test_bounded_copy():
    small = np.zeros((2000, 2000, 3), np.uint8)  # exactly PICTURE_PIXELS: itself
    assert image_io.bounded_copy(small) is small
    big = np.zeros((3000, 6000), np.uint16)
    copy = image_io.bounded_copy(big)
    assert copy.shape == (1414, 2828) and copy.dtype == np.uint16
    assert copy.size <= image_io.PICTURE_PIXELS == 4_000_000
    assert image_io.fit_size(6000, 3000, 4_000_000) == (2828, 1414)
    assert image_io.fit_size(5, 1, 2) == (3, 1)

