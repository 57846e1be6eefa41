"""Complexity, Coherency and their combination with ROAD, ARCC.

Complexity and Coherency: Poppi, Cornia, Baraldi, Cucchiara, "Revisiting
The Evaluation of Class Activation Mapping for Explainability: A Novel
Metric and Experimental Analysis", CVPR Workshops 2021,
https://arxiv.org/abs/2104.10252 (they combine them with Average Drop into
ADCC).

ARCC: Domeniconi, Stramiglio, Lombardi, Salti, "How to Evaluate and Refine
your CAM", https://arxiv.org/abs/2605.14641: the harmonic mean of
Coherency, 1 - Complexity and ROAD (in place of ADCC's Average Drop).
"""
from collections.abc import Callable, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt
import torch

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.metrics._common import Maps, prepare_cams
from pytorch_grad_cam.metrics.perturbation_confidence import Percentile, Removal, original_scores
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.scoring import check_model, check_positive_int, check_targets, chunks, prepare_input


@overload
def batch_pearson_coherency(a: torch.Tensor, b: Maps) -> torch.Tensor: ...
@overload
def batch_pearson_coherency(a: np.ndarray, b: Maps) -> np.ndarray: ...


def batch_pearson_coherency(a: Maps, b: Maps) -> Maps:
    """Pearson correlation of every pair of maps (B x ...): a float32
    tensor, or a numpy array when ``a`` is one (as in grad-cam 1.5.7). A
    constant map correlates 0 with anything."""
    as_numpy = not isinstance(a, torch.Tensor)
    a = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).to(a.device)
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    covariance = (a * b).sum(dim=1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    rho = torch.where(norms > 0, covariance / norms.clamp_min(1e-300),
                      torch.zeros_like(norms)).float()
    return rho.cpu().numpy() if as_numpy else rho


class Complexity:
    """Per image: the L1 norm of the map divided by its number of pixels,
    mean ``|L|`` (in [0, 1] for maps in [0, 1]; lower is better, a simpler
    explanation)."""

    def __call__(self, grayscale_cams: Maps) -> np.ndarray:
        if isinstance(grayscale_cams, torch.Tensor):
            cams = grayscale_cams.detach().float()
        else:
            cams = torch.as_tensor(np.asarray(grayscale_cams, dtype=np.float32))
        if cams.dim() < 2:
            raise ValueError(f"grayscale_cams must be B x H x W, got shape {tuple(cams.shape)}")
        return cams.flatten(1).abs().mean(dim=1).cpu().numpy().astype(np.float32)


class Coherency:
    """Per image: (1 + rho) / 2, with rho the Pearson correlation between
    the map L(x) and the map of the input multiplied by it, L(x * L(x)),
    computed by the same method (``base_method``, a CAM object). A
    coherent explanation does not change when only what it shows is kept;
    in [0, 1], higher is better.

    ``batch_size`` images at a time are passed to ``base_method`` (default:
    the whole batch; the method chunks its own perturbation passes, with
    its own progress bar). ``progress``: a bar over those chunks of images,
    described by ``desc`` (default "Coherency").
    """

    def __init__(self, batch_size: int | None = None, progress: bool = False,
                 desc: str | None = None) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        self.progress = bool(progress)
        self.desc = "Coherency" if desc is None else str(desc)

    def __call__(self, input_tensor: torch.Tensor, grayscale_cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module,
                 base_method: BaseCAM) -> np.ndarray:
        check_model(model)
        if not callable(base_method):
            raise TypeError(f"base_method must be a CAM object (for example GradCAM(model, "
                            f"target_layers)), got {base_method!r}")
        with model_state_guard(model):
            inputs = prepare_input(input_tensor, model, volumes=False)
            cams = prepare_cams(grayscale_cams, inputs)
            targets = check_targets(targets, inputs.shape[0])
            step = self.batch_size or inputs.shape[0]
            if targets is None:  # the top class of the input, not of the masked input
                with torch.inference_mode():
                    _, targets = original_scores(model, inputs, None, step)
            masked = inputs * cams.unsqueeze(1).to(inputs.dtype)
            parts = []
            for start, stop in chunks(inputs.shape[0], step, self.desc, self.progress):
                parts.append(torch.as_tensor(base_method(input_tensor=masked[start:stop],
                                                         targets=targets[start:stop])))
            mixed = torch.cat(parts).to(cams.device)
        rho = batch_pearson_coherency(mixed, cams)  # tensors in, tensor out
        return ((rho + 1) / 2).cpu().numpy().astype(np.float32)


class ARCC:
    """Per image: 3 / (1 / Coherency + 1 / (1 - Complexity) + 1 / ROAD'),
    the harmonic mean of the three, with ROAD' = clip(2 x ROADCombined, 0,
    1) over ``road_percentiles`` (ROADCombined lies in [-0.5, 0.5] for
    probability targets). Higher is better. A 1e-8 guards each division,
    as in grad-cam 1.5.7.

    1.5.7's docstring calls this a geometric mean; its code, like this one,
    computes the harmonic mean. Use probability targets
    (``ClassifierOutputSoftmaxTarget``) as the paper's code does, so that
    ROAD' is meaningful. ``progress``: the progress bars of Coherency and
    ROAD. ``noise``, ``seed``, ``removal``: ROADCombined's (by default
    grad-cam 1.5.7's percentile threshold and noise from torch's global
    generator).
    """

    def __init__(self, base_method: BaseCAM,
                 road_percentiles: Sequence[Percentile] = (20, 40, 60, 80),
                 batch_size: int | None = None, noise: float = 0.01, seed: int | None = None,
                 progress: bool = False, removal: Removal = "threshold") -> None:
        if not callable(base_method):
            raise TypeError(f"base_method must be a CAM object, got {base_method!r}")
        self.base_method = base_method
        self.complexity = Complexity()
        self.coherency = Coherency(progress=progress)
        self.road = ROADCombined(percentiles=road_percentiles, batch_size=batch_size,
                                 noise=noise, seed=seed, progress=progress, removal=removal)

    def __call__(self, input_tensor: torch.Tensor, grayscale_cams: Maps,
                 targets: Sequence[Callable] | None, model: torch.nn.Module) -> np.ndarray:
        complexity = self.complexity(grayscale_cams)
        coherency = self.coherency(input_tensor, grayscale_cams, targets, model, self.base_method)
        road = self.road(input_tensor, grayscale_cams, targets, model)
        return arcc_from_parts(coherency, complexity, road)


def arcc_from_parts(coherency: npt.ArrayLike, complexity: npt.ArrayLike,
                    road: npt.ArrayLike) -> np.ndarray:
    """ARCC from per-image Coherency, Complexity and ROADCombined values."""
    coherency = np.asarray(coherency, dtype=np.float64)
    complexity = np.asarray(complexity, dtype=np.float64)
    road = np.clip(np.asarray(road, dtype=np.float64) * 2, 0, 1)
    value = 3 / (1 / (coherency + 1e-8) + 1 / (1 - complexity + 1e-8) + 1 / (road + 1e-8))
    return value.astype(np.float32)
