import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("layercam")
class LayerCAM(BaseCAM):
    """LayerCAM: every activation is weighted by its own positive gradient.

    map(i, j) = ReLU(sum_k ReLU(dY/dA_k(i, j)) * A_k(i, j))

    The per-position weights keep the fine detail of shallow layers, so
    LayerCAM also gives usable maps for early target layers.

    Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps
    for Localization", IEEE TIP 2021, https://ieeexplore.ieee.org/document/9462463

    Several target layers are combined like every method's (each map
    normalised, then averaged); the paper's optional tanh rescaling of
    shallow-layer maps before fusing them is not applied.
    """

    differentiable = True  # differentiable_maps(): the map carries the autograd graph

    def weigh(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return torch.relu(grads) * activations
