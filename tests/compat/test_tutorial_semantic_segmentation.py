"""grad-cam 1.5.7's tutorial "Class Activation Maps for Semantic
Segmentation.ipynb" (GradCAM of deeplabv3_resnet50's backbone.layer4 for
the pixels predicted as "car"), run offline.

The tutorial's code is kept as written (its imports, the
``SegmentationModelOutputWrapper``, the ``SemanticSegmentationTarget``,
``preprocess_image`` with its mean/std, ``GradCAM(model=...,
target_layers=..., use_cuda=...)`` as a context manager and
``show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)``). Substitutions:

- ``deeplabv3_resnet50(pretrained=True, progress=False)`` ->
  ``deeplabv3_resnet50(weights=None, weights_backbone=None, progress=False)``
  (no network). Without pretrained weights torchvision builds it without the
  auxiliary classifier, so the output dict has the key "out" only (the
  tutorial prints "out" and "aux").
- An untrained network predicts "car" nowhere, so the tutorial's car mask
  would be empty and its target zero: the "car" logit's bias in
  ``model.classifier[-1]`` is raised by the median margin of the other
  classes over it, so that about half of the pixels are predicted "car".
- The flickr photo of cars -> ``skimage.data.coffee()`` resized to
  80 x 64 (small, so that the test takes a few seconds on a CPU).
- ``warnings.filterwarnings('ignore')`` -> this module's ``filterwarnings``
  mark; ``Image.fromarray(...)`` displays -> assertions on the arrays;
  ``print(type(output), output.keys())`` -> an assertion on them.

The map is checked against 1.5.7's GradCAM formula computed by hand
(gradients averaged over positions weight the activations, ReLU, min-max
normalisation, ``cv2.resize`` to the input size). No trained segmentation
network is available offline, so where the map peaks is not asserted.
"""
import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torch.functional as F  # noqa: F401  (imported by the tutorial)
from torchvision.models.segmentation import deeplabv3_resnet50

from pytorch_grad_cam import GradCAM  # the tutorial's cell 7
from pytorch_grad_cam.utils.image import preprocess_image, show_cam_on_image

pytestmark = pytest.mark.filterwarnings("ignore")  # the tutorial's warnings.filterwarnings('ignore')

HEIGHT, WIDTH = 64, 80


def raise_car_logit(model, input_tensor, car_category):
    """Raise the "car" bias of the untrained network's last convolution so
    that "car" wins at about half of the pixels."""
    with torch.no_grad():
        logits = model(input_tensor)["out"][0]
        others = torch.cat([logits[:car_category], logits[car_category + 1:]]).amax(dim=0)
        model.classifier[-1].bias[car_category] += (others - logits[car_category]).median()


def gradcam_157(model, layer, input_tensor, target):
    """1.5.7's GradCAM for one layer and one image, by hand."""
    saved = []
    handle = layer.register_forward_hook(lambda module, args, output: saved.append(output))
    try:
        output = model(input_tensor)
    finally:
        handle.remove()
    activations = saved[0]
    grads, = torch.autograd.grad(target(output[0]), activations)
    weights = grads.mean(dim=(2, 3))[0]
    cam = np.maximum((weights[:, None, None] * activations[0]).sum(dim=0).detach().numpy(), 0)
    cam = cam - cam.min()
    cam = cv2.resize(np.float32(cam / (1e-7 + cam.max())), (input_tensor.shape[-1],
                                                             input_tensor.shape[-2]))
    return (cam - cam.min()) / (1e-7 + cam.max())


def test_the_tutorial_runs_unchanged_and_gives_1_5_7s_gradcam_map():
    # ------------------------------------------------------------------ cell 1
    image = cv2.resize(skimage.data.coffee(), (WIDTH, HEIGHT))
    rgb_img = np.float32(image) / 255
    input_tensor = preprocess_image(rgb_img,
                                    mean=[0.485, 0.456, 0.406],
                                    std=[0.229, 0.224, 0.225])
    # Taken from the torchvision tutorial
    # https://pytorch.org/vision/stable/auto_examples/plot_visualization_utils.html
    model = deeplabv3_resnet50(weights=None, weights_backbone=None, progress=False)
    model = model.eval()

    if torch.cuda.is_available():
        model = model.cuda()
        input_tensor = input_tensor.cuda()

    output = model(input_tensor)
    assert isinstance(output, dict) and list(output.keys()) == ["out"]
    assert input_tensor.shape == (1, 3, HEIGHT, WIDTH) and input_tensor.dtype == torch.float32

    # ------------------------------------------------------------------ cell 3
    class SegmentationModelOutputWrapper(torch.nn.Module):
        def __init__(self, model):
            super(SegmentationModelOutputWrapper, self).__init__()  # noqa: UP008  (as written)
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    raise_car_logit(model, input_tensor, car_category=7)  # substitution: see the docstring
    model = SegmentationModelOutputWrapper(model)
    output = model(input_tensor)
    assert output.shape == (1, 21, HEIGHT, WIDTH)

    # ------------------------------------------------------------------ cell 5
    normalized_masks = torch.nn.functional.softmax(output, dim=1).cpu()
    sem_classes = [
        '__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
        'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
        'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'
    ]
    sem_class_to_idx = {cls: idx for (idx, cls) in enumerate(sem_classes)}

    car_category = sem_class_to_idx["car"]
    car_mask = normalized_masks[0, :, :, :].argmax(axis=0).detach().cpu().numpy()
    car_mask_uint8 = 255 * np.uint8(car_mask == car_category)
    car_mask_float = np.float32(car_mask == car_category)

    both_images = np.hstack((image, np.repeat(car_mask_uint8[:, :, None], 3, axis=-1)))
    assert both_images.shape == (HEIGHT, 2 * WIDTH, 3) and both_images.dtype == np.uint8
    assert 0.2 < car_mask_float.mean() < 0.8  # "car" on part of the image

    # ------------------------------------------------------------------ cell 7
    class SemanticSegmentationTarget:
        def __init__(self, category, mask):
            self.category = category
            self.mask = torch.from_numpy(mask)
            if torch.cuda.is_available():
                self.mask = self.mask.cuda()

        def __call__(self, model_output):
            return (model_output[self.category, :, :] * self.mask).sum()

    target_layers = [model.model.backbone.layer4]
    targets = [SemanticSegmentationTarget(car_category, car_mask_float)]
    with GradCAM(model=model,
                 target_layers=target_layers,
                 use_cuda=torch.cuda.is_available()) as cam:
        grayscale_cam = cam(input_tensor=input_tensor,
                            targets=targets)[0, :]
        cam_image = show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)

    # ---------------------------------------------- what 1.5.7 gives for it
    assert grayscale_cam.shape == (HEIGHT, WIDTH) and grayscale_cam.dtype == np.float32
    assert grayscale_cam.min() == pytest.approx(0, abs=1e-6)
    assert grayscale_cam.max() == pytest.approx(1, abs=1e-5)
    assert cam_image.shape == (HEIGHT, WIDTH, 3) and cam_image.dtype == np.uint8
    expected = gradcam_157(model, model.model.backbone.layer4, input_tensor, targets[0])
    assert expected.std() > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(grayscale_cam, expected, atol=1e-4)
    # the hooks are gone and the model is as the tutorial left it
    assert not any(m._forward_hooks for m in model.modules())
    assert model.training and not model.model.training  # the wrapper was never put in eval mode
    assert all(p.grad is None for p in model.parameters())

