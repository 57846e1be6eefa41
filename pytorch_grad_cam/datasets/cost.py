"""What a dataset run will cost, printed by ``explain-dataset`` before the
first image (as the image command prints its cost), so that a run of
hours can be stopped before it starts.

The methods' passes per image are the image command's
(:mod:`pytorch_grad_cam.app.cost`, from the registry traits and the target
layers' channels); the metrics add theirs for every method's map
(:meth:`~pytorch_grad_cam.datasets.evaluation.BatchMetrics.passes`); the
total is over the images this run explains::

    explaining 17 of 25 images (8 already done) with gradcam, scorecam at head_activation on cpu
    cost per image:
      gradcam: 1 forward + 1 backward pass on cpu
      scorecam: ~1,281 forward passes on cpu
      metrics, for each method's map: ROADCombined 8, Deletion 51 forward passes
      in all: ~23,494 forward passes for 17 images on cpu

With several classes per image (``TopClasses(k)``, ``MultiLabel``) a line
says what they add: one forward pass per image that chooses the classes;
each method's forward passes once for all of an image's k classes, its
backward passes (one gradient per class) and the metrics' passes k times::

      targets: each image's 3 best classes: 1 forward pass an image chooses them; each method's
        backward passes and the metrics' passes once per class (x3)

For ``MultiLabel`` the number of classes is not known before the run: the
totals count ``max_labels`` an image (1 without it) and are marked ``~``.
With sanity checks a last line says what they add after the run
(:attr:`~pytorch_grad_cam.datasets.summary.RunStart.sanity`).
"""
from __future__ import annotations

from pytorch_grad_cam.app.cost import Cost, cost_report, method_cost
from pytorch_grad_cam.datasets.summary import RunStart

__all__ = ["run_cost"]


def _passes(forward: int, backward: int) -> str:
    if backward:
        return f"{forward:,} forward + {backward:,} backward"
    return f"{forward:,} forward"


def run_cost(start: RunStart) -> str:
    """The lines printed before a run (see the module docstring); only the
    first when nothing is left to explain."""
    device = start.device
    done = f" ({start.skipped} already done)" if start.skipped else ""
    processes = f", {start.world_size} processes" if start.world_size > 1 else ""
    lines = [f"explaining {start.to_explain} of {start.items} images{done} with "
             f"{', '.join(start.methods)} at {', '.join(start.target_layers)} on "
             f"{device.type}{processes}"]
    images = start.to_explain
    if not images:
        return "\n".join(lines[:1] + ([f"  {start.sanity}"] if start.sanity else []))
    lines.append(cost_report(start.methods, start.channels, device, cams=start.cams))
    costs: dict[str, Cost] = {name: method_cost(name, start.channels, cam=start.cams.get(name))
                              for name in start.methods}
    targets = start.targets
    per_image = targets.per_image
    forward = sum(cost.forward for cost in costs.values()) + int(targets.choosing_pass)
    backward = per_image * sum(cost.backward for cost in costs.values())
    approximate = any(cost.approximate for cost in costs.values()) \
        or targets.mode == "multilabel"
    if targets.from_scores:
        if targets.mode == "top_classes":
            counted = f"x{per_image}"
        elif targets.max_labels:
            counted = f"the totals count {per_image} an image, the most it can get"
        else:
            counted = "the totals count 1 an image: how many pass the threshold is known " \
                      "only during the run"
        chosen = ("1 forward pass an image chooses them" if targets.choosing_pass else
                  "the first method's forward pass chooses them")
        lines.append(f"  targets: {targets.describe()}: {chosen}; "
                     "each method's backward passes and the metrics' passes once per class "
                     f"({counted})")
    if start.metrics is not None:
        parts: dict[str, str] = {}
        for cost in costs.values():
            for metric, (f, b) in start.metrics.passes(cost.forward, cost.backward).items():
                forward, backward = forward + per_image * f, backward + per_image * b
                parts[metric] = ("Coherency (the method's passes again)" if metric == "Coherency"
                                 else f"{metric} {f:,}")
        lines.append(f"  metrics, for each method's map: {', '.join(parts.values())} forward "
                     "passes")
    approx = "~" if approximate else ""
    lines.append(f"  in all: {approx}{_passes(forward * images, backward * images)} passes for "
                 f"{images} image{'s' if images != 1 else ''} on {device.type}")
    if start.sanity:
        lines.append(f"  {start.sanity}")
    return "\n".join(lines)
