"""SS-CAM (smoothed Score-CAM) and the sampling machinery it shares with IS-CAM."""
import numbers

import torch
import torch.nn.functional as F

from pytorch_grad_cam.score_cam import ScoreCAM

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed must be an int, got {value!r}")
    return int(value)


class SampledScoreCAM(ScoreCAM):
    """Score-CAM whose channel score is a mean over ``n_samples`` perturbed
    versions of the masked input (the base of SSCAM and ISCAM).

    s_k = (1 / N) sum_j Y(perturb_j(X, M_k));  weights = softmax_k(s_k)

    with M_k the channel's activation upsampled to the input size and
    normalised to [0, 1] exactly as in ScoreCAM. A subclass defines
    :meth:`perturb`. Every (image, channel, sample) input is built lazily,
    ``batch_size`` at a time; the channels that are constant over an image
    (all-zero masks) share one input per (image, sample).
    """

    #: used in the progress bar
    progress_label = "SampledScoreCAM"

    def __init__(self, model, target_layers=None, *args, n_samples: int = 10, seed: int = 0,
                 **kwargs):
        self.n_samples = _check_count("n_samples", n_samples)
        self.seed = _check_seed(seed)
        super().__init__(model, target_layers, *args, **kwargs)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor,
                context) -> torch.Tensor:
        """The model inputs for rows of (image, mask, sample index).

        ``images`` is n x C x ..., ``masks`` n x 1 x ... in [0, 1] (zero for
        constant channels), ``samples`` the n sample indices in
        ``0 .. n_samples - 1``, ``context`` what :meth:`prepare` returned."""
        raise NotImplementedError

    def prepare(self, input_tensor: torch.Tensor):
        """Called once per target layer before the masked passes; the value
        it returns is handed to every :meth:`perturb` call (for example
        the noise)."""
        return None

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        batch, channels = activations.shape[:2]
        size = tuple(input_tensor.shape[2:])
        device = activations.device
        samples = self.n_samples
        flat = activations.flatten(2)
        low, high = flat.amin(dim=2), flat.amax(dim=2)
        varying = high > low  # B x C
        item_image, item_channel = varying.nonzero(as_tuple=True)
        constant_images = (~varying).any(dim=1).nonzero().flatten()
        # work list: every varying channel, then one all-zero mask per image
        # that has constant channels; each of them n_samples times
        pair_image = torch.cat([item_image, constant_images])
        pair_channel = torch.cat([item_channel, torch.full_like(constant_images, -1)])
        owners = pair_image.repeat_interleave(samples)
        context = self.prepare(input_tensor)

        def make_inputs(start: int, stop: int) -> torch.Tensor:
            index = torch.arange(start, stop, device=device)
            pair, sample = index // samples, index % samples
            b, k = pair_image[pair], pair_channel[pair]
            kk = k.clamp_min(0)
            # upsampled first, then min-max normalised, as ScoreCAM does
            masks = F.interpolate(activations[b, kk][:, None], size=size,
                                  mode=_MODES[len(size)], align_corners=True)
            flat_masks = masks.flatten(1)
            low_up, high_up = torch.aminmax(flat_masks, dim=1)
            scale = (k >= 0) / (high_up - low_up).clamp_min(1e-12)  # 0: the zero mask
            masks = ((flat_masks - low_up[:, None]) * scale[:, None]).reshape(masks.shape)
            return self.perturb(input_tensor[b], masks, sample, context).to(input_tensor.dtype)

        scores = self.perturbed_scores(len(owners), make_inputs, owners, targets,
                                       self.progress_label)
        scores = scores.reshape(-1, samples).mean(dim=1)
        table = torch.zeros(batch, channels, dtype=torch.float32, device=device)
        table[item_image, item_channel] = scores[:len(item_image)]
        zero_mask_score = torch.zeros(batch, dtype=torch.float32, device=device)
        zero_mask_score[constant_images] = scores[len(item_image):]
        table = torch.where(varying, table, zero_mask_score[:, None])
        return torch.softmax(table, dim=1)


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

    Args (besides those of BaseCAM):
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

    def __init__(self, model, target_layers=None, *args, n_samples: int = 35,
                 noise_std: float = 2.0, noise_on: str = "mask", seed: int = 0, **kwargs):
        if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real):
            raise TypeError(f"noise_std must be a non-negative number, got {noise_std!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
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

    def prepare(self, input_tensor):
        return self.noise(input_tensor)

    def perturb(self, images, masks, samples, context):
        delta = context[samples]
        if self.noise_on == "mask":
            return images * (masks + delta)
        return (images + delta) * masks
