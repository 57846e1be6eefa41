"""pytorch_grad_cam.datasets.sources: what the runner reads, and how it
records what it must not read: a named pipe or a link to a device in a
folder or a list (``not_a_file``, never a read that waits), a
decompression bomb (``too_large``, by its header, never decoded), while
the other images are explained."""
import sys

import numpy as np
import pytest
from dataset_helpers import LAYER, SMALL, TinyNet, write_photos
from hostile_inputs import deadline, png_bomb, special_folder

from pytorch_grad_cam.datasets import STATUSES, explain_dataset, open_results
from pytorch_grad_cam.datasets.sources import decode_image, list_images, load_picture

FAST = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False}
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="named pipes and /dev")


@posix_only
def test_pipes_devices_and_broken_links_in_a_folder_are_rows(tmp_path):
    folder = special_folder(tmp_path / "photos")
    assert list_images(folder) == [folder / "a_good.png", folder / "link.png"]
    with deadline(120):  # a read that blocks fails the test instead of hanging it
        summary = explain_dataset(folder, TinyNet(), "gradcam", out=tmp_path / "out", **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame.set_index("id")
    assert frame["status"].to_dict() == {
        "a_good.png": "ok", "gone.png": "not_a_file", "link.png": "ok",
        "pipe.png": "not_a_file", "random.png": "not_a_file", "zero.png": "not_a_file"}
    assert frame["reason"].to_dict() == {
        "a_good.png": "", "link.png": "",
        "gone.png": f"a broken symbolic link (to {folder / 'missing.png'}), not a regular file",
        "pipe.png": "a named pipe, not a regular file",
        "random.png": "a character device (/dev/urandom), not a regular file",
        "zero.png": "a character device (/dev/zero), not a regular file"}
    assert summary.status_counts == {"not_a_file": 4, "ok": 2}
    assert "4 not_a_file" in str(summary)
    np.testing.assert_array_equal(results.map(results.find("link.png")),
                                  results.map(results.find("a_good.png")))


@posix_only
def test_pipes_and_devices_in_a_list_are_rows(tmp_path):
    folder = special_folder(tmp_path / "photos")
    paths = [folder / "a_good.png", folder / "pipe.png", "/dev/zero", tmp_path / "nowhere.png"]
    with deadline(120):
        explain_dataset(paths, TinyNet(), out=tmp_path / "out", **FAST)
    frame = open_results(tmp_path / "out").frame
    assert list(zip(frame["status"], frame["reason"])) == [
        ("ok", ""), ("not_a_file", "a named pipe, not a regular file"),
        ("not_a_file", "a character device, not a regular file"),
        ("unreadable", "no such file")]


def test_a_bomb_is_a_too_large_row_and_the_others_are_explained(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 2)
    png_bomb(folder / "bomb.png")
    summary = explain_dataset(folder, TinyNet(), out=tmp_path / "out", report=True, **FAST)
    frame = open_results(tmp_path / "out").frame.set_index("id")
    assert frame["status"].to_dict() == {"bomb.png": "too_large", "img_000.png": "ok",
                                         "img_001.png": "ok"}
    assert frame["reason"]["bomb.png"] == ("20000 x 20000 pixels (400 megapixels) is more than "
                                           "max_pixels=80000000; downscale it or raise max_pixels")
    assert summary.status_counts == {"ok": 2, "too_large": 1}
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<td>too_large</td>" in page.replace(' class="text"', "")
    assert "too_large" in STATUSES and "not_a_file" in STATUSES


def test_max_pixels_is_the_callers(tmp_path):
    path = png_bomb(tmp_path / "wide.png", 300, 200)  # 60000 pixels
    explain_dataset([path], TinyNet(), out=tmp_path / "a", max_pixels=60_000, **FAST)
    assert list(open_results(tmp_path / "a").frame["status"]) == ["ok"]
    explain_dataset([path], TinyNet(), out=tmp_path / "b", max_pixels=59_999, **FAST)
    frame = open_results(tmp_path / "b").frame
    assert list(frame["status"]) == ["too_large"]
    assert frame["reason"][0].startswith("300 x 200 pixels (0.1 megapixels) is more than "
                                         "max_pixels=59999")
    with pytest.raises(ValueError, match="max_pixels must be >= 1, got 0"):
        explain_dataset([path], TinyNet(), out=tmp_path / "c", max_pixels=0, **FAST)


def test_pictures_are_bounded_and_decoding_is_unchanged(tmp_path):
    path = png_bomb(tmp_path / "wide.png", 3000, 2000)  # 6 megapixels
    assert decode_image(path).shape == (2000, 3000, 3)
    picture = load_picture(path)
    assert picture.shape == (1632, 2449, 3) and picture.dtype == np.float32
    small = write_photos(tmp_path / "photos", 1)[0]
    np.testing.assert_array_equal(load_picture(small), decode_image(small) * np.float32(1 / 255))
