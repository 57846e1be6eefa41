"""Compiled models: ``torch.compile`` and TorchScript.

- A ``torch.compile``d model is an ``OptimizedModule`` that keeps the
  original module as ``_orig_mod``: its layers are the original's, they
  can be hooked, and the CAM runs the original eagerly
  (:func:`unwrap_compiled`).
- A TorchScript model (``torch.jit.script`` / ``trace``) has no Python
  forward to hook: no CAM can record its layers (:func:`is_torchscript`;
  ``layer_finder.check_hookable`` turns it into the error users see).
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["is_torchscript", "unwrap_compiled"]


def is_torchscript(model: Any) -> bool:
    """Whether ``model`` is TorchScript (a ``torch.jit.ScriptModule``,
    also a traced one, or a ``ScriptFunction``), whose layers cannot be
    hooked."""
    return isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction))


def unwrap_compiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``torch.compile``d model (``OptimizedModule``):
    its layers are the original module's, and the CAM runs it eagerly;
    any other model as it is."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, torch.nn.Module) else model
