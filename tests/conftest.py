"""Shared fixtures: the pretrained EfficientNet-Lite0, real photos, tiny models."""

import pytest
import torch
from photo_regions import load_photo  # tests/photo_regions.py

from pytorch_grad_cam.utils.image import preprocess_image


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
# editing a list. The first five are the methods that explain any network
# with feature maps (the tests run them on small CNNs); the attention_*
# ones are the methods that explain a Vision Transformer's attention
# (registry trait ``attention``), which the tests run on the tiny Vision
# Transformers of every supported family (``vit`` below).
def _registry_params():
    from pytorch_grad_cam.registry import registered_methods

    return {
        "method_name": registered_methods(attention=False),
        "gradient_method": registered_methods(uses_gradients=True, attention=False),
        "perturbation_method": registered_methods(perturbation=True, attention=False),
        "class_specific_method": registered_methods(class_specific=True, attention=False),
        "class_agnostic_method": registered_methods(class_specific=False, attention=False),
        "attention_method": registered_methods(attention=True),
        "attention_gradient_method": registered_methods(attention=True, uses_gradients=True),
        "attention_class_specific_method": registered_methods(attention=True,
                                                              class_specific=True),
        "attention_class_agnostic_method": registered_methods(attention=True,
                                                              class_specific=False),
    }


def pytest_generate_tests(metafunc):
    for argument, infos in _registry_params().items():
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, [info.name for info in infos])


# ------------------------------------------- tiny Vision Transformers, by family
# (defined in tests/vit_cases.py, which test files import: a test file's
# "from conftest import ..." may find tests/demo/conftest.py instead)
from vit_cases import VIT_CASES, VIT_FAMILIES  # noqa: E402


@pytest.fixture(params=VIT_FAMILIES)
def vit(request):
    """Every supported family's tiny Vision Transformer (a ViTCase)."""
    return VIT_CASES[request.param]
