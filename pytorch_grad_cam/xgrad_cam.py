from collections.abc import Callable

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("xgradcam")
class XGradCAM(BaseCAM):
    """XGrad-CAM: gradients weighted by the normalised activations.

    weights_k = sum_ij (A_k(i, j) / (sum_ab A_k(a, b) + eps)) * dY/dA_k(i, j)

    Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and
    Explanation of CNNs", BMVC 2020, https://arxiv.org/abs/2008.02312
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        assert grads is not None  # uses_gradients: the base step passes the gradients
        sum_activations = activations.flatten(2).sum(dim=2)
        return (grads * activations).flatten(2).sum(dim=2) / (sum_activations + 1e-7)
