"""The warning of an all-zero map never sends the user to a target layer:
it names a transformer norm before the target layers (for the ViTs'
default target layer, the last block's norm, the previous block's), and
when the target score does not depend on the input at all (torchvision's
ViT head starts at zeros) it says so instead of suggesting a layer."""
import warnings

import numpy as np
import pytest
import torch
import torchvision
from vit_cases import VIT_CASES  # tests/vit_cases.py

from pytorch_grad_cam import GradCAM, HiResCAM, LayerCAM
from pytorch_grad_cam.target_layers import earlier_layer_hint
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

DOES_NOT_DEPEND = ("the target score does not depend on the input (it is the same for other "
                   "inputs, as with a classifier whose weights are all zero, such as "
                   "torchvision's VisionTransformer head without pretrained weights); load "
                   "trained weights or explain another target")


def zero_head_vit() -> torch.nn.Module:
    """torchvision's VisionTransformer as built without pretrained weights
    (its head starts at zeros), small."""
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5).eval()


def names_of(model: torch.nn.Module, layers) -> list[str]:
    return [name for name, module in model.named_modules() if any(module is m for m in layers)]


def warnings_of(cam, x, targets) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = cam(input_tensor=x, targets=targets)
    return maps, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def block_norms(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name.endswith((".ln_1", ".norm1"))]


@pytest.mark.parametrize("family", ["torchvision", "timm"])
def test_the_hint_for_the_default_layer_is_the_previous_blocks_norm(family):
    model = VIT_CASES[family].build()
    cam = GradCAM(model)  # the family's default: the last block's norm
    norms = block_norms(model)
    assert names_of(model, cam.target_layers) == [norms[-1]]
    message = cam.empty_map_message([0])
    assert message.endswith(f"Try an earlier layer (for this model: {norms[-2]}), another "
                            "target or another method")
    assert norms[-1] not in message


@pytest.mark.parametrize("family", ["torchvision", "timm"])
def test_the_hint_never_names_a_target_layer(family):
    model = VIT_CASES[family].build()
    modules = dict(model.named_modules())
    norms = block_norms(model)
    blocks = [name.rsplit(".", 1)[0] for name in norms]
    cases = {  # target layers -> the layer the hint names (None: no norm before them)
        (norms[-1],): norms[-2],
        (norms[0],): None,
        (norms[0], norms[-1]): norms[-2],
        (norms[-2], norms[-1]): None if len(norms) == 2 else norms[-3],
        (blocks[-1],): norms[-1],  # the last block: its own norm runs before its output
        (blocks[-1], norms[-1]): norms[-2],
    }
    for targets, expected in cases.items():
        hint = earlier_layer_hint(model, [modules[name] for name in targets])
        assert hint == ("an earlier layer" if expected is None else
                        f"an earlier layer (for this model: {expected})"), targets
        assert not any(f"{name})" in hint for name in targets)
    assert earlier_layer_hint(model) == f"an earlier layer (for this model: {norms[-1]})"


def test_a_block_output_whose_map_is_empty_gets_a_norm_before_it():
    """Only the class token of the last block reaches the head, so the
    patch tokens of the block's output have zero gradients: an empty map,
    though the score depends on the input; the hint names a layer that is
    not the target."""
    model = VIT_CASES["torchvision"].build()
    target = model.encoder.layers[-1]
    cam = GradCAM(model, target_layers=[target], reshape_transform=vit_reshape_transform)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    maps, messages = warnings_of(cam, x, [ClassifierOutputTarget(1)] * 2)
    assert (maps == 0).all()
    assert len(messages) == 1
    assert messages[0].startswith("the class activation map is all zeros for image(s) [0, 1]: "
                                  "no location of the target layer")
    assert "Try an earlier layer (for this model: encoder.layers.encoder_layer_1.ln_1)" \
        in messages[0]
    assert "encoder.layers.encoder_layer_1," not in messages[0]


@pytest.mark.parametrize("method", [GradCAM, HiResCAM, LayerCAM])
def test_a_score_that_does_not_depend_on_the_input_is_said_instead_of_a_layer(method):
    model = zero_head_vit()
    cam = method(model, progress=False)
    assert names_of(model, cam.target_layers) == ["encoder.layers.encoder_layer_2.ln_1"]
    parameters = [p.clone() for p in model.parameters()]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        maps, messages = warnings_of(cam, x, [ClassifierOutputTarget(1)] * 2)
    assert np.isfinite(maps).all() and (maps == 0).all()
    assert messages == ["the class activation map is all zeros for image(s) [0, 1]: "
                        f"{DOES_NOT_DEPEND} (shown once per CAM object)."]
    assert "layer" not in messages[0].replace("weights", "")  # no layer suggested
    # the model is left as it was: no hooks, no gradients, eval mode, same weights
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(parameters, model.parameters()))


def test_only_the_empty_images_are_checked():
    """An image whose score depends on the input and one whose score does
    not: the empty map of the second gets the input message."""

    class HalfBlind(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            pooled = torch.relu(self.conv(x)).mean(dim=(2, 3))
            return torch.stack([pooled[:, 0], pooled[:, 1] * 0 + 1.0], dim=1)

    torch.manual_seed(0)
    model = HalfBlind().eval()
    cam = GradCAM(model, target_layers=[model.conv])
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    maps, messages = warnings_of(cam, x, [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    assert maps[0].max() > 0 and (maps[1] == 0).all()
    assert messages == ["the class activation map is all zeros for image(s) [1]: "
                        f"{DOES_NOT_DEPEND} (shown once per CAM object)."]


def test_a_model_that_refuses_the_checks_inputs_still_gets_its_map_and_the_layer_hint():
    """The check behind the warning runs the model on the negated and on an
    all-zero input; a model that raises on such an input (here: on an
    all-zero one) still gets its (all-zero) map and the layer hint."""

    class Picky(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x):
            if not x.abs().sum():
                raise ValueError("an empty image")
            # a score blind to the map but not to the input: the map is all zeros
            return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)) * 0) + x.mean()

    model = Picky().eval()
    maps, messages = warnings_of(GradCAM(model, [model.conv]), torch.rand(1, 3, 8, 8),
                                 [ClassifierOutputTarget(0)])
    assert not maps.any()
    (message,) = [m for m in messages if "all zeros" in m]
    assert "Try an earlier layer" in message
