"""``utils.image``: preprocessing, the overlay and the scaling and resizing of maps, against
numbers worked out by hand.
"""
import math

import cv2
import numpy as np
import pytest
import torch

from pytorch_grad_cam.utils.image import deprocess_image, preprocess_image, scale_cam_image, show_cam_on_image


# ------------------------------------------------------------------ image
def test_preprocess_image_normalises_with_imagenet_statistics():
    img = np.array([[[0.0, 0.5, 1.0], [0.485, 0.456, 0.406]]], dtype=np.float32)  # 1 x 2 x 3
    x = preprocess_image(img)
    assert isinstance(x, torch.Tensor) and x.shape == (1, 3, 1, 2) and x.dtype == torch.float32
    expected = np.array([
        [[(0.0 - 0.485) / 0.229, 0.0]],
        [[(0.5 - 0.456) / 0.224, 0.0]],
        [[(1.0 - 0.406) / 0.225, 0.0]],
    ])
    np.testing.assert_allclose(x[0].numpy(), expected, atol=1e-6)


def test_preprocess_image_custom_statistics_and_uint8():
    img = np.array([[[0, 51, 255]]], dtype=np.uint8)
    x = preprocess_image(img, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, -0.6, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="H x W x C"):
        preprocess_image(np.zeros((4, 4)))


def test_deprocess_image_contrast_stretch():
    img = np.array([[0.0, 1.0], [2.0, 3.0]])
    std = math.sqrt(1.25)  # mean 1.5
    expected = [np.uint8(np.clip((v - 1.5) / (std + 1e-5) * 0.1 + 0.5, 0, 1) * 255)
                for v in (0.0, 1.0, 2.0, 3.0)]
    out = deprocess_image(img)
    assert out.dtype == np.uint8
    assert out.flatten().tolist() == [int(e) for e in expected] == [93, 116, 138, 161]
    assert deprocess_image(np.full((2, 2), 7.0)).flatten().tolist() == [127] * 4
    # one outlier among 100 zeros lies 10 standard deviations out: clipped to 1
    outlier = np.zeros(101)
    outlier[0] = 1.0
    assert deprocess_image(outlier)[0] == 255


@pytest.mark.parametrize("use_rgb", [False, True])
def test_show_cam_on_image_extremes_of_the_colormap(use_rgb):
    black = np.zeros((2, 2, 3), dtype=np.float32)
    # JET: 1 -> dark red (BGR 0, 0, 128), 0 -> dark blue (BGR 128, 0, 0);
    # on a black image the overlay is scaled to its maximum
    hot = show_cam_on_image(black, np.ones((2, 2)), use_rgb=use_rgb)
    cold = show_cam_on_image(black, np.zeros((2, 2)), use_rgb=use_rgb)
    assert hot.dtype == np.uint8 and hot.shape == (2, 2, 3)
    red, blue = [0, 0, 255], [255, 0, 0]
    if use_rgb:
        red, blue = blue, red
    assert hot.reshape(-1, 3).tolist() == [red] * 4
    assert cold.reshape(-1, 3).tolist() == [blue] * 4


def test_show_cam_on_image_blend():
    rng = np.random.default_rng(0)
    img = rng.random((5, 4, 3), dtype=np.float32)
    mask = rng.random((5, 4), dtype=np.float32)
    out = show_cam_on_image(img, mask, use_rgb=True, image_weight=0.3)
    heat = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * mask), cv2.COLORMAP_JET),
                        cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    blend = 0.7 * heat + 0.3 * img
    expected = np.uint8(255 * blend / blend.max())
    np.testing.assert_array_equal(out, expected)


def test_show_cam_on_image_rejects_bad_arguments():
    img = np.zeros((2, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide it by 255"):
        show_cam_on_image(np.full((2, 2, 3), 200.0, dtype=np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="uint8 image"):
        show_cam_on_image(np.zeros((2, 2, 3), dtype=np.int32), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="image_weight"):
        show_cam_on_image(img, np.zeros((2, 2)), image_weight=1.5)
    with pytest.raises(ValueError, match="mask"):
        show_cam_on_image(img, np.zeros((3, 2)))


def test_show_cam_on_image_accepts_uint8_photos_as_their_float_version():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    mask = rng.random((6, 5), dtype=np.float32)
    np.testing.assert_array_equal(show_cam_on_image(photo, mask, use_rgb=True),
                                  show_cam_on_image(np.float32(photo) / 255, mask, use_rgb=True))


def test_show_cam_on_image_of_another_size_names_the_resize_or_resizes():
    rng = np.random.default_rng(2)
    photo = rng.random((30, 45, 3), dtype=np.float32)   # H x W = 30 x 45
    small = rng.random((7, 7), dtype=np.float32)        # a map at the layer's size
    with pytest.raises(ValueError) as error:
        show_cam_on_image(photo, small)
    message = str(error.value)
    assert "resize=True" in message and "cv2.resize(mask, (45, 30))" in message
    resized = show_cam_on_image(photo, small, resize=True)
    assert resized.shape == (30, 45, 3)
    # exactly the overlay of the map resized the way the message says
    expected = show_cam_on_image(photo, cv2.resize(small, (45, 30)))
    np.testing.assert_array_equal(resized, expected)
    # and not just any overlay: a map that is hot on the left is red on the left
    left_hot = np.zeros((7, 7), np.float32)
    left_hot[:, :3] = 1
    picture = show_cam_on_image(np.zeros((30, 45, 3), np.float32), left_hot, resize=True)
    left, right = picture[15, 2].astype(int), picture[15, 42].astype(int)  # BGR
    assert left[2] > 100 and left[0] < 30      # red on the left
    assert right[0] > 100 and right[2] < 30    # blue on the right
    with pytest.raises(ValueError, match="H x W map"):
        show_cam_on_image(photo, rng.random((1, 7, 7)), resize=True)


def test_scale_cam_image_numpy_uses_opencv_size_order():
    cams = np.array([[[0.0, 2.0], [4.0, 8.0]], [[1.0, 1.0], [1.0, 1.0]]], dtype=np.float32)
    out = scale_cam_image(cams, (4, 3))  # (width, height) as in OpenCV
    assert isinstance(out, np.ndarray) and out.shape == (2, 3, 4) and out.dtype == np.float32
    first = cv2.resize(np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32), (4, 3),
                       interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out[0], first, atol=1e-6)
    assert out[0, 0, 0] == 0 and out[0, -1, -1] == pytest.approx(1)
    assert not out[1].any()  # a constant map becomes zeros
    np.testing.assert_allclose(scale_cam_image(cams)[0], [[0, 0.25], [0.5, 1]], atol=1e-7)


def test_scale_cam_image_torch_keeps_torch_and_uses_tensor_size_order():
    cams = torch.tensor([[[-1.0, 1.0, 3.0]]])  # 1 x 1 x 3
    out = scale_cam_image(cams, (2, 3))  # (H, W) for tensors
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 3)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5, 1.0]] * 2))


@pytest.mark.parametrize("size_in, size_out", [((7, 7), (224, 224)), ((14, 10), (224, 160)),
                                               ((13, 17), (300, 500)), ((1, 1), (5, 4)),
                                               ((7, 7), (7, 7)), ((2, 3), (2, 9)),
                                               ((30, 30), (224, 20)), ((56, 56), (28, 28))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resize_equals_bilinear_interpolation(size_in, size_out, dtype):
    # enlargements take the matrix-product path, the other sizes the kernel;
    # both must sample as F.interpolate(bilinear, align_corners=False) does
    from pytorch_grad_cam.utils.image import _resize
    cams = torch.rand((3,) + size_in, generator=torch.Generator().manual_seed(0)).to(dtype)
    expected = torch.nn.functional.interpolate(cams[:, None].double(), size=size_out,
                                               mode="bilinear", align_corners=False)[:, 0]
    out = _resize(cams, size_out)
    assert out.shape == (3,) + size_out and out.dtype == dtype
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out.double(), expected, atol=atol, rtol=0)


def test_resize_matrices_cached_in_inference_mode_still_work_with_autograd():
    from pytorch_grad_cam.utils.image import scale_tensor
    with torch.inference_mode():
        scale_tensor(torch.rand(1, 3, 5), (17, 19))  # caches the matrices
    cams = torch.rand(2, 3, 5, requires_grad=True)
    scale_tensor(cams, (17, 19)).sum().backward()
    assert cams.grad is not None and torch.isfinite(cams.grad).all()


def test_scale_tensor_resized_maps_keep_their_range_and_constant_maps_stay_zero():
    from pytorch_grad_cam.utils.image import scale_tensor
    cams = torch.rand(4, 7, 7, generator=torch.Generator().manual_seed(1)) * 1e-30
    cams[2] = 5.0  # constant
    cams[3] = torch.arange(49.0).reshape(7, 7) - 100  # negative values
    out = scale_tensor(cams, (224, 224))
    assert out.min() >= 0 and out.max() <= 1
    assert not out[2].any()
    for index in (0, 1, 3):  # tiny and negative maps are stretched like any other
        assert out[index].max() > 0.9 and out[index].min() < 0.1
    assert scale_tensor(torch.tensor([[[1, 3], [5, 9]]]))[0, 1, 1] == 1  # integer maps
