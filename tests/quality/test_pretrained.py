"""Every method whose map should lie on the object, on a real pretrained
ImageNet classifier and real photos.

EfficientNet-Lite0 (the ``pretrained`` fixture), target layer
``model.head_activation`` (1280 x 7 x 7 at 224 x 224). The regions are
defined and documented in tests/photo_regions.py: CAT_HEAD / CAT_BACKGROUND
on skimage's chelsea (a tabby cat), CUP on skimage's coffee (an espresso).
Each method runs once, on both photos as one batch of two images.

The methods are generated from the registry's traits (``localising_method``
of tests/registry_cases.py): the class-specific methods for feature maps
that are not random by design. Left out by trait: the class-agnostic ones
(EigenCAM, KPCA-CAM, FEM map what the layer responds to most, whatever the
target: tests/quality/test_pretrained_methods.py checks that they find the
cat), RandomCAM (``randomised``), the attention methods (no attention in a
CNN), the sampling methods (SSCAM, ISCAM: a Score-CAM pass over the 1280
channels per sample, checked on a 128 x 128 chelsea in
tests/quality/test_pretrained_methods.py) and the black-box methods (RISE:
1000 masked copies of each photo; checked on the trained shapes CNN in
tests/quality/test_quality.py). The method that reads a linear
head (CAM, ``needs_linear_head``) finds the model's classifier itself; the
one that picks its own layers (FullGrad, not ``uses_target_layers``) gets
none.
"""
import numpy as np
import pytest
import torch
from photo_regions import CAT_BACKGROUND, CAT_HEAD, CUP, ESPRESSO, peak_in, region_mean

from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# images per forward pass of the methods with extra passes. Score-CAM
# forwards 2 x 1280 masked 224 x 224 images (its shortcut skips constant
# channels); small chunks are its fastest on a CPU (on a shared 2-core CPU:
# 36 s with 8, 57 s with 32, 62 s with 64). Ablation-CAM runs the network
# before the target layer once per chunk (3.8 s with 8, 0.8 s with 32);
# Smooth Grad-CAM++ batches its noisy copies.
BATCH_SIZE = 8
# ImageNet's domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat
CAT_CLASSES = {281, 282, 283, 284, 285}


@pytest.fixture(scope="module")
def photos(chelsea, coffee):
    return torch.cat([chelsea[1], coffee[1]])


@pytest.fixture(scope="module")
def top_classes(pretrained, photos):
    with torch.no_grad():
        return pretrained(photos).argmax(dim=1).tolist()


def test_top1_predictions(top_classes):
    assert top_classes[0] in CAT_CLASSES
    assert top_classes[1] == ESPRESSO


@pytest.mark.slow
def test_map_of_the_top_class_lies_on_the_object(localising_method, pretrained, photos,
                                                 top_classes):
    info = get_method(localising_method)
    kwargs = {"progress": False}
    if info.extra_passes:
        kwargs["batch_size"] = BATCH_SIZE
    if info.uses_target_layers:
        kwargs["target_layers"] = [pretrained.head_activation]
    targets = [ClassifierOutputTarget(top_classes[0]), ClassifierOutputTarget(ESPRESSO)]
    with info.cls(model=pretrained, **kwargs) as cam:
        cat, cup = cam(input_tensor=photos, targets=targets)
        outputs = cam.outputs
    assert outputs.argmax(dim=1).tolist() == top_classes
    for m in (cat, cup):
        assert m.shape == (224, 224) and m.dtype == np.float32
        assert m.min() >= 0 and m.max() == pytest.approx(1, abs=1e-6)
    assert peak_in(cat, CAT_HEAD), np.unravel_index(np.argmax(cat), cat.shape)
    assert region_mean(cat, CAT_HEAD) > region_mean(cat, CAT_BACKGROUND)
    assert peak_in(cup, CUP), np.unravel_index(np.argmax(cup), cup.shape)
