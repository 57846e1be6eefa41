from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("fem", class_specific=False)
class FEM(BaseCAM):
    """FEM (Feature Explanation Method): channel means weighting k-sigma masks.

    mu_c, sigma_c = mean and (population) standard deviation of A_c over
    the positions;  B_c(i, j) = 1 if A_c(i, j) >= mu_c + k * sigma_c else 0;
    map = sum_c mu_c * B_c

    Every channel contributes the positions where it responds unusually
    strongly, weighted by its mean activation. Gradient-free and
    class-agnostic (``targets`` is ignored); works for 2D and 3D (video,
    volume) activations.

    Arguments besides those of BaseCAM:
        k: the number of standard deviations of the threshold (2 in the
            paper).

    Fuad, Martin, Giot, Bourqui, Benois-Pineau & Zemmari, "Features
    Understanding in 3D CNNs for Actions Recognition in Video", IPTA 2020,
    https://doi.org/10.1109/IPTA50016.2020.9286629

    This is the paper's definition: binary masks weighted by the channel
    means. grad-cam 1.5.7 instead weights the activations A_c by the
    fraction of positions above the threshold.
    """

    uses_gradients = False

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, k: float = 2.0,
                 **kwargs: Any) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise TypeError(f"k must be a number (standard deviations), got {k!r}")
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.k = float(k)

    def get_weighted_activations(self, input_tensor: torch.Tensor,
                                 target_layer: torch.nn.Module, targets: list[Callable],
                                 activations: torch.Tensor,
                                 grads: torch.Tensor | None) -> torch.Tensor:
        flat = activations.flatten(2)
        means = flat.mean(dim=2)
        stds = flat.std(dim=2, correction=0)
        shape = means.shape + (1,) * (activations.dim() - 2)
        masks = activations >= (means + self.k * stds).reshape(shape)
        return means.reshape(shape) * masks
