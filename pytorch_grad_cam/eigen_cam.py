from collections.abc import Callable

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection


@register_method("eigencam", class_specific=False)
class EigenCAM(BaseCAM):
    """Eigen-CAM: the activations projected on their first principal component.

    With O the N x C matrix of the activations (one row per position),
    O = U S V^T (singular value decomposition);  map = O V_1

    Gradient-free and class-agnostic: the map shows what the layer
    responds to most, whatever the target (``targets`` is ignored). The
    sign of V_1 (arbitrary in an SVD) is chosen so that the map sums to
    >= 0, i.e. V_1 points along the mean activation vector.

    Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal
    Components", IJCNN 2020, https://arxiv.org/abs/2008.00299

    As in the paper, O is factorised as it is. grad-cam 1.5.7 subtracts the
    mean over the positions first (a principal component analysis of the
    centred activations), which is what ``eigen_smooth=True`` of the other
    methods does.

    The variants (Eigen-Grad-CAM, KPCA-CAM) are subclasses: they weigh the
    activations before the projection (``weigh``) or project another way
    (``project``).
    """

    uses_gradients = False

    projects = True

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        # every channel as it is: O is the activations themselves
        return activations.new_ones(activations.shape[:2])

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        return get_2d_projection(weighted, center=False)
