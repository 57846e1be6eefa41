"""``BaseCAM.differentiable_maps``: the maps of a call as a torch tensor
that carries the autograd graph, for losses on the maps during training.

It runs BaseCAM's pipeline (``base_cam``) in a call context marked
``differentiable``: the gradients of the target scores are taken with
``create_graph=True`` and nothing is detached, so the maps stay a
differentiable function of the model's parameters (and of the input, when
it requires grad).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from pytorch_grad_cam.call_context import CallContext, open_call
from pytorch_grad_cam.legacy import LEGACY
from pytorch_grad_cam.registry import registered_methods

__all__ = ["DifferentiableMaps"]


class _Pipeline(Protocol):
    """What ``differentiable_maps`` runs: BaseCAM's steps."""

    differentiable: bool

    def _start_call(self, input_tensor: Any, targets: Any, aug_smooth: bool,
                    target_category: Any, options: dict[str, Any]
                    ) -> tuple[CallContext, torch.Tensor, Any]: ...

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor: ...

    def forward_augmentation_smoothing(self, input_tensor: torch.Tensor, targets: Any,
                                       eigen_smooth: bool = False) -> torch.Tensor: ...


class DifferentiableMaps:
    """BaseCAM's ``differentiable_maps`` (a mixin of
    :class:`~pytorch_grad_cam.base_cam.BaseCAM`, whose steps it runs)."""

    def differentiable_maps(self: _Pipeline, input_tensor: torch.Tensor,
                            targets: Sequence[Callable] | None = None,
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
                                                          LEGACY, options)
        context.differentiable = True
        with open_call(context), torch.inference_mode(False), torch.enable_grad():
            if isinstance(given_input, torch.Tensor) and given_input.requires_grad:
                # the caller wants the graph to reach the input too
                input_tensor = given_input.to(device=input_tensor.device,
                                              dtype=input_tensor.dtype)
            if aug_smooth:
                return self.forward_augmentation_smoothing(input_tensor, targets)
            return self.forward(input_tensor, targets)
