"""A loaded model's weights: checkpoints, random weights, and the loaders' errors.

- :class:`LoadedModel`: a model ready to explain, with its input size and
  normalisation (and class names, where the model has its own);
- :class:`LoadError` (a ValueError): a model or checkpoint that cannot be
  loaded as asked; its message names the argument, what was given and
  what to do, in the caller's words (:class:`ArgumentNames`: the Python
  API's ``weights=FILE`` by default, a command line's ``--weights FILE``);
- :func:`read_checkpoint` / :func:`fill` / :func:`load_checkpoint`: a
  state_dict (or, only with ``trust_checkpoint``, a whole pickled model)
  read by :mod:`pytorch_grad_cam.utils.checkpoints` and put into a model;
- :func:`randomise`: random weights for smoke tests, with a warning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from pytorch_grad_cam.utils import checkpoints
from pytorch_grad_cam.utils.checkpoints import checkpoint_classes, classifier_key
from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "DEFAULT_CLASSES",
    "MEAN",
    "PYTHON_NAMES",
    "STD",
    "ArgumentNames",
    "LoadError",
    "LoadedModel",
    "WeightsUnavailable",
    "classes_to_build",
    "fill",
    "load_checkpoint",
    "quiet_build",
    "randomise",
    "read_checkpoint",
    "with_classes",
]

MEAN: tuple[float, ...] = tuple(IMAGENET_MEAN)
STD: tuple[float, ...] = tuple(IMAGENET_STD)
#: the number of classes of the architectures as torchvision and timm build them
DEFAULT_CLASSES = 1000


@dataclass
class LoadedModel:
    """A model ready to explain, with what its inputs must look like."""

    model: torch.nn.Module
    name: str
    input_size: int = 224
    mean: tuple[float, ...] = MEAN   # the input normalisation the model was trained with
    std: tuple[float, ...] = STD
    #: the model's own class names (a Hugging Face config's id2label), if any
    class_names: list[str] | None = None


class LoadError(ValueError):
    """A model or checkpoint that cannot be loaded as asked.

    Attributes:
        argument: the argument it is about, by its Python name (``model``,
            ``weights``, ``num_classes``, ``random_weights``).
        reason: what is wrong and what to do, without the argument and its
            value (the message is ``<argument> <value>: <reason>`` when it
            names a value, else the reason alone).
    """

    def __init__(self, argument: str, reason: str, given: str | None = None) -> None:
        super().__init__(f"{given}: {reason}" if given else reason)
        self.argument = argument
        self.reason = reason


class WeightsUnavailable(LoadError):
    """Pretrained weights are neither cached nor downloadable (the message
    says which and where they were looked for).

    Attributes:
        file: where the weights file was looked for, if known.
        url: where it is downloaded from, if known.
    """

    def __init__(self, reason: str, file: str | None = None, url: str | None = None) -> None:
        super().__init__("model", reason)
        self.file = file
        self.url = url


@dataclass(frozen=True)
class ArgumentNames:
    """How the loaders' messages name their arguments: by default as the
    Python API spells them (``weights=FILE``, ``random_weights=True``); a
    front-end passes its own (a command line's ``--weights FILE``). A name
    that starts with ``-`` is an option."""

    model: str = "model"
    weights: str = "weights"
    num_classes: str = "num_classes"
    random_weights: str = "random_weights"
    trust_checkpoint: str = "trust_checkpoint"

    def given(self, argument: str, value: object, quote: bool = False) -> str:
        """The argument with the value given: ``--model resnet5`` (``quote``:
        ``--model 'resnet5'``) or ``model='resnet5'``."""
        name = getattr(self, argument)
        if name.startswith("-"):
            return f"{name} {value!r}" if quote else f"{name} {value}"
        return f"{name}={value!r}"

    def flag(self, argument: str) -> str:
        """A switch turned on: ``--random-weights`` or ``random_weights=True``."""
        name = getattr(self, argument)
        return name if name.startswith("-") else f"{name}=True"

    def taking(self, argument: str, placeholder: str) -> str:
        """How to give a value: ``--weights FILE`` or ``weights=FILE``."""
        name = getattr(self, argument)
        return f"{name} {placeholder}" if name.startswith("-") else f"{name}={placeholder}"

    def trust(self) -> str:
        """How to accept a checkpoint of pickled objects."""
        if self.trust_checkpoint.startswith("-"):
            return f"add {self.trust_checkpoint} (trust_checkpoint=True in Python)"
        return f"pass {self.flag('trust_checkpoint')}"


#: the Python API's names (the default of every loader)
PYTHON_NAMES = ArgumentNames()


def randomise(model: torch.nn.Module, name: str,
              names: ArgumentNames = PYTHON_NAMES) -> torch.nn.Module:
    """Random weights (``random_weights``): warn, and give zero-initialised
    linear layers (torchvision's ViT starts its head at zero, which would make
    every score and map zero) small random weights, reproducibly."""
    warnings.warn(f"{name} has RANDOM weights ({names.flag('random_weights')}): the maps are "
                  "meaningless, use this only to check that everything runs", UserWarning,
                  stacklevel=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not bool(module.weight.any()):
                module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
    return model


def read_checkpoint(path: str, *, trust_checkpoint: bool = False,
                    names: ArgumentNames = PYTHON_NAMES
                    ) -> torch.nn.Module | dict[str, torch.Tensor]:
    """:func:`pytorch_grad_cam.utils.checkpoints.read_checkpoint` (the
    state_dict or, with ``trust_checkpoint``, the whole model a file holds),
    its errors as LoadError about ``weights``."""
    try:
        return checkpoints.read_checkpoint(path, trust_checkpoint=trust_checkpoint)
    except checkpoints.UntrustedCheckpointError as error:
        raise LoadError("weights", error.explain(names.trust()),
                        names.given("weights", path)) from None
    except checkpoints.CheckpointError as error:
        raise LoadError("weights", error.reason, names.given("weights", path)) from None


def load_checkpoint(path: str, model: torch.nn.Module | None, name: str, *,
                    trust_checkpoint: bool = False,
                    names: ArgumentNames = PYTHON_NAMES) -> torch.nn.Module:
    """Fill ``model`` from a state_dict file, or return the whole model the
    file holds (only with ``trust_checkpoint``: it is unpickled). LoadError
    when the file cannot be read or does not fit."""
    return fill(read_checkpoint(path, trust_checkpoint=trust_checkpoint, names=names), model,
                name, path, names)


def fill(checkpoint: torch.nn.Module | dict[str, torch.Tensor], model: torch.nn.Module | None,
         name: str, path: str, names: ArgumentNames = PYTHON_NAMES) -> torch.nn.Module:
    """``model`` with the weights of a checkpoint read by
    :func:`read_checkpoint`, or the whole model it holds."""
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.eval()
    given = names.given("weights", path)
    if model is None:
        raise LoadError("weights", "holds a state_dict; say which architecture it belongs to "
                                   f"with {names.model}", given)
    state = checkpoint
    target = model
    net = getattr(model, "net", None)
    if isinstance(net, torch.nn.Module) and type(model).__name__ == "EfficientNetLite0" \
            and not any(k.startswith("net.") for k in state):
        target = net  # a state_dict of the packaged network itself
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line),
                      str(error).splitlines()[0])
        raise LoadError("weights", f"does not fit {name} ({detail})", given) from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys such as "
                         f"{result.missing_keys[0]!r}")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected keys such as "
                         f"{result.unexpected_keys[0]!r}")
        raise LoadError("weights", f"does not fit {name} ({'; '.join(parts)})", given)
    return model


def classes_to_build(state: dict[str, torch.Tensor], probe: torch.nn.Module,
                     num_classes: int | None, path: str,
                     names: ArgumentNames = PYTHON_NAMES) -> int | None:
    """The number of classes to build the architecture with: ``num_classes``,
    else the checkpoint's (None: the architecture's default); ``probe`` is
    the architecture as built by default, to find its classifier's key."""
    key = classifier_key(probe)
    found = checkpoint_classes(state, key)
    if num_classes is not None:
        if found is not None and found != num_classes:
            raise LoadError("num_classes", f"the checkpoint {path} has {found} classes ({key} of "
                                           f"shape {tuple(state[str(key)].shape)})",
                            names.given("num_classes", num_classes))
        return num_classes
    return found


def quiet_build(build: Any, *args: Any, **kwargs: Any) -> torch.nn.Module:
    """``build(*args, **kwargs)`` without the builders' warnings (googlenet's
    note on its random initialisation, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model: torch.nn.Module = build(*args, **kwargs)
    return model


def with_classes(name: str, classes: int | None) -> str:
    """``resnet18 (10 classes)``; the name alone for the default 1000."""
    return name if classes in (None, DEFAULT_CLASSES) else f"{name} ({classes} classes)"
