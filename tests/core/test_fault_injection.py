"""Fault injection: whatever goes wrong inside a call, the model comes back
exactly as it was given and the next call works.

For every CAM method of ``pytorch_grad_cam.METHODS`` that explains CNNs (the
attention methods: tests/methods/test_attention_guarantees.py) and for guided
backpropagation an exception (our own, or a KeyboardInterrupt) is raised
  - in the target function,
  - in the model's forward pass after the target layer,
  - in the output selector,
  - between two chunks of a perturbation batch loop,
either at the first call of that place or at a call in the middle of the
run (for perturbation methods: inside the batch loop). Afterwards no hook
may be left on any module or parameter, no module may be replaced, every
training flag, ``requires_grad``, ``.grad``, parameter and buffer value and
the global grad mode must be as before, and the next call must return the
same map as a clean call did.
"""
import pytest
import torch
from fault_helpers import Bomb, Injected, Site, SiteTarget  # tests/fault_helpers.py
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import METHODS, GuidedBackpropReLUModel

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
              "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks", "_global_forward_hooks_with_kwargs",
                "_global_forward_hooks_always_called")


class Net(nn.Module):
    def __init__(self, site: Site):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
            nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.bomb = Bomb(site)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(6, 5))

    def forward(self, x):
        return self.head(self.bomb(self.features(x)))


class Selector:
    def __init__(self, site: Site):
        self.site = site

    def __call__(self, output):
        self.site.tick()
        return output


def make_model():
    torch.manual_seed(0)
    sites = {name: Site() for name in ("target", "forward", "selector", "batch_loop")}
    model = Net(sites["forward"])
    with torch.no_grad():
        model.features[1].running_mean.uniform_(-0.2, 0.2)
        model.features[1].running_var.uniform_(0.5, 1.5)
        model.features[3].bias.uniform_(0.0, 0.3)  # most activations positive
    # a mixed state, as a user in the middle of training might have it
    model.train()
    model.features[1].eval()
    model.features[0].weight.requires_grad_(False)
    model.features[3].weight.grad = torch.randn_like(model.features[3].weight)
    model.head[-1].bias.grad = torch.full_like(model.head[-1].bias, 7.0)
    return model, sites


def snapshot(model: nn.Module) -> dict:
    """Everything of the model (and of torch's global state) a call may touch."""
    named = list(model.named_modules(remove_duplicate=False))
    return {
        "modules": [(name, id(module)) for name, module in named],
        "children": [(id(module), [(k, id(v)) for k, v in module._modules.items()])
                     for _, module in named],
        "training": [(name, module.training) for name, module in named],
        "inplace": [(name, getattr(module, "inplace", None)) for name, module in named],
        "module_hooks": [(name, {d: len(getattr(module, d, {})) for d in HOOK_DICTS})
                         for name, module in named],
        "global_hooks": {d: len(getattr(torch.nn.modules.module, d)) for d in GLOBAL_HOOKS},
        "params": [(name, id(p), p.requires_grad, p.data.clone(),
                    None if p.grad is None else (id(p.grad), p.grad.clone()),
                    len(p._backward_hooks or {}),
                    len(getattr(p, "_post_accumulate_grad_hooks", None) or {}))
                   for name, p in model.named_parameters()],
        "buffers": [(name, id(b), b.clone()) for name, b in model.named_buffers()],
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
    }


def assert_same_state(before: dict, after: dict):
    for key in ("modules", "children", "training", "inplace", "module_hooks", "global_hooks",
                "grad_enabled", "inference_mode"):
        assert after[key] == before[key], key
    assert len(after["params"]) == len(before["params"])
    for b, a in zip(before["params"], after["params"]):
        name = b[0]
        assert a[:3] == b[:3], f"parameter {name}: identity or requires_grad changed"
        assert torch.equal(a[3], b[3]), f"parameter {name}: value changed"
        if b[4] is None:
            assert a[4] is None, f"parameter {name}: .grad was None and is now set"
        else:
            assert a[4] is not None and a[4][0] == b[4][0], f"parameter {name}: .grad replaced"
            assert torch.equal(a[4][1], b[4][1]), f"parameter {name}: .grad values changed"
        assert a[5:] == b[5:], f"parameter {name}: tensor hooks left"
    for b, a in zip(before["buffers"], after["buffers"]):
        assert a[:2] == b[:2] and torch.equal(a[2], b[2]), f"buffer {b[0]} changed"


SITES = [("target", "first"), ("target", "middle"), ("forward", "first"), ("forward", "middle"),
         ("selector", "first"), ("selector", "middle"), ("batch_loop", "middle")]
EXCEPTIONS = [Injected, KeyboardInterrupt]
INPUT = torch.Generator().manual_seed(1)
X = torch.randn(2, 3, 12, 12, generator=INPUT)


@pytest.fixture(params=[True, False], ids=["grad-on", "grad-off"])
def grad_mode(request):
    """The caller's global grad mode (set with torch.set_grad_enabled)."""
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(request.param)
    yield request.param
    torch.set_grad_enabled(previous)


def _make_cam(name, model, sites):
    cam = METHODS[name](model=model, target_layers=[model.features[3]], batch_size=2,
                        progress=False, output_selector=Selector(sites["selector"]))
    original_chunks = cam.chunks

    def chunks(count, desc, **options):
        for bounds in original_chunks(count, desc, **options):
            sites["batch_loop"].tick()
            yield bounds

    cam.chunks = chunks  # every chunk of a batch loop ticks the site
    return cam


def _fire_at(site: Site, position: str) -> int:
    if site.calls == 0:
        pytest.skip("this method never reaches this place")
    return 1 if position == "first" else site.calls // 2 + 1


# the methods with a batch loop (``BaseCAM.chunks``): perturbation passes or
# noisy copies, the registry's ``extra_passes``; test_batch_loop_methods_are_listed
# checks the trait against what the methods do
BATCH_LOOP_METHODS = REGISTRY_PARAMS["batch_loop_method"]
# every method for CNNs (the attention methods, which need a Vision
# Transformer, are checked in tests/methods/test_attention_guarantees.py)
MATRIX = [(method, site, position) for method in REGISTRY_PARAMS["method_name"] for site, position in SITES
          if site != "batch_loop" or method in BATCH_LOOP_METHODS]


def test_batch_loop_methods_are_listed(method_name):
    model, sites = make_model()
    _make_cam(method_name, model, sites)(input_tensor=X, targets=[SiteTarget(1, sites["target"])] * 2)
    assert (sites["batch_loop"].calls > 0) == (method_name in BATCH_LOOP_METHODS)


@pytest.mark.parametrize("exception", EXCEPTIONS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("method,site_name,position", MATRIX)
def test_cam_restores_model_after_exception(method, site_name, position, exception, grad_mode):
    model, sites = make_model()
    targets = [SiteTarget(1, sites["target"]), SiteTarget(3, sites["target"])]
    cam = _make_cam(method, model, sites)
    before = snapshot(model)

    # a first call does what an object does once (the check behind the
    # all-zero map warning runs the model and the target on other inputs)
    cam(input_tensor=X, targets=targets)
    for s in sites.values():
        s.disarm()
    reference = cam(input_tensor=X, targets=targets)  # a clean call counts the calls
    assert_same_state(before, snapshot(model))
    site = sites[site_name]
    fire_at = _fire_at(site, position)
    if site_name == "batch_loop":
        assert fire_at > 1, "the exception must come after at least one chunk"
    for s in sites.values():
        s.disarm()

    site.arm(fire_at, exception)
    with pytest.raises(exception, match=f"injected at call {fire_at}"):
        cam(input_tensor=X, targets=targets)
    site.disarm()
    assert_same_state(before, snapshot(model))

    again = cam(input_tensor=X, targets=targets)
    assert (again == reference).all(), "the next call gives a different map"
    fresh = _make_cam(method, model, sites)(input_tensor=X, targets=targets)
    assert (fresh == reference).all()
    assert_same_state(before, snapshot(model))


@pytest.mark.parametrize("exception", EXCEPTIONS, ids=lambda e: e.__name__)
def test_cam_context_manager_propagates_and_restores(method_name, exception, grad_mode):
    model, sites = make_model()
    before = snapshot(model)
    targets = [SiteTarget(1, sites["target"]), SiteTarget(3, sites["target"])]
    sites["forward"].arm(1, exception)
    with pytest.raises(exception), _make_cam(method_name, model, sites) as cam:
        cam(input_tensor=X, targets=targets)
    assert_same_state(before, snapshot(model))


GB_SITES = [("target", "first"), ("target", "middle"), ("forward", "first"),
            ("selector", "first")]


@pytest.mark.parametrize("exception", EXCEPTIONS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("site_name,position", GB_SITES, ids=lambda v: v)
def test_guided_backprop_restores_model_after_exception(site_name, position, exception, grad_mode):
    model, sites = make_model()
    targets = [SiteTarget(1, sites["target"]), SiteTarget(3, sites["target"])]
    gb = GuidedBackpropReLUModel(model, output_selector=Selector(sites["selector"]))
    before = snapshot(model)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]

    reference = gb(X, targets=targets)
    assert_same_state(before, snapshot(model))
    site = sites[site_name]
    fire_at = _fire_at(site, position)
    for s in sites.values():
        s.disarm()

    site.arm(fire_at, exception)
    with pytest.raises(exception, match=f"injected at call {fire_at}"):
        gb(X, targets=targets)
    site.disarm()
    assert_same_state(before, snapshot(model))
    # the model's own ReLU objects are back, each with its own inplace flag
    assert [m for m in model.modules() if isinstance(m, nn.ReLU)] == relus
    assert [m.inplace for m in relus] == [True, False]

    again = gb(X, targets=targets)
    assert (again == reference).all()
    assert_same_state(before, snapshot(model))


def test_snapshot_detects_every_kind_of_change():
    """The checks above can fail: each kind of change is noticed."""
    changes = [
        lambda m: m.features[3].register_forward_hook(lambda *a: None),
        lambda m: m.features[3].register_forward_pre_hook(lambda *a: None),
        lambda m: m.features[3].register_full_backward_hook(lambda *a: None),
        lambda m: m.features.__setitem__(2, nn.ReLU()),
        lambda m: m.eval(),
        lambda m: m.features[0].weight.requires_grad_(True),
        lambda m: setattr(m.features[3].bias, "grad", torch.zeros_like(m.features[3].bias)),
        lambda m: m.features[3].weight.grad.add_(1),
        lambda m: setattr(m.features[3].weight, "grad", m.features[3].weight.grad.clone()),
        lambda m: m.features[1].running_mean.add_(1),
        lambda m: m.features[3].weight.register_hook(lambda g: g),
        lambda m: torch.set_grad_enabled(not torch.is_grad_enabled()),
    ]
    grad_mode = torch.is_grad_enabled()
    try:
        for change in changes:
            model, _ = make_model()
            before = snapshot(model)
            change(model)
            with pytest.raises(AssertionError):
                assert_same_state(before, snapshot(model))
            torch.set_grad_enabled(grad_mode)
    finally:
        torch.set_grad_enabled(grad_mode)
