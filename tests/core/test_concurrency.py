"""Concurrent calls on one shared model: each call gets exactly its own map,
and the user's flags come back once the last call ends.

Each thread has its own CAM object here; the model is shared. One CAM
object shared by several threads: tests/core/test_thread_safety.py.
"""
import threading

import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel, ScoreCAM
from pytorch_grad_cam.base_cam import model_state_guard
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class Gate(nn.Module):
    """Identity; in the thread named in ``hold``, waits for ``release``
    after signalling ``reached`` (to overlap two calls deterministically)."""

    def __init__(self):
        super().__init__()
        self.hold = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def forward(self, x):
        if threading.current_thread().name == self.hold:
            self.hold = None
            self.reached.set()
            assert self.release.wait(30), "the other thread never released the gate"
        return x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.gate = Gate()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(8, 5))

    def forward(self, x):
        return self.head(self.gate(self.features(x)))


def user_model():
    """A model as a user holds it: training mode, one frozen weight, a
    gradient already accumulated."""
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.features[1].running_var.uniform_(0.5, 1.5)
        model.features[3].bias.uniform_(0.0, 0.3)
    model.train()
    model.features[0].weight.requires_grad_(False)
    model.head[-1].bias.grad = torch.full_like(model.head[-1].bias, 3.0)
    return model


def state(model):
    return {
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grads": [(n, None if p.grad is None else p.grad.clone())
                  for n, p in model.named_parameters()],
        "hooks": [(n, [len(getattr(m, d)) for d in HOOK_DICTS]) for n, m in model.named_modules()],
        "buffers": [(n, b.clone()) for n, b in model.named_buffers()],
    }


def assert_same_state(before, after):
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for (name, g0), (_, g1) in zip(before["grads"], after["grads"]):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1), name
    for (name, b0), (_, b1) in zip(before["buffers"], after["buffers"]):
        assert torch.equal(b0, b1), name


def inputs(seed):
    return torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]

MAKERS = {
    "gradcam": lambda m: GradCAM(m, [m.features[3]]),
    "scorecam": lambda m: ScoreCAM(m, [m.features[4]], batch_size=4, progress=False),
    "guided": lambda m: GuidedBackpropReLUModel(m),
}


def assert_same_maps(got, expected, message=""):
    """Equal up to float noise, relative to the scale of the maps (CAMs are
    in [0, 1]; guided gradients are raw gradients)."""
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max(),
                               err_msg=message)


def differ(a, b):
    return np.abs(a - b).max() > 0.05 * np.abs(b).max()


def run(explainer, x):
    if isinstance(explainer, GuidedBackpropReLUModel):
        return explainer(x, targets=TARGETS)
    return explainer(x, TARGETS)


def test_four_threads_twenty_calls_each_get_their_own_maps():
    model = user_model()
    before = state(model)
    kinds = ["gradcam", "scorecam", "guided", "gradcam", "scorecam", "guided"]
    seeds = list(range(len(kinds)))
    # the single-threaded maps
    expected = [run(MAKERS[kind](model), inputs(seed)) for kind, seed in zip(kinds, seeds)]
    assert_same_state(before, state(model))
    results = {i: [] for i in range(len(kinds))}
    errors = []
    start = threading.Barrier(len(kinds))

    def worker(i):
        try:
            explainer = MAKERS[kinds[i]](model)
            x = inputs(seeds[i])
            start.wait(10)
            for _ in range(20):
                results[i].append(run(explainer, x))
        except BaseException as error:  # reported below, with its thread
            errors.append((i, error))

    threads = [threading.Thread(target=worker, args=(i,), name=f"cam-{i}")
               for i in range(len(kinds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a thread did not finish in 120 s"
    assert not errors, errors
    for i in range(len(kinds)):
        assert len(results[i]) == 20
        for maps in results[i]:
            assert_same_maps(maps, expected[i], f"thread {i} ({kinds[i]})")
    # the threads' maps differ from each other: a mix-up could not pass
    assert all(differ(expected[i], expected[i + 3]) for i in range(3))
    assert_same_state(before, state(model))


@pytest.mark.parametrize("kind,other", [("gradcam", "gradcam"), ("scorecam", "scorecam"),
                                        ("guided", "guided"), ("guided", "gradcam"),
                                        ("gradcam", "guided"), ("scorecam", "gradcam")])
def test_another_threads_forward_pass_in_the_middle_of_a_call_is_not_recorded(kind, other):
    """Thread A stops inside its forward pass, after the target layer; thread
    B runs a whole call of its own (the same method or another) on other
    images; A's map is still A's and B's is B's."""
    model = user_model()
    before = state(model)
    x_a, x_b = inputs(10), inputs(11)
    expected_a = run(MAKERS[kind](model), x_a)
    expected_b = run(MAKERS[other](model), x_b)
    if kind == other:
        assert differ(expected_a, expected_b)
    got = {}
    model.gate.hold = "A"

    def call_a():
        got["a"] = run(MAKERS[kind](model), x_a)

    thread = threading.Thread(target=call_a, name="A")
    thread.start()
    assert model.gate.reached.wait(30)
    got["b"] = run(MAKERS[other](model), x_b)  # while A waits inside its forward pass
    model.gate.release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert_same_maps(got["a"], expected_a)
    assert_same_maps(got["b"], expected_b)
    assert_same_state(before, state(model))


def test_a_call_that_starts_while_another_has_frozen_the_model_restores_the_users_flags():
    """A enters its call (flags frozen, eval mode) and waits; B's call starts
    and ends; A ends last: the user's flags are back. Then in the other
    order: B ends last."""
    for last in ("A", "B"):
        model = user_model()
        before = state(model)
        inside = threading.Event()
        leave = threading.Event()

        def call_a(model=model, inside=inside, leave=leave):
            with model_state_guard(model):
                assert not any(p.requires_grad for p in model.parameters())
                inside.set()
                assert leave.wait(30)

        thread = threading.Thread(target=call_a, name="A")
        thread.start()
        assert inside.wait(30)
        if last == "A":
            GradCAM(model, [model.features[3]])(inputs(3), TARGETS)
            # B is done, A still runs: the model stays frozen for A
            assert not any(p.requires_grad for p in model.parameters())
            leave.set()
            thread.join(30)
        else:
            with model_state_guard(model):
                leave.set()
                thread.join(30)
                assert not any(p.requires_grad for p in model.parameters())  # B still runs
        assert not thread.is_alive()
        assert_same_state(before, state(model))
