"""pytorch_grad_cam.sobel_cam: grad-cam 1.5.7's edge-map baseline."""
import numpy as np
import pytest

from pytorch_grad_cam.sobel_cam import sobel_cam


def test_a_vertical_step_gives_half_the_saturated_derivative_on_the_two_columns_beside_it():
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, 4:] = 255
    edges = sobel_cam(image)
    assert edges.dtype == np.uint8 and edges.shape == (6, 8)
    # the horizontal derivative is 4 x 255, saturated to 255; the vertical one 0;
    # their mean is 127.5, rounded to 128
    expected = np.zeros((6, 8), np.uint8)
    expected[:, 3:5] = 128
    np.testing.assert_array_equal(edges, expected)


def test_a_flat_image_has_no_edges_and_a_float_image_gives_small_integers():
    assert not sobel_cam(np.full((5, 5, 3), 90, np.uint8)).any()
    image = np.zeros((6, 8, 3), np.float32)
    image[:, 4:] = 1.0
    assert sobel_cam(image).max() == 2  # saturated to uint8 as 1.5.7 does: 4 x 1 / 2


@pytest.mark.parametrize("image, message", [
    ([[0, 1]], "img must be a numpy array"),
    (np.zeros((4, 4), np.uint8), r"img must be H x W x 3 RGB, got shape \(4, 4\)"),
    (np.zeros((4, 4, 3), np.float64), "img must be uint8 .* or float32 .*, got float64"),
])
def test_bad_images_are_refused_with_what_was_given(image, message):
    with pytest.raises((TypeError, ValueError), match=message):
        sobel_cam(image)
