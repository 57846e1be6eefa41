"""Every bad argument gets a ValueError/TypeError that names the argument,
the value given and what is allowed, raised before any heavy work.

"Before heavy work" is counted: the model's forward calls (a forward
pre-hook on the model, removed afterwards) and the backward passes
(torch.autograd.grad). A check that needs the model's output (class index
out of range, a target returning a non-scalar, a layer that is never
called, ...) may run the one recording forward pass, but no backward pass
and no perturbation pass.
"""
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_helpers import Counter  # tests/fault_helpers.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.layers import LayerError
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.rise import FunctionModel
from pytorch_grad_cam.scoring import describe
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

ROOT = Path(__file__).resolve().parents[2]
# the tests take ``method_name``: every method for CNNs, from the registry
# (tests/registry_cases.py); the attention methods, which need a Vision
# Transformer, are checked in tests/methods/test_attention_guarantees.py


class Pair(nn.Module):
    """A layer whose output is a tuple, not a tensor."""

    def forward(self, x):
        return x, x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pair = Pair()
        self.unused = nn.Conv2d(8, 8, 1)  # never called in forward
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = self.pair(x)[0]
        return self.head(x.mean(dim=(2, 3)))


def x(*shape, dtype=torch.float32):
    return torch.randn(*(shape or (2, 3, 16, 16))).to(dtype)


def two_targets():
    return [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def with_value(value, index=(0, 1, 2, 3)):
    t = x()
    t[index] = value
    return t


def cam(cls, model, **kwargs):
    kwargs.setdefault("target_layers", [model.conv])
    return cls(model=model, progress=False, **kwargs)


def call(cls, model, input_tensor=None, targets="default", **kwargs):
    input_tensor = x() if input_tensor is None else input_tensor
    targets = two_targets() if targets == "default" else targets
    aug_smooth = kwargs.pop("aug_smooth", False)
    return cam(cls, model, **kwargs)(input_tensor=input_tensor, targets=targets,
                                     aug_smooth=aug_smooth)


# name: (exception, substrings of the message, forward calls allowed, action)
# the substrings name the argument, the value given and what is allowed
CASES = {
    "target layer not inside the model": (
        ValueError, ["target_layers[0]", "Conv2d(3, 4", "module of the model"], 0,
        lambda cls, m: cam(cls, m, target_layers=[nn.Conv2d(3, 4, 3)])),
    "empty target_layers": (
        ValueError, ["target_layers", "[]", "at least one module"], 0,
        lambda cls, m: cam(cls, m, target_layers=[])),
    "target_layers not a list": (
        TypeError, ["target_layers", "'conv'", "list of torch.nn.Module", "target_layers=['conv']"],
        0, lambda cls, m: cam(cls, m, target_layers="conv")),
    "target_layers entry not a module": (
        TypeError, ["target_layers[1]", "3 (int)", "torch.nn.Module or a layer path"], 0,
        lambda cls, m: cam(cls, m, target_layers=[m.conv, 3])),
    "target layer path with a typo": (
        LayerError, ["'cnov'", "did you mean conv"], 0,  # a ValueError
        lambda cls, m: cam(cls, m, target_layers=["cnov"])),
    "model not a module": (
        TypeError, ["model", "function", "torch.nn.Module", "RISE(model) (--method rise)"], 0,
        lambda cls, m: cls(model=lambda t: t, target_layers=[m.conv])),
    "reshape_transform not callable": (
        TypeError, ["reshape_transform", "'vit'", "callable"], 0,
        lambda cls, m: cam(cls, m, reshape_transform="vit")),
    "output_selector not callable": (
        TypeError, ["output_selector", "'logits'", "callable"], 0,
        lambda cls, m: cam(cls, m, output_selector="logits")),
    "input not a tensor": (
        TypeError, ["input_tensor", "ndarray", "torch.Tensor"], 0,
        lambda cls, m: call(cls, m, input_tensor=np.zeros((2, 3, 16, 16), np.float32))),
    "a photo as numpy H x W x 3": (
        # the hint names the function that gives the right layout, not torch.from_numpy
        TypeError, ["input_tensor", "(16, 16, 3)", "preprocess_image(photo)", "1 x 3 x H x W"], 0,
        lambda cls, m: call(cls, m, input_tensor=np.zeros((16, 16, 3), np.float32))),
    "input of rank 2": (
        ValueError, ["input_tensor", "(3, 16)", "B x C x H x W"], 0,
        lambda cls, m: call(cls, m, input_tensor=x(3, 16))),
    "input of rank 3 (no batch dimension)": (
        ValueError, ["input_tensor", "(3, 16, 16)", "unsqueeze(0)"], 0,
        lambda cls, m: call(cls, m, input_tensor=x(3, 16, 16))),
    "empty batch": (
        ValueError, ["input_tensor", "(0, 3, 16, 16)", "at least one image"], 0,
        lambda cls, m: call(cls, m, input_tensor=x(0, 3, 16, 16), targets=[])),
    "integer dtype": (
        TypeError, ["input_tensor", "torch.uint8", "floating point"], 0,
        lambda cls, m: call(cls, m, input_tensor=x(dtype=torch.uint8))),
    "NaN in the input": (
        ValueError, ["input_tensor", "1 NaN", "(0, 1, 2, 3)", "finite"], 0,
        lambda cls, m: call(cls, m, input_tensor=with_value(float("nan")))),
    "inf in the input": (
        ValueError, ["input_tensor", "1 inf", "(1, 2, 0, 5)", "finite"], 0,
        lambda cls, m: call(cls, m, input_tensor=with_value(float("-inf"), (1, 2, 0, 5)))),
    "targets list of the wrong length": (
        ValueError, ["targets", "1 entries", "2 images", "one target per image"], 0,
        lambda cls, m: call(cls, m, targets=[ClassifierOutputTarget(1)])),
    "targets not a list": (
        TypeError, ["targets", "ClassifierOutputTarget", "list"], 0,
        lambda cls, m: call(cls, m, targets=ClassifierOutputTarget(1))),
    "target not callable": (
        TypeError, ["targets[1]", "'dog'", "callable"], 0,
        lambda cls, m: call(cls, m, targets=[ClassifierOutputTarget(1), "dog"])),
    "class index of a target not an int": (
        TypeError, ["category", "'tabby'", "int"], 0,
        lambda cls, m: call(cls, m, targets=[ClassifierOutputTarget("tabby")] * 2)),
    "class index out of range for the output": (
        ValueError, ["targets[1]", "1000", "0..4"], 1,
        lambda cls, m: call(cls, m, targets=[ClassifierOutputTarget(1),
                                             ClassifierOutputTarget(1000)])),
    "target returning a non-scalar": (
        ValueError, ["targets[0]", "(5,)", "one scalar"], 1,
        lambda cls, m: call(cls, m, targets=[lambda out: out, lambda out: out[0]])),
    "batch_size < 1": (
        ValueError, ["batch_size", "0", ">= 1"], 0,
        lambda cls, m: cam(cls, m, batch_size=0)),
    "batch_size < 1 set on the object": (
        ValueError, ["batch_size", "-3", ">= 1"], 0,
        lambda cls, m: setattr(cam(cls, m), "batch_size", -3)),
    "batch_size not an int": (
        TypeError, ["batch_size", "2.5", "positive int"], 0,
        lambda cls, m: cam(cls, m, batch_size=2.5)),
    "reshape_transform returning the wrong rank": (
        ValueError, ["reshape_transform", "(2, 8, 256)", "B x C x H x W"], 1,
        lambda cls, m: call(cls, m, reshape_transform=lambda t: t.flatten(2))),
    "layer whose output is not a tensor": (
        ValueError, ["target_layers[0]", "Pair", "tuple", "reshape_transform"], 1,
        lambda cls, m: call(cls, m, target_layers=[m.pair])),
    "target layer never called in the forward pass": (
        ValueError, ["target_layers[0]", "Conv2d(8, 8", "never called", "forward pass uses"], 1,
        lambda cls, m: call(cls, m, target_layers=[m.unused])),
    "aug_smooth on inputs ttach cannot flip": (
        ValueError, ["aug_smooth", "(2, 3, 4, 16, 16)", "B x C x H x W"], 0,
        lambda cls, m: call(cls, m, input_tensor=x(2, 3, 4, 16, 16), aug_smooth=True)),
}


# Cases about what the target layers return, which a method that chooses
# the layers it records itself (FullGrad: every convolution and batch norm)
# never looks at: it ignores target_layers and reshape_transform with a
# warning when it is made, and the call works.
RECORDED_LAYER_CASES = ["reshape_transform returning the wrong rank",
                        "layer whose output is not a tensor",
                        "target layer never called in the forward pass"]

# Cases about the layers, which a black-box method (registry trait
# ``black_box``: RISE, forward passes of the model alone) never looks at:
# it ignores target_layers and reshape_transform with a warning, and the
# call works. Its model may be any callable; one that is not is refused.
LAYER_ARGUMENT_CASES = RECORDED_LAYER_CASES + [
    "target layer not inside the model", "empty target_layers", "target_layers not a list",
    "target_layers entry not a module", "target layer path with a typo",
    "reshape_transform not callable"]


def check_raised(excinfo, expected_type, fragments, counter, max_forwards):
    assert excinfo.type is expected_type, f"{excinfo.type.__name__}: {excinfo.value}"
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message {message!r}"
    assert counter.forwards <= max_forwards, "the model ran before the check"
    assert counter.backwards == 0, "a backward pass ran before the check"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(method_name, case, monkeypatch):
    expected_type, fragments, max_forwards, action = CASES[case]
    model = Net().eval()
    info = get_method(method_name)
    if info.black_box and case in LAYER_ARGUMENT_CASES:
        with pytest.warns(UserWarning, match="ignores target_layers and reshape_transform"):
            result = action(info.cls, model)
        maps = result if isinstance(result, np.ndarray) else call(info.cls, model)
        assert maps.shape == (2, 16, 16) and np.isfinite(maps).all()
        return
    if info.black_box and case == "model not a module":  # any callable is a model
        assert isinstance(action(info.cls, model).model, FunctionModel)
        with pytest.raises(TypeError) as excinfo:
            info.cls(model=3)
        assert str(excinfo.value) == (
            "model must be a torch.nn.Module or a callable that maps an image batch to scores "
            "(a function, a TorchScript module, a torch.export program), got 3 (int)")
        return
    if case in RECORDED_LAYER_CASES and not info.uses_target_layers:
        with pytest.warns(UserWarning, match="ignores target_layers and reshape_transform"):
            maps = action(METHODS[method_name], model)
        assert maps.shape == (2, 16, 16) and np.isfinite(maps).all()
        np.testing.assert_allclose(maps.reshape(2, -1).max(axis=1), 1.0, atol=1e-4)
        return
    counter = Counter(model, monkeypatch)
    try:
        with pytest.raises((ValueError, TypeError)) as excinfo:
            action(METHODS[method_name], model)
    finally:
        counter.handle.remove()
    check_raised(excinfo, expected_type, fragments, counter, max_forwards)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # a good call still works afterwards
    maps = call(METHODS[method_name], model)
    assert maps.shape == (2, 16, 16) and np.isfinite(maps).all()


def test_every_case_fails_with_a_good_call_instead(monkeypatch):
    """The good call used as the baseline above does not raise, and it runs
    the model (so the forward counts above can tell "before" from "after")."""
    model = Net().eval()
    counter = Counter(model, monkeypatch)
    try:
        call(METHODS["gradcam"], model)
        call(METHODS["scorecam"], model)
    finally:
        counter.handle.remove()
    assert counter.forwards > 2 and counter.backwards == 1


ADVICE = ("whose layers cannot be hooked, so no CAM can record them; pass the original "
          "torch.nn.Module (before torch.jit.script/trace or torch.export), for example by "
          "rebuilding it and loading its state_dict, or explain the model as a black box with "
          "RISE(model) (--method rise), which needs only its forward passes")


def _resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _scripted_part(model, name):
    setattr(model, name, torch.jit.script(getattr(model, name)))
    return model


@pytest.fixture(scope="module")
def torchscript_cases():
    """name: (model, target layer, the message's subject)."""
    with warnings.catch_warnings():  # torch.jit.script/trace are deprecated in recent torch
        warnings.simplefilter("ignore")
        small_script = torch.jit.script(Net().eval())
        small_trace = torch.jit.trace(Net().eval(), x(), check_trace=False)
        resnet_script = torch.jit.script(_resnet18())
        resnet_trace = torch.jit.trace(_resnet18(), x(1, 3, 32, 32), check_trace=False)
        small_part = _scripted_part(Net().eval(), "conv")
        resnet_part = _scripted_part(_resnet18(), "layer4")
    block = resnet_part.layer4[-1]  # the Python block, not the module that runs
    return {
        "script of a small CNN": (small_script, small_script.conv,
                                  "the model is a TorchScript RecursiveScriptModule"),
        "trace of a small CNN": (small_trace, small_trace.conv,
                                 "the model is a TorchScript TopLevelTracedModule"),
        "script of resnet18": (resnet_script, resnet_script.layer4[-1],
                               "the model is a TorchScript RecursiveScriptModule"),
        "trace of resnet18 (a layer path)": (resnet_trace, "layer4[-1]",
                                             "the model is a TorchScript TopLevelTracedModule"),
        "trace of resnet18 (a traced block)": (resnet_trace, getattr(resnet_trace.layer4, "1"),
                                               "the model is a TorchScript TopLevelTracedModule"),
        "a scripted layer of a small CNN": (
            small_part, small_part.conv,
            f"target_layers[0] ({describe(small_part.conv)}) is a TorchScript "
            "RecursiveScriptModule"),
        "layer4[-1] of resnet18 whose layer4 is scripted": (
            resnet_part, block,
            f"target_layers[0] ({describe(block)}) is not a module of the model as it runs: "
            "model.layer4 is a TorchScript RecursiveScriptModule"),
        "the path layer4[-1] of resnet18 whose layer4 is scripted": (
            resnet_part, "layer4[-1]",
            "target_layers[0] ('layer4[-1]') lies in model.layer4, a TorchScript "
            "RecursiveScriptModule"),
    }


def count_hooks(*modules):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for module in modules for m in module.modules())


TORCHSCRIPT_CASES = ["script of a small CNN", "trace of a small CNN", "script of resnet18",
                     "trace of resnet18 (a layer path)", "trace of resnet18 (a traced block)",
                     "a scripted layer of a small CNN",
                     "layer4[-1] of resnet18 whose layer4 is scripted",
                     "the path layer4[-1] of resnet18 whose layer4 is scripted"]


@pytest.mark.parametrize("case", TORCHSCRIPT_CASES)
def test_a_torchscript_model_or_layer_gets_a_message_that_says_what_to_pass(torchscript_cases,
                                                                             case):
    model, layer, subject = torchscript_cases[case]
    hookable = [model] + ([layer] if isinstance(layer, nn.Module) else [])
    hooks = count_hooks(*hookable)
    with pytest.raises(TypeError) as excinfo:
        METHODS["gradcam"](model=model, target_layers=[layer])
    assert str(excinfo.value) == f"{subject}, {ADVICE}"
    assert count_hooks(*hookable) == hooks


def test_a_plain_layer_next_to_a_scripted_part_is_explained(torchscript_cases):
    model = torchscript_cases["layer4[-1] of resnet18 whose layer4 is scripted"][0]
    hooks = count_hooks(model)
    with METHODS["gradcam"](model=model, target_layers=["layer3[-1]"]) as cam:
        maps = cam(input_tensor=x(1, 3, 64, 64), targets=[ClassifierOutputTarget(3)])
    assert maps.shape == (1, 64, 64) and maps.max() == pytest.approx(1.0, abs=1e-4)
    assert count_hooks(model) == hooks


def test_every_method_names_torchscript(torchscript_cases, method_name):
    """Every method that hooks the model refuses TorchScript and points to
    RISE; a black-box method (trait ``black_box``) explains it."""
    model, layer, subject = torchscript_cases["script of a small CNN"]
    if get_method(method_name).black_box:
        with pytest.warns(UserWarning, match="ignores target_layers"):
            cam = METHODS[method_name](model=model, target_layers=[layer], progress=False)
        maps = cam(x(), targets=two_targets())
        assert maps.shape == (2, 16, 16) and maps.max() == pytest.approx(1.0, abs=1e-4)
        return
    with pytest.raises(TypeError, match="^the model is a TorchScript RecursiveScriptModule, "
                                        r"whose layers cannot be hooked.*RISE\(model\) "
                                        r"\(--method rise\)"):
        METHODS[method_name](model=model, target_layers=[layer], progress=False)


GB_CASES = {
    "input not a tensor": (
        TypeError, ["input_img", "ndarray", "torch.Tensor"], 0,
        lambda gb: gb(np.zeros((1, 3, 16, 16), np.float32))),
    "input of rank 3": (
        ValueError, ["input_img", "(3, 16, 16)", "B x C x H x W"], 0,
        lambda gb: gb(x(3, 16, 16))),
    "empty batch": (
        ValueError, ["input_img", "(0, 3, 16, 16)", "at least one image"], 0,
        lambda gb: gb(x(0, 3, 16, 16))),
    "integer dtype": (
        TypeError, ["input_img", "torch.int64", "floating point"], 0,
        lambda gb: gb(x(dtype=torch.int64))),
    "NaN in the input": (
        ValueError, ["input_img", "1 NaN", "finite"], 0,
        lambda gb: gb(with_value(float("nan")))),
    "targets list of the wrong length": (
        ValueError, ["targets", "1 entries", "2 images"], 0,
        lambda gb: gb(x(), targets=[ClassifierOutputTarget(1)])),
    "class index out of range for the output": (
        ValueError, ["targets[0]", "7", "0..4"], 1,
        lambda gb: gb(x(), target_category=7)),
    "target returning a non-scalar": (
        ValueError, ["targets[1]", "(5,)", "one scalar"], 1,
        lambda gb: gb(x(), targets=[lambda out: out[0], lambda out: out])),
}


@pytest.mark.parametrize("case", list(GB_CASES))
def test_guided_backprop_bad_input(case, monkeypatch):
    expected_type, fragments, max_forwards, action = GB_CASES[case]
    model = Net().eval()
    counter = Counter(model, monkeypatch)
    try:
        with pytest.raises((ValueError, TypeError)) as excinfo:
            action(GuidedBackpropReLUModel(model))
    finally:
        counter.handle.remove()
    check_raised(excinfo, expected_type, fragments, counter, max_forwards)


def test_unknown_method_name_in_the_cli(tmp_path):
    script = ROOT / "cam.py"
    if not script.exists():
        pytest.skip("cam.py is not part of this checkout")
    import cv2

    image = tmp_path / "image.png"
    cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(script), "--image-path", str(image), "--method", "nosuchcam",
         "--output-dir", str(out), "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    message = result.stderr
    assert result.returncode != 0
    assert "Traceback" not in message, message
    assert "method" in message and "nosuchcam" in message, message
    assert re.search(r"gradcam", message), "the allowed names are listed"
    assert not out.exists() or not any(out.iterdir()), "pictures were written"
