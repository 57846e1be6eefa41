from collections.abc import Callable

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("gradcam")
class GradCAM(BaseCAM):
    """Grad-CAM: channels weighted by their spatially averaged gradient.

    weights_k = mean_ij dY/dA_k(i, j);  map = ReLU(sum_k weights_k * A_k)

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        assert grads is not None  # uses_gradients: the base step passes the gradients
        return grads.flatten(2).mean(dim=2)
