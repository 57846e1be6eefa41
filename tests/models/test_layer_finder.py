"""Finding target layers by probing models the table does not know, the
errors where no layer qualifies, and models that cannot be hooked."""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.layer_finder import ChannelsLast, TokenGrid, find_target_layers, locate_layers
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class PlainCNN(nn.Module):
    """Convolutions and a classifier on the flattened map."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU(inplace=True)
        self.fc = nn.Linear(16 * 56 * 56, 10)

    def forward(self, x):
        return self.fc(self.act2(self.conv2(self.act1(self.conv1(x)))).flatten(1))


class PooledCNN(nn.Module):
    """A feature extractor, then a max pool and global average pooling
    before the classifier: the pooling layers are not picked."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(inplace=True), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A ViT written from scratch: patch embedding, class token + 2
    register tokens, two blocks, the class token to the head."""

    def __init__(self, dim=16, patch=32, prefix=3):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.prefix = nn.Parameter(torch.randn(1, prefix, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, prefix + 49, dim) * 0.02)
        self.blocks = nn.Sequential(Block(dim), Block(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.prefix.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])


class ChannelsLastNet(nn.Module):
    """Features in B x H x W x C (as Swin and timm's ConvNeXt norms keep them)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 12)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        x = self.stem(x).permute(0, 2, 3, 1)          # B x 56 x 56 x 8
        x = self.mix(self.norm(x))                     # B x 56 x 56 x 12
        return self.head(x.mean(dim=(1, 2)))


class TwoBranch(nn.Module):
    """Two branches of different resolutions, pooled and concatenated;
    the branch that runs last is the one found."""

    def __init__(self):
        super().__init__()
        self.coarse = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.ReLU())
        self.fine = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        a = self.coarse(x).mean(dim=(2, 3))
        b = self.fine(x).mean(dim=(2, 3))
        return self.head(torch.cat([a, b], dim=1))


def _seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


@pytest.mark.parametrize("cls,name,transform", [
    (PlainCNN, "act2", None),
    (PooledCNN, "features.4", None),
    (TinyViT, "blocks.1.norm1", TokenGrid),
    (ChannelsLastNet, "mix", ChannelsLast),
    (TwoBranch, "fine.1", None),
])
def test_probe_picks_the_last_reachable_spatial_layer(cls, name, transform):
    model = _seeded(cls)
    found = locate_layers(model)
    assert found.source == "probe"
    assert found.names == [name]
    assert found.layers[0] is dict(model.named_modules())[name]
    if transform is None:
        assert found.reshape_transform is None
    else:
        assert isinstance(found.reshape_transform, transform)
    if cls is TinyViT:
        assert found.reshape_transform.prefix == 3  # class token + 2 register tokens
        # the last block's output is not picked: its gradient reaches the class token only
        reached = {n: r for n, _, r in found.candidates}
        assert reached["blocks.1"] is False and reached["blocks.1.norm1"] is True
        assert "patch_embed" not in {n for n, _, _ in found.candidates}
    # a CAM made without target_layers uses the same choice and gives a map
    cam = GradCAM(model)
    assert cam.target_layers == found.layers and cam.target_layers_source == "probe"
    maps = cam(torch.randn(2, 3, 224, 224), [ClassifierOutputTarget(1)] * 2)
    assert maps.shape == (2, 224, 224) and maps.max() == pytest.approx(1, abs=1e-5)


def test_an_explicit_reshape_transform_wins():
    model = _seeded(TinyViT)

    def mine(tensor):
        return TokenGrid(3)(tensor)

    assert GradCAM(model, reshape_transform=mine).reshape_transform is mine
    assert GradCAM(model).reshape_transform is not mine


def test_finding_costs_one_forward_pass_once_per_cam_object():
    model = _seeded(PooledCNN)
    calls = []
    model.classifier.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    cam = GradCAM(model)
    assert calls == [1]  # the probe: one image, when the CAM object is made
    calls.clear()
    for _ in range(3):
        cam(torch.randn(2, 3, 32, 32), [ClassifierOutputTarget(0)] * 2)
    assert calls == [2, 2, 2]  # the calls' own forward passes, no probe


def test_probing_leaves_the_model_as_it_was():
    model = _seeded(PooledCNN).train()
    model.features[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    find_target_layers(model)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks


def test_no_reachable_layer_lists_the_candidates():
    class Blind(nn.Module):
        """The score ignores the image's spatial layout entirely."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(3, 10)

        def forward(self, x):
            return self.head(x.mean(dim=(2, 3))) + 0 * self.conv(x).sum()

    with pytest.raises(ValueError, match=r"cannot find a target layer(.|\n)*conv: output "
                                         r"\(1, 4, 224, 224\) \(the score does not reach it\)"):
        GradCAM(_seeded(Blind))


def test_ambiguous_token_layout_lists_the_candidates():
    class Tokens(nn.Module):
        """17 tokens: 1 prefix + 16 (4 x 4) or 8 prefix + 9 (3 x 3), and an
        input of 96 x 96, which both grids tile (patches of 24 or 32)."""

        image_size = 96

        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(3, 8)
            self.mix = nn.Linear(8, 8)
            self.head = nn.Linear(17 * 8, 10)

        def forward(self, x):
            tokens = nn.functional.adaptive_avg_pool2d(x, (1, 17))[:, :, 0].transpose(1, 2)
            return self.head(self.mix(self.embed(tokens)).flatten(1))

    with pytest.raises(ValueError, match=r"cannot decide the token layout of mix(.|\n)*1, 8 "
                                         r"prefix tokens(.|\n)*mix: output \(1, 17, 8\)"):
        find_target_layers(_seeded(Tokens))


def test_torchscript_models_get_a_message_that_says_what_to_pass():
    model = torch.jit.script(_seeded(PooledCNN))
    with pytest.raises(TypeError, match="TorchScript.*cannot be hooked.*original torch.nn.Module"):
        find_target_layers(model)
    with pytest.raises(TypeError, match="TorchScript"):
        GradCAM(model)


@pytest.mark.slow
def test_torch_compile_models_are_explained_through_their_original_module():
    model = _seeded(PooledCNN)
    compiled = torch.compile(model)
    layers, _ = find_target_layers(compiled)
    assert layers == [model.features[4]]
    x = torch.randn(1, 3, 32, 32)
    expected = GradCAM(model, [model.features[4]])(x, [ClassifierOutputTarget(2)])
    np.testing.assert_allclose(GradCAM(compiled, [model.features[4]])(x, [ClassifierOutputTarget(2)]),
                               expected, atol=1e-5)
