import torch
import torch.nn.functional as F

from pytorch_grad_cam.base_cam import BaseCAM

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


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
    """

    uses_gradients = False

    def __init__(self, model, target_layers=None, reshape_transform=None,
                 constant_channel_shortcut: bool = True, **kwargs):
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.constant_channel_shortcut = bool(constant_channel_shortcut)

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        batch, channels = activations.shape[:2]
        size = tuple(input_tensor.shape[2:])
        flat = activations.flatten(2)
        varying = flat.amax(dim=2) > flat.amin(dim=2)  # B x C
        if not self.constant_channel_shortcut:
            varying = torch.ones_like(varying)
        # the work list: every varying channel, then one zero mask per image
        # that has constant channels (channel index -1)
        item_image, item_channel = varying.nonzero(as_tuple=True)
        constant_images = (~varying).any(dim=1).nonzero().flatten()
        images = torch.cat([item_image, constant_images])
        chans = torch.cat([item_channel, torch.full_like(constant_images, -1)])
        image_list = images.tolist()  # one host sync for the whole call
        scores = torch.empty(len(images), dtype=torch.float32, device=activations.device)
        with torch.inference_mode():
            for start, stop in self.chunks(len(images), "ScoreCAM"):
                b, k = images[start:stop], chans[start:stop]
                maps = activations[b, k.clamp_min(0)][:, None]
                masks = F.interpolate(maps, size=size, mode=_MODES[len(size)],
                                      align_corners=True).flatten(1)
                low, high = torch.aminmax(masks, dim=1)
                scale = (k >= 0) / (high - low).clamp_min(1e-12)  # 0 for the zero mask
                masks = (masks - low[:, None]) * scale[:, None]
                masked = input_tensor[b] * masks.reshape((len(b), 1) + size).to(input_tensor.dtype)
                outputs = self.select_output(self.model(masked))
                row_targets = [targets[i] for i in image_list[start:stop]]
                scores[start:stop] = self.target_scores(row_targets, outputs).float()
        table = torch.zeros(batch, channels, dtype=torch.float32, device=activations.device)
        table[item_image, item_channel] = scores[:len(item_image)]
        zero_mask_score = torch.zeros(batch, dtype=torch.float32, device=activations.device)
        zero_mask_score[constant_images] = scores[len(item_image):]
        table = torch.where(varying, table, zero_mask_score[:, None])
        return torch.softmax(table, dim=1)
