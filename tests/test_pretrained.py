"""The five methods on a real pretrained ImageNet classifier and real photos.

EfficientNet-Lite0 (the ``pretrained`` fixture), target layer
``model.head_activation`` (1280 x 7 x 7 at 224 x 224). The regions are
defined and documented in conftest.py: CAT_HEAD / CAT_BACKGROUND on
skimage's chelsea (a tabby cat), CUP on skimage's coffee (an espresso).
Each method runs once, on both photos as one batch of two images.
"""
import numpy as np
import pytest
import torch
from photo_regions import CAT_BACKGROUND, CAT_HEAD, CUP, ESPRESSO, peak_in, region_mean

from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

METHODS = [GradCAM, GradCAMPlusPlus, XGradCAM, AblationCAM, ScoreCAM]
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


@pytest.mark.parametrize("method", METHODS, ids=[m.__name__ for m in METHODS])
def test_map_of_the_top_class_lies_on_the_object(method, pretrained, photos, top_classes):
    # ScoreCAM forwards ~1300 masked 224 x 224 images (its default chunks
    # of 16 are the fastest on a CPU); AblationCAM in large chunks runs the
    # network before the target layer only twice per image
    kwargs = {} if method.uses_gradients else {"progress": False}
    if method is AblationCAM:
        kwargs["batch_size"] = 640
    targets = [ClassifierOutputTarget(top_classes[0]), ClassifierOutputTarget(ESPRESSO)]
    with method(model=pretrained, target_layers=[pretrained.head_activation], **kwargs) as cam:
        cat, cup = cam(input_tensor=photos, targets=targets)
        outputs = cam.outputs
    assert outputs.argmax(dim=1).tolist() == top_classes
    for m in (cat, cup):
        assert m.shape == (224, 224) and m.dtype == np.float32
        assert m.min() >= 0 and m.max() == pytest.approx(1, abs=1e-6)
    assert peak_in(cat, CAT_HEAD), np.unravel_index(np.argmax(cat), cat.shape)
    assert region_mean(cat, CAT_HEAD) > region_mean(cat, CAT_BACKGROUND)
    assert peak_in(cup, CUP), np.unravel_index(np.argmax(cup), cup.shape)
