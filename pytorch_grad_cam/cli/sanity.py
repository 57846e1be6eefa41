"""``--sanity-checks``: the sanity checks of
:mod:`pytorch_grad_cam.metrics.sanity` on every method's map of an image,
printed as a table per explained class
(:func:`~pytorch_grad_cam.metrics.sanity_table.format_sanity_table`: the
value, the threshold, PASS or FAIL, the similarities; then every
threshold and where it comes from).

The checks re-run each method on a re-initialised copy of the model (MPRT,
sMPRT, eMPRT) or for a random other class (RandomLogit); the model of the
run is not changed. The K classes of an image are checked in one batch of
K copies of the image, copy k explaining class k, as ``--evaluate`` scores
them. As ``--evaluate``, the checks run the methods as they are, without
``--sess``, ``--aug-smooth`` or ``--eigen-smooth``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pytorch_grad_cam.cli.outputs import class_label
from pytorch_grad_cam.cli.records import ImageResult, Job
from pytorch_grad_cam.metrics.sanity import sanity_results
from pytorch_grad_cam.metrics.sanity_table import format_sanity_table, sanity_cost_text, sanity_row
from pytorch_grad_cam.registry import METHODS, get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = ["sanity_header", "sanity_report"]


def sanity_header(job: Job) -> str:
    """The header's line of what the checks cost, per image, class and
    method."""
    return (f"sanity checks per image, class and method: "
            f"{sanity_cost_text(job.sanity_checks, job.model)}")


def sanity_report(job: Job, results: Sequence[ImageResult]) -> str:
    """The sanity checks of every method for one image (``results``: one
    per explained class), as a table per class, indented under the image."""
    copies = results[0].input_tensor.repeat(len(results), 1, 1, 1)
    targets = [ClassifierOutputTarget(result.category) for result in results]
    found = {}
    for name in job.methods:
        kwargs: dict[str, Any] = {} if job.batch_size is None else {"batch_size": job.batch_size}
        layers: list[torch.nn.Module] | None = job.target_layers
        reshape = job.reshape_transform
        if get_method(name).attention:  # the attention of every block, its own layout
            layers, reshape = None, None
        found[name] = sanity_results(job.sanity_checks, copies, targets, job.model,
                                     METHODS[name], layers, kwargs, reshape)
    lines = []
    for index, result in enumerate(results):
        if len(results) > 1:
            lines.append(f"  class {class_label(result.category, job.class_names)}:")
        rows = [sanity_row(name, check, index) for name, checks in found.items()
                for check in checks.values()]
        lines.append(format_sanity_table(rows, indent="  "))
    return "\n".join(lines)
