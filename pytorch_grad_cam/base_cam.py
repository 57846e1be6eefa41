"""BaseCAM: everything the CAM methods share.

A call reads top to bottom (``__call__`` -> ``forward``):

1. **call**: check the arguments (the earlier releases' ones translated
   by ``legacy``), put the model in eval mode with frozen parameters
   (``model_state.model_state_guard``), open the per-call context
   (``call_context``);
2. **record**: one forward pass with hooks on the target layers
   (``record``);
3. **score**: pick the score tensor from the output and each image's
   target score (``pytorch_grad_cam.scoring``);
4. **gradients**: ``torch.autograd.grad`` of the scores with respect to the
   recorded outputs (``compute_gradients``), never ``backward()``;
5. **weights**: the method's idea, usually one override,
   ``get_cam_weights`` (B x C) or ``weigh`` (B x C x H x W, from the
   activations and their gradients);
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

:meth:`BaseCAM.differentiable_maps` (``differentiable.DifferentiableMaps``)
runs the same steps without detaching anything and returns maps that
carry the autograd graph, for losses on the maps during training (the
gradient methods with ``differentiable = True``).

Per-call state (the outputs, the recorded activations, the input gradient,
the index of the layer being explained, options of one call, a method's
intermediate results) lives in a ``call_context.CallContext`` that the call
opens; ``current_call()`` returns it to the steps. Nothing of a call is
kept on the CAM object for another call to read: ``cam.outputs`` (and
what a method reports, such as AblationCAM's ``ablation_mode``) is kept
per thread (``call_context.PerThread``), so one CAM object can be called
from several threads at once and each reads its own last call's.

The model is the caller's: everything changed for the computation (eval
mode, ``requires_grad`` of the parameters, grad mode, hooks) is put back
exactly, also when an exception is raised anywhere in the call.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import ttach as tta

from pytorch_grad_cam.activations_and_gradients import (
    ActivationsAndGradients,
    detach_output,
    map_output,
    output_leaves,
    regroup,
)
from pytorch_grad_cam.aug_smoothing import augmentation_smoothing
from pytorch_grad_cam.call_context import (
    CallContext,
    PerThread,
    ReleaseOnExit,
    current_call,
    open_call,
    running_call,
    working_float,
)
from pytorch_grad_cam.differentiable import DifferentiableMaps
from pytorch_grad_cam.empty_maps import EmptyMapWarning
from pytorch_grad_cam.legacy import (
    LEGACY,
    check_call_targets,
    legacy_call_targets,
    legacy_constructor_args,
    legacy_device,
    repeated_targets,
)

# its name here, where it was defined before it moved to model_state.py
from pytorch_grad_cam.model_state import all_modules as _all_modules  # noqa: F401
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.models.compiled import check_hookable
from pytorch_grad_cam.registry import is_class_specific
from pytorch_grad_cam.scoring import (
    PerturbationPasses,
    check_input_tensor,
    check_targets_against_outputs,
    describe,
    given,
    is_target_table,
    model_device,
    prepare_input,
    repeat_rows,
    resolve_targets,
    select_output,
    target_columns,
    target_scores,
)
from pytorch_grad_cam.target_layers import (
    check_target_layers,
    choose_target_layers,
    layer_output_as_bchw,
    resolve_target_layers,
)
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from pytorch_grad_cam.warn import warn_at_caller  # noqa: F401  (in __all__)

__all__ = ["BaseCAM", "CallContext", "current_call", "open_call", "model_state_guard",
           "check_target_layers", "resolve_target_layers", "warn_at_caller", "select_output",
           "check_input_tensor", "check_targets_against_outputs", "model_device"]


class BaseCAM(ReleaseOnExit, PerturbationPasses, DifferentiableMaps, EmptyMapWarning):
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
    weights of the channels) or, for per-position weights, ``weigh``
    (activations and gradients -> B x C x H x W; an override of
    ``get_weighted_activations``, its name in earlier releases, still
    works); a method whose map is a projection sets ``projects = True`` and
    may override ``project``.
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
    call_options: tuple[str, ...] = ()
    #: True for a method whose map is a differentiable function of the
    #: activations and their gradients, so that ``differentiable_maps``
    #: can return it with its autograd graph
    differentiable = False
    #: True for a method that runs the model only as a function of its input
    #: (RISE): the model need not be hookable
    black_box = False
    #: for a map made without channels, how it is made ("makes its map from
    #: attention probabilities"): ``eigen_smooth=True`` is then refused
    made_without_channels: str | None = None
    #: the model's outputs (score tensor) of the calling thread's last call,
    #: detached (None in a thread that has made no call)
    outputs: PerThread[Any] = PerThread(None)

    def __init__(self,
                 model: torch.nn.Module,
                 target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None,
                 compute_input_gradient: bool = False,
                 uses_gradients: bool | None = None,
                 tta_transforms: tta.Compose | None = None,
                 batch_size: int | None = None,
                 progress: bool = True,
                 output_selector: Callable | None = None,
                 *,
                 target_layer: torch.nn.Module | None = None,
                 use_cuda: bool | None = None) -> None:
        if not self.black_box:  # TorchScript, a function, ...: an error that points to RISE
            check_hookable(model)
        target_layers, reshape_transform, use_cuda = legacy_constructor_args(
            target_layers, reshape_transform, target_layer, use_cuda)
        #: how the target layers were chosen: "given", or "table" / "probe"
        #: when the library found them (``layer_finder.locate_layers``)
        self.target_layers_source: str
        target_layers, self.target_layers_source, reshape_transform = choose_target_layers(
            model, target_layers, reshape_transform, output_selector, self.uses_target_layers)
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(f"reshape_transform must be callable or None, "
                            f"got {given(reshape_transform)}")
        if output_selector is not None and not callable(output_selector):
            raise TypeError(f"output_selector must be callable or None, "
                            f"got {given(output_selector)}")

        self.model, self.use_cuda = legacy_device(model, use_cuda)
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
        self._warned_empty = False

    # ------------------------------------------------------------------ API
    def __call__(self, input_tensor: torch.Tensor, targets: Sequence[Any] | None = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False,
                 target_category: Any = LEGACY, **options: Any) -> np.ndarray:
        """One map per image: float32 numpy array B x H x W (B x D x H x W
        for volumes) with values in [0, 1].

        ``targets``: one target per image, None (each image's top class),
        or one list of K targets per image (the same K for every image;
        ``utils.target_sets`` builds the top-k classes, the labels of a
        multi-label model or a detector's boxes): the maps then come back
        as B x K x H x W, map ``[i, k]`` equal to that of a call with the
        single target ``targets[i][k]``. The forward pass (and every
        perturbation pass) runs once for all K targets; only the scoring
        and the gradients are per target.

        ``options``: the method's per-call options (``call_options``), for
        example FinerCAM's ``alpha``."""
        if eigen_smooth and self.made_without_channels:
            raise ValueError(f"eigen_smooth={eigen_smooth!r}: {type(self).__name__} "
                             f"{self.made_without_channels}, it has no channels to project; "
                             "leave eigen_smooth out (aug_smooth=True works)")
        context, input_tensor, targets = self._start_call(input_tensor, targets, aug_smooth,
                                                          target_category, options)
        with model_state_guard(self.model), open_call(context):
            if aug_smooth:
                cam = self.forward_augmentation_smoothing(input_tensor, targets, eigen_smooth)
            else:
                cam = self.forward(input_tensor, targets, eigen_smooth)
            result = cam.detach().float().cpu().numpy()
            self._warn_if_empty(result)  # in the call: the message may look at its input
        return result

    def _start_call(self, input_tensor: Any, targets: Any, aug_smooth: bool,
                    target_category: Any, options: dict[str, Any]
                    ) -> tuple[CallContext, torch.Tensor, Any]:
        """The checks of a call, before any work: its context, the input
        on the model's device and the targets."""
        targets = legacy_call_targets(targets, target_category)
        unknown = sorted(set(options) - set(self.call_options))
        if unknown:
            allowed = ", ".join(self.call_options) or "none"
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)} (options of a call: {allowed})")
        context = CallContext(options=self.check_call_options(options))
        input_tensor = prepare_input(input_tensor, self.model)
        targets = check_call_targets(targets, input_tensor.shape[0])
        if aug_smooth and input_tensor.dim() != 4:
            raise ValueError(f"aug_smooth=True needs images of shape B x C x H x W that "
                             f"ttach can flip; got input_tensor of shape "
                             f"{tuple(input_tensor.shape)}")
        return context, input_tensor, targets

    def check_call_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The checked per-call options (a method with ``call_options``
        overrides this)."""
        return dict(options)

    # ------------------------------------------------------- the forward
    def select_output(self, output: Any) -> Any:
        """The tensor of scores inside a model output."""
        return select_output(output, self.output_selector)

    def resolve_targets(self, targets: Any, outputs: Any, batch: int) -> list[Callable]:
        """Per-image target callables; None means each image's top class,
        except for a method whose maps do not depend on the target (Eigen-CAM,
        FEM, ...): it needs no class, so any model output will do (a
        detector's, an embedding's)."""
        if targets is None and not is_class_specific(type(self)):
            return []
        return resolve_targets(repeated_targets(targets, batch), outputs, batch)

    @staticmethod
    def target_scores(targets: Sequence[Callable], outputs: Any) -> torch.Tensor:
        """The scalar score of every image (a 1-D tensor)."""
        return target_scores(targets, outputs)

    def record(self, input_tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Step 2: the forward pass recording the target layers' outputs
        (the call's ``recording``); returns the input as autograd sees it
        and the model's raw output."""
        context = current_call()
        grad_context = (torch.enable_grad() if self.uses_gradients or self.compute_input_gradient
                        else torch.inference_mode())
        with torch.inference_mode(False), grad_context:
            if self.compute_input_gradient:
                input_tensor = input_tensor.clone().requires_grad_(True)
            with self.activations_and_grads.record(self.uses_gradients) as recording:
                context.recording = recording
                raw = self.model(input_tensor)
        for index, activation in enumerate(recording.activations):
            if activation is None:
                raise ValueError(f"target_layers[{index}] ({describe(self.target_layers[index])}) "
                                 "was never called in the model's forward pass; choose a module "
                                 "that the forward pass uses")
        return input_tensor, raw

    def recorded_activations(self) -> list[Any]:
        """The outputs of the target layers that the call's last ``record``
        saw, each a tensor or a structure of tensors as the layer returned
        it (every entry is set: ``record`` raises for a layer never
        called)."""
        recording = current_call().recording
        assert recording is not None  # record() ran
        return [a for a in recording.activations if a is not None]

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor:
        """Steps 2-7 for one batch: the maps as a torch tensor B x H x W on
        the model's device."""
        context = running_call()
        if context is None:  # called directly, outside __call__
            with open_call(CallContext()):
                return self.forward(input_tensor, targets, eigen_smooth)
        batch = input_tensor.shape[0]
        targets_given = targets
        columns = target_columns(targets)  # K columns: the k-th target of every image
        group = len(columns)
        try:
            input_tensor, raw = self.record(input_tensor)
            outputs = self.select_output(raw)
            resolved = [self.resolve_targets(column, outputs, batch) for column in columns]
            activations = self.recorded_activations()
            self._check_layer_shapes(activations, input_tensor)
            keep_graph = context.differentiable
            if self.uses_gradients:
                computed = self._column_gradients(resolved, outputs, activations, input_tensor)
                if self.compute_input_gradient:
                    context.input_gradient = computed.pop()
                grads: list[Any] = regroup(computed, activations)
            else:
                grads = [None] * len(activations)
                for column in resolved:  # checked here, before any perturbation pass
                    if column:
                        self.target_scores(column, outputs)
            self.outputs = outputs = detach_output(outputs)
            if not keep_graph:
                activations = [detach_output(a) for a in activations]
                input_tensor = input_tensor.detach()
            targets = [column[i] for i in range(batch) for column in resolved if column]
            if group > 1:  # from here on, row i * K + k is image i with its k-th target
                rows = torch.arange(batch, device=input_tensor.device).repeat_interleave(group)
                input_tensor, outputs = input_tensor[rows], repeat_rows(outputs, group)
                activations = [map_output(lambda t: t[rows.to(t.device)], a)
                               for a in activations]
            context.group = group
            context.input_tensor, context.targets = input_tensor.detach(), targets
            context.outputs, context.activations = outputs, activations
            cam_per_layer = self.compute_cam_per_layer(input_tensor, targets,
                                                       activations, grads, eigen_smooth)
            cam = self.aggregate_multi_layers(cam_per_layer)
            if not is_target_table(targets_given):
                return cam
            return cam.reshape((batch, group) + tuple(cam.shape[1:]))
        finally:
            context.input_gradient = None
            context.activations = []
            context.recording = None
            context.retain_graph = False

    def _column_gradients(self, columns: list[list[Callable]], outputs: Any,
                          activations: list[Any], input_tensor: torch.Tensor) -> list[Any]:
        """Step 4 for K columns of targets: the gradients of each column's
        scores with respect to the recorded outputs' tensors (and the
        input with ``compute_input_gradient``), from the one graph of the
        recording pass, kept for all but the last column. With K > 1 each
        gradient has K rows per image: row ``i * K + k`` is image i's for
        its k-th target."""
        context = current_call()
        wrt = [leaf for activation in activations for leaf in output_leaves(activation)]
        if self.compute_input_gradient:
            wrt.append(input_tensor)
        per_column: list[list[Any]] = []
        with torch.inference_mode(False), torch.enable_grad():
            for index, column in enumerate(columns):
                context.retain_graph = index < len(columns) - 1
                computed = self.compute_gradients(self.target_scores(column, outputs), wrt)
                if not context.differentiable:
                    computed = [g.detach() for g in computed]
                per_column.append(computed)
        if len(per_column) == 1:
            return per_column[0]
        return [torch.stack(parts, dim=1).flatten(0, 1) for parts in zip(*per_column)]

    def _check_layer_shapes(self, activations: Sequence[Any],
                            input_tensor: torch.Tensor) -> None:
        """Raise before the backward pass and the perturbation passes if a
        layer's output (after reshape_transform) is not B x C x H x W."""
        batch, spatial = input_tensor.shape[0], input_tensor.dim() - 2
        with torch.no_grad():
            for index, activation in enumerate(activations):
                self._to_bchw(detach_output(activation), index, "activations", batch, spatial)

    def compute_gradients(self, scores: torch.Tensor,
                          inputs: Sequence[Any]) -> list[Any]:
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
            return regroup(self.compute_gradients(scores, leaves), inputs)
        if not scores.requires_grad:
            return [torch.zeros_like(x) for x in inputs]
        context = running_call()
        create_graph = context is not None and context.differentiable
        retain = create_graph or (context is not None and context.retain_graph)
        grads = torch.autograd.grad(scores.sum(), inputs, allow_unused=True,
                                    create_graph=create_graph, retain_graph=retain)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]

    def _to_bchw(self, tensor: Any, index: int, what: str, batch: int,
                 spatial: int) -> torch.Tensor:
        return working_float(layer_output_as_bchw(tensor, self.reshape_transform,
                                                  self.target_layers, index, what, batch,
                                                  spatial))

    def layer_gradients(self, tensor: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """A tensor laid out like the raw output of the current layer (for
        example gradients averaged elsewhere) as B x C x H x W."""
        return self._to_bchw(tensor, current_call().layer_index, "gradients",
                             input_tensor.shape[0], input_tensor.dim() - 2)

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: list[Callable],
                              activations: list[Any],
                              grads: list[Any],
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
            cam = torch.nan_to_num(working_float(cam), nan=0.0,
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

    # ------------------------------------------------------ method hooks
    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        """Step 5: B x C weights of the activations' channels, the method's
        idea."""
        raise NotImplementedError

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Step 5 of a method whose weights are per position: B x C x H x W,
        the activations weighted element by element using their gradients
        (HiResCAM: ``grads * activations``). BaseCAM calls it with the
        gradients of the target scores, laid out like the activations; a
        method overrides either this or ``get_cam_weights``."""
        raise NotImplementedError

    def get_weighted_activations(self, input_tensor: torch.Tensor,
                                 target_layer: torch.nn.Module, targets: list[Callable],
                                 activations: torch.Tensor,
                                 grads: torch.Tensor | None) -> torch.Tensor:
        """B x C x H x W: the activations weighted by ``weigh`` where a
        method overrides it, else by the channel weights of
        ``get_cam_weights``. (An override of this method, the name of
        earlier releases, still takes precedence.)"""
        if type(self).weigh is not BaseCAM.weigh:
            if grads is None:
                raise ValueError(f"uses_gradients=False: {type(self).__name__} weighs the "
                                 "activations with their gradients; leave uses_gradients out")
            return self.weigh(activations, grads)
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        return weights.reshape(weights.shape + (1,) * (activations.dim() - 2)) * activations

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        """B x H x W: the first principal component of the weighted
        activations over the positions (``eigen_smooth``)."""
        return get_2d_projection(weighted)

    def get_cam_image(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                      targets: list[Callable], activations: torch.Tensor,
                      grads: torch.Tensor | None, eigen_smooth: bool = False) -> torch.Tensor:
        """B x H x W map of one layer (before ReLU and scaling): the sum of
        the weighted activations over the channels, or their projection
        with ``eigen_smooth`` (and for methods that always project)."""
        weighted = self.get_weighted_activations(input_tensor, target_layer, targets,
                                                 activations, grads)
        if eigen_smooth or self.projects:
            return self.project(weighted)
        return weighted.sum(dim=1)

    # ------------------------------------------------------ aug smoothing
    def forward_augmentation_smoothing(self, input_tensor: torch.Tensor, targets: Any,
                                       eigen_smooth: bool = False) -> torch.Tensor:
        """Test-time augmentation: the maps of the augmented copies (the
        ``tta_transforms``), run ``batch_size`` images at a time,
        de-augmented and averaged (``aug_smoothing.augmentation_smoothing``)."""
        def forward(images: torch.Tensor, chosen: Any) -> tuple[torch.Tensor, Any]:
            return self.forward(images, chosen, eigen_smooth), current_call().outputs

        result, outputs = augmentation_smoothing(forward, self.tta_transforms, self.batch_size,
                                                 input_tensor, targets)
        if outputs is not None:
            self.outputs = outputs
        return result
