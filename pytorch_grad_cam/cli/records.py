"""What a run of the image command passes around: :class:`Job` (everything
the run needs, checked by :func:`pytorch_grad_cam.cli.job.prepare`) and
:class:`ImageResult` (one image explained for one of its classes, what the
pictures and any scoring are made from)."""
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
    #: the classes given (--target-category), explained for every image; None: chosen
    #: per image (--top-k, else the top class)
    categories: list[int] | None
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
    #: --top-k: each image's K best classes (None: not given)
    top_k: int | None = None
    #: --method recommended: the line that says which method it chose and why
    recommended: str | None = None
    #: the parts of the file names after the image's name: the model (unless it is
    #: the default), and "sess" with --sess
    name_parts: list[str] = field(default_factory=list)
    #: where the explained class goes among ``name_parts`` (after the model's name),
    #: or None when the file names carry no class (neither --target-category nor --top-k)
    class_position: int | None = None
    aug_smooth: bool = False
    eigen_smooth: bool = False
    #: with --sess: SESS's options (every method is wrapped in SESS), else None
    sess: dict[str, Any] | None = None
    batch_size: int | None = None
    progress: bool = True
    guided_backprop: bool = True
    evaluate: bool = False
    #: --sanity-checks: the checks run on every method and image (SANITY_CHECKS names)
    sanity_checks: list[str] = field(default_factory=list)
    #: --max-pixels: images with more pixels (by their header) are refused
    max_pixels: int = MAX_READ_PIXELS
    cams: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> int | None:
        """The one class given (``--target-category CLASS``), else None."""
        return self.categories[0] if self.categories is not None and \
            len(self.categories) == 1 else None

    @property
    def classes_per_image(self) -> int:
        """How many classes each image is explained for (one call per method)."""
        if self.categories is not None:
            return len(self.categories)
        return self.top_k or 1


@dataclass
class ImageResult:
    """One image explained for one class: what that class's pictures (and
    any scoring) are made from. An image explained for K classes has K of
    them, which share the image, its input and its predictions; their maps
    come from one call per method (:func:`pytorch_grad_cam.cli.job.compute_maps`)."""

    path: Path
    bgr: np.ndarray                 # the image pictured, uint8 H x W x 3, BGR (image_io.bounded_copy)
    input_tensor: torch.Tensor      # 1 x 3 x S x S, normalised, on the model's device
    probabilities: np.ndarray       # softmax over the classes
    category: int                   # the explained class
    maps: dict[str, np.ndarray]     # method -> S x S map in [0, 1], for this class
    guided: np.ndarray | None       # S x S x 3 guided backpropagation (RGB) of this class, or None
