"""IS-CAM: integrated Score-CAM."""
from typing import Any

import torch

from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.sscam import SampledScoreCAM


@register_method("iscam", sampling=True)
class ISCAM(SampledScoreCAM):
    """IS-CAM: Score-CAM with channel scores integrated along the path from
    the empty mask to the full mask.

    s_k = (1 / N) sum_{i=1..N} Y(X * (i / N) * M_k);
    weights = softmax_k(s_k);  map = ReLU(sum_k weights_k * A_k)

    with M_k the channel's activation upsampled and normalised to [0, 1]
    as in ScoreCAM: a Riemann sum of the score along the straight path
    from the zero mask to M_k, the integration of Integrated Gradients
    brought to Score-CAM. With ``n_samples=1`` it is ScoreCAM.

    Naidu, Ghosh, Maurya, Nayak, Kundu, "IS-CAM: Integrated Score-CAM for
    axiomatic-based explanations", 2020, https://arxiv.org/abs/2010.03023

    torchcam's ISCAM multiplies the masks by the running sums
    1/N, 1/N + 2/N, ..., which grow past 1 (up to (N + 1) / 2); here the
    path ends at the mask itself, so every step stays between the empty
    and the full mask.

    Arguments besides those of BaseCAM:
        n_samples: N, the number of steps of the path (default 10); the
            cost is N times that of ScoreCAM.
        seed: accepted for symmetry with SSCAM; IS-CAM draws no noise.

    """

    progress_label = "ISCAM"

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None, *args: Any,
                 n_samples: int = 10, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(model, target_layers, *args, n_samples=n_samples, seed=seed, **kwargs)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor,
                context: Any) -> torch.Tensor:
        steps = (samples + 1).to(images.dtype) / self.n_samples
        return images * masks * steps.reshape((-1,) + (1,) * (images.dim() - 1))
