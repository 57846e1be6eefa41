"""What a run will cost: the forward (and backward) passes of each method
per image, printed before the run so that a long one can be stopped.

The counts come from the methods' registry traits
(:class:`~pytorch_grad_cam.registry.MethodInfo`) and the channels of the
target layers (summed over the layers; every perturbation method scores
every channel of every layer):

- gradient methods: 1 forward + 1 backward pass;
- the other methods without extra passes (EigenCAM, FEM, ...): 1 forward pass;
- Score-CAM: channels + 1 forward passes (one per channel, one for the
  channels that are constant over the image; fewer when many are);
- the sampling methods (SS-CAM, IS-CAM): ``n_samples`` times that;
- Ablation-CAM: channels forward passes (of the layers after the target
  layer, where the network allows it);
- Smooth Grad-CAM++: ``num_samples`` + 1 forward and backward passes;
- RISE (a black box): ``num_masks`` + 1 forward passes (one per mask, one
  of the unmasked image), whatever the layers;
- ``--aug-smooth``: all of it once per augmented copy (6 by default);
- K classes per image (``--top-k``, several ``--target-category``): the
  same forward passes, scored for every class (one call per method), and
  a backward pass per class where the method takes gradients.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.registry import MethodInfo, get_method

__all__ = ["AUG_SMOOTH_COPIES", "Cost", "cost_report", "masks_of", "method_cost", "samples_of"]

#: the augmented copies of BaseCAM's default ``tta_transforms`` (flip x 3 factors)
AUG_SMOOTH_COPIES = 6


@dataclass(frozen=True)
class Cost:
    """The passes of one method for one image."""

    forward: int
    backward: int = 0
    #: an upper bound (Score-CAM's constant channels share one pass)
    approximate: bool = False

    def describe(self, device: torch.device | str) -> str:
        """``~1,281 forward passes on cpu``, ``1 forward + 1 backward pass on cpu``."""
        approx = "~" if self.approximate else ""
        if self.backward:
            plural = "pass" if self.forward == 1 and self.backward == 1 else "passes"
            return (f"{approx}{self.forward:,} forward + {self.backward:,} backward {plural} "
                    f"on {torch.device(device).type}")
        plural = "pass" if self.forward == 1 else "passes"
        return f"{approx}{self.forward:,} forward {plural} on {torch.device(device).type}"


def samples_of(info: MethodInfo, cam: Any = None) -> int:
    """A method's samples per channel (``n_samples``) or noisy copies
    (``num_samples``): the CAM object's, else its constructor's default,
    else 1."""
    for attribute in ("n_samples", "num_samples"):
        value = getattr(cam, attribute, None) if cam is not None else None
        if isinstance(value, int):
            return value
    try:
        parameters = inspect.signature(info.cls).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    for attribute in ("n_samples", "num_samples"):
        parameter = parameters.get(attribute)
        if parameter is not None and isinstance(parameter.default, int):
            return parameter.default
    value = getattr(info.cls, "n_samples", None)
    return value if isinstance(value, int) else 1


def masks_of(info: MethodInfo, cam: Any = None) -> int:
    """A black-box method's masks per image (``num_masks``): the CAM
    object's, else the class's default (``default_num_masks``)."""
    value = getattr(cam, "num_masks", None) if cam is not None else None
    if isinstance(value, int):
        return value
    return int(getattr(info.cls, "default_num_masks", 1))


def method_cost(name: str, channels: Sequence[int], aug_smooth: bool = False,
                cam: Any = None, input_size: int | None = None, classes: int = 1) -> Cost:
    """The passes ``name`` makes for one image when its target layers have
    ``channels`` channels (see the module's docstring), explaining
    ``classes`` classes of it in one call. ``cam`` wrapped in SESS
    (``cam.base_cam``): one pass of the whole image, then a scoring pass
    and the method's passes for each of its windows of an ``input_size``
    square image."""
    if cam is not None and hasattr(cam, "patch_count") and input_size is not None:
        base = method_cost(name, channels, aug_smooth, cam.base_cam, classes=classes)
        patches = cam.patch_count(input_size, input_size)
        return Cost(1 + patches + patches * base.forward, patches * base.backward,
                    base.approximate)
    info = get_method(name)
    total = sum(int(c) for c in channels)
    approximate = False
    if info.black_box:  # RISE: one pass per mask, and one of the unmasked image
        forward, backward = masks_of(info, cam) + 1, 0
    elif info.perturbation:
        samples = samples_of(info, cam)
        if info.sampling or hasattr(info.cls, "n_samples"):  # Score-CAM and its samplers
            forward, approximate = samples * (total + 1), True
        else:  # Ablation-CAM
            forward = total
        backward = 0
    elif info.extra_passes:  # noisy copies (Smooth Grad-CAM++)
        forward = samples_of(info, cam) + 1
        backward = forward if info.uses_gradients else 0
        approximate = True
    else:
        forward, backward = 1, 1 if info.uses_gradients else 0
    if aug_smooth:
        copies = len(list(getattr(cam, "tta_transforms", None) or [])) or AUG_SMOOTH_COPIES
        forward, backward = forward * copies, backward * copies
    return Cost(forward, backward * classes, approximate)


def cost_report(methods: Sequence[str], channels: Sequence[int], device: torch.device,
                aug_smooth: bool = False, cams: Mapping[str, Any] | None = None,
                images: int = 1, input_size: int | None = None, classes: int = 1) -> str:
    """The lines printed before a run: each method's passes per image on
    ``device`` (methods of the same cost share a line), and with several
    images the total; ``classes``: the classes explained per image."""
    cams = cams or {}
    groups: dict[str, list[str]] = {}
    forward = 0
    for name in methods:
        cost = method_cost(name, channels, aug_smooth, cams.get(name), input_size, classes)
        forward += cost.forward
        groups.setdefault(cost.describe(device), []).append(name)
    notes = [f"x{AUG_SMOOTH_COPIES} for --aug-smooth"] if aug_smooth else []
    if classes > 1:
        notes.append(f"its {classes} classes in one call per method")
    extra = f" ({'; '.join(notes)})" if notes else ""
    lines = [f"cost per image{extra}:"]
    lines += [f"  {', '.join(names)}: {text}" for text, names in groups.items()]
    if images > 1:
        lines.append(f"  in all: ~{forward * images:,} forward passes for {images} images "
                     f"on {device.type}")
    return "\n".join(lines)
