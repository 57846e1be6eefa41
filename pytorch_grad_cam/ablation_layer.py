"""How AblationCAM ablates a channel of the target layer's output.

``AblationCAM(..., ablation_layer=AblationLayerVit())`` keeps working as
in the established API; by default the channel axis is found from the
layer's output and the reshape transform, so passing one is optional.
"""


class AblationLayer:
    """Channels on axis ``channel_dim`` of the layer's raw output (axis 1 for
    B x C x H x W feature maps) are set to ``value`` (0 by default, the
    paper's definition)."""

    channel_dim = 1

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)


class AblationLayerVit(AblationLayer):
    """Token outputs B x N x C of Vision Transformers: the channels are the
    last axis."""

    channel_dim = -1
