"""The registry of CAM methods: every method's command-line name and traits.

A method registers itself where it is defined::

    @register_method("gradcam")
    class GradCAM(BaseCAM):
        ...

and everything that lists methods reads them from here: ``METHODS``, the
command line, ``metrics.evaluate``, the gallery and the tests (the
guarantees every method owes are generated from this table, so a new method
is tested without anyone editing a list). Adding a method is one file and
one decorator; the file must be imported by ``pytorch_grad_cam/__init__.py``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, TypeVar

__all__ = ["MethodInfo", "METHODS", "register_method", "get_method", "method_info",
           "registered_methods"]

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class MethodInfo:
    """What the library knows about one registered method.

    Attributes:
        name: the command-line name (``"gradcam"``).
        cls: the class.
        uses_gradients: it needs the gradients of the target scores (one
            backward pass per call); taken from the class.
        class_specific: its map depends on the target; False for the
            class-agnostic methods (EigenCAM, FEM, ...), which explain what
            the layer sees whatever the target.
        perturbation: it scores perturbed inputs or layer outputs (forward
            passes that grow with the channels of the layer).
        sampling: a perturbation method that samples each channel many
            times (SSCAM, ISCAM): thousands of forward passes per image;
            ``--method all`` leaves these out on a CPU.
        extra_passes: it runs more forward passes than the recording one,
            in chunks of ``batch_size`` (the perturbation methods, and
            Smooth Grad-CAM++'s noisy copies).
        needs_linear_head: it reads the weights of a final ``nn.Linear``
            (CAM).
        uses_target_layers: False for a method that picks the layers it
            records itself (FullGrad).
        randomised: its map is random by design (a baseline).
        attention: it needs a Vision Transformer's attention probabilities
            (LeGrad, attention rollout, ...): its target layers are the
            transformer blocks, found by the model's family when left out
            (``pytorch_grad_cam.attention``); it does not apply to CNNs.
    """

    name: str
    cls: type
    uses_gradients: bool
    class_specific: bool = True
    perturbation: bool = False
    sampling: bool = False
    extra_passes: bool = False
    needs_linear_head: bool = False
    uses_target_layers: bool = True
    randomised: bool = False
    attention: bool = False

    @property
    def summary(self) -> str:
        """The first line of the class docstring."""
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.cls.__name__


_REGISTRY: Dict[str, MethodInfo] = {}


class _MethodTable(Mapping[str, type]):
    """``METHODS``: name -> class, in registration order, read-only and
    always in step with the registry."""

    def __getitem__(self, name: str) -> type:
        return get_method(name).cls

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __repr__(self) -> str:
        return "METHODS(" + ", ".join(f"{n}={i.cls.__name__}" for n, i in _REGISTRY.items()) + ")"


#: every registered CAM method, by its command-line name
METHODS: Mapping[str, type] = _MethodTable()


def register_method(name: str, *, class_specific: bool = True, perturbation: bool = False,
                    sampling: bool = False, extra_passes: bool = False,
                    needs_linear_head: bool = False, randomised: bool = False,
                    attention: bool = False) -> Callable[[T], T]:
    """Class decorator: register a CAM method under ``name`` with its traits
    (see :class:`MethodInfo`; ``uses_gradients`` and ``uses_target_layers``
    are read from the class's attributes of those names)."""
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ValueError(f"a method name must be a non-empty lower-case string, got {name!r}")

    def decorate(cls: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"the method name {name!r} is taken by {existing.cls.__name__}")
        _REGISTRY[name] = MethodInfo(
            name=name, cls=cls, uses_gradients=bool(getattr(cls, "uses_gradients", True)),
            class_specific=class_specific, perturbation=perturbation or sampling,
            sampling=sampling, extra_passes=extra_passes or perturbation or sampling,
            needs_linear_head=needs_linear_head,
            uses_target_layers=bool(getattr(cls, "uses_target_layers", True)),
            randomised=randomised, attention=attention)
        return cls

    return decorate


def get_method(name: str) -> MethodInfo:
    """The registered method ``name`` (case-insensitive); a KeyError with
    the closest names on a typo."""
    if not isinstance(name, str):
        raise TypeError(f"a method name must be a string, got {name!r}")
    info = _REGISTRY.get(name.lower())
    if info is None:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise KeyError(f"unknown CAM method {name!r}{hint} Registered methods: "
                       f"{', '.join(_REGISTRY)}")
    return info


def method_info(cls_or_name: object) -> MethodInfo:
    """The registry entry of a method class (or of its subclass, for
    example FinerCAM combined with a base method) or name."""
    if isinstance(cls_or_name, str):
        return get_method(cls_or_name)
    by_class = {info.cls: info for info in _REGISTRY.values()}
    # the nearest registered class in the method resolution order
    for cls in getattr(cls_or_name, "__mro__", ()):
        if cls in by_class:
            return by_class[cls]
    raise KeyError(f"{getattr(cls_or_name, '__name__', cls_or_name)!r} is not a registered "
                   "CAM method")


def registered_methods(*, uses_gradients: Optional[bool] = None,
                       class_specific: Optional[bool] = None,
                       perturbation: Optional[bool] = None,
                       sampling: Optional[bool] = None,
                       extra_passes: Optional[bool] = None,
                       randomised: Optional[bool] = None,
                       attention: Optional[bool] = None) -> List[MethodInfo]:
    """The registered methods, in registration order, filtered by traits
    (``None``: either); ``attention=False`` gives the methods that apply to
    any network with feature maps (CNNs included)."""
    wanted = {"uses_gradients": uses_gradients, "class_specific": class_specific,
              "perturbation": perturbation, "sampling": sampling,
              "extra_passes": extra_passes, "randomised": randomised, "attention": attention}
    return [info for info in _REGISTRY.values()
            if all(value is None or getattr(info, key) == value for key, value in wanted.items())]
