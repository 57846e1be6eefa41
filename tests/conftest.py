"""Shared fixtures: the pretrained EfficientNet-Lite0, real photos, tiny models."""

import pytest
import torch
from photo_regions import load_photo  # tests/photo_regions.py
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py

from pytorch_grad_cam.registry import registered_methods
from pytorch_grad_cam.utils.image import preprocess_image

#: the masks per image of the black-box methods (RISE: one forward pass per
#: mask, 1000 by default) in the quick tests
QUICK_MASKS = 24
#: the black-box methods' own defaults, read before any test runs
_DEFAULT_MASKS = {info.cls: info.cls.default_num_masks
                  for info in registered_methods() if info.black_box}


def pytest_runtest_setup(item):
    """The quick tests run the black-box methods (registry trait
    ``black_box``: RISE) with ``QUICK_MASKS`` masks when they give none:
    the guarantees every method owes are about the call, whatever the
    number of masks, and 1000 masks cost seconds per call. The tests
    marked ``slow`` (the maps of trained models) get the default. Set
    before the test's fixtures are made, so that a module's shared
    fixtures see the same count as its tests."""
    slow = item.get_closest_marker("slow") is not None
    for cls, default in _DEFAULT_MASKS.items():
        cls.default_num_masks = default if slow else QUICK_MASKS


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
# A test that takes one of the arguments of registry_cases.REGISTRY_PARAMS
# (``method_name``, ``gradient_method``, ``localising_method``, ...) runs
# once for every registered method with that argument's traits (names as
# the command line spells them), so a new method goes through the
# guarantees every method owes without anyone editing a list. The lists are
# declared once, in tests/registry_cases.py.
def pytest_generate_tests(metafunc):
    for argument, names in REGISTRY_PARAMS.items():
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, names)


# ------------------------------------------- tiny Vision Transformers, by family
# (defined in tests/vit_cases.py, which test files import: a test file's
# "from conftest import ..." may find tests/demo/conftest.py instead)
from vit_cases import VIT_CASES, VIT_FAMILIES  # noqa: E402


@pytest.fixture(params=VIT_FAMILIES)
def vit(request):
    """Every supported family's tiny Vision Transformer (a ViTCase)."""
    return VIT_CASES[request.param]
