import torch

from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.registry import register_method


@register_method("eigengradcam")
class EigenGradCAM(EigenCAM):
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

    uses_gradients = True

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads * activations
