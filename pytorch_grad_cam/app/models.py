"""The model options of the commands (``--model``, ``--weights``,
``--num-classes``, ``--random-weights``, ``--trust-checkpoint``):
:mod:`pytorch_grad_cam.models.loading` with the options' names in its
messages and its errors as :class:`~pytorch_grad_cam.app.errors.UsageError`.

The loaders here take the library's arguments (less ``names``) and give
the same models; only their errors differ, worded for a command line.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.models import loading
from pytorch_grad_cam.models.loading import ArgumentNames, LoadedModel, LoadError, WeightsUnavailable

__all__ = ["OPTION_NAMES", "load_bundled", "load_checkpoint", "load_from_options", "load_hf",
           "load_model", "load_timm", "load_torchvision", "read_checkpoint", "usage_errors"]

#: how the commands name the loaders' arguments
OPTION_NAMES = ArgumentNames(model="--model", weights="--weights", num_classes="--num-classes",
                             random_weights="--random-weights",
                             trust_checkpoint="--trust-checkpoint")

F = TypeVar("F", bound=Callable[..., Any])


def usage_errors(function: F) -> F:
    """``function`` (a loader of :mod:`~pytorch_grad_cam.models.loading`)
    called with :data:`OPTION_NAMES`, its LoadError raised as UsageError
    (but WeightsUnavailable as it is: pretrained weights that cannot be
    had, which each command answers its own way)."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, names=OPTION_NAMES, **kwargs)
        except WeightsUnavailable:  # the callers' to handle (load_model falls back on it)
            raise
        except LoadError as error:
            raise UsageError(str(error)) from None
    return cast(F, call)


load_model = usage_errors(loading.load_model)
load_torchvision = usage_errors(loading.load_torchvision)
load_timm = usage_errors(loading.load_timm)
load_hf = usage_errors(loading.load_hf)
load_bundled = usage_errors(loading.load_bundled)
load_checkpoint = usage_errors(loading.load_checkpoint)
read_checkpoint = usage_errors(loading.read_checkpoint)


def load_from_options(args: argparse.Namespace) -> LoadedModel:
    """The model of a command's options (``--model``, ``--weights`` and,
    where the command has them, ``--num-classes``, ``--random-weights``,
    ``--trust-checkpoint``)."""
    return load_model(args.model, args.weights, num_classes=getattr(args, "num_classes", None),
                      random_weights=getattr(args, "random_weights", False),
                      trust_checkpoint=getattr(args, "trust_checkpoint", False))
