from collections.abc import Callable

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("gradcam++")
class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++: gradients weighted per location by second/third order terms.

    alpha_k(i, j) = g^2 / (2 g^2 + sum_ab A_k(a, b) * g^3)   (0 where the
    denominator is 0), with g = dY/dA_k(i, j) and the exponential-score
    approximation of the paper;
    weights_k = sum_ij alpha_k(i, j) * ReLU(g(i, j)).

    Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep
    Convolutional Networks", WACV 2018, https://arxiv.org/abs/1710.11063
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        assert grads is not None  # uses_gradients: the base step passes the gradients
        grads_2 = grads.pow(2)
        return plusplus_weights(activations, grads, grads_2, grads_2 * grads)


def plusplus_weights(activations: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor,
                     d3: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s B x C weights from the first, second and third powers
    of the gradients (or, in Smooth Grad-CAM++, their means over noisy
    copies): alpha = d2 / (2 d2 + sum_ab A(a, b) * d3) where d2 > 0 (else
    0); weights = sum_ij alpha * ReLU(d1)."""
    sum_activations = activations.flatten(2).sum(dim=2)
    sum_activations = sum_activations.reshape(sum_activations.shape + (1,) * (d1.dim() - 2))
    alpha = d2 / (2 * d2 + sum_activations * d3 + 1e-6)
    alpha = torch.where(d2 > 0, alpha, torch.zeros_like(alpha))
    return (alpha * torch.relu(d1)).flatten(2).sum(dim=2)
