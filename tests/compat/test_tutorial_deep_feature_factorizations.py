"""grad-cam 1.5.7's tutorial "Deep Feature Factorizations.ipynb", ported offline.

The tutorial's code runs unchanged against this package: the imports from
``pytorch_grad_cam`` (``DeepFeatureFactorization``, ``GradCAM``,
``show_cam_on_image``, ``preprocess_image``, ``deprocess_image``,
``show_factorization_on_image``), ``create_labels`` and ``visualize_image``
with their calls (``DeepFeatureFactorization(model=..., target_layer=...,
computation_on_concepts=...)`` used without a ``with`` block,
``dff(input_tensor, n_components)`` unpacked into concepts, batch
explanations and concept outputs, ``show_factorization_on_image(...,
image_weight=0.3, concept_labels=...)``) are kept as the notebook has them.

Substitutions:

- ``resnet50(pretrained=True)`` -> ``resnet50(weights=None)`` for the
  tutorial's ``visualize_image`` (which reads ``model.fc`` and
  ``model.layer4``): its results are checked for their kind. Whether the
  concepts mean something is checked with the pretrained EfficientNet-Lite0
  of this repository (its head ``model.head_activation`` and classifier
  ``model.net._fc`` in the places of ``model.layer4`` and ``model.fc``).
- ``get_image_from_url(url)`` -> ``get_image(name)``, the same body on a local
  photo: the three URLs (cat and dog, puppies, a bear) -> ``skimage.data``'s
  ``chelsea()``, ``coffee()`` and ``astronaut()``, resized to 224 x 224 so
  that the test stays fast (the tutorial's photos are larger).
- The ImageNet class names fetched from a gist in ``create_labels`` -> the
  names torchvision ships (``ResNet50_Weights.IMAGENET1K_V2.meta``): a list
  indexed like the gist's dict.
- ``display(Image.fromarray(...))`` -> assertions on the arrays shown.

What 1.5.7 returns, and is asserted here: concepts C x n_components float32;
batch explanations indexable per image, each n_components x H x W float32 in
[0, 1] at the input's size; concept outputs n_components x n_classes float32;
``show_factorization_on_image`` with labels an H x 2W x 3 uint8 picture (the
legend panel beside the image), so ``visualize_image`` gives H x 3W x 3 uint8.
The file is marked slow (ResNet-50 and the pretrained model at 224 x 224).
"""
import warnings

import cv2
import numpy as np
import pytest
import torch
from photo_regions import CAT_HEAD, EGYPTIAN_CAT, TABBY, load_photo  # tests/photo_regions.py
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50

from pytorch_grad_cam import DeepFeatureFactorization
from pytorch_grad_cam.utils.image import preprocess_image, show_factorization_on_image

pytestmark = pytest.mark.slow

IMAGENET_LABELS = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
CAT_CLASSES = set(range(TABBY, EGYPTIAN_CAT + 1))  # tabby, tiger cat, Persian, Siamese, Egyptian


def get_image(name):
    """The tutorial's get_image_from_url on a local photo (224 x 224 uint8 RGB)."""
    img = np.uint8(load_photo(name) * 255)
    rgb_img_float = np.float32(img) / 255
    input_tensor = preprocess_image(rgb_img_float,
                                   mean=[0.485, 0.456, 0.406],
                                   std=[0.229, 0.224, 0.225])
    return img, rgb_img_float, input_tensor


def create_labels(concept_scores, top_k=2):
    """ Create a list with the image-net category names of the top scoring categories"""
    labels = IMAGENET_LABELS
    concept_categories = np.argsort(concept_scores, axis=1)[:, ::-1][:, :top_k]
    concept_labels_topk = []
    for concept_index in range(concept_categories.shape[0]):
        categories = concept_categories[concept_index, :]
        concept_labels = []
        for category in categories:
            score = concept_scores[concept_index, category]
            label = f"{labels[category].split(',')[0]}:{score:.2f}"
            concept_labels.append(label)
        concept_labels_topk.append("\n".join(concept_labels))
    return concept_labels_topk


def visualize_image(model, img_url, n_components=5, top_k=2, seen=None):
    """The tutorial's visualize_image (``seen`` collects what the cell
    computed, for the assertions)."""
    img, rgb_img_float, input_tensor = get_image(img_url)
    classifier = model.fc
    dff = DeepFeatureFactorization(model=model, target_layer=model.layer4,
                                   computation_on_concepts=classifier)
    concepts, batch_explanations, concept_outputs = dff(input_tensor, n_components)

    concept_outputs = torch.softmax(torch.from_numpy(concept_outputs), axis=-1).numpy()
    concept_label_strings = create_labels(concept_outputs, top_k=top_k)
    visualization = show_factorization_on_image(rgb_img_float,
                                                batch_explanations[0],
                                                image_weight=0.3,
                                                concept_labels=concept_label_strings)

    result = np.hstack((img, visualization))

    # Just for the jupyter notebook, so the large images won't weight a lot:
    if result.shape[0] > 500:
        result = cv2.resize(result, (result.shape[1]//4, result.shape[0]//4))

    if seen is not None:
        seen.append((concepts, batch_explanations, concept_outputs, concept_label_strings))
    return result


def assert_dff_results(concepts, batch_explanations, channels, n_components, n_classes,
                       concept_outputs=None):
    assert isinstance(concepts, np.ndarray) and concepts.dtype == np.float32
    assert concepts.shape == (channels, n_components)
    assert len(batch_explanations) == 1
    explanations = batch_explanations[0]
    assert explanations.shape == (n_components, 224, 224) and explanations.dtype == np.float32
    assert explanations.min() >= 0 and explanations.max() <= 1
    # every concept's map is scaled to [0, 1] on its own and then resized (bilinear), as
    # 1.5.7's scale_cam_image does: its peak lands near 1
    peaks = explanations.reshape(n_components, -1).max(axis=1)
    assert (peaks > 0.95).all(), peaks
    if concept_outputs is not None:
        assert concept_outputs.shape == (n_components, n_classes)
        assert concept_outputs.dtype == np.float32


def test_visualize_image_cells_give_1_5_7s_kinds_of_results():
    model = resnet50(weights=None)
    model.eval()
    hooks_before = len(model.layer4._forward_hooks)

    shown, seen = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning of ours on 1.5.7's code path
        # scikit-learn's NMF (used when it is installed, as 1.5.7 uses it) may stop at
        # its 200 iterations and say so, under 1.5.7 too
        warnings.filterwarnings("ignore", message="Maximum number of iterations .* reached")
        for name in ("chelsea", "coffee", "astronaut"):
            shown.append(Image.fromarray(visualize_image(model, name, seen=seen)))
        shown.append(Image.fromarray(visualize_image(model, "astronaut", n_components=2, seen=seen)))
        shown.append(Image.fromarray(visualize_image(model, "astronaut", n_components=10, seen=seen)))

    for picture in shown:
        assert picture.size == (3 * 224, 224) and picture.mode == "RGB"
    for (concepts, batch_explanations, probabilities, labels), n_components in zip(
            seen, (5, 5, 5, 2, 10)):
        assert_dff_results(concepts, batch_explanations, 2048, n_components, 1000)
        assert probabilities.shape == (n_components, 1000)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
        assert len(labels) == n_components
        # two "name:score" lines per concept, the top class first
        for concept, label in enumerate(labels):
            best = np.argsort(probabilities[concept])[::-1][:2]
            assert label == "\n".join(f"{IMAGENET_LABELS[c].split(',')[0]}:"
                                      f"{probabilities[concept, c]:.2f}" for c in best)
    # the tutorial never closes the DFF objects: no hook stays on the model
    assert len(model.layer4._forward_hooks) == hooks_before


def test_the_pretrained_models_concepts_name_the_cat_where_the_cat_is(pretrained):
    model = pretrained
    img, rgb_img_float, input_tensor = get_image("chelsea")
    classifier = model.net._fc
    dff = DeepFeatureFactorization(model=model, target_layer=model.head_activation,
                                   computation_on_concepts=classifier)
    concepts, batch_explanations, concept_outputs = dff(input_tensor, 5)
    assert_dff_results(concepts, batch_explanations, 1280, 5, 1000, concept_outputs)

    concept_outputs = torch.softmax(torch.from_numpy(concept_outputs), axis=-1).numpy()
    top = concept_outputs.argmax(axis=1)
    cat_concepts = [i for i, category in enumerate(top) if category in CAT_CLASSES]
    assert cat_concepts, f"no concept's top class is a cat: {[IMAGENET_LABELS[c] for c in top]}"
    # the cat concepts own most of the cat's head, and the head is where they are
    owner = batch_explanations[0].argmax(axis=0)
    y0, y1, x0, x1 = CAT_HEAD
    on_head = np.isin(owner[y0:y1, x0:x1], cat_concepts).mean()
    assert on_head > 0.5, on_head
    concept_label_strings = create_labels(concept_outputs, top_k=2)
    visualization = show_factorization_on_image(rgb_img_float, batch_explanations[0],
                                                image_weight=0.3,
                                                concept_labels=concept_label_strings)
    assert visualization.shape == (224, 448, 3) and visualization.dtype == np.uint8
