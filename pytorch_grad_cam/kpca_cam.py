from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.svd_on_activations import _KERNELS, get_2d_projection_kernel


@register_method("kpcacam", class_specific=False)
class KPCA_CAM(EigenCAM):
    """KPCA-CAM: the activations projected on their first kernel principal component.

    With x_n the C activations at position n (centred over the positions)
    and K(n, m) = k(x_n, x_m) the kernel matrix centred in feature space,
    K = V L V^T;  map(n) = sqrt(l_1) * V_1(n)

    Eigen-CAM (the subclass of ``EigenCAM`` that projects another way)
    with kernel PCA, which can capture non-linear structure in the
    activations. Gradient-free and class-agnostic (``targets`` is
    ignored).

    Arguments besides those of BaseCAM:
        kernel: "sigmoid" (default, as in the paper's experiments), "rbf",
            "poly", "linear" or "cosine".
        gamma: kernel coefficient; None means 1 / channels.

    Karmani et al., "KPCA-CAM: Visual Explainability of Deep Computer
    Vision Models using Kernel PCA", IEEE MMSP 2024,
    https://arxiv.org/abs/2410.00267

    The kernel PCA runs in torch on the model's device; grad-cam 1.5.7 and
    the paper's code call scikit-learn's KernelPCA, whose result and sign
    convention (the value of largest magnitude is positive) this
    reproduces. The cost grows as N^3 in the number of positions N of the
    target layer.
    """

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, kernel: str = "sigmoid",
                 gamma: float | None = None, **kwargs: Any) -> None:
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {kernel!r}")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float))
                                  or gamma <= 0):
            raise ValueError(f"gamma must be a positive number or None, got {gamma!r}")
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.kernel = kernel
        self.gamma = gamma

    def project(self, weighted: torch.Tensor) -> torch.Tensor:
        return get_2d_projection_kernel(weighted, self.kernel, self.gamma)
