"""ROAD: RemOve And Debias.

Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods", ICML 2022,
https://arxiv.org/abs/2202.00449

Pixels are removed in order of the map (most relevant first, MoRF, or
least relevant first, LeRF) and replaced by the noisy linear imputation:
every removed pixel becomes the weighted mean of its 8 neighbours (weight
1/6 for the 4 direct, 1/12 for the 4 diagonal ones), which is a sparse
linear system over all removed pixels (:mod:`.imputation`), plus Gaussian
noise. Unlike replacing pixels by a constant, the imputed image does not
leak the shape of the removed region to the model. A faithful map makes
the score fall fast under MoRF and slowly under LeRF. The imputations are
made chunk by chunk with the forward passes, so the progress bar of
``progress=True`` ("ROAD ... (imputing + scoring)") counts them too.

Which pixels are removed (``removal``, see RemoveMostRelevantFirst):

- ``"threshold"`` (the default): grad-cam 1.5.7's rule, the pixels at or
  above ``np.percentile(map, percentile)`` (MoRF) or at or below the
  mirrored percentile (LeRF). On maps with ties (the flat zero areas of a
  CAM after its ReLU) this removes more or fewer pixels than the
  percentile says.
- ``"rank"``: exactly ``round((100 - percentile) / 100 * pixels)``
  pixels by rank, ties broken by a fixed pseudo-random order, as the ROAD
  paper's code does (it ranks the map plus 1e-4 x N(0, 1) and removes
  ``int(pixels * share)`` pixels).

The noise (``seed``): ``None`` (the default) draws it from torch's global
random generator per image in the order grad-cam 1.5.7 draws it, so that
1.5.7's code gets 1.5.7's numbers after the same ``torch.manual_seed``;
an int draws it from a generator seeded with it (the same noise in every
call).
"""
import numbers
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.imputation import (
    Solver,
    Weighting,
    check_solver,
    linear_imputation,
    neighbors_weights,
    weighting_kernel,
)
from pytorch_grad_cam.metrics.perturbation_confidence import (
    DEFAULT_PERCENTILES,
    AveragerAcrossThresholds,
    Percentile,
    PerturbationConfidenceMetric,
    Removal,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
    run_perturbations,
)
from pytorch_grad_cam.scoring import check_positive_int, check_seed

__all__ = ["NoisyLinearImputer", "ROADCombined", "ROADLeastRelevantFirst",
           "ROADLeastRelevantFirstAverage", "ROADMostRelevantFirst",
           "ROADMostRelevantFirstAverage", "linear_imputation", "neighbors_weights"]

T = TypeVar("T")


class NoisyLinearImputer:
    """The noisy linear imputation of ROAD.

    ``imputer(img, mask)``: ``img`` is C x H x W (or a batch B x C x H x W),
    ``mask`` H x W (or B x H x W) with 1 for the pixels kept and 0 for the
    pixels to impute. Every imputed pixel is the weighted mean of its
    neighbours plus ``noise`` x N(0, 1).

    Args:
        noise: standard deviation of the added noise, in the units of the
            input (0 for none); 0.01 as in the paper's code.
        weighting: (offset, weight) of the neighbours; must be symmetric.
            (grad-cam 1.5.7 accepts this argument but ignores it.)
        seed: ``None`` (default): per image, the noise of its n imputed
            pixels is ``torch.randn(C, n)`` from torch's global generator,
            as grad-cam 1.5.7 draws it (the same numbers after the same
            ``torch.manual_seed``). An int: the
            noise is ``torch.randn(C, H, W, generator=torch.Generator()
            .manual_seed(seed)) * noise``, the same for every image and call.
        tol, max_iter: accuracy of the ``"cg"`` solve (see linear_imputation).
        solver: ``"auto"`` (SciPy's sparse LU when SciPy is installed, else
            conjugate gradients), ``"direct"`` or ``"cg"`` (see
            :mod:`pytorch_grad_cam.metrics.imputation`).
    """

    batched = True

    def __init__(self, noise: float = 0.01, weighting: Weighting = neighbors_weights,
                 seed: int | None = None, tol: float = 1e-5, max_iter: int | None = None,
                 solver: Solver = "auto") -> None:
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not noise >= 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}")
        if not (isinstance(tol, numbers.Real) and tol > 0):
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        self.noise: float = float(noise)
        self.weighting: list = list(weighting)
        weighting_kernel(self.weighting)
        self.seed: int | None = None if seed is None else check_seed(seed)
        self.tol: float = float(tol)
        self.max_iter: int | None = max_iter
        check_solver(solver)
        self.solver: Solver = solver

    def __call__(self, img: torch.Tensor, mask: Maps) -> torch.Tensor:
        single = img.dim() == 3
        images = img[None] if single else img
        if images.dim() != 4:
            raise ValueError(f"img must be C x H x W or B x C x H x W, "
                             f"got shape {tuple(img.shape)}")
        known = torch.as_tensor(mask, device=images.device)
        known = (known[None] if single else known) > 0.5
        if tuple(known.shape) != (images.shape[0],) + tuple(images.shape[2:]):
            raise ValueError(f"mask has shape {tuple(torch.as_tensor(mask).shape)}, expected "
                             f"{tuple(images.shape[2:])} per image")
        with torch.inference_mode():
            work = images.float()
            filled = linear_imputation(work, known, self.weighting, self.tol, self.max_iter,
                                       self.solver)
            if self.noise > 0:
                filled = torch.where(known[:, None], filled, filled + self._noise(known, images.shape[1]))
            filled = filled.to(images.dtype)
        return filled[0] if single else filled

    def _noise(self, known: torch.Tensor, channels: int) -> torch.Tensor:
        """The noise of the imputed pixels, n x C x H x W (``where`` keeps it
        off the known pixels)."""
        batch, height, width = known.shape
        if self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.randn((channels, height, width), generator=generator)
            return noise.to(known.device)[None] * self.noise
        noise = torch.zeros((batch, channels, height * width))
        unknown = (~known).flatten(1).cpu()
        for index in range(batch):  # 1.5.7's draw, image by image
            pixels = torch.nonzero(unknown[index]).flatten()
            # 1.5.7: randn_like of the transpose of its float32 solution, which
            # scipy returns in Fortran order: the same numbers as this
            noise[index][:, pixels] = torch.randn((channels, pixels.numel()))
        return noise.reshape(batch, channels, height, width).to(known.device) * self.noise


def _percentiles(percentiles: Sequence[Percentile]) -> list[Percentile]:
    percentiles = list(percentiles)
    if not percentiles:
        raise ValueError("percentiles is empty; give at least one, e.g. [20, 40, 60, 80]")
    return percentiles


#: what the ROAD classes' shared keyword arguments mean
_ROAD_ARGS = """
    Arguments shared by the ROAD classes:
        batch_size: images per forward pass (default 64 on a GPU, 8 on a CPU).
        noise: standard deviation of the imputation's noise (0.01).
        seed: ``None`` (default): the noise comes from torch's global
            generator, drawn as grad-cam 1.5.7 draws it; an int: from a
            generator seeded with it, the same in every call (and the
            tie-breaking order of ``removal="rank"``, else seed 0).
        removal: ``"threshold"`` (default): grad-cam 1.5.7's rule, the
            pixels at or above ``np.percentile(map, percentile)`` are removed
            (MoRF; LeRF the same on ``1 - map``), so on maps with ties the
            count removed differs from the percentile's; ``"rank"``: exactly
            ``round((100 - percentile) / 100 x pixels)`` pixels by rank,
            ties broken by a fixed pseudo-random order, as the ROAD paper's
            code does (see RemoveMostRelevantFirst).
        solver: the imputation's solver (see NoisyLinearImputer).
        progress: show a progress bar of the imputed passes.
"""


def _with_road_args(cls: type[T]) -> type[T]:
    """``cls`` with the shared arguments' description appended to its docstring."""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + _ROAD_ARGS
    return cls


def _removal_args(percentile: Percentile, noise: float, seed: int | None, removal: Removal,
                  solver: Solver) -> tuple:
    """(percentile, imputer) and the keywords of RemoveMost/LeastRelevantFirst."""
    imputer = NoisyLinearImputer(noise, seed=seed, solver=solver)
    return (percentile, imputer), {"seed": 0 if seed is None else seed, "removal": removal}


@_with_road_args
class ROADMostRelevantFirst(PerturbationConfidenceMetric):
    """ROAD, most relevant first: score after imputing the most relevant
    pixels minus the score before (per image; lower is better, a faithful
    map loses the score).

    ``percentile``: the share of pixels kept, in percent; the default 80
    removes the 20 % most relevant pixels (as in grad-cam 1.5.7).
    """

    def __init__(self, percentile: Percentile = 80, batch_size: int | None = None,
                 noise: float = 0.01, seed: int | None = None, progress: bool = False,
                 removal: Removal = "threshold", solver: Solver = "auto") -> None:
        args, kwargs = _removal_args(percentile, noise, seed, removal, solver)
        super().__init__(RemoveMostRelevantFirst(*args, **kwargs), batch_size, progress=progress,
                         desc=f"ROAD MoRF {percentile} (imputing + scoring)")


@_with_road_args
class ROADLeastRelevantFirst(PerturbationConfidenceMetric):
    """ROAD, least relevant first: score after imputing the least relevant
    pixels minus the score before (per image; higher is better, a faithful
    map keeps the score).

    ``percentile``: the share of pixels kept, in percent; the default 20
    removes the 80 % least relevant pixels (as in grad-cam 1.5.7).
    """

    def __init__(self, percentile: Percentile = 20, batch_size: int | None = None,
                 noise: float = 0.01, seed: int | None = None, progress: bool = False,
                 removal: Removal = "threshold", solver: Solver = "auto") -> None:
        args, kwargs = _removal_args(percentile, noise, seed, removal, solver)
        super().__init__(RemoveLeastRelevantFirst(*args, **kwargs), batch_size,
                         progress=progress, desc=f"ROAD LeRF {percentile} (imputing + scoring)")


@_with_road_args
class ROADMostRelevantFirstAverage(AveragerAcrossThresholds):
    """ROADMostRelevantFirst averaged over ``percentiles`` (one batched
    pass; the percentiles' imputations in 1.5.7's order)."""

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int | None = None,
                 progress: bool = False, removal: Removal = "threshold",
                 solver: Solver = "auto") -> None:
        super().__init__(lambda p: ROADMostRelevantFirst(p, batch_size, noise, seed,
                                                         removal=removal, solver=solver),
                         _percentiles(percentiles), batch_size, progress=progress,
                         desc="ROAD MoRF (imputing + scoring)")


@_with_road_args
class ROADLeastRelevantFirstAverage(AveragerAcrossThresholds):
    """ROADLeastRelevantFirst averaged over ``percentiles`` (one batched
    pass; the percentiles' imputations in 1.5.7's order)."""

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int | None = None,
                 progress: bool = False, removal: Removal = "threshold",
                 solver: Solver = "auto") -> None:
        super().__init__(lambda p: ROADLeastRelevantFirst(p, batch_size, noise, seed,
                                                          removal=removal, solver=solver),
                         _percentiles(percentiles), batch_size, progress=progress,
                         desc="ROAD LeRF (imputing + scoring)")


@_with_road_args
class ROADCombined:
    """(LeRF average - MoRF average) / 2 over ``percentiles``, per image:
    higher is better. The score before removal cancels, so this is the mean
    over the percentiles of (score after LeRF - score after MoRF) / 2. This
    one-number summary is grad-cam 1.5.7's; the paper reports the two
    curves. All 2 x len(percentiles) imputations run in one batched pass,
    the LeRF ones first, as 1.5.7 makes them.
    """

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int | None = None,
                 progress: bool = False, removal: Removal = "threshold",
                 solver: Solver = "auto") -> None:
        self.percentiles = _percentiles(percentiles)
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress = bool(progress)
        self.morf = [ROADMostRelevantFirst(p, batch_size, noise, seed, removal=removal,
                                           solver=solver).perturbation
                     for p in self.percentiles]
        self.lerf = [ROADLeastRelevantFirst(p, batch_size, noise, seed, removal=removal,
                                            solver=solver).perturbation
                     for p in self.percentiles]

    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module) -> np.ndarray:
        _, after = run_perturbations(input_tensor, cams, targets, model, self.lerf + self.morf,
                                     self.batch_size, need_original=False,
                                     progress=self.progress,
                                     desc="ROADCombined (imputing + scoring)")
        count = len(self.percentiles)
        combined = (after[:count].mean(dim=0) - after[count:].mean(dim=0)) / 2
        return combined.cpu().numpy().astype(np.float32)
