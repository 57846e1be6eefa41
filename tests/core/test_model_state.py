"""The caller's model comes back exactly as it was, whatever happens.

After every call of every method, also when the target, the model's
forward or the reshape transform raises: no hook is left on any module
(the user's own hooks stay), every parameter's ``.grad`` is untouched
(None stays None, a tensor keeps its values), training flags and
``requires_grad`` are unchanged, grad mode is unchanged, BatchNorm
statistics are unchanged (the CAM runs in eval mode), and the exception
reaches the caller unchanged.
"""
import warnings

import numpy as np
import pytest
import torch
from fault_helpers import Boom, FailingTarget, Trap  # tests/fault_helpers.py
from registry_cases import refuses_eigen_smooth  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# Every test takes ``method_name`` and so runs for every registered method
# (conftest.py generates the parameters from the registry).


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.trap = Trap()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)  # global pooling and one linear layer, so that
        self.fc = nn.Linear(6, 4)            # CAM (which reads the classifier) applies too

    def forward(self, x):
        x = self.trap(self.relu(self.bn(self.conv(x))))
        return self.fc(self.drop(self.pool(x).flatten(1)))


def user_model():
    """A model as a user may hold it: partly in training mode, partly
    frozen, some gradients already accumulated, hooks of its own."""
    torch.manual_seed(0)
    model = Net()
    model.train()
    model.fc.eval()
    model.conv.weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)
    model.bn.weight.grad = torch.arange(6, dtype=torch.float32)
    model.user_calls = []
    model.fc.register_forward_hook(lambda m, i, o: model.user_calls.append("fc"))
    model.conv.register_forward_pre_hook(lambda m, i: None)
    return model


def snapshot(model):
    return {
        "hooks": [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(m._backward_pre_hooks), len(getattr(m, "_forward_hooks_with_kwargs", {})))
                  for name, m in model.named_modules()],
        "global_hooks": (len(nn.modules.module._global_forward_hooks),
                         len(nn.modules.module._global_forward_pre_hooks),
                         len(nn.modules.module._global_backward_hooks)),
        "training": [(name, m.training) for name, m in model.named_modules()],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grad": [(name, None if p.grad is None else p.grad.clone())
                 for name, p in model.named_parameters()],
        "buffers": [(name, b.clone()) for name, b in model.named_buffers()],
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
    }


def assert_same_state(before, after):
    assert after["hooks"] == before["hooks"]
    assert after["global_hooks"] == before["global_hooks"]
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for (name, g0), (_, g1) in zip(before["grad"], after["grad"]):
        if g0 is None:
            assert g1 is None, name
        else:
            assert g1 is not None and torch.equal(g0, g1), name
    for (name, b0), (_, b1) in zip(before["buffers"], after["buffers"]):
        assert torch.equal(b0, b1), name  # BatchNorm ran in eval mode
    assert after["grad_enabled"] == before["grad_enabled"]
    assert after["inference_mode"] == before["inference_mode"]


def make(method, model, **kwargs):
    method = get_method(method).cls if isinstance(method, str) else method
    if not method.uses_gradients:
        kwargs.setdefault("progress", False)
        kwargs.setdefault("batch_size", 4)
    return method(model=model, target_layers=[model.relu], **kwargs)


@pytest.fixture
def x():
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def reference_maps(method, x, targets):
    model = user_model()
    model.eval()
    return make(method, model)(x, targets)


SCENARIOS = ["plain", "aug+eigen", "no_grad", "inference_mode", "target_raises",
             "target_raises_later", "forward_raises", "forward_raises_later", "reshape_raises"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_model_is_restored_after_every_call(method_name, scenario, x):
    method = method_name
    model = user_model()
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    kwargs, call = {}, {}
    info = get_method(method)
    # the methods that run the model (and call the targets) again after the recording pass
    perturbation = info.extra_passes
    expect_raise = True
    if scenario == "target_raises":
        targets = [FailingTarget(1, 1), FailingTarget(3, 1)]
    elif scenario == "target_raises_later":
        # each target's first call succeeds; only the perturbation methods call it again
        targets = [FailingTarget(1, 2), FailingTarget(3, 2)]
        expect_raise = perturbation
    elif scenario == "forward_raises":
        model.trap.fail_at = 1
    elif scenario == "forward_raises_later":
        model.trap.fail_at = 2  # only the perturbation methods run the model twice
        expect_raise = perturbation
    elif scenario == "reshape_raises":
        def reshape(t):
            raise Boom("reshape")
        kwargs["reshape_transform"] = reshape
        expect_raise = info.uses_target_layers  # FullGrad ignores reshape_transform
    elif scenario == "aug+eigen":
        # (a method with no channels to project refuses eigen_smooth)
        call = {"aug_smooth": True, "eigen_smooth": not refuses_eigen_smooth(method)}
        expect_raise = False
    else:
        expect_raise = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: target layers ignored
        cam = make(method, model, **kwargs)

    before = snapshot(model)
    grad_mode = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.get(scenario)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # possibly empty maps
        if expect_raise:
            with pytest.raises(Boom):
                cam(x, targets, **call)
        elif grad_mode is not None:
            with grad_mode():
                inner = snapshot(model)
                maps = cam(x, targets)
                assert_same_state(inner, snapshot(model))
        else:
            maps = cam(x, targets, **call)
    assert_same_state(before, snapshot(model))
    assert all(a is None for a in cam.activations_and_grads.activations)  # no tensors kept
    if scenario != "forward_raises":
        assert model.user_calls  # the user's own hook stayed active during the call

    if not expect_raise and "raises" not in scenario:
        expected = reference_maps(method, x, targets) if scenario != "aug+eigen" else None
        if expected is not None:
            np.testing.assert_allclose(maps, expected, atol=1e-6, rtol=0)
    if scenario == "reshape_raises" and expect_raise:
        return
    # the CAM object and the model still work after whatever happened
    model.trap.fail_at = None
    again = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(3)])
    np.testing.assert_allclose(again, reference_maps(method, x, [ClassifierOutputTarget(1),
                                                                 ClassifierOutputTarget(3)]),
                               atol=1e-6, rtol=0)
    assert_same_state(before, snapshot(model))


def test_context_manager_does_not_swallow_exceptions(method_name, x):
    method = method_name
    model = user_model()
    before = snapshot(model)
    with pytest.raises(KeyError), make(method, model) as cam:
        raise KeyError("from the block")
    model.trap.fail_at = 1
    with pytest.raises(Boom), make(method, model) as cam:
        cam(x, [ClassifierOutputTarget(0)] * 2)
    assert_same_state(before, snapshot(model))


def test_frozen_model_and_input_requiring_grad(method_name, x):
    """Fully frozen parameters and an input that requires grad: the map is
    the same, the input's grad stays None and requires_grad stays set."""
    model = user_model()
    for p in model.parameters():
        p.requires_grad_(False)
    before = snapshot(model)
    inp = x.clone().requires_grad_(True)
    maps = make(method_name, model)(inp, [ClassifierOutputTarget(2)] * 2)
    assert inp.requires_grad and inp.grad is None
    assert_same_state(before, snapshot(model))
    np.testing.assert_allclose(maps, reference_maps(method_name, x, [ClassifierOutputTarget(2)] * 2),
                               atol=1e-6, rtol=0)
