"""Compiled models: ``torch.compile``, TorchScript and ``torch.export``.

- A ``torch.compile``d model is an ``OptimizedModule`` that keeps the
  original module as ``_orig_mod``: its layers are the original's, they
  can be hooked, and the CAM runs the original eagerly
  (:func:`unwrap_compiled`).
- A TorchScript model (``torch.jit.script`` / ``trace``) has no Python
  forward to hook: no CAM can record its layers (:func:`is_torchscript`;
  :func:`check_not_torchscript` raises the error users see, for the model
  and for target layers that are or lie in a scripted part of it).
- The module of a ``torch.export`` program (``ExportedProgram.module()``)
  runs a graph of operators, not its submodules: hooks on them never fire
  (:func:`is_exported_module`; refused like TorchScript), and its mode was
  fixed when it was exported (its ``train()`` and ``eval()`` raise).

Such models are explained as black boxes, from forward passes alone, by
RISE (``pytorch_grad_cam.rise``); the errors say so (:data:`BLACK_BOX_ADVICE`).
"""
from __future__ import annotations

from typing import Any

import torch

from pytorch_grad_cam.messages import describe, given

__all__ = ["BLACK_BOX_ADVICE", "check_hookable", "is_torchscript", "is_exported_module",
           "check_not_torchscript", "unwrap_compiled"]

#: the end of the errors about models whose layers cannot be hooked
BLACK_BOX_ADVICE = ("or explain the model as a black box with RISE(model) (--method rise), which "
                    "needs only its forward passes")


def is_torchscript(model: Any) -> bool:
    """Whether ``model`` is TorchScript (a ``torch.jit.ScriptModule``,
    also a traced one, or a ``ScriptFunction``), whose layers cannot be
    hooked."""
    return isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction))


def is_exported_module(model: Any) -> bool:
    """Whether ``model`` is the module of a ``torch.export`` program
    (``ExportedProgram.module()``): a ``torch.fx.GraphModule`` whose
    ``train()`` and ``eval()`` torch.export replaced by functions that
    raise. Its graph calls operators, not its submodules, so no hook on
    them fires."""
    return isinstance(model, torch.fx.GraphModule) and "eval" in vars(model)


def unwrap_compiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``torch.compile``d model (``OptimizedModule``):
    its layers are the original module's, and the CAM runs it eagerly;
    any other model as it is."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def check_hookable(model: Any) -> None:
    """TypeError, before any work, for a model whose layers cannot take
    forward hooks: TorchScript or a ``torch.export`` program's module
    (:func:`check_not_torchscript`), or not a ``torch.nn.Module`` at all (a
    function, for example one that runs an ONNX Runtime session, or an
    ``ExportedProgram``); the message of a callable points to RISE."""
    check_not_torchscript(model)
    if not isinstance(model, torch.nn.Module):
        advice = ""
        if callable(model):
            advice = (f"; a model given as a function (for example one that runs an ONNX "
                      f"Runtime session) or as a torch.export program has no layers to hook: "
                      f"pass its torch.nn.Module, {BLACK_BOX_ADVICE}")
        raise TypeError(f"model must be a torch.nn.Module, got {given(model)}{advice}")


def check_not_torchscript(model: Any, target_layers: Any = ()) -> None:
    """TypeError when ``model`` is TorchScript (``torch.jit.script`` or
    ``torch.jit.trace``) or a ``torch.export`` program's module, when one of ``target_layers`` is or (a layer
    path) lies in a TorchScript part of the model, or when one is not a
    module of a model that has TorchScript parts (the layers of a scripted
    ``model.layer4`` are not the modules that run): TorchScript runs
    without Python, so the hooks that record a layer never fire. Checked
    before the layer paths are resolved and the layers looked up."""
    subject = _torchscript_subject(model, target_layers)
    if subject is not None:
        raise TypeError(
            f"{subject}, whose layers cannot be hooked, so no CAM can record them; pass the "
            "original torch.nn.Module (before torch.jit.script/trace or torch.export), for "
            f"example by rebuilding it and loading its state_dict, {BLACK_BOX_ADVICE}")


def _torchscript_subject(model: Any, target_layers: Any) -> str | None:
    if is_torchscript(model):
        return f"the model is a TorchScript {type(model).__name__}"
    if is_exported_module(model):
        return "the model is the module of a torch.export program (a GraphModule)"
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
