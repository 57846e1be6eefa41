"""Layer outputs that are structures of tensors.

A layer may return a tensor or a *structure* of tensors: a (nested) dict,
tuple or list, such as the ``OrderedDict`` of feature pyramid levels of a
detection backbone. Every tensor of the structure is a *leaf*
(:func:`output_leaves`, at the keys and indices :func:`output_paths`);
:func:`rebuild_output` and :func:`map_output` make a structure of the same
shape with other tensors (the gradients of the leaves, detached copies),
and :func:`describe_output` names one in messages. The hooks
(``activations_and_gradients``), BaseCAM, AblationCAM and the reshape
transforms of structured outputs (``utils.reshape_transforms``) share them.
"""
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["is_structured", "output_leaves", "output_paths", "map_output", "rebuild_output",
           "describe_output"]


def is_structured(output: Any) -> bool:
    """True for a dict, tuple or list (the containers a layer output may be
    made of), False for a tensor or anything else."""
    return isinstance(output, (dict, tuple, list))


def _children(output: Any) -> list[tuple[Any, Any]]:
    """(key or index, value) of a container, in its order."""
    if isinstance(output, dict):
        return list(output.items())
    return list(enumerate(output))


def output_paths(output: Any) -> list[tuple[Any, ...]]:
    """The path (keys and indices from the top) of every tensor of a layer
    output, in the order of :func:`output_leaves`; ``[()]`` for a tensor.

    >>> output_paths({"0": t0, "pool": (t1, None)})
    [('0',), ('pool', 0)]
    """
    if isinstance(output, torch.Tensor):
        return [()]
    if not is_structured(output):
        return []
    return [(key,) + path for key, value in _children(output) for path in output_paths(value)]


def output_leaves(output: Any) -> list[torch.Tensor]:
    """Every tensor of a layer output (depth first, dicts in their key
    order); ``[output]`` for a tensor. Other values (None, numbers) are no
    leaves."""
    if isinstance(output, torch.Tensor):
        return [output]
    if not is_structured(output):
        return []
    return [leaf for _, value in _children(output) for leaf in output_leaves(value)]


def _rebuild(output: Any, leaves: Iterator[Any]) -> Any:
    if isinstance(output, torch.Tensor):
        return next(leaves)
    if not is_structured(output):
        return output
    if isinstance(output, dict):
        # a copy keeps the dict's type (OrderedDict, a ModelOutput, ...)
        result = copy.copy(output)
        for key, value in output.items():
            result[key] = _rebuild(value, leaves)
        return result
    values = [_rebuild(value, leaves) for value in output]
    if isinstance(output, list):
        return values
    if hasattr(output, "_fields"):  # a namedtuple
        return type(output)(*values)
    if type(output) is tuple:
        return tuple(values)
    return type(output)(values)  # torch.return_types and other tuple types


def rebuild_output(output: Any, leaves: list[Any]) -> Any:
    """``output`` with its tensors replaced, in :func:`output_leaves`
    order, by ``leaves`` (for example their gradients)."""
    if len(leaves) != len(output_leaves(output)):
        raise ValueError(f"{len(leaves)} tensors for a layer output with "
                         f"{len(output_leaves(output))}")
    return _rebuild(output, iter(leaves))


def map_output(function: Callable[[torch.Tensor], Any], output: Any) -> Any:
    """``output`` with ``function`` applied to each of its tensors (to the
    tensor itself if it is one); the structure and the other values stay."""
    if isinstance(output, torch.Tensor):
        return function(output)
    return rebuild_output(output, [function(leaf) for leaf in output_leaves(output)])


def describe_output(output: Any) -> str:
    """A layer output for messages: its type, its keys or length, and the
    shape of each tensor, for example ``OrderedDict with keys ['0', 'pool']
    ('0': (1, 256, 8, 8), 'pool': (1, 256, 1, 1))``."""
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    name = type(output).__name__
    if isinstance(output, dict):
        head = f"{name} with keys {list(output)}"
    elif is_structured(output):
        head = f"{name} of length {len(output)}"
    else:
        return name
    shapes = ", ".join(
        f"{'.'.join(repr(k) if isinstance(k, str) else f'[{k}]' for k in path)}: "
        f"{tuple(leaf.shape)}"
        for path, leaf in zip(output_paths(output), output_leaves(output)))
    return f"{head} ({shapes or 'no tensors'})"
