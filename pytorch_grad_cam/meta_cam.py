"""Methods that change one step of another CAM method (their base method).

``FinerCAM(model, target_layers, base_method=GradCAM)`` builds an object of
a class that inherits from both FinerCAM and the base method: FinerCAM's
override (how the targets are chosen, or how layers are combined) takes
precedence, and every other step, the channel weighting included, is the
base method's. Any BaseCAM subclass can be a base method.
"""
from collections.abc import Callable
from functools import cache
from typing import Any

import torch

from pytorch_grad_cam.base_cam import BaseCAM


@cache
def _combined(meta: type, base: type) -> type:
    return type(meta.__name__, (meta, base), {
        "__module__": meta.__module__,
        "__qualname__": meta.__qualname__,
        "__doc__": meta.__doc__,
        "base_method": base,
        # the method's own (MetaCAM: False), not the base method's: the
        # combination's maps are not checked as differentiable functions
        "differentiable": getattr(meta, "differentiable", False),
    })


class MetaCAM(BaseCAM):
    """Base class of the methods that modify a ``base_method``.

    Subclasses set ``default_base_method`` (a function returning the
    default class) and override one step.
    """

    #: the CAM class whose weighting this method uses (set per object)
    base_method: type | None = None

    @staticmethod
    def default_base_method() -> type:
        raise NotImplementedError

    def __new__(cls, model: torch.nn.Module | None = None,
                target_layers: list[torch.nn.Module] | None = None,
                reshape_transform: Callable | None = None, base_method: type | None = None,
                *args: Any, **kwargs: Any) -> "MetaCAM":
        if cls.base_method is not None:  # already combined with a base method
            return super().__new__(cls)
        base = cls.default_base_method() if base_method is None else base_method
        if not (isinstance(base, type) and issubclass(base, BaseCAM)):
            raise TypeError(f"base_method must be a CAM class (a subclass of BaseCAM, for "
                            f"example GradCAM), got {base!r}")
        if issubclass(base, cls):
            raise ValueError(f"base_method of {cls.__name__} cannot be {cls.__name__} itself")
        return super().__new__(_combined(cls, base))  # type: ignore[arg-type]

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, base_method: type | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
