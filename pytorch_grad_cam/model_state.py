"""The model-state guard: a call puts the model in eval mode with frozen
parameters and puts every flag back exactly, also when an exception is
raised, and also when several calls use one model at once."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from pytorch_grad_cam.models.compiled import is_exported_module

__all__ = ["model_state_guard", "all_modules"]


def all_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """model.modules() as a list, without the generator recursion (a third
    of its cost, which a call pays on every module)."""
    modules, seen, index = [model], {id(model)}, 0
    while index < len(modules):
        for child in modules[index]._modules.values():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                modules.append(child)
        index += 1
    return modules


class _SharedGuard:
    """The user's flags of one model, saved by the first of the calls that
    use the model at once and restored by the last."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.modules = all_modules(model)
        self.training = [module.training for module in self.modules]
        # a tensor registered as a parameter that is computed from others (not
        # a leaf: some hub models build their weights so) keeps the flag of
        # its graph and cannot be set; the leaves it comes from are frozen
        # where they are parameters of the model
        self.params = [p for module in self.modules for p in module._parameters.values()
                       if p is not None and p.is_leaf]
        self.requires = [p.requires_grad for p in self.params]
        self.users = 0
        self.eval_mode = False
        self.frozen = False
        # a torch.export program's module runs in the mode it was exported in,
        # and its train() / eval() raise: its flags are left as they are
        self.fixed_mode = is_exported_module(model)

    def apply(self, model: torch.nn.Module, eval_mode: bool, freeze: bool) -> None:
        # only what differs is touched (model.eval() only when some module is
        # training): on a small network walking and re-setting every module
        # costs as much as a forward pass of one image
        if eval_mode and not self.eval_mode:
            self.eval_mode = True
            if any(self.training) and not self.fixed_mode:
                model.eval()
        if freeze and not self.frozen:
            self.frozen = True
            for p, flag in zip(self.params, self.requires):
                if flag:
                    p.requires_grad = False  # the attribute: half the cost of requires_grad_()

    def restore(self) -> None:
        for p, flag in zip(self.params, self.requires):
            if p.requires_grad != flag:
                p.requires_grad = flag
        for module, flag in zip(self.modules, self.training):
            if module.training != flag:
                module.training = flag


_GUARDS: weakref.WeakKeyDictionary[torch.nn.Module, _SharedGuard] = weakref.WeakKeyDictionary()
_GUARDS_LOCK = threading.Lock()


@contextmanager
def model_state_guard(model: torch.nn.Module, eval_mode: bool = True,
                      freeze: bool = True) -> Iterator[None]:
    """Put the model in eval mode with frozen parameters for the duration of
    the block and restore every training flag and ``requires_grad`` exactly,
    whatever happens inside. (The module of a ``torch.export`` program keeps
    the mode it was exported in: torch.export fixed it, and refuses
    ``eval()``.)

    Calls that use one model at once, from several threads (or nested in
    one thread), share one guard: the first saves the user's flags, the
    last to finish restores them, so a call that starts while another has
    frozen the parameters does not take the frozen state for the user's.
    """
    with _GUARDS_LOCK:
        guard = _GUARDS.get(model)
        if guard is None:
            guard = _GUARDS[model] = _SharedGuard(model)
        guard.users += 1
        try:
            guard.apply(model, eval_mode, freeze)
        except BaseException:
            guard.users -= 1
            if guard.users == 0:
                guard.restore()
                del _GUARDS[model]
            raise
    try:
        yield
    finally:
        with _GUARDS_LOCK:
            guard.users -= 1
            if guard.users == 0:
                guard.restore()
                del _GUARDS[model]

