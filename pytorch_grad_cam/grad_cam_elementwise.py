import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("gradcamelementwise")
class GradCAMElementWise(BaseCAM):
    """Element-wise Grad-CAM: HiResCAM with a ReLU on every product.

    map(i, j) = sum_k ReLU(dY/dA_k(i, j) * A_k(i, j))

    Only positive contributions of every channel at every position are
    kept before summing, so negative evidence in one channel cannot cancel
    positive evidence in another. A variant introduced by the
    pytorch-grad-cam library (J. Gildenblat and contributors,
    https://github.com/jacobgil/pytorch-grad-cam), building on HiResCAM
    (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891); there is no
    separate paper.
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return torch.relu(grads * activations)
