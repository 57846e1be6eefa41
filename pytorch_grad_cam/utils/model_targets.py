"""What a "target" is: a callable that maps one image's model output to the
scalar score that the map explains.

Each target is called with the output of one image (for a classifier a
1-D tensor of scores); most also accept a batch (2-D) and then return one
score per image.
"""
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torchvision


def _select_class(model_output: torch.Tensor, category: int) -> torch.Tensor:
    if model_output.dim() == 1:
        return model_output[category]
    return model_output[..., category]


class ClassifierOutputTarget:
    """The raw score (logit) of class ``category``."""

    def __init__(self, category: int) -> None:
        if isinstance(category, bool) or not isinstance(category, (int, np.integer)):
            raise TypeError(f"category must be an int class index, got {category!r}")
        self.category = int(category)

    def check_output(self, model_output: Any) -> None:
        if isinstance(model_output, torch.Tensor) and model_output.dim() >= 1:
            classes = model_output.shape[-1]
            if not -classes <= self.category < classes:
                raise ValueError(f"class index {self.category} is out of range for a model "
                                 f"output with {classes} classes (allowed 0..{classes - 1})")

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return _select_class(model_output, self.category)

    def __repr__(self) -> str:
        return f"ClassifierOutputTarget({self.category})"


class RankedClassTarget:
    """The class of rank ``rank`` in the image's own scores (0: its top
    class, 1: the second, ...), chosen from the output of the explainer's
    forward pass, like ``targets=None`` chooses the top class: no separate
    forward pass is needed to find an image's best classes. Before any
    perturbation pass the explainers replace it by the
    ``ClassifierOutputTarget`` of the class it chose
    (``for_output``), so a perturbed input is scored for that class, not
    for its own ranks. Called directly, it is the raw score of the class of
    that rank in the output it is given.

    ``[[RankedClassTarget(r) for r in range(5)]] * batch_size`` explains
    every image's five best classes in one call
    (``utils.target_sets.ranked_targets``)."""

    def __init__(self, rank: int) -> None:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
            raise TypeError(f"rank must be an int (0: the top class), got {rank!r}")
        if rank < 0:
            raise ValueError(f"rank must be >= 0 (0: the top class), got {rank}")
        self.rank = int(rank)

    def check_output(self, model_output: Any) -> None:
        if isinstance(model_output, torch.Tensor) and model_output.dim() >= 1:
            classes = model_output.shape[-1]
            if self.rank >= classes:
                raise ValueError(f"rank {self.rank} is out of range for a model output with "
                                 f"{classes} classes (allowed 0..{classes - 1})")

    def category(self, model_output: torch.Tensor) -> int:
        """The class of this rank in one image's output (ties in the order
        of the class index)."""
        scores = model_output.detach().reshape(-1, model_output.shape[-1])[0].float()
        order = torch.argsort(scores, descending=True, stable=True)
        return int(order[self.rank])

    def for_output(self, model_output: torch.Tensor) -> ClassifierOutputTarget:
        """The fixed target of the class this rank picks in ``model_output``."""
        return ClassifierOutputTarget(self.category(model_output))

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return _select_class(model_output, self.category(model_output))

    def __repr__(self) -> str:
        return f"RankedClassTarget({self.rank})"


class ClassifierOutputSoftmaxTarget(ClassifierOutputTarget):
    """The softmax probability of class ``category``."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return _select_class(torch.softmax(model_output, dim=-1), self.category)

    def __repr__(self) -> str:
        return f"ClassifierOutputSoftmaxTarget({self.category})"


class BinaryClassifierOutputTarget:
    """For a model with one output logit: the logit for category 1, its
    negation for category 0."""

    def __init__(self, category: int) -> None:
        if category not in (0, 1):
            raise ValueError(f"category of a binary classifier must be 0 or 1, got {category!r}")
        self.category = int(category)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        sign = 1 if self.category == 1 else -1
        return model_output * sign

    def __repr__(self) -> str:
        return f"BinaryClassifierOutputTarget({self.category})"


class RawScoresOutputTarget:
    """The model's output as it is (for models with one output per image,
    such as regressors)."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output


class SemanticSegmentationTarget:
    """Sum of the class-``category`` scores of a segmentation output
    (C x H x W) inside ``mask`` (H x W, numpy or tensor)."""

    def __init__(self, category: int, mask: np.ndarray | torch.Tensor) -> None:
        self.category = int(category)
        self.mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        mask = self.mask.to(device=model_output.device, dtype=model_output.dtype)
        return (model_output[self.category, :, :] * mask).sum()


def _as_tensor(value: Any, **kwargs: Any) -> torch.Tensor:
    """A tensor, a numpy array or a (nested) list as a tensor with
    ``kwargs`` (device, dtype); tensors may be on any device."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(**kwargs)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return torch.stack([v.detach().to(**kwargs) for v in value])
    return torch.as_tensor(np.asarray(value), **kwargs)


class FasterRCNNBoxScoreTarget:
    """For detection outputs (a dict with ``boxes``, ``labels``, ``scores``,
    as torchvision's detection models return per image): for each
    reference box, the detection that overlaps it most counts if the IoU is
    above ``iou_threshold`` and the labels agree; the target is the sum of
    IoU + score over the counted detections (grad-cam 1.5.7's target).

    Args:
        labels: the label of each reference box (a sequence, numpy array or
            tensor on any device).
        bounding_boxes: N x 4 reference boxes (x1, y1, x2, y2), in the
            coordinates of the model's output (a sequence, array or tensor
            on any device; usually the detections to explain, taken from a
            forward pass of the model).
        iou_threshold: minimum IoU for a detection to count.

    The references are moved to the device of the model's output at every
    call; the score keeps the autograd graph of the detections' scores and
    boxes (the gradient methods differentiate it), also when nothing
    matches (then it is a zero that depends on the scores).
    """

    def __init__(self, labels: Sequence[int] | np.ndarray | torch.Tensor,
                 bounding_boxes: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
                 iou_threshold: float = 0.5) -> None:
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = iou_threshold
        count_labels = len(_as_tensor(labels).reshape(-1))
        count_boxes = len(_as_tensor(bounding_boxes, dtype=torch.float32).reshape(-1, 4))
        if count_labels != count_boxes:
            raise ValueError(f"labels has {count_labels} entries but bounding_boxes has "
                             f"{count_boxes} boxes; give one label per box")

    def __call__(self, model_outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        boxes = model_outputs["boxes"]
        scores = model_outputs["scores"]
        output = scores.sum() * 0  # keeps dtype, device and the graph
        if boxes.numel() == 0:
            return output
        references = _as_tensor(self.bounding_boxes, dtype=boxes.dtype,
                                device=boxes.device).reshape(-1, 4)
        labels = _as_tensor(self.labels, device=boxes.device).reshape(-1)
        ious = torchvision.ops.box_iou(references, boxes)  # refs x detections
        best_iou, best = ious.max(dim=1)
        keep = (best_iou > self.iou_threshold) & (model_outputs["labels"][best] == labels)
        # IoU plus score of each matched detection; no Python branch on values
        return output + torch.where(keep, best_iou + scores[best], torch.zeros_like(best_iou)).sum()

    def __repr__(self) -> str:
        count = len(_as_tensor(self.labels).reshape(-1))
        return f"FasterRCNNBoxScoreTarget(<{count} box(es)>, iou_threshold={self.iou_threshold})"


class ClassifierOutputReST:
    """ReST (Regularized Score Transformation) of class ``category``: its
    logit minus the cross-entropy loss of the class, y_c - CE(y, c) =
    y_c + log softmax(y)_c, which uses the scores before and after the
    softmax (Cai, "CAMs as Shapley Value-based Explainers", 2025,
    https://arxiv.org/abs/2501.06261; the target of ShapleyCAM)."""

    def __init__(self, category: int) -> None:
        if isinstance(category, bool) or not isinstance(category, (int, np.integer)):
            raise TypeError(f"category must be an int class index, got {category!r}")
        self.category = int(category)

    check_output = ClassifierOutputTarget.check_output

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.log_softmax(model_output, dim=-1)
        return (_select_class(model_output, self.category)
                + _select_class(log_probabilities, self.category))

    def __repr__(self) -> str:
        return f"ClassifierOutputReST({self.category})"


class SoftmaxOutputTarget:
    """The softmax of the whole output (a probability vector per image).

    A vector, not one score: useful where a target may return the scores
    of all classes (for example to compare score vectors), or with a
    model that has one output per image. The map of one class's
    probability is ClassifierOutputSoftmaxTarget(category).
    """

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model_output, dim=-1)

    def __repr__(self) -> str:
        return "SoftmaxOutputTarget()"


class FinerWeightedTarget:
    """Finer-CAM's target: the score of ``main_category`` compared with the
    ``comparison_categories``,

    sum_d p_d * (y_main - alpha * y_d) / (sum_d p_d + 1e-9),  p = softmax(y)

    a probability-weighted mean of the differences, so that the features
    the main class shares with similar classes cancel (Zhang et al.,
    "Finer-CAM", CVPR 2025, https://arxiv.org/abs/2501.11309). The weights
    p_d are part of the differentiated expression, as in the authors' code.
    """

    def __init__(self, main_category: int, comparison_categories: int | Sequence[int],
                 alpha: float = 1.0) -> None:
        if isinstance(main_category, bool) or not isinstance(main_category, (int, np.integer)):
            raise TypeError(f"main_category must be an int class index, got {main_category!r}")
        categories = [comparison_categories] if isinstance(comparison_categories, (int, np.integer)) \
            else list(comparison_categories)
        if not categories or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                                     for c in categories):
            raise ValueError("comparison_categories must be a non-empty list of class indices, "
                             f"got {comparison_categories!r}")
        self.main_category = int(main_category)
        self.comparison_categories = [int(c) for c in categories]
        self.alpha = float(alpha)

    def check_output(self, model_output: Any) -> None:
        for category in [self.main_category] + self.comparison_categories:
            ClassifierOutputTarget(category).check_output(model_output)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(model_output, dim=-1)
        main = _select_class(model_output, self.main_category)
        numerator: Any = 0
        denominator: Any = 0
        for category in self.comparison_categories:
            weight = _select_class(probabilities, category)
            numerator = numerator + weight * (main - self.alpha * _select_class(model_output, category))
            denominator = denominator + weight
        return numerator / (denominator + 1e-9)

    def __repr__(self) -> str:
        return (f"FinerWeightedTarget({self.main_category}, {self.comparison_categories}, "
                f"alpha={self.alpha})")


class SimilarityToConceptTarget:
    """Cosine similarity between the model's output embedding and a concept
    embedding ``features`` (a 1-D tensor or array of the same size), for
    embedding models: the map shows where the image looks like the concept
    (for example the embedding of another image, or of a text prompt)."""

    def __init__(self, features: np.ndarray | torch.Tensor) -> None:
        features = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor)
                                   else features)
        if features.dim() != 1 or features.numel() == 0:
            raise ValueError(f"features must be a 1-D embedding vector, got shape "
                             f"{tuple(features.shape)}")
        self.features = features

    def check_output(self, model_output: Any) -> None:
        if isinstance(model_output, torch.Tensor) and model_output.shape[-1:] != self.features.shape:
            raise ValueError(f"the model's embedding has shape {tuple(model_output.shape)} but the "
                             f"concept features have {self.features.numel()} entries")

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        features = self.features.to(device=model_output.device, dtype=model_output.dtype)
        return torch.nn.functional.cosine_similarity(model_output, features.expand_as(model_output),
                                                     dim=-1)

    def __repr__(self) -> str:
        return f"SimilarityToConceptTarget(<{self.features.numel()}-dim features>)"
