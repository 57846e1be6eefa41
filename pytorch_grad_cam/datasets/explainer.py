"""The work on the items of one batch: every method's maps, the
predictions and the metrics, as the rows of the results store, each item's
rows handed over as soon as that item is finished.

A batch goes through the public CAM API: ``cam(input_tensor=batch,
targets=[ClassifierOutputTarget(c), ...])``, the predictions from
``cam.outputs`` (the first method's forward pass: no extra pass), the
metrics from :mod:`pytorch_grad_cam.metrics`.

Several classes per image (``TopClasses``, ``MultiLabel``: see
:mod:`~pytorch_grad_cam.datasets.target_modes`): for ``TopClasses(k)`` the
first method's call chooses every image's k best classes from its own
forward pass (``target_sets.ranked_targets``) and gives the predictions,
and the other methods explain the same classes; for ``MultiLabel`` one
forward pass over the batch chooses them first. Each method explains them
in ONE call with the target table
(``targets=[[t1, ..., tK], ...]``, maps B x K x H x W), one call per group
of images with the same number of classes for ``MultiLabel``
(``target_sets.groups_by_count``). An image gets one row per (method,
class), ``rank`` 0 for its best class; the metrics score each of these
maps. A ``MultiLabel`` image without a class above the threshold gets one
``no_target`` row per method.

The methods that make one pass per batch (Grad-CAM and the other gradient
and activation methods) run on the whole batch first. The methods with
extra passes (registry trait ``extra_passes``: Score-CAM, Ablation-CAM, the
sampling methods, Smooth Grad-CAM++) make hundreds of passes per image,
chunked by ``batch_size`` whether their images come one or several at a
time, so they run one image at a time, and so do the metrics (tens of
passes per image): an image is finished, and its rows are handed over,
after its own passes, not after the whole batch's. A run stopped with
Ctrl-C keeps every finished image.

A method that raises on a batch of several images is run again image by
image, so that only the image that makes it raise gets a ``model_error``
row.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pytorch_grad_cam.base_cam import model_state_guard
from pytorch_grad_cam.datasets.evaluation import BatchMetrics
from pytorch_grad_cam.datasets.sources import Batch, Record
from pytorch_grad_cam.datasets.target_modes import TargetSpec
from pytorch_grad_cam.registry import method_info
from pytorch_grad_cam.scoring import select_output
from pytorch_grad_cam.utils.image_io import first_line
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.target_sets import (
    groups_by_count,
    multilabel_classes,
    ranked_targets,
    top_k_classes,
)

__all__ = ["EMPTY_MAP_WARNING", "Explainer", "Rows", "has_extra_passes", "make_cams",
           "reads_attention"]

#: the library's warning for an all-zero map: the runner records it per row
#: (``empty_map``) and counts it in the summary instead
EMPTY_MAP_WARNING = "the class activation map is all zeros"

#: the rows of one item, one per (method, class)
Rows = list[dict[str, Any]]
#: the classes of each image of a batch, best first
Classes = list[list[int]]
#: the most (image, class) maps one call may return: a batch whose images have
#: more classes (a MultiLabel threshold that hundreds of classes pass) is
#: explained a few images a call, so that memory stays bounded
MAPS_PER_CALL = 512


def _trait(cls: type, name: str) -> bool:
    """A registry trait of a method class; False for an unregistered one."""
    try:
        return bool(getattr(method_info(cls), name))
    except KeyError:
        return False


def has_extra_passes(cls: type) -> bool:
    """Whether the method makes passes beyond the recording one, chunked by
    ``batch_size`` (the perturbation methods and Smooth Grad-CAM++): those
    get the run's ``batch_size`` and explain one image at a time."""
    return _trait(cls, "extra_passes")


def reads_attention(cls: type) -> bool:
    """Whether the method reads a Vision Transformer's attention (its
    layers are the transformer blocks, not the run's target layers)."""
    return _trait(cls, "attention")


class _SplitBatch(Exception):
    """A method raised on a batch of several images: explain them one by one."""


@dataclass
class _Maps:
    """What methods gave for some images: their maps (per image, its
    classes x H x W at the input size), their errors (only ever for one
    image), and the logits of the batch (of the pass that chose the
    classes, else of the first method that succeeded; None when none
    did)."""

    maps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    logits: torch.Tensor | None = None

    def image(self, k: int) -> _Maps:
        return _Maps({name: maps[k:k + 1] for name, maps in self.maps.items()},
                     dict(self.errors), None if self.logits is None else self.logits[k:k + 1])


def choose_classes(targets: TargetSpec, logits: torch.Tensor) -> Classes:
    """The classes ``targets`` explains in each image, best first, from the
    batch's logits (B x classes): the top ``k``, or those above the
    multi-label threshold (possibly none)."""
    if targets.mode == "multilabel":
        return multilabel_classes(logits, targets.threshold, sigmoid=True,
                                  max_classes=targets.max_labels)
    return top_k_classes(logits, targets.k)


class Explainer:
    """Explains the batches of one process (see the module docstring).

    Args:
        model: the classifier.
        cams: (name, CAM object) in the order of every item's rows.
        device: where the inputs go.
        targets: the classes to explain (``target_modes.check_targets``).
        num_classes, top_k: the model's classes, the predictions kept.
        map_shape: (H, W) of the stored maps.
        metrics: the metrics, or None.
    """

    def __init__(self, model: torch.nn.Module, cams: list[tuple[str, Any]], device: torch.device,
                 targets: TargetSpec, num_classes: int, top_k: int,
                 map_shape: tuple[int, int], metrics: BatchMetrics | None):
        self.model = model
        self.cams = cams
        self.batched = [(name, cam) for name, cam in cams if not has_extra_passes(type(cam))]
        self.single = [(name, cam) for name, cam in cams if has_extra_passes(type(cam))]
        self.device = device
        self.targets = targets
        self.num_classes = num_classes
        self.top_k = top_k
        self.map_shape = map_shape
        self.metrics = metrics
        #: images in a row on which every method raised
        self.consecutive_failures = 0

    # ------------------------------------------------------------ rows
    def _bad_rows(self, record: Record, status: str, reason: str) -> Rows:
        return [self._row(record, name, status, reason) for name, _ in self.cams]

    def _row(self, record: Record, method: str, status: str, reason: str = "",
             **values: Any) -> dict[str, Any]:
        row = {"position": record.position, "id": record.id, "path": record.path,
               "label": record.label, "method": method, "status": status, "reason": reason,
               "height": record.height, "width": record.width, "rank": 0, "target": -1,
               "score": float("nan"), "prob": float("nan"), "empty_map": False, "map": None,
               "pred_classes": None, "pred_probs": None, "metrics": None}
        row.update(values)
        return row

    # --------------------------------------------------------- compute
    def _call(self, cam: Any, inputs: torch.Tensor, classes: Classes | None) -> np.ndarray:
        """One call of ``cam``: maps B x K x H x W for the K classes of every
        image (the same K; a flat target list when K is 1)."""
        targets: list | None
        if classes is None:  # chosen by the call: the top class, or the top k
            k = self.targets.k if self.targets.mode == "top_classes" else 1
            targets = None if k == 1 else ranked_targets(inputs.shape[0], k)
        elif all(len(row) == 1 for row in classes):
            targets = [ClassifierOutputTarget(row[0]) for row in classes]
        else:
            targets = [[ClassifierOutputTarget(c) for c in row] for row in classes]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=EMPTY_MAP_WARNING, category=RuntimeWarning)
            maps = cam(input_tensor=inputs, targets=targets)
        return maps if maps.ndim == 4 else maps[:, None]

    def _explain(self, cam: Any, inputs: torch.Tensor, classes: Classes | None
                 ) -> tuple[list[np.ndarray], torch.Tensor | None]:
        """Each image's maps (its classes x H x W) from ``cam``: one call, or
        one per group of images with the same number of classes; a group
        whose maps would be more than :data:`MAPS_PER_CALL` is explained a
        few images a call (at least one image, all of its classes). Also the
        logits of the calls' own forward passes when they chose the classes
        (``classes`` None), else None."""
        if classes is None:  # the call chooses each image's top class(es)
            step = max(1, MAPS_PER_CALL // self.targets.per_image)
            parts: list[np.ndarray] = []
            outputs: list[torch.Tensor] = []
            for start in range(0, inputs.shape[0], step):
                parts.extend(self._call(cam, inputs[start:start + step], None))
                outputs.append(self._logits(cam, inputs[start:start + step]))
            return parts, torch.cat(outputs)
        maps: list[np.ndarray] = [np.zeros(0)] * len(classes)
        for group in groups_by_count(classes):
            step = max(1, MAPS_PER_CALL // len(classes[group[0]]))
            for start in range(0, len(group), step):
                part = group[start:start + step]
                chosen = inputs if len(part) == len(classes) else inputs[part]
                for i, image_maps in zip(part, self._call(cam, chosen,
                                                          [classes[i] for i in part])):
                    maps[i] = image_maps
        return maps, None

    def _logits(self, cam: Any, inputs: torch.Tensor) -> torch.Tensor:
        outputs = getattr(cam, "outputs", None)
        if isinstance(outputs, torch.Tensor) and outputs.dim() == 2 \
                and outputs.shape[0] == inputs.shape[0]:
            return outputs.detach().float()
        with model_state_guard(self.model), torch.inference_mode():
            return select_output(self.model(inputs)).detach().float()

    def _store_maps(self, maps: torch.Tensor) -> np.ndarray:
        """B x H x W input-size maps -> B x h x w float16 at the stored size."""
        height, width = self.map_shape
        if tuple(maps.shape[1:]) == (height, width):
            resized = maps
        elif height <= maps.shape[1] and width <= maps.shape[2]:
            resized = F.adaptive_avg_pool2d(maps[:, None], (height, width))[:, 0]
        else:
            resized = F.interpolate(maps[:, None], size=(height, width), mode="bilinear",
                                    align_corners=False)[:, 0]
        return resized.to(torch.float16).cpu().numpy()

    def _run(self, cams: list[tuple[str, Any]], inputs: torch.Tensor,
             classes: Classes | None, done: _Maps | None = None) -> _Maps:
        """``cams`` on ``inputs``, added to ``done``; _SplitBatch when a method
        raises on several images. Without ``classes`` the first method
        explains each image's top class, and the others the same class."""
        result = done if done is not None else _Maps()
        for name, cam in cams:
            if classes is None and result.logits is not None:
                # the classes the first method's call chose, for the others
                classes = choose_classes(self.targets, result.logits)
            try:
                result.maps[name], logits = self._explain(cam, inputs, classes)
                if result.logits is None:
                    result.logits = logits if logits is not None else self._logits(cam, inputs)
            except Exception as error:  # noqa: BLE001  (the user's model may raise anything)
                if inputs.shape[0] > 1:
                    raise _SplitBatch() from error
                result.errors[name] = first_line(error)
        return result

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The rows' probabilities: sigmoid(score) in a multi-label run, else
        the softmax over the classes."""
        return torch.sigmoid(logits) if self.targets.sigmoid else torch.softmax(logits, dim=1)

    def _predictions(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        """The top-k predictions of one image (``logits`` 1 x classes)."""
        top_probs, top_classes = self._probabilities(logits).topk(self.top_k, dim=1)
        return {"pred_classes": top_classes[0].cpu().numpy(),
                "pred_probs": top_probs[0].cpu().numpy()}

    def _finish(self, inputs: torch.Tensor, record: Record, classes: Classes | None,
                done: _Maps) -> Rows:
        """The rows of one image (``inputs`` 1 x C x H x W): the methods with
        extra passes, the predictions, the metrics of every map; one row per
        (method, class), the image's classes in ``rank`` order."""
        result = self._run(self.single, inputs, classes, done)
        if result.logits is None:  # every method failed on this image
            try:
                result.logits = self._logits(None, inputs)
            except Exception as error:  # noqa: BLE001
                return self._bad_rows(record, "model_error",
                                      f"the model raised {first_line(error)}")
        logits = result.logits
        mine = choose_classes(self.targets, logits)[0] if classes is None else list(classes[0])
        index = torch.tensor(mine, device=logits.device)
        scores = logits[0, index].tolist()
        probs = self._probabilities(logits)[0, index].tolist()
        predictions = self._predictions(logits)
        rows = []
        for name, cam in self.cams:
            if name in result.errors:
                rows.append(self._row(record, name, "model_error",
                                      f"{name} raised {result.errors[name]}"))
                continue
            full = torch.from_numpy(result.maps[name][0])  # classes x H x W
            stored = self._store_maps(full)
            for rank, target in enumerate(mine):
                values: dict[str, np.ndarray] = {}
                metric_errors: dict[str, str] = {}
                if self.metrics is not None:
                    values, metric_errors = self.metrics(
                        inputs, full[rank:rank + 1].to(self.device), [target], self.model, cam)
                reason = "; ".join(f"metric {m} failed: {e}" for m, e in metric_errors.items())
                rows.append(self._row(
                    record, name, "ok", reason, rank=rank, target=target, score=scores[rank],
                    prob=probs[rank], empty_map=bool(full[rank].amax() <= 0), map=stored[rank],
                    metrics={m: float(v[0]) for m, v in values.items()}, **predictions))
        return rows

    # ----------------------------------------------------------- items
    def _checked(self, batch: Batch) -> tuple[dict[int, Rows], list[int], torch.Tensor | None]:
        """The rows of the items that cannot be explained (bad, or without a
        usable label), the indices of the others and their inputs."""
        records = batch.records
        rows: dict[int, Rows] = {}
        for i, record in enumerate(records):
            if record.status != "ok":
                rows[i] = self._bad_rows(record, record.status, record.reason)
        good = list(batch.good)
        inputs = batch.inputs
        if good and self.targets.mode == "label":
            usable = []
            for k, i in enumerate(good):
                label = records[i].label
                if label < 0:
                    rows[i] = self._bad_rows(records[i], "no_label", "the item has no class "
                                             "label (targets='label')")
                elif label >= self.num_classes:
                    rows[i] = self._bad_rows(records[i], "no_label", f"label {label} is out of "
                                             f"range for the model's {self.num_classes} classes")
                else:
                    usable.append(k)
            good, inputs = _keep(good, inputs, usable)
        return rows, good, inputs

    def _scores(self, inputs: torch.Tensor, records: list[Record], good: list[int],
                rows: dict[int, Rows]) -> tuple[list[int], torch.Tensor | None,
                                                torch.Tensor | None]:
        """The pass that chooses the classes (several per image): the logits
        of the batch in one forward pass; when the model raises on it, of
        each image alone, an image that makes it raise getting
        ``model_error`` rows. Returns the images left, their inputs and
        logits."""
        try:
            return good, inputs, self._logits(None, inputs)
        except Exception as error:  # noqa: BLE001  (the user's model may raise anything)
            if len(good) == 1:
                rows[good[0]] = self._bad_rows(records[good[0]], "model_error",
                                               f"the model raised {first_line(error)}")
                return [], None, None
        usable, parts = [], []
        for k, i in enumerate(good):
            try:
                parts.append(self._logits(None, inputs[k:k + 1]))
                usable.append(k)
            except Exception as error:  # noqa: BLE001
                rows[i] = self._bad_rows(records[i], "model_error",
                                         f"the model raised {first_line(error)}")
        good, kept = _keep(good, inputs, usable)
        return good, kept, torch.cat(parts) if parts else None

    def _chosen(self, inputs: torch.Tensor, records: list[Record], good: list[int],
                rows: dict[int, Rows]) -> tuple[list[int], torch.Tensor | None, Classes,
                                                torch.Tensor | None]:
        """Every image's classes from one forward pass (``TopClasses``,
        ``MultiLabel``); an image without any gets ``no_target`` rows (with
        its predictions). Returns the images left, their inputs, classes and
        logits."""
        good, kept, logits = self._scores(inputs, records, good, rows)
        if logits is None:
            return good, kept, [], None
        classes = choose_classes(self.targets, logits)
        usable = []
        for k, i in enumerate(good):
            if classes[k]:
                usable.append(k)
                continue
            best = int(logits[k].argmax())
            probability = float(torch.sigmoid(logits[k, best]))
            reason = (f"no class has sigmoid(score) >= {self.targets.threshold:g} (the most "
                      f"probable: class {best}, {probability:.3f})")
            predictions = self._predictions(logits[k:k + 1])
            rows[i] = [self._row(records[i], name, "no_target", reason, **predictions)
                       for name, _ in self.cams]
        kept_logits = logits[usable] if len(usable) < len(good) else logits
        good, kept = _keep(good, kept, usable)
        return good, kept, [classes[k] for k in usable], kept_logits

    def explain(self, batch: Batch) -> Iterator[Rows]:
        """The rows of every item of a batch, in order, each item's as soon
        as it is finished (see the module docstring)."""
        records = batch.records
        ready, good, inputs = self._checked(batch)
        classes: Classes | None = None
        logits: torch.Tensor | None = None
        first: _Maps | None = None
        if good:
            assert inputs is not None
            inputs = inputs.to(self.device, non_blocking=True)
            if self.targets.mode == "label":
                classes = [[records[i].label] for i in good]
            elif self.targets.mode == "class":
                classes = [[int(self.targets.fixed_class or 0)]] * len(good)
            elif self.targets.choosing_pass:
                good, inputs, classes, logits = self._chosen(inputs, records, good, ready)
        if good:
            assert inputs is not None
            try:
                first = self._run(self.batched, inputs, classes, _Maps(logits=logits))
            except _SplitBatch:
                first = None  # each image alone
        order = {i: k for k, i in enumerate(good)}
        for i, record in enumerate(records):
            if i in ready:
                if all(row["status"] == "model_error" for row in ready[i]):
                    self.consecutive_failures += 1  # the pass that chooses the classes raised
                yield ready[i]
                continue
            assert inputs is not None
            k = order[i]
            one = inputs[k:k + 1]
            mine = None if classes is None else classes[k:k + 1]
            done = first.image(k) if first is not None else self._run(
                self.batched, one, mine, _Maps(logits=None if logits is None else logits[k:k + 1]))
            rows = self._finish(one, record, mine, done)
            if all(row["status"] == "model_error" for row in rows):
                self.consecutive_failures += 1
            else:
                self.consecutive_failures = 0
            yield rows


def _keep(good: list[int], inputs: torch.Tensor | None, usable: list[int]
          ) -> tuple[list[int], torch.Tensor | None]:
    """The images ``usable`` (positions in ``good``) and their inputs."""
    if len(usable) == len(good):
        return good, inputs
    assert inputs is not None
    return [good[k] for k in usable], inputs[usable] if usable else None


def make_cams(stack: contextlib.ExitStack, entries: list[tuple[str, type]],
              model: torch.nn.Module, layers: list[torch.nn.Module],
              reshape_transform: Callable | None, options: dict[str, Any],
              batch_size: int | None) -> list[tuple[str, Any]]:
    """The CAM object of every method, entered in ``stack`` (their hooks
    are removed when it closes): ``progress=False``, the run's
    ``batch_size`` for the methods with extra passes, the method's
    ``options``; the attention methods read every transformer block."""
    cams = []
    for name, cls in entries:
        kwargs = dict(options.get(name, {}))
        kwargs.setdefault("progress", False)
        if batch_size is not None and has_extra_passes(cls):
            kwargs.setdefault("batch_size", batch_size)
        if reads_attention(cls):  # the attention of every block, its own layout
            cam = cls(model=model, **kwargs)
        else:
            cam = cls(model=model, target_layers=layers, reshape_transform=reshape_transform,
                      **kwargs)
        cams.append((name, stack.enter_context(cam) if hasattr(cam, "__enter__") else cam))
    return cams
