"""BaseCAM: everything the CAM methods share.

A call reads top to bottom (``__call__`` -> ``forward``):

1. **call**: check the arguments, put the model in eval mode with frozen
   parameters (``model_state_guard``), open the per-call context;
2. **record**: one forward pass with hooks on the target layers
   (``record``);
3. **score**: pick the score tensor from the output and each image's
   target score (``pytorch_grad_cam.scoring``);
4. **gradients**: ``torch.autograd.grad`` of the scores with respect to the
   recorded outputs (``compute_gradients``), never ``backward()``;
5. **weights**: the method's idea, usually one override,
   ``get_cam_weights`` (B x C) or ``get_weighted_activations`` (B x C x
   H x W);
6. **maps**: sum over the channels (or, with ``eigen_smooth``, the first
   principal component: ``project``), ReLU, min-max normalised, scaled to
   the input size (``compute_cam_per_layer``);
7. **aggregate**: the layers' maps averaged and normalised again
   (``aggregate_multi_layers``).

A target layer may return a tensor or a dict / tuple / list of tensors
(detection backbones return their feature pyramid as a dict): the
activations and their gradients then keep that structure until
``reshape_transform`` turns them into B x C x H x W
(``utils.reshape_transforms``).

:meth:`BaseCAM.differentiable_maps` runs the same steps without detaching
anything and returns maps that carry the autograd graph, for losses on
the maps during training (the gradient methods with ``differentiable =
True``).

Per-call state (the outputs, the recorded activations, the input gradient,
the index of the layer being explained, options of one call, a method's
intermediate results) lives in a :class:`CallContext` that the call opens;
``current_call()`` returns it to the steps. Nothing of a call is kept on
the CAM object for another call to read, except the documented
``cam.outputs``.

The model is the caller's: everything changed for the computation (eval
mode, ``requires_grad`` of the parameters, grad mode, hooks) is put back
exactly, also when an exception is raised anywhere in the call.
"""
from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
import ttach as tta

from pytorch_grad_cam.activations_and_gradients import (
    ActivationsAndGradients, describe_output, map_output, output_leaves, rebuild_output)
from pytorch_grad_cam.layer_finder import locate_layers
from pytorch_grad_cam.model_state import _all_modules, model_state_guard  # noqa: F401  (ablation_cam)
from pytorch_grad_cam.models.paths import resolve_layer
from pytorch_grad_cam.scoring import (
    DeviceBatchSize, check_input_tensor, check_targets, check_targets_against_outputs,
    chunked_scores, chunks, describe, given, model_device,
    model_float_dtype, prepare_input, resolve_targets, select_output, target_scores)
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

__all__ = ["BaseCAM", "CallContext", "current_call", "open_call", "model_state_guard",
           "check_target_layers", "warn_at_caller", "select_output", "check_input_tensor",
           "check_targets_against_outputs", "model_device"]

_LEGACY = object()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# the names these helpers had here before they moved to scoring.py
_describe, _given, _model_float_dtype = describe, given, model_float_dtype


def warn_at_caller(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside this package:
    the user's line, however many overrides of a method lie in between."""
    frame: Optional[FrameType] = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def resolve_target_layers(model: torch.nn.Module, target_layers: Any) -> List[torch.nn.Module]:
    """``target_layers`` as modules of ``model``: each entry a module of
    the model or a layer path (``"layer4[-1]"``, resolved by
    ``layers.resolve_layer``, with close matches on a typo); checked by
    :func:`check_target_layers`."""
    if isinstance(target_layers, (list, tuple)):
        target_layers = [resolve_layer(model, layer) if isinstance(layer, str) else layer
                         for layer in target_layers]
    check_target_layers(model, target_layers)
    return list(target_layers)


def check_target_layers(model: torch.nn.Module, target_layers: Any) -> None:
    """Raise TypeError/ValueError, naming the entry and the value given,
    unless ``target_layers`` is a non-empty list of modules of ``model``."""
    if not isinstance(target_layers, (list, tuple)):
        hint = (f"; for a layer path write target_layers=[{target_layers!r}]"
                if isinstance(target_layers, str) else "")
        raise TypeError(f"target_layers must be a list of torch.nn.Module (or layer paths), "
                        f"got {given(target_layers)}{hint}")
    if len(target_layers) == 0:
        raise ValueError(f"target_layers is empty ({target_layers!r}); give at least one "
                         "module of the model, for example target_layers=[model.layer4[-1]]")
    module_ids = {id(m) for m in model.modules()}
    for index, layer in enumerate(target_layers):
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"target_layers[{index}] must be a torch.nn.Module or a layer path "
                            f"such as 'layer4[-1]', got {given(layer)}")
        if id(layer) not in module_ids:
            raise ValueError(f"target_layers[{index}] ({describe(layer)}) is not "
                             "a module of the model; take it from the model itself, "
                             "for example model.layer4[-1]")


@dataclass
class CallContext:
    """The state of one CAM call, open while the call runs
    (``current_call()``); each thread's calls have their own.

    Attributes:
        options: the call's extra keyword options (see
            ``BaseCAM.call_options``), already checked.
        input_tensor: the batch of the forward pass being explained (for
            ``aug_smooth``: the augmented copies of the current pass).
        targets: one target callable per image of that pass.
        outputs: the score tensor the model returned (``select_output``).
        activations: the raw outputs of the target layers, as recorded (a
            tensor or a structure of tensors per layer).
        input_gradient: d(score)/d(input) with ``compute_input_gradient``.
        layer_index: the index in ``target_layers`` of the layer whose map
            is being made.
        state: what a method computes once per pass and reads in a later
            step (for example AblationCAM's memory per copy).
        differentiable: the call keeps the autograd graph
            (``differentiable_maps``): nothing is detached and the
            gradients are taken with ``create_graph=True``.
    """

    options: Dict[str, Any] = field(default_factory=dict)
    input_tensor: Optional[torch.Tensor] = None
    targets: List[Callable] = field(default_factory=list)
    outputs: Any = None
    activations: List[torch.Tensor] = field(default_factory=list)
    input_gradient: Optional[torch.Tensor] = None
    layer_index: int = 0
    state: Dict[str, Any] = field(default_factory=dict)
    differentiable: bool = False


_CURRENT_CALL: ContextVar[Optional[CallContext]] = ContextVar("pytorch_grad_cam_call",
                                                              default=None)


def _detach(value: Any) -> Any:
    """A tensor, or every tensor of a structure, detached."""
    return map_output(torch.Tensor.detach, value)


def _working_float(tensor: torch.Tensor) -> torch.Tensor:
    """The dtype maps are computed in: float32, or float64 for a float64
    tensor in a differentiable call (so that its gradients can be checked
    in double precision)."""
    context = _CURRENT_CALL.get()
    if tensor.dtype == torch.float64 and context is not None and context.differentiable:
        return tensor
    return tensor.float()


def current_call() -> CallContext:
    """The context of the CAM call that is running in this thread."""
    context = _CURRENT_CALL.get()
    if context is None:
        raise RuntimeError("current_call() is only available inside a CAM call")
    return context


@contextmanager
def open_call(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` the current call of this thread for the block (a
    wrapper that runs a method's steps itself, as SESS does per chunk)."""
    token = _CURRENT_CALL.set(context)
    try:
        yield context
    finally:
        _CURRENT_CALL.reset(token)


class BaseCAM(DeviceBatchSize):
    """Base class of the class activation map methods.

    Args:
        model: the network; it is used as it is, on its own device.
        target_layers: the modules whose outputs are explained (a list).
        reshape_transform: maps a layer's output to B x C x H x W (for
            example token layouts of Vision Transformers).
        batch_size: images per forward pass of the perturbation methods
            and of ``aug_smooth``'s copies (also settable later as
            ``cam.batch_size``); default chosen for the model's device
            (``scoring.default_batch_size``: 8 on a CPU, 64 on a GPU).
        progress: show a progress bar for the perturbation passes.
        output_selector: picks the score tensor from a model output that is
            not a tensor (default: ``.logits`` of dicts and ModelOutputs,
            else the ``"out"`` entry of a dict, the first element of
            tuples; see ``scoring.select_output``).
        tta_transforms: the ttach transforms used by ``aug_smooth``
            (default: horizontal flip x multiply by 0.9, 1.0, 1.1).

    The seed's arguments ``target_layer=`` (one module) and ``use_cuda=``
    still work, with a DeprecationWarning.

    A method's idea lives in one override: ``get_cam_weights`` (B x C
    weights of the channels) or, for per-position weights,
    ``get_weighted_activations``; a method whose map is a projection sets
    ``projects = True`` and may override ``project``.
    """

    #: whether the method needs the gradients of the target scores
    uses_gradients = True
    #: False for a method that chooses the layers it records itself
    #: (FullGrad): ``target_layers`` may then be left out; given ones are
    #: still checked like every method's
    uses_target_layers = True
    #: True for a method whose map is always a projection of the weighted
    #: activations (EigenCAM), not their sum over the channels
    projects = False
    #: names of the extra keyword options a call takes (``cam(x, alpha=...)``)
    call_options: Tuple[str, ...] = ()
    #: True for a method whose map is a differentiable function of the
    #: activations and their gradients, so that ``differentiable_maps``
    #: can return it with its autograd graph
    differentiable = False

    def __init__(self,
                 model: torch.nn.Module,
                 target_layers: Optional[Sequence[Any]] = None,
                 reshape_transform: Optional[Callable] = None,
                 compute_input_gradient: bool = False,
                 uses_gradients: Optional[bool] = None,
                 tta_transforms: Optional[tta.Compose] = None,
                 batch_size: Optional[int] = None,
                 progress: bool = True,
                 output_selector: Optional[Callable] = None,
                 *,
                 target_layer: Optional[torch.nn.Module] = None,
                 use_cuda: Optional[bool] = None) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {given(model)}")
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
        #: how the target layers were chosen: "given", or "table" / "probe"
        #: when the library found them (``layer_finder.locate_layers``)
        self.target_layers_source = "given"
        if target_layers is None:
            target_layers = []
            if self.uses_target_layers:
                found = locate_layers(model, output_selector)
                target_layers, self.target_layers_source = found.layers, found.source
                if reshape_transform is None:  # an explicit reshape_transform always wins
                    reshape_transform = found.reshape_transform
        else:
            target_layers = resolve_target_layers(model, target_layers)
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(f"reshape_transform must be callable or None, "
                            f"got {given(reshape_transform)}")
        if output_selector is not None and not callable(output_selector):
            raise TypeError(f"output_selector must be callable or None, "
                            f"got {given(output_selector)}")

        self.model = model
        self.use_cuda = False
        if use_cuda is not None:
            warn_at_caller("use_cuda= is deprecated; move the model with model.to('cuda') "
                           "(the CAM uses the model's device)", DeprecationWarning)
            if use_cuda:
                if torch.cuda.is_available():
                    self.model = model.cuda()
                    self.use_cuda = True
                else:
                    warn_at_caller("use_cuda=True but CUDA is not available; running on the "
                                   "CPU", RuntimeWarning)
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.compute_input_gradient = compute_input_gradient
        if uses_gradients is not None:
            self.uses_gradients = uses_gradients
        self.tta_transforms = tta_transforms if tta_transforms is not None else tta.Compose(
            [tta.HorizontalFlip(), tta.Multiply(factors=[0.9, 1, 1.1])])
        self.progress = progress
        self.output_selector = output_selector
        self.batch_size = batch_size
        self.activations_and_grads = ActivationsAndGradients(
            self.model, self.target_layers, reshape_transform)
        #: the model's outputs (score tensor) of the last call, detached
        self.outputs: Any = None
        self._warned_empty = False

    # ------------------------------------------------------------------ API
    def __call__(self, input_tensor: torch.Tensor, targets: Optional[Sequence[Callable]] = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False,
                 target_category: Any = _LEGACY, **options: Any) -> np.ndarray:
        """One map per image: float32 numpy array B x H x W (B x D x H x W
        for volumes) with values in [0, 1].

        ``options``: the method's per-call options (``call_options``), for
        example FinerCAM's ``alpha``."""
        context, input_tensor, targets = self._start_call(input_tensor, targets, aug_smooth,
                                                          target_category, options)
        with model_state_guard(self.model), open_call(context):
            if aug_smooth:
                cam = self.forward_augmentation_smoothing(input_tensor, targets, eigen_smooth)
            else:
                cam = self.forward(input_tensor, targets, eigen_smooth)
        result = cam.detach().float().cpu().numpy()
        self._warn_if_empty(result)
        return result

    def differentiable_maps(self, input_tensor: torch.Tensor,
                            targets: Optional[Sequence[Callable]] = None,
                            aug_smooth: bool = False, **options: Any) -> torch.Tensor:
        """The maps as a torch tensor that carries the autograd graph to the
        model's parameters, for losses on the maps during training.

        Returns a float tensor B x H x W (B x D x H x W for volumes) on the
        model's device, min-max normalised to [0, 1] per image like the
        numpy maps of ``cam(input_tensor, targets)``, and equal to them
        when the model is in eval mode (float32 rounding aside; float64 for
        a float64 model). The gradients of the target scores with respect
        to the target layers are taken with ``create_graph=True``, so a
        loss on the maps differentiates through them (double backward)::

            cam = GradCAM(model, target_layers=[model.layer4[-1]])
            maps = cam.differentiable_maps(images, [ClassifierOutputTarget(c) for c in labels])
            loss = task_loss + (maps * outside_mask).mean()
            loss.backward()

        Unlike a call of the CAM, this runs the model as it is: in the mode
        it is in (training mode: dropout active, BatchNorm with the batch's
        statistics, which it updates as a training step would), with the
        parameters' ``requires_grad`` untouched, so the graph reaches every
        parameter that requires grad, before and after the target layers
        (and the input, if ``input_tensor`` requires grad). It runs with
        autograd enabled even inside ``torch.no_grad()``. The call itself
        writes no ``.grad``: only a ``backward`` of the caller does. Hooks
        are removed when it returns or raises. A constant map (for example
        all-zero gradients) normalises to zeros, without dividing by zero.
        It does not take part in the model-state guard that calls share:
        do not run it on a model that another thread is explaining at the
        same time (that call freezes the parameters for its duration).

        Available for the methods whose map is a differentiable function
        of the activations and their gradients (class attribute
        ``differentiable``: GradCAM, HiResCAM, GradCAM++, XGradCAM,
        LayerCAM, GradCAMElementWise); TypeError for the others.
        ``aug_smooth`` is supported; ``eigen_smooth`` (an SVD) is not.
        """
        if not self.differentiable:
            from pytorch_grad_cam.registry import registered_methods

            supported = [info.cls.__name__ for info in registered_methods()
                         if getattr(info.cls, "differentiable", False)]
            raise TypeError(f"{type(self).__name__} has no differentiable maps (its map is not a "
                            "differentiable function of the activations and gradients); "
                            f"differentiable_maps() is available for {', '.join(supported)}")
        if "eigen_smooth" in options:
            raise ValueError("differentiable_maps() does not support eigen_smooth (the first "
                             "principal component of an SVD); call it without eigen_smooth")
        given_input = input_tensor
        context, input_tensor, targets = self._start_call(input_tensor, targets, aug_smooth,
                                                          _LEGACY, options)
        context.differentiable = True
        with open_call(context), torch.inference_mode(False), torch.enable_grad():
            if isinstance(given_input, torch.Tensor) and given_input.requires_grad:
                # the caller wants the graph to reach the input too
                input_tensor = given_input.to(device=input_tensor.device,
                                              dtype=input_tensor.dtype)
            if aug_smooth:
                return self.forward_augmentation_smoothing(input_tensor, targets)
            return self.forward(input_tensor, targets)

    def _start_call(self, input_tensor: Any, targets: Any, aug_smooth: bool,
                    target_category: Any, options: Dict[str, Any]
                    ) -> Tuple[CallContext, torch.Tensor, Any]:
        """The checks of a call, before any work: its context, the input
        on the model's device and the targets."""
        if target_category is not _LEGACY:
            if targets is not None:
                raise ValueError("pass either targets=[...] or the deprecated "
                                 "target_category=..., not both")
            targets = self._legacy_targets(target_category)
        elif targets is not None and self._looks_like_categories(targets):
            targets = self._legacy_targets(targets)
        unknown = sorted(set(options) - set(self.call_options))
        if unknown:
            allowed = ", ".join(self.call_options) or "none"
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)} (options of a call: {allowed})")
        context = CallContext(options=self.check_call_options(options))
        input_tensor = self._check_input(input_tensor)
        targets = self._check_targets(targets, input_tensor.shape[0])
        if aug_smooth and input_tensor.dim() != 4:
            raise ValueError(f"aug_smooth=True needs images of shape B x C x H x W that "
                             f"ttach can flip; got input_tensor of shape "
                             f"{tuple(input_tensor.shape)}")
        return context, input_tensor, targets

    def check_call_options(self, options: Dict[str, Any]) -> Dict[str, Any]:
        """The checked per-call options (a method with ``call_options``
        overrides this)."""
        return dict(options)

    # ------------------------------------------------------------- checks
    @staticmethod
    def _looks_like_categories(targets: Any) -> bool:
        if isinstance(targets, (bool, np.bool_)):
            return False
        if isinstance(targets, (int, np.integer)):
            return True
        return (isinstance(targets, (list, tuple)) and len(targets) > 0
                and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                        for t in targets))

    def _legacy_targets(self, target_category: Any) -> Any:
        warn_at_caller("target_category= is deprecated; use "
                       "targets=[ClassifierOutputTarget(category)] (one per image)",
                       DeprecationWarning)
        if target_category is None:
            return None
        if isinstance(target_category, (int, np.integer)) and not isinstance(target_category, bool):
            return _RepeatTarget(ClassifierOutputTarget(int(target_category)))
        if isinstance(target_category, (list, tuple, np.ndarray)):
            return [ClassifierOutputTarget(int(c)) for c in target_category]
        raise TypeError(f"target_category must be an int, a list of ints or None, "
                        f"got {describe(target_category)}")

    def _check_input(self, input_tensor: Any) -> torch.Tensor:
        return prepare_input(input_tensor, self.model)

    @staticmethod
    def _check_targets(targets: Any, batch: int) -> Any:
        if isinstance(targets, _RepeatTarget):
            return targets
        return check_targets(targets, batch)

    # ------------------------------------------------------- the forward
    def select_output(self, output: Any) -> Any:
        """The tensor of scores inside a model output."""
        return select_output(output, self.output_selector)

    def resolve_targets(self, targets: Any, outputs: Any, batch: int) -> List[Callable]:
        """Per-image target callables; None means each image's top class."""
        if isinstance(targets, _RepeatTarget):
            targets = [targets.target] * batch
        return resolve_targets(targets, outputs, batch)

    @staticmethod
    def target_scores(targets: Sequence[Callable], outputs: Any) -> torch.Tensor:
        """The scalar score of every image (a 1-D tensor)."""
        return target_scores(targets, outputs)

    def record(self, input_tensor: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        """Step 2: the forward pass recording the target layers' outputs
        (in ``self.activations_and_grads.activations``); returns the input
        as autograd sees it and the model's raw output."""
        recorder = self.activations_and_grads
        recorder.track_gradients = self.uses_gradients
        grad_context = (torch.enable_grad() if self.uses_gradients or self.compute_input_gradient
                        else torch.inference_mode())
        with torch.inference_mode(False), grad_context:
            if self.compute_input_gradient:
                input_tensor = input_tensor.clone().requires_grad_(True)
            with recorder.record():
                raw = self.model(input_tensor)
        for index, activation in enumerate(recorder.activations):
            if activation is None:
                raise ValueError(f"target_layers[{index}] ({describe(self.target_layers[index])}) "
                                 "was never called in the model's forward pass; choose a module "
                                 "that the forward pass uses")
        return input_tensor, raw

    def recorded_activations(self) -> List[Any]:
        """The outputs of the target layers that the last ``record`` saw,
        each a tensor or a structure of tensors as the layer returned it
        (every entry is set: ``record`` raises for a layer never called)."""
        return [a for a in self.activations_and_grads.activations if a is not None]

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor:
        """Steps 2-7 for one batch: the maps as a torch tensor B x H x W on
        the model's device."""
        context = _CURRENT_CALL.get()
        if context is None:  # called directly, outside __call__
            with open_call(CallContext()):
                return self.forward(input_tensor, targets, eigen_smooth)
        batch = input_tensor.shape[0]
        try:
            input_tensor, raw = self.record(input_tensor)
            outputs = self.select_output(raw)
            targets = self.resolve_targets(targets, outputs, batch)
            activations = self.recorded_activations()
            self._check_layer_shapes(activations, input_tensor)
            keep_graph = context.differentiable
            if self.uses_gradients:
                with torch.inference_mode(False), torch.enable_grad():
                    scores = self.target_scores(targets, outputs)
                    wrt = [leaf for activation in activations
                           for leaf in output_leaves(activation)]
                    if self.compute_input_gradient:
                        wrt.append(input_tensor)
                    computed = self.compute_gradients(scores, wrt)
                    if not keep_graph:
                        computed = [g.detach() for g in computed]
                if self.compute_input_gradient:
                    context.input_gradient = computed.pop()
                grads: List[Any] = _restructure(computed, activations)
            else:
                grads = [None] * len(activations)
                # the targets are checked once here, before any perturbation pass
                self.target_scores(targets, outputs)
            self.outputs = outputs = _detach(outputs)
            if not keep_graph:
                activations = [_detach(a) for a in activations]
                input_tensor = input_tensor.detach()
            context.input_tensor, context.targets = input_tensor.detach(), targets
            context.outputs, context.activations = outputs, activations
            cam_per_layer = self.compute_cam_per_layer(input_tensor, targets,
                                                       activations, grads, eigen_smooth)
            return self.aggregate_multi_layers(cam_per_layer)
        finally:
            context.input_gradient = None
            context.activations = []
            self.activations_and_grads.release()

    def _check_layer_shapes(self, activations: Sequence[Any],
                            input_tensor: torch.Tensor) -> None:
        """Raise before the backward pass and the perturbation passes if a
        layer's output (after reshape_transform) is not B x C x H x W."""
        batch, spatial = input_tensor.shape[0], input_tensor.dim() - 2
        with torch.no_grad():
            for index, activation in enumerate(activations):
                self._to_bchw(_detach(activation), index, "activations", batch, spatial)

    def compute_gradients(self, scores: torch.Tensor,
                          inputs: Sequence[Any]) -> List[Any]:
        """Step 4: gradients of the summed target scores with respect to
        ``inputs``: the recorded outputs of the target layers (their raw
        layout, before ``reshape_transform``; ``forward`` passes the
        tensors of a structured output one by one), followed by the input
        batch when ``compute_input_gradient`` is set. Zeros where a score
        does not depend on an input. The images of a batch are
        independent, so the sum gives every image its own gradient. All
        gradients come from one ``torch.autograd.grad``; an input that is
        a structure of tensors gets a structure of gradients. In a
        differentiable call (``differentiable_maps``) they are taken with
        ``create_graph=True``.

        This is the extension point of methods whose "gradient" is more
        than the first derivative (ShapleyCAM adds a Hessian-vector
        product); it runs with autograd enabled.
        """
        inputs = list(inputs)
        if not all(isinstance(x, torch.Tensor) for x in inputs):
            leaves = [leaf for x in inputs for leaf in output_leaves(x)]
            return _restructure(self.compute_gradients(scores, leaves), inputs)
        if not scores.requires_grad:
            return [torch.zeros_like(x) for x in inputs]
        context = _CURRENT_CALL.get()
        create_graph = context is not None and context.differentiable
        grads = torch.autograd.grad(scores.sum(), inputs, allow_unused=True,
                                    create_graph=create_graph)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]

    def _to_bchw(self, tensor: Any, index: int, what: str, batch: int,
                 spatial: int) -> torch.Tensor:
        if self.reshape_transform is not None:
            tensor = self.reshape_transform(tensor)
        elif not isinstance(tensor, torch.Tensor):
            raise ValueError(
                f"target_layers[{index}] ({describe(self.target_layers[index])}) returns "
                f"{describe_output(tensor)}, not a tensor; pass a reshape_transform that turns "
                "it into B x C x H x W, for example from pytorch_grad_cam.utils."
                "reshape_transforms: select_output_key(key) for one entry, combine_levels() for "
                "all of them resized to one size and concatenated, or "
                "fasterrcnn_reshape_transform for the backbone of torchvision's Faster R-CNN")
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2 + spatial \
                or tensor.shape[0] != batch:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            expected = "B x C x H x W" if spatial == 2 else "B x C x D x H x W"
            hint = (f"check reshape_transform ({describe(self.reshape_transform)}), "
                    "which must return that layout" if self.reshape_transform is not None else
                    "pass a reshape_transform that turns it into that layout (for token "
                    "outputs of Vision Transformers: reshape_transforms.vit_reshape_transform)")
            raise ValueError(f"the {what} of target_layers[{index}] have shape {shape}, "
                             f"expected {expected} with B={batch}; {hint}")
        return _working_float(tensor)

    def layer_gradients(self, tensor: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """A tensor laid out like the raw output of the current layer (for
        example gradients averaged elsewhere) as B x C x H x W."""
        return self._to_bchw(tensor, current_call().layer_index, "gradients",
                             input_tensor.shape[0], input_tensor.dim() - 2)

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: List[Callable],
                              activations: List[Any],
                              grads: List[Any],
                              eigen_smooth: bool) -> torch.Tensor:
        """Step 6: B x layers x H x W, every layer's map ReLU'd, normalised
        and scaled to the input size. ``activations`` and ``grads``: per
        layer a tensor or a structure as recorded (``reshape_transform``
        makes them B x C x H x W)."""
        context = current_call()
        batch, spatial = input_tensor.shape[0], input_tensor.dim() - 2
        size = tuple(input_tensor.shape[2:])
        cams = []
        for index, layer in enumerate(self.target_layers):
            context.layer_index = index
            layer_activations = self._to_bchw(activations[index], index, "activations", batch,
                                              spatial)
            layer_grads = None
            grad = grads[index]
            if grad is not None:
                layer_grads = self._to_bchw(grad, index, "gradients", batch, spatial)
            cam = self.get_cam_image(input_tensor, layer, targets, layer_activations,
                                     layer_grads, eigen_smooth)
            cam = torch.nan_to_num(_working_float(cam), nan=0.0,
                                   posinf=torch.finfo(torch.float32).max, neginf=0.0)
            cams.append(scale_cam_image(torch.relu(cam), size))
        return cams[0][:, None] if len(cams) == 1 else torch.stack(cams, dim=1)

    def aggregate_multi_layers(self, cam_per_layer: torch.Tensor) -> torch.Tensor:
        """Step 7: one map per image from the layers' maps."""
        if cam_per_layer.shape[1] == 1:
            cam = torch.relu(cam_per_layer[:, 0])  # the mean of one layer is that layer
        else:
            cam = torch.relu(cam_per_layer).mean(dim=1)
        return scale_cam_image(cam)

    def _warn_if_empty(self, cam: np.ndarray) -> None:
        """Once per CAM object (the first call with an all-zero map): which
        images, why, and which layer of this model to try instead."""
        if self._warned_empty:
            return
        empty = np.flatnonzero(cam.reshape(len(cam), -1).max(axis=1) <= 0).tolist()
        if empty:
            self._warned_empty = True
            warn_at_caller(self.empty_map_message(empty) + " (shown once per CAM object).",
                           RuntimeWarning)

    def empty_map_message(self, images: List[int]) -> str:
        """Why the maps of ``images`` may be all zeros and what to try (a
        method whose maps come from elsewhere than a layer's channels
        overrides this)."""
        return (f"the class activation map is all zeros for image(s) {images}: no location of "
                "the target layer has a positive weighted activation, or all have the same "
                "value (for example zero gradients, as at a Vision Transformer's last block). "
                f"Try {_earlier_layer_hint(self.model)}, another target or another method")

    # ------------------------------------------------------ method hooks
    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: List[Callable], activations: torch.Tensor,
                        grads: Optional[torch.Tensor]) -> torch.Tensor:
        """Step 5: B x C weights of the activations' channels, the method's
        idea."""
        raise NotImplementedError

    def get_weighted_activations(self, input_tensor: torch.Tensor,
                                 target_layer: torch.nn.Module, targets: List[Callable],
                                 activations: torch.Tensor,
                                 grads: Optional[torch.Tensor]) -> torch.Tensor:
        """B x C x H x W: the activations weighted by ``get_cam_weights``
        (methods with weights per position override this instead)."""
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        return weights.reshape(weights.shape + (1,) * (activations.dim() - 2)) * activations

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        """B x H x W: the first principal component of the weighted
        activations over the positions (``eigen_smooth``)."""
        return get_2d_projection(weighted)

    def get_cam_image(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                      targets: List[Callable], activations: torch.Tensor,
                      grads: Optional[torch.Tensor], eigen_smooth: bool = False) -> torch.Tensor:
        """B x H x W map of one layer (before ReLU and scaling): the sum of
        the weighted activations over the channels, or their projection
        with ``eigen_smooth`` (and for methods that always project)."""
        weighted = self.get_weighted_activations(input_tensor, target_layer, targets,
                                                 activations, grads)
        if eigen_smooth or self.projects:
            return self.project(weighted)
        return weighted.sum(dim=1)

    # -------------------------------------------- shared by perturbations
    def chunks(self, count: int, desc: str,
               size: Optional[int] = None) -> Iterator[Tuple[int, int]]:
        """(start, stop) ranges of ``size`` (default ``batch_size``) items,
        with the CAM's progress bar setting."""
        return chunks(count, size or self.batch_size, desc, self.progress)

    def perturbed_scores(self, count: int, make_inputs: Callable[[int, int], torch.Tensor],
                         owners: torch.Tensor, targets: Sequence[Callable],
                         desc: str) -> torch.Tensor:
        """Target scores of ``count`` perturbed inputs, a float32 tensor
        (``scoring.chunked_scores`` with this CAM's model, batch size,
        output selector and progress bar)."""
        scores, _ = chunked_scores(self.model, count, make_inputs, owners, targets,
                                   self.batch_size, self.output_selector,
                                   ranges=self.chunks(count, desc))
        return scores

    # ------------------------------------------------------ aug smoothing
    def forward_augmentation_smoothing(self, input_tensor: torch.Tensor, targets: Any,
                                       eigen_smooth: bool = False) -> torch.Tensor:
        """Test-time augmentation: the augmented copies run batched,
        de-augmented and averaged.

        The copies of as many transforms as fit in ``batch_size`` images
        (at least one transform's copies of the whole batch) go through
        one pass: on a GPU (default ``batch_size`` 64) that is usually all
        of them at once; on a CPU (default 8), whose time per image grows
        with the batch beyond a few images, a batch of 8 images runs as one
        pass per transform. The perturbation methods chunk their own
        passes by ``batch_size`` as well. Every image's map is independent
        of the others in its pass, so the grouping does not change the
        result."""
        transforms = list(self.tta_transforms)
        batch = input_tensor.shape[0]
        group = max(1, self.batch_size // batch)
        result: Optional[torch.Tensor] = None
        outputs: List[Any] = []
        for first in range(0, len(transforms), group):
            chosen = transforms[first:first + group]
            augmented = torch.cat([t.augment_image(input_tensor) for t in chosen], dim=0)
            all_targets: Any = targets
            if not (isinstance(targets, _RepeatTarget) or targets is None):
                all_targets = list(targets) * len(chosen)
            cams = self.forward(augmented, all_targets, eigen_smooth)
            outputs.append(self.outputs)
            for k, transform in enumerate(chosen):
                cam = transform.deaugment_mask(cams[k * batch:(k + 1) * batch, None])[:, 0]
                result = cam if result is None else result + cam
        if all(isinstance(o, torch.Tensor) for o in outputs):
            # the model's outputs of every augmented copy, transform by transform
            self.outputs = torch.cat(outputs, dim=0)
        assert result is not None
        return result / len(transforms)

    # --------------------------------------------------- context manager
    def release(self) -> None:
        """Nothing stays registered between calls; kept for compatibility."""
        self.activations_and_grads.release()

    def __enter__(self) -> "BaseCAM":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> Literal[False]:
        self.release()
        return False  # never swallow an exception


_BLOCK_NORMS = ("ln_1", "norm1", "layernorm_before", "layer_norm1")


def _restructure(flat: List[Any], structures: Sequence[Any]) -> List[Any]:
    """``flat`` (one entry per tensor of ``structures``, in order, plus
    any extra entries at the end, kept as they are) regrouped as one
    entry per structure, in its structure."""
    result: List[Any] = []
    start = 0
    for structure in structures:
        if isinstance(structure, torch.Tensor):
            result.append(flat[start])
            start += 1
            continue
        count = len(output_leaves(structure))
        result.append(rebuild_output(structure, list(flat[start:start + count])))
        start += count
    return result + list(flat[start:])


def _earlier_layer_hint(model: torch.nn.Module) -> str:
    """An earlier layer, named as this model names it: the norm before the
    attention of its last transformer block, where it has one."""
    names = [name for name, _ in model.named_modules()
             if name.rsplit(".", 1)[-1] in _BLOCK_NORMS]
    if names:
        return f"an earlier layer (for this model: {names[-1]})"
    return "an earlier layer"


class _RepeatTarget:
    """One legacy target category for every image of the batch."""

    def __init__(self, target: Callable) -> None:
        self.target = target
