"""ROAD: RemOve And Debias.

Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods", ICML 2022,
https://arxiv.org/abs/2202.00449

Pixels are removed in order of the map (most relevant first, MoRF, or
least relevant first, LeRF) and replaced by the noisy linear imputation:
every removed pixel becomes the weighted mean of its 8 neighbours (weight
1/6 for the 4 direct, 1/12 for the 4 diagonal ones), which is a sparse
linear system over all removed pixels, plus Gaussian noise. Unlike
replacing pixels by a constant, the imputed image does not leak the shape
of the removed region to the model. A faithful map makes the score fall
fast under MoRF and slowly under LeRF. The imputations are made chunk by
chunk with the forward passes, so the progress bar of ``progress=True``
("ROAD ... (imputing + scoring)") counts them too.

The linear system is solved here in torch, batched, on the model's
device: conjugate gradients (the system is symmetric positive definite on
every region that touches a known pixel) preconditioned by the diagonal,
to a relative residual of ``tol``. A region with no known pixel at all
(nothing to interpolate from) is imputed with zeros.
"""
import numbers
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.perturbation_confidence import (
    DEFAULT_PERCENTILES,
    AveragerAcrossThresholds,
    Percentile,
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
    run_perturbations,
)
from pytorch_grad_cam.scoring import check_positive_int, check_seed

#: (offset (dy, dx), weight) of neighbours, as the imputation's ``weighting`` takes them
Weighting = Sequence[tuple[tuple[int, int], float]]

#: (offset (dy, dx), weight) of the neighbours in the imputation
neighbors_weights = [((1, 1), 1 / 12),
                     ((0, 1), 1 / 6),
                     ((-1, 1), 1 / 12),
                     ((1, -1), 1 / 12),
                     ((0, -1), 1 / 6),
                     ((-1, -1), 1 / 12),
                     ((1, 0), 1 / 6),
                     ((-1, 0), 1 / 6)]


def _kernel(weighting: Weighting) -> torch.Tensor:
    kernel = torch.zeros(3, 3, dtype=torch.float64)
    for entry in weighting:
        try:
            (dy, dx), weight = entry
        except (TypeError, ValueError) as error:
            raise ValueError(f"weighting entries must be ((dy, dx), weight), "
                             f"got {entry!r}") from error
        if not (dy in (-1, 0, 1) and dx in (-1, 0, 1)) or (dy, dx) == (0, 0):
            raise ValueError(f"weighting offsets must be neighbours in -1..1 other than (0, 0), "
                             f"got {(dy, dx)}")
        if not weight > 0:
            raise ValueError(f"weighting weights must be positive, got {weight}")
        kernel[1 + dy, 1 + dx] += float(weight)
    if not torch.equal(kernel, kernel.flip(0).flip(1)):
        raise ValueError("weighting must be symmetric: the weight of (dy, dx) must equal "
                         "that of (-dy, -dx)")
    return kernel


class _Laplacian:
    """The imputation operator on one grid: for an unknown pixel i,
    (L u)_i = S_i u_i - sum_n w_n u_n over its unknown neighbours n, where
    S_i is the sum of the weights of all its neighbours inside the image."""

    def __init__(self, kernel: torch.Tensor, shape: Sequence[int], device: torch.device,
                 dtype: torch.dtype) -> None:
        self.kernel = kernel.to(device=device, dtype=dtype)[None, None]
        # the default weights are (1 2 1)^T (1 2 1) / 12 without the centre:
        # two 1-D passes instead of a 3 x 3 convolution
        self.separable = torch.equal(kernel, _kernel(neighbors_weights))
        ones = torch.ones((1, 1) + tuple(shape), device=device, dtype=dtype)
        self.sums = self.neighbours(ones)

    def neighbours(self, values: torch.Tensor) -> torch.Tensor:
        """sum_n w_n values_n for every pixel (zero outside the image)."""
        height, width = values.shape[-2:]
        if self.separable:
            padded = F.pad(values, (1, 1, 1, 1))
            rows = padded[..., :height, :] + 2 * padded[..., 1:height + 1, :] \
                + padded[..., 2:, :]
            both = rows[..., :width] + 2 * rows[..., 1:width + 1] + rows[..., 2:]
            return (both - 4 * values) / 12
        batch, channels = values.shape[:2]
        flat = values.reshape((batch * channels, 1) + values.shape[2:])
        return F.conv2d(flat, self.kernel, padding=1).reshape(values.shape)


def _conjugate_gradients(operator: _Laplacian, unknown: torch.Tensor, rhs: torch.Tensor,
                         tol: float, max_iter: int) -> tuple[torch.Tensor, bool]:
    """Solve L u = rhs on the unknown pixels of every (image, channel) by
    conjugate gradients preconditioned with the diagonal, from u = 0;
    returns (solution, converged)."""
    diagonal = torch.where(unknown, operator.sums, torch.ones_like(operator.sums))

    def apply(u: torch.Tensor) -> torch.Tensor:
        return unknown * (operator.sums * u - operator.neighbours(u))

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).flatten(2).sum(dim=2)[..., None, None]

    x = torch.zeros_like(rhs)
    r = rhs
    z = r / diagonal
    p = z
    rz = dot(r, z)
    limit = (tol * rhs.flatten(2).norm(dim=2))[..., None, None]
    converged = False
    for iteration in range(max_iter):
        if iteration % 8 == 0 and bool((dot(r, r).sqrt() <= limit).all()):
            converged = True
            break
        ap = apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-30), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        z = r / diagonal
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    else:
        converged = bool((dot(r, r).sqrt() <= limit).all())
    return x, converged


def linear_imputation(image: torch.Tensor, known: torch.Tensor,
                      weighting: Weighting | None = None,
                      tol: float = 1e-5, max_iter: int | None = None) -> torch.Tensor:
    """Fill the unknown pixels of ``image`` (B x C x H x W) so that each is
    the weighted mean of its neighbours (the noise-free ROAD imputation).

    ``known`` (B x H x W, bool or 0/1) marks the pixels that keep their
    values. Solves the sparse linear system by diagonally preconditioned
    conjugate gradients to a relative residual of ``tol`` (the error of
    the imputed values is then about 1e-3 or less of the image's range on
    224 x 224 images; default ``max_iter``: 10 x (H + W)). A region of
    unknown pixels without any known neighbour gets zeros."""
    kernel = _kernel(neighbors_weights if weighting is None else weighting)
    known = known.to(torch.bool)[:, None]
    if bool(known.all()):
        return image.clone()
    height, width = image.shape[-2:]
    unknown = ~known
    operator = _Laplacian(kernel, (height, width), image.device, image.dtype)
    rhs = unknown * operator.neighbours(image * known)
    iterations = max_iter if max_iter is not None else 10 * (height + width)
    solution, converged = _conjugate_gradients(operator, unknown, rhs, tol, iterations)
    if not converged:
        warnings.warn(f"the ROAD imputation did not reach the relative residual {tol} in "
                      f"{iterations} iterations on a {height} x {width} grid; the imputed "
                      "values are approximate", RuntimeWarning, stacklevel=2)
    return torch.where(known, image, solution)


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
        seed: the noise is ``torch.randn(C, H, W, generator=
            torch.Generator().manual_seed(seed)) * noise``, the same for
            every image and call (1.5.7 draws it from the global RNG).
        tol, max_iter: accuracy of the linear solve (see linear_imputation).
    """

    batched = True

    def __init__(self, noise: float = 0.01, weighting: Weighting = neighbors_weights,
                 seed: int = 0, tol: float = 1e-5, max_iter: int | None = None) -> None:
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not noise >= 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}")
        if not (isinstance(tol, numbers.Real) and tol > 0):
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        self.noise: float = float(noise)
        self.weighting: list = list(weighting)
        _kernel(self.weighting)
        self.seed: int = check_seed(seed)
        self.tol: float = float(tol)
        self.max_iter: int | None = max_iter

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
            filled = linear_imputation(work, known, self.weighting, self.tol, self.max_iter)
            if self.noise > 0:
                generator = torch.Generator().manual_seed(self.seed)
                noise = torch.randn(tuple(images.shape[1:]), generator=generator)
                noise = noise.to(filled.device) * self.noise
                filled = torch.where(known[:, None], filled, filled + noise)
            filled = filled.to(images.dtype)
        return filled[0] if single else filled


def _percentiles(percentiles: Sequence[Percentile]) -> list[Percentile]:
    percentiles = list(percentiles)
    if not percentiles:
        raise ValueError("percentiles is empty; give at least one, e.g. [20, 40, 60, 80]")
    return percentiles


class ROADMostRelevantFirst(PerturbationConfidenceMetric):
    """ROAD, most relevant first: score after imputing the most relevant
    pixels minus the score before (per image; lower is better, a faithful
    map loses the score).

    ``percentile``: the share of pixels kept, in percent; the default 80
    removes the 20 % most relevant pixels (as in grad-cam 1.5.7; see
    RemoveMostRelevantFirst for how ties are ranked).
    """

    def __init__(self, percentile: Percentile = 80, batch_size: int | None = None,
                 noise: float = 0.01, seed: int = 0, progress: bool = False) -> None:
        super().__init__(RemoveMostRelevantFirst(percentile, NoisyLinearImputer(noise, seed=seed),
                                                 seed=seed), batch_size, progress=progress,
                         desc=f"ROAD MoRF {percentile} (imputing + scoring)")


class ROADLeastRelevantFirst(PerturbationConfidenceMetric):
    """ROAD, least relevant first: score after imputing the least relevant
    pixels minus the score before (per image; higher is better, a faithful
    map keeps the score).

    ``percentile``: the share of pixels kept, in percent; the default 20
    removes the 80 % least relevant pixels (as in grad-cam 1.5.7).
    """

    def __init__(self, percentile: Percentile = 20, batch_size: int | None = None,
                 noise: float = 0.01, seed: int = 0, progress: bool = False) -> None:
        super().__init__(RemoveLeastRelevantFirst(percentile, NoisyLinearImputer(noise, seed=seed),
                                                  seed=seed), batch_size, progress=progress,
                         desc=f"ROAD LeRF {percentile} (imputing + scoring)")


class ROADMostRelevantFirstAverage(AveragerAcrossThresholds):
    """ROADMostRelevantFirst averaged over ``percentiles`` (one batched
    pass)."""

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int = 0,
                 progress: bool = False) -> None:
        super().__init__(lambda p: ROADMostRelevantFirst(p, batch_size, noise, seed),
                         _percentiles(percentiles), batch_size, progress=progress,
                         desc="ROAD MoRF (imputing + scoring)")


class ROADLeastRelevantFirstAverage(AveragerAcrossThresholds):
    """ROADLeastRelevantFirst averaged over ``percentiles`` (one batched
    pass)."""

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int = 0,
                 progress: bool = False) -> None:
        super().__init__(lambda p: ROADLeastRelevantFirst(p, batch_size, noise, seed),
                         _percentiles(percentiles), batch_size, progress=progress,
                         desc="ROAD LeRF (imputing + scoring)")


class ROADCombined:
    """(LeRF average - MoRF average) / 2 over ``percentiles``, per image:
    higher is better. The score before removal cancels, so this is the mean
    over the percentiles of (score after LeRF - score after MoRF) / 2. This
    one-number summary is grad-cam 1.5.7's; the paper reports the two
    curves. All 2 x len(percentiles) imputations run in one batched pass.
    """

    def __init__(self, percentiles: Sequence[Percentile] = DEFAULT_PERCENTILES,
                 batch_size: int | None = None, noise: float = 0.01, seed: int = 0,
                 progress: bool = False) -> None:
        self.percentiles = _percentiles(percentiles)
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress = bool(progress)
        self.morf = [ROADMostRelevantFirst(p, batch_size, noise, seed).perturbation
                     for p in self.percentiles]
        self.lerf = [ROADLeastRelevantFirst(p, batch_size, noise, seed).perturbation
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
