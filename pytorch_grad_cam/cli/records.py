"""What a run of the image command passes around: :class:`Job` (everything
the run needs, checked by :func:`pytorch_grad_cam.cli.job.prepare`) and
:class:`ImageResult` (one image explained, what the pictures and any
scoring are made from)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS

__all__ = ["ImageResult", "Job"]


@dataclass
class Job:
    """Everything a run needs, checked."""

    images: list[Path]
    methods: list[str]
    device: torch.device
    model: torch.nn.Module
    model_name: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_layers: list[torch.nn.Module]
    layer_names: list[str]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None
    category: int | None
    class_names: list[str] | None
    output_dir: Path
    #: how the target layers were chosen: "table", "probe", or None (--target-layer)
    layer_source: str | None = None
    #: the channels of every target layer's map (the cost of the perturbation methods)
    channels: list[int] = field(default_factory=list)
    #: what --method all left out on this device (the sampling methods on a CPU)
    left_out: list[str] = field(default_factory=list)
    #: what --method all left out because the model is not a Vision Transformer
    #: whose attention the library can read (the attention methods on a CNN)
    not_applicable: list[str] = field(default_factory=list)
    #: the parts of the file names after the image's name: the model (unless it is
    #: the default) and the explained class (when it was given)
    name_parts: list[str] = field(default_factory=list)
    aug_smooth: bool = False
    eigen_smooth: bool = False
    #: with --sess: SESS's options (every method is wrapped in SESS), else None
    sess: dict[str, Any] | None = None
    batch_size: int | None = None
    progress: bool = True
    guided_backprop: bool = True
    evaluate: bool = False
    #: --max-pixels: images with more pixels (by their header) are refused
    max_pixels: int = MAX_READ_PIXELS
    cams: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """One image explained: what the pictures (and any scoring) are made from."""

    path: Path
    bgr: np.ndarray                 # the image pictured, uint8 H x W x 3, BGR (image_io.bounded_copy)
    input_tensor: torch.Tensor      # 1 x 3 x S x S, normalised, on the model's device
    probabilities: np.ndarray       # softmax over the classes
    category: int                   # the explained class
    maps: dict[str, np.ndarray]     # method -> S x S map in [0, 1]
    guided: np.ndarray | None       # S x S x 3 guided backpropagation (RGB), or None
