"""SESS (pytorch_grad_cam.sess): parity with grad-cam 1.5.7, hand-checked
fusion, every registered base method, batches, bad arguments, model state.

The parity maps in tests/data/sess_reference_157.npz were written by
bench/sess_parity.py under grad-cam 1.5.7; it also stores the logits of its
seeded model, checked here first.
"""
import inspect
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from fault_helpers import Boom, FailingTarget  # tests/fault_helpers.py
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn

import pytorch_grad_cam
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.sess import SESS, sliding_window, window_starts
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "sess_reference_157.npz"


# --------------------------------------------------------------- models
class Net(nn.Module):
    """A tiny CNN classifier (4 classes) with global pooling and one linear
    layer, so that every registered method (CAM too) applies."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(self.drop(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1)))


def net():
    torch.manual_seed(0)
    return Net().eval()


class PatchMean(nn.Module):
    """One output: the mean of the patch (the score of a patch, by hand)."""

    def forward(self, x):
        return x.flatten(1).mean(dim=1, keepdim=True)


class RawPatch(BaseCAM):
    """A base method whose map of a patch is its first channel, as it is:
    what SESS does with the maps can be computed by hand. Records the
    patches it is given (a test double)."""

    uses_gradients = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def forward(self, input_tensor, targets, eigen_smooth=False):
        self.seen.append(input_tensor.detach().clone())
        return input_tensor[:, 0].float()


def raw_sess(**kwargs):
    model = PatchMean()
    kwargs.setdefault("use_softmax_scores", False)
    kwargs.setdefault("smooth", False)
    return SESS(model, [model], base_method=RawPatch, progress=False, **kwargs)


def normalise(a):
    a = np.asarray(a, dtype=np.float64)
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


def image(height, width, seed=0):
    """A positive 1 x 3 x H x W image."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) + 0.5


# ------------------------------------------------- parity with 1.5.7
def parity_setup():
    """The seeded model and inputs of bench/sess_parity.py (SETUP)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    generator = torch.Generator().manual_seed(1)

    def smooth_noise(batch, height, width):
        coarse = torch.randn(batch, 3, height // 8, width // 8, generator=generator)
        fine = torch.randn(batch, 3, height, width, generator=generator)
        return F.interpolate(coarse, size=(height, width), mode="bilinear",
                             align_corners=False) + 0.3 * fine

    inputs = {"square": smooth_noise(2, 48, 48), "wide": smooth_noise(1, 48, 72),
              "small": smooth_noise(1, 32, 32)}
    return model, inputs


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        stored = {key: data[key] for key in data.files}
    model, inputs = parity_setup()
    with torch.no_grad():
        for key, x in inputs.items():
            logits = model(x).numpy()
            if not np.allclose(logits, stored["logits_" + key], atol=1e-4, rtol=1e-4):
                pytest.fail(f"the seeded resnet18 gives other logits for the input {key!r} "
                            f"than when {REFERENCE.name} was written (max difference "
                            f"{np.abs(logits - stored['logits_' + key]).max():.2e}): torch or "
                            "torchvision initialise it differently now. The parity maps no "
                            "longer apply; rerun bench/sess_parity.py (it needs grad-cam "
                            "1.5.7, see bench/reference.py) to write new ones.")
    return stored, model, inputs


def _cases():
    with np.load(REFERENCE) as data:
        return json.loads(str(data["cases"]))


@pytest.mark.parametrize("case", _cases(), ids=lambda case: case["name"])
def test_parity_with_157(reference, case):
    stored, model, inputs = reference
    targets = (None if case["targets"] is None
               else [ClassifierOutputTarget(c) for c in case["targets"]])
    method = getattr(pytorch_grad_cam, case["method"])
    cam = SESS(model, [model.layer3[-1]], base_method=method, progress=False, **case["kwargs"])
    ours = cam(inputs[case["input"]], targets=targets)
    theirs = stored[case["name"]].astype(np.float32)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    for index in range(len(ours)):
        r = np.corrcoef(ours[index].ravel(), theirs[index].ravel())[0, 1]
        assert r >= 0.99, (case["name"], index, r)
    # float16 storage: about 5e-4 of rounding
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


# ----------------------------------------------- hand-checked fusion
def test_windows():
    assert window_starts(6, 2, 4) == [0, 2]
    assert window_starts(4, 4, 4) == [0]
    assert window_starts(10, 3, 4) == [0, 3, 6]  # 6 + 4 reaches the border
    assert window_starts(11, 3, 4) == [0, 3, 6, 7]  # the last window shifted back
    assert sliding_window(288, 288, 224, 224) == [(0, 0), (64, 0), (0, 64), (64, 64)]
    assert sliding_window(224, 448, 112, 224) == [(0, 0), (112, 0), (224, 0)]


def test_default_scales():
    cam = raw_sess()
    assert cam.get_scales(224) == [224 + 64 * i for i in range(12)]  # the paper's
    assert raw_sess(num_scales=3, scale_step_ratio=0.5).get_scales(10) == [10, 15, 20]
    assert raw_sess(scales=[9, 5]).get_scales(4) == [9, 5]


def _two_windows():
    """A 4 x 6 image, window 4, step 2: windows at x = 0 and x = 2 (columns
    2 and 3 in both); the patch scores are the patch means."""
    x = image(4, 6)
    channel = x[0, 0].numpy().astype(np.float64)
    p = np.array([x[0, :, :, 0:4].mean().item(), x[0, :, :, 2:6].mean().item()])
    c = p / p.max()
    left = np.zeros((4, 6))
    left[:, 0:4] = c[0] * channel[:, 0:4]
    right = np.zeros((4, 6))
    right[:, 2:6] = c[1] * channel[:, 2:6]
    return x, left, right


def test_mean_fusion_of_overlapping_windows():
    x, left, right = _two_windows()
    cam = raw_sess(step_size=2, num_scales=1)
    result = cam(x, targets=[ClassifierOutputTarget(0)])
    # every pixel averaged over the windows that cover it (all values > theta = 0)
    expected = (left + right) / ((left > 0).astype(float) + (right > 0))
    np.testing.assert_allclose(result[0], normalise(expected), atol=1e-6)
    assert [tuple(p.shape) for p in cam.base_cam.seen] == [(2, 3, 4, 4)]


def test_max_fusion_of_overlapping_windows():
    x, left, right = _two_windows()
    result = raw_sess(step_size=2, num_scales=1, pool="max")(x, [ClassifierOutputTarget(0)])
    np.testing.assert_allclose(result[0], normalise(np.maximum(left, right)), atol=1e-6)
    mean = raw_sess(step_size=2, num_scales=1)(x, [ClassifierOutputTarget(0)])
    assert not np.allclose(result, mean, atol=1e-3)  # the overlap differs


def test_theta_leaves_small_values_out_of_the_mean():
    x, left, right = _two_windows()
    theta = float(np.median(np.concatenate([left[left > 0], right[right > 0]])))
    result = raw_sess(step_size=2, num_scales=1, theta=theta)(x, [ClassifierOutputTarget(0)])
    left, right = np.where(left > theta, left, 0), np.where(right > theta, right, 0)
    counts = (left > 0).astype(float) + (right > 0)
    expected = np.divide(left + right, counts, out=np.zeros_like(left), where=counts > 0)
    np.testing.assert_allclose(result[0], normalise(expected), atol=1e-6)


def test_pre_filter_drops_the_lowest_scoring_patches():
    # six patches (4 x 4 windows of a 4 x 24 image, step 4), pre_filter_ratio 0.5:
    # floor(6 * 0.5) = 3 dropped, the three highest patch means are kept
    x = image(4, 24, seed=3)
    means = [x[0, :, :, 4 * k:4 * k + 4].mean().item() for k in range(6)]
    kept = sorted(np.argsort(means)[3:].tolist())
    cam = raw_sess(num_scales=1, pre_filter_ratio=0.5, pool="max")
    result = cam(x, [ClassifierOutputTarget(0)])
    seen = torch.cat(cam.base_cam.seen)
    assert len(seen) == 3
    for patch, k in zip(seen, kept):
        assert torch.equal(patch, x[0, :, :, 4 * k:4 * k + 4])
    columns = result[0].max(axis=0)
    for k in range(6):
        assert (columns[4 * k:4 * k + 4].max() > 0) == (k in kept), k
    # with every patch kept, the dropped ones show
    columns = raw_sess(num_scales=1, pool="max")(x, [ClassifierOutputTarget(0)])[0].max(axis=0)
    assert all(columns[4 * k:4 * k + 4].max() > 0 for k in range(6))


def test_pasting_from_a_scale_matches_opencv():
    """Patches of an enlarged image, pasted into its canvas and resized back
    with cv2.resize, as 1.5.7 does it."""
    x = image(6, 9, seed=4)
    cam = raw_sess(scales=[10], window_size=4, step_size=3)
    result = cam(x, [ClassifierOutputTarget(0)])[0]
    scaled = torchvision.transforms.functional.resize(x, 10)  # 10 x 15
    assert tuple(scaled.shape[2:]) == (10, 15)
    scores = [scaled[0, :, y:y + 4, u:u + 4].mean().item() for u, y in sliding_window(10, 15, 3, 4)]
    total, counts = np.zeros((6, 9)), np.zeros((6, 9))
    for (u, y), score in zip(sliding_window(10, 15, 3, 4), scores):
        canvas = np.zeros((10, 15), np.float32)
        canvas[y:y + 4, u:u + 4] = score / max(scores) * scaled[0, 0, y:y + 4, u:u + 4].numpy()
        pasted = cv2.resize(canvas, (9, 6))
        total += np.where(pasted > 0, pasted, 0)
        counts += pasted > 0
    expected = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
    np.testing.assert_allclose(result, normalise(expected), atol=1e-5)


@pytest.mark.parametrize("height,width", [(4, 6), (16, 20)])
def test_smoothing_is_opencvs_gaussian_blur(height, width):
    """11 x 11, sigma 5, reflected borders (also on maps smaller than the kernel)."""
    x = image(height, width, seed=5)
    kwargs = {"step_size": 2, "num_scales": 2, "scale_step_ratio": 0.5}
    plain = raw_sess(**kwargs)(x, [ClassifierOutputTarget(0)])[0]
    smooth = raw_sess(smooth=True, **kwargs)(x, [ClassifierOutputTarget(0)])[0]
    # the blur is linear and keeps constants, so it commutes with the normalisation
    expected = normalise(cv2.GaussianBlur(plain, (11, 11), 5.0, 0))
    np.testing.assert_allclose(smooth, expected, atol=1e-5)


def test_softmax_scores_weight_the_patches():
    """Two patches, two classes: the weights are softmax(logits)[class] /
    their maximum (with use_softmax_scores=False, the logits clipped at 0)."""
    class TwoLogits(nn.Module):
        def forward(self, x):
            m = x.flatten(1).mean(dim=1)
            return torch.stack([3 * m, -m], dim=1)

    x, _, _ = _two_windows()
    channel = x[0, 0].numpy().astype(np.float64)
    logits = np.array([[3 * m, -m] for m in (x[..., 0:4].mean().item(), x[..., 2:6].mean().item())])
    for use_softmax, category in [(True, 1), (False, 0), (False, 1)]:
        model = TwoLogits()
        cam = SESS(model, [model], base_method=RawPatch, step_size=2, num_scales=1, smooth=False,
                   use_softmax_scores=use_softmax, progress=False)
        result = cam(x, [ClassifierOutputTarget(category)])[0]
        if use_softmax:
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        else:
            p = np.maximum(logits, 0)
        p = p[:, category]
        c = p / p.max() if p.max() > 0 else np.ones(2)  # all scores 0: weights 1
        left, right = np.zeros((4, 6)), np.zeros((4, 6))
        left[:, 0:4], right[:, 2:6] = c[0] * channel[:, 0:4], c[1] * channel[:, 2:6]
        counts = (left > 0).astype(float) + (right > 0)
        expected = np.divide(left + right, counts, out=np.zeros_like(left), where=counts > 0)
        np.testing.assert_allclose(result, normalise(expected), atol=1e-6)


# ------------------------------------------- every registered method
def _light(name):
    """Constructor arguments that keep a method's extra passes few."""
    info = get_method(name)
    kwargs = {"batch_size": 16, "progress": False} if info.extra_passes else {}
    parameters = inspect.signature(info.cls.__init__).parameters
    for samples in ("n_samples", "num_samples"):
        if samples in parameters:
            kwargs[samples] = 3
    return kwargs


@pytest.mark.parametrize("name", REGISTRY_PARAMS["method_name"])
def test_one_patch_is_the_base_methods_map(name):
    """One scale equal to the window, no smoothing: the only patch is the
    image and its weight 1, so SESS gives the base method's own map (every
    registered CNN method, by name; given as a class, the same class is
    made)."""
    model = net()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    kwargs = _light(name)
    cls = get_method(name).cls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FullGrad: target_layers are not used
        expected = cls(model, [model.relu], **kwargs)(x)
        with SESS(model, [model.relu], base_method=name, num_scales=1, smooth=False,
                  **kwargs) as cam:
            result = cam(x)
        assert isinstance(cam.base_cam, cls)
        assert isinstance(SESS(model, [model.relu], base_method=cls, **kwargs).base_cam, cls)
    assert result.shape == (2, 8, 8) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-5, err_msg=name)
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", REGISTRY_PARAMS["attention_method"])
def test_one_patch_is_the_base_methods_map_for_a_vision_transformer(name):
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=16, patch_size=4, num_layers=2,
                                                 num_heads=2, hidden_dim=8, mlp_dim=16,
                                                 num_classes=4).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero: no gradients
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    expected = get_method(name).cls(model)(x)
    result = SESS(model, base_method=name, num_scales=1, smooth=False, progress=False)(x)
    assert expected.std() > 0.1
    np.testing.assert_allclose(result, expected, atol=1e-5, err_msg=name)
    assert all(not m._forward_hooks for m in model.modules())


def test_call_options_and_aug_smooth_reach_the_base_method():
    model = net()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    finer = get_method("finercam").cls(model, [model.relu])
    cam = SESS(model, [model.relu], base_method="finercam", num_scales=1, smooth=False,
               progress=False)
    np.testing.assert_allclose(cam(x, alpha=0.3), finer(x, alpha=0.3), atol=1e-5)
    assert not np.allclose(cam(x, alpha=0.3), cam(x, alpha=1.0), atol=1e-3)
    grad = get_method("gradcam").cls(model, [model.relu])
    cam = SESS(model, [model.relu], num_scales=1, smooth=False, progress=False)
    # aug_smooth's mean of the copies' maps is not normalised; SESS's result is
    np.testing.assert_allclose(cam(x, aug_smooth=True)[0], normalise(grad(x, aug_smooth=True)[0]),
                               atol=1e-5)
    assert not np.allclose(cam(x, aug_smooth=True), cam(x), atol=1e-3)
    np.testing.assert_allclose(cam(x, eigen_smooth=True), grad(x, eigen_smooth=True), atol=1e-5)


# ------------------------------------------------------------ batches
def test_batch_equals_single_images_and_chunks_do_not_matter():
    model = net()
    x = torch.randn(3, 3, 10, 14, generator=torch.Generator().manual_seed(3))
    targets = [ClassifierOutputTarget(c) for c in (0, 3, 1)]
    cam = SESS(model, [model.relu], num_scales=3, step_size=5, pre_filter_ratio=0.25,
               batch_size=7, progress=False)
    batch = cam(x, targets)
    assert batch.shape == (3, 10, 14) and batch.min() >= 0 and batch.max() <= 1
    for i in range(3):
        np.testing.assert_allclose(batch[i], cam(x[i:i + 1], targets[i:i + 1])[0], atol=1e-5)
    cam.batch_size = 2
    np.testing.assert_allclose(cam(x, targets), batch, atol=1e-5)


def test_targets_none_explain_each_images_top_class():
    model = net()
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        top = model(x).argmax(dim=1).tolist()
    cam = SESS(model, [model.relu], num_scales=2, progress=False)
    np.testing.assert_allclose(cam(x), cam(x, [ClassifierOutputTarget(c) for c in top]),
                               atol=1e-6)


def test_target_layers_may_be_left_out():
    model = net()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    found = SESS(model, num_scales=2, progress=False)
    assert found.base_cam.target_layers == [model.relu]
    given = SESS(model, [model.relu], num_scales=2, progress=False)
    np.testing.assert_allclose(found(x), given(x), atol=1e-6)


def test_progress_bars(capsys):
    model = net()
    x = torch.randn(1, 3, 8, 8)
    SESS(model, [model.relu], num_scales=2, progress=False)(x)
    assert "SESS" not in capsys.readouterr().err
    SESS(model, [model.relu], num_scales=2, progress=True)(x)
    assert "SESS" in capsys.readouterr().err


# ------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs,error,words", [
    ({"pool": "median"}, ValueError, "pool"),
    ({"pre_filter_ratio": 1.0}, ValueError, "pre_filter_ratio"),
    ({"pre_filter_ratio": -0.1}, ValueError, "pre_filter_ratio"),
    ({"num_scales": 0}, ValueError, "num_scales"),
    ({"num_scales": 2.0}, TypeError, "num_scales"),
    ({"scale_step_ratio": 0}, ValueError, "scale_step_ratio"),
    ({"scale_step_ratio": float("nan")}, ValueError, "scale_step_ratio"),
    ({"scales": []}, TypeError, "scales"),
    ({"scales": 224}, TypeError, "scales"),
    ({"scales": [8, "9"]}, TypeError, r"scales\[1\]"),
    ({"scales": [8, 0]}, ValueError, r"scales\[1\]"),
    ({"scales": [8, 6], "window_size": 7}, ValueError, r"scales\[1\] is 6, below window_size=7"),
    ({"window_size": 0}, ValueError, "window_size"),
    ({"step_size": 1.5}, TypeError, "step_size"),
    ({"theta": 1.0}, ValueError, "theta"),
    ({"theta": "0"}, TypeError, "theta"),
    ({"smooth": "yes"}, TypeError, "smooth"),
    ({"use_softmax_scores": 1}, TypeError, "use_softmax_scores"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"progress": None}, TypeError, "progress"),
    ({"base_method": "gradcma"}, ValueError, "base_method.*did you mean gradcam"),
    ({"base_method": SESS}, TypeError, "base_method cannot be SESS"),
    ({"base_method": nn.Conv2d}, TypeError, "base_method must be"),
    ({"base_method": "gradcam", "target_layers": "relu"}, TypeError, "target_layers"),
])
def test_bad_constructor_arguments_are_named(kwargs, error, words):
    model = net()
    kwargs.setdefault("target_layers", [model.relu])
    with pytest.raises(error, match=words):
        SESS(model, **kwargs)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        SESS(lambda x: x)


@pytest.mark.parametrize("call,error,words", [
    (lambda cam, x: cam(x[0]), ValueError, "input_tensor"),
    (lambda cam, x: cam(x.numpy()), TypeError, "input_tensor"),
    (lambda cam, x: cam(torch.randn(1, 3, 2, 4, 4)), ValueError, "input_tensor"),
    (lambda cam, x: cam(x, [ClassifierOutputTarget(0)] * 2), ValueError, "targets"),
    (lambda cam, x: cam(x, [ClassifierOutputTarget(9)]), ValueError, "targets.*out of range"),
    (lambda cam, x: cam(x, aug_smooth="no"), TypeError, "aug_smooth"),
    (lambda cam, x: cam(x, alpha=1.0), TypeError, "alpha"),
])
def test_bad_call_arguments_are_named(call, error, words):
    model = net()
    cam = SESS(model, [model.relu], num_scales=2, progress=False)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(error, match=words):
        call(cam, x)
    assert all(not m._forward_hooks for m in model.modules())


def test_scale_below_the_window_is_named_before_any_model_pass():
    model = net()
    cam = SESS(model, [model.relu], scales=[8, 6], progress=False)
    with pytest.raises(ValueError, match=r"scales\[1\] is 6, below the window size 8"):
        cam(torch.randn(1, 3, 8, 8))
    assert model.calls == 0


# --------------------------------------------------------- model state
def user_model():
    """Partly in training mode, partly frozen, with gradients and hooks of its own."""
    model = net()
    model.train()
    model.fc.eval()
    model.conv.weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)
    model.fc.register_forward_hook(lambda m, i, o: None)
    return model


def state(model):
    return {
        "hooks": [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for n, m in model.named_modules()],
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grad": [(n, None if p.grad is None else p.grad.clone().tolist())
                 for n, p in model.named_parameters()],
        "buffers": [(n, b.clone().tolist()) for n, b in model.named_buffers()],
        "grad_enabled": torch.is_grad_enabled(),
    }


@pytest.mark.parametrize("base_method", ["gradcam", "scorecam"])
def test_the_model_is_restored_also_when_a_call_fails(base_method):
    """The user's flags, gradients, buffers and hooks after a call, and after
    calls whose target raises at its first call (the first scoring pass)
    and at its last (inside the base method)."""
    model = user_model()
    before = state(model)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))

    def make():
        return SESS(model, [model.relu], base_method=base_method, num_scales=2, step_size=4,
                    batch_size=2, progress=False)

    counting = FailingTarget(1, fail_at=float("inf"))
    result = make()(x, [counting, ClassifierOutputTarget(2)])
    assert state(model) == before
    calls = counting.calls
    assert calls > 5  # the 5 patches of image 0 scored, then the base method's calls
    if base_method == "gradcam":
        model.eval()  # the map is that of the model in eval mode (no dropout)
        np.testing.assert_allclose(result, make()(x, [ClassifierOutputTarget(1),
                                                      ClassifierOutputTarget(2)]), atol=1e-5)
        model.train()
        model.fc.eval()
        assert state(model) == before
    for fail_at in (1, calls):
        target = FailingTarget(1, fail_at)
        with pytest.raises(Boom):
            make()(x, [target, ClassifierOutputTarget(2)])
        assert target.calls == fail_at
        assert state(model) == before


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_calls_under_no_grad_and_inference_mode(mode):
    model = net()
    cam = SESS(model, [model.relu], num_scales=2, progress=False)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    expected = cam(x)
    with (torch.no_grad() if mode == "no_grad" else torch.inference_mode()):
        np.testing.assert_allclose(cam(x.clone()), expected, atol=1e-6)
        assert torch.is_grad_enabled() is False
    assert model.conv.weight.requires_grad and model.conv.weight.grad is None
