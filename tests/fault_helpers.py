"""What the tests of the guarantees on exception paths share: an exception
nothing may catch, a layer and a target that raise it on purpose, and a
counter of the forward and backward passes a call made
(``from fault_helpers import Boom, Counter, FailingTarget, Trap``), a
``Gate`` that holds one thread's call inside the model; and the
injection sites of the fault-injection tests: a ``Site`` that raises on its
``fire_at``-th call, a ``Bomb`` layer and a ``SiteTarget`` that tick one.

Not in conftest.py: a test file's ``from conftest import`` may find
tests/demo/conftest.py instead."""
import threading

import torch
from torch import nn

from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class Gate(nn.Module):
    """Identity; in the thread named in ``hold``, waits for ``release``
    (a call held inside the model while another thread runs)."""

    def __init__(self):
        super().__init__()
        self.hold = None
        self.reached, self.release = threading.Event(), threading.Event()

    def forward(self, x):
        if threading.current_thread().name == self.hold:
            self.hold = None
            self.reached.set()
            assert self.release.wait(30)
        return x


class Boom(Exception):
    """Raised on purpose; nothing in the library may catch it."""


class Trap(nn.Module):
    """Identity that raises Boom from its ``fail_at``-th call on."""

    def __init__(self):
        super().__init__()
        self.fail_at = None
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise Boom("forward")
        return x


class FailingTarget(ClassifierOutputTarget):
    """The score of ``category``; raises Boom from its ``fail_at``-th call on
    (never with ``fail_at=None``). A class target, so that CAM, which reads
    the classifier, takes it."""

    def __init__(self, category, fail_at=None):
        super().__init__(category)
        self.fail_at, self.calls = fail_at, 0

    def __call__(self, output):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise Boom("target")
        return output[..., self.category]


class Counter:
    """Counts the model's forward passes and the backward passes."""

    def __init__(self, model, monkeypatch):
        self.forwards = self.backwards = 0
        self.handle = model.register_forward_pre_hook(self._forward)
        grad = torch.autograd.grad

        def counting_grad(*args, **kwargs):
            self.backwards += 1
            return grad(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counting_grad)

    def _forward(self, module, inputs):
        self.forwards += 1


class Injected(Exception):
    """The exception the tests inject (not a RuntimeError, which a method
    might legitimately retry)."""


class Site:
    """Counts the calls of one place and raises on the ``fire_at``-th."""

    def __init__(self):
        self.calls = 0
        self.fire_at = 0
        self.exception = Injected

    def arm(self, fire_at: int, exception):
        self.calls, self.fire_at, self.exception = 0, fire_at, exception

    def disarm(self):
        self.calls, self.fire_at = 0, 0

    def tick(self):
        self.calls += 1
        if self.calls == self.fire_at:
            raise self.exception(f"injected at call {self.calls}")


class Bomb(nn.Module):
    """Identity that ticks its site on every call."""

    def __init__(self, site: Site):
        super().__init__()
        self.site = site

    def forward(self, x):
        self.site.tick()
        return x


class SiteTarget(ClassifierOutputTarget):
    """Score of one class; ticks its site on every call (a class-logit
    target, so that CAM, which reads the classifier's weights, takes it)."""

    def __init__(self, category: int, site: Site):
        super().__init__(category)
        self.site = site

    def __call__(self, output):
        self.site.tick()
        return output[..., self.category]
