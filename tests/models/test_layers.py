"""pytorch_grad_cam.layers: layer paths, the per-family defaults and token
layouts, the layer probe."""
import pytest
import torch
import torchvision

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.layers import (
    DEFAULT_LAYERS,
    LAYOUTS,
    FamilyLayers,
    LayerError,
    default_layers_row,
    default_target_layers,
    family_layout,
    family_rows,
    probe_target_layers,
    reshape_transform_for,
    resolve_layer,
    resolve_layers,
    vit_patch_grid,
    vit_tokens_to_maps,
)
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform


def _paths_model() -> torch.nn.Module:
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*[torch.nn.ReLU() for _ in range(30)])
    model.layer4 = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1))
    return model


# ---------------------------------------------------------------- paths
def test_layer_paths_are_looked_up_not_evaluated():
    model = _paths_model()
    assert resolve_layer(model, "features.29") is model.features[29]
    assert resolve_layer(model, "features[-1]") is model.features[29]
    assert resolve_layer(model, "model.layer4[-1]") is model.layer4[1]
    assert resolve_layer(model, " layer4 [ 0 ] ") is model.layer4[0]
    for bad in ["layer4[-1]()", "layer4[0:1]", "features..1", "", "features.__class__",
                "layer4[-1].weight"]:
        with pytest.raises(LayerError):
            resolve_layer(model, bad)


def test_a_typo_gets_the_close_names():
    model = torchvision.models.resnet18()
    with pytest.raises(LayerError) as error:
        resolve_layer(model, "layr4[-1]")
    assert error.value.layer == "layr4[-1]"
    assert error.value.reason.startswith("model has no layer 'layr4'; did you mean layer4? "
                                         "(its layers: conv1, bn1, relu, maxpool, layer1,")
    assert str(error.value) == f"layer path 'layr4[-1]': {error.value.reason}"
    assert isinstance(error.value, ValueError)
    # several close names, deeper in the model
    with pytest.raises(LayerError, match=r"model\.layer4\[1\] has no layer 'conv'; did you mean "
                                         r"conv1 or conv2\? \(its layers: conv1, bn1, "):
        resolve_layer(model, "layer4[1].conv")
    # no close name: no guess
    with pytest.raises(LayerError) as error:
        resolve_layer(model, "encoder")
    assert "did you mean" not in str(error.value)


@pytest.mark.parametrize("path, message", [
    ("layer4[2]", "model.layer4 has 2 entries, index 2 is out of range"),
    ("layer4[0][0]", "model.layer4[0] (Conv2d) cannot be indexed"),
    ("features.30", "model.features has no layer '30'"),
    ("layer4()", "not a layer path"),
])
def test_path_errors_say_where_the_path_stops(path, message):
    with pytest.raises(LayerError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        resolve_layer(_paths_model(), path)


def test_a_path_must_be_a_string():
    with pytest.raises(TypeError, match="a layer path must be a string"):
        resolve_layer(_paths_model(), 4)


def test_resolve_layers_keeps_the_order():
    model = _paths_model()
    assert resolve_layers(model, ["layer4[1]", "features.0"]) == [model.layer4[1],
                                                                  model.features[0]]


# ---------------------------------------------------------- the table
def test_the_table_is_data():
    assert all(isinstance(row, FamilyLayers) for row in DEFAULT_LAYERS)
    for row in DEFAULT_LAYERS:
        assert row.family and row.paths and all(isinstance(p, str) for p in row.paths)
        assert row.layout is None or row.layout in LAYOUTS
    # families with two homes have one row per home, torchvision first
    swin = [row for row in DEFAULT_LAYERS if row.family == "SwinTransformer"]
    assert [row.source for row in swin] == ["torchvision", "timm"]


# (model, input size, expected default layer); small inputs keep it quick
FAMILIES = [
    (lambda: torchvision.models.resnet18(), 64, "layer4[-1]"),
    (lambda: torchvision.models.densenet121(), 64, "features[-1]"),
    (lambda: torchvision.models.mnasnet0_5(), 64, "layers[-1]"),
    (lambda: torchvision.models.mobilenet_v3_small(), 64, "features[-1]"),
    (lambda: torchvision.models.efficientnet_b0(), 64, "features[-1]"),
    (lambda: torchvision.models.regnet_x_400mf(), 64, "trunk_output"),
    (lambda: torchvision.models.swin_t(), 64, "features[-1][-1].norm1"),
    (lambda: torchvision.models.vit_b_16(image_size=32), 32, "encoder.layers[-1].ln_1"),
]


@pytest.mark.parametrize("build, size, layer", FAMILIES,
                         ids=["resnet", "densenet", "mnasnet", "mobilenet", "efficientnet",
                              "regnet", "swin", "vit"])
def test_default_target_layer_per_family(build, size, layer):
    model = build().eval()
    names, kind = default_target_layers(model)
    assert names == [layer]
    reshape = reshape_transform_for(model, kind)
    layers = [resolve_layer(model, layer)]
    probe = probe_target_layers(model, layers, names, reshape, size, "cpu")
    assert probe.num_classes == 1000
    assert len(probe.map_shapes) == 1 and len(probe.map_shapes[0]) == 3
    assert not any(m._forward_hooks for m in model.modules())


def test_the_first_row_that_fits_wins():
    class SwinTransformer(torch.nn.Module):  # a timm-like Swin: no .features
        def __init__(self):
            super().__init__()
            block = torch.nn.Module()
            block.norm1 = torch.nn.LayerNorm(4)
            stage = torch.nn.Module()
            stage.blocks = torch.nn.Sequential(block)
            self.layers = torch.nn.Sequential(stage)

    model = SwinTransformer()
    row = default_layers_row(model)
    assert row.source == "timm" and row.paths == ("layers[-1].blocks[-1].norm1",)
    assert default_target_layers(model) == (["layers[-1].blocks[-1].norm1"], "swin")
    assert family_layout(model) == "swin"
    assert reshape_transform_for(model, "swin") is swinT_reshape_transform


def test_unknown_family():
    class Mystery(torch.nn.Module):
        pass

    assert family_rows(Mystery()) == [] and family_layout(Mystery()) is None
    with pytest.raises(LayerError, match="no default target layer for a Mystery") as error:
        default_target_layers(Mystery())
    assert error.value.layer is None


def test_reshape_transform_for_a_bad_layout():
    assert reshape_transform_for(torch.nn.Module(), None) is None
    with pytest.raises(ValueError, match="layout must be None or one of vit, swin, tokens, "
                                         "fasterrcnn, levels, got 'grid'"):
        reshape_transform_for(torch.nn.Module(), "grid")


# ------------------------------------------------------------------ ViT
def test_vit_patch_grid_from_the_model():
    assert vit_patch_grid(torchvision.models.vit_b_16(image_size=64)) == (4, 4)
    timm_like = torch.nn.Module()
    timm_like.patch_embed = torch.nn.Module()
    timm_like.patch_embed.grid_size = (3, 5)
    assert vit_patch_grid(timm_like) == (3, 5)
    with pytest.raises(LayerError, match="cannot find the patch grid of a Module"):
        vit_patch_grid(torch.nn.Module())


def test_vit_tokens_to_maps():
    tokens = torch.arange(2 * 7 * 4, dtype=torch.float32).reshape(2, 7, 4)  # class token + 2 x 3
    maps = vit_tokens_to_maps(tokens, height=2, width=3)
    assert maps.shape == (2, 4, 2, 3)
    assert torch.equal(maps[1, :, 1, 2], tokens[1, 6])  # the last patch token
    assert torch.equal(maps[0, :, 0, 0], tokens[0, 1])  # the class token is dropped
    already = torch.zeros(1, 4, 2, 3)
    assert vit_tokens_to_maps(already, 2, 3) is already


def test_vit_default_explains_a_real_vit():
    model = torchvision.models.vit_b_16(image_size=64).eval()  # a 4 x 4 patch grid
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision's is all zeros
    names, layout = default_target_layers(model)
    transform = reshape_transform_for(model, layout)
    with GradCAM(model, target_layers=resolve_layers(model, names),
                 reshape_transform=transform) as cam:
        maps = cam(input_tensor=torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 64, 64) and maps.max() == pytest.approx(1)


# ---------------------------------------------------------------- probe
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.unused = torch.nn.Conv2d(3, 4, 1)
        self.pair = _Pair()
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        x = self.conv(x)
        x, _ = self.pair(x)
        return self.fc(x.mean(dim=(2, 3)))


class _Pair(torch.nn.Module):
    def forward(self, x):
        return x, x


@pytest.mark.parametrize("layer, reason", [
    ("unused", "the layer is not used in the model's forward pass; pick another one"),
    ("pair", "its output is a tuple, not a tensor; pick one of its sub-layers"),
    ("fc", "its output has shape (1, 5), not a B x C x H x W feature map"),
])
def test_probe_names_the_layer_that_cannot_be_explained(layer, reason):
    model = _Net().eval()
    with pytest.raises(LayerError) as error:
        probe_target_layers(model, [model.conv, getattr(model, layer)], ["conv", layer],
                            input_size=8)
    assert error.value.layer == layer and error.value.reason.startswith(reason)
    assert not any(m._forward_hooks for m in model.modules())


def test_probe_reports_the_maps():
    model = _Net().eval()
    probe = probe_target_layers(model, [model.conv], input_size=(8, 6))
    assert probe.num_classes == 5 and probe.map_shapes == ((4, 8, 6),)


def test_probe_model_problems():
    class Fails(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom\nsecond line")

    class Maps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    fails = Fails()
    with pytest.raises(LayerError) as error:
        probe_target_layers(fails, [fails.conv], input_size=16)
    assert error.value.layer is None
    assert str(error.value) == "the model fails on a 16 x 16 image (boom)"
    assert not fails.conv._forward_hooks
    maps = Maps()
    with pytest.raises(LayerError, match=r"the model's output is \(1, 4, 14, 14\), not B x "
                                         "classes scores"):
        probe_target_layers(maps, [maps.conv], input_size=16)


def test_probe_names_must_match_the_layers():
    model = _Net()
    with pytest.raises(ValueError, match="names has 2 entries for 1 layers"):
        probe_target_layers(model, [model.conv], ["a", "b"])
