"""Deletion and insertion: the causal metrics of RISE.

Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018, https://arxiv.org/abs/1806.07421

Deletion starts from the input and replaces its pixels, most relevant
first, by a substrate (zeros); insertion starts from the substrate (a
blurred copy of the input) and puts the input's pixels back, most relevant
first. The target score is recorded after every step and the metric is the
area under that curve, with the fraction of pixels changed on the x axis
from 0 to 1 (trapezoidal rule). Deletion: lower is better; insertion:
higher is better. RISE scores class probabilities: use
``ClassifierOutputSoftmaxTarget`` targets for the paper's numbers.

All images x steps inputs are built lazily, ``batch_size`` at a time, on the
model's device, under ``torch.inference_mode`` with the model in eval mode.
"""
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, overload

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.metrics._common import Maps, perturbation_run, relevance_rank
from pytorch_grad_cam.metrics.perturbation_confidence import original_scores
from pytorch_grad_cam.scoring import check_positive_int, check_seed, chunked_scores
from pytorch_grad_cam.warn import warn_at_caller


def gaussian_blur(input_tensor: torch.Tensor, kernel_size: int = 11,
                  sigma: float = 5.0) -> torch.Tensor:
    """Each channel convolved with a Gaussian (zero padding), RISE's
    insertion substrate (kernel 11, sigma 5)."""
    radius = kernel_size // 2
    x = torch.arange(kernel_size, dtype=torch.float64) - radius
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(device=input_tensor.device, dtype=input_tensor.dtype)
    batch, channels, height, width = input_tensor.shape
    flat = input_tensor.reshape(batch * channels, 1, height, width)
    flat = F.conv2d(flat, g.reshape(1, 1, -1, 1), padding=(radius, 0))
    flat = F.conv2d(flat, g.reshape(1, 1, 1, -1), padding=(0, radius))
    return flat.reshape(input_tensor.shape)


def _zeros(input_tensor: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(input_tensor)


_SUBSTRATES = {"zero": _zeros, "blur": gaussian_blur}


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves sampled at n + 1 evenly spaced points of [0, 1]
    (trapezoidal rule), for every row."""
    steps = curves.shape[-1] - 1
    return (curves.sum(dim=-1) - (curves[..., 0] + curves[..., -1]) / 2) / steps


class CausalCurves(NamedTuple):
    """The result of ``DeletionAUC.curves`` / ``InsertionAUC.curves``."""

    #: per image the area under the curve (float32, B)
    areas: np.ndarray
    #: per image the target score after every step (float32, B x (n_steps + 1))
    curves: np.ndarray


class _CausalMetric:
    start_from_input = True
    default_substrate = "zero"
    label = ""

    def __init__(self, n_steps: int = 100, substrate: str | Callable | None = None,
                 batch_size: int | None = None, seed: int = 0, progress: bool = False,
                 desc: str | None = None) -> None:
        n_steps = check_positive_int("n_steps", n_steps)
        substrate = self.default_substrate if substrate is None else substrate
        if isinstance(substrate, str):
            if substrate not in _SUBSTRATES:
                raise ValueError(f"substrate must be one of {sorted(_SUBSTRATES)} or a callable, "
                                 f"got {substrate!r}")
            substrate = _SUBSTRATES[substrate]
        elif not callable(substrate):
            raise TypeError(f"substrate must be a name or a callable, got {substrate!r}")
        self.n_steps = int(n_steps)
        self.substrate = substrate
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.seed = check_seed(seed)
        self.progress = bool(progress)
        self.desc = f"{type(self).__name__} ({self.n_steps} steps)" if desc is None else str(desc)

    @overload
    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_curves: Literal[False] = False) -> np.ndarray: ...
    @overload
    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_curves: Literal[True]) -> CausalCurves: ...

    def __call__(self, input_tensor: torch.Tensor, cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 return_curves: bool = False) -> np.ndarray | CausalCurves:
        """Per image the area under the curve: a float32 numpy array B.
        For the curves as well, use :meth:`curves` (``return_curves=True``,
        which returns what it does, is deprecated)."""
        if return_curves:
            warn_at_caller("return_curves=True is deprecated; metric.curves(input_tensor, cams, "
                           "targets, model) returns (areas, curves)", DeprecationWarning)
            return self.curves(input_tensor, cams, targets, model)
        return self.curves(input_tensor, cams, targets, model).areas

    def curves(self, input_tensor: torch.Tensor, cams: Maps,
               targets: Sequence[Callable] | None, model: torch.nn.Module) -> CausalCurves:
        """Per image the area under the curve and the curve itself, the
        target score after every step: ``CausalCurves(areas, curves)``,
        float32 numpy arrays B and B x (n_steps + 1)."""
        with perturbation_run(input_tensor, cams, targets, model, self.batch_size) as run:
            inputs, cams, targets, batch_size = run
            batch = inputs.shape[0]
            pixels = cams[0].numel()
            if self.n_steps > pixels:
                raise ValueError(f"n_steps={self.n_steps} is more than the {pixels} pixels "
                                 "of an image; use at most one step per pixel")
            if targets is None:
                _, targets = original_scores(model, inputs, None, batch_size)
            substrate = self.substrate(inputs).to(inputs.dtype)
            if substrate.shape != inputs.shape:
                raise ValueError(f"the substrate has shape {tuple(substrate.shape)}, expected "
                                 f"the input's {tuple(inputs.shape)}")
            start, finish = (inputs, substrate) if self.start_from_input else (substrate, inputs)
            rank = relevance_rank(cams, self.seed).reshape(cams.shape)
            points = self.n_steps + 1
            # pixels changed at step s: floor(s * pixels / n_steps)
            changed = torch.arange(points, device=inputs.device) * pixels // self.n_steps
            owners = torch.arange(batch, device=inputs.device).repeat_interleave(points)

            def make_inputs(first: int, stop: int) -> torch.Tensor:
                index = torch.arange(first, stop, device=inputs.device)
                b, s = index // points, index % points
                swap = (rank[b] < changed[s].reshape((-1,) + (1,) * (cams.dim() - 1)))
                return torch.where(swap[:, None], finish[b], start[b])

            scores, _ = chunked_scores(model, batch * points, make_inputs, owners, targets,
                                       batch_size, progress=self.progress, desc=self.desc)
            curves = scores.reshape(batch, points)
            areas = auc(curves)
        return CausalCurves(areas.cpu().numpy().astype(np.float32),
                            curves.cpu().numpy().astype(np.float32))


class DeletionAUC(_CausalMetric):
    """RISE deletion: area under the score curve while the input's pixels
    are replaced, most relevant first, by the substrate (default: zeros,
    RISE's choice). Lower is better.

    Args:
        n_steps: steps of the curve; step s has floor(s * pixels / n_steps)
            pixels replaced (RISE replaces 224 pixels a step on 224 x 224
            images, n_steps=224).
        substrate: "zero", "blur" or a callable B x C x H x W -> same shape.
        batch_size: inputs per forward pass (default 64 on a GPU, 8 on a
            CPU).
        seed: order of equally relevant pixels (a fixed pseudo-random one).
        progress: show a progress bar of the images x (n_steps + 1) passes.
        desc: the bar's description (default: the class name and the steps).
    """


class InsertionAUC(_CausalMetric):
    """RISE insertion: area under the score curve while the input's pixels
    are put back into the substrate (default: the input blurred with a
    Gaussian of kernel 11 and sigma 5, RISE's choice), most relevant
    first. Higher is better. Arguments as DeletionAUC."""

    start_from_input = False
    default_substrate = "blur"
