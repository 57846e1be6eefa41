from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.meta_cam import MetaCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget

#: the classes compared against by default, as ranks of the prediction
#: (1 = the second most likely class); grad-cam 1.5.7's name and value
DEFAULT_COMPARISON_CATEGORIES = (1, 2, 3)

@register_method("finercam")
class FinerCAM(MetaCAM):
    """Finer-CAM: explain the difference between the target class and the classes most like it.

    For target class c and the comparison classes d_1..d_m whose scores are
    nearest to y_c, the explained score (``FinerWeightedTarget``) is::

        Y = sum_i p_di * (y_c - alpha * y_di) / sum_i p_di   (p = softmax(y))

    and the map is the base method's map of Y
    (Grad-CAM by default). Features shared with the similar classes
    cancel, so the map shows what sets class c apart from them.

    Arguments besides those of BaseCAM:
        base_method: the CAM class that weights the activations (GradCAM by
            default; any method of the library, HiResCAM, LayerCAM,
            ScoreCAM, ...).
        alpha: the comparison strength (1: the plain difference; 0: the base
            method on class c alone).
        comparison_categories: which classes to compare against, as ranks in
            the order of score distance to class c (1 = the nearest class);
            default (1, 2, 3). Ranks past the number of classes are dropped.
        target_idx: with ``targets=None``, explain this class instead of
            each image's top class.

    ``alpha``, ``comparison_categories`` and ``target_idx`` can also be
    given to a single call: ``cam(x, alpha=0.6)``.

    Targets: None (each image's top class) and ``ClassifierOutputTarget(c)``
    are turned into ``FinerWeightedTarget(c, nearest classes, alpha)``
    using the model's output for that image; any other target (for
    example a ready ``FinerWeightedTarget``) is used as given.

    Zhang et al., "Finer-CAM: Spotting the Difference Reveals Finer Details
    for Visual Explanation", CVPR 2025, https://arxiv.org/abs/2501.11309

    Unlike grad-cam 1.5.7, whose FinerCAM explains a given
    ClassifierOutputTarget(c) like plain Grad-CAM and compares only when
    targets=None, a class target is compared with its nearest classes too.
    """

    @staticmethod
    def default_base_method() -> type:
        return GradCAM

    call_options = ("alpha", "comparison_categories", "target_idx")

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, base_method: type | None = None,
                 alpha: float = 1.0,
                 comparison_categories: Sequence[int] = DEFAULT_COMPARISON_CATEGORIES,
                 target_idx: int | None = None, **kwargs: Any) -> None:
        #: the options of every call: (alpha, comparison ranks, target_idx)
        self.finer_options = self._check_options(alpha, comparison_categories, target_idx)
        super().__init__(model, target_layers, reshape_transform, **kwargs)

    @staticmethod
    def _check_options(alpha: float, comparison_categories: int | Sequence[int],
                       target_idx: int | None) -> tuple[float, list[int], int | None]:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a number, got {alpha!r}")
        if isinstance(comparison_categories, (int, np.integer)):
            comparison_categories = [comparison_categories]
        ranks = list(comparison_categories)
        if not ranks or not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool)
                                and r >= 1 for r in ranks):
            raise ValueError("comparison_categories must be a non-empty list of ranks >= 1 (1 = "
                             f"the class whose score is nearest the target's), got "
                             f"{comparison_categories!r}")
        if target_idx is not None and (isinstance(target_idx, bool)
                                       or not isinstance(target_idx, (int, np.integer))):
            raise TypeError(f"target_idx must be a class index (int) or None, got {target_idx!r}")
        return float(alpha), [int(r) for r in ranks], (None if target_idx is None
                                                       else int(target_idx))

    def check_call_options(self, options: dict[str, Any]) -> dict[str, Any]:
        merged: list[Any] = [default if options.get(name) is None else options[name]
                             for name, default in zip(self.call_options, self.finer_options)]
        return {"finer": self._check_options(*merged)}

    def resolve_targets(self, targets: Any, outputs: Any, batch: int) -> list[Callable]:
        alpha, ranks, target_idx = current_call().options.get("finer", self.finer_options)
        if targets is None and target_idx is not None:
            targets = [ClassifierOutputTarget(target_idx)] * batch
        targets = super().resolve_targets(targets, outputs, batch)
        if not any(type(t) is ClassifierOutputTarget for t in targets):
            return targets
        if not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2):
            raise ValueError("FinerCAM picks the comparison classes from a classifier output of "
                             "shape B x num_classes; this model's output is different, so give "
                             "FinerWeightedTarget targets explicitly")
        scores = outputs.detach().float()
        classes = scores.shape[1]
        resolved: list[Callable] = []
        for index, target in enumerate(targets):
            if type(target) is not ClassifierOutputTarget:
                resolved.append(target)
                continue
            main = target.category % classes
            distance = (scores[index] - scores[index, main]).abs()
            distance[main] = float("inf")  # the class itself is never its own comparison
            order = torch.argsort(distance, stable=True).tolist()
            comparisons = [order[r - 1] for r in ranks if r <= classes - 1]
            if not comparisons:
                raise ValueError(f"FinerCAM needs at least one class to compare with; the model "
                                 f"has {classes} class(es)")
            resolved.append(FinerWeightedTarget(main, comparisons, alpha))
        return resolved
