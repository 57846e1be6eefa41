"""Compiled models: ``torch.compile`` and TorchScript.

- A ``torch.compile``d model is an ``OptimizedModule`` that keeps the
  original module as ``_orig_mod``: its layers are the original's, they
  can be hooked, and the CAM runs the original eagerly
  (:func:`unwrap_compiled`).
- A TorchScript model (``torch.jit.script`` / ``trace``) has no Python
  forward to hook: no CAM can record its layers (:func:`is_torchscript`;
  :func:`check_not_torchscript` raises the error users see, for the model
  and for target layers that are or lie in a scripted part of it).
"""
from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.messages import describe

__all__ = ["is_torchscript", "check_not_torchscript", "unwrap_compiled"]


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


def check_not_torchscript(model: Any, target_layers: Any = ()) -> None:
    """TypeError when ``model`` is TorchScript (``torch.jit.script`` or
    ``torch.jit.trace``), when one of ``target_layers`` is or (a layer
    path) lies in a TorchScript part of the model, or when one is not a
    module of a model that has TorchScript parts (the layers of a scripted
    ``model.layer4`` are not the modules that run): TorchScript runs
    without Python, so the hooks that record a layer never fire. Checked
    before the layer paths are resolved and the layers looked up."""
    subject = _torchscript_subject(model, target_layers)
    if subject is not None:
        raise TypeError(
            f"{subject}, whose layers cannot be hooked, so no CAM can record them; pass the "
            "original torch.nn.Module (before torch.jit.script/trace), for example by "
            "rebuilding it and loading its state_dict")


def _torchscript_subject(model: Any, target_layers: Any) -> str | None:
    if is_torchscript(model):
        return f"the model is a TorchScript {type(model).__name__}"
    if not isinstance(model, torch.nn.Module) or not isinstance(target_layers, (list, tuple)):
        return None
    scripted = [(name, module) for name, module in model.named_modules()
                if isinstance(module, torch.jit.ScriptModule)]
    module_ids = {id(module) for module in model.modules()} if scripted else set()
    for index, layer in enumerate(target_layers):
        if isinstance(layer, torch.jit.ScriptModule):
            return (f"target_layers[{index}] ({describe(layer)}) is a TorchScript "
                    f"{type(layer).__name__}")
        if scripted and isinstance(layer, str):  # "layer4[-1]" lies in model.layer4
            path = layer.replace("[", ".").replace("]", "")
            for name, module in scripted:
                if path == name or path.startswith(name + "."):
                    return (f"target_layers[{index}] ({layer!r}) lies in model.{name}, a "
                            f"TorchScript {type(module).__name__}")
        if scripted and isinstance(layer, torch.nn.Module) and id(layer) not in module_ids:
            name, module = scripted[0]
            return (f"target_layers[{index}] ({describe(layer)}) is not a module of the model "
                    f"as it runs: model.{name} is a TorchScript {type(module).__name__}")
    return None
