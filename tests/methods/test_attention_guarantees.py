"""The guarantees every method owes, for the attention methods, on the tiny
Vision Transformer of every supported family.

Tests take ``attention_method`` (every registered method with the registry
trait ``attention``, generated in conftest.py, so that a new attention
method is covered without editing a list) and ``vit`` (torchvision; timm
fused, eager and with register tokens; Hugging Face ViT eager and sdpa,
DeiT with teacher, CLIP's vision tower):

- a batch equals single calls, default targets are the top class,
  ``aug_smooth`` is the average of the de-augmented maps;
- the maps are bit-identical call after call and object after object;
- float16 and bfloat16 models give the float32 picture, within their
  precision;
- the user's model comes back exactly as it was (hooks of every kind on
  every module, training flags, ``requires_grad``, ``.grad``, buffers,
  attributes and config values, grad mode, the torch function mode
  stack) after a plain call, ``aug_smooth``, a call inside ``no_grad`` or
  ``inference_mode``, and when the target, the forward pass or the output
  selector raises (our exception or a KeyboardInterrupt), with frozen
  parameters and an input that requires grad; the next call gives the
  same map;
- memory stays flat over many calls and no call keeps its graph alive;
- threads sharing one model each get their own maps, also when another
  thread's whole call runs in the middle of their forward pass;
- bad arguments are named before any heavy work.
"""
import functools
import gc
import threading
import warnings
import weakref

import numpy as np
import psutil
import pytest
import torch
import ttach as tta
from fault_helpers import (  # tests/fault_helpers.py
    Bomb,
    Boom,
    Counter,
    FailingTarget,
    Gate,
    Injected,
    Site,
    SiteTarget,
    Trap,
)
from torch import nn
from vit_cases import VIT_CASES  # tests/vit_cases.py: the tiny Vision Transformers

from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.layers import LayerError
from pytorch_grad_cam.registry import get_method, registered_methods
from pytorch_grad_cam.scoring import select_output
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
X3 = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def targets_for(categories):
    return [ClassifierOutputTarget(c) for c in categories]


TARGETS = targets_for([1, 3])


def make(method, model, vit, **kwargs):
    cls = get_method(method).cls if isinstance(method, str) else method
    kwargs.setdefault("output_selector", vit.output_selector)
    return cls(model, **kwargs)


def differ(a, b, by=0.05):
    return np.abs(a - b).max() > by


# ---------------------------------------------------------- batches and TTA
def test_batch_equals_single_calls(attention_method, vit):
    model = vit.build()
    cam = make(attention_method, model, vit)
    categories = [1, 4, 1]
    batched = cam(X3, targets_for(categories))
    single = np.concatenate([cam(X3[i:i + 1], targets_for([c])) for i, c in enumerate(categories)])
    assert batched.shape == (3, 32, 32) and batched.dtype == np.float32
    assert batched.min() >= 0 and batched.max() <= 1
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    assert differ(batched[0], batched[2])  # different images, different maps


def test_default_targets_are_each_images_top_class(attention_method, vit):
    model = vit.build()
    cam = make(attention_method, model, vit)
    default = cam(X3)
    top = cam.outputs.argmax(dim=1).tolist()
    np.testing.assert_allclose(default, cam(X3, targets_for(top)), atol=1e-6, rtol=0)
    single = np.concatenate([cam(X3[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(default, single, atol=1e-5, rtol=0)


def test_aug_smooth_is_the_average_of_deaugmented_maps(attention_method, vit):
    model = vit.build()
    cam = make(attention_method, model, vit, batch_size=64)
    smoothed = cam(X3, TARGETS + TARGETS[:1], aug_smooth=True)
    maps = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            x = X3 * factor
            if flip:
                x = torch.flip(x, dims=[3])
            m = cam(x, TARGETS + TARGETS[:1])
            maps.append(m[:, :, ::-1] if flip else m)
    np.testing.assert_allclose(smoothed, np.mean(maps, axis=0), atol=1e-5, rtol=0)
    one = make(attention_method, model, vit, tta_transforms=tta.Compose([tta.HorizontalFlip()]))
    expected = (cam(X3[:1], TARGETS[:1]) + cam(X3[:1].flip(3), TARGETS[:1])[:, :, ::-1]) / 2
    np.testing.assert_allclose(one(X3[:1], TARGETS[:1], aug_smooth=True), expected, atol=1e-5)


def test_bit_identical_maps(attention_method, vit):
    model = vit.build(dropout=0.3).train()  # the CAM explains it in eval mode
    x, copy = X.clone(), X.clone()
    cam = make(attention_method, model, vit)
    first, second = cam(x, TARGETS), cam(x, TARGETS)
    other = make(attention_method, model, vit)(x.clone(), list(TARGETS))
    assert torch.equal(x, copy) and not x.requires_grad
    assert first.max() > 0 and np.isfinite(first).all()
    assert first.tobytes() == second.tobytes() == other.tobytes()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_models_on_cpu(attention_method, vit, dtype):
    reference = make(attention_method, vit.build(), vit)(X, TARGETS)
    model = vit.build().to(dtype)
    maps = make(attention_method, model, vit)(X, TARGETS)
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(p.dtype == dtype for p in model.parameters())
    # the same picture as in float32, within the precision of the dtype; the
    # rollout of a random model's nearly uniform attention spans a small
    # range, which bfloat16's 8-bit mantissa shifts by a good part of it
    coarse = dtype == torch.bfloat16 and not get_method(attention_method).uses_gradients
    assert np.abs(maps - reference).max() < (0.3 if coarse else 0.1)
    assert np.corrcoef(maps.ravel(), reference.ravel())[0, 1] > (0.9 if coarse else 0.99)


# ------------------------------------------------------------ model state
class Trapped(nn.Module):
    """The user's Vision Transformer, followed by a trap."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit
        self.trap = Trap()

    def forward(self, x):
        return self.trap(self.vit(x))


def user_model(vit):
    """A model as a user may hold it: in training mode with dropout, partly
    in eval mode, partly frozen, gradients accumulated, hooks of its own."""
    model = Trapped(vit.build(dropout=0.2))
    model.train()
    blocks = find_transformer(model).blocks
    blocks[0].eval()
    parameters = list(model.parameters())
    parameters[0].requires_grad_(False)
    parameters[-1].grad = torch.full_like(parameters[-1], 0.5)
    model.user_calls = []
    blocks[-1].register_forward_hook(lambda m, i, o: model.user_calls.append("block"))
    model.vit.register_forward_pre_hook(lambda m, i: None)
    return model


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks_with_kwargs")
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks", "_global_forward_hooks_with_kwargs")
SIMPLE = (bool, int, float, str, type(None))


def snapshot(model):
    named = list(model.named_modules(remove_duplicate=False))
    configs = [(name, m.config.to_dict()) for name, m in named
               if hasattr(getattr(m, "config", None), "to_dict")]
    return {
        "modules": [(name, id(m)) for name, m in named],
        "hooks": [(name, [len(getattr(m, d, None) or {}) for d in HOOK_DICTS])
                  for name, m in named],
        "global_hooks": [len(getattr(nn.modules.module, d)) for d in GLOBAL_HOOKS],
        "attributes": [(name, {k: v for k, v in vars(m).items()
                               if isinstance(v, SIMPLE) and k not in ("calls", "fail_at")})
                       for name, m in named],
        "configs": configs,
        "instance_forward": [name for name, m in named if "forward" in vars(m)],
        "requires_grad": [(name, p.requires_grad) for name, p in model.named_parameters()],
        "grad": [(name, None if p.grad is None else p.grad.clone())
                 for name, p in model.named_parameters()],
        "tensor_hooks": [(name, len(p._backward_hooks or {})) for name, p in
                         model.named_parameters()],
        "buffers": [(name, b.clone()) for name, b in model.named_buffers()],
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
        "function_modes": torch._C._len_torch_function_stack(),
    }


def assert_same_state(before, after):
    for key in ("modules", "hooks", "global_hooks", "attributes", "configs", "instance_forward",
                "requires_grad", "tensor_hooks", "grad_enabled", "inference_mode",
                "function_modes"):
        assert after[key] == before[key], key
    for (name, g0), (_, g1) in zip(before["grad"], after["grad"]):
        assert (g0 is None and g1 is None) or (g1 is not None and torch.equal(g0, g1)), name
    for (name, b0), (_, b1) in zip(before["buffers"], after["buffers"]):
        assert torch.equal(b0, b1), name


@functools.cache
def _reference(method, family):
    model = user_model(VIT_CASES[family]).eval()
    targets = [FailingTarget(1), FailingTarget(3)]
    maps = make(method, model, VIT_CASES[family])(X, targets)
    return maps, targets[0].calls, model.trap.calls


def reference_maps(method, vit):
    """The maps of X for TARGETS of the user's model in eval mode, in a
    plain call."""
    return _reference(method, vit.family)[0]


def calls_of_a_clean_call(method, vit):
    """(target calls per target object, forward passes) of one call."""
    return _reference(method, vit.family)[1:]


SCENARIOS = ["plain", "aug", "no_grad", "inference_mode", "target_raises",
             "target_raises_later", "forward_raises", "forward_raises_later", "reshape_ignored"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_model_is_restored_after_every_call(attention_method, vit, scenario):
    model = user_model(vit)
    target_calls, forwards = calls_of_a_clean_call(attention_method, vit)
    targets, kwargs, call, expect_raise = list(TARGETS), {}, {}, False
    if scenario == "target_raises":
        targets, expect_raise = [FailingTarget(1, 1), FailingTarget(3, 1)], True
    elif scenario == "target_raises_later":
        # LeGrad scores every block, so it calls each target more than once
        targets = [FailingTarget(1, 2), FailingTarget(3, 2)]
        expect_raise = target_calls >= 2
    elif scenario == "forward_raises":
        model.trap.fail_at, expect_raise = 1, True
    elif scenario == "forward_raises_later":
        model.trap.fail_at, expect_raise = 2, forwards >= 2
    elif scenario == "reshape_ignored":
        def reshape(tensor):
            raise Boom("reshape")
        kwargs["reshape_transform"] = reshape
    elif scenario == "aug":
        call = {"aug_smooth": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reshape_transform is ignored
        cam = make(attention_method, model, vit, **kwargs)
    before = snapshot(model)
    grad_mode = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.get(scenario)
    if expect_raise:
        with pytest.raises(Boom):
            cam(X, targets, **call)
    elif grad_mode is not None:
        with grad_mode():
            inner = snapshot(model)
            maps = cam(X.clone(), targets)
            assert_same_state(inner, snapshot(model))
    else:
        maps = cam(X, targets, **call)
    assert_same_state(before, snapshot(model))
    assert all(a is None for a in cam.activations_and_grads.activations)
    if scenario != "forward_raises":
        assert model.user_calls  # the user's own hook stayed active during the call
    if not expect_raise and scenario != "aug":
        np.testing.assert_allclose(maps, reference_maps(attention_method, vit),
                                   atol=1e-6, rtol=0)
    model.trap.fail_at = None
    again = cam(X, TARGETS)  # the CAM object and the model still work
    np.testing.assert_allclose(again, reference_maps(attention_method, vit),
                               atol=1e-6, rtol=0)
    assert_same_state(before, snapshot(model))


def test_context_manager_does_not_swallow_exceptions(attention_method, vit):
    model = user_model(vit)
    before = snapshot(model)
    with pytest.raises(KeyError), make(attention_method, model, vit):
        raise KeyError("from the block")
    model.trap.fail_at = 1
    with pytest.raises(Boom), make(attention_method, model, vit) as cam:
        cam(X, TARGETS)
    assert_same_state(before, snapshot(model))


def test_frozen_model_and_input_requiring_grad(attention_method, vit):
    model = user_model(vit)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    before = snapshot(model)
    inp = X.clone().requires_grad_(True)
    maps = make(attention_method, model, vit)(inp, TARGETS)
    assert inp.requires_grad and inp.grad is None
    assert_same_state(before, snapshot(model))
    np.testing.assert_allclose(maps, reference_maps(attention_method, vit),
                               atol=1e-6, rtol=0)


# ----------------------------------------------------------- fault injection
class Bombed(nn.Module):
    """The Vision Transformer with a bomb after it."""

    def __init__(self, vit, site):
        super().__init__()
        self.vit, self.bomb = vit, Bomb(site)

    def forward(self, x):
        return self.bomb(self.vit(x))


class Selector:
    """The scores of the model's output (``inner``, or the library's
    default selection); ticks its site on every call."""

    def __init__(self, site, inner):
        self.site, self.inner = site, inner or select_output

    def __call__(self, output):
        self.site.tick()
        return self.inner(output)


@pytest.mark.parametrize("site_name", ["target", "forward", "selector"])
def test_restored_when_a_place_raises(attention_method, vit, site_name):
    """Our exception and a KeyboardInterrupt at the first call of the place,
    our exception in the middle of the call's calls of it (where that is
    another call: LeGrad scores every block, so it calls the targets and
    the selector several times), with grad mode on and off."""
    sites = {name: Site() for name in ("target", "forward", "selector")}
    model = Bombed(vit.build(dropout=0.2), sites["forward"])
    model.train()
    next(iter(model.parameters())).requires_grad_(False)
    targets = [SiteTarget(1, sites["target"]), SiteTarget(3, sites["target"])]
    cam = make(attention_method, model, vit,
               output_selector=Selector(sites["selector"], vit.output_selector))
    site = sites[site_name]
    previous = torch.is_grad_enabled()
    try:
        for grad in (True, False):
            torch.set_grad_enabled(grad)
            before = snapshot(model)
            for s in sites.values():
                s.arm(0, Injected)
            reference = cam(X, targets)
            assert_same_state(before, snapshot(model))
            for fire_at in sorted({1, site.calls // 2 + 1}):
                for exception in (Injected, KeyboardInterrupt)[:2 if fire_at == 1 else 1]:
                    site.arm(fire_at, exception)
                    with pytest.raises(exception, match=f"injected at call {fire_at}"):
                        cam(X, targets)
                    site.arm(0, Injected)
                    assert_same_state(before, snapshot(model))
                    assert (cam(X, targets) == reference).all(), "the next call differs"
            fresh = make(attention_method, model, vit,
                         output_selector=Selector(sites["selector"], vit.output_selector))
            assert (fresh(X, targets) == reference).all()
            assert_same_state(before, snapshot(model))
    finally:
        torch.set_grad_enabled(previous)


# ----------------------------------------------------------------- memory
def live_tensors():
    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def test_many_calls_do_not_grow_memory():
    """Calls going round every attention method on every family's ViT."""
    cams = []
    for vit in VIT_CASES.values():
        model = vit.build()
        for info in registered_methods(attention=True):
            cams.append(make(info.name, model, vit))
    process = psutil.Process()
    calls = 8 * len(cams)
    for i in range(calls):
        cams[i % len(cams)](X[:1], TARGETS[:1])
        if i == 2 * len(cams) - 1:  # every object has its cam.outputs by now
            rss_start, tensors_start = process.memory_info().rss, live_tensors()
    growth = (process.memory_info().rss - rss_start) / rss_start
    assert growth < 0.05, f"resident memory grew by {growth:.1%} over {calls} calls"
    assert live_tensors() <= tensors_start


class Watcher:
    """Weak references to the outputs of the last block and of the model."""

    def __init__(self, model, vit):
        self.refs = []
        block = find_transformer(model).blocks[-1]
        self.handles = [block.register_forward_hook(self._block),
                        model.register_forward_hook(self._model)]
        self.selector = vit.output_selector

    def _block(self, module, inputs, output):
        self.refs.append(weakref.ref(output))

    def _model(self, module, inputs, output):
        self.refs.append(weakref.ref(output if self.selector is None else self.selector(output)))
        if not isinstance(output, torch.Tensor):
            self.refs.append(weakref.ref(output.logits if self.selector is None else output))

    def remove(self):
        for handle in self.handles:
            handle.remove()

    def alive(self):
        return sum(ref() is not None for ref in self.refs)


def test_nothing_keeps_the_graph_alive(attention_method, vit):
    model = vit.build()
    cam = make(attention_method, model, vit)
    watcher = Watcher(model, vit)
    try:
        cam(X, TARGETS)
    finally:
        watcher.remove()
    assert len(watcher.refs) >= 2
    assert watcher.alive() == 0, "a block output or model output outlives the call"
    assert cam.outputs.grad_fn is None and not cam.outputs.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_nothing_is_kept_alive_after_an_exception(attention_method, vit):
    model = vit.build()
    cam = make(attention_method, model, vit)
    counting = [FailingTarget(1), FailingTarget(3)]
    cam(X, counting)
    last = counting[1].calls  # the last target call: while the graph exists
    watcher = Watcher(model, vit)
    try:
        with pytest.raises(Boom):
            cam(X, [FailingTarget(1), FailingTarget(3, fail_at=last)])
    finally:
        watcher.remove()
    assert watcher.alive() == 0  # without gc.collect(): no reference cycle


# ------------------------------------------------------------ concurrency
def test_threads_sharing_a_model_get_their_own_maps(vit):
    model = user_model(vit)
    before = snapshot(model)
    methods = [info.name for info in registered_methods(attention=True)]
    jobs = [(method, seed) for method in methods for seed in (10, 11)]
    inputs = {seed: torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
              for seed in (10, 11)}
    expected = [make(m, model, vit)(inputs[s], TARGETS) for m, s in jobs]
    results, errors = {i: [] for i in range(len(jobs))}, []
    start = threading.Barrier(len(jobs))

    def worker(i):
        try:
            method, seed = jobs[i]
            cam = make(method, model, vit)
            start.wait(30)
            for _ in range(8):
                results[i].append(cam(inputs[seed], TARGETS))
        except BaseException as error:  # reported below, with its thread
            errors.append((i, error))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    assert not errors, errors
    for i, maps in results.items():
        assert len(maps) == 8
        for m in maps:
            np.testing.assert_allclose(m, expected[i], atol=1e-5, err_msg=str(jobs[i]))
    assert all(differ(expected[2 * k], expected[2 * k + 1]) for k in range(len(methods)))
    assert_same_state(before, snapshot(model))


class Gated(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.gate, self.vit = Gate(), vit

    def forward(self, x):
        return self.vit(self.gate(x))


def test_another_threads_call_in_the_middle_of_a_forward_pass(attention_method, vit):
    """Thread A waits inside its forward pass (its capture active); the main
    thread runs a whole call of another attention method on other images."""
    model = Gated(vit.build())
    other = [info.name for info in registered_methods(attention=True)
             if info.name != attention_method][0]
    x_b = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(12))
    expected_a = make(attention_method, model, vit)(X, TARGETS)
    expected_b = make(other, model, vit)(x_b, TARGETS)
    got = {}
    model.gate.hold = "A"
    thread = threading.Thread(target=lambda: got.update(a=make(attention_method, model,
                                                                   vit)(X, TARGETS)), name="A")
    thread.start()
    assert model.gate.reached.wait(30)
    got["b"] = make(other, model, vit)(x_b, TARGETS)
    model.gate.release.set()
    thread.join(30)
    assert not thread.is_alive()
    np.testing.assert_allclose(got["a"], expected_a, atol=1e-5)
    np.testing.assert_allclose(got["b"], expected_b, atol=1e-5)


# -------------------------------------------------------------- bad inputs
def _with_nan():
    x = X.clone()
    x[0, 1, 2, 3] = float("nan")
    return x


BAD = {
    "input not a tensor": (TypeError, ["input_tensor", "ndarray", "torch.Tensor"], 0,
                           lambda cam, vit: cam(X.numpy(), TARGETS)),
    "input of rank 3": (ValueError, ["input_tensor", "(3, 32, 32)", "unsqueeze(0)"], 0,
                        lambda cam, vit: cam(X[0], TARGETS[:1])),
    "empty batch": (ValueError, ["input_tensor", "(0, 3, 32, 32)", "at least one image"], 0,
                    lambda cam, vit: cam(X[:0], [])),
    "integer dtype": (TypeError, ["input_tensor", "torch.int64", "floating point"], 0,
                      lambda cam, vit: cam(X.long(), TARGETS)),
    "NaN in the input": (ValueError, ["input_tensor", "1 NaN", "finite"], 0,
                         lambda cam, vit: cam(_with_nan(), TARGETS)),
    "targets of the wrong length": (ValueError, ["targets", "1 entries", "2 images"], 0,
                                    lambda cam, vit: cam(X, TARGETS[:1])),
    "one target, not a list": (TypeError, ["targets", "list with one target per image"], 0,
                               lambda cam, vit: cam(X, TARGETS[0])),
    "eigen_smooth": (ValueError, ["eigen_smooth=True", "no channels to project"], 0,
                     lambda cam, vit: cam(X, TARGETS, eigen_smooth=True)),
    "unknown call option": (TypeError, ["unexpected keyword argument", "alpha"], 0,
                            lambda cam, vit: cam(X, TARGETS, alpha=1)),
    "class index out of range": (ValueError, ["targets[0]", "99", "out of range"], 1,
                                 lambda cam, vit: cam(X, targets_for([99, 1]))),
    "target returning a non-scalar": (
        ValueError, ["targets[1]", "one scalar score per image"], 1,
        lambda cam, vit: cam(X, [ClassifierOutputTarget(1), lambda out: out])),
}


@functools.cache
def _plain_model(family):
    return VIT_CASES[family].build()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_call_arguments_are_named_before_heavy_work(attention_method, vit, case,
                                                        monkeypatch):
    expected_type, fragments, max_forwards, action = BAD[case]
    model = _plain_model(vit.family)  # shared: these calls change nothing of it
    cam = make(attention_method, model, vit)
    counter = Counter(model, monkeypatch)
    try:
        with pytest.raises((ValueError, TypeError)) as excinfo:
            action(cam, vit)
    finally:
        counter.handle.remove()
    assert excinfo.type is expected_type, f"{excinfo.type.__name__}: {excinfo.value}"
    for fragment in fragments:
        assert fragment in str(excinfo.value), (fragment, str(excinfo.value))
    assert counter.forwards <= max_forwards, "the model ran before the check"
    assert counter.backwards == 0, "a backward pass ran before the check"
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    maps = cam(X, TARGETS)  # a good call still works afterwards
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()


BAD_CONSTRUCTION = {
    "target layer not a block": (ValueError, ["target_layers[0]", "is not a transformer block"],
                                 lambda m, t: {"target_layers": [t.attentions[0]]}),
    "target layer path that does not resolve": (
        LayerError, ["layer path", "blokcs[0]", "did you mean blocks"],
        lambda m, t: {"target_layers": ["blokcs[0]"]}),
    "target layers not a list": (TypeError, ["target_layers must be a list"],
                                 lambda m, t: {"target_layers": "blocks"}),
    "target layer of another model": (ValueError, ["target_layers[0]", "not a module of the model"],
                                      lambda m, t: {"target_layers": [nn.Linear(2, 2)]}),
    "output_selector not callable": (TypeError, ["output_selector must be callable"],
                                     lambda m, t: {"output_selector": 3}),
    "batch_size zero": (ValueError, ["batch_size must be >= 1"], lambda m, t: {"batch_size": 0}),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTION))
def test_bad_constructor_arguments_are_named(attention_method, case):
    vit = VIT_CASES["timm"]
    model = vit.build()
    transformer = find_transformer(model)
    expected_type, fragments, kwargs = BAD_CONSTRUCTION[case]
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with pytest.raises(expected_type) as excinfo:
            get_method(attention_method).cls(model, **kwargs(model, transformer))
    finally:
        handle.remove()
    for fragment in fragments:
        assert fragment in str(excinfo.value), (fragment, str(excinfo.value))
    assert not calls
