"""grad-cam 1.5.7's tutorial "Pixel Attribution for embeddings.ipynb", ported offline.

(The notebook is over 4 MiB with its pictures; its code cells were read from a
public copy of it with the outputs stripped.) The tutorial's code runs
unchanged against this package: the ``ResnetFeatureExtractor`` wrapper (which
overrides ``__call__``, not ``forward``), the ``SimilarityToConceptTarget``
and ``DifferenceFromConceptTarget`` targets (cosine similarity of the 1-D
embedding of one image), and ``GradCAM(model=model,
target_layers=target_layers, use_cuda=False)`` used as a context manager,
with ``show_cam_on_image(image_float, grayscale_cam, use_rgb=True)``.

Substitutions:

- ``torchvision.models.resnet50(pretrained=True)`` -> ``resnet50(weights=None)``
  for the tutorial as written (its results are checked for their kind), and
  the pretrained EfficientNet-Lite0 of this repository with its classifier
  replaced by ``Identity`` (so it returns the 1280-d pooled embedding, as
  ``ResnetFeatureExtractor`` returns ResNet's 2048-d one) for whether the map
  means something; ``resnet.layer4[-1]`` -> ``model.head_activation`` there.
- ``get_image_from_url(url)`` -> ``get_image(name)``: the same body on local
  photos, resized to 224 x 224 instead of 512 x 512 for speed. The car
  concept -> ``skimage.data.chelsea()`` (a cat), the cloud concept ->
  ``skimage.data.coffee()`` (a cup), the query photo -> the two side by side
  (cat on the left, cup on the right), so each concept has a place to be found.
- ``Image.fromarray(...)`` -> assertions on the arrays shown.
- ``use_cuda=False`` is kept; the package accepts it with a DeprecationWarning
  (grad-cam 1.5.7 itself no longer takes it), silenced here.

What 1.5.7 returns, and is asserted here: ``cam(...)[0, :]`` a H x W float32 map in
[0, 1]; ``show_cam_on_image`` a H x W x 3 uint8 picture.
"""
import warnings

import cv2
import numpy as np
import pytest
import torch
import torchvision
from photo_regions import load_photo  # tests/photo_regions.py
from PIL import Image

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image
from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

pytestmark = pytest.mark.slow  # ResNet-50 and the pretrained model at 224 x 224


# A model wrapper that gets a resnet model and returns the features before the fully connected layer.
class ResnetFeatureExtractor(torch.nn.Module):
    def __init__(self, model):
        super(ResnetFeatureExtractor, self).__init__()  # noqa: UP008 (as the tutorial has it)
        self.model = model
        self.feature_extractor = torch.nn.Sequential(*list(self.model.children())[:-1])

    def __call__(self, x):
        return self.feature_extractor(x)[:, :, 0, 0]


def get_image(name):
    """The tutorial's get_image_from_url on a local photo (``"query"``: the
    cat and the cup side by side)."""
    if name == "query":
        img = np.hstack((np.uint8(load_photo("chelsea", 112) * 255),
                         np.uint8(load_photo("coffee", 112) * 255)))
    else:
        img = np.uint8(load_photo(name) * 255)
    img = cv2.resize(img, (224, 224))
    rgb_img_float = np.float32(img) / 255
    input_tensor = preprocess_image(rgb_img_float,
                                   mean=[0.485, 0.456, 0.406],
                                   std=[0.229, 0.224, 0.225])
    return img, rgb_img_float, input_tensor


class SimilarityToConceptTarget:
    def __init__(self, features):
        self.features = features

    def __call__(self, model_output):
        cos = torch.nn.CosineSimilarity(dim=0)
        return cos(model_output, self.features)


class DifferenceFromConceptTarget:
    def __init__(self, features):
        self.features = features

    def __call__(self, model_output):
        cos = torch.nn.CosineSimilarity(dim=0)
        return 1 - cos(model_output, self.features)


def run_tutorial(model, target_layers):
    """The tutorial's cells from the concept embeddings on; returns the maps and pictures."""
    car_img, car_img_float, car_tensor = get_image("chelsea")
    cloud_img, cloud_img_float, cloud_tensor = get_image("coffee")
    car_concept_features = model(car_tensor)[0, :]
    cloud_concept_features = model(cloud_tensor)[0, :]
    shown = [np.hstack((cloud_img, car_img))]
    Image.fromarray(shown[-1])

    image, image_float, input_tensor = get_image("query")
    Image.fromarray(image)

    car_targets = [SimilarityToConceptTarget(car_concept_features)]
    cloud_targets = [SimilarityToConceptTarget(cloud_concept_features)]

    # Where is the car in the image
    with GradCAM(model=model,
                 target_layers=target_layers,
                 use_cuda=False) as cam:
        car_grayscale_cam = cam(input_tensor=input_tensor,
                            targets=car_targets)[0, :]
    car_cam_image = show_cam_on_image(image_float, car_grayscale_cam, use_rgb=True)
    shown.append(car_cam_image)

    # Where is the cloud in the image
    with GradCAM(model=model,
                 target_layers=target_layers,
                 use_cuda=False) as cam:
        cloud_grayscale_cam = cam(input_tensor=input_tensor,
                            targets=cloud_targets)[0, :]
    cloud_cam_image = show_cam_on_image(image_float, cloud_grayscale_cam, use_rgb=True)
    shown.append(cloud_cam_image)

    not_car_targets = [DifferenceFromConceptTarget(car_concept_features)]
    not_cloud_targets = [DifferenceFromConceptTarget(cloud_concept_features)]

    # Where is the cloud not in the image?
    with GradCAM(model=model,
                 target_layers=target_layers,
                 use_cuda=False) as cam:
        not_cloud_grayscale_cam = cam(input_tensor=input_tensor,
                            targets=not_cloud_targets)[0, :]
    shown.append(show_cam_on_image(image_float, not_cloud_grayscale_cam, use_rgb=True))

    # Where is the car not in the image?
    with GradCAM(model=model,
                 target_layers=target_layers,
                 use_cuda=False) as cam:
        not_car_grayscale_cam = cam(input_tensor=input_tensor,
                            targets=not_car_targets)[0, :]
    shown.append(show_cam_on_image(image_float, not_car_grayscale_cam, use_rgb=True))

    shown.append(np.hstack((cloud_img, car_img, image, car_cam_image, cloud_cam_image)))
    Image.fromarray(shown[-1])
    maps = {"car": car_grayscale_cam, "cloud": cloud_grayscale_cam,
            "not_cloud": not_cloud_grayscale_cam, "not_car": not_car_grayscale_cam}
    return maps, shown


def assert_kinds(maps, shown):
    for name, grayscale in maps.items():
        assert isinstance(grayscale, np.ndarray), name
        assert grayscale.shape == (224, 224) and grayscale.dtype == np.float32, name
        assert grayscale.min() >= 0 and grayscale.max() <= 1, name
    for picture in shown[1:-1]:
        assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    assert shown[0].shape == (224, 448, 3) and shown[-1].shape == (224, 5 * 224, 3)
    assert shown[-1].dtype == np.uint8


def test_the_tutorial_as_written_gives_1_5_7s_kinds_of_results():
    resnet = torchvision.models.resnet50(weights=None)
    resnet.eval()
    model = ResnetFeatureExtractor(resnet)
    target_layers = [resnet.layer4[-1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # use_cuda=
        maps, shown = run_tutorial(model, target_layers)
    assert_kinds(maps, shown)
    assert not resnet.layer4[-1]._forward_hooks and not resnet.layer4[-1]._backward_hooks


def test_each_concept_is_found_on_its_own_half_of_the_query_photo():
    model = load_efficientnet_lite0()
    model.net._fc = torch.nn.Identity()  # the 1280-d embedding before the classifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # use_cuda=
        maps, shown = run_tutorial(model, [model.head_activation])
    assert_kinds(maps, shown)

    def left_minus_right(grayscale):
        return float(grayscale[:, :112].mean() - grayscale[:, 112:].mean())

    # the cat concept is on the left (the cat), the cup concept on the right (the cup)
    assert left_minus_right(maps["car"]) > 0.1
    assert left_minus_right(maps["cloud"]) < -0.1
    # "where is the concept not": the other half
    assert left_minus_right(maps["not_car"]) < 0
    assert left_minus_right(maps["not_cloud"]) > 0
