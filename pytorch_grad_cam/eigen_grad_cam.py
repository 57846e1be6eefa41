from typing import Callable, List, Optional

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection
from pytorch_grad_cam.registry import register_method


@register_method("eigengradcam")
class EigenGradCAM(BaseCAM):
    """Eigen-Grad-CAM: Eigen-CAM of the gradient x activation products.

    P(i, j)_k = dY/dA_k(i, j) * A_k(i, j) as an N x C matrix (one row per
    position), P = U S V^T;  map = ReLU(P V_1)

    The gradients make the principal component class-specific. The sign of
    V_1 is chosen so that the map sums to >= 0 (V_1 points along the mean
    row of P). A variant introduced by the
    pytorch-grad-cam library (https://github.com/jacobgil/pytorch-grad-cam)
    combining Eigen-CAM (Muhammad & Yeasin 2020,
    https://arxiv.org/abs/2008.00299) with the gradients; there is no
    separate paper. Like our EigenCAM, and as in the Eigen-CAM paper, P is
    factorised without subtracting its mean (grad-cam 1.5.7 centres it).
    """

    projects = True

    def get_weighted_activations(self, input_tensor: torch.Tensor,
                                 target_layer: torch.nn.Module, targets: List[Callable],
                                 activations: torch.Tensor,
                                 grads: Optional[torch.Tensor]) -> torch.Tensor:
        assert grads is not None  # uses_gradients: the base step passes the gradients
        return grads * activations

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        return get_2d_projection(weighted, center=False)
