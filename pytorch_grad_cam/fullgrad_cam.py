from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.warn import warn_at_caller

_CONVOLUTIONS = (torch.nn.Conv2d, torch.nn.Conv3d)
_BATCH_NORMS = (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
_MODES = {2: "bilinear", 3: "trilinear"}


def bias_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules whose bias FullGrad explains: 2D/3D convolutions with a
    bias, and 2D/3D batch norms with running statistics (in eval mode their
    implicit bias is beta - mu * gamma / sqrt(var + eps))."""
    layers: list[torch.nn.Module] = []
    for module in model.modules():
        has_bias = isinstance(module, _CONVOLUTIONS) and module.bias is not None
        has_statistics = isinstance(module, _BATCH_NORMS) and module.running_mean is not None
        if has_bias or has_statistics:
            layers.append(module)
    return layers


def layer_bias(layer: torch.nn.Module) -> torch.Tensor:
    """The bias a layer adds to every position of each output channel."""
    norm: Any = layer  # the statistics are tensors here (bias_layers checked them)
    if isinstance(layer, _BATCH_NORMS):
        scale = torch.rsqrt(norm.running_var + norm.eps)
        weight = norm.weight if norm.weight is not None else torch.ones_like(scale)
        bias = norm.bias if norm.bias is not None else torch.zeros_like(scale)
        return (bias - norm.running_mean * weight * scale).detach()
    return norm.bias.detach()


def _rescaled_channel_sum(tensor: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """psi of every channel (absolute value, min-max rescaling to [0, 1]),
    summed over the channels and upsampled to ``size``. Upsampling is
    linear, so summing first and upsampling once is the same as upsampling
    every channel."""
    flat = tensor.abs().flatten(2)
    low = flat.amin(dim=2, keepdim=True)
    high = flat.amax(dim=2, keepdim=True)
    rescaled = ((flat - low) / (high - low + 1e-7)).sum(dim=1).reshape(
        (tensor.shape[0],) + tuple(tensor.shape[2:]))
    if tuple(rescaled.shape[1:]) != tuple(size):
        rescaled = F.interpolate(rescaled[:, None], size=tuple(size),
                                 mode=_MODES[len(size)], align_corners=False)[:, 0]
    return rescaled


@register_method("fullgrad")
class FullGrad(BaseCAM):
    """FullGrad: input-gradient plus the bias-gradients of every layer.

    ::

        S(x) = psi(|df/dx * x|) + sum_l sum_c psi(|df/dz_l,c * b_l,c|)

    where z_l is the output of layer l, b_l its (per-channel) bias and psi
    rescales each channel's map to [0, 1] and upsamples it to the input
    size; the channels of the input term are summed too.

    The bias-gradients complete the input-gradient: together they add up
    to the score (the full-gradient decomposition of the paper), so
    FullGrad explains the whole network, not one layer.

    ``target_layers`` are not used: the layers are every 2D/3D convolution
    with a bias and every 2D/3D batch norm with running statistics
    (``bias_layers(model)``), found when the object is made; giving
    ``target_layers`` or a ``reshape_transform`` only raises a warning that
    they are ignored (after the same checks as every method's), so that
    FullGrad can be made like every other method. Every call of such a
    layer in the forward pass adds its own term (a module used twice
    counts twice, as in the unrolled network); a layer that the forward
    pass does not call adds nothing, and a network without such layers is
    explained by the input term alone (for a bias-free ReLU network
    df/dx * x sums to the score). The layers' outputs are recorded by the
    same per-call hooks as every method's, and the gradients with respect
    to them and to the input come from one ``torch.autograd.grad`` call
    (``compute_input_gradient``): no parameter gets a ``.grad``.
    ``eigen_smooth=True`` projects the maps of the input and the layers on
    their first principal component.

    Srinivas & Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", NeurIPS 2019, https://arxiv.org/abs/1905.00780

    psi rescales every channel separately, as Eq. 6 of the paper writes it
    and grad-cam 1.5.7 does; the authors' code rescales each layer as a
    whole. The batch-norm biases are read at every call (grad-cam 1.5.7
    reads them once, when the object is made).
    """

    uses_target_layers = False

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, **kwargs: Any) -> None:
        kwargs["compute_input_gradient"] = True
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        if target_layers is not None or reshape_transform is not None:
            warn_at_caller("FullGrad ignores target_layers and reshape_transform: it explains "
                           "the input-gradient and the bias-gradients of every convolution and "
                           "batch norm of the model", UserWarning)
        self.target_layers = bias_layers(self.model)
        self.reshape_transform = None
        self.activations_and_grads = ActivationsAndGradients(self.model, self.target_layers,
                                                             every_call=True)

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: list[Callable],
                              activations: list[torch.Tensor],
                              grads: list[torch.Tensor | None],
                              eigen_smooth: bool) -> torch.Tensor:
        size = tuple(input_tensor.shape[2:])
        spatial = len(size)
        call = current_call()
        input_gradient, recording = call.input_gradient, call.recording
        assert input_gradient is not None  # compute_input_gradient is set in __init__
        assert recording is not None  # forward() recorded the pass
        parts = [_rescaled_channel_sum(input_gradient.float() * input_tensor.float(), size)]
        for index, grad in zip(recording.recorded_layers, grads):
            assert grad is not None  # uses_gradients: every layer has its gradient
            if grad.dim() != spatial + 2:
                continue  # a layer of the other dimensionality (2D vs 3D)
            bias = layer_bias(self.target_layers[index]).to(device=grad.device, dtype=torch.float32)
            parts.append(_rescaled_channel_sum(grad.float() * bias.reshape((1, -1) + (1,) * spatial),
                                               size))
        maps = torch.stack(parts, dim=1)  # B x (1 + layers) x size
        if eigen_smooth:
            return torch.relu(self.project(maps))[:, None]
        return maps
