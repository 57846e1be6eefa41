"""The probe: one forward pass of one image with a temporary forward hook
on chosen modules, to see what a model and its layers return.

:func:`probe` is the one such pass of the library. Two uses build on it:

- :func:`probe_target_layers` checks, with a blank image, that a model is
  an image classifier and that chosen target layers run and give maps
  (the command line and the dataset runner, before any real work);
- the layer finder (``layer_finder.locate_layers``) hooks every module of
  a model the family table does not know, takes the gradient of the top
  score with respect to every output, and picks the last layer whose
  output is a spatial map the score reaches.

The hooks are removed before :func:`probe` returns, also when it raises;
the model is the user's (see :func:`probe` for what it changes during the
pass and puts back).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.models.paths import LayerError
from pytorch_grad_cam.models.tokens import ReshapeTransform
from pytorch_grad_cam.scoring import model_device, select_output
from pytorch_grad_cam.utils.layer_outputs import describe_output

__all__ = ["LayerProbe", "Probe", "ProbeFailure", "Seen", "probe", "probe_input_size",
           "probe_target_layers"]


# ------------------------------------------------------------ the pass
@dataclass
class Seen:
    """A hooked module's last call in the probe's forward pass.

    Attributes:
        name: its name (as given to :func:`probe`).
        module: the module.
        output: what its last call returned (a tensor detached after a
            pass with gradients).
        version: the output tensor's ``_version`` right after that call (a
            later in-place operation raises it); ``-1`` for other outputs
            and for tensors of a pass under ``torch.inference_mode`` (which
            have no version counter).
        calls: how often the module ran in the pass.
        order: when its last call finished, counted over the calls of all
            hooked modules (1 for the first).
    """

    name: str
    module: torch.nn.Module
    output: Any
    version: int
    calls: int
    order: int


@dataclass
class Probe:
    """What :func:`probe` saw.

    Attributes:
        seen: per hooked entry that ran (by its index in ``modules``), its
            last call.
        output: what the model returned.
        gradients: with a ``score``, per entry whose output is a tensor
            that requires grad and that no later in-place operation
            changed, the score's gradient with respect to that output
            (``None`` where the score does not depend on it).
    """

    seen: dict[int, Seen]
    output: Any
    gradients: dict[int, torch.Tensor | None] = field(default_factory=dict)

    def in_order(self) -> list[tuple[int, Seen]]:
        """(entry index, last call) of the modules that ran, in the order
        their last calls finished."""
        return sorted(self.seen.items(), key=lambda item: item[1].order)


class ProbeFailure(Exception):
    """The model raised in the probe's forward pass (``error``); callers
    say so in their own words."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"the model fails on the probe's image ({type(error).__name__}: "
                         f"{error})")
        self.error = error


def probe(model: torch.nn.Module, modules: Sequence[tuple[str, torch.nn.Module]],
          inputs: torch.Tensor, score: Callable[[Any], torch.Tensor] | None = None) -> Probe:
    """One forward pass of ``inputs`` through ``model`` with a temporary
    forward hook on each of ``modules`` ((name, module) pairs) that keeps
    the module's last call.

    Without ``score`` the pass runs under ``torch.inference_mode`` and
    nothing about the model changes (put it in eval mode first). With
    ``score``, a function of the model's output that returns one score
    (it may raise to reject the output), the pass runs with autograd on,
    the model in eval mode with frozen parameters (``model_state_guard``,
    restored after), and the result holds the score's gradient with
    respect to every usable output (:attr:`Probe.gradients`).

    Raises:
        ProbeFailure: the model raised in the forward pass.
    """
    seen: dict[int, Seen] = {}
    counter = [0]

    def recorder(index: int, name: str) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: Any, output: Any) -> None:
            counter[0] += 1
            previous = seen.get(index)
            version = output._version if isinstance(output, torch.Tensor) \
                and not output.is_inference() else -1
            seen[index] = Seen(name, module, output, version,
                               previous.calls + 1 if previous is not None else 1, counter[0])
        return record

    handles = [module.register_forward_hook(recorder(index, name))
               for index, (name, module) in enumerate(modules)]
    try:
        if score is None:
            with torch.inference_mode():
                return Probe(seen, _forward(model, inputs))
        with model_state_guard(model), torch.inference_mode(False), torch.enable_grad():
            output = _forward(model, inputs.detach().requires_grad_(True))
            target = score(output)
            usable = [index for index, record in sorted(seen.items(),
                                                        key=lambda item: item[1].order)
                      if isinstance(record.output, torch.Tensor)
                      and record.output.requires_grad
                      and record.output._version == record.version]
            grads = torch.autograd.grad(target, [seen[index].output for index in usable],
                                        allow_unused=True) if usable else ()
    finally:
        for handle in handles:
            handle.remove()
    for record in seen.values():
        if isinstance(record.output, torch.Tensor):
            record.output = record.output.detach()
    return Probe(seen, output, dict(zip(usable, grads)))


def _forward(model: torch.nn.Module, inputs: torch.Tensor) -> Any:
    try:
        return model(inputs)
    except Exception as error:  # noqa: BLE001  (any failure of the user's model is reported)
        raise ProbeFailure(error) from error


def probe_input_size(model: torch.nn.Module) -> tuple[int, int]:
    """The input size the model (or, for a wrapper, the first of its
    modules that states one) says it takes, else 224 x 224."""
    for module in model.modules():
        size = _stated_input_size(module)
        if size is not None:
            return size
    return 224, 224


def _stated_input_size(module: torch.nn.Module) -> tuple[int, int] | None:
    config = getattr(module, "config", None)
    pretrained_cfg = getattr(module, "pretrained_cfg", None)
    candidates: list[Any] = [
        getattr(module, "image_size", None),                                 # torchvision ViT
        getattr(getattr(module, "patch_embed", None), "img_size", None),     # timm
        getattr(config, "image_size", None),                                 # Hugging Face
        getattr(getattr(config, "vision_config", None), "image_size", None),  # CLIP
        pretrained_cfg.get("input_size") if isinstance(pretrained_cfg, dict) else None,  # timm
    ]
    for value in candidates:
        if isinstance(value, int):
            return value, value
        if isinstance(value, (tuple, list)) and len(value) >= 2:
            return int(value[-2]), int(value[-1])
    return None


# ------------------------------------------------- target layers check
@dataclass(frozen=True)
class LayerProbe:
    """What :func:`probe_target_layers` saw.

    Attributes:
        num_classes: the number of scores the model gives per image.
        map_shapes: per target layer, the C x H x W shape of its map (after
            the reshape transform).
    """

    num_classes: int
    map_shapes: tuple[tuple[int, ...], ...]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def probe_target_layers(model: torch.nn.Module, layers: Sequence[torch.nn.Module],
                        names: Sequence[str] | None = None,
                        reshape_transform: ReshapeTransform | None = None,
                        input_size: int | tuple[int, int] = 224,
                        device: str | torch.device | None = None) -> LayerProbe:
    """Check, with one forward pass of a blank image, that ``model`` is an
    image classifier and every layer of ``layers`` can be explained.

    The model must give B x classes scores (found with
    :func:`pytorch_grad_cam.scoring.select_output`), and every layer must
    run in the forward pass and output a tensor (or, with a
    ``reshape_transform``, a dict / tuple / list of tensors) that after
    ``reshape_transform`` is a 1 x C x H x W map. The forward pass
    (:func:`probe`) runs under ``torch.inference_mode`` with a temporary
    forward hook per layer, removed before this returns (also when it
    raises); nothing else about the model changes (put it in eval mode
    first).

    Args:
        model: the classifier.
        layers: the target layers (modules of ``model``).
        names: their names for the messages (default ``layers[i]``).
        reshape_transform: the transform the CAM will use.
        input_size: the side (or (height, width)) of the blank image.
        device: where the blank image goes (default: the model's device).

    Returns:
        the number of classes and every layer's map shape.

    Raises:
        LayerError: ``layer`` None for a problem of the model (it fails on
            the image, or its output is no B x classes scores), else the
            name of the layer that cannot be explained.
    """
    names = list(names) if names is not None else [f"layers[{i}]" for i in range(len(layers))]
    if len(names) != len(layers):
        raise ValueError(f"names has {len(names)} entries for {len(layers)} layers")
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    device = torch.device(device) if device is not None else model_device(model)
    try:
        result = probe(model, list(zip(names, layers)),
                       torch.zeros(1, 3, height, width, device=device))
    except ProbeFailure as failure:
        raise LayerError(None, f"the model fails on a {height} x {width} image "
                               f"({_first_line(failure.error)})") from None
    output = result.output
    try:
        scores = select_output(output)
    except TypeError:
        scores = None
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) \
            else type(output).__name__
        raise LayerError(None, f"the model's output is {shape}, not B x classes scores")
    map_shapes = []
    for index, name in enumerate(names):
        if index not in result.seen:
            raise LayerError(name, "the layer is not used in the model's forward pass; "
                                   "pick another one")
        value = result.seen[index].output
        if not isinstance(value, torch.Tensor) and reshape_transform is None:
            raise LayerError(name, f"its output is a {type(value).__name__}, not a tensor; "
                                   "pick one of its sub-layers, or pass a reshape_transform "
                                   "that makes it B x C x H x W (utils.reshape_transforms."
                                   "select_output_key, combine_levels)")
        shape = (tuple(value.shape) if isinstance(value, torch.Tensor)
                 else describe_output(value))
        try:
            maps = reshape_transform(value) if reshape_transform is not None else value
        except Exception:  # noqa: BLE001  (a transform that fails: not a map, reported below)
            maps = None
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[0] != 1:
            raise LayerError(name, f"its output has shape {shape}, not a B x C x H x W "
                                   "feature map; pick a convolutional layer (or, for "
                                   "transformers, a layer of the last block such as its "
                                   "norm1/ln_1)")
        map_shapes.append(tuple(int(v) for v in maps.shape[1:]))
    return LayerProbe(num_classes=int(scores.shape[1]), map_shapes=tuple(map_shapes))
