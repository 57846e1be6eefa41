"""Metrics that perturb the input according to the map and compare the
target score before and after.

Every metric takes ``(input_tensor, cams, targets, model)``: the model's
inputs (B x C x H x W, as the model wants them, normalised), the maps
(numpy or torch, B x H x W, values in [0, 1]), one target callable per
image (``None``: each image's top class) and the model. The perturbed
inputs are built ``batch_size`` at a time on the model's device and run
under ``torch.inference_mode`` with the model in eval mode; the model's
state is put back afterwards. Scores come back as float32 numpy arrays, one
value per image.
"""
import numbers
from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np
import torch

from pytorch_grad_cam.metrics._common import Maps, perturbation_run, relevance_rank
from pytorch_grad_cam.scoring import check_positive_int, check_seed, chunked_scores

DEFAULT_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)

#: a percentile of pixels kept, in [0, 100], or "auto" (Otsu's threshold)
Percentile = float | Literal["auto"]
#: how the pixels to remove are chosen: grad-cam 1.5.7's percentile threshold, or exactly by rank
Removal = Literal["threshold", "rank"]
REMOVALS = ("threshold", "rank")
#: the per-image values, or with ``return_visualization`` also the perturbed inputs
WithVisualization = np.ndarray | tuple[np.ndarray, torch.Tensor | None]


def apply_perturbation(perturbation: Callable, inputs: torch.Tensor,
                       cams: torch.Tensor) -> torch.Tensor:
    """Run a perturbation on a chunk of images. Perturbations of this
    library (``batched = True``) take the whole chunk; any other callable
    is called per image with (C x H x W input, H x W map), as grad-cam
    1.5.7 does."""
    if getattr(perturbation, "batched", False):
        return perturbation(inputs, cams)
    return torch.stack([torch.as_tensor(perturbation(x, cam)).to(inputs)
                        for x, cam in zip(inputs, cams)])


def original_scores(model: torch.nn.Module, inputs: torch.Tensor,
                    targets: Sequence[Callable] | None, batch_size: int,
                    output_selector: Callable | None = None, progress: bool = False,
                    desc: str = "") -> tuple[torch.Tensor, list[Callable]]:
    """The target scores of the unperturbed inputs, chunked; targets=None
    resolves to each image's top class. Returns (scores, targets)."""
    return chunked_scores(model, inputs.shape[0], lambda start, stop: inputs[start:stop], None,
                          targets, batch_size, output_selector, progress=progress, desc=desc)


def perturbed_scores(model: torch.nn.Module, inputs: torch.Tensor, cams: torch.Tensor,
                     perturbations: Sequence[Callable], targets: Sequence[Callable] | None,
                     batch_size: int, keep_inputs: bool = False,
                     output_selector: Callable | None = None, progress: bool = False,
                     desc: str = "") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores of every image under every perturbation: P x B.

    The work list is perturbation-major; each chunk of ``batch_size`` rows
    is built when it is needed (inside the progress bar ``desc`` when
    ``progress``). With ``keep_inputs`` the perturbed inputs are returned
    too (P * B x C x H x W), else None."""
    batch, count = inputs.shape[0], inputs.shape[0] * len(perturbations)
    owners = torch.arange(batch, device=inputs.device).repeat(len(perturbations))
    kept: list[torch.Tensor] = []

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        parts, index = [], start
        while index < stop:
            which, first = divmod(index, batch)
            last = min(batch, first + stop - index)
            parts.append(apply_perturbation(perturbations[which], inputs[first:last],
                                            cams[first:last]))
            index += last - first
        chunk = torch.cat(parts).to(inputs.dtype)
        if keep_inputs:
            kept.append(chunk)
        return chunk

    scores, _ = chunked_scores(model, count, make_inputs, owners, targets, batch_size,
                               output_selector, progress=progress, desc=desc)
    return scores.reshape(len(perturbations), batch), (torch.cat(kept) if keep_inputs else None)


class PerturbationConfidenceMetric:
    """Target score of the perturbed input minus that of the input.

    Args:
        perturbation: ``perturbation(inputs, cams) -> perturbed inputs``;
            with attribute ``batched = True`` it gets n x C x H x W inputs
            and n x H x W maps, otherwise one image at a time (C x H x W,
            H x W) as in grad-cam 1.5.7.
        batch_size: images per forward pass (default 64 on a GPU, 8 on a
            CPU).
        progress: show a progress bar of the perturbed passes.
        desc: the bar's description (default: the class name).
    """

    def __init__(self, perturbation: Callable, batch_size: int | None = None,
                 progress: bool = False, desc: str | None = None) -> None:
        if not callable(perturbation):
            raise TypeError(f"perturbation must be callable, got {perturbation!r}")
        self.perturbation = perturbation
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress = bool(progress)
        self.desc = type(self).__name__ if desc is None else str(desc)

    def scores(self, input_tensor: torch.Tensor, cams: Maps,
               targets: Sequence[Callable] | None, model: torch.nn.Module,
               return_visualization: bool = False, need_original: bool = True
               ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(original scores or None, perturbed scores, perturbed inputs or
        None) as torch tensors."""
        with perturbation_run(input_tensor, cams, targets, model, self.batch_size) as run:
            inputs, cams, targets, batch_size = run
            before = None
            if need_original or targets is None:
                before, targets = original_scores(model, inputs, targets, batch_size)
            after, visualization = perturbed_scores(model, inputs, cams, [self.perturbation],
                                                    targets, batch_size, return_visualization,
                                                    progress=self.progress, desc=self.desc)
        return before, after[0], visualization

    @overload
    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_visualization: Literal[False] = False,
                 return_diff: bool = True) -> np.ndarray: ...
    @overload
    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_visualization: bool = False,
                 return_diff: bool = True) -> WithVisualization: ...

    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_visualization: bool = False,
                 return_diff: bool = True) -> WithVisualization:
        """Per image: :meth:`compare` of the scores of the input and of the
        perturbed input (here score(perturbed) - score(input) with
        ``return_diff=True``, else score(perturbed)). With
        ``return_visualization`` also the perturbed inputs (a tensor on the
        model's device)."""
        before, after, visualization = self.scores(input_tensor, cams, targets, model,
                                                   return_visualization,
                                                   self.needs_original(return_diff))
        result = self.compare(before, after, return_diff).cpu().numpy().astype(np.float32)
        return (result, visualization) if return_visualization else result

    def needs_original(self, return_diff: bool) -> bool:
        """Whether :meth:`compare` needs the scores of the unperturbed input."""
        return return_diff

    def compare(self, before: torch.Tensor | None, after: torch.Tensor,
                return_diff: bool) -> torch.Tensor:
        """The metric's value per image from the target scores of the input
        (``before``; None unless :meth:`needs_original`) and of the
        perturbed input (``after``): the one override of a metric."""
        if not return_diff:
            return after
        assert before is not None  # needs_original(return_diff)
        return after - before


def _check_percentile(percentile: Percentile) -> Percentile:
    if isinstance(percentile, str):
        if percentile != "auto":
            raise ValueError(f"percentile must be a number in [0, 100] or 'auto', "
                             f"got {percentile!r}")
        return percentile
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
        raise TypeError(f"percentile must be a number in [0, 100] or 'auto', got {percentile!r}")
    value = float(percentile)
    if not 0 <= value <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return value


def otsu_threshold(cams: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold of every map (B x ...), on the maps quantised to
    256 levels as OpenCV's THRESH_OTSU sees ``uint8(255 * map)``: the
    returned level t (0..255) splits the pixels into <= t and > t."""
    levels = (cams.flatten(1).clamp(0, 1) * 255).to(torch.int64)
    counts = torch.zeros(levels.shape[0], 256, dtype=torch.float64, device=cams.device)
    counts.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float64))
    values = torch.arange(256, dtype=torch.float64, device=cams.device)
    weight0 = counts.cumsum(dim=1)
    total = weight0[:, -1:]
    weight1 = total - weight0
    sum0 = (counts * values).cumsum(dim=1)
    mean0 = sum0 / weight0.clamp_min(1)
    mean1 = (sum0[:, -1:] - sum0) / weight1.clamp_min(1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return between.argmax(dim=1)


def _above_otsu(cams: torch.Tensor) -> torch.Tensor:
    """The pixels of each map whose ``uint8(255 * map)`` is above the map's
    Otsu threshold."""
    level = otsu_threshold(cams).reshape((-1,) + (1,) * (cams.dim() - 1))
    return (cams.clamp(0, 1) * 255).to(torch.int64) > level


def _percentile_keep(cams: torch.Tensor, percentile: float) -> torch.Tensor:
    """grad-cam 1.5.7's kept pixels: ``map < np.percentile(map, percentile)``
    per map (the threshold computed by numpy, compared in float32)."""
    flat = cams.flatten(1)
    levels = np.percentile(flat.cpu().numpy(), percentile, axis=1)
    threshold = torch.as_tensor(np.asarray(levels, dtype=np.float64), device=cams.device)
    return flat < threshold.to(flat.dtype)[:, None]


class RemoveMostRelevantFirst:
    """Replace the most relevant pixels of the input by the imputer's values.

    ``percentile`` is the share of pixels that are kept, in percent:
    ``percentile=80`` removes the 20 % most relevant pixels, as in grad-cam
    1.5.7. Which pixels go (``removal``):

    - ``"threshold"`` (default, grad-cam 1.5.7's rule): the pixels whose
      value is not below ``np.percentile(map, percentile)`` are removed.
      On maps with ties (the flat zero areas of a map after its ReLU) that
      removes more pixels than the percentile says (all of them when the
      percentile falls into a flat area at the map's minimum).
      ``"auto"`` thresholds ``uint8(255 * map)`` by Otsu's method and, as
      1.5.7 does, keeps the pixels above the threshold and removes the rest.
    - ``"rank"``: exactly ``round((100 - percentile) / 100 * pixels)``
      pixels are removed, by rank, ties broken by a fixed pseudo-random
      order (``seed``), as the ROAD paper's code does (Rong et al. 2022,
      github.com/tleemann/road_evaluation: it ranks the map plus a fixed
      1e-4 x N(0, 1) and removes that many pixels). ``"auto"`` removes
      the pixels above the map's Otsu threshold.

    Called with a batch (n x C x H x W inputs, n x H x W maps) or, as in
    1.5.7, with one image (C x H x W, H x W).
    """

    batched = True
    most_relevant = True

    def __init__(self, percentile: Percentile, imputer: Callable, seed: int = 0,
                 removal: Removal = "threshold") -> None:
        self.percentile = _check_percentile(percentile)
        if not callable(imputer):
            raise TypeError(f"imputer must be callable, got {imputer!r}")
        if removal not in REMOVALS:
            raise ValueError(f"removal must be one of {REMOVALS}, got {removal!r}")
        self.imputer = imputer
        self.seed = check_seed(seed)
        self.removal = removal

    def keep_mask(self, cams: torch.Tensor) -> torch.Tensor:
        """n x H x W boolean mask of the pixels kept."""
        if self.removal == "threshold":
            return self._threshold_keep(cams)
        if self.percentile == "auto":
            above = _above_otsu(cams)
            return ~above if self.most_relevant else above
        pixels = cams[0].numel()
        kept = int(round(self.percentile / 100 * pixels))
        rank = relevance_rank(cams, self.seed).reshape(cams.shape)
        if self.most_relevant:
            return rank >= pixels - kept  # the `kept` least relevant stay
        return rank < kept  # the `kept` most relevant stay

    def _threshold_keep(self, cams: torch.Tensor) -> torch.Tensor:
        """1.5.7's rule; LeRF is MoRF of ``1 - map`` (computed in float32)."""
        values = cams.float() if self.most_relevant else 1 - cams.float()
        if self.percentile == "auto":
            return _above_otsu(values)
        return _percentile_keep(values, self.percentile).reshape(cams.shape)

    def __call__(self, input_tensor: torch.Tensor, mask: Maps) -> torch.Tensor:
        single = input_tensor.dim() == 3
        inputs = input_tensor[None] if single else input_tensor
        cams = torch.as_tensor(mask, device=inputs.device, dtype=torch.float32)
        cams = cams[None] if single else cams
        result = self.imputer(inputs, self.keep_mask(cams).to(inputs.dtype))
        return result[0] if single else result


class RemoveLeastRelevantFirst(RemoveMostRelevantFirst):
    """Replace the least relevant pixels of the input by the imputer's
    values: the ``100 - percentile`` % pixels of lowest map value are
    removed (``percentile=20`` removes the bottom 80 %), as in grad-cam
    1.5.7. ``removal="threshold"`` (default) is 1.5.7's rule on ``1 -
    map``: the pixels whose ``1 - map`` is not below its percentile go (see
    RemoveMostRelevantFirst for ties, ``"rank"`` and ``"auto"``)."""

    most_relevant = False


class AveragerAcrossThresholds:
    """The mean of a metric over several percentiles.

    ``imputer(percentile)`` makes the metric for one percentile (for
    example ``ROADMostRelevantFirst``). When it is a
    PerturbationConfidenceMetric all percentiles run in one batched pass
    that shares the unperturbed forward pass (one progress bar with
    ``progress``, described by ``desc``, default the class name).
    """

    def __init__(self, imputer: Callable, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, progress: bool = False,
                 desc: str | None = None) -> None:
        if not callable(imputer):
            raise TypeError(f"imputer must be callable, got {imputer!r}")
        percentiles = list(percentiles)
        if not percentiles:
            raise ValueError("percentiles is empty; give at least one, e.g. [20, 40, 60, 80]")
        for percentile in percentiles:
            _check_percentile(percentile)
        self.imputer = imputer
        self.percentiles = percentiles
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress = bool(progress)
        self.desc = type(self).__name__ if desc is None else str(desc)

    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module) -> np.ndarray:
        metrics = [self.imputer(percentile) for percentile in self.percentiles]
        if not all(isinstance(m, PerturbationConfidenceMetric) for m in metrics):
            return np.mean(np.asarray([m(input_tensor, cams, targets, model) for m in metrics],
                                      dtype=np.float32), axis=0)
        batch_size = self.batch_size or metrics[0].batch_size
        before, after = run_perturbations(input_tensor, cams, targets, model,
                                          [m.perturbation for m in metrics], batch_size,
                                          progress=self.progress, desc=self.desc)
        return (after - before).mean(dim=0).cpu().numpy().astype(np.float32)


@overload
def run_perturbations(input_tensor: torch.Tensor, cams: Maps,
                      targets: Sequence[Callable] | None, model: torch.nn.Module,
                      perturbations: Sequence[Callable], batch_size: int | None,
                      need_original: Literal[True] = True, progress: bool = False,
                      desc: str = "") -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def run_perturbations(input_tensor: torch.Tensor, cams: Maps,
                      targets: Sequence[Callable] | None, model: torch.nn.Module,
                      perturbations: Sequence[Callable], batch_size: int | None,
                      need_original: bool = True, progress: bool = False,
                      desc: str = "") -> tuple[torch.Tensor | None, torch.Tensor]: ...


def run_perturbations(input_tensor: torch.Tensor, cams: Maps,
                      targets: Sequence[Callable] | None, model: torch.nn.Module,
                      perturbations: Sequence[Callable], batch_size: int | None,
                      need_original: bool = True, progress: bool = False,
                      desc: str = "") -> tuple[torch.Tensor | None, torch.Tensor]:
    """(original scores B or None, perturbed scores P x B) of several
    perturbations in one batched pass (a progress bar ``desc`` of the
    perturbed inputs with ``progress``)."""
    with perturbation_run(input_tensor, cams, targets, model, batch_size) as run:
        inputs, cams, targets, batch_size = run
        before = None
        if need_original or targets is None:
            before, targets = original_scores(model, inputs, targets, batch_size)
        after, _ = perturbed_scores(model, inputs, cams, perturbations, targets, batch_size,
                                    progress=progress, desc=desc)
    return before, after
