"""Faithfulness correlation: do the pixels the map calls relevant move the
model's score?

Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020, https://arxiv.org/abs/2005.00631: for random
subsets S of ``|S|`` pixels, the Pearson correlation between the sum of the
map over S and the drop of the target score when the pixels of S are
replaced by a baseline,

    mu_F = corr_S( sum_{i in S} L_i , f(x) - f(x with x_S = baseline) )

in [-1, 1], higher is better (a faithful map puts its relevance where
removing pixels costs score).
"""
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.messages import given
from pytorch_grad_cam.metrics._common import Maps, perturbation_run
from pytorch_grad_cam.metrics.arcc import batch_pearson_coherency
from pytorch_grad_cam.metrics.perturbation_confidence import original_scores
from pytorch_grad_cam.scoring import check_positive_int, check_seed, chunked_scores


def random_subsets(pixels: int, n_runs: int, subset_size: int, seed: int) -> torch.Tensor:
    """The subsets :class:`FaithfulnessCorrelation` draws: ``n_runs`` x
    ``subset_size`` pixel indices (raster order, 0 .. pixels - 1), each row
    the first ``subset_size`` entries of a ``torch.randperm(pixels)`` of a
    generator seeded with ``seed`` (so no pixel twice in a row)."""
    if subset_size > pixels:
        raise ValueError(f"subset_size is {subset_size}, but the maps have only {pixels} "
                         "pixels; choose a subset_size of at most the number of pixels")
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(pixels, generator=generator)[:subset_size]
                        for _ in range(n_runs)])


def check_subsets(subsets: Any, batch: int, pixels: int) -> torch.Tensor:
    """Given subsets (``runs`` x ``size``, the same for every image, or
    B x ``runs`` x ``size``) as an int64 tensor 1 x runs x size or B x runs
    x size."""
    array = np.asarray(subsets.detach().cpu() if isinstance(subsets, torch.Tensor) else subsets)
    if array.dtype.kind not in "iu":
        raise TypeError(f"subsets must be integer pixel indices, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, batch) or array.shape[1] < 2 \
            or array.shape[2] < 1:
        raise ValueError(f"subsets has shape {np.asarray(subsets).shape}; expected (runs, size) "
                         f"or ({batch}, runs, size) pixel indices, with at least 2 runs")
    if array.min() < 0 or array.max() >= pixels:
        raise ValueError(f"subsets holds pixel indices from {array.min()} to {array.max()}; "
                         f"the maps have pixels 0 .. {pixels - 1} (raster order)")
    ordered = np.sort(array, axis=-1)
    repeated = np.argwhere((ordered[..., 1:] == ordered[..., :-1]).any(axis=-1))
    if len(repeated):
        image, run = repeated[0]
        where = f"[{image}, {run}]" if len(array) > 1 else f"[{run}]"
        raise ValueError(f"subsets{where} holds a pixel twice; each subset needs distinct pixels")
    return torch.as_tensor(array, dtype=torch.int64)


class FaithfulnessCorrelation:
    """Per image: the Pearson correlation over ``n_runs`` random subsets of
    ``subset_size`` pixels between the map's sum over the subset and the
    drop of the target score, score(input) - score(input with the subset
    replaced by ``baseline``) in every channel. In [-1, 1], higher is
    better; 0 when either side is constant over the runs (for example an
    all-zero map).

    Args:
        n_runs: subsets per image (at least 2; Quantus's default 100).
        subset_size: pixels per subset (Quantus's default 224).
        baseline: the value the subset's pixels get, in the model's input
            space (0: the mean colour of a mean-normalised input).
        seed: the seed of the subsets (:func:`random_subsets`): the same
            subsets for every image, so an image's value does not depend
            on the other images of the batch, on ``batch_size`` or on the
            device; the same seed gives the same value.
        batch_size: perturbed inputs per forward pass (default 64 on a GPU,
            8 on a CPU).
        progress: a progress bar of the perturbed passes, described by
            ``desc`` (default "FaithfulnessCorrelation").
    """

    def __init__(self, n_runs: int = 100, subset_size: int = 224, baseline: float = 0.0,
                 seed: int = 0, batch_size: int | None = None, progress: bool = False,
                 desc: str | None = None) -> None:
        self.n_runs: int = check_positive_int("n_runs", n_runs)
        if self.n_runs < 2:
            raise ValueError(f"n_runs must be at least 2 (a correlation needs two runs), "
                             f"got {n_runs}")
        self.subset_size: int = check_positive_int("subset_size", subset_size)
        if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real):
            raise TypeError(f"baseline must be a number (the value of the replaced pixels), "
                            f"got {given(baseline)}")
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        self.baseline: float = float(baseline)
        self.seed: int = check_seed(seed)
        self.batch_size: int | None = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress: bool = bool(progress)
        self.desc: str = type(self).__name__ if desc is None else str(desc)

    def __call__(self, input_tensor: torch.Tensor, grayscale_cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 subsets: Any = None) -> np.ndarray:
        """The values for a batch. ``subsets``: the pixel subsets to use
        instead of drawing them (then ``n_runs``, ``subset_size`` and
        ``seed`` are not used): integer pixel indices in raster order,
        runs x size (the same for every image) or B x runs x size (one set
        per image, as Quantus draws them)."""
        with perturbation_run(input_tensor, grayscale_cams, targets, model,
                              self.batch_size) as run:
            inputs, cams, targets, batch_size = run
            batch, pixels = cams.shape[0], cams[0].numel()
            chosen = (random_subsets(pixels, self.n_runs, self.subset_size, self.seed)[None]
                      if subsets is None else check_subsets(subsets, batch, pixels))
            chosen = chosen.to(inputs.device)
            runs, size = chosen.shape[1], chosen.shape[2]
            before, targets = original_scores(model, inputs, targets, batch_size)
            flat = inputs.flatten(2)  # B x C x pixels
            baseline = torch.tensor(self.baseline, dtype=inputs.dtype, device=inputs.device)

            def make_inputs(start: int, stop: int) -> torch.Tensor:
                index = torch.arange(start, stop, device=inputs.device)
                which, image = index // batch, index % batch  # run-major work list
                rows = chosen[image % chosen.shape[0], which]
                mask = torch.zeros(stop - start, pixels, dtype=torch.bool, device=inputs.device)
                mask.scatter_(1, rows, True)
                return torch.where(mask[:, None], baseline, flat[image]).reshape(
                    (stop - start,) + tuple(inputs.shape[1:]))

            owners = torch.arange(batch, device=inputs.device).repeat(runs)
            after, _ = chunked_scores(model, runs * batch, make_inputs, owners, targets,
                                      batch_size, progress=self.progress, desc=self.desc)
        drops = (before[None] - after.reshape(runs, batch)).T  # B x runs
        relevance = cams.flatten(1).double()[:, None].expand(batch, runs, pixels)
        sums = relevance.gather(2, chosen.expand(batch, runs, size)).sum(dim=2)
        return batch_pearson_coherency(sums, drops.double()).cpu().numpy()
