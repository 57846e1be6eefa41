"""Score-CAM, and the channel-scoring loop that SS-CAM and IS-CAM share
with it (they are Score-CAM with several perturbed samples per channel)."""
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.registry import register_method

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


@register_method("scorecam", perturbation=True)
class ScoreCAM(BaseCAM):
    """Score-CAM: channels weighted by the score of the input masked with them.

    M_k = normalise(upsample(A_k)) to [0, 1];  s_k = Y(X * M_k);
    weights = softmax_k(s_k);  map = ReLU(sum_k weights_k * A_k)

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for
    Convolutional Neural Networks", CVPR Workshops 2020,
    https://arxiv.org/abs/1910.01279

    M_k is upsampled first (bilinear, aligned corners, as the established
    implementation does), then min-max normalised, as in the paper: an
    extreme activation need not fall on an upsampled pixel. The masked
    inputs are built lazily, ``batch_size`` at a time (images of a batch
    share chunks), and run under ``torch.inference_mode``.

    ``constant_channel_shortcut=True`` (default): a channel that is constant
    over the image normalises to an all-zero mask, so all such channels of
    an image share one forward pass of the zero input (exact, and common:
    after a ReLU many channels of a trained network are all zero).

    Subclasses (SSCAM, ISCAM) score each channel ``n_samples`` times,
    with the model input of every sample made by :meth:`perturb`; the
    channel's score is the mean over its samples. Score-CAM is the case of
    one sample, ``perturb = X * M_k``.
    """

    uses_gradients = False
    #: samples per channel (1 for Score-CAM)
    n_samples = 1
    #: used in the progress bar
    progress_label = "ScoreCAM"

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None,
                 constant_channel_shortcut: bool = True, **kwargs: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.constant_channel_shortcut = bool(constant_channel_shortcut)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, samples: torch.Tensor,
                context: Any) -> torch.Tensor:
        """The model inputs for rows of (image, mask, sample index).

        ``images`` is n x C x ..., ``masks`` n x 1 x ... in [0, 1] (zero for
        constant channels), ``samples`` the n sample indices in
        ``0 .. n_samples - 1``, ``context`` what :meth:`prepare` returned."""
        return images * masks

    def prepare(self, input_tensor: torch.Tensor) -> Any:
        """Called once per target layer before the masked passes; the value
        it returns is handed to every :meth:`perturb` call (for example
        the noise)."""
        return None

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        # the rows of an image explained for K targets share its input and
        # activations: the masked passes run once per image, scored for all K
        group = current_call().group
        activations, input_tensor = activations[::group], input_tensor[::group]
        batch, channels = activations.shape[:2]
        size = tuple(input_tensor.shape[2:])
        device = activations.device
        samples = self.n_samples
        flat = activations.flatten(2)
        varying = flat.amax(dim=2) > flat.amin(dim=2)  # B x C
        if not self.constant_channel_shortcut:
            varying = torch.ones_like(varying)
        item_image, item_channel = varying.nonzero(as_tuple=True)
        constant_images = (~varying).any(dim=1).nonzero().flatten()
        # work list: every varying channel, then one all-zero mask per image
        # that has constant channels (channel index -1); each n_samples times
        pair_image = torch.cat([item_image, constant_images])
        pair_channel = torch.cat([item_channel, torch.full_like(constant_images, -1)])
        owners = pair_image.repeat_interleave(samples) if samples > 1 else pair_image
        context = self.prepare(input_tensor)

        def make_inputs(start: int, stop: int) -> torch.Tensor:
            index = torch.arange(start, stop, device=device)
            pair, sample = index // samples, index % samples
            b, k = pair_image[pair], pair_channel[pair]
            # upsampled first, then min-max normalised
            masks = F.interpolate(activations[b, k.clamp_min(0)][:, None], size=size,
                                  mode=_MODES[len(size)], align_corners=True)
            flat_masks = masks.flatten(1)
            low, high = torch.aminmax(flat_masks, dim=1)
            scale = (k >= 0) / (high - low).clamp_min(1e-12)  # 0: the zero mask
            masks = ((flat_masks - low[:, None]) * scale[:, None]).reshape(masks.shape)
            masks = masks.to(input_tensor.dtype)
            return self.perturb(input_tensor[b], masks, sample, context).to(input_tensor.dtype)

        scores = self.perturbed_scores(len(owners), make_inputs, owners, targets,
                                       self.progress_label, group)  # pass x target
        if samples > 1:
            scores = scores.reshape(-1, samples, group).mean(dim=1)
        table = torch.zeros(batch, channels, group, dtype=torch.float32, device=device)
        table[item_image, item_channel] = scores[:len(item_image)]
        zero_mask_score = torch.zeros(batch, group, dtype=torch.float32, device=device)
        zero_mask_score[constant_images] = scores[len(item_image):]
        table = torch.where(varying[:, :, None], table, zero_mask_score[:, None])
        # image x channel x target -> rows (image, target) x channel
        return torch.softmax(table.transpose(1, 2).flatten(0, 1), dim=1)
