"""Memory: many calls do not grow the process, and nothing keeps a call's
autograd graph, activations or outputs alive once it has returned (or
raised)."""
import gc
import weakref
from contextlib import ExitStack

import psutil
import pytest
import torch
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

# the methods for CNNs (the attention methods, which need a Vision
# Transformer, are checked in tests/methods/test_attention_guarantees.py)
CALLS = 500
WARM_UP = 10


def small_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[2].bias.fill_(0.1)
    return model.eval()


def live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def _loop(call, warm_up=WARM_UP):
    """RSS (bytes) and live tensors after the warm-up and after all calls."""
    process = psutil.Process()
    for i in range(CALLS):
        call(i)
        if i == warm_up - 1:
            rss_start, tensors_start = process.memory_info().rss, live_tensors()
    return rss_start, process.memory_info().rss, tensors_start, live_tensors()


@pytest.mark.parametrize("context_manager", [True, False], ids=["with", "without"])
def test_many_calls_do_not_grow_memory(context_manager):
    """500 calls, going round every method (one CAM object per method kept
    open as a context manager, or a new object per call without one)."""
    model = small_model()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = [ClassifierOutputTarget(1)]
    names = REGISTRY_PARAMS["method_name"]  # every method for feature maps

    def make(method):
        return METHODS[method](model=model, target_layers=[model[2]], progress=False)

    with ExitStack() as stack:
        if context_manager:
            cams = [stack.enter_context(make(m)) for m in names]

            def call(i):
                cams[i % len(cams)](input_tensor=x, targets=targets)
        else:
            def call(i):
                make(names[i % len(names)])(input_tensor=x, targets=targets)

        # every open CAM object keeps its last call's ``outputs`` (the
        # documented cam.outputs): the warm-up calls each of them once
        rss_start, rss_end, tensors_start, tensors_end = _loop(
            call, warm_up=max(WARM_UP, len(names)))
    growth = (rss_end - rss_start) / rss_start
    assert growth < 0.05, f"resident memory grew by {growth:.1%} over {CALLS} calls"
    assert tensors_end <= tensors_start, f"{tensors_end - tensors_start} tensors leaked"
    assert all(not m._forward_hooks for m in model.modules())


def test_the_leak_check_can_fail():
    """The tensor count above notices a leak of one small tensor per call."""
    kept = []
    _, _, start, end = _loop(lambda i: kept.append(torch.zeros(1)) if i < 50 else None)
    assert end - start == 40


class Watcher:
    """Weak references to the target layer's output and the model's output
    of every forward pass (weak: the watcher keeps nothing alive)."""

    def __init__(self, model, layer):
        self.refs = []
        self.handles = [layer.register_forward_hook(self._hook),
                        model.register_forward_hook(self._hook)]

    def _hook(self, module, inputs, output):
        self.refs.append(weakref.ref(output))

    def remove(self):
        for handle in self.handles:
            handle.remove()

    def alive(self):
        return sum(ref() is not None for ref in self.refs)


def test_nothing_keeps_the_graph_alive(method_name):
    model = small_model()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    cam = METHODS[method_name](model=model, target_layers=[model[2]], progress=False, batch_size=2)
    watcher = Watcher(model, model[2])
    try:
        cam(input_tensor=x, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
    finally:
        watcher.remove()
    assert len(watcher.refs) >= 2
    # without gc.collect(): no reference cycle either
    assert watcher.alive() == 0, "a layer output or model output outlives the call"
    assert all(a is None for a in cam.activations_and_grads.activations)
    assert all(g is None for g in cam.activations_and_grads.gradients)
    assert cam.outputs.grad_fn is None and not cam.outputs.requires_grad
    assert all(p.grad is None for p in model.parameters())


class Boom(Exception):
    pass


def test_nothing_is_kept_alive_after_an_exception(method_name):
    model = small_model()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    cam = METHODS[method_name](model=model, target_layers=[model[2]], progress=False, batch_size=2)
    calls = []
    fire_at = [0]

    class Target(ClassifierOutputTarget):
        """The score of class 1 (a class-logit target, so that CAM, which
        reads the classifier's weights, takes it), raising on call fire_at."""

        def __call__(self, output):
            calls.append(1)
            if len(calls) == fire_at[0]:
                raise Boom
            return output[..., self.category]

    target = Target(1)
    cam(input_tensor=x, targets=[target, target])
    # the last call of the target: for gradient methods while the graph
    # exists, for perturbation methods inside the batch loop
    fire_at[0], calls[:] = len(calls), []
    watcher = Watcher(model, model[2])
    try:
        try:
            cam(input_tensor=x, targets=[target, target])
        except Boom:
            pass
        else:
            pytest.fail("the target did not raise")
    finally:
        watcher.remove()
    assert watcher.alive() == 0  # without gc.collect(): no reference cycle
    assert all(a is None for a in cam.activations_and_grads.activations)


def test_guided_backprop_keeps_nothing_alive():
    model = small_model()
    x = torch.randn(1, 3, 8, 8)
    watcher = Watcher(model, model[2])
    try:
        GuidedBackpropReLUModel(model)(x, target_category=1)
    finally:
        watcher.remove()
    assert len(watcher.refs) == 2 and watcher.alive() == 0
    assert all(p.grad is None for p in model.parameters())
