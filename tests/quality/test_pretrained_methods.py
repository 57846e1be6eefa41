"""On the pretrained EfficientNet-Lite0, the maps of the methods beyond the first five find
the cat in chelsea; SSCAM and ISCAM on a smaller chelsea; Deep Feature Factorization finds
a cat concept."""
import warnings

import cv2
import numpy as np
import pytest
from photo_regions import CAT_BACKGROUND, CAT_HEAD, EGYPTIAN_CAT, TABBY, load_photo, peak_in, region_mean

from pytorch_grad_cam import ISCAM, METHODS, SSCAM, DeepFeatureFactorization
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

pytestmark = pytest.mark.slow  # the pretrained EfficientNet-Lite0 on photos

# ------------------------------------------------ the pretrained classifier
# The class-discriminative methods without perturbation passes (registry
# traits, ``localising_single_pass_method``; Score-CAM and Ablation-CAM, with
# their perturbation passes, are checked on chelsea and coffee in
# tests/quality/test_pretrained.py). Not class-discriminative,
# so not in that list: RandomCAM (random weights), and EigenCAM, KPCA_CAM and
# FEM, which ignore the target (they map what the layer responds to most; on
# this photo that is the cat too, checked by ``dominant_object_method``).


def _pretrained_map(model, photo, name, targets=None):
    method = METHODS[name]
    layers = [model.head_activation]
    if name == "refinecam":
        layers = [model.net._blocks[10], model.head_activation]  # 14 x 14 and 7 x 7
    kwargs = {"num_samples": 4} if name == "smoothgradcam++" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cam = method(model=model, target_layers=layers, progress=False, **kwargs)
    return cam(photo, targets)[0]


def test_pretrained_top_class_map_peaks_on_the_cat(pretrained, chelsea,
                                                   localising_single_pass_method):
    name = localising_single_pass_method
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, name)
    assert peak_in(cam, CAT_HEAD), np.unravel_index(int(np.argmax(cam)), cam.shape)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)


def test_pretrained_shapleycam_with_rest_target_peaks_on_the_cat(pretrained, chelsea):
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, "shapleycam", [ClassifierOutputReST(EGYPTIAN_CAT)])
    assert peak_in(cam, CAT_HEAD)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)


def test_pretrained_class_agnostic_maps_find_the_dominant_object(pretrained, chelsea,
                                                                 dominant_object_method):
    name = dominant_object_method
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, name)
    assert peak_in(cam, CAT_HEAD)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)


# ------------------------------------------ SSCAM, ISCAM and Deep Feature Factorization
# ---------------------------------------------------- the pretrained model
@pytest.fixture(scope="module")
def chelsea_small():
    # 128 x 128 keeps the 1280-channel ScoreCAM passes affordable (a 4 x 4
    # head); the map is resized to 224 to be compared with CAT_HEAD
    return preprocess_image(load_photo("chelsea", 128))


# one noisy sample (the default noise_std) and two path steps: every sample
# costs a full ScoreCAM pass over the 1280 channels
@pytest.mark.parametrize("method,kwargs", [(SSCAM, {"n_samples": 1}), (ISCAM, {"n_samples": 2})])
def test_pretrained_maps_peak_on_the_cat(pretrained, chelsea_small, method, kwargs):
    top = int(pretrained(chelsea_small).argmax())
    assert top in (EGYPTIAN_CAT, TABBY)
    with method(pretrained, [pretrained.head_activation], progress=False, batch_size=64,
                **kwargs) as cam:
        result = cam(chelsea_small, targets=[ClassifierOutputTarget(top)])[0]
    big = cv2.resize(result, (224, 224))
    assert peak_in(big, CAT_HEAD)
    assert region_mean(big, CAT_HEAD) > big.mean()


def test_pretrained_dff_finds_a_cat_concept(pretrained, chelsea):
    img, x = chelsea
    with DeepFeatureFactorization(pretrained, pretrained.head_activation,
                                  computation_on_concepts=pretrained.net._fc) as method:
        _, explanations, outputs = method(x, n_components=4)
    categories = outputs.argmax(axis=1)
    cats = [j for j, c in enumerate(categories) if 281 <= c <= 285]
    assert cats, f"no concept scored as a cat: {categories.tolist()}"
    # the cat concepts cover the cat's head more than the background strip
    best = max(cats, key=lambda j: region_mean(explanations[0, j], CAT_HEAD))
    assert region_mean(explanations[0, best], CAT_HEAD) > explanations[0, best].mean()
