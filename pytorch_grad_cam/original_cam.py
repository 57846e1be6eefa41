from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)


def _last_linear(model: torch.nn.Module) -> torch.nn.Linear | None:
    last = None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            last = module
    return last


@register_method("cam", needs_linear_head=True)
class CAM(BaseCAM):
    """CAM: channels weighted by the classifier's weights of the target class.

    For a network that ends in global average pooling followed by one
    linear layer with weights W (classes x C):
    map_c = ReLU(sum_k W[c, k] * A_k)

    The original class activation map; no gradients are needed. The target
    layer must be the one whose output is pooled into the classifier (its
    channel count must equal the classifier's ``in_features``). For such
    networks Grad-CAM gives the same map, since dY_c/dA_k(i, j) = W[c, k] / N.

    Arguments besides those of BaseCAM:
        fc_layer: the final ``torch.nn.Linear``; default: the last
            ``nn.Linear`` among ``model.modules()``.

    Targets: ``ClassifierOutputTarget(c)`` (row c of W), for a classifier
    with one output ``BinaryClassifierOutputTarget(0 or 1)`` (-W[0] or
    W[0]), or None for each image's top class. A target that is not a
    class index cannot be expressed by the classifier's weights and is
    refused.

    Zhou et al., "Learning Deep Features for Discriminative Localization",
    CVPR 2016, https://arxiv.org/abs/1512.04150
    """

    uses_gradients = False

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None,
                 fc_layer: torch.nn.Linear | None = None, **kwargs: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        if fc_layer is None:
            fc_layer = _last_linear(self.model)
            if fc_layer is None:
                raise ValueError("CAM needs the model's final torch.nn.Linear classifier, but the "
                                 "model has none; pass fc_layer= (a torch.nn.Linear), or use "
                                 "GradCAM, which does not need one")
        elif not isinstance(fc_layer, torch.nn.Linear):
            raise TypeError(f"fc_layer must be a torch.nn.Linear, got {type(fc_layer).__name__}")
        elif not any(module is fc_layer for module in self.model.modules()):
            raise ValueError("fc_layer is not a module of the model; take it from the model, "
                             "for example model.fc")
        self.fc_layer = fc_layer

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        weight = self.fc_layer.weight
        channels = activations.shape[1]
        if weight.shape[1] != channels:
            raise ValueError(
                f"CAM: the classifier {type(self.fc_layer).__name__} has in_features="
                f"{weight.shape[1]} but the target layer has {channels} channels; CAM applies "
                "to networks that end in global average pooling of the target layer followed "
                "by one linear layer (ResNet, EfficientNet, ...), not to ones with several "
                "fully connected layers (VGG); use GradCAM there")
        rows = []
        for index, target in enumerate(targets):
            if isinstance(target, ClassifierOutputTarget) and \
                    not isinstance(target, ClassifierOutputSoftmaxTarget):
                rows.append(weight[target.category])
            elif isinstance(target, BinaryClassifierOutputTarget):
                if weight.shape[0] != 1:
                    raise ValueError(f"targets[{index}] is a BinaryClassifierOutputTarget but the "
                                     f"classifier has {weight.shape[0]} outputs, not 1")
                rows.append(weight[0] if target.category == 1 else -weight[0])
            else:
                raise TypeError(f"CAM: targets[{index}] is {type(target).__name__}; CAM weights "
                                "the channels by the classifier's weights of one class, so it "
                                "accepts ClassifierOutputTarget(category), "
                                "BinaryClassifierOutputTarget(category) or targets=None; use a "
                                "gradient method (GradCAM) for other targets")
        return torch.stack(rows).to(device=activations.device, dtype=activations.dtype)
