"""Degenerate maps: an all-zero map comes back as zeros with one warning
that says why and what to do; no NaN ever reaches the output, whatever
the activations (constant, zero, huge) and in float16 / bfloat16."""
import warnings

import numpy as np
import pytest
import torch
from registry_cases import EIGEN_REFUSED, REGISTRY_PARAMS, refuses_eigen_smooth  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# The tests of the CNN methods take ``method_name`` (every method for feature
# maps, generated from the registry: tests/registry_cases.py); the attention
# methods: the last test of this file, and their half-precision and constant
# cases in tests/methods/test_attention_guarantees.py.
# FullGrad explains the whole network (the input- and bias-gradients of every
# layer), not the target layer: degenerate target-layer activations leave
# its map intact wherever the score still depends on the input.
WHOLE_NETWORK = REGISTRY_PARAMS["whole_network_method"]
# These map what the target layer holds, whatever the score: class-agnostic
# (principal components, k-sigma masks) or random channel weights.
TARGET_BLIND = REGISTRY_PARAMS["class_agnostic_method"]
# Maps that jump where a value crosses a threshold: FEM's mask
# A >= mean + k * std, FullGrad's bias-gradient through a ReLU (b * dY/dz
# does not go to zero with z, unlike the gradient x activation products).
THRESHOLDED = ["fem", "fullgrad"]


def run(method, model, layers, x, targets, **call_kwargs):
    # CAM reads the classifier's weights: the final linear layer (``head``)
    options = {"fc_layer": model.head} if method == "cam" and hasattr(model, "head") else {}
    cam = METHODS[method](model=model, target_layers=layers, progress=False, batch_size=8,
                          **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = cam(input_tensor=x, targets=targets, **call_kwargs)
    caught = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    return maps, caught


def assert_one_all_zero_warning(caught, images, method_name=None):
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert issubclass(caught[0].category, RuntimeWarning)
    assert f"all zeros for image(s) {images}" in message  # what and where
    if method_name is not None and get_method(method_name).black_box:  # no layer to blame
        assert "the target score was the same for every masked copy" in message  # why
        assert "check the model and the targets" in message  # what to do
    else:
        assert "no location" in message and "same value" in message  # why
        assert "Try an earlier layer" in message  # what to do
    assert len(message) < 400, len(message)
    assert caught[0].filename == __file__, "the warning points at the caller's line"


class ReluScores(nn.Module):
    """score of class c = spatial mean of ReLU(conv(x))[:, c] (conv 1x1 and
    linear head with identity weights, so that CAM has a classifier to
    read): an image with negative pixels has all-zero activations."""

    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.act = nn.ReLU()
        self.head = nn.Linear(channels, channels)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(channels)[..., None, None])
            self.conv.bias.zero_()
            self.head.weight.copy_(torch.eye(channels))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))


def bright_square_images(batch, seed):
    """Positive noise with a bright 2 x 2 square: something salient for
    every method (FEM maps only activations above mean + 2 std, which
    uniform noise never reaches)."""
    x = torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) + 0.1
    x[:, :, 2:4, 5:7] += 2.0
    return x


def half_negative_batch():
    x = bright_square_images(2, 0)
    x[1] = -x[1]  # image 1: every activation is zero
    return x


@pytest.mark.parametrize("aug_smooth", [False, True], ids=["plain", "aug_smooth"])
def test_all_zero_map_returns_zeros_and_warns_once(method_name, aug_smooth):
    model = ReluScores().eval()
    x = half_negative_batch()
    maps, caught = run(method_name, model, [model.act], x,
                       [ClassifierOutputTarget(0), ClassifierOutputTarget(1)],
                       aug_smooth=aug_smooth)
    assert np.isfinite(maps).all()
    assert (maps[1] == 0).all()
    if aug_smooth and get_method(method_name).black_box:
        # its masks do not flip with the image: the copies' maps peak apart
        assert maps[0].max() > 0.5  # the other image is fine
    else:
        assert maps[0].max() == pytest.approx(1.0, abs=1e-4)  # the other image is fine
    assert_one_all_zero_warning(caught, [1], method_name)


def test_all_zero_map_with_two_target_layers_warns_once(method_name):
    model = ReluScores().eval()
    x = -torch.rand(1, 3, 8, 8) - 0.1
    if method_name in TARGET_BLIND:
        # the conv layer's output (the negative image) is all the map of
        # these methods looks at, and it is not degenerate: make it constant
        x = torch.full((1, 3, 8, 8), -0.5)
    maps, caught = run(method_name, model, [model.conv, model.act], x, [ClassifierOutputTarget(2)])
    assert (maps == 0).all()
    assert_one_all_zero_warning(caught, [0], method_name)


class TokenOnly(nn.Module):
    """Like a ViT's last block: the score depends on a separate "class
    token" branch only, so the gradients at the target layer are zero."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.token = nn.Linear(3, 4)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        spatial = self.features(x)
        token = self.token(x.mean(dim=(2, 3))) + 0 * spatial.mean(dim=(2, 3))
        return self.head(token)


def assert_whole_network_map(maps, caught):
    """FullGrad's map of a score that depends on the input through other
    layers: a real map for every image, and no warning."""
    assert caught == [], [str(w.message) for w in caught]
    np.testing.assert_allclose(maps.reshape(len(maps), -1).max(axis=1), 1.0, atol=1e-4)


def test_zero_gradients_give_zeros_and_one_warning(gradient_method):
    model = TokenOnly().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    maps, caught = run(gradient_method, model, [model.features[1]], x,
                       [ClassifierOutputTarget(0), ClassifierOutputTarget(4)])
    assert np.isfinite(maps).all()
    if gradient_method in WHOLE_NETWORK:  # the token branch's input-gradient
        assert_whole_network_map(maps, caught)
        return
    assert (maps == 0).all()
    assert_one_all_zero_warning(caught, [0, 1])


def test_a_normal_map_gives_no_warning():
    model = ReluScores().eval()
    x = bright_square_images(1, 6)
    for method in REGISTRY_PARAMS["method_name"]:
        maps, caught = run(method, model, [model.act], x, [ClassifierOutputTarget(0)])
        assert caught == [], method
        assert maps.max() == pytest.approx(1.0, abs=1e-4)


# ---------------------------------------------------------------- no NaN
class Scaled(nn.Module):
    """A small CNN whose target layer's output is replaced: constant
    (``mode="constant"``) or multiplied by ``scale`` (huge activations).
    The score also depends on the input through a side branch, so that
    perturbations change it."""

    def __init__(self, mode: str, scale: float = 1.0):
        super().__init__()
        torch.manual_seed(0)
        self.mode, self.scale = mode, scale
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.target = nn.Identity()
        self.head = nn.Linear(4, 5)
        self.side = nn.Linear(3, 5)
        with torch.no_grad():
            self.conv.bias.fill_(0.1)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        if self.mode == "constant":
            a = a * 0 + 2.0
        a = self.target(a * self.scale)
        return self.head(a.mean(dim=(2, 3))) + self.side(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("case", ["constant", "huge", "near-float32-max"])
def test_no_nan_for_constant_or_huge_activations(method_name, case):
    scale = {"constant": 1.0, "huge": 1e30, "near-float32-max": 1e36}[case]
    model = Scaled("constant" if case == "constant" else "scaled", scale).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    maps, caught = run(method_name, model, [model.target], x, targets)
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    if case == "constant" and method_name in WHOLE_NETWORK:
        assert_whole_network_map(maps, caught)  # the side branch's input-gradient
    elif case == "constant":
        # a constant map localises nothing: zeros, with the warning
        assert (maps == 0).all()
        assert_one_all_zero_warning(caught, [0, 1])
    elif case == "huge":
        # the same picture as with ordinary activations
        normal_model = Scaled("scaled", 1.0).eval()
        normal, _ = run(method_name, normal_model, [normal_model.target], x, targets)
        if method_name in ("gradcam", "xgradcam", "ablationcam"):  # scale invariant
            np.testing.assert_allclose(maps, normal, atol=1e-3)
        else:  # Grad-CAM++ and Score-CAM weights change with the scale
            assert maps.max() == pytest.approx(1.0, abs=1e-4)


def tiny_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():
        model[3].bias.uniform_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_models_on_cpu(method_name, dtype):
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    reference_model = tiny_cnn()
    reference, _ = run(method_name, reference_model, [reference_model[3]], x, targets)
    model = tiny_cnn().to(dtype)
    maps, _ = run(method_name, model, [model[3]], x, targets)
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(p.dtype == dtype for p in model.parameters())
    # the same picture as in float32, within the precision of the dtype
    if method_name in THRESHOLDED:
        # except at the few positions where rounding moves a value across
        # the threshold (here 2 to 4 of 2,304 ReLU inputs, or 3 of 61 mask
        # entries in bfloat16), where the map jumps
        assert (np.abs(maps - reference) > 0.1).mean() < 0.02
        assert np.corrcoef(maps.ravel(), reference.ravel())[0, 1] > 0.98
        return
    assert np.abs(maps - reference).max() < 0.1
    assert np.corrcoef(maps.ravel(), reference.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_guided_backprop_half_precision(dtype):
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    reference = GuidedBackpropReLUModel(tiny_cnn())(x, target_category=1)
    result = GuidedBackpropReLUModel(tiny_cnn().to(dtype))(x, target_category=1)
    assert result.dtype == np.float32 and np.isfinite(result).all()
    assert np.corrcoef(result.ravel(), reference.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("case", ["zero", "constant"])
def test_eigen_smooth_of_degenerate_activations_has_no_nan(method_name, case):
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(1)]
    if case == "zero":
        model = ReluScores().eval()
        layer, x = model.act, -x.abs() - 0.1
    else:
        model = Scaled("constant").eval()
        layer = model.target
    if refuses_eigen_smooth(method_name):  # no channels to project
        with pytest.raises(ValueError, match=EIGEN_REFUSED):
            run(method_name, model, [layer], x, targets, eigen_smooth=True)
        return
    maps, caught = run(method_name, model, [layer], x, targets, eigen_smooth=True)
    assert np.isfinite(maps).all()
    if method_name == "hirescam":  # it says that eigen_smooth voids its guarantee, by design
        assert "HiResCAM with eigen_smooth=True" in str(caught.pop(0).message)
    if case == "constant" and method_name in WHOLE_NETWORK:
        assert_whole_network_map(maps, caught)  # the side branch's input-gradient
        return
    assert (maps == 0).all()
    assert_one_all_zero_warning(caught, [0, 1])


def test_the_all_zero_warning_comes_once_per_cam_object():
    model = ReluScores().eval()
    x = half_negative_batch()
    cam = METHODS["gradcam"](model=model, target_layers=[model.act])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            maps = cam(x, [ClassifierOutputTarget(2)] * len(x))
    assert (maps[1] == 0).all()
    assert len([w for w in caught if "all zeros" in str(w.message)]) == 1
    with warnings.catch_warnings(record=True) as caught:  # a new object warns again
        warnings.simplefilter("always")
        METHODS["gradcam"](model=model, target_layers=[model.act])(x, [ClassifierOutputTarget(2)] * 2)
    assert len(caught) == 1


def test_the_all_zero_warning_names_a_layer_of_the_model_at_hand():
    """For a transformer the hint names the norm before the last block's
    attention, as this model spells it (Hugging Face: layernorm_before)."""

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.layernorm_before = nn.Identity()
            self.output = nn.Conv2d(3, 4, 3, padding=1)

    class HFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.ModuleDict({"layer": nn.ModuleList([Layer(), Layer()])})
            self.head = nn.Linear(4, 5)

        def forward(self, x):
            for layer in self.encoder["layer"]:
                feats = layer.output(layer.layernorm_before(x))
            # a score blind to the map, which depends on the input all the same
            return self.head(torch.relu(feats).mean(dim=(2, 3)) * 0) + x.mean(dim=(1, 2, 3))[:, None]

    model = HFStyle().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        METHODS["gradcam"](model=model, target_layers=[model.encoder["layer"][1].output])(
            torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(1)])
    (warning,) = [w for w in caught if "all zeros" in str(w.message)]
    assert "encoder.layer.1.layernorm_before" in str(warning.message)


def test_an_attention_method_with_a_constant_score_gives_zeros_and_says_why(attention_gradient_method):
    """torchvision's ViT starts its classifier at zero: no score depends on
    the attention. The map is zeros (no NaN), with one warning that names
    that cause and does not send the user to another layer."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=8, mlp_dim=16, num_classes=3).eval()
    cam = METHODS[attention_gradient_method](vit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = cam(torch.randn(2, 3, 16, 16), [ClassifierOutputTarget(1)] * 2)
        cam(torch.randn(2, 3, 16, 16), [ClassifierOutputTarget(1)] * 2)
    assert np.isfinite(first).all() and (first == 0).all()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert "all zeros for image(s) [0, 1]" in messages[0]
    assert "does not depend on the input" in messages[0] and "earlier layer" not in messages[0]
