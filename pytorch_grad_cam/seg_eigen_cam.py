import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction


@register_method("segeigencam")
class SegEigenCAM(BaseCAM):
    """Seg-Eigen-CAM: principal component of ``|gradient|`` x activation, sign-corrected.

    With P an N x C matrix (one row per position), centred over the
    positions::

        P(i, j)_k = |dY/dA_k(i, j)| * A_k(i, j);  P = U S V^T;  m = P V_1;
        map = ReLU(-m) if |min m| > |max m| else ReLU(m)

    Made for semantic segmentation (use SemanticSegmentationTarget): the
    absolute gradients keep the pixel-wise spatial information of both
    positive and negative gradients, and the sign correction (Eq. 13 of the
    paper) resolves the sign ambiguity of the singular vector so that the
    salient region is positive.

    Chung & Ying, "Seg-Eigen-CAM: Eigen-Value-Based Visual Explanations for
    Semantic Segmentation Models", Applied Sciences 15(13), 7562, 2025,
    https://doi.org/10.3390/app15137562
    """

    projects = True

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.abs() * activations

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        return get_2d_projection_with_sign_correction(weighted)
