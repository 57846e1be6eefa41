"""pytorch_grad_cam.utils.visualization: overlays, labelled panels,
side-by-side rows and grids; and the names grad-cam 1.5.7 users import from
pytorch_grad_cam.utils.image."""
import cv2
import numpy as np
import pytest

from pytorch_grad_cam.utils import image
from pytorch_grad_cam.utils import visualization as vis


def _picture(h: int, w: int, value: int = 100) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_the_1_5_7_names_of_utils_image_still_import():
    for name in ["preprocess_image", "deprocess_image", "show_cam_on_image",
                 "show_factorization_on_image", "create_labels_legend", "scale_cam_image",
                 "scale_accross_batch_and_channels"]:
        assert callable(getattr(image, name)), name
    assert vis.show_cam_on_image is image.show_cam_on_image


def test_scale_accross_batch_and_channels_scales_every_map():
    maps = np.random.default_rng(0).random((2, 3, 7, 5)).astype(np.float32)
    scaled = image.scale_accross_batch_and_channels(maps, (10, 14))  # (width, height)
    assert scaled.shape == (2, 3, 14, 10)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(scaled[b, c],
                                       image.scale_cam_image(maps[b, c][None], (10, 14))[0])
    assert scaled.min() >= 0 and scaled.max() <= 1 + 1e-6


def test_overlay_cam_resizes_the_map_to_the_picture():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    small = rng.random((7, 7)).astype(np.float32)
    picture = vis.overlay_cam(photo, small)
    mask = np.clip(cv2.resize(small, (45, 30), interpolation=cv2.INTER_LINEAR), 0, 1)
    assert np.array_equal(picture, image.show_cam_on_image(np.float32(photo) / 255, mask))
    rgb = vis.overlay_cam(photo, small, use_rgb=True, image_weight=0.3)
    assert np.array_equal(rgb, image.show_cam_on_image(np.float32(photo) / 255, mask,
                                                       use_rgb=True, image_weight=0.3))
    # a hot map is red in BGR: channel 2 above channel 0 on a grey photo
    hot = vis.overlay_cam(_picture(10, 10, 128), np.ones((2, 2), np.float32))
    assert hot[..., 2].mean() > hot[..., 0].mean() + 50


def test_overlay_cam_refuses_what_it_cannot_draw():
    with pytest.raises(TypeError, match="image must be a uint8 H x W x 3 picture"):
        vis.overlay_cam(np.zeros((4, 4, 3), np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="cam must be an H x W map, got shape"):
        vis.overlay_cam(_picture(4, 4), np.zeros((1, 2, 2)))


def test_label_panel():
    panel = vis.label_panel(_picture(300, 451), "285 (Egyptian cat)")
    assert panel.shape == (256 + 28, round(451 * 256 / 300), 3)
    strip = panel[:28]
    assert strip.min() < 100 and (strip == 255).mean() > 0.5   # dark text on white
    assert np.all(panel[28:] == 100)
    # a long label is shrunk: its ink stays inside the strip
    narrow = vis.label_panel(_picture(256, 60), "a label far wider than the picture")
    ink = np.where((narrow[:28] < 200).any(axis=(0, 2)))[0]
    assert ink.size and ink.min() >= 2 and ink.max() <= 57


def test_side_by_side_pads_and_spaces():
    row = vis.side_by_side([_picture(10, 5, 1), _picture(6, 7, 2)], gap=3)
    assert row.shape == (10, 5 + 3 + 7, 3)
    assert np.all(row[:, :5] == 1) and np.all(row[:, 5:8] == 255)
    assert np.all(row[:6, 8:] == 2) and np.all(row[6:, 8:] == 255)
    with pytest.raises(ValueError, match="panels is empty"):
        vis.side_by_side([])


def test_caption_centres_the_text():
    strip = vis.caption("gradcam", 150)
    assert strip.shape == (24, 150, 3)
    columns = np.where((strip < 200).any(axis=(0, 2)))[0]
    assert abs((columns.min() + columns.max()) / 2 - 75) <= 2
    assert np.all(vis.caption("", 40) == 255)


def test_grid_layout():
    rows = [[_picture(20, 20, 10 * (r + 1) + c) for c in range(3)] for r in range(2)]
    picture = vis.grid(rows, ["input", "a", "b"], ["row one", "row two"], gap=3)
    # column captions, then per row: the pictures and a caption line
    assert picture.shape == (24 + 2 * (20 + 24), 3 * 20 + 2 * 3, 3)
    assert np.all(picture[24:44, 23:43] == 11)          # row 0, column 1
    assert np.all(picture[68:88, 46:66] == 22)          # row 1, column 2
    assert np.all(picture[24:44, 20:23] == 255)         # the gap
    assert (picture[44:68, :20] < 200).any()            # the row title under the first picture
    assert np.all(picture[44:68, 23:] == 255)           # and nothing under the others


def test_grid_checks_its_rows():
    with pytest.raises(ValueError, match=r"rows\[0\] has 1 pictures for 2 column titles"):
        vis.grid([[_picture(4, 4)]], ["a", "b"], ["r"])
    with pytest.raises(ValueError, match=r"rows\[0\]\[1\] has shape"):
        vis.grid([[_picture(4, 4), _picture(5, 4)]], ["a", "b"], ["r"])
    with pytest.raises(ValueError, match="row_titles has 2 entries for 1 rows"):
        vis.grid([[_picture(4, 4)]], ["a"], ["r", "s"])

