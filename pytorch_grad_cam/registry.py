"""The registry of CAM methods: every method's command-line name and traits.

A method registers itself where it is defined::

    @register_method("gradcam")
    class GradCAM(BaseCAM):
        ...

and everything that lists methods reads them from here: ``METHODS``, the
command line, ``metrics.evaluate``, the gallery and the tests (the
guarantees every method owes are generated from this table, so a new method
is tested without anyone editing a list). Adding a method is one file and
one decorator, and one row of :data:`LIBRARY_METHODS` (its name, module and
class), which fixes its place in ``METHODS``.

This module imports no method (nor torch): the modules of
:data:`LIBRARY_METHODS` are imported, in that order, the first time the
registry is read (``METHODS``, :func:`get_method`, ...). So a command line
can check method names with :func:`method_names` and :func:`find_method_name`
before it imports torch, and ``import pytorch_grad_cam`` stays cheap.
"""
from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["LIBRARY_METHODS", "MethodInfo", "METHODS", "find_method_name", "get_method",
           "is_class_specific", "load_methods", "method_info", "method_names", "register_method",
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
        black_box: it runs the model only as a function of its input
            (RISE): no hooks, no gradients, no target layers, so it also
            explains models whose layers cannot be hooked (TorchScript,
            ``torch.export``, a function); taken from the class.
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
    black_box: bool = False

    @property
    def summary(self) -> str:
        """The first line of the class docstring."""
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.cls.__name__


#: the library's methods, in the order of ``METHODS`` (and of the command line's
#: ``--method all``): (name, module, class). Methods registered by other code
#: come after them, in the order they were registered.
LIBRARY_METHODS: tuple[tuple[str, str, str], ...] = (
    ("gradcam", "pytorch_grad_cam.grad_cam", "GradCAM"),
    ("hirescam", "pytorch_grad_cam.hirescam", "HiResCAM"),
    ("gradcam++", "pytorch_grad_cam.grad_cam_plusplus", "GradCAMPlusPlus"),
    ("xgradcam", "pytorch_grad_cam.xgrad_cam", "XGradCAM"),
    ("ablationcam", "pytorch_grad_cam.ablation_cam", "AblationCAM"),
    ("scorecam", "pytorch_grad_cam.score_cam", "ScoreCAM"),
    ("eigencam", "pytorch_grad_cam.eigen_cam", "EigenCAM"),
    ("eigengradcam", "pytorch_grad_cam.eigen_grad_cam", "EigenGradCAM"),
    ("layercam", "pytorch_grad_cam.layer_cam", "LayerCAM"),
    ("fullgrad", "pytorch_grad_cam.fullgrad_cam", "FullGrad"),
    ("gradcamelementwise", "pytorch_grad_cam.grad_cam_elementwise", "GradCAMElementWise"),
    ("kpcacam", "pytorch_grad_cam.kpca_cam", "KPCA_CAM"),
    ("fem", "pytorch_grad_cam.fem", "FEM"),
    ("shapleycam", "pytorch_grad_cam.shapley_cam", "ShapleyCAM"),
    ("finercam", "pytorch_grad_cam.finer_cam", "FinerCAM"),
    ("segeigencam", "pytorch_grad_cam.seg_eigen_cam", "SegEigenCAM"),
    ("refinecam", "pytorch_grad_cam.refine_cam", "RefineCAM"),
    ("randomcam", "pytorch_grad_cam.random_cam", "RandomCAM"),
    ("cam", "pytorch_grad_cam.original_cam", "CAM"),
    ("smoothgradcam++", "pytorch_grad_cam.smooth_grad_cam_plusplus", "SmoothGradCAMPlusPlus"),
    ("sscam", "pytorch_grad_cam.sscam", "SSCAM"),
    ("iscam", "pytorch_grad_cam.iscam", "ISCAM"),
    # the methods for Vision Transformers' attention (trait ``attention``)
    ("legrad", "pytorch_grad_cam.legrad", "LeGrad"),
    ("attentionrollout", "pytorch_grad_cam.attention_rollout", "AttentionRollout"),
    ("gradattention", "pytorch_grad_cam.gradient_attention", "GradientWeightedAttention"),
    # Grad-ECLIP (trait ``attention``): CLIP's image side, any Vision Transformer
    ("gradeclip", "pytorch_grad_cam.grad_eclip", "GradECLIP"),
    # relevance propagation through a Vision Transformer (trait ``attention``)
    ("attnlrp", "pytorch_grad_cam.attnlrp", "AttnLRP"),
    # black-box methods: forward passes of the model alone (trait ``black_box``)
    ("rise", "pytorch_grad_cam.rise", "RISE"),
)
_ORDER = {name: index for index, (name, _, _) in enumerate(LIBRARY_METHODS)}

_REGISTRY: dict[str, MethodInfo] = {}
# held while the library's methods are imported; a thread that reads the
# registry meanwhile waits, the importing thread itself reads on
_LOADING = threading.RLock()
_STATE = {"loaded": False, "loading": False}


def load_methods() -> None:
    """Import the modules of :data:`LIBRARY_METHODS` (once): every reader
    of the registry calls this first. The lazy loading of the methods,
    and torch with them."""
    if _STATE["loaded"]:
        return
    with _LOADING:
        if _STATE["loaded"] or _STATE["loading"]:  # loading: this thread, reading meanwhile
            return
        _STATE["loading"] = True
        try:
            for _, module, _ in LIBRARY_METHODS:
                importlib.import_module(module)
            _STATE["loaded"] = True
        finally:
            _STATE["loading"] = False


def _entries() -> list[MethodInfo]:
    """The registered methods, the library's in the order of
    :data:`LIBRARY_METHODS`, then the others in registration order."""
    load_methods()
    return sorted(_REGISTRY.values(), key=lambda info: _ORDER.get(info.name, len(_ORDER)))


def method_names() -> list[str]:
    """The names of every method, in the order of ``METHODS``, without
    importing any method: those of :data:`LIBRARY_METHODS`, then the ones
    registered so far by other code."""
    return list(_ORDER) + [name for name in _REGISTRY if name not in _ORDER]


def find_method_name(text: str) -> str | None:
    """The name of the method ``text`` names: its name or its class name,
    case-insensitive (``GradCAMPlusPlus`` -> ``gradcam++``); None for no
    method. Imports no method."""
    wanted = text.strip().lower()
    for name, _, cls in LIBRARY_METHODS:
        if wanted in (name, cls.lower()):
            return name
    for name, info in list(_REGISTRY.items()):
        if wanted in (name, info.cls.__name__.lower()):
            return name
    return None


class _MethodTable(Mapping[str, type]):
    """``METHODS``: name -> class, in the order of :func:`method_names`,
    read-only and always in step with the registry."""

    def __getitem__(self, name: str) -> type:
        return get_method(name).cls

    def __iter__(self) -> Iterator[str]:
        return iter([info.name for info in _entries()])

    def __len__(self) -> int:
        return len(_entries())

    def __contains__(self, name: object) -> bool:
        load_methods()
        return name in _REGISTRY

    def __repr__(self) -> str:
        return "METHODS(" + ", ".join(f"{i.name}={i.cls.__name__}" for i in _entries()) + ")"


#: every registered CAM method, by its command-line name
METHODS: Mapping[str, type] = _MethodTable()


def register_method(name: str, *, class_specific: bool = True, perturbation: bool = False,
                    sampling: bool = False, extra_passes: bool = False,
                    needs_linear_head: bool = False, randomised: bool = False,
                    attention: bool = False) -> Callable[[T], T]:
    """Class decorator: register a CAM method under ``name`` with its traits
    (see :class:`MethodInfo`; ``uses_gradients``, ``uses_target_layers`` and
    ``black_box`` are read from the class's attributes of those names)."""
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
            randomised=randomised, attention=attention,
            black_box=bool(getattr(cls, "black_box", False)))
        return cls

    return decorate


def get_method(name: str) -> MethodInfo:
    """The registered method ``name`` (case-insensitive); a KeyError with
    the closest names on a typo."""
    if not isinstance(name, str):
        raise TypeError(f"a method name must be a string, got {name!r}")
    load_methods()
    info = _REGISTRY.get(name.lower())
    if info is None:
        known = [entry.name for entry in _entries()]
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise KeyError(f"unknown CAM method {name!r}{hint} Registered methods: "
                       f"{', '.join(known)}")
    return info


def method_info(cls_or_name: object) -> MethodInfo:
    """The registry entry of a method class (or of its subclass, for
    example FinerCAM combined with a base method) or name."""
    if isinstance(cls_or_name, str):
        return get_method(cls_or_name)
    by_class = {info.cls: info for info in _entries()}
    # the nearest registered class in the method resolution order
    for cls in getattr(cls_or_name, "__mro__", ()):
        if cls in by_class:
            return by_class[cls]
    raise KeyError(f"{getattr(cls_or_name, '__name__', cls_or_name)!r} is not a registered "
                   "CAM method")


def is_class_specific(cls: type) -> bool:
    """Whether the maps of a method class depend on the target (its
    registry trait; True for a class that is not registered)."""
    try:
        return method_info(cls).class_specific
    except KeyError:
        return True


def registered_methods(*, uses_gradients: bool | None = None,
                       class_specific: bool | None = None,
                       perturbation: bool | None = None,
                       sampling: bool | None = None,
                       extra_passes: bool | None = None,
                       randomised: bool | None = None,
                       attention: bool | None = None) -> list[MethodInfo]:
    """The registered methods, in the order of ``METHODS``, filtered by traits
    (``None``: either); ``attention=False`` gives the methods that apply to
    any network with feature maps (CNNs included)."""
    wanted = {"uses_gradients": uses_gradients, "class_specific": class_specific,
              "perturbation": perturbation, "sampling": sampling,
              "extra_passes": extra_passes, "randomised": randomised, "attention": attention}
    return [info for info in _entries()
            if all(value is None or getattr(info, key) == value for key, value in wanted.items())]
