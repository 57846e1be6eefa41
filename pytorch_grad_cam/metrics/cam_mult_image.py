"""Confidence change when the input is multiplied by the map.

Chattopadhyay et al., "Grad-CAM++: Generalized Gradient-based Visual
Explanations for Deep Convolutional Networks", WACV 2018,
https://arxiv.org/abs/1710.11063 (Average Drop %, % Increase in
Confidence), used again by Wang et al., "Score-CAM", CVPR Workshops 2020,
https://arxiv.org/abs/1910.01279.

With Y the target score of the input and O that of the input multiplied by
the map (the "explanation map" E = L * I), over N images::

    Average Drop = (1 / N) sum_i max(0, Y_i - O_i) / Y_i      (lower is better;
                                                             DropInConfidence(relative=True))
    Increase in Confidence = (1 / N) sum_i 1[Y_i < O_i]       (higher is better)

The metrics here return the per-image terms; average them (x 100 for the
papers' percentages). The papers' Y and O are class probabilities: use
``ClassifierOutputSoftmaxTarget`` targets. The map multiplies the model's
input as given (for ImageNet-normalised inputs, removed pixels become the
mean colour), as grad-cam 1.5.7 does.
"""

import torch

from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric


def multiply_tensor_with_cam(input_tensor: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """The input (C x H x W, or a batch n x C x H x W) times the map
    (H x W, or n x H x W)."""
    cam = torch.as_tensor(cam, device=input_tensor.device, dtype=input_tensor.dtype)
    return input_tensor * cam.unsqueeze(-3)


multiply_tensor_with_cam.batched = True  # type: ignore[attr-defined]


class CamMultImageConfidenceChange(PerturbationConfidenceMetric):
    """Per image: O - Y, the target score of the input multiplied by the
    map minus that of the input (``return_diff=False``: O). ``progress``:
    a progress bar of the passes."""

    def __init__(self, batch_size: int | None = None, progress: bool = False) -> None:
        super().__init__(multiply_tensor_with_cam, batch_size, progress=progress)


class DropInConfidence(CamMultImageConfidenceChange):
    """Per image: the drop of the target score, max(0, Y - O) (lower is
    better), as grad-cam 1.5.7 returns it under this name.

    ``relative=True`` gives the paper's Average Drop term, max(0, Y - O) / Y,
    which :func:`~pytorch_grad_cam.metrics.evaluate.evaluate_cam_methods`,
    the dataset runner and the web demo report. The relative drop needs
    positive scores Y; use probabilities (``ClassifierOutputSoftmaxTarget``)
    as the paper does.
    """

    def __init__(self, batch_size: int | None = None, relative: bool = False,
                 progress: bool = False) -> None:
        super().__init__(batch_size, progress=progress)
        self.relative = bool(relative)

    def needs_original(self, return_diff: bool) -> bool:
        return True

    def compare(self, before: torch.Tensor | None, after: torch.Tensor,
                return_diff: bool) -> torch.Tensor:
        assert before is not None  # needs_original
        drop = (before - after).clamp_min(0)
        if self.relative:
            if bool((before <= 0).any()):
                bad = (before <= 0).nonzero().flatten().tolist()
                raise ValueError(f"the relative drop max(0, Y - O) / Y needs positive target "
                                 f"scores Y, but image(s) {bad} have Y <= 0; use probabilities "
                                 "(ClassifierOutputSoftmaxTarget) as the paper does, or "
                                 "DropInConfidence(relative=False) for the absolute drop")
            drop = drop / before
        return drop


class IncreaseInConfidence(CamMultImageConfidenceChange):
    """Per image: 1 if the input multiplied by the map scores higher than
    the input (O > Y), else 0 (higher is better)."""

    def needs_original(self, return_diff: bool) -> bool:
        return True

    def compare(self, before: torch.Tensor | None, after: torch.Tensor,
                return_diff: bool) -> torch.Tensor:
        assert before is not None  # needs_original
        return (after > before).float()
