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

A target layer may return a tensor or a *structure* of tensors: a (nested)
dict, tuple or list, such as the ``OrderedDict`` of feature pyramid levels
of a detection backbone. Every tensor of the structure (a *leaf*) is
recorded like a tensor output, and the structure is kept: the recorded
activations, and the gradients BaseCAM computes for them, are structures
of the same shape (``utils.layer_outputs``: ``map_output``,
``output_leaves``, ``rebuild_output``, re-exported here); a
``reshape_transform`` turns one into B x C x H x W
(``utils.reshape_transforms``: ``fasterrcnn_reshape_transform``,
``select_output_key``, ``combine_levels``).
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch

from pytorch_grad_cam.utils.layer_outputs import (describe_output, is_structured, map_output,
                                                  output_leaves, output_paths, rebuild_output)

__all__ = ["ActivationsAndGradients", "owned_hooks", "is_structured", "output_leaves",
           "output_paths", "map_output", "rebuild_output", "describe_output"]

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
        #: per target layer its recorded output: a tensor, or a structure
        #: (dict / tuple / list) of tensors as the layer returned it
        self.activations: List[Any] = self._empty()
        self.gradients: List[Any] = self._empty()
        #: with ``every_call``: the target layer index of each recorded entry
        self.recorded_layers: List[int] = []
        #: how often each target layer ran in the last recorded forward pass
        self.call_counts: List[int] = [0] * len(self.target_layers)
        self.track_gradients = True

    def _hook(self, index: int, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
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

    def _record_tensor(self, output: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(the tensor to record, the tensor the network goes on with, or
        None to leave the output as it is)."""
        if self.track_gradients and torch.is_grad_enabled():
            if output.requires_grad:
                saved = output
            else:
                # nothing upstream is tracked (frozen parameters): start the
                # graph here, so the backward pass stops at this layer.
                saved = output.detach().requires_grad_(True)
            # the rest of the network works on a copy, so that an in-place
            # operation after this layer can neither change the recorded
            # values nor break the gradient.
            return saved, saved.clone()
        return output.detach().clone(), None

    def _empty(self) -> List[Any]:
        return [] if self.every_call else [None] * len(self.target_layers)

    def _store(self, index: int, tensor: Any) -> None:
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
    def replace_output(self, index: int, function: Callable[[Any], Any],
                       single_input: bool = False) -> Iterator[None]:
        """While the block runs, the output of target_layers[index] is
        replaced by function(output) (perturbation methods use this to
        change a layer's output without touching the model); for a layer
        that returns a structure of tensors, ``function`` gets and returns
        the structure.

        With ``single_input``, the layer computes only the first item of
        its input batch on the call that is replaced (every tensor argument
        is cut to its first item; for a batch of copies of one image whose
        output ``function`` replaces anyway).

        A layer that ran several times in the recorded forward pass has its
        last call recorded, so only that call is replaced (the n-th call of
        every forward pass, n the number of calls recorded)."""
        every = max(1, self.call_counts[index])
        calls = [0]
        pre_calls = [0]
        with owned_hooks() as mine:

            def pre_hook(module: torch.nn.Module, args: Any) -> Any:
                if not mine():
                    return None  # another thread's forward pass
                pre_calls[0] += 1
                if pre_calls[0] % every != 0:
                    return None
                return tuple(a[:1] if isinstance(a, torch.Tensor) and a.dim() > 0 else a
                             for a in args)

            def hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
                if not mine():
                    return None  # another thread's forward pass
                calls[0] += 1
                return function(output) if calls[0] % every == 0 else None

            layer = self.target_layers[index]
            handles = [layer.register_forward_pre_hook(pre_hook)] if single_input else []
            try:
                handles.append(layer.register_forward_hook(hook))
                yield
            finally:
                for handle in handles:
                    handle.remove()

    def __call__(self, x: torch.Tensor) -> Any:
        with self.record():
            return self.model(x)

    def release(self) -> None:
        """Drop references to the recorded tensors (hooks are already gone)."""
        self.activations = self._empty()
        self.gradients = self._empty()
        self.recorded_layers = []
