"""Forward hooks that record the outputs of the target layers.

Gradients are not recorded by hooks: BaseCAM asks autograd for the gradient
of the target scores with respect to the recorded outputs
(``torch.autograd.grad``). That never writes ``param.grad``, stops the
backward pass at the target layers and is unaffected by in-place operations
after them.

Hooks live only for the duration of one forward pass: ``record()`` is a
context manager that registers them and always removes them.

Several threads may run calls on one shared model at once: a hook acts only
in the thread (more exactly, the ``contextvars`` context) whose call
registered it, so a forward pass of another thread through the same layer
is neither recorded nor changed.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch

# the hook owners active in the current thread's context
_ACTIVE: ContextVar[Tuple[object, ...]] = ContextVar("pytorch_grad_cam_active_hooks", default=())


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


class ActivationsAndGradients:
    """Records the output of each target layer during a forward pass.

    If a module is called several times in one forward pass, the output of
    its last call is the one recorded. With ``every_call=True`` every call
    is recorded instead: ``activations`` then holds one entry per call, in
    the order of the calls, ``recorded_layers`` the index of the target
    layer of each entry, and a layer that is never called has no entry.
    """

    def __init__(self, model: torch.nn.Module, target_layers: List[torch.nn.Module],
                 reshape_transform: Optional[Callable] = None, every_call: bool = False):
        self.model = model
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.every_call = every_call
        self.activations: List[Optional[torch.Tensor]] = self._empty()
        self.gradients: List[Optional[torch.Tensor]] = self._empty()
        #: with ``every_call``: the target layer index of each recorded entry
        self.recorded_layers: List[int] = []
        #: how often each target layer ran in the last recorded forward pass
        self.call_counts: List[int] = [0] * len(self.target_layers)
        self.track_gradients = True

    def _hook(self, index: int, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        self.call_counts[index] += 1
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"target_layers[{index}] ({type(module).__name__}) returned "
                f"{type(output).__name__}, but a target layer must return a tensor; "
                "choose a layer whose output is a tensor (for example a "
                "submodule of this one)")
        if self.track_gradients and torch.is_grad_enabled():
            if output.requires_grad:
                saved = output
            else:
                # nothing upstream is tracked (frozen parameters): start the
                # graph here, so the backward pass stops at this layer.
                saved = output.detach().requires_grad_(True)
            self._store(index, saved)
            # the rest of the network works on a copy, so that an in-place
            # operation after this layer can neither change the recorded
            # values nor break the gradient.
            return saved.clone()
        self._store(index, output.detach().clone())
        return None

    def _empty(self) -> List[Any]:
        return [] if self.every_call else [None] * len(self.target_layers)

    def _store(self, index: int, tensor: torch.Tensor) -> None:
        if self.every_call:
            self.activations.append(tensor)
            self.recorded_layers.append(index)
        else:
            self.activations[index] = tensor

    @contextmanager
    def record(self) -> Iterator["ActivationsAndGradients"]:
        """Register the hooks for one forward pass; they are always removed.
        They record only this thread's forward pass."""
        self.activations = self._empty()
        self.gradients = self._empty()
        self.recorded_layers = []
        self.call_counts = [0] * len(self.target_layers)
        handles = []
        with owned_hooks() as mine:
            try:
                for index, layer in enumerate(self.target_layers):
                    handles.append(layer.register_forward_hook(
                        lambda module, inputs, output, index=index:
                            self._hook(index, module, inputs, output) if mine() else None))
                yield self
            finally:
                for handle in handles:
                    handle.remove()

    @contextmanager
    def replace_output(self, index: int,
                       function: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
        """While the block runs, the output of target_layers[index] is
        replaced by function(output) (perturbation methods use this to
        change a layer's output without touching the model).

        A layer that ran several times in the recorded forward pass has its
        last call recorded, so only that call is replaced (the n-th call of
        every forward pass, n the number of calls recorded)."""
        every = max(1, self.call_counts[index])
        calls = [0]
        with owned_hooks() as mine:

            def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
                if not mine():
                    return None  # another thread's forward pass
                calls[0] += 1
                return function(output) if calls[0] % every == 0 else None

            handle = self.target_layers[index].register_forward_hook(hook)
            try:
                yield
            finally:
                handle.remove()

    def __call__(self, x: torch.Tensor) -> Any:
        with self.record():
            return self.model(x)

    def release(self) -> None:
        """Drop references to the recorded tensors (hooks are already gone)."""
        self.activations = self._empty()
        self.gradients = self._empty()
        self.recorded_layers = []
