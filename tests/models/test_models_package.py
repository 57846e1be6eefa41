"""pytorch_grad_cam.models: the one probe, the one token-layout module,
compiled models, and the names the library published before they moved
there."""
import importlib
from functools import partial

import pytest
import torch
from torch import nn

from pytorch_grad_cam.datasets.runner import _callable_name
from pytorch_grad_cam.layer_finder import find_target_layers, locate_layers
from pytorch_grad_cam.layers import LayerError, probe_target_layers, reshape_transform_for
from pytorch_grad_cam.models import compiled, probe, tokens
from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform, vit_reshape_transform

# ------------------------------------------------------------ old names
#: every name the modules published before the move, and where it lives now
MOVED = {
    "pytorch_grad_cam.layers": {
        "models.paths": ["LayerError", "resolve_layer", "resolve_layers"],
        "models.families": ["DEFAULT_LAYERS", "LAYOUTS", "FamilyLayers", "default_layers_row",
                            "default_target_layers", "family_layout", "family_of",
                            "family_rows", "reshape_transform_for", "vit_patch_grid"],
        "models.tokens": ["ReshapeTransform", "vit_tokens_to_maps"],
        "models.probe": ["LayerProbe", "probe_target_layers"],
        "utils.reshape_transforms": ["combine_levels", "fasterrcnn_reshape_transform",
                                     "swinT_reshape_transform", "vit_reshape_transform"],
        "utils.layer_outputs": ["describe_output"],
        "scoring": ["describe", "model_device", "select_output"],
    },
    "pytorch_grad_cam.layer_finder": {
        "models.tokens": ["TokenGrid", "ChannelsLast"],
        "models.compiled": ["unwrap_compiled"],
        "models.paths": ["LayerError", "resolve_layers"],
        "models.families": ["default_layers_row", "reshape_transform_for"],
    },
    "pytorch_grad_cam.attention": {
        "models.vit_families": ["SUPPORTED_FAMILIES", "HF_IMPLEMENTATIONS", "Transformer",
                                "find_transformer", "main_tensor"],
        "models.tokens": ["patch_grid"],
    },
    "pytorch_grad_cam.activations_and_gradients": {
        "utils.layer_outputs": ["is_structured", "output_paths", "output_leaves",
                                "rebuild_output", "map_output", "describe_output"],
    },
    "pytorch_grad_cam.base_cam": {"model_state": ["model_state_guard"]},
}


@pytest.mark.parametrize("old, new, name", [
    (old, new, name) for old, homes in MOVED.items() for new, names in homes.items()
    for name in names])
def test_the_old_names_are_the_moved_objects(old, new, name):
    moved = getattr(importlib.import_module(f"pytorch_grad_cam.{new}"), name)
    assert getattr(importlib.import_module(old), name) is moved


def test_the_old_modules_keep_their_public_lists():
    layers = importlib.import_module("pytorch_grad_cam.layers")
    assert set(layers.__all__) >= {"DEFAULT_LAYERS", "LAYOUTS", "FamilyLayers", "LayerError",
                                   "LayerProbe", "default_layers_row", "default_target_layers",
                                   "family_layout", "family_of", "family_rows",
                                   "probe_target_layers", "reshape_transform_for",
                                   "resolve_layer", "resolve_layers", "vit_patch_grid",
                                   "vit_tokens_to_maps"}
    for module, names in [("layer_finder", ["FoundLayers", "TokenGrid", "ChannelsLast",
                                            "find_target_layers", "locate_layers",
                                            "check_hookable"]),
                          ("attention", ["SUPPORTED_FAMILIES", "Transformer", "AttentionCapture",
                                         "find_transformer", "capture_attention", "patch_grid",
                                         "main_tensor"])]:
        public = importlib.import_module(f"pytorch_grad_cam.{module}").__all__
        assert set(public) >= set(names), module


# ------------------------------------------- names a results store records
class _TokenModel(nn.Module):
    """B x 17 x 8 tokens (1 prefix + 4 x 4) from a 32 x 32 image."""

    image_size = 32
    num_prefix_tokens = 1

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 8, stride=8)
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8 * 17, 5)

    def forward(self, x):
        patches = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), patches], dim=1)
        return self.head(self.norm(tokens).flatten(1))


class _ChannelsLastModel(nn.Module):
    """A B x 8 x 8 x 6 map after a LayerNorm over its channels (32 x 32 image)."""

    image_size = 32

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=4, padding=1)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        return self.head(self.norm(self.conv(x).permute(0, 2, 3, 1)).flatten(1))


def test_the_transforms_keep_the_names_a_results_store_recorded():
    """A dataset store resumes only with the reshape transform it recorded
    (by module and name): the transforms keep the names they had."""
    vit = torch.nn.Module()
    vit.image_size, vit.patch_size = 224, 16
    assert _callable_name(reshape_transform_for(vit, "vit")) == \
        "partial(pytorch_grad_cam.layers.vit_tokens_to_maps, height=14, width=14)"
    assert _callable_name(reshape_transform_for(vit, "tokens")) == \
        "pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform"
    assert _callable_name(reshape_transform_for(vit, "swin")) == \
        "pytorch_grad_cam.utils.reshape_transforms.swinT_reshape_transform"
    torch.manual_seed(0)
    found = locate_layers(_TokenModel())
    assert (found.names, repr(found.reshape_transform)) == (["norm"], "TokenGrid(prefix=1)")
    assert _callable_name(found.reshape_transform) == "pytorch_grad_cam.layer_finder.TokenGrid"
    found = locate_layers(_ChannelsLastModel())
    assert (found.names, repr(found.reshape_transform)) == (["norm"], "ChannelsLast()")
    assert _callable_name(found.reshape_transform) == \
        "pytorch_grad_cam.layer_finder.ChannelsLast"


# ----------------------------------------------------------- the probe
class _Net(nn.Module):
    def __init__(self, fail=False):
        super().__init__()
        self.fail = fail
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(0.5)
        self.unused = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.act(self.conv(x))  # the in-place ReLU overwrites conv's output
        if self.fail:
            raise RuntimeError("boom\nsecond line")
        return self.fc(self.drop(x).mean(dim=(2, 3)))


def _hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_probe_without_a_score_sees_every_hooked_call_and_changes_nothing():
    model = _Net().train()
    modules = [("conv", model.conv), ("act", model.act), ("conv again", model.conv),
               ("unused", model.unused), ("fc", model.fc)]
    result = probe.probe(model, modules, torch.zeros(1, 3, 6, 6))
    assert sorted(result.seen) == [0, 1, 2, 4]  # "unused" never ran
    assert [(i, s.name, s.calls, s.order) for i, s in result.in_order()] == [
        (0, "conv", 1, 1), (2, "conv again", 1, 2), (1, "act", 1, 3), (4, "fc", 1, 4)]
    assert result.output.shape == (1, 5) and result.seen[0].version == -1  # inference tensors
    assert result.gradients == {} and model.training and _hooks(model) == 0


def test_probe_with_a_score_takes_the_gradients_and_puts_the_model_back():
    model = _Net().train()
    model.conv.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    seen_in_pass = []

    def score(output):
        seen_in_pass.append((model.training, model.fc.weight.requires_grad))
        return output[0, 3]

    modules = [(name, module) for name, module in model.named_modules() if name]
    result = probe.probe(model, modules, torch.randn(1, 3, 6, 6), score=score)
    names = {index: name for index, (name, _) in enumerate(modules)}
    # conv's output was overwritten by the in-place ReLU: no gradient
    assert sorted(names[i] for i in result.gradients) == ["act", "drop", "fc"]
    assert seen_in_pass == [(False, False)]  # eval mode, frozen parameters, during the pass
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters()) and _hooks(model) == 0
    fc_grad = result.gradients[next(i for i, n in names.items() if n == "fc")]
    assert torch.equal(fc_grad, torch.eye(5)[3][None])  # d output[0, 3] / d output
    assert not any(s.output.requires_grad for s in result.seen.values())  # detached


def test_probe_failure_carries_the_models_error_and_removes_the_hooks():
    model = _Net(fail=True)
    with pytest.raises(probe.ProbeFailure) as failure:
        probe.probe(model, [("conv", model.conv)], torch.zeros(1, 3, 6, 6))
    assert isinstance(failure.value.error, RuntimeError)
    assert str(failure.value) == ("the model fails on the probe's image (RuntimeError: "
                                  "boom\nsecond line)")
    assert _hooks(model) == 0


def test_both_users_of_the_probe_phrase_a_failing_model_as_before():
    model = _Net(fail=True)
    with pytest.raises(LayerError) as error:
        probe_target_layers(model, [model.conv], ["conv"], input_size=8)
    assert str(error.value) == "the model fails on a 8 x 8 image (boom)"
    assert error.value.__cause__ is None and error.value.__suppress_context__
    with pytest.raises(ValueError) as error:
        find_target_layers(model)
    assert str(error.value) == (
        "cannot find target layers by probing: the model fails on one 224 x 224 image "
        "(RuntimeError: boom\nsecond line); pass target_layers=[...] (and "
        "reshape_transform=...) yourself")
    assert isinstance(error.value.__cause__, RuntimeError)
    assert _hooks(model) == 0


def test_the_finder_rejects_an_output_that_is_no_scores():
    class Maps(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)[:, 0, 0, 0]

    with pytest.raises(ValueError) as error:
        find_target_layers(Maps())
    assert str(error.value) == ("cannot find target layers by probing: the model's output is "
                                "not a B x classes score tensor; pass target_layers=[...]")


def test_probe_input_size_is_what_the_model_states():
    assert probe.probe_input_size(_Net()) == (224, 224)
    assert probe.probe_input_size(nn.Sequential(_TokenModel())) == (32, 32)


# ------------------------------------------------------- token layouts
@pytest.mark.parametrize("tokens_, squares", [
    (197, [1]), (198, [2]), (50, [1]), (196, [0]), (17, [1, 8]), (1, [0]), (0, []), (7, [3, 6])])
def test_square_prefixes(tokens_, squares):
    assert tokens.square_prefixes(tokens_) == squares


@pytest.mark.parametrize("tokens_, stated, candidates", [
    (17, None, [1, 8]), (17, 1, [1]), (17, 2, []), (1, None, []), (2, 1, []), (5, None, [1]),
    (26, 10, [10])])
def test_prefix_candidates(tokens_, stated, candidates):
    assert tokens.prefix_candidates(tokens_, stated) == candidates


def test_the_token_transforms_share_one_computation():
    x = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    expected = x[:, 1:].reshape(2, 4, 4, 3).permute(0, 3, 1, 2)
    for maps in (tokens.tokens_to_maps(x), vit_reshape_transform(x), tokens.TokenGrid(1)(x),
                 tokens.vit_tokens_to_maps(x, 4, 4), tokens.grid_to_maps(x, 1, 4, 4),
                 vit_reshape_transform(x, 2, 8), reshape_transform_for(nn.Module(), "tokens")(x)):
        assert torch.equal(maps.flatten(2), expected.flatten(2))
    channels_last = torch.randn(2, 4, 5, 3)
    for maps in (swinT_reshape_transform(channels_last), tokens.ChannelsLast()(channels_last),
                 tokens.channels_last_to_maps(channels_last)):
        assert torch.equal(maps, channels_last.permute(0, 3, 1, 2))
    assert torch.equal(swinT_reshape_transform(x[:, 1:]), expected)
    assert tokens.vit_tokens_to_maps(expected, 4, 4) is expected
    assert tokens.TokenGrid(1)(expected) is expected


@pytest.mark.parametrize("call, message", [
    (lambda: tokens.tokens_to_maps(torch.zeros(1, 35, 3)),
     "cannot derive a square patch grid from 35 tokens; pass height= and width="),
    (lambda: vit_reshape_transform(torch.zeros(1, 17, 3), 5, 5),
     "17 tokens do not fit -8 prefix tokens and a 5 x 5 grid"),
    (lambda: vit_reshape_transform(torch.zeros(1, 17, 3), 3, 3, num_prefix_tokens=1),
     "17 tokens do not fit 1 prefix tokens and a 3 x 3 grid"),
    (lambda: vit_reshape_transform(torch.zeros(1, 17, 3), num_prefix_tokens=2),
     "17 tokens do not fit 2 prefix tokens and a None x None grid"),
    (lambda: vit_reshape_transform(torch.zeros(2, 3)),
     "vit_reshape_transform expects B x tokens x channels, got (2, 3)"),
    (lambda: swinT_reshape_transform(torch.zeros(1, 17, 3)),
     "17 tokens do not fit 0 prefix tokens and a None x None grid"),
    (lambda: tokens.TokenGrid(2)(torch.zeros(1, 17, 3)),
     "15 patch tokens (after 2 prefix tokens) are not a square grid"),
])
def test_token_layout_errors(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(message)


def test_patch_grid_follows_the_input_aspect_ratio():
    assert tokens.patch_grid(196, (224, 224)) == (14, 14)
    assert tokens.patch_grid(32, (64, 128)) == (4, 8)
    assert tokens.patch_grid(12, (224, 224)) == (3, 4)  # of (3, 4) and (4, 3): fewer rows
    with pytest.raises(ValueError, match=r"no patch tokens left \(0\)"):
        tokens.patch_grid(0, (224, 224))


def test_output_layout():
    conv, norm = nn.Conv2d(3, 6, 1), nn.LayerNorm(6)
    assert tokens.output_layout((1, 6, 8, 8), conv, None, (224, 224)) == (None, None)
    transform, alternatives = tokens.output_layout((1, 8, 8, 6), norm, None, (224, 224))
    assert repr(transform) == "ChannelsLast()" and alternatives is None
    assert tokens.output_layout((1, 6, 8, 8), norm, None, (224, 224)) == (None, None)
    transform, alternatives = tokens.output_layout((1, 197, 6), norm, None, (224, 224))
    assert repr(transform) == "TokenGrid(prefix=1)" and alternatives is None
    # 17 tokens: 1 + 4 x 4 or 8 + 3 x 3; a 96 x 96 input is tiled by both grids,
    # a 32 x 32 input only by 4 x 4, and a stated count decides
    assert tokens.output_layout((1, 17, 6), norm, None, (96, 96)) == (None, [1, 8])
    assert repr(tokens.output_layout((1, 17, 6), norm, None, (32, 32))[0]) == \
        "TokenGrid(prefix=1)"
    assert repr(tokens.output_layout((1, 17, 6), norm, 8, (96, 96))[0]) == "TokenGrid(prefix=8)"
    assert tokens.output_layout((1, 5), norm, None, (224, 224)) is None
    assert tokens.output_layout((1, 35, 6), norm, None, (224, 224)) is None


def test_the_family_table_uses_the_token_module():
    vit = torch.nn.Module()
    vit.image_size, vit.patch_size = 64, 16
    transform = reshape_transform_for(vit, "vit")
    assert isinstance(transform, partial) and transform.func is tokens.vit_tokens_to_maps
    assert transform.keywords == {"height": 4, "width": 4}


# ------------------------------------------------------ compiled models
def test_compiled_and_torchscript_models_are_told_apart():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    scripted = torch.jit.script(model)
    traced = torch.jit.trace(model, torch.zeros(1, 3, 8, 8))
    assert compiled.is_torchscript(scripted) and compiled.is_torchscript(traced)
    assert not compiled.is_torchscript(model) and not compiled.is_torchscript("model")
    assert compiled.unwrap_compiled(torch.compile(model)) is model
    assert compiled.unwrap_compiled(model) is model
    with pytest.raises(TypeError, match="the model is a TorchScript RecursiveScriptModule"):
        find_target_layers(scripted)
    with pytest.raises(TypeError, match="the model is a TorchScript TopLevelTracedModule"):
        find_target_layers(traced)
