"""What the metrics share beyond ``pytorch_grad_cam.scoring``: the maps
as a tensor, the checked arguments of a perturbation run, and pixel
rankings."""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.scoring import (
    batch_size_or_default,
    check_model,
    check_targets,
    given,
    prepare_input,
)

#: the maps a metric is given: B x H x W, a numpy array or a torch tensor
Maps = np.ndarray | torch.Tensor


def prepare_cams(cams: Maps, input_tensor: torch.Tensor,
                 name: str = "grayscale_cams") -> torch.Tensor:
    """The maps as a float32 tensor B x spatial on the input's device."""
    if isinstance(cams, torch.Tensor):
        tensor = cams.detach()
    elif isinstance(cams, (np.ndarray, list, tuple)):
        tensor = torch.as_tensor(np.asarray(cams, dtype=np.float32))
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor (B x H x W), "
                        f"got {given(cams)}")
    expected = (input_tensor.shape[0],) + tuple(input_tensor.shape[2:])
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {expected}: one "
                         "map per image of input_tensor, at the input's resolution")
    tensor = tensor.to(device=input_tensor.device, dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return tensor


class PerturbationRun(NamedTuple):
    """The checked arguments of a metric that runs the model on perturbed
    inputs (:func:`perturbation_run`)."""

    #: the input on the model's device and in its dtype (B x C x H x W)
    inputs: torch.Tensor
    #: the maps, float32 B x H x W on the input's device
    cams: torch.Tensor
    #: one target per image, or None (each image's top class)
    targets: list[Callable] | None
    #: inputs per forward pass (the device's default when none was given)
    batch_size: int


@contextlib.contextmanager
def perturbation_run(input_tensor: torch.Tensor, cams: Maps, targets: Sequence[Callable] | None,
                     model: torch.nn.Module, batch_size: int | None) -> Iterator[PerturbationRun]:
    """The block in which a metric runs ``model`` on perturbed inputs: the
    model checked, in eval mode (its state put back afterwards, also on an
    error) under ``torch.inference_mode``; the input, the maps, the targets
    and the batch size checked, in that order, and given as a
    :class:`PerturbationRun`."""
    check_model(model)
    with model_state_guard(model), torch.inference_mode():
        inputs = prepare_input(input_tensor, model, volumes=False)
        yield PerturbationRun(inputs, prepare_cams(cams, inputs),
                              check_targets(targets, inputs.shape[0]),
                              batch_size_or_default(batch_size, inputs.device))


def relevance_rank(cams: torch.Tensor, seed: int) -> torch.Tensor:
    """The rank of every pixel by relevance, B x pixels (0 = most relevant).

    Ties (for example the flat zero areas of a map after its ReLU) are
    broken by a pseudo-random permutation drawn from ``seed``, the same for
    every image, so that equally relevant pixels are removed in a scattered
    order and not row by row."""
    flat = cams.flatten(1)
    pixels = flat.shape[1]
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(pixels, generator=generator).to(flat.device)
    shuffled = flat[:, permutation]
    order = torch.argsort(shuffled, dim=1, descending=True, stable=True)
    order = permutation[order]  # pixel indices, most relevant first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=flat.device).expand_as(order).contiguous())
    return rank
