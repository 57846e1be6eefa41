"""Shared fixtures: the pretrained EfficientNet-Lite0, real photos, tiny models."""
import cv2
import numpy as np
import pytest
import torch

from pytorch_grad_cam.utils.image import preprocess_image

# Regions of the 224 x 224 resized photos, as (y0, y1, x0, x1), read off the
# pictures (tests/README.md shows how to look at them):
# skimage.data.chelsea(): the cat's head fills the left three quarters of
# the frame; its eyes sit near (y 85, x 85) and (y 100, x 155), the nose
# near (y 175, x 130). The strip right of x = 196 is background.
CAT_HEAD = (30, 224, 25, 190)
CAT_BACKGROUND = (0, 224, 196, 224)
# skimage.data.coffee(): the cup (rim, coffee and body) spans x 60-160,
# y 10-135; the saucer lies around it, table wood in the corners.
CUP = (5, 140, 55, 170)

EGYPTIAN_CAT, TABBY, ESPRESSO = 285, 281, 967


def load_photo(name: str, size: int = 224) -> np.ndarray:
    """An skimage.data photo as H x W x 3 float32 RGB in [0, 1], resized."""
    import skimage.data

    img = getattr(skimage.data, name)()
    return cv2.resize(img, (size, size)).astype(np.float32) / 255


def region_mean(cam: np.ndarray, region) -> float:
    y0, y1, x0, x1 = region
    return float(cam[y0:y1, x0:x1].mean())


def peak_in(cam: np.ndarray, region) -> bool:
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    y0, y1, x0, x1 = region
    return y0 <= y < y1 and x0 <= x < x1


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def pretrained():
    """The pretrained EfficientNet-Lite0 (eval mode); explain model.head_activation."""
    from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

    return load_efficientnet_lite0()


@pytest.fixture(scope="session")
def chelsea():
    img = load_photo("chelsea")
    return img, preprocess_image(img)


@pytest.fixture(scope="session")
def coffee():
    img = load_photo("coffee")
    return img, preprocess_image(img)


# ------------------------------------------------ tests generated from the registry
# A test that takes one of these arguments runs once for every registered
# method with that trait (names as the command line spells them), so a new
# method goes through the guarantees every method owes without anyone
# editing a list.
def _registry_params():
    from pytorch_grad_cam.registry import registered_methods

    return {
        "method_name": registered_methods(),
        "gradient_method": registered_methods(uses_gradients=True),
        "perturbation_method": registered_methods(perturbation=True),
        "class_specific_method": registered_methods(class_specific=True),
        "class_agnostic_method": registered_methods(class_specific=False),
    }


def pytest_generate_tests(metafunc):
    for argument, infos in _registry_params().items():
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, [info.name for info in infos])
