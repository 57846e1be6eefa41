"""The per-call context of a CAM call, and what an explainer's calls share
with the code around them.

- :class:`CallContext`: the state of one call (its options, outputs,
  recorded activations, a method's intermediate results), opened by the
  call (``open_call``) and read by its steps (``current_call()``); each
  thread's calls have their own, so nothing of a call is kept on the CAM
  object;
- :class:`PerThread`: an attribute of an explainer whose value each thread
  has for itself: what the thread's own last call left (``cam.outputs``),
  so that one CAM object can be called from several threads at once;
- :class:`ReleaseOnExit`: the context-manager form of the established API,
  ``with GradCAM(...) as cam: ...``, for every explainer (the CAM methods,
  SESS, DeepFeatureFactorization).
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

import torch

from pytorch_grad_cam.activations_and_gradients import Recording

__all__ = ["CallContext", "current_call", "running_call", "open_call", "working_float",
           "PerThread", "ReleaseOnExit"]

_Self = TypeVar("_Self", bound="ReleaseOnExit")
_T = TypeVar("_T")

# per thread: explainer -> {attribute name: value}
_THREAD_VALUES = threading.local()


class PerThread(Generic[_T]):
    """A class attribute (a descriptor) whose value on an object is per
    thread: each thread reads what it last set on that object, or
    ``default`` if it set nothing. Values go when the thread ends or the
    object is collected."""

    def __init__(self, default: _T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> PerThread[_T]: ...
    @overload
    def __get__(self, obj: object, objtype: Any = None) -> _T: ...

    def __get__(self, obj: object | None, objtype: Any = None) -> Any:
        if obj is None:
            return self
        table = getattr(_THREAD_VALUES, "table", None)
        values = table.get(obj) if table is not None else None
        return values.get(self.name, self.default) if values is not None else self.default

    def __set__(self, obj: object, value: _T) -> None:
        table = getattr(_THREAD_VALUES, "table", None)
        if table is None:
            table = _THREAD_VALUES.table = weakref.WeakKeyDictionary()
        table.setdefault(obj, {})[self.name] = value


class ReleaseOnExit:
    """``with explainer as e: ...`` calls ``release()`` when the block
    ends and never swallows an exception."""

    def release(self) -> None:
        """Nothing stays registered between calls (hooks live only inside a
        call); kept for code written for earlier releases, which called it."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> Literal[False]:
        self.release()
        return False  # never swallow an exception


@dataclass
class CallContext:
    """The state of one CAM call, open while the call runs
    (``current_call()``); each thread's calls have their own.

    Attributes:
        options: the call's extra keyword options (see
            ``BaseCAM.call_options``), already checked.
        input_tensor: the batch of the forward pass being explained (for
            ``aug_smooth``: the augmented copies of the current pass).
        targets: one target callable per image of that pass.
        outputs: the score tensor the model returned (``select_output``).
        activations: the raw outputs of the target layers, as recorded (a
            tensor or a structure of tensors per layer).
        recording: what the hooks of the current forward pass recorded
            (``ActivationsAndGradients.record``; for example how often each
            target layer ran, which AblationCAM's replacement needs).
        input_gradient: d(score)/d(input) with ``compute_input_gradient``.
        layer_index: the index in ``target_layers`` of the layer whose map
            is being made.
        state: what a method computes once per pass and reads in a later
            step (for example AblationCAM's memory per copy).
        differentiable: the call keeps the autograd graph
            (``differentiable_maps``): nothing is detached and the
            gradients are taken with ``create_graph=True``.
        group: K, the targets of every image of the pass (1 unless the
            call gives each image a list of targets). From the weights
            step on, the rows of ``input_tensor``, ``targets``,
            ``outputs`` and ``activations`` are the pairs (image, target):
            row ``i * group + k`` is image i with its k-th target, so the
            ``group`` rows of an image share its input and activations; a
            method with perturbation passes runs them once per image and
            scores them for the image's ``group`` targets.
        retain_graph: the gradients step keeps the autograd graph for
            the next target's gradients (every target but the last).
    """

    options: dict[str, Any] = field(default_factory=dict)
    input_tensor: torch.Tensor | None = None
    targets: list[Callable] = field(default_factory=list)
    outputs: Any = None
    activations: list[torch.Tensor] = field(default_factory=list)
    recording: Recording | None = None
    input_gradient: torch.Tensor | None = None
    layer_index: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    differentiable: bool = False
    group: int = 1
    retain_graph: bool = False


_CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("pytorch_grad_cam_call",
                                                              default=None)


def working_float(tensor: torch.Tensor) -> torch.Tensor:
    """The dtype maps are computed in: float32, or float64 for a float64
    tensor in a differentiable call (so that its gradients can be checked
    in double precision)."""
    context = running_call()
    if tensor.dtype == torch.float64 and context is not None and context.differentiable:
        return tensor
    return tensor.float()


def running_call() -> CallContext | None:
    """The context of the CAM call that is running in this thread, or None
    outside a call."""
    return _CURRENT_CALL.get()


def current_call() -> CallContext:
    """The context of the CAM call that is running in this thread."""
    context = _CURRENT_CALL.get()
    if context is None:
        raise RuntimeError("current_call() is only available inside a CAM call")
    return context


@contextmanager
def open_call(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` the current call of this thread for the block (a
    wrapper that runs a method's steps itself, as SESS does per chunk)."""
    token = _CURRENT_CALL.set(context)
    try:
        yield context
    finally:
        _CURRENT_CALL.reset(token)

