"""grad-cam 1.5.7's ``pytorch_grad_cam.ablation_cam_multilayer``, kept so
that code importing it runs unchanged.

- ``AblationCAM`` is the library's :class:`~pytorch_grad_cam.AblationCAM`,
  which explains several target layers (their maps averaged; each layer's
  channels ablated in turn). 1.5.7's class of this module could not be
  called (its ``get_cam_weights`` took the arguments of an older release).
- ``AblationLayer`` wraps a layer and ablates one channel per image of the
  batch: image ``i``'s channel ``indices[i]``, set to 0 where the output's
  minimum is 0 and to (minimum - 1e5) otherwise, as in 1.5.7 (the channels
  are the last axis when the layer has a reshape transform: a
  transformer's B x N x C tokens). Images past ``len(indices)`` are left
  as they are.
- ``replace_layer_recursive`` is :mod:`pytorch_grad_cam.utils.find_layers`'.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pytorch_grad_cam.ablation_cam import AblationCAM
from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

__all__ = ["ABLATION_VALUE", "AblationCAM", "AblationLayer", "replace_layer_recursive"]

#: how far below the output's minimum an ablated channel is set when the
#: minimum is not 0 (1.5.7's value)
ABLATION_VALUE = 1e5


class AblationLayer(torch.nn.Module):
    """``layer`` with channel ``indices[i]`` of image ``i`` ablated."""

    def __init__(self, layer: torch.nn.Module, reshape_transform: Callable | None,
                 indices: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
        self.layer = layer
        self.reshape_transform = reshape_transform
        #: the channel to ablate, per image of the batch
        self.indices = list(indices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.layer(x)
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            raise ValueError(f"AblationLayer: the wrapped layer must return a tensor of at least "
                             f"2 dimensions, got {type(output).__name__}"
                             + (f" of shape {tuple(output.shape)}"
                                if isinstance(output, torch.Tensor) else ""))
        channel_axis = -1 if self.reshape_transform is not None else 1
        channels = output.shape[channel_axis]
        images = min(len(self.indices), output.shape[0])
        bad = [index for index in self.indices[:images] if not 0 <= int(index) < channels]
        if bad:
            raise ValueError(f"AblationLayer: indices {bad} are not channels of an output with "
                             f"{channels} channels")
        if images == 0:
            return output
        minimum = output.min()
        value = minimum if bool(minimum.detach() == 0) else minimum - ABLATION_VALUE
        ablated = output.clone()
        moved = ablated.movedim(channel_axis, 1)  # a view: writes reach `ablated`
        for image, channel in enumerate(self.indices[:images]):
            moved[image, int(channel)] = value
        return ablated
