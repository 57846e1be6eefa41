"""The checks of ``explain_dataset``'s arguments, made before any image is
read or any file written, and the run's choices that follow from them
(device, DataLoader workers).

- :func:`resolve_methods`: method names or CAM classes -> (name, class);
- :func:`resolve_target_layers` (the front-ends' one, from
  ``app.layers``): modules or layer paths of the model, or the layers the
  library finds (``layer_finder.locate_layers``);
- :func:`check_targets` (from :mod:`~pytorch_grad_cam.datasets.target_modes`),
  :func:`check_map_size`, :func:`check_workers`: the other arguments, each
  error naming the argument, the value given and what is allowed;
- :func:`choose_device`, :func:`default_workers`: where the run goes and how
  many processes decode.
"""
from __future__ import annotations

import numbers
import os
from typing import Any

import torch

from pytorch_grad_cam.app.layers import TargetLayers, resolve_target_layers
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.datasets.target_modes import check_targets
from pytorch_grad_cam.registry import get_method, method_info
from pytorch_grad_cam.scoring import describe, given, model_device

__all__ = ["TargetLayers", "check_map_size", "check_targets", "check_workers", "choose_device",
           "default_workers", "resolve_methods", "resolve_target_layers"]



def resolve_methods(methods: Any) -> list[tuple[str, type]]:
    """``methods``: a registered name (``"gradcam"``), a CAM class, or a
    list of them -> [(name, class)], names as the registry spells them."""
    if isinstance(methods, (str, type)):
        methods = [methods]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise TypeError(f"methods must be a method name, a CAM class or a non-empty list of "
                        f"them, got {given(methods)}")
    entries: list[tuple[str, type]] = []
    for index, method in enumerate(methods):
        if isinstance(method, str):
            try:
                info = get_method(method)
            except KeyError as error:
                raise ValueError(f"methods[{index}]: {error.args[0]}") from None
            entries.append((info.name, info.cls))
        elif isinstance(method, type) and issubclass(method, BaseCAM):
            try:
                name = method_info(method).name
                if method_info(method).cls is not method:
                    name = method.__name__
            except KeyError:
                name = method.__name__
            entries.append((name, method))
        else:
            raise TypeError(f"methods[{index}] must be a registered method name or a BaseCAM "
                            f"subclass, got {given(method)}")
    names = [name for name, _ in entries]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ValueError(f"methods[{index}] repeats {name!r}")
    return entries


def check_map_size(map_size: Any) -> str | tuple[int, int]:
    """``map_size`` -> "layer", "input" or (height, width)."""
    if map_size in ("layer", "input"):
        return str(map_size)
    if (isinstance(map_size, (tuple, list)) and len(map_size) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
                    for v in map_size)):
        return int(map_size[0]), int(map_size[1])
    raise ValueError(f"map_size must be 'layer' (the target layer's resolution), 'input' (the "
                     f"model's input size) or (height, width), got {given(map_size)}")


def check_workers(workers: Any) -> int | None:
    """``workers``: None (:func:`default_workers`) or an int >= 0."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
        raise ValueError(f"workers must be None or an int >= 0, got {given(workers)}")
    return int(workers)


def default_workers(device: torch.device, local_processes: int = 1) -> int:
    """The DataLoader workers a run uses when ``workers`` is not given.

    With a GPU the CPUs only decode: half of this process's share of them,
    at most 8. On a CPU the decoding workers and torch's intra-op threads
    share the cores, and torch's OpenMP threads slow down badly when a core
    is taken from them: the default is the cores torch's threads leave free
    (at most 4), or, when torch uses them all, one worker on machines of 8
    cores or more and none below (decoding then runs between the batches,
    as in a plain loop). See docs/datasets.md for measurements."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux: the CPUs this process may use
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    share = max(1, cpus // max(1, local_processes))
    if device.type != "cpu":
        return int(min(8, max(1, share // 2)))
    free = share - torch.get_num_threads()
    if free > 0:
        return int(min(4, free))
    return 1 if share >= 8 else 0


def choose_device(device: Any, model: torch.nn.Module, context_local_rank: int,
                  distributed: bool) -> torch.device:
    """None: the model's device, except that under torchrun a CUDA model
    goes to ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device is None:
        chosen = model_device(model)
    else:
        try:
            chosen = torch.device(device)
        except (TypeError, RuntimeError) as error:
            raise ValueError(f"device must be None or a torch device such as 'cpu' or 'cuda', "
                             f"got {describe(device)} ({error})") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(chosen)!r}: CUDA is not available here")
        if distributed:
            chosen = torch.device("cuda", context_local_rank)
    return chosen
