import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.warn import warn_at_caller


@register_method("hirescam")
class HiResCAM(BaseCAM):
    """HiResCAM: the gradients multiply the activations element by element.

    map(i, j) = ReLU(sum_k dY/dA_k(i, j) * A_k(i, j))

    Unlike Grad-CAM, which averages the gradients over the positions first,
    this map is exactly the contribution of each position to the score
    when the rest of the network after the target layer is linear (for
    example global average pooling followed by a linear classifier).

    Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful
    explanations of convolutional neural networks", 2020,
    https://arxiv.org/abs/2011.08891
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads * activations

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        warn_at_caller("HiResCAM with eigen_smooth=True: the map is the principal component "
                       "of the gradient x activation products, for which HiResCAM's "
                       "faithfulness guarantee no longer holds", UserWarning)
        return super().project(weighted)
