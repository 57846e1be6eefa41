"""Models and calling contexts that must just work: the caller's no_grad /
inference_mode, frozen parameters, train mode, in-place ReLUs, a module
used twice, non-tensor outputs, two CAM objects at once, no parameters."""
import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# the tests take ``method_name``: every method for CNNs, from the registry
# (tests/registry_cases.py); the attention methods, which need a Vision
# Transformer, are checked in tests/methods/test_attention_guarantees.py
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def cnn(inplace: bool = True) -> nn.Sequential:
    """Conv-BN-ReLU-Conv-ReLU-pool-dropout-linear, with fixed weights."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=inplace),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 5))
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.3, 0.3)
        model[1].running_var.uniform_(0.5, 2.0)
        model[3].bias.uniform_(0.0, 0.2)
    return model.eval()


def run(method, model, layer, x=X, targets=TARGETS, **kwargs):
    cam = METHODS[method](model=model, target_layers=[layer], progress=False, batch_size=4,
                          **kwargs)
    return cam(input_tensor=x, targets=targets)


@pytest.fixture(scope="module")
def reference():
    """Each method's map of the plain eval-mode CNN, in a plain call."""
    model = cnn()
    return {m: run(m, model, model[3]) for m in REGISTRY_PARAMS["method_name"]}


def assert_maps_equal(actual, expected):
    assert actual.shape == expected.shape
    assert np.isfinite(actual).all()
    np.testing.assert_allclose(actual, expected, atol=1e-6)


# ---------------------------------------------------------- grad contexts
@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_call_inside_callers_no_grad_or_inference_mode(method_name, context, reference):
    model = cnn()
    manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with manager:
        x = X.clone()  # an inference tensor under inference_mode
        maps = run(method_name, model, model[3], x=x)
        assert not torch.is_grad_enabled()
        assert torch.is_inference_mode_enabled() == (context == "inference_mode")
    assert torch.is_grad_enabled()
    assert_maps_equal(maps, reference[method_name])
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_guided_backprop_inside_callers_no_grad_or_inference_mode(context):
    model = cnn()
    expected = GuidedBackpropReLUModel(model)(X, targets=TARGETS)
    manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with manager:
        result = GuidedBackpropReLUModel(model)(X.clone(), targets=TARGETS)
        assert not torch.is_grad_enabled()
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(result, expected, atol=1e-7)


# ------------------------------------------------------ frozen parameters
def test_all_parameters_frozen(method_name, reference):
    model = cnn()
    for p in model.parameters():
        p.requires_grad_(False)
    maps = run(method_name, model, model[3])
    assert_maps_equal(maps, reference[method_name])
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_guided_backprop_all_parameters_frozen():
    model = cnn()
    expected = GuidedBackpropReLUModel(model)(X, targets=TARGETS)
    for p in model.parameters():
        p.requires_grad_(False)
    np.testing.assert_allclose(GuidedBackpropReLUModel(model)(X, targets=TARGETS), expected,
                               atol=1e-7)
    assert not any(p.requires_grad for p in model.parameters())


# ------------------------------------------------------------- train mode
def test_train_mode_really_changes_the_output():
    """The train-mode tests below are meaningful: BN and dropout act."""
    model = cnn().train()
    with torch.no_grad():
        train_out = model(X)
        model.eval()
        eval_out = model(X)
    assert not torch.allclose(train_out, eval_out, atol=1e-3)


def test_train_mode_model_is_explained_in_eval_mode_and_restored(method_name, reference):
    model = cnn().train()
    model[1].eval()  # a mixed state is restored module by module
    flags = [m.training for m in model.modules()]
    buffers = [b.clone() for b in model.buffers()]
    maps = run(method_name, model, model[3])
    assert_maps_equal(maps, reference[method_name])
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), buffers)), \
        "batch-norm statistics were updated"


def test_guided_backprop_train_mode():
    model = cnn()
    expected = GuidedBackpropReLUModel(model)(X, targets=TARGETS)
    model.train()
    result = GuidedBackpropReLUModel(model)(X, targets=TARGETS)
    np.testing.assert_allclose(result, expected, atol=1e-7)
    assert all(m.training for m in model.modules())


# ------------------------------------------------------- in-place ReLUs
@pytest.mark.parametrize("layer_index", [3, 4], ids=["conv-then-inplace-relu", "inplace-relu"])
def test_inplace_relus(method_name, layer_index):
    inplace, plain = cnn(inplace=True), cnn(inplace=False)
    expected = run(method_name, plain, plain[layer_index])
    maps = run(method_name, inplace, inplace[layer_index])
    assert_maps_equal(maps, expected)
    assert [m.inplace for m in inplace.modules() if isinstance(m, nn.ReLU)] == [True, True]


def test_guided_backprop_inplace_relus_keep_their_own_modules():
    inplace, plain = cnn(inplace=True), cnn(inplace=False)
    relus = [m for m in inplace.modules() if isinstance(m, nn.ReLU)]
    result = GuidedBackpropReLUModel(inplace)(X, targets=TARGETS)
    np.testing.assert_allclose(result, GuidedBackpropReLUModel(plain)(X, targets=TARGETS),
                               atol=1e-7)
    assert [m for m in inplace.modules() if isinstance(m, nn.ReLU)] == relus
    assert [m.inplace for m in relus] == [True, True]
    assert inplace[2] is relus[0] and inplace[4] is relus[1]


# ----------------------------------------------- one module, two calls
class Twice(nn.Module):
    """``block`` runs twice in one forward pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)  # weights for which no map is all zeros
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.block = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Linear(6, 5)
        with torch.no_grad():
            self.block.bias.uniform_(0.0, 0.2)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.block(x))
        x = F.relu(self.block(x))
        return self.head(x.mean(dim=(2, 3)))


class Unrolled(nn.Module):
    """The same network with the two uses as two modules."""

    def __init__(self, twice: Twice):
        super().__init__()
        self.stem = copy.deepcopy(twice.stem)
        self.first = copy.deepcopy(twice.block)
        self.second = copy.deepcopy(twice.block)
        self.head = copy.deepcopy(twice.head)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.first(x))
        x = F.relu(self.second(x))
        return self.head(x.mean(dim=(2, 3)))


def test_module_used_twice_records_its_last_call(method_name):
    twice = Twice().eval()
    unrolled = Unrolled(twice).eval()
    maps = run(method_name, twice, twice.block)
    last = run(method_name, unrolled, unrolled.second)
    first = run(method_name, unrolled, unrolled.first)
    if METHODS[method_name].uses_target_layers:
        assert not np.allclose(first, last, atol=1e-3), "the two calls must be distinguishable"
    else:
        # FullGrad explains every layer whatever the target: each call of the
        # module adds its own bias term, as the two modules of the unrolled
        # network do (counting only the last call would differ from it)
        assert_maps_equal(first, last)
    assert_maps_equal(maps, last)


# -------------------------------------------------- non-tensor outputs
class ModelOutput(OrderedDict):
    """A HuggingFace-style output: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Wrapped(nn.Module):
    def __init__(self, inner, kind):
        super().__init__()
        self.inner, self.kind = inner, kind

    def forward(self, x):
        logits = self.inner(x)
        if self.kind == "tuple":
            return logits, logits.detach() * 0 - 1
        if self.kind == "dict":
            return {"logits": logits, "hidden": logits.detach() * 0 - 1}
        if self.kind == "model_output":
            return ModelOutput(loss=None, logits=logits)
        if self.kind == "scores_dict":
            return {"scores": logits}
        raise AssertionError(self.kind)


@pytest.mark.parametrize("kind", ["tuple", "dict", "model_output"])
def test_tuple_dict_and_model_output(method_name, kind, reference):
    inner = cnn()
    model = Wrapped(inner, kind)
    assert_maps_equal(run(method_name, model, inner[3]), reference[method_name])
    # targets=None picks the top class from the selected logits
    top = [ClassifierOutputTarget(c) for c in inner(X).argmax(dim=1).tolist()]
    assert_maps_equal(run(method_name, model, inner[3], targets=None),
                      run(method_name, inner, inner[3], targets=top))


def test_output_without_logits_needs_output_selector(method_name, reference):
    inner = cnn()
    model = Wrapped(inner, "scores_dict")
    with pytest.raises(TypeError, match="output_selector"):
        run(method_name, model, inner[3])
    maps = run(method_name, model, inner[3], output_selector=lambda out: out["scores"])
    assert_maps_equal(maps, reference[method_name])


@pytest.mark.parametrize("kind", ["tuple", "dict", "model_output"])
def test_guided_backprop_tuple_dict_and_model_output(kind):
    inner = cnn()
    expected = GuidedBackpropReLUModel(inner)(X, targets=TARGETS)
    result = GuidedBackpropReLUModel(Wrapped(inner, kind))(X, targets=TARGETS)
    np.testing.assert_allclose(result, expected, atol=1e-7)


def test_guided_backprop_output_without_logits():
    inner = cnn()
    model = Wrapped(inner, "scores_dict")
    with pytest.raises(TypeError, match="output_selector"):
        GuidedBackpropReLUModel(model)(X, targets=TARGETS)
    result = GuidedBackpropReLUModel(model, output_selector=lambda out: out["scores"])(
        X, targets=TARGETS)
    np.testing.assert_allclose(result, GuidedBackpropReLUModel(inner)(X, targets=TARGETS),
                               atol=1e-7)


# -------------------------------------------- two CAM objects at once
def test_two_cams_on_the_same_model_at_once(method_name):
    model = cnn()
    solo_a = run("gradcam", model, model[3])
    solo_b = run(method_name, model, model[4])
    with METHODS["gradcam"](model=model, target_layers=[model[3]]) as cam_a, \
            METHODS[method_name](model=model, target_layers=[model[4]], progress=False,
                            batch_size=4) as cam_b:
        for _ in range(2):
            assert_maps_equal(cam_a(input_tensor=X, targets=TARGETS), solo_a)
            assert_maps_equal(cam_b(input_tensor=X, targets=TARGETS), solo_b)

        # one CAM called from inside the other's target function
        inner_maps = []

        class NestedTarget(ClassifierOutputTarget):
            def __call__(self, output):
                if not inner_maps:
                    inner_maps.append(cam_b(input_tensor=X, targets=TARGETS))
                return super().__call__(output)

        outer = cam_a(input_tensor=X, targets=[NestedTarget(1), NestedTarget(3)])
    assert_maps_equal(outer, solo_a)
    assert_maps_equal(inner_maps[0], solo_b)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


# -------------------------------------------------- no parameters at all
class NoParameters(nn.Module):
    """score of class c = spatial mean of ReLU(x)[:, c]; no parameters or
    buffers."""

    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x).mean(dim=(2, 3))


def _expected_no_parameter_map(method, x, category):
    activations = torch.relu(x.double())
    if method == "scorecam":
        low = activations.flatten(2).amin(2)[..., None, None]
        high = activations.flatten(2).amax(2)[..., None, None]
        masks = (activations - low) / (high - low)  # B x C x H x W, one mask per channel
        scores = torch.relu(x.double()[:, None, category] * masks).mean(dim=(2, 3))
        weights = torch.softmax(scores, dim=1)
        cam = torch.relu((weights[..., None, None] * activations).sum(dim=1))
    else:
        # the score depends on channel `category` only, linearly:
        # every method weights it alone (Ablation-CAM: weight 1)
        cam = activations[:, category]
    low = cam.flatten(1).amin(1)[:, None, None]
    cam = cam - low
    return (cam / (cam.flatten(1).amax(1)[:, None, None] + 1e-7)).float().numpy()


def test_model_without_parameters(method_name):
    model = NoParameters()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    if method_name == "cam":
        # CAM weights the channels by the final linear layer's weights, and
        # there is none: it says so when it is made
        with pytest.raises(ValueError, match="CAM needs the model's final torch.nn.Linear"):
            run(method_name, model, model.act, x=x, targets=targets)
        return
    maps = run(method_name, model, model.act, x=x, targets=targets)
    assert maps.shape == (2, 8, 8) and np.isfinite(maps).all()
    # FullGrad: no bias, so the input term alone, |x * dY/dx| = ReLU(x_c) / 64
    if method_name in ("gradcam", "gradcam++", "xgradcam", "ablationcam", "scorecam", "fullgrad"):
        np.testing.assert_allclose(maps[0], _expected_no_parameter_map(method_name, x, 0)[0], atol=1e-5)
        np.testing.assert_allclose(maps[1], _expected_no_parameter_map(method_name, x, 2)[1], atol=1e-5)
    else:  # a method added later: a map that is not empty
        assert maps.max() == pytest.approx(1.0, abs=1e-4)


def test_guided_backprop_model_without_parameters():
    model = NoParameters()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    result = GuidedBackpropReLUModel(model)(x, targets=[ClassifierOutputTarget(1)])
    expected = np.zeros((4, 4, 3), dtype=np.float32)
    expected[..., 1] = (x[0, 1] > 0).float().numpy() / 16
    np.testing.assert_allclose(result, expected, atol=1e-7)
