"""How AblationCAM ablates a channel of the target layer's output.

``AblationCAM(..., ablation_layer=AblationLayerVit())`` keeps working as
in the established API; by default the channel axis is found from the
layer's output and the reshape transform, so passing one is optional.
``AblationLayerFasterRCNN()`` is grad-cam 1.5.7's ablation of a Faster
R-CNN feature pyramid (with ``fasterrcnn_reshape_transform``).
"""
import math

import numpy as np
import torch

from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection


class AblationLayer:
    """Channels on axis ``channel_dim`` of the layer's raw output (axis 1 for
    B x C x H x W feature maps) are set to ``value`` (0 by default, the
    paper's definition).

    For a layer that returns a dict, tuple or list of feature maps (a
    feature pyramid), the channels are those of the reshape transform's
    result, which concatenates the levels: channel k is ablated in the
    level it comes from (``utils.reshape_transforms``).
    """

    channel_dim = 1

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def select_channels(self, activations: torch.Tensor, means: torch.Tensor,
                        ratio: float) -> torch.Tensor:
        """B x C bool: the channels to ablate with ``ratio_channels_to_ablate
        = ratio`` < 1; the others get weight 0. ``activations`` are the
        B x C x H x W maps (after the reshape transform), ``means`` each
        channel's mean over the raw output (B x C).

        Default: the ``ceil(ratio * C)`` channels with the largest mean
        activation."""
        keep = max(1, math.ceil(ratio * means.shape[1]))
        top = means.topk(keep, dim=1).indices
        return torch.zeros(means.shape, dtype=torch.bool, device=means.device).scatter_(1, top,
                                                                                       True)


class AblationLayerVit(AblationLayer):
    """Token outputs B x N x C of Vision Transformers: the channels are the
    last axis."""

    channel_dim = -1


class AblationLayerFasterRCNN(AblationLayer):
    """grad-cam 1.5.7's ablation of the feature pyramid of torchvision's
    Faster R-CNN (target layer ``model.backbone``, reshape transform
    ``fasterrcnn_reshape_transform``): channel k of the combined maps,
    channel ``k % 256`` of pyramid level ``k // 256``, is set to -1000.

    With ``ratio_channels_to_ablate = r < 1`` the channels are chosen as
    1.5.7 chooses them: the first principal component of each image's maps
    (centred, absolute value, normalised to [0, 1]) is thresholded at 0.01
    into an "objectness" mask; each channel scores the share of its
    normalised absolute activation inside the mask; the ``int(r * C)``
    channels with the highest scores and the ``int(r * C)`` with the
    lowest are ablated (so 2r of the channels, fewer where the two sets
    overlap).
    """

    def __init__(self, value: float = -1000.0, threshold: float = 0.01) -> None:
        super().__init__(value)
        self.threshold = float(threshold)

    def select_channels(self, activations: torch.Tensor, means: torch.Tensor,
                        ratio: float) -> torch.Tensor:
        batch, channels = activations.shape[:2]
        count = int(channels * ratio)
        projection = get_2d_projection(activations.float()).abs().flatten(1)  # B x N
        projection = projection - projection.amin(dim=1, keepdim=True)
        mask = projection / projection.amax(dim=1, keepdim=True) > self.threshold
        normalised = activations.float().abs().flatten(2)  # B x C x N
        normalised = normalised - normalised.amin(dim=2, keepdim=True)
        normalised = normalised / normalised.amax(dim=2, keepdim=True)
        # NaN for a constant channel, which sorts above every score
        scores = (mask[:, None] * normalised).sum(dim=2) / normalised.sum(dim=2)
        # on a small map many channels tie; numpy's sort (the one 1.5.7 uses)
        # orders ties its own way, so the C scores of each image are sorted by it
        order = torch.from_numpy(np.argsort(scores.cpu().numpy(), axis=1)).to(activations.device)
        chosen = torch.cat([order[:, channels - count:], order[:, :count]], dim=1)
        return torch.zeros((batch, channels), dtype=torch.bool,
                           device=activations.device).scatter_(1, chosen, True)
