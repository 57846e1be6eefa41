"""Sanity checks: does a method's map depend on what the model learned,
and on the class it explains?

- :class:`MPRT`, the model parameter randomisation test of Adebayo,
  Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency
  Maps", NeurIPS 2018, https://arxiv.org/abs/1810.03292: the map of the
  trained model compared with the maps of a copy whose layers are
  re-initialised, cascading from the output layer down and one layer at a
  time;
- :class:`SmoothMPRT` (sMPRT) and :class:`EfficientMPRT` (eMPRT) of
  Hedström, Weber, Lapuschkin, Höhne, "Sanity Checks Revisited: An
  Exploration to Repair the Model Parameter Randomisation Test", TMLR 2024,
  https://arxiv.org/abs/2401.06465: the maps averaged over noisy copies of
  the input before they are compared, and the rise of the map's
  complexity (histogram entropy) from the trained to the fully randomised
  model;
- :class:`RandomLogitTest` of Sixt, Granz, Landgraf, "When Explanations
  Lie: Why Many Modified BP Attributions Fail", ICML 2020,
  https://arxiv.org/abs/1912.09818: the map of the predicted class compared
  with the map of another class.

Each follows the Quantus implementation named in its docstring
(github.com/understandable-machine-intelligence-lab/Quantus,
``quantus/metrics/randomisation/``). The user's model is never changed
(see :mod:`pytorch_grad_cam.metrics.randomisation`).

**Verdicts.** None of these papers states a numeric pass mark: Adebayo et
al. judge from their figures, in which the methods they call model
sensitive (Gradient, GradCAM) fall towards no rank agreement with the
original map while Guided BackProp stays visibly alike. We therefore set
the mark halfway between "unchanged" (1) and "no agreement" (0): a method
passes MPRT and sMPRT when the mean Spearman rank correlation after full
cascading randomisation is below :data:`SANITY_THRESHOLDS` ``0.5``, and the
random logit test when the mean SSIM (Sixt et al.'s measure) of the two
classes' maps is below 0.5. eMPRT's mark comes from its paper: the
complexity must rise, a ratio above 1 (Quantus reports the relative rise,
ratio - 1, above 0). Each threshold can be changed (``threshold=``).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.messages import given
from pytorch_grad_cam.metric_names import METRICS, SANITY_CHECKS
from pytorch_grad_cam.metrics.perturbation_confidence import original_scores
from pytorch_grad_cam.metrics.randomisation import CamRunner, cascading, independent, model_copy
from pytorch_grad_cam.metrics.similarity import (
    SSIM_WINDOW,
    histogram_entropy,
    spearman,
    ssim,
    top_k_intersection,
)
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.registry import is_class_specific
from pytorch_grad_cam.scoring import (
    batch_size_or_default,
    check_model,
    check_positive_int,
    check_seed,
    check_targets,
    prepare_input,
    select_output,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = ["EfficientMPRT", "MPRT", "RandomLogitTest", "SANITY_THRESHOLDS", "SanityResult",
           "SmoothMPRT", "passes", "sanity_results", "sanity_values"]

#: each check's pass mark (see the module docstring); ``METRICS`` says
#: whether the value must lie below it ("lower") or above it ("higher")
SANITY_THRESHOLDS: dict[str, float] = {"MPRT": 0.5, "sMPRT": 0.5, "eMPRT": 1.0,
                                       "RandomLogit": 0.5}
assert tuple(SANITY_THRESHOLDS) == SANITY_CHECKS
#: the share of the pixels that are the "top k" of the top-k intersection
TOP_K_SHARE = 0.02


def passes(metric: str, value: float, threshold: float | None = None) -> bool:
    """Whether ``value`` (a mean over images) of the check ``metric``
    passes its threshold (default :data:`SANITY_THRESHOLDS`)."""
    if metric not in SANITY_THRESHOLDS:
        raise ValueError(f"metric is {metric!r}, not a sanity check; choose from "
                         f"{', '.join(SANITY_CHECKS)}")
    mark = SANITY_THRESHOLDS[metric] if threshold is None else threshold
    return bool(value < mark) if METRICS[metric] == "lower" else bool(value > mark)


@dataclass(frozen=True)
class SanityResult:
    """The outcome of a check for a batch.

    Attributes:
        test: "MPRT", "sMPRT", "eMPRT" or "RandomLogit".
        measure: what ``values`` are.
        values: per image, the number the verdict reads (float32, B).
        threshold: the pass mark of the mean of ``values``.
        details: every number computed, by name (see each check):
            arrays of B values, or steps x B for the per-layer steps.
        layers: the layers re-initialised, in the order of the steps (the
            output layer first); empty for the random logit test.
    """

    test: str
    measure: str
    values: np.ndarray
    threshold: float
    details: dict[str, np.ndarray] = field(default_factory=dict)
    layers: tuple[str, ...] = ()

    @property
    def value(self) -> float:
        """The mean of ``values`` over the images."""
        return float(np.mean(self.values))

    @property
    def passed(self) -> bool:
        """Whether the mean passes the threshold (below it for the
        similarities, above it for eMPRT's ratio)."""
        return passes(self.test, self.value, self.threshold)

    @property
    def verdict(self) -> str:
        """"PASS" or "FAIL"."""
        return "PASS" if self.passed else "FAIL"

    def __str__(self) -> str:
        relation = ("<" if self.passed else ">=") if METRICS[self.test] == "lower" else \
            (">" if self.passed else "<=")
        return (f"{self.test}: {self.verdict} ({self.measure} {self.value:.4f} {relation} "
                f"{self.threshold:g})")


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {given(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _share(value: Any) -> float:
    share = _finite(value, "top_k_share")
    if not 0 < share <= 1:
        raise ValueError(f"top_k_share must lie in (0, 1] (a share of the pixels), got {value}")
    return share


def _similarities(original: torch.Tensor, other: torch.Tensor,
                  top_k_share: float) -> dict[str, torch.Tensor]:
    """Spearman (of the absolute maps), SSIM and top-k intersection."""
    k = max(1, round(top_k_share * original[0].numel()))
    return {"spearman": spearman(original.abs(), other.abs()), "ssim": ssim(original, other),
            "top_k": top_k_intersection(original.abs(), other.abs(), k)}


class _Check:
    """The arguments every check takes, checked: ``(input_tensor,
    targets, model, method, target_layers, method_kwargs=...,
    reshape_transform=...)``."""

    name = ""
    #: whether the check needs each image's class even for a method whose
    #: maps do not depend on it
    needs_classes = False
    #: whether the check compares maps by SSIM (the images need at least
    #: SSIM_WINDOW x SSIM_WINDOW pixels)
    uses_ssim = True

    def __init__(self, seed: int = 0, threshold: float | None = None) -> None:
        self.seed: int = check_seed(seed)
        self.threshold: float = _finite(SANITY_THRESHOLDS[self.name] if threshold is None
                                        else threshold, "threshold")

    def __call__(self, input_tensor: torch.Tensor, targets: Sequence[Callable] | None,
                 model: torch.nn.Module, method: Any, target_layers: Sequence[Any] | None = None,
                 *, method_kwargs: dict[str, Any] | None = None,
                 reshape_transform: Callable | None = None) -> SanityResult:
        """The check of ``method`` (a CAM class or a registered name,
        constructed with ``method_kwargs`` on ``model`` or its copy, with
        ``target_layers``: modules of ``model`` or layer paths, and
        ``reshape_transform``) on ``input_tensor`` (B x C x H x W) for
        ``targets``: one per image, or None: each image's top class under
        the trained model, the same target for the maps of the
        randomised copies (as Quantus explains the given labels)."""
        check_model(model)
        inputs = prepare_input(input_tensor, model, volumes=False)
        if self.uses_ssim and min(inputs.shape[2:]) < SSIM_WINDOW:
            raise ValueError(f"input_tensor has images of {inputs.shape[2]} x {inputs.shape[3]} "
                             f"pixels; {self.name} compares maps by SSIM, whose window needs "
                             f"at least {SSIM_WINDOW} x {SSIM_WINDOW}")
        checked = check_targets(targets, inputs.shape[0])
        runner = CamRunner(method, model, target_layers, reshape_transform, method_kwargs)
        if checked is None and (self.needs_classes or is_class_specific(runner.method)):
            # the trained model's top class, kept for every map (a randomised
            # model's own top class would change the question)
            with model_state_guard(model), torch.inference_mode():
                _, checked = original_scores(model, inputs, None,
                                             batch_size_or_default(None, inputs.device))
        return self.run(inputs, checked, model, runner)

    def run(self, inputs: torch.Tensor, targets: list[Callable] | None, model: torch.nn.Module,
            runner: CamRunner) -> SanityResult:
        """The check on checked arguments."""
        raise NotImplementedError


class MPRT(_Check):
    """The model parameter randomisation test (Adebayo et al. 2018), as
    Quantus's ``MPRT`` (``quantus/metrics/randomisation/mprt.py``).

    The map of the trained model is compared with the maps of a deep copy
    whose layers (every module with parameters and ``reset_parameters``,
    :func:`~pytorch_grad_cam.metrics.randomisation.randomisable_layers`)
    are re-initialised by their own ``reset_parameters`` (BatchNorm: to
    weight 1, bias 0 and fresh running statistics), layer i of the model
    drawing from seed ``seed + i``:

    - cascading: from the top (the last layer the model defines, its
      output) down, one more layer at each step; the last step is the
      fully randomised model;
    - independent (``independent=True``): one layer at a time, the others
      as trained.

    Per step and image: ``spearman``, Spearman's rank correlation of the
    absolute maps (the paper reports it with and without the absolute
    value; CAM maps are non-negative, so both are this number), ``ssim``
    (:func:`~pytorch_grad_cam.metrics.similarity.ssim`, 11 x 11 Gaussian
    window, maps scaled to [0, 1]) and ``top_k``, the top-k intersection
    with k = 2% of the pixels (at least 1; Ghorbani et al. 2019 use the
    top 1000 pixels of ImageNet images, about 2% of them). A map that the
    randomised model leaves all zero has Spearman 0 with anything.

    The verdict reads the Spearman correlation after full randomisation,
    averaged over the images: a method passes below ``threshold`` (0.5,
    see the module docstring). Details: ``cascading/<measure>`` and
    ``independent/<measure>``, steps x B, row i for ``layers[i]``.
    """

    name = "MPRT"

    def __init__(self, seed: int = 0, threshold: float | None = None,
                 independent: bool = True, top_k_share: float = TOP_K_SHARE) -> None:
        super().__init__(seed, threshold)
        self.independent = bool(independent)
        self.top_k_share = _share(top_k_share)

    def run(self, inputs: torch.Tensor, targets: list[Callable] | None, model: torch.nn.Module,
            runner: CamRunner) -> SanityResult:
        duplicate = model_copy(model)  # first: a model that cannot be copied fails fast
        original = runner.maps(model, inputs, targets)
        details: dict[str, list[torch.Tensor]] = {}
        layers: list[str] = []
        orders = [("cascading", cascading)] + ([("independent", independent)]
                                               if self.independent else [])
        for order, steps in orders:
            if order == "independent":
                duplicate = model_copy(model)
            for layer in steps(duplicate, self.seed):
                if order == "cascading":
                    layers.append(layer)
                scores = _similarities(original,
                                       runner.maps(duplicate, inputs, targets, randomised=True),
                                       self.top_k_share)
                for measure, value in scores.items():
                    details.setdefault(f"{order}/{measure}", []).append(value)
        stacked = {key: torch.stack(rows).cpu().numpy() for key, rows in details.items()}
        return SanityResult(self.name, "Spearman rank correlation after full randomisation",
                            stacked["cascading/spearman"][-1], self.threshold, stacked,
                            tuple(layers))


def noisy_copies_std(inputs: torch.Tensor, magnitude: float) -> torch.Tensor:
    """sMPRT's noise standard deviation per image: ``magnitude`` x (max -
    min) of the image (Quantus's ``SmoothMPRT.explain_smooth_batch``), B x
    1 x ... x 1."""
    flat = inputs.flatten(1)
    span = flat.amax(dim=1) - flat.amin(dim=1)
    return (magnitude * span).reshape((-1,) + (1,) * (inputs.dim() - 1))


class SmoothMPRT(_Check):
    """sMPRT (Hedström et al. 2024), as Quantus's ``SmoothMPRT``
    (``quantus/metrics/randomisation/smooth_mprt.py``): MPRT on maps
    denoised by averaging each over ``n_samples`` noisy copies of the
    input, the last copy noise-free (as Quantus), with Gaussian noise of
    standard deviation ``noise_magnitude`` x (max - min) of each image
    (the paper's ImageNet setting, Quantus's defaults: 50 copies, 0.1).

    Only the trained and the fully randomised model are compared (Quantus
    with ``return_last_correlation=True``; a full randomisation is the
    same whatever the order). The noise of copy n is drawn once from seed
    ``seed + n`` and scaled per image, so an image's value does not depend
    on the rest of the batch. Values: the Spearman correlation of the
    absolute smoothed maps (Quantus's default similarity); details
    ``spearman``, ``ssim`` and ``top_k`` (see :class:`MPRT`). Passes below
    ``threshold`` (0.5).
    """

    name = "sMPRT"

    def __init__(self, n_samples: int = 50, noise_magnitude: float = 0.1, seed: int = 0,
                 threshold: float | None = None, top_k_share: float = TOP_K_SHARE) -> None:
        super().__init__(seed, threshold)
        self.n_samples: int = check_positive_int("n_samples", n_samples)
        self.noise_magnitude = _finite(noise_magnitude, "noise_magnitude")
        if self.noise_magnitude < 0:
            raise ValueError(f"noise_magnitude must be >= 0, got {noise_magnitude}")
        self.top_k_share = _share(top_k_share)

    def smoothed_maps(self, runner: CamRunner, model: torch.nn.Module, inputs: torch.Tensor,
                      targets: Sequence[Callable] | None,
                      randomised: bool = False) -> torch.Tensor:
        """The mean map over the noisy copies of the inputs (``randomised``:
        ``model`` is the re-initialised copy, see ``CamRunner.maps``)."""
        std = noisy_copies_std(inputs, self.noise_magnitude)
        total: torch.Tensor | None = None
        for sample in range(self.n_samples):
            if sample == self.n_samples - 1:
                noisy = inputs
            else:
                generator = torch.Generator().manual_seed(self.seed + sample)
                noise = torch.randn((1,) + tuple(inputs.shape[1:]), generator=generator)
                noisy = inputs + std * noise.to(device=inputs.device, dtype=inputs.dtype)
            maps = runner.maps(model, noisy, targets, randomised)
            total = maps if total is None else total + maps
        assert total is not None
        return total / self.n_samples

    def run(self, inputs: torch.Tensor, targets: list[Callable] | None, model: torch.nn.Module,
            runner: CamRunner) -> SanityResult:
        duplicate = model_copy(model)
        original = self.smoothed_maps(runner, model, inputs, targets)
        layers = list(cascading(duplicate, self.seed))
        randomised = self.smoothed_maps(runner, duplicate, inputs, targets, randomised=True)
        scores = {k: v.cpu().numpy()
                  for k, v in _similarities(original, randomised, self.top_k_share).items()}
        return SanityResult(self.name, "Spearman rank correlation of the smoothed maps after "
                            "full randomisation", scores["spearman"], self.threshold, scores,
                            tuple(layers))


class EfficientMPRT(_Check):
    """eMPRT (Hedström et al. 2024), as Quantus's ``EfficientMPRT``
    (``quantus/metrics/randomisation/efficient_mprt.py``): the complexity
    of the map of the fully randomised model over that of the trained
    model, ::

        eMPRT = H(map of the randomised model) / H(map of the trained model)

    with H the entropy of the map's histogram of ``n_bins`` equal bins
    (:func:`~pytorch_grad_cam.metrics.similarity.histogram_entropy`;
    Quantus's ``discrete_entropy``, 100 bins when no rule is chosen, no
    absolute value, no normalisation). Above 1: randomising the model made
    the map more complex, noisier, as a map that depends on the learned
    parameters should become; the method passes above ``threshold`` (1).
    Quantus returns the relative rise, ratio - 1. When the trained map is
    constant (H = 0) the ratio is inf if the randomised map is not, else
    1. Details: ``original_entropy``, ``randomised_entropy``.

    A caveat for CAM methods: their maps pass through a ReLU, and for the
    trained model's class a randomised model often has no positive
    weighted activation, so its map is all zero: entropy 0, ratio 0, a
    FAIL for that image although the map changed completely (MPRT's
    Spearman correlation is 0 for it). ``randomised_entropy`` 0 shows
    those images.
    """

    name = "eMPRT"
    uses_ssim = False

    def __init__(self, n_bins: int = 100, seed: int = 0,
                 threshold: float | None = None) -> None:
        super().__init__(seed, threshold)
        self.n_bins: int = check_positive_int("n_bins", n_bins)

    def run(self, inputs: torch.Tensor, targets: list[Callable] | None, model: torch.nn.Module,
            runner: CamRunner) -> SanityResult:
        duplicate = model_copy(model)
        before = histogram_entropy(runner.maps(model, inputs, targets), self.n_bins).double()
        layers = list(cascading(duplicate, self.seed))
        after = histogram_entropy(runner.maps(duplicate, inputs, targets, randomised=True),
                                  self.n_bins).double()
        ratio = torch.where(before > 0, after / before.clamp_min(1e-300),
                            torch.where(after > 0, torch.full_like(after, math.inf),
                                        torch.ones_like(after)))
        details = {"original_entropy": before.float().cpu().numpy(),
                   "randomised_entropy": after.float().cpu().numpy()}
        return SanityResult(self.name, "ratio of the map's histogram entropy, randomised / "
                            "trained", ratio.float().cpu().numpy(), self.threshold, details,
                            tuple(layers))


def other_classes(classes: torch.Tensor, n_classes: int, seed: int) -> torch.Tensor:
    """The random other class of each class of ``classes``: class c gets
    (c + offset_c) mod n_classes, offset_c in 1 .. n_classes - 1 drawn for
    every class from seed ``seed``. An image's other class depends only on
    its class and the seed, not on the rest of the batch."""
    if n_classes < 2:
        raise ValueError(f"the random logit test needs a model with at least 2 classes; its "
                         f"output has {n_classes}")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(1, n_classes, (n_classes,), generator=generator)
    classes = classes.cpu().long()
    return (classes + offsets[classes]) % n_classes


class RandomLogitTest(_Check):
    """The random logit test (Sixt et al. 2020), as Quantus's
    ``RandomLogit`` (``quantus/metrics/randomisation/random_logit.py``):
    the map of each image's class compared with the map of a random other
    class (:func:`other_classes`, seeded), both explaining the class's
    logit (``ClassifierOutputTarget``). The class is the target's
    ``category`` (``ClassifierOutputTarget`` and its subclasses), or, with
    ``targets=None``, the model's top class.

    Values: the SSIM of the two maps (Sixt et al.'s and Quantus's measure;
    11 x 11 Gaussian window, maps scaled to [0, 1]); details ``ssim``,
    ``spearman`` (of the absolute maps), ``class`` and ``other_class``. A
    method whose map ignores the class scores about 1; it passes below
    ``threshold`` (0.5).
    """

    name = "RandomLogit"
    needs_classes = True

    def run(self, inputs: torch.Tensor, targets: list[Callable] | None, model: torch.nn.Module,
            runner: CamRunner) -> SanityResult:
        assert targets is not None  # needs_classes
        for index, target in enumerate(targets):
            if not isinstance(target, ClassifierOutputTarget):
                raise TypeError(f"targets[{index}] is {given(target)}; the random logit test "
                                "needs class targets (ClassifierOutputTarget) or None")
        with model_state_guard(model), torch.inference_mode():
            outputs = select_output(model(inputs[:1]))
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            raise ValueError("the random logit test needs a classifier whose output is a "
                             f"B x classes tensor, got {given(outputs)}")
        classes = torch.tensor([int(getattr(t, "category", -1)) for t in targets])
        if bool((classes < 0).any()):
            raise ValueError(f"targets hold negative class indices ({classes.tolist()}); give "
                             "class indices from 0")
        others = other_classes(classes, outputs.shape[1], self.seed)
        first = runner.maps(model, inputs, [ClassifierOutputTarget(int(c)) for c in classes])
        second = runner.maps(model, inputs, [ClassifierOutputTarget(int(c)) for c in others])
        details = {"ssim": ssim(first, second).cpu().numpy(),
                   "spearman": spearman(first.abs(), second.abs()).cpu().numpy(),
                   "class": classes.numpy(), "other_class": others.numpy()}
        return SanityResult(self.name, "SSIM of the maps of the class and of a random other "
                            "class", details["ssim"], self.threshold, details)


#: the check of each name, with the settings ``evaluate_cam_methods`` uses
_EVALUATE_CHECKS: dict[str, Callable[[], _Check]] = {
    "MPRT": lambda: MPRT(independent=False), "sMPRT": SmoothMPRT, "eMPRT": EfficientMPRT,
    "RandomLogit": RandomLogitTest}


def sanity_results(names: Sequence[str], inputs: torch.Tensor,
                   targets: Sequence[Callable] | None, model: torch.nn.Module, method: Any,
                   target_layers: Sequence[Any] | None, method_kwargs: dict[str, Any] | None,
                   reshape_transform: Callable | None) -> dict[str, SanityResult]:
    """The checks ``names`` (of ``SANITY_CHECKS``) of one method, each with
    its default settings (MPRT without its independent steps: only the
    cascade decides the verdict), by name."""
    return {name: _EVALUATE_CHECKS[name]()(inputs, targets, model, method, target_layers,
                                           method_kwargs=method_kwargs,
                                           reshape_transform=reshape_transform)
            for name in names}


def sanity_values(names: Sequence[str], inputs: torch.Tensor, targets: Sequence[Callable],
                  model: torch.nn.Module, method: type, target_layers: Sequence[Any] | None,
                  method_kwargs: dict[str, Any], reshape_transform: Callable | None
                  ) -> dict[str, np.ndarray]:
    """Per-image values of :func:`sanity_results`."""
    return {name: result.values for name, result in sanity_results(
        names, inputs, targets, model, method, target_layers, method_kwargs,
        reshape_transform).items()}
