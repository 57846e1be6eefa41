from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import check_seed


@register_method("randomcam", class_specific=False, randomised=True)
class RandomCAM(BaseCAM):
    """Random-CAM: channels weighted by random numbers, a baseline for metrics.

    weights_k ~ Uniform(-1, 1) independently per channel;
    map = ReLU(sum_k weights_k * A_k)

    A sanity check for evaluation metrics: a faithful metric should score
    every real method above it. Not an explanation; no gradients.

    The weights of a call are the same for every image of the batch, so an
    image's map does not depend on the images next to it, and the
    augmented copies of ``aug_smooth`` are weighted alike.

    Arguments besides those of BaseCAM:
        seed: every call draws the weights from its own generator seeded
            with it (default 0), so the same inputs give the same map and
            torch's global random state is left alone; None draws from
            torch's global random generator (every call differs).

    From the pytorch-grad-cam library (https://github.com/jacobgil/pytorch-grad-cam);
    randomised baselines for saliency maps follow Adebayo et al., "Sanity
    Checks for Saliency Maps", NeurIPS 2018, https://arxiv.org/abs/1810.03292
    """

    uses_gradients = False

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None,
                 seed: int | None = 0, **kwargs: Any) -> None:
        seed = check_seed(seed, allow_none=True)
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.seed = seed

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=activations.device).manual_seed(self.seed)
        batch, channels = activations.shape[:2]
        draws = torch.rand(channels, generator=generator, device=activations.device)
        return (draws * 2 - 1).expand(batch, channels)
