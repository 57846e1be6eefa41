"""What every CAM method, the metrics, guided backpropagation and the
command line share about scoring a model: the argument checks, the score
tensor inside a model output, the target score of every image, the one
chunked loop over perturbed inputs (with its progress bar) and the default
batch size of a device.

Nothing here keeps state between calls.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import torch
from tqdm.auto import tqdm

from pytorch_grad_cam.messages import describe, given
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = [
    "DeviceBatchSize", "PerturbationPasses", "default_batch_size", "batch_size_or_default",
    "describe", "given", "check_positive_int", "check_seed",
    "check_non_negative", "check_model", "check_input_tensor", "prepare_input", "check_targets",
    "is_target_table", "check_target_table", "check_targets_or_table", "target_columns",
    "repeat_rows", "resolve_targets",
    "check_targets_against_outputs", "select_output", "target_scores",
    "score_ignores_input", "chunks", "chunked_scores", "model_device", "model_float_dtype",
]


# ------------------------------------------------------------ plain checks
@overload
def check_positive_int(name: str, value: Any) -> int: ...
@overload
def check_positive_int(name: str, value: Any, *, allow_none: bool) -> int | None: ...


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (or None when ``allow_none``); TypeError /
    ValueError naming ``name`` otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        allowed = "a positive int or None" if allow_none else "a positive int"
        raise TypeError(f"{name} must be {allowed}, got {given(value)}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


@overload
def check_seed(value: Any) -> int: ...
@overload
def check_seed(value: Any, *, allow_none: bool) -> int | None: ...


def check_seed(value: Any, *, allow_none: bool = False) -> int | None:
    """``value`` as an int seed (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        allowed = "an int or None" if allow_none else "an int"
        raise TypeError(f"seed must be {allowed}, got {given(value)}")
    return int(value)


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a float >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative number, got {given(value)}")
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return number


def check_model(model: Any) -> torch.nn.Module:
    """``model`` itself; a TypeError naming what was given unless it is a torch.nn.Module."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {given(model)}")
    return model


# ------------------------------------------------------------- the device
def model_device(model: torch.nn.Module,
                 fallback: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return fallback if fallback is not None else torch.device("cpu")


def model_float_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating point parameter."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def batch_size_or_default(batch_size: int | None, device: torch.device) -> int:
    """``batch_size`` if given, else the device's default."""
    return default_batch_size(device) if batch_size is None else batch_size


class DeviceBatchSize:
    """``device`` (the model's) and ``batch_size`` (checked when set; None:
    the device's default, read when used) of an object that explains
    ``self.model``: the CAM methods and the wrappers that run them (SESS)."""

    model: torch.nn.Module
    _batch_size: int | None

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @property
    def batch_size(self) -> int:
        return batch_size_or_default(self._batch_size, self.device)

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        self._batch_size = check_positive_int("batch_size", value, allow_none=True)


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass of the perturbation methods, the metrics
    and ``aug_smooth`` when none is given: 64 on a GPU, 8 elsewhere.

    On a CPU the time per image of a forward pass is lowest at batches of 4
    to 8 and grows beyond (resnet50: 8 ran 1.3x faster per image than 32,
    see bench/README.md); a GPU wants large batches."""
    return 64 if torch.device(device).type == "cuda" else 8


# ---------------------------------------------------------------- inputs
def _all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf in the tensor. One sum decides the common case (a sum
    of finite values is finite unless it overflows); only then is every
    element checked. 20x cheaper than isfinite(tensor).all() on an image."""
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def check_input_tensor(value: Any, name: str = "input_tensor", volumes: bool = True) -> None:
    """Raise TypeError/ValueError, naming ``name`` and the value given, unless
    ``value`` is a finite floating point batch B x C x H x W (or, with
    ``volumes``, B x C x D x H x W) of at least one image."""
    layout = "B x C x H x W (or B x C x D x H x W)" if volumes else "B x C x H x W"
    if not isinstance(value, torch.Tensor):
        hint = ""
        if isinstance(value, np.ndarray):
            hint = ("; for an H x W x 3 photo use pytorch_grad_cam.utils.image."
                    "preprocess_image(photo), which normalises it and returns a 1 x 3 x H x W "
                    "tensor")
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, "
                        f"got {given(value)}{hint}")
    shape = tuple(value.shape)
    if value.dim() == 3:
        raise ValueError(f"{name} must be a batch {layout}, got shape {shape}; add the batch "
                         f"dimension with {name}.unsqueeze(0)")
    if value.dim() not in ((4, 5) if volumes else (4,)):
        raise ValueError(f"{name} must be a batch {layout}, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); give at least one image")
    if not (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"{name} must be a floating point tensor, got dtype {value.dtype}; "
                        f"convert it, for example with preprocess_image() or "
                        f"{name}.float() / 255")
    if not _all_finite(value):
        finite = torch.isfinite(value)
        nan = int(torch.isnan(value).sum())
        first = tuple((~finite).nonzero()[0].tolist())
        raise ValueError(f"{name} contains {nan} NaN and {int((~finite).sum()) - nan} inf "
                         f"values (the first at index {first}); it must be finite, or the "
                         "model's scores and the maps are meaningless")


def prepare_input(input_tensor: Any, model: torch.nn.Module, name: str = "input_tensor",
                  volumes: bool = True) -> torch.Tensor:
    """The checked input, detached, on the model's device and in its dtype,
    usable by autograd (a tensor made under ``inference_mode`` is copied)."""
    check_input_tensor(input_tensor, name, volumes)
    device = model_device(model, fallback=input_tensor.device)
    dtype = model_float_dtype(model) or input_tensor.dtype
    with torch.inference_mode(False):
        x = input_tensor.detach()
        if x.is_inference():
            x = x.clone()
        return x.to(device=device, dtype=dtype)


# --------------------------------------------------------------- targets
def check_targets(targets: Any, batch: int) -> list[Callable] | None:
    """``targets`` as a list of ``batch`` callables, or None (each image's
    top class)."""
    if targets is None:
        return None
    if callable(targets) and not isinstance(targets, (list, tuple)):
        raise TypeError("targets must be a list with one target per image, "
                        f"got a single {given(targets)}; use [target] * batch_size")
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of callables (one per image) or None, "
                        f"got {given(targets)}")
    if len(targets) != batch:
        raise ValueError(f"targets has {len(targets)} entries but the batch has {batch} "
                         "images; give one target per image")
    for index, target in enumerate(targets):
        if not callable(target):
            raise TypeError(f"targets[{index}] must be callable (for example "
                            f"ClassifierOutputTarget(281)), got {describe(target)}")
    return list(targets)


def is_target_table(targets: Any) -> bool:
    """Whether ``targets`` gives each image a list of targets (the many
    targets form): a list or tuple with at least one list or tuple in it."""
    return (isinstance(targets, (list, tuple))
            and any(isinstance(row, (list, tuple)) for row in targets))


def check_target_table(targets: Any, batch: int) -> list[list[Callable]]:
    """``targets`` as ``batch`` lists of the same number K >= 1 of
    callables (the k-th target of every image is explained in map k);
    ValueError / TypeError naming the entry otherwise."""
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list with one list of targets per image, "
                        f"got {given(targets)}")
    if len(targets) != batch:
        raise ValueError(f"targets has {len(targets)} entries but the batch has {batch} "
                         "images; give one list of targets per image")
    rows: list[list[Callable]] = []
    for index, row in enumerate(targets):
        if not isinstance(row, (list, tuple)):
            raise TypeError(f"targets[{index}] is {describe(row)}, but other entries of targets "
                            "are lists: give every image a list of targets (the same number K "
                            "for each image), or every image one target")
        if len(row) == 0:
            raise ValueError(f"targets[{index}] is an empty list; give every image at least one "
                             "target")
        if rows and len(row) != len(rows[0]):
            raise ValueError(f"targets[{index}] has {len(row)} targets but targets[0] has "
                             f"{len(rows[0])}; every image needs the same number of targets K "
                             "(the maps come back as B x K x H x W). Explain images with other "
                             "numbers of targets in separate calls")
        for position, target in enumerate(row):
            if not callable(target):
                raise TypeError(f"targets[{index}][{position}] must be callable (for example "
                                f"ClassifierOutputTarget(281)), got {describe(target)}")
        rows.append(list(row))
    return rows


def check_targets_or_table(targets: Any, batch: int) -> list[Any] | None:
    """The targets of a call, checked: one list of targets per image
    (:func:`check_target_table`), else one target per image or None
    (:func:`check_targets`)."""
    if is_target_table(targets):
        return check_target_table(targets, batch)
    return check_targets(targets, batch)


def target_columns(targets: Any) -> list[Any]:
    """The targets of a pass as K columns, column k holding the k-th
    target of every image: a table (one list of K targets per image) gives
    K columns; a flat list of one target per image, and None (each image's
    top class), give one column."""
    if is_target_table(targets):
        return [list(column) for column in zip(*targets)]
    return [targets]


def repeat_rows(outputs: Any, times: int) -> Any:
    """Every image's entry of a batch's outputs (a tensor, or a list with
    one entry per image) ``times`` times in a row: row ``i * times + k`` is
    image i."""
    if times == 1:
        return outputs
    if isinstance(outputs, torch.Tensor):
        return outputs.repeat_interleave(times, dim=0)
    return [entry for entry in outputs for _ in range(times)]


def check_targets_against_outputs(targets: Sequence[Callable], outputs: Any) -> None:
    """Let every target that can check a model output (``check_output``,
    for example a class index against the number of classes) check its
    image's output; the error names the target."""
    for index, (target, output) in enumerate(zip(targets, outputs)):
        check = getattr(target, "check_output", None)
        if check is None:
            continue
        try:
            check(output)
        except ValueError as error:
            raise ValueError(f"targets[{index}] ({describe(target)}): {error}") from error


def _looks_like_detections(outputs: Any) -> bool:
    """A list (or tuple) of dicts with ``boxes``, as detection models return."""
    return (isinstance(outputs, (list, tuple)) and len(outputs) > 0
            and all(isinstance(o, Mapping) and "boxes" in o for o in outputs))


def resolve_targets(targets: Sequence[Callable] | None, outputs: Any,
                    batch: int | None = None) -> list[Callable]:
    """Per-image target callables, checked against the outputs; None means
    each image's top class. A target with a ``for_output(output)`` method
    (``RankedClassTarget``) is replaced by the target it returns for its
    image's output."""
    if targets is None:
        if _looks_like_detections(outputs):
            raise ValueError(
                "targets=None picks each image's top class, but this model is a detector: its "
                "output is a list with one dict of boxes, labels and scores per image, which "
                "has no top class; a detection model needs box targets, one per image, for "
                "example targets=[FasterRCNNBoxScoreTarget(labels, boxes)] with the labels and "
                "boxes of the detections to explain (from a forward pass of the model)")
        if not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2):
            raise ValueError("targets=None picks each image's top class and needs a "
                             "model output of shape B x num_classes; this model's output "
                             "is different, so give targets explicitly")
        targets = [ClassifierOutputTarget(c) for c in outputs.argmax(dim=-1).tolist()]
    if batch is not None and len(outputs) != batch:
        raise ValueError(f"the model returned {len(outputs)} outputs for a batch of {batch}")
    check_targets_against_outputs(targets, outputs)
    # a target that picks what it scores from the image's output (for
    # example RankedClassTarget: the class of a rank) is fixed here, so
    # that the perturbed inputs are scored for what the image chose
    return [target.for_output(output) if hasattr(target, "for_output") else target
            for target, output in zip(targets, outputs)]


# ----------------------------------------------------------------- scores
def select_output(output: Any, output_selector: Callable | None = None) -> Any:
    """The tensor of scores inside a model output.

    ``output_selector(output)`` if given; else the tensor itself; for a
    dict or a ``ModelOutput``, its ``logits``, else its ``"out"`` entry
    (torchvision's segmentation models return ``{"out": ..., "aux": ...}``);
    for a tuple, its first element; a list as it is (one entry per image,
    as detection models return)."""
    if output_selector is not None:
        return output_selector(output)
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits", output.get("out"))
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, tuple) and len(output) > 0 and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, list):
        return output  # one entry per image (for example detection models)
    keys = f" with keys {list(output)}" if isinstance(output, dict) else ""
    raise TypeError(f"the model returned {type(output).__name__}{keys}, which holds no tensor "
                    "of scores that could be found (dicts: 'logits' or 'out'; tuples: the "
                    "first element); pass output_selector=lambda out: ... that returns the "
                    "tensor the targets score")


def target_scores(targets: Sequence[Callable], outputs: Any) -> torch.Tensor:
    """The scalar score of every image (a 1-D tensor)."""
    if (isinstance(outputs, torch.Tensor) and outputs.dim() == 2
            and len(targets) == outputs.shape[0] > 1
            and all(type(target) is ClassifierOutputTarget for target in targets)):
        # the common case in one indexing operation instead of one per image
        classes = outputs.shape[1]
        categories = [target.category for target in targets]  # type: ignore[attr-defined]
        if all(-classes <= category < classes for category in categories):
            index = torch.tensor([category % classes for category in categories],
                                 device=outputs.device)
            return outputs.gather(1, index[:, None])[:, 0]
    scores: list[torch.Tensor] = []
    for position, (target, output) in enumerate(zip(targets, outputs)):
        score = target(output)
        if not isinstance(score, torch.Tensor):
            score = torch.as_tensor(score, dtype=torch.float32)
        if score.numel() != 1:
            raise ValueError(f"targets[{position}] ({type(target).__name__}) returned a "
                             f"tensor of shape {tuple(score.shape)}; a target must "
                             "return one scalar score per image")
        scores.append(score.reshape(()))
    return torch.stack(scores)


def score_ignores_input(model: torch.nn.Module, input_tensor: torch.Tensor,
                        score: Callable[[Any], torch.Tensor], images: Sequence[int]) -> bool:
    """Whether the target scores of ``images`` (indices into the batch
    ``input_tensor``; all images when the batch has fewer) do not depend on
    the input: each is exactly the same for the negated input and for an
    all-zero one (a classifier whose weights are all zero), so that no
    layer and no method can explain it. ``score(model output)`` gives the
    batch's target scores. Three forward passes without gradients; run it
    where the model is in the state it is explained in."""
    x = input_tensor.detach()
    with torch.inference_mode():
        reference = score(model(x))
        same = torch.ones_like(reference, dtype=torch.bool)
        for other in (-x, torch.zeros_like(x)):
            same &= score(model(other)) == reference
    chosen = [i for i in images if 0 <= i < len(same)]
    if len(chosen) == len(images):
        same = same[chosen]
    return bool(same.all())


# ------------------------------------------------- the perturbation loop
def chunks(count: int, size: int, desc: str = "",
           progress: bool = True) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of ``size`` items covering ``count``, with a
    tqdm progress bar (hidden with ``progress=False``)."""
    with tqdm(total=count, desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, count, size):
            stop = min(count, start + size)
            yield start, stop
            bar.update(stop - start)


def chunked_scores(model: torch.nn.Module, count: int,
                   make_inputs: Callable[[int, int], torch.Tensor],
                   owners: torch.Tensor | None, targets: Sequence[Callable] | None,
                   batch_size: int, output_selector: Callable | None = None,
                   progress: bool = False, desc: str = "",
                   ranges: Iterable[tuple[int, int]] | None = None, group: int = 1
                   ) -> tuple[torch.Tensor, list[Callable]]:
    """Target scores of ``count`` model inputs, a float32 tensor, and the
    target that scored each input.

    ``make_inputs(start, stop)`` builds inputs ``start .. stop - 1``; it is
    called ``batch_size`` items at a time, so the inputs never all exist at
    once. ``owners[i]`` is the index in ``targets`` of the target that
    scores input ``i``; with ``owners=None`` input i has target i, checked
    against its output, and ``targets=None`` scores every input by its own
    top class. Runs under
    ``torch.inference_mode``, with a progress bar. ``ranges``: the (start,
    stop) chunks to run, if not ``chunks(count, batch_size, desc,
    progress)``.

    ``group`` > 1 scores every input by ``group`` targets at once (an
    image explained for several targets: one pass for all of them): input
    i is scored by ``targets[owners[i] * group + j]`` for j in ``0 ..
    group - 1``, and the scores come back as ``count * group`` values,
    input i's j-th at ``i * group + j``."""
    if group > 1 and owners is None:
        raise ValueError("chunked_scores: group > 1 needs owners")
    scores: torch.Tensor | None = None
    used: list[Callable] = []
    owner_list = owners.tolist() if owners is not None else None  # one host sync per call
    with torch.inference_mode():
        for start, stop in (ranges if ranges is not None
                            else chunks(count, batch_size, desc, progress)):
            outputs = select_output(model(make_inputs(start, stop)), output_selector)
            if group > 1:
                assert targets is not None and owner_list is not None
                rows = [targets[owner * group + j] for owner in owner_list[start:stop]
                        for j in range(group)]
                outputs = repeat_rows(outputs, group)
            elif owner_list is None:
                rows = resolve_targets(None if targets is None else targets[start:stop],
                                       outputs)
            else:
                assert targets is not None, "owners index into targets"
                rows = [targets[i] for i in owner_list[start:stop]]
            chunk_scores = target_scores(rows, outputs).float()
            if scores is None:
                scores = torch.empty(count * group, dtype=torch.float32,
                                     device=chunk_scores.device)
            scores[start * group:stop * group] = chunk_scores
            used.extend(rows)
    if scores is None:
        device = owners.device if owners is not None else torch.device("cpu")
        scores = torch.empty(0, dtype=torch.float32, device=device)
    return scores, used


class PerturbationPasses(DeviceBatchSize):
    """The chunked passes of an explainer of ``self.model`` (the CAM
    methods): ``batch_size`` inputs at a time, with its ``output_selector``
    and its ``progress`` bar setting."""

    output_selector: Callable | None
    progress: bool

    def chunks(self, count: int, desc: str,
               size: int | None = None) -> Iterator[tuple[int, int]]:
        """(start, stop) ranges of ``size`` (default ``batch_size``) items,
        with the progress bar setting."""
        return chunks(count, size or self.batch_size, desc, self.progress)

    def perturbed_scores(self, count: int, make_inputs: Callable[[int, int], torch.Tensor],
                         owners: torch.Tensor, targets: Sequence[Callable],
                         desc: str, group: int = 1) -> torch.Tensor:
        """Target scores of ``count`` perturbed inputs, a float32 tensor
        ``count`` x ``group`` (``chunked_scores`` with this object's model,
        batch size, output selector and progress bar; with ``group`` > 1
        each owner has ``group`` targets, and each input is scored by all
        of them from its one pass)."""
        scores, _ = chunked_scores(self.model, count, make_inputs, owners, targets,
                                   self.batch_size, self.output_selector,
                                   ranges=self.chunks(count, desc), group=group)
        return scores.reshape(count, group)
