"""What the metrics share: argument checks, target scores in chunks, pixel
rankings."""
import numbers
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from pytorch_grad_cam.base_cam import BaseCAM, model_device
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class _Selector:
    """Stands in for a BaseCAM so that its ``select_output`` can be reused."""

    def __init__(self, output_selector=None):
        self.output_selector = output_selector


def select_output(raw, output_selector: Optional[Callable] = None):
    """The score tensor of a model output (see BaseCAM.select_output)."""
    return BaseCAM.select_output(_Selector(output_selector), raw)


def check_batch_size(value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"batch_size must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"batch_size must be >= 1, got {value}")
    return int(value)


def check_seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed must be an int, got {value!r}")
    return int(value)


def batch_size_for(batch_size: Optional[int], device: torch.device) -> int:
    """The chunk size: the one given, else 64 on a GPU and 16 on a CPU
    (the defaults of BaseCAM)."""
    if batch_size is not None:
        return batch_size
    return 64 if device.type == "cuda" else 16


def check_model(model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def prepare_input(input_tensor, model: torch.nn.Module, dims=(4,)) -> torch.Tensor:
    """The input on the model's device and dtype, detached."""
    if not isinstance(input_tensor, torch.Tensor):
        raise TypeError(f"input_tensor must be a torch.Tensor (B x C x H x W), "
                        f"got {type(input_tensor).__name__}")
    if input_tensor.dim() not in dims:
        allowed = " or ".join(f"{d} dimensions" for d in dims)
        raise ValueError(f"input_tensor must have {allowed} (B x C x H x W), "
                         f"got shape {tuple(input_tensor.shape)}")
    if input_tensor.shape[0] == 0:
        raise ValueError("input_tensor is an empty batch")
    if not input_tensor.is_floating_point():
        raise TypeError(f"input_tensor must be a floating point tensor, got {input_tensor.dtype}")
    device = model_device(model, fallback=input_tensor.device)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()),
                 input_tensor.dtype)
    return input_tensor.detach().to(device=device, dtype=dtype)


def prepare_cams(cams, input_tensor: torch.Tensor, name: str = "grayscale_cams") -> torch.Tensor:
    """The maps as a float32 tensor B x spatial on the input's device."""
    if isinstance(cams, torch.Tensor):
        tensor = cams.detach()
    elif isinstance(cams, (np.ndarray, list, tuple)):
        tensor = torch.as_tensor(np.asarray(cams, dtype=np.float32))
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor (B x H x W), "
                        f"got {type(cams).__name__}")
    expected = (input_tensor.shape[0],) + tuple(input_tensor.shape[2:])
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {expected}: one "
                         "map per image of input_tensor, at the input's resolution")
    tensor = tensor.to(device=input_tensor.device, dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return tensor


def check_targets(targets, batch: int) -> Optional[List[Callable]]:
    if targets is None:
        return None
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of callables (one per image) or None, "
                        f"got {type(targets).__name__}")
    if len(targets) != batch:
        raise ValueError(f"targets has {len(targets)} entries but the batch has {batch} images")
    for index, target in enumerate(targets):
        if not callable(target):
            raise TypeError(f"targets[{index}] must be callable, got {target!r}")
    return list(targets)


def resolve_targets(targets, outputs) -> List[Callable]:
    """targets=None: each image's top class."""
    if targets is not None:
        return targets
    if not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2):
        raise ValueError("targets=None picks each image's top class and needs a model output "
                         "of shape B x num_classes; give targets explicitly")
    return [ClassifierOutputTarget(c) for c in outputs.argmax(dim=-1).tolist()]


def target_scores(model: torch.nn.Module, inputs: torch.Tensor, targets,
                  output_selector=None):
    """(scores, outputs) of one forward pass: a float32 tensor of the target
    score of every input."""
    outputs = select_output(model(inputs), output_selector)
    targets = resolve_targets(targets, outputs)
    return BaseCAM.target_scores(targets, outputs).float(), outputs


def chunked_scores(model: torch.nn.Module, count: int,
                   make_inputs: Callable[[int, int], torch.Tensor], owners: torch.Tensor,
                   targets: Sequence[Callable], batch_size: int, output_selector=None,
                   progress: bool = False, desc: str = "") -> torch.Tensor:
    """Target scores of ``count`` inputs built lazily ``batch_size`` at a
    time by ``make_inputs(start, stop)``; ``owners[i]`` is the image whose
    target scores input ``i``."""
    scores = torch.empty(count, dtype=torch.float32, device=owners.device)
    with tqdm(total=count, desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, count, batch_size):
            stop = min(count, start + batch_size)
            outputs = select_output(model(make_inputs(start, stop)), output_selector)
            rows = [targets[i] for i in owners[start:stop].tolist()]
            scores[start:stop] = BaseCAM.target_scores(rows, outputs).float()
            bar.update(stop - start)
    return scores


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
