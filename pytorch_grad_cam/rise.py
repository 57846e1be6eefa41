"""RISE: a black-box method, from forward passes of randomly masked inputs
alone. It explains any callable that maps an image batch to scores, also
models whose layers cannot be hooked (TorchScript, ``torch.export``, a
model compiled with ``torch.compile`` run compiled, a function around an
ONNX Runtime session)."""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.activations_and_gradients import detach_output
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import CallContext, open_call, running_call
from pytorch_grad_cam.models.compiled import is_exported_module
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import (
    check_positive_int,
    check_seed,
    given,
    is_target_table,
    target_columns,
)
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.warn import warn_at_caller

__all__ = ["DEFAULT_NUM_MASKS", "RISE", "FunctionModel", "RiseMasks", "black_box_module"]

#: RISE's masks per image when none are given (the paper used 4000 to
#: 8000): 1001 forward passes per image, half of Score-CAM's on a
#: ResNet-50's last layer
DEFAULT_NUM_MASKS = 1000
_MODES = {2: "bilinear", 3: "trilinear"}


class FunctionModel(torch.nn.Module):
    """A model given as a function (for example one that runs an ONNX
    Runtime session) as a module without parameters: ``forward(x)`` is
    ``function(x)``. It runs on the device of the input it is given."""

    def __init__(self, function: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> Any:
        return self.function(x)


def black_box_module(model: Any) -> torch.nn.Module:
    """``model`` as the module RISE runs: a ``torch.nn.Module`` (also
    TorchScript, a ``torch.export`` program's module, a model compiled with
    ``torch.compile``) as it is; a ``torch.export`` ``ExportedProgram`` as its
    ``module()``; any other callable in a :class:`FunctionModel`. TypeError
    for anything else."""
    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    if is_exported_module(model):
        _check_dynamic_batch(model)
    if isinstance(model, torch.nn.Module):
        return model
    if callable(model):
        return FunctionModel(model)
    raise TypeError(f"model must be a torch.nn.Module or a callable that maps an image batch "
                    f"to scores (a function, a TorchScript module, a torch.export program), "
                    f"got {given(model)}")


def _check_dynamic_batch(module: torch.nn.Module) -> None:
    """ValueError for a ``torch.export`` program's module whose input has a
    fixed batch size: RISE runs ``batch_size`` masked copies at a time."""
    graph: Any = getattr(module, "graph", None)
    for node in graph.nodes if graph is not None else ():
        value = node.meta.get("val") if node.op == "placeholder" else None
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            if isinstance(value.shape[0], int):
                raise ValueError(
                    f"model: this torch.export program takes a fixed batch of "
                    f"{value.shape[0]} image(s), and RISE runs batch_size masked copies at a "
                    "time; export it with a dynamic batch dimension, from an example batch of "
                    "2 or more: torch.export.export(model, (x,), dynamic_shapes=({0: "
                    "torch.export.Dim('batch')},))")
            return


def check_keep_probability(value: Any) -> float:
    """``p``, the probability that a cell of a mask's grid is kept, as a
    float strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"p must be a number between 0 and 1 (the probability that a cell of "
                        f"a mask is kept), got {given(value)}")
    if not 0 < float(value) < 1:
        raise ValueError(f"p must lie strictly between 0 and 1 (the probability that a cell of "
                         f"a mask is kept; 0 or 1 gives masks that are all alike), got {value}")
    return float(value)


class RiseMasks:
    """The ``count`` masks of one call for inputs of spatial ``size``,
    made a few at a time (:meth:`make`): the small random grids and shifts
    of all of them are drawn at once, on the CPU from a generator seeded
    with ``seed`` (the same masks on every device, for every batch size),
    and a mask at the input's resolution exists only while its chunk is
    scored.

    Mask i: a ``grid`` x ``grid`` (x ``grid`` for volumes) grid of cells,
    each 1 with probability ``p``, else 0; upsampled (bilinear,
    ``align_corners=False``) to ``(grid + 1) * cell`` where ``cell =
    ceil(size / grid)``; then the window of ``size`` at a random shift of
    0 .. cell - 1 along every axis. (Volumes: the same in 3-D, trilinear;
    an axis of length 1 has one cell and no shift.)"""

    def __init__(self, count: int, size: Sequence[int], grid: int, p: float,
                 seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.size = tuple(int(s) for s in size)
        # an axis of length 1 (a volume of depth 1) has one cell and no
        # shift: its masks are those of the image
        cells_per_axis = tuple(1 if length == 1 else grid for length in self.size)
        self.cells = [math.ceil(length / cells)
                      for length, cells in zip(self.size, cells_per_axis)]
        self.upsampled = tuple((cells + 1) * cell
                               for cells, cell in zip(cells_per_axis, self.cells))
        self.grids = torch.rand((count, 1) + cells_per_axis, generator=generator) < p
        self.shifts = torch.stack([
            torch.zeros(count, dtype=torch.long) if length == 1
            else torch.randint(cell, (count,), generator=generator)
            for length, cell in zip(self.size, self.cells)], dim=1).tolist()

    def make(self, index: torch.Tensor, device: torch.device, dtype: torch.dtype
             ) -> torch.Tensor:
        """Masks ``index`` (a 1-D tensor of mask numbers): n x 1 x size."""
        grids = self.grids[index.cpu()].to(device=device, dtype=dtype)
        mode = _MODES[len(self.size)]
        up = F.interpolate(grids, size=self.upsampled, mode=mode, align_corners=False)
        windows = []
        for row, shift in enumerate(self.shifts[i] for i in index.tolist()):
            window = tuple(slice(start, start + length)
                           for start, length in zip(shift, self.size))
            windows.append(up[(row, slice(None)) + window])
        return torch.stack(windows)


@register_method("rise", class_specific=True, perturbation=True)
class RISE(BaseCAM):
    """RISE: the target score of randomly masked copies of the input, averaged over the masks.

    ::

        M_1 .. M_N: random masks in [0, 1] (each cell of an s x s grid kept
                    with probability p, upsampled bilinearly, randomly shifted)
        S = sum_i f(I * M_i) M_i / (N * p)

    where f is the target score (the targets' score of the model output,
    for example a class's logit; ``ClassifierOutputSoftmaxTarget`` scores
    its probability, as the paper does) and I * M_i the input multiplied
    by the mask (0: the value of a normalised input's mean colour). S is
    the normalisation of the paper (E[M] = p); the map returned is S
    min-max normalised to [0, 1] per image (without ReLU: the offset of S
    carries no information), at the input's resolution.

    Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation
    of Black-box Models", BMVC 2018, https://arxiv.org/abs/1806.07421

    A black box: only forward passes of the model, no hooks, no gradients,
    no target layers. The model may be any callable that maps an image
    batch to scores: a ``torch.nn.Module``, a TorchScript module
    (``torch.jit.script`` / ``trace``), a ``torch.export`` program (or its
    ``module()``; export it with a dynamic batch dimension, the passes run
    ``batch_size`` masked copies at a time), a model compiled with ``torch.compile``
    (run as compiled) or a plain function (for example around an ONNX
    Runtime session; it gets the input on the device the input is on).
    A module is run in eval mode and left as it was (a ``torch.export``
    program keeps the mode it was exported in).

    The N masked copies of every image are scored ``batch_size`` at a time
    under ``torch.inference_mode`` (``scoring.PerturbationPasses``, with
    the progress bar), each chunk's masks made when it runs; the images of
    a batch share the masks, and an image explained for K targets
    (a table of targets) is scored for all K from the same passes. One
    more forward pass of the unmasked batch picks each image's top class
    (``targets=None``) and checks the targets.

    Arguments besides those of BaseCAM:
        num_masks: N, masks per image (default ``default_num_masks``,
            1000: 1001 forward passes per image, half of Score-CAM's on
            a ResNet-50's last layer; the paper used 4000 to 8000; the
            noise of the map falls as 1 / sqrt(N)).
        grid_size: s, cells per side of a mask's grid (default 7, the
            paper's for 224 x 224 ImageNet images): the size of the
            regions the map resolves.
        p: the probability that a cell is kept (default 0.5, the paper's).
        seed: the masks of every call come from a generator seeded with it
            (default 0): the same input gives the same map, whatever the
            batch size, the batch or the device; None draws a new seed
            from torch's global generator at every call.
        target_layers, reshape_transform: not used, nor looked at (a
            UserWarning says so), so that RISE is made like every other
            method.

    ``eigen_smooth`` does not apply (there are no channels to project) and
    raises ValueError; ``aug_smooth`` works as for every method.
    """

    uses_gradients = False
    uses_target_layers = False
    black_box = True
    made_without_channels = "makes its map as an average of masks"
    #: used in the progress bar
    progress_label = "RISE"
    #: the masks per image when ``num_masks`` is left out
    default_num_masks = DEFAULT_NUM_MASKS

    def __init__(self, model: Any, target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None, *, num_masks: int | None = None,
                 grid_size: int = 7, p: float = 0.5, seed: int | None = 0,
                 **kwargs: Any) -> None:
        self.num_masks = check_positive_int(
            "num_masks", self.default_num_masks if num_masks is None else num_masks)
        self.grid_size = check_positive_int("grid_size", grid_size)
        if self.grid_size < 2:
            raise ValueError(f"grid_size must be >= 2 (a grid of one cell keeps or drops the "
                             f"whole image), got {grid_size}")
        self.p = check_keep_probability(p)
        self.seed = check_seed(seed, allow_none=True)
        for name in ("uses_gradients", "compute_input_gradient"):
            if kwargs.get(name):
                raise ValueError(f"{name}={kwargs[name]!r}: RISE takes no gradients, it runs "
                                 f"forward passes only; leave {name} out")
        super().__init__(black_box_module(model), None, None, **kwargs)
        if target_layers is not None or reshape_transform is not None:
            warn_at_caller("RISE ignores target_layers and reshape_transform: it explains the "
                           "model as a black box, from forward passes of masked inputs",
                           UserWarning)

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor:
        """The maps of one batch (B x H x W, or B x K x H x W for a table of
        targets) on the input's device."""
        context = running_call()
        if context is None:  # called directly, outside __call__
            with open_call(CallContext()):
                return self.forward(input_tensor, targets, eigen_smooth)
        batch = input_tensor.shape[0]
        columns = target_columns(targets)  # K columns: the k-th target of every image
        group = len(columns)
        with torch.inference_mode():
            outputs = self.select_output(self.model(input_tensor))
        resolved = [self.resolve_targets(column, outputs, batch) for column in columns]
        for column in resolved:  # checked here, before the masked passes
            self.target_scores(column, outputs)
        self.outputs = outputs = detach_output(outputs)
        rows = [column[i] for i in range(batch) for column in resolved]  # row i * K + k
        context.group = group
        context.input_tensor, context.targets, context.outputs = input_tensor, rows, outputs
        saliency = self.saliency(input_tensor, rows, group)
        cam = scale_cam_image(saliency.flatten(0, 1))
        if not is_target_table(targets):
            return cam
        return cam.reshape((batch, group) + tuple(cam.shape[1:]))

    def saliency(self, images: torch.Tensor, targets: Sequence[Callable],
                 group: int) -> torch.Tensor:
        """S of every image for each of its ``group`` targets (``targets[i
        * group + k]``: image i's k-th): B x K x size, float32, before the
        normalisation of the map."""
        batch, count = images.shape[0], self.num_masks
        size = tuple(images.shape[2:])
        if len(size) not in _MODES:
            raise ValueError(f"input_tensor must be images B x C x H x W or volumes B x C x D "
                             f"x H x W for RISE's masks, got shape {tuple(images.shape)}")
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(2 ** 62, (1,)))
        masks = RiseMasks(count, size, self.grid_size, self.p, seed)
        device, dtype = images.device, images.dtype
        # pass j: image j // N with mask j % N
        owners = torch.arange(batch, device=device).repeat_interleave(count)

        def make_inputs(start: int, stop: int) -> torch.Tensor:
            index = torch.arange(start, stop, device=device)
            return images[index // count] * masks.make(index % count, device, dtype)

        scores = self.perturbed_scores(batch * count, make_inputs, owners, targets,
                                       self.progress_label, group)  # pass x target
        weights = scores.reshape(batch, count, group).permute(1, 0, 2).flatten(1)  # N x BK
        total = torch.zeros(batch * group, math.prod(size), dtype=torch.float32, device=device)
        for start in range(0, count, self.batch_size):  # the masks again, a chunk at a time
            index = torch.arange(start, min(count, start + self.batch_size), device=device)
            chunk = masks.make(index, device, torch.float32).flatten(1)  # n x pixels
            total.addmm_(weights[start:start + len(index)].T, chunk)
        return (total / (count * self.p)).reshape((batch, group) + size)

    def empty_map_message(self, images: list[int]) -> str:
        return (f"the map is all zeros for image(s) {images}: the target score was the same "
                "for every masked copy of the image, so it does not depend on the input (for "
                "example a classifier left at its initial zeros); check the model and the "
                "targets")
