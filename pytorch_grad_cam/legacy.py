"""The arguments of earlier releases, translated to the current ones with a
DeprecationWarning: ``target_layer=`` (one module), ``use_cuda=`` (also in
the seed's positional order ``(model, target_layer, use_cuda)``) and
``target_category=`` (an int for every image, a list of ints, or None)."""
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.scoring import check_targets_or_table, describe
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.warn import warn_at_caller

__all__ = ["LEGACY", "RepeatTarget", "legacy_constructor_args", "legacy_device",
           "legacy_call_targets", "looks_like_categories", "legacy_targets",
           "check_call_targets", "repeated_targets", "augmented_targets"]

#: the default of ``target_category=``: not given
LEGACY = object()


class RepeatTarget:
    """One legacy target category for every image of the batch."""

    def __init__(self, target: Callable) -> None:
        self.target = target


def legacy_constructor_args(target_layers: Any, reshape_transform: Any,
                            target_layer: torch.nn.Module | None, use_cuda: bool | None
                            ) -> tuple[Any, Any, bool | None]:
    """(target_layers, reshape_transform, use_cuda) of a CAM constructor
    with the earlier releases' ``target_layer=`` (and one module as
    ``target_layers``) as a list, and a bool in the place of
    ``reshape_transform`` (the seed's positional ``use_cuda``) moved to
    ``use_cuda``."""
    if isinstance(reshape_transform, bool) and use_cuda is None:
        # the seed's positional order was (model, target_layer, use_cuda, ...)
        use_cuda, reshape_transform = reshape_transform, None
    if target_layer is not None:
        if target_layers is not None:
            raise ValueError("pass either target_layers=[...] or the deprecated "
                             "target_layer=..., not both")
        warn_at_caller("target_layer= is deprecated; use target_layers=[layer]",
                       DeprecationWarning)
        target_layers = [target_layer]
    elif isinstance(target_layers, torch.nn.Module):
        warn_at_caller("passing one module as target_layers is deprecated; "
                       "use target_layers=[layer]", DeprecationWarning)
        target_layers = [target_layers]
    return target_layers, reshape_transform, use_cuda


def legacy_device(model: torch.nn.Module,
                  use_cuda: bool | None) -> tuple[torch.nn.Module, bool]:
    """(the model, whether it was moved to CUDA) for ``use_cuda=``: the
    model moved with ``model.cuda()`` when True and CUDA is available (a
    RuntimeWarning when it is not); the CAM otherwise uses the model's own
    device."""
    if use_cuda is None:
        return model, False
    warn_at_caller("use_cuda= is deprecated; move the model with model.to('cuda') "
                   "(the CAM uses the model's device)", DeprecationWarning)
    if not use_cuda:
        return model, False
    if not torch.cuda.is_available():
        warn_at_caller("use_cuda=True but CUDA is not available; running on the "
                       "CPU", RuntimeWarning)
        return model, False
    return model.cuda(), True


def looks_like_categories(targets: Any) -> bool:
    """True for ``targets`` that are class indices (an int or a list of
    ints), as earlier releases took them."""
    if isinstance(targets, (bool, np.bool_)):
        return False
    if isinstance(targets, (int, np.integer)):
        return True
    return (isinstance(targets, (list, tuple)) and len(targets) > 0
            and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                    for t in targets))


def legacy_targets(target_category: Any) -> Any:
    """The targets of ``target_category`` (with a DeprecationWarning):
    None, a :class:`RepeatTarget` for one int, or one
    ``ClassifierOutputTarget`` per int of a list."""
    warn_at_caller("target_category= is deprecated; use "
                   "targets=[ClassifierOutputTarget(category)] (one per image)",
                   DeprecationWarning)
    if target_category is None:
        return None
    if isinstance(target_category, (int, np.integer)) and not isinstance(target_category, bool):
        return RepeatTarget(ClassifierOutputTarget(int(target_category)))
    if isinstance(target_category, (list, tuple, np.ndarray)):
        return [ClassifierOutputTarget(int(c)) for c in target_category]
    raise TypeError(f"target_category must be an int, a list of ints or None, "
                    f"got {describe(target_category)}")


def legacy_call_targets(targets: Any, target_category: Any) -> Any:
    """The targets of a call given ``targets=`` and the deprecated
    ``target_category=`` (``LEGACY`` when not given), or class indices
    passed as ``targets``."""
    if target_category is not LEGACY:
        if targets is not None:
            raise ValueError("pass either targets=[...] or the deprecated "
                             "target_category=..., not both")
        return legacy_targets(target_category)
    if targets is not None and looks_like_categories(targets):
        return legacy_targets(targets)
    return targets


def check_call_targets(targets: Any, batch: int) -> Any:
    """``scoring.check_targets_or_table`` (one target per image, None, or
    one list of targets per image), letting a :class:`RepeatTarget`
    through."""
    if isinstance(targets, RepeatTarget):
        return targets
    return check_targets_or_table(targets, batch)


def repeated_targets(targets: Any, batch: int) -> Any:
    """A :class:`RepeatTarget` as its target once per image; anything else
    as it is."""
    if isinstance(targets, RepeatTarget):
        return [targets.target] * batch
    return targets


def augmented_targets(targets: Any, copies: int) -> Any:
    """The targets of ``copies`` augmented copies of a batch, one after the
    other (None and a :class:`RepeatTarget` apply to any batch)."""
    if targets is None or isinstance(targets, RepeatTarget):
        return targets
    repeated: list[Callable] = list(targets) * copies
    return repeated
