"""pytorch_grad_cam.app.layers: the one choice of target layers of the
front-ends, given (checked by the library) or found."""
import pytest
import torch
import torchvision
from torch import nn

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.layers import (
    LayersNotFound,
    choose_target_layers,
    find_target_layers,
    resolve_target_layers,
)
from pytorch_grad_cam.datasets import runner


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU())
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class Flat(nn.Module):
    """No spatial layer at all: nothing to find."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean((2, 3)))


def test_given_paths_modules_and_a_single_one():
    model = Tiny()
    chosen = find_target_layers(model, ["features[-1]", model.features[0]])
    assert chosen.layers == [model.features[3], model.features[0]]
    assert chosen.names == ["features[-1]", "features.0"] and chosen.source is None
    assert find_target_layers(model, "features.2").layers == [model.features[2]]
    assert find_target_layers(model, model.head).names == ["head"]


def test_found_layers_say_how():
    resnet = torchvision.models.resnet18(weights=None).eval()
    chosen = find_target_layers(resnet, None)
    assert (chosen.names, chosen.source) == (["layer4[-1]"], "table")
    probed = find_target_layers(Tiny(), None)
    assert (probed.names, probed.source) == (["features.3"], "probe")
    with pytest.raises(LayersNotFound):
        find_target_layers(Flat(), None)


def test_the_library_checks_the_given_layers():
    model = Tiny()
    with pytest.raises(ValueError, match="did you mean features"):
        find_target_layers(model, ["featurs[-1]"])
    with pytest.raises(ValueError, match=r"target_layers\[0\] \(ReLU\(\)\) is not a module of "
                                         r"the model; take it from the model itself"):
        find_target_layers(model, [nn.ReLU()])
    with pytest.raises(ValueError, match="target_layers is empty"):
        find_target_layers(model, [])
    with pytest.raises(TypeError, match="reshape_transform must be callable or None, got 3"):
        find_target_layers(model, ["head"], 3)  # type: ignore[arg-type]


def test_the_dataset_runner_uses_it_with_the_python_words():
    assert runner.resolve_target_layers is resolve_target_layers
    with pytest.raises(ValueError, match=r"(?s)^target_layers=None: .*; pass target_layers=\[\.\.\.\] "
                                         r"\(modules of the model or layer paths"):
        resolve_target_layers(Flat(), None, None)


def test_the_command_line_words():
    model = Tiny()
    layers, names, reshape, source = choose_target_layers(model, ["features.2"])
    assert (layers, names, reshape, source) == ([model.features[2]], ["features.2"], None, None)
    with pytest.raises(UsageError) as caught:
        choose_target_layers(model, ["features[9]"])
    assert str(caught.value) == ("--target-layer 'features[9]': model.features has 4 entries, "
                                 "index 9 is out of range")
    with pytest.raises(UsageError, match="; name one with --target-layer \\(see docs/target_layers.md, "
                                         "'Choosing the target layer'\\)$"):
        choose_target_layers(Flat(), None)
    vit = torchvision.models.vit_b_16(weights=None, image_size=32).eval()
    _, _, reshape, _ = choose_target_layers(vit, ["encoder.layers[-1].ln_1"])
    assert reshape is not None  # a given ViT layer gets the family's token layout
    assert reshape(torch.zeros(1, 5, 8)).shape == (1, 8, 2, 2)
