"""grad-cam 1.5.7's tutorial "HuggingFace.ipynb" (XAI recipes for the Hugging Face
image classification models), ported offline.

The notebook is over 4 MiB with its pictures and is not in the mirror this
port was made from; its code was taken from the tutorial's rendered page
(jacobgil.github.io/pytorch-gradcam-book/HuggingFace.html) and public copies
of its cells. Its helpers (``HuggingfaceToTensorModelWrapper``,
``category_name_to_index``, ``run_grad_cam_on_image``,
``print_top_categories``, the reshape transforms for Swin, ViT and ConvNeXt)
and its calls into the package (``run_dff_on_image(model=..., target_layer=...,
classifier=model.classifier, img_pil=..., img_tensor=...,
reshape_transform=..., n_components=4, top_k=2)``, ``GradCAM`` used through
``method(model=..., target_layers=[...], reshape_transform=...)`` as a context
manager, ``ClassifierOutputTarget``, ``show_cam_on_image``) are kept as written.

Substitutions:

- ``XxxForImageClassification.from_pretrained(name)`` -> the same class built
  from a small config (``XxxConfig(...)``, random weights), whose ``id2label``
  holds the two category names the tutorial looks up ("Egyptian cat" and
  "remote control, remote"; "Egyptian_cat" and "remote_control, remote" for
  the ImageNet-22k Swin), plus a third.
- ``load_dataset("huggingface/cats-image")`` -> ``skimage.data.chelsea()`` as
  a PIL image, 128 x 128 instead of 640 x 480 (the ViT cell resizes to 384 x 384
  itself, as the tutorial does).
- ViT's ``model.vit.encoder.layer[-2].output`` -> ``model.vit.layers[-2]`` when
  the installed transformers (5.x) names the blocks so (not a grad-cam change).
- ``display(Image.fromarray(...))`` -> assertions on the arrays; the printed
  top categories -> captured and checked.

What 1.5.7 gives, and is asserted here: ``run_grad_cam_on_image`` an
H/2 x (K * W/2) x 3 uint8 picture for K targets, ``run_dff_on_image`` an
H x 3W x 3 uint8 picture (image | concepts | legend). Random weights: only
the kinds of results are asserted (no trained Hugging Face model is available
offline).
"""
from functools import partial
from typing import Callable, List, Optional  # noqa: UP035 (as the tutorial has it)

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torchvision import transforms

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, run_dff_on_image
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

transformers = pytest.importorskip("transformers")

# five Hugging Face architectures (their first import and construction dominate)
pytestmark = pytest.mark.slow

image = Image.fromarray(skimage.data.chelsea()).resize((128, 128))
img_tensor = transforms.ToTensor()(image)

IMAGENET_1K = {0: "tabby, tabby cat", 1: "Egyptian cat", 2: "remote control, remote"}
IMAGENET_22K = {0: "tabby, tabby cat", 1: "Egyptian_cat", 2: "remote_control, remote"}


""" Model wrapper to return a tensor"""
class HuggingfaceToTensorModelWrapper(torch.nn.Module):
    def __init__(self, model):
        super(HuggingfaceToTensorModelWrapper, self).__init__()  # noqa: UP008 (as the tutorial has it)
        self.model = model

    def forward(self, x):
        return self.model(x).logits

""" Translate the category name to the category index.
    Some models aren't trained on Imagenet but on even larger datasets,
    so we can't just assume that 761 will always be remote-control.

"""
def category_name_to_index(model, category_name):
    name_to_index = dict((v, k) for k, v in model.config.id2label.items())  # noqa: C402 (as the tutorial has it)
    return name_to_index[category_name]

""" Helper function to run GradCAM on an image and create a visualization.
    (note to myself: this is probably useful enough to move into the package)
    If several targets are passed in targets_for_gradcam,
    e.g different categories,
    a visualization for each of them will be created.

"""
def run_grad_cam_on_image(model: torch.nn.Module,
                          target_layer: torch.nn.Module,
                          targets_for_gradcam: List[Callable],  # noqa: UP006
                          reshape_transform: Optional[Callable],  # noqa: UP045
                          input_tensor: torch.nn.Module=img_tensor,
                          input_image: Image=image,
                          method: Callable=GradCAM):
    with method(model=HuggingfaceToTensorModelWrapper(model),
                 target_layers=[target_layer],
                 reshape_transform=reshape_transform) as cam:

        # Replicate the tensor for each of the categories we want to create Grad-CAM for:
        repeated_tensor = input_tensor[None, :].repeat(len(targets_for_gradcam), 1, 1, 1)

        batch_results = cam(input_tensor=repeated_tensor,
                            targets=targets_for_gradcam)
        assert batch_results.shape == (len(targets_for_gradcam),) + tuple(input_tensor.shape[1:])
        assert batch_results.dtype == np.float32
        assert batch_results.min() >= 0 and batch_results.max() <= 1
        results = []
        for grayscale_cam in batch_results:
            visualization = show_cam_on_image(np.float32(input_image)/255,
                                              grayscale_cam,
                                              use_rgb=True)
            # Make it weight less in the notebook:
            visualization = cv2.resize(visualization,
                                       (visualization.shape[1]//2, visualization.shape[0]//2))
            results.append(visualization)
        return np.hstack(results)


def print_top_categories(model, img_tensor, top_k=5):
    logits = model(img_tensor.unsqueeze(0)).logits
    indices = logits.cpu()[0, :].detach().numpy().argsort()[-top_k :][::-1]
    for i in indices:
        print(f"Predicted class {i}: {model.config.id2label[i]}")


def swinT_reshape_transform_huggingface(tensor, width, height):
    result = tensor.reshape(tensor.size(0),
                            height,
                            width,
                            tensor.size(2))
    result = result.transpose(2, 3).transpose(1, 2)
    return result


def reshape_transform_vit_huggingface(x):
    activations = x[:, 1:, :]
    activations = activations.view(activations.shape[0],
                                   12, 12, activations.shape[2])
    activations = activations.transpose(2, 3).transpose(1, 2)
    return activations


def reshape_transform_convnext_huggingface(tensor, model):
    tensor = tensor.transpose(1, 2).transpose(2, 3)
    norm = model.convnext.layernorm(tensor)
    return norm.transpose(2, 3).transpose(1, 2)


def assert_gradcam_picture(picture, size, count=2):
    assert isinstance(picture, np.ndarray) and picture.dtype == np.uint8
    assert picture.shape == (size // 2, count * (size // 2), 3)
    Image.fromarray(picture)


def assert_dff_picture(picture, size):
    assert isinstance(picture, np.ndarray) and picture.dtype == np.uint8
    assert picture.shape == (size, 3 * size, 3)
    Image.fromarray(picture)


def imagenet_targets(model, cat="Egyptian cat", remote="remote control, remote"):
    return [ClassifierOutputTarget(category_name_to_index(model, cat)),
            ClassifierOutputTarget(category_name_to_index(model, remote))]


def test_resnet_recipe(capsys):
    model = transformers.ResNetForImageClassification(transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], id2label=IMAGENET_1K)).eval()
    targets_for_gradcam = imagenet_targets(model)
    target_layer = model.resnet.encoder.stages[-1].layers[-1]
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 reshape_transform=None), 128)
    # another method through the helper's method= argument
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 reshape_transform=None,
                                                 method=GradCAMPlusPlus), 128)
    assert_dff_picture(run_dff_on_image(model=model,
                                        target_layer=target_layer,
                                        classifier=model.classifier,
                                        img_pil=image,
                                        img_tensor=img_tensor,
                                        reshape_transform=None,
                                        n_components=4,
                                        top_k=2), 128)
    print_top_categories(model, img_tensor, top_k=3)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3
    assert {line.split(": ", 1)[1] for line in printed} == set(IMAGENET_1K.values())


def test_swin_recipe():
    model = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=128, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
        window_size=4, id2label=IMAGENET_22K)).eval()
    target_layer = model.swin.layernorm
    targets_for_gradcam = imagenet_targets(model, "Egyptian_cat", "remote_control, remote")
    reshape_transform = partial(swinT_reshape_transform_huggingface,
                                width=img_tensor.shape[2]//32,
                                height=img_tensor.shape[1]//32)
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 reshape_transform=reshape_transform), 128)
    assert_dff_picture(run_dff_on_image(model=model,
                                        target_layer=target_layer,
                                        classifier=model.classifier,
                                        img_pil=image,
                                        img_tensor=img_tensor,
                                        reshape_transform=reshape_transform,
                                        n_components=4,
                                        top_k=2), 128)


def test_vit_recipe():
    model = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=384, patch_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, id2label=IMAGENET_1K)).eval()
    target_layer_dff = model.vit.layernorm
    # transformers 5 renamed ViT's modules: model.vit.encoder.layer[-2].output, the
    # second-to-last block's output, is model.vit.layers[-2] there
    target_layer_gradcam = (model.vit.encoder.layer[-2].output if hasattr(model.vit, "encoder")
                            else model.vit.layers[-2])
    image_resized = image.resize((384, 384))
    tensor_resized = transforms.ToTensor()(image_resized)
    targets_for_gradcam = imagenet_targets(model)
    assert_dff_picture(run_dff_on_image(model=model,
                                        target_layer=target_layer_dff,
                                        classifier=model.classifier,
                                        img_pil=image_resized,
                                        img_tensor=tensor_resized,
                                        reshape_transform=reshape_transform_vit_huggingface,
                                        n_components=4,
                                        top_k=2), 384)
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer_gradcam,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 input_tensor=tensor_resized,
                                                 input_image=image_resized,
                                                 reshape_transform=reshape_transform_vit_huggingface),
                           384)


def test_convnext_recipe():
    model = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], id2label=IMAGENET_1K)).eval()
    target_layer = model.convnext.encoder.stages[-1].layers[-1]
    targets_for_gradcam = imagenet_targets(model)
    # the DFF reshape runs the model's own final layer norm on the activations
    assert_dff_picture(run_dff_on_image(model=model,
                                        target_layer=target_layer,
                                        classifier=model.classifier,
                                        img_pil=image,
                                        img_tensor=img_tensor,
                                        reshape_transform=partial(reshape_transform_convnext_huggingface,
                                                                  model=model),
                                        n_components=4,
                                        top_k=2), 128)
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 reshape_transform=None), 128)


def test_regnet_recipe():
    model = transformers.RegNetForImageClassification(transformers.RegNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8,
        id2label=IMAGENET_1K)).eval()
    target_layer = model.regnet.encoder.stages[-1]
    targets_for_gradcam = imagenet_targets(model)
    assert_gradcam_picture(run_grad_cam_on_image(model=model,
                                                 target_layer=target_layer,
                                                 targets_for_gradcam=targets_for_gradcam,
                                                 reshape_transform=None), 128)
    assert_dff_picture(run_dff_on_image(model=model,
                                        target_layer=target_layer,
                                        classifier=model.classifier,
                                        img_pil=image,
                                        img_tensor=img_tensor,
                                        reshape_transform=None,
                                        n_components=4,
                                        top_k=2), 128)
