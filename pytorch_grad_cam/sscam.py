"""SS-CAM (smoothed Score-CAM) and the base of the sampled Score-CAMs."""
from typing import Any

import torch

from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.score_cam import ScoreCAM
from pytorch_grad_cam.scoring import check_non_negative, check_positive_int, check_seed


class SampledScoreCAM(ScoreCAM):
    """Score-CAM whose channel score is a mean over ``n_samples`` perturbed
    versions of the masked input (the base of SSCAM and ISCAM).

    s_k = (1 / N) sum_j Y(perturb_j(X, M_k));  weights = softmax_k(s_k)

    with M_k the channel's activation upsampled to the input size and
    normalised to [0, 1] exactly as in ScoreCAM, whose loop this is. A
    subclass defines :meth:`perturb`. Every (image, channel, sample) input
    is built lazily, ``batch_size`` at a time; the channels that are
    constant over an image (all-zero masks) share one input per (image,
    sample).
    """

    progress_label = "SampledScoreCAM"

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 *args: Any, n_samples: int = 10, seed: int = 0, **kwargs: Any) -> None:
        self.n_samples = check_positive_int("n_samples", n_samples)
        self.seed = check_seed(seed)
        super().__init__(model, target_layers, *args, **kwargs)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor,
                context: Any) -> torch.Tensor:
        raise NotImplementedError


@register_method("sscam", sampling=True)
class SSCAM(SampledScoreCAM):
    """SS-CAM: Score-CAM with channel scores averaged over noisy masks.

    s_k = (1 / N) sum_{j=1..N} Y(X * (M_k + delta_j))        (noise_on="mask")
    s_k = (1 / N) sum_{j=1..N} Y((X + delta_j) * M_k)        (noise_on="input")
    weights = softmax_k(s_k);  map = ReLU(sum_k weights_k * A_k)

    with M_k the channel's activation upsampled and normalised to [0, 1]
    (as in ScoreCAM) and delta_j ~ N(0, noise_std^2) drawn per pixel.

    Wang, Naidu, Michael, Kundu, "SS-CAM: Smoothed Score-CAM for Sharper
    Visual Feature Localization", 2020, https://arxiv.org/abs/2006.14255
    (the paper smooths either the masks or the input; ``noise_on`` picks).

    Arguments besides those of BaseCAM:
        n_samples: N, noisy samples per channel (default 35, as in the
            paper); the cost is N times that of ScoreCAM.
        noise_std: sigma of the Gaussian noise (default 2.0, as in the
            paper), in units of the mask (noise_on="mask") or of the model
            input (noise_on="input").
        noise_on: "mask" or "input".
        seed: the noise is deterministic: delta_j is slice j of
            ``torch.randn((N, 1 or C, *spatial), generator=
            torch.Generator().manual_seed(seed)) * noise_std``, the same
            for every image and channel (so a batch gives the maps of its
            images computed one by one, and each channel is scored under the
            same noise draws).

    """

    progress_label = "SSCAM"

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None, *args: Any,
                 n_samples: int = 35, noise_std: float = 2.0, noise_on: str = "mask",
                 seed: int = 0, **kwargs: Any) -> None:
        noise_std = check_non_negative("noise_std", noise_std)
        if noise_on not in ("mask", "input"):
            raise ValueError(f"noise_on must be 'mask' or 'input', got {noise_on!r}")
        self.noise_std = float(noise_std)
        self.noise_on = noise_on
        super().__init__(model, target_layers, *args, n_samples=n_samples, seed=seed, **kwargs)

    def noise(self, input_tensor: torch.Tensor) -> torch.Tensor:
        """The N noise fields delta_j for inputs shaped like ``input_tensor``
        (N x 1 x spatial for masks, N x C x spatial for inputs)."""
        channels = 1 if self.noise_on == "mask" else input_tensor.shape[1]
        generator = torch.Generator().manual_seed(self.seed)
        shape = (self.n_samples, channels) + tuple(input_tensor.shape[2:])
        noise = torch.randn(shape, generator=generator, dtype=torch.float32) * self.noise_std
        return noise.to(device=input_tensor.device, dtype=input_tensor.dtype)

    def prepare(self, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.noise(input_tensor)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor,
                context: Any) -> torch.Tensor:
        delta = context[samples]
        if self.noise_on == "mask":
            return images * (masks + delta)
        return (images + delta) * masks
