"""Forward hooks that record the outputs of the target layers.

Gradients are not recorded by hooks: BaseCAM asks autograd for the gradient
of the target scores with respect to the recorded outputs
(``torch.autograd.grad``). That never writes ``param.grad``, stops the
backward pass at the target layers and is unaffected by in-place operations
after them.

Hooks live only for the duration of one forward pass: ``record()`` is a
context manager that registers them, always removes them, and yields the
pass's own :class:`Recording` (nothing of a pass is kept on the recorder,
which one CAM object's calls in several threads share).

Several threads may run calls on one shared model at once: a hook acts only
in the thread (more exactly, the ``contextvars`` context) whose call
registered it, so a forward pass of another thread through the same layer
is neither recorded nor changed.

A target layer may return a tensor or a *structure* of tensors: a (nested)
dict, tuple or list, such as the ``OrderedDict`` of feature pyramid levels
of a detection backbone. Every tensor of the structure (a *leaf*) is
recorded like a tensor output, and the structure is kept: the recorded
activations, and the gradients BaseCAM computes for them, are structures
of the same shape (:func:`map_output`, :func:`output_leaves`,
:func:`rebuild_output`); a ``reshape_transform`` turns one into B x C x H x
W (``utils.reshape_transforms``: ``fasterrcnn_reshape_transform``,
``select_output_key``, ``combine_levels``).
"""
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from pytorch_grad_cam.utils.layer_outputs import (
    describe_output,
    is_structured,
    map_output,
    output_leaves,
    output_paths,
    rebuild_output,
)

__all__ = ["ActivationsAndGradients", "Recording", "replace_layer_output", "bypass_layer",
           "owned_hooks",
           "hook_handles",
           "is_structured", "output_leaves", "output_paths", "map_output", "rebuild_output",
           "detach_output", "regroup", "describe_output"]

# the hook owners active in the current thread's context
_ACTIVE: ContextVar[tuple[object, ...]] = ContextVar("pytorch_grad_cam_active_hooks", default=())

# layers whose forward is bypassed (bypass_layer): id -> (the instance's own
# forward attribute before, or _MISSING; the active (claims, output) pairs)
_BYPASSED: dict[int, tuple[Any, list[tuple[Callable[[], bool], Any]]]] = {}
_BYPASS_LOCK = threading.Lock()
_MISSING = object()


@contextmanager
def owned_hooks() -> Iterator[Callable[[], bool]]:
    """A fresh owner for hooks registered inside the block: yields
    ``mine()``, which is True only in this thread's context while the
    block runs. Hooks on shared modules call it first and do nothing
    otherwise."""
    owner = object()
    token = _ACTIVE.set(_ACTIVE.get() + (owner,))
    try:
        yield lambda: owner in _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


@contextmanager
def hook_handles() -> Iterator[list[Any]]:
    """A list for the handles of the hooks registered inside the block;
    every one is removed when the block ends, also when it (or registering
    a later hook) raises."""
    handles: list[Any] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------ structured layer outputs


def detach_output(output: Any) -> Any:
    """A tensor, or every tensor of a structure, detached."""
    return map_output(torch.Tensor.detach, output)


def regroup(flat: list[Any], structures: Sequence[Any]) -> list[Any]:
    """``flat`` (one entry per tensor of ``structures``, in
    :func:`output_leaves` order, plus any extra entries at the end, kept as
    they are) regrouped as one entry per structure, in its structure (for
    example the gradients of every tensor of the layers' outputs)."""
    result: list[Any] = []
    start = 0
    for structure in structures:
        if isinstance(structure, torch.Tensor):
            result.append(flat[start])
            start += 1
            continue
        count = len(output_leaves(structure))
        result.append(rebuild_output(structure, list(flat[start:start + count])))
        start += count
    return result + list(flat[start:])


class Recording:
    """What the hooks of one forward pass recorded at the target layers
    (``ActivationsAndGradients.record``); each pass has its own, so calls
    that run at once never share one.

    Attributes:
        activations: per target layer its recorded output (None for a
            layer that did not run): a tensor, or a structure (dict /
            tuple / list) of tensors as the layer returned it. With
            ``every_call``: one entry per call, in the order of the calls.
        recorded_layers: with ``every_call``, the target layer index of
            each entry of ``activations``.
        call_counts: how often each target layer ran in the pass.
    """

    def __init__(self, target_layers: Sequence[torch.nn.Module], every_call: bool,
                 track_gradients: bool) -> None:
        self.target_layers = list(target_layers)
        self.every_call = every_call
        self.track_gradients = track_gradients
        self.activations: list[Any] = [] if every_call else [None] * len(self.target_layers)
        self.recorded_layers: list[int] = []
        self.call_counts: list[int] = [0] * len(self.target_layers)

    def hook(self, index: int, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        """The forward hook of target_layers[index]: records its output and
        returns what the network goes on with (None: the output as it is)."""
        self.call_counts[index] += 1
        if isinstance(output, torch.Tensor):
            saved, replacement = self._record_tensor(output)
            self._store(index, saved)
            return replacement
        leaves = output_leaves(output)
        if not leaves:
            raise TypeError(
                f"target_layers[{index}] ({type(module).__name__}) returned "
                f"{describe_output(output)}, which holds no tensor; a target layer must return "
                "a tensor, or a dict, tuple or list of tensors; choose another layer (for "
                "example a submodule of this one)")
        if len({id(leaf) for leaf in leaves}) != len(leaves):
            # one tensor at several places of the structure (a layer that
            # returns (x, x)): each place gets its own node in the graph,
            # so that each gets the gradient of its own uses
            leaves = [leaf.view_as(leaf) if leaf.requires_grad else leaf for leaf in leaves]
        recorded = [self._record_tensor(leaf) for leaf in leaves]
        self._store(index, rebuild_output(output, [saved for saved, _ in recorded]))
        if recorded[0][1] is None:
            return None
        return rebuild_output(output, [replacement for _, replacement in recorded])

    def _record_tensor(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the tensor to record, the tensor the network goes on with, or
        None to leave the output as it is)."""
        if self.track_gradients and torch.is_grad_enabled():
            # when nothing upstream is tracked (frozen parameters), start the
            # graph here, so the backward pass stops at this layer.
            saved = output if output.requires_grad else output.detach().requires_grad_(True)
            # the rest of the network works on a copy, so that an in-place
            # operation after this layer can neither change the recorded
            # values nor break the gradient.
            return saved, saved.clone()
        return output.detach().clone(), None

    def _store(self, index: int, tensor: Any) -> None:
        if self.every_call:
            self.activations.append(tensor)
            self.recorded_layers.append(index)
        else:
            self.activations[index] = tensor

    def replace_output(self, index: int, function: Callable[[Any], Any],
                       recorded: Any = None) -> AbstractContextManager[None]:
        """``replace_layer_output`` of target_layers[index], for the call of
        the layer that this pass recorded (its last call)."""
        return replace_layer_output(self.target_layers[index], self.call_counts[index],
                                    function, recorded)


@contextmanager
def bypass_layer(layer: torch.nn.Module, calls_per_pass: int, output: Any) -> Iterator[None]:
    """While the block runs, the n-th call of ``layer`` of every forward pass
    of this thread (n = ``calls_per_pass``, at least 1) does not run the
    layer: it returns ``output`` (its output recorded before; forward hooks
    still run on it). Other calls, and other threads' forward passes, run
    the layer. Blocks of several threads may bypass one layer at once: the
    first installs a forward on the module instance that asks each of them,
    the last removes it."""
    every = max(1, calls_per_pass)
    calls = [0]
    with owned_hooks() as mine:

        def claims() -> bool:
            if not mine():
                return False  # another thread's forward pass
            calls[0] += 1
            return calls[0] % every == 0

        entry = (claims, output)
        with _BYPASS_LOCK:
            if id(layer) not in _BYPASSED:
                own = layer.__dict__.get("forward", _MISSING)
                original = layer.forward
                active: list[tuple[Callable[[], bool], Any]] = []

                def forward(*args: Any, **kwargs: Any) -> Any:
                    for claim, recorded in list(active):
                        if claim():
                            return recorded
                    return original(*args, **kwargs)

                layer.forward = forward
                _BYPASSED[id(layer)] = (own, active)
            _BYPASSED[id(layer)][1].append(entry)
        try:
            yield
        finally:
            with _BYPASS_LOCK:
                own, active = _BYPASSED[id(layer)]
                active.remove(entry)
                if not active:
                    del _BYPASSED[id(layer)]
                    if own is _MISSING:
                        del layer.__dict__["forward"]
                    else:
                        layer.forward = own


@contextmanager
def replace_layer_output(layer: torch.nn.Module, calls_per_pass: int,
                         function: Callable[[Any], Any], recorded: Any = None) -> Iterator[None]:
    """While the block runs, the output of ``layer`` is replaced by
    function(output) (perturbation methods use this to change a layer's
    output without touching the model); for a layer that returns a
    structure of tensors, ``function`` gets and returns the structure.

    With ``recorded`` (the layer's output for this input, recorded before),
    the call that is replaced does not run the layer: function(recorded)
    is its output (``bypass_layer``).

    A layer that runs ``calls_per_pass`` times in a forward pass has its
    last call recorded, so only that call is replaced (the n-th call of
    every forward pass, n = ``calls_per_pass``, at least 1). Only this
    thread's forward passes are changed."""
    every = max(1, calls_per_pass)
    calls = [0]
    with owned_hooks() as mine:

        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
            if not mine():
                return None  # another thread's forward pass
            calls[0] += 1
            return function(output) if calls[0] % every == 0 else None

        with hook_handles() as handles:
            handles.append(layer.register_forward_hook(hook))
            if recorded is None:
                yield
            else:
                with bypass_layer(layer, calls_per_pass, recorded):
                    yield


class ActivationsAndGradients:
    """Records the output of each target layer during a forward pass.

    The object says what to record (the model, its target layers, every
    call or the last one of each layer); ``record()`` runs the hooks of one
    forward pass and yields that pass's :class:`Recording`, so one object
    serves any number of calls at once, in any threads, and keeps none of
    their tensors.

    If a module is called several times in one forward pass, the output of
    its last call is the one recorded. With ``every_call=True`` every call
    is recorded instead (see :class:`Recording`).

    As in earlier releases, calling the object, ``recorder(x)``, runs the
    model with the hooks and keeps what it recorded in ``activations``
    (``recorded_layers``, ``call_counts``) until the next such call or
    ``release()``. Gradients are not recorded by hooks (BaseCAM asks
    autograd for them): ``gradients`` is there for code written for
    earlier releases and holds None for every layer; ``reshape_transform``
    is kept as given and not applied (the CAM applies it).
    """

    def __init__(self, model: torch.nn.Module, target_layers: list[torch.nn.Module],
                 reshape_transform: Callable | None = None, every_call: bool = False):
        self.model = model
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.every_call = every_call
        #: whether ``record()`` keeps the recorded outputs in the autograd graph
        #: (when grad mode is on) unless told otherwise
        self.track_gradients = True
        self._last = self._recording(False)

    def _recording(self, track_gradients: bool) -> Recording:
        return Recording(self.target_layers, self.every_call, track_gradients)

    @contextmanager
    def record(self, track_gradients: bool | None = None) -> Iterator[Recording]:
        """Register the hooks for one forward pass and yield its
        :class:`Recording`; the hooks are always removed, and they record
        only this thread's forward pass. ``track_gradients`` (default: the
        object's ``track_gradients``): keep the recorded outputs in the
        autograd graph, so that gradients can be taken with respect to
        them (when grad mode is on)."""
        recording = self._recording(self.track_gradients if track_gradients is None
                                    else bool(track_gradients))
        with owned_hooks() as mine, hook_handles() as handles:
            for index, layer in enumerate(self.target_layers):
                handles.append(layer.register_forward_hook(
                    lambda module, inputs, output, index=index:
                        recording.hook(index, module, inputs, output) if mine() else None))
            yield recording

    # ------------------------------------------- the API of earlier releases
    def __call__(self, x: torch.Tensor) -> Any:
        with self.record() as recording:
            output = self.model(x)
        self._last = recording
        return output

    @property
    def activations(self) -> list[Any]:
        """What the last ``recorder(x)`` recorded (see :class:`Recording`)."""
        return self._last.activations

    @property
    def recorded_layers(self) -> list[int]:
        return self._last.recorded_layers

    @property
    def call_counts(self) -> list[int]:
        return self._last.call_counts

    @property
    def gradients(self) -> list[Any]:
        """None for every target layer: gradients are not recorded by hooks."""
        return [] if self.every_call else [None] * len(self.target_layers)

    def replace_output(self, index: int, function: Callable[[Any], Any],
                       recorded: Any = None) -> AbstractContextManager[None]:
        """``replace_layer_output`` of target_layers[index], for the call of
        the layer that the last ``recorder(x)`` recorded."""
        return self._last.replace_output(index, function, recorded)

    def release(self) -> None:
        """Drop references to the tensors of the last ``recorder(x)`` (hooks
        are already gone)."""
        self._last = self._recording(False)
