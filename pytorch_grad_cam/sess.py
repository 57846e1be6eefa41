"""SESS: Saliency Enhancing with Scaling and Sliding, a wrapper of any CAM method.

``SESS(model, target_layers, base_method=GradCAM)`` explains every image
through the maps its base method makes of patches of the image taken at
many scales; the patch maps are weighted by the patch's score, pasted back
where they were taken and fused. The code is our own; the behaviour and the
arguments are grad-cam 1.5.7's ``pytorch_grad_cam.sess.SESS`` (which
follows the authors' code, github.com/neouyghur/SESS).
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import CallContext, ReleaseOnExit, open_call
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.scoring import (
    DeviceBatchSize,
    check_positive_int,
    check_targets_or_table,
    chunked_scores,
    chunks,
    given,
    is_target_table,
    prepare_input,
    resolve_targets,
    select_output,
    target_columns,
)
from pytorch_grad_cam.utils.image import bilinear_matrix, scale_cam_image

__all__ = ["SESS", "sliding_window", "window_starts"]

#: the Gaussian blur of ``smooth=True``: 11 x 11 taps, sigma 5 (as 1.5.7 and the authors)
_BLUR_SIZE, _BLUR_SIGMA = 11, 5.0


class SESS(ReleaseOnExit, DeviceBatchSize):
    """SESS: the base method's maps of multi-scale sliding-window patches, fused by patch score.

    For an image X (H x W), its target t and the window size w (default
    min(H, W)):

    1. scales: s_i = w + round(w * scale_step_ratio) * i, i = 0 .. num_scales - 1
       (224, 288, ..., 928 for a 224 x 224 image, as in the paper), or
       ``scales``; X_i is X resized (bilinear, antialiased, as torchvision's
       ``resize``) so that its shorter side is s_i.
    2. patches: w x w windows P_k of every X_i at stride ``step_size``
       (default w); a window that would cross the right or bottom border is
       shifted back to end on it.
    3. scores: p_k = max(0, t(softmax(model(P_k)))), or max(0, t(model(P_k)))
       with ``use_softmax_scores=False``.
    4. pre-filtering: the floor(K * pre_filter_ratio) patches of lowest p_k
       (of the K of the image) are dropped.
    5. maps: M_k, the base method's map of P_k for t (in [0, 1]), times the
       channel-wise weight c_k = p_k / max_j p_j (1 if every p_j is 0).
    6. paste: c_k M_k is placed at its window in a zero canvas of X_i's
       size, which is resized (bilinear, as cv2.resize) to H x W: S_k.
    7. fusion: ``pool="mean"``, the spatial weighted average
       S(x) = sum_k S_k(x) [S_k(x) > theta] / #{k : S_k(x) > theta}
       (0 where no patch exceeds theta); ``pool="max"``: S(x) = max_k S_k(x).
    8. ``smooth``: an 11 x 11 Gaussian blur (sigma 5, reflected borders);
       finally S is min-max normalised to [0, 1].

    Tursun, Denman, Sridharan & Fookes, "SESS: Saliency Enhancing with
    Scaling and Sliding", ECCV 2022, https://arxiv.org/abs/2207.01769

    Args:
        model, target_layers, reshape_transform: as for every method;
            ``target_layers`` may be left out (the base method finds them).
        base_method: the CAM method of every patch: a registered name
            ("gradcam", "scorecam", ...) or a CAM class (a BaseCAM subclass);
            default GradCAM.
        scales: the sizes of the shorter side of the resized images (each
            >= the window size); default from ``num_scales`` and
            ``scale_step_ratio`` as in step 1.
        num_scales, scale_step_ratio: see step 1 (12 and 2 / 7).
        window_size: w (default: the shorter side of the input, so that the
            smallest default scale is the image itself).
        step_size: the stride of the window (default w: windows that do not
            overlap, except those shifted back at the border).
        pre_filter_ratio: the share of lowest-scoring patches dropped, in
            [0, 1).
        theta: the threshold of the mean fusion (a number below 1; the
            weighted patch maps lie in [0, 1]).
        pool: "mean" or "max".
        smooth: apply the Gaussian blur of step 8.
        use_softmax_scores: score the patches on the softmax of the model
            output (over dimension 1, the classes), as in the paper; False
            for outputs where a softmax is meaningless.
        batch_size: patches per forward pass of the scoring passes and per
            call of the base method (default 32, as 1.5.7; None: the
            device's default, see ``scoring.default_batch_size``). The base
            method's own ``batch_size`` (ScoreCAM's masked inputs per pass)
            is ``cam.base_cam.batch_size``.
        progress: progress bars of the scoring and the map passes (and of
            the base method's own perturbation passes).
        **kwargs: passed to the base method's constructor (for example
            ``output_selector``).

    A call ``cam(input_tensor, targets=None, aug_smooth=False,
    eigen_smooth=False, **options)`` takes what a call of the base method
    takes (``aug_smooth`` and ``eigen_smooth`` apply to every patch map,
    ``options`` are the base method's per-call options) and returns one
    map per image, a float32 numpy array B x H x W in [0, 1].
    ``targets=None`` explains each image's top class of the whole image (as
    1.5.7). The patches of all the images of a batch and of all scales go
    through the model and the base method together, ``batch_size`` at a
    time; every image's map is the one it gets alone.

    Where it differs from grad-cam 1.5.7 (Pearson r >= 0.99 with its maps,
    see tests/methods/test_sess.py): the maps of a batch are computed together, in
    torch, on the model's device; the softmax of ``use_softmax_scores``
    runs over the class dimension 1, where 1.5.7 takes the last one (the
    same for a B x classes output); the whole-image pass that checks the
    targets (and picks them with ``targets=None``) always runs; the
    pre-filter breaks ties between equal scores by patch order (1.5.7:
    numpy's unstable sort). With EigenCAM as the base method the maps are
    not 1.5.7's, because this library's EigenCAM follows its paper (no
    centring, a fixed sign; see ``EigenCAM``).
    """

    def __init__(self, model: torch.nn.Module,
                 target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None,
                 base_method: str | type = GradCAM,
                 scales: Sequence[int] | None = None,
                 num_scales: int = 12,
                 scale_step_ratio: float = 2.0 / 7.0,
                 window_size: int | None = None,
                 step_size: int | None = None,
                 pre_filter_ratio: float = 0.0,
                 theta: float = 0.0,
                 pool: str = "mean",
                 smooth: bool = True,
                 use_softmax_scores: bool = True,
                 batch_size: int | None = 32,
                 progress: bool = True,
                 **kwargs: Any) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {given(model)}")
        base_class = _base_class(base_method)
        self.window_size = check_positive_int("window_size", window_size, allow_none=True)
        self.step_size = check_positive_int("step_size", step_size, allow_none=True)
        self.scales = _check_scales(scales, self.window_size)
        self.num_scales = check_positive_int("num_scales", num_scales)
        self.scale_step_ratio = _check_number("scale_step_ratio", scale_step_ratio,
                                              "a number > 0", lambda v: v > 0)
        self.pre_filter_ratio = _check_number("pre_filter_ratio", pre_filter_ratio,
                                              "a number in [0, 1)", lambda v: 0 <= v < 1)
        self.theta = _check_number("theta", theta, "a number below 1 (the weighted patch "
                                   "maps lie in [0, 1])", lambda v: v < 1)
        if pool not in ("mean", "max"):
            raise ValueError(f"pool must be 'mean' or 'max', got {given(pool)}")
        self.pool = pool
        self.smooth = _check_bool("smooth", smooth)
        self.use_softmax_scores = _check_bool("use_softmax_scores", use_softmax_scores)
        self.batch_size = batch_size
        self.progress = _check_bool("progress", progress)
        #: the base method's CAM object, which makes the map of every patch
        self.base_cam: BaseCAM = base_class(model, target_layers, reshape_transform,
                                            progress=self.progress, **kwargs)
        self.model = self.base_cam.model

    # ------------------------------------------------------------------ API
    def get_scales(self, window_size: int) -> list[int]:
        """The sizes of the shorter side of the resized images (step 1)."""
        if self.scales is not None:
            return list(self.scales)
        step = int(round(window_size * self.scale_step_ratio))
        return [window_size + step * i for i in range(self.num_scales)]

    def patch_count(self, height: int, width: int) -> int:
        """The patches of one H x W image over all scales (each goes
        through one scoring pass and one call of the base method)."""
        return sum(len(starts) for _, _, starts in self._layout(height, width).levels)

    def __call__(self, input_tensor: torch.Tensor, targets: Sequence[Callable] | None = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False,
                 **options: Any) -> np.ndarray:
        """One map per image: float32 numpy array B x H x W in [0, 1]; with
        one list of K targets per image, B x K x H x W (the patches' scoring
        passes and the base method's passes run once for all K targets)."""
        base = self.base_cam
        unknown = sorted(set(options) - set(base.call_options))
        if unknown:
            allowed = ", ".join(base.call_options) or "none"
            raise TypeError(f"SESS() with {type(base).__name__} got unexpected keyword "
                            f"argument(s) {', '.join(unknown)} (options of a call: {allowed})")
        checked_options = base.check_call_options(options)
        _check_bool("aug_smooth", aug_smooth)
        _check_bool("eigen_smooth", eigen_smooth)
        input_tensor = prepare_input(input_tensor, self.model, volumes=False)
        checked_targets = check_targets_or_table(targets, input_tensor.shape[0])
        layout = self._layout(*input_tensor.shape[2:])
        with model_state_guard(self.model), torch.inference_mode(False):
            cam = self._forward(input_tensor, checked_targets, layout, checked_options,
                                aug_smooth, eigen_smooth)
        return cam.float().cpu().numpy()

    def forward(self, input_tensor: torch.Tensor, targets: Sequence[Callable] | None = None,
                eigen_smooth: bool = False) -> np.ndarray:
        """The maps of ``__call__`` (1.5.7's name of the call)."""
        return self(input_tensor, targets, eigen_smooth=eigen_smooth)

    # ------------------------------------------------------------- steps
    def _layout(self, height: int, width: int) -> _Layout:
        """Steps 1 and 2 for an H x W input: the scaled sizes and the windows,
        checked before any model pass."""
        window = self.window_size if self.window_size is not None else min(height, width)
        step = self.step_size if self.step_size is not None else window
        scales = self.get_scales(window)  # the default ones start at the window size
        for index, scale in enumerate(scales):
            if scale < window:
                raise ValueError(f"scales[{index}] is {scale}, below the window size {window}; "
                                 "every scale (the shorter side of a resized image) must be at "
                                 "least the window size")
        levels = []
        for scale in scales:
            scaled_height, scaled_width = _scaled_size(height, width, scale)
            starts = sliding_window(scaled_height, scaled_width, step, window)
            levels.append((scaled_height, scaled_width, starts))
        return _Layout(height, width, window, levels)

    def _forward(self, input_tensor: torch.Tensor, targets: Any,
                 layout: _Layout, options: dict[str, Any], aug_smooth: bool,
                 eigen_smooth: bool) -> torch.Tensor:
        base = self.base_cam
        batch = input_tensor.shape[0]
        with torch.inference_mode():  # the whole image: targets checked (or picked) first
            outputs = select_output(self.model(input_tensor), base.output_selector)
        if self.use_softmax_scores and not (isinstance(outputs, torch.Tensor)
                                            and outputs.dim() >= 2):
            raise ValueError("use_softmax_scores=True takes the softmax over the classes of a "
                             "model output B x classes (x ...); this model's output is "
                             f"{given(outputs)}: pass use_softmax_scores=False")
        nested = is_target_table(targets)
        columns = [resolve_targets(column, outputs, batch) for column in target_columns(targets)]
        group = len(columns)  # K targets per image; row i * K + k: image i, target k
        chosen = [column[i] for i in range(batch) for column in columns]
        patches = _Patches(input_tensor, layout)
        scores = self._patch_scores(patches, chosen, group)  # B x patches x K

        # step 4: pre-filtering, and the channel-wise weights of step 5
        keep = torch.ones_like(scores, dtype=torch.bool)
        dropped = int(patches.per_image * self.pre_filter_ratio)
        if dropped:
            lowest = torch.argsort(scores, dim=1, stable=True)[:, :dropped]
            keep.scatter_(1, lowest, False)
        best = scores.amax(dim=1, keepdim=True)
        weights = torch.where(best > 0, scores / best.clamp(min=torch.finfo(scores.dtype).tiny),
                              torch.ones_like(scores)).flatten(0, 1)
        keep = keep.flatten(0, 1)  # patch x target
        # a patch runs once if any target keeps it; a target that drops it weighs it 0
        kept = keep.any(dim=1).nonzero()[:, 0].tolist()  # one host sync per call

        # steps 5-7: the patch maps, pasted and fused as they come
        height, width = layout.height, layout.width
        device = input_tensor.device
        total = torch.zeros(batch, group, height, width, device=device)
        counts = torch.zeros_like(total)
        for start, stop in chunks(len(kept), self.batch_size, "SESS maps", self.progress):
            ids = kept[start:stop]
            owners = [i // patches.per_image for i in ids]
            chunk_targets: list[Any] = ([[chosen[o * group + k] for k in range(group)]
                                         for o in owners] if nested else
                                        [chosen[o] for o in owners])
            with open_call(CallContext(options=options)):
                crops = patches.crop(ids)
                if aug_smooth:
                    maps = base.forward_augmentation_smoothing(crops, chunk_targets,
                                                               eigen_smooth)
                else:
                    maps = base.forward(crops, chunk_targets, eigen_smooth)
            with torch.no_grad():
                maps = maps.float().reshape(len(ids), group, *maps.shape[-2:])
                index = torch.tensor(ids, device=device)
                patch_keep = keep[index][:, :, None, None]
                pasted = patches.paste(maps * weights[index][:, :, None, None] * patch_keep, ids)
                if self.pool == "mean":
                    above = (pasted > self.theta) & patch_keep
                    pasted = torch.where(above, pasted, 0)
                # the chunk's patches are in image order: one reduction per image
                for owner, first, last in _runs(owners):
                    if self.pool == "max":
                        total[owner] = torch.maximum(total[owner], pasted[first:last].amax(0))
                    else:
                        total[owner] += pasted[first:last].sum(0)
                        counts[owner] += above[first:last].sum(0)
        with torch.no_grad():
            if self.pool == "mean":
                total = torch.where(counts > 0, total / counts.clamp(min=1), 0)
            if self.smooth:  # step 8
                total = (_blur_matrix(height, device) @ total
                         @ _blur_matrix(width, device).T)
            cam = scale_cam_image(total.flatten(0, 1)).reshape(total.shape)
            return cam if nested else cam[:, 0]

    def _patch_scores(self, patches: _Patches, targets: list[Callable],
                      group: int = 1) -> torch.Tensor:
        """Step 3: B x patches x K, the score of every patch of every image
        for each of its ``group`` targets (``targets[i * group + k]``), >= 0;
        each patch goes through the model once for all of them."""
        batch = patches.images.shape[0]
        count = patches.per_image * batch
        owners = torch.arange(batch, device=patches.images.device).repeat_interleave(
            patches.per_image)
        user_selector = self.base_cam.output_selector
        selector = user_selector
        if self.use_softmax_scores:
            def softmax_scores(raw: Any) -> torch.Tensor:
                return torch.softmax(select_output(raw, user_selector).float(), dim=1)
            selector = softmax_scores
        scores, _ = chunked_scores(
            self.model, count, lambda start, stop: patches.crop(range(start, stop)), owners,
            targets, self.batch_size, selector,
            ranges=chunks(count, self.batch_size, "SESS scores", self.progress), group=group)
        return scores.clamp(min=0).reshape(batch, patches.per_image, group)


def _runs(values: Sequence[int]) -> list[tuple[int, int, int]]:
    """(value, first, stop) of every run of equal consecutive values."""
    runs: list[tuple[int, int, int]] = []
    for position, value in enumerate(values):
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1], position + 1)
        else:
            runs.append((value, position, position + 1))
    return runs


# ------------------------------------------------------------------ windows
def window_starts(length: int, step_size: int, window_size: int) -> list[int]:
    """The starts of the windows along one side: 0, step, 2 step, ... and the
    first window that would reach the border shifted back to end on it."""
    starts = []
    for start in range(0, length, step_size):
        if start + window_size >= length:
            starts.append(max(length - window_size, 0))
            break
        starts.append(start)
    return starts


def sliding_window(height: int, width: int, step_size: int,
                   window_size: int) -> list[tuple[int, int]]:
    """The top left corners (x, y) of the windows covering an image, row by
    row (as 1.5.7's ``sliding_window``)."""
    return [(x, y) for y in window_starts(height, step_size, window_size)
            for x in window_starts(width, step_size, window_size)]


def _scaled_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """(height, width) with the shorter side resized to ``scale`` and the
    longer one in proportion, rounded down (torchvision's ``resize(x, scale)``)."""
    if width <= height:
        return int(scale * height / width), scale
    return scale, int(scale * width / height)


class _Layout:
    """The scaled sizes and windows of an H x W input (steps 1 and 2)."""

    def __init__(self, height: int, width: int, window: int,
                 levels: list[tuple[int, int, list[tuple[int, int]]]]) -> None:
        self.height, self.width, self.window, self.levels = height, width, window, levels


class _Patches:
    """The patches of a batch, numbered image by image, scale by scale,
    window by window; cropped on demand from one resized image at a time."""

    def __init__(self, images: torch.Tensor, layout: _Layout) -> None:
        self.images, self.layout = images, layout
        # (level, x, y) of the patches of one image
        self.table = [(level, x, y) for level, (_, _, starts) in enumerate(layout.levels)
                      for x, y in starts]
        self.per_image = len(self.table)
        self._cached: tuple[tuple[int, int] | None, torch.Tensor | None] = (None, None)

    def scaled(self, image: int, level: int) -> torch.Tensor:
        """Image ``image`` resized to scale ``level`` (1 x C x h x w), kept
        until another one is asked for."""
        key, cached = self._cached
        if key == (image, level) and cached is not None:
            return cached
        height, width, _ = self.layout.levels[level]
        with torch.inference_mode(False), torch.no_grad():  # usable by the base method's autograd
            x = self.images[image:image + 1]
            if (height, width) != tuple(x.shape[2:]):
                x = F.interpolate(x.float(), size=(height, width), mode="bilinear",
                                  align_corners=False, antialias=True).to(x.dtype)
        self._cached = ((image, level), x)
        return x

    def crop(self, ids: Sequence[int]) -> torch.Tensor:
        """The patches ``ids`` as one batch n x C x w x w."""
        w = self.layout.window
        crops = []
        for patch in ids:
            image, j = divmod(patch, self.per_image)
            level, x, y = self.table[j]
            crops.append(self.scaled(image, level)[0, :, y:y + w, x:x + w])
        return torch.stack(crops)

    def paste(self, maps: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """Step 6: every w x w map placed at its window of a zero canvas of
        its scaled image, resized to H x W (n x H x W; n x K x H x W for
        maps n x K x w x w). The resize is linear
        and separable, R_rows @ canvas @ R_columns^T, so only the window's
        columns of the two interpolation matrices are needed."""
        w, layout = self.layout.window, self.layout
        rows, columns = [], []
        for patch in ids:
            level, x, y = self.table[patch % self.per_image]
            height, width, _ = layout.levels[level]
            rows.append(bilinear_matrix(height, layout.height, maps.device, maps.dtype)[:, y:y + w])
            columns.append(bilinear_matrix(width, layout.width, maps.device, maps.dtype)[:, x:x + w])
        left, right = torch.stack(rows), torch.stack(columns).transpose(1, 2)
        if maps.dim() == 4:  # n x K x w x w: the K maps of each patch
            left, right = left[:, None], right[:, None]
        return left @ maps @ right


@functools.lru_cache(maxsize=16)
def _blur_matrix(size: int, device: torch.device) -> torch.Tensor:
    """size x size matrix of the 1-D Gaussian blur of ``smooth`` (11 taps,
    sigma 5, normalised to sum 1) with mirrored borders that do not repeat
    the edge pixel (OpenCV's BORDER_REFLECT_101, its GaussianBlur default),
    for any size."""
    with torch.inference_mode(False):
        radius = _BLUR_SIZE // 2
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        taps = torch.exp(-offsets ** 2 / (2 * _BLUR_SIGMA ** 2))
        taps = taps / taps.sum()
        source = torch.arange(size)[:, None] + torch.arange(-radius, radius + 1)[None, :]
        if size == 1:
            source = torch.zeros_like(source)
        else:
            period = 2 * (size - 1)
            source = source.abs() % period
            source = torch.where(source >= size, period - source, source)
        matrix = torch.zeros(size, size, dtype=torch.float64)
        matrix.scatter_add_(1, source, taps.expand(size, -1).contiguous())
        return matrix.to(device=device, dtype=torch.float32)


# ------------------------------------------------------------------ checks
def _base_class(base_method: Any) -> type:
    """The CAM class named or given as ``base_method``."""
    if isinstance(base_method, str):
        try:
            return get_method(base_method).cls
        except KeyError as error:
            raise ValueError(f"base_method: {error.args[0]}") from None
    if isinstance(base_method, type) and issubclass(base_method, BaseCAM):
        return base_method
    if isinstance(base_method, type) and issubclass(base_method, SESS):
        raise TypeError("base_method cannot be SESS itself; give the CAM method of every "
                        "patch, for example base_method=GradCAM")
    raise TypeError(f"base_method must be a registered method name (for example 'gradcam') "
                    f"or a CAM class (a subclass of BaseCAM, for example GradCAM), "
                    f"got {given(base_method)}")


def _check_scales(scales: Any, window_size: int | None) -> list[int] | None:
    if scales is None:
        return None
    if not isinstance(scales, (list, tuple)) or len(scales) == 0:
        raise TypeError(f"scales must be a non-empty list of positive ints (sizes of the "
                        f"shorter side) or None, got {given(scales)}")
    checked = [check_positive_int(f"scales[{i}]", scale) for i, scale in enumerate(scales)]
    for index, scale in enumerate(checked):
        if window_size is not None and scale < window_size:
            raise ValueError(f"scales[{index}] is {scale}, below window_size={window_size}; "
                             "every scale must be at least the window size")
    return checked


def _check_number(name: str, value: Any, allowed: str, test: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, got {given(value)}")
    number = float(value)
    if not (math.isfinite(number) and test(number)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {given(value)}")
    return bool(value)
