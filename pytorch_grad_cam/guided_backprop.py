"""Guided backpropagation (Springenberg et al., "Striving for Simplicity:
The All Convolutional Net", ICLR 2015 workshop, https://arxiv.org/abs/1412.6806).

At every ReLU the backward pass keeps only positive gradients at positive
inputs: R_in = (x > 0) * ReLU(R_out). The model's own ReLU modules are
wrapped for the duration of a call and put back afterwards (the same
objects, with their own ``inplace`` flags), also when an exception is
raised.
"""
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.activations_and_gradients import hook_handles, owned_hooks
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.scoring import (
    check_targets,
    model_device,
    prepare_input,
    resolve_targets,
    select_output,
    target_scores,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

GUIDED_ACTIVATIONS = (torch.nn.ReLU, torch.nn.ReLU6)


class _PositiveGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output.clamp(min=0)


class GuidedBackpropReLU(torch.nn.Module):
    """Wraps an activation module: forward unchanged, backward passes only
    positive gradients (the activation's own backward adds the x > 0 gate)."""

    def __init__(self, activation: torch.nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PositiveGradient.apply(self.activation(x))


# the established name
GuidedBackpropReLUasModule = GuidedBackpropReLU


@contextmanager
def guided_relus(model: torch.nn.Module) -> Iterator[None]:
    """Inside the block, every ReLU/ReLU6 module of the model passes only
    positive gradients back, in this thread's forward passes.

    A forward hook on each activation module applies the positive-gradient
    function to its output (the activation's own backward adds the x > 0
    gate); the modules themselves stay where they are, and the forward
    passes of other threads through them are untouched."""
    with owned_hooks() as mine, hook_handles() as handles:

        def guide(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
            if not mine() or not isinstance(output, torch.Tensor):
                return None
            return _PositiveGradient.apply(output)

        for module in model.modules():
            if isinstance(module, GUIDED_ACTIVATIONS):
                handles.append(module.register_forward_hook(guide))
        yield


class GuidedBackpropReLUModel:
    """Guided backpropagation of the target score to the input pixels.

    Args:
        model: the network.
        device: where to run (the model is moved there, as in the
            established API); default the model's own device. The seed's
            boolean ``use_cuda`` (in this position or as ``use_cuda=``)
            still works, with a DeprecationWarning.
        output_selector: picks the score tensor from a model output that is
            not a tensor (default: ``.logits`` of dicts and ModelOutputs,
            the first element of tuples), as for the CAM methods.

    Calling it with a batch returns the guided gradients as float32 numpy,
    B x H x W x C; for a batch of one image H x W x C (the established
    return value, so ``deprocess_image(cam_mask * gb)`` keeps working).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | bool | None = None,
                 output_selector: Callable | None = None, *,
                 use_cuda: bool | None = None) -> None:
        if output_selector is not None and not callable(output_selector):
            raise TypeError(f"output_selector must be callable or None, "
                            f"got {type(output_selector).__name__}")
        self.output_selector = output_selector
        if use_cuda is not None:
            if device is not None:
                raise ValueError("pass either device= or the deprecated use_cuda=, not both "
                                 f"(got device={device!r}, use_cuda={use_cuda!r})")
            device = bool(use_cuda)
        if isinstance(device, bool):
            warnings.warn("GuidedBackpropReLUModel(model, use_cuda) is deprecated; pass a "
                          "device ('cpu', 'cuda') or nothing", DeprecationWarning, stacklevel=2)
            if device and not torch.cuda.is_available():
                warnings.warn("use_cuda=True but CUDA is not available; running on the CPU",
                              RuntimeWarning, stacklevel=2)
            device = "cuda" if device and torch.cuda.is_available() else None
        self.model = model
        if device is not None:
            self.model = model.to(device)
        self.device = model_device(self.model)

    def forward(self, input_img: torch.Tensor) -> Any:
        return self.model(input_img)

    def __call__(self, input_img: torch.Tensor,
                 target_category: int | Sequence[int] | None = None,
                 targets: Sequence[Callable] | None = None) -> np.ndarray:
        x = prepare_input(input_img, self.model, "input_img", volumes=False)
        batch = x.shape[0]
        if targets is None and target_category is not None:
            categories: list[Any] = (list(target_category)
                                     if isinstance(target_category, (list, tuple))
                                     else [target_category] * batch)
            targets = [ClassifierOutputTarget(int(c)) for c in categories]
        targets = check_targets(targets, batch)
        with torch.inference_mode(False):
            x = x.clone().requires_grad_(True)
            with model_state_guard(self.model), guided_relus(self.model), torch.enable_grad():
                output = select_output(self.model(x), self.output_selector)
                targets = resolve_targets(targets, output)
                scores = target_scores(targets, output)
                (grad,) = torch.autograd.grad(scores.sum(), x)
        result = grad.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        return result[0] if batch == 1 else result
