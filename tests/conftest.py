"""Shared fixtures: the pretrained EfficientNet-Lite0, real photos, tiny models."""
import pytest
import torch

from pytorch_grad_cam.utils.image import preprocess_image

from photo_regions import load_photo  # tests/photo_regions.py


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
