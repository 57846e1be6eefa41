"""The sanity checks' results as the front-ends show them: one row per
(method, check) with the verdict's value, its pass mark, PASS or FAIL and
the similarities behind it (Spearman, SSIM, top-k intersection), a
plain-text table of those rows with the thresholds and where they come
from, and what the checks cost in maps.

The rows are plain dicts of numbers and strings (:func:`sanity_row`), so
that a dataset run stores them as JSON and its report shows them as the
command line prints them::

    from pytorch_grad_cam.metrics.sanity import sanity_results
    from pytorch_grad_cam.metrics.sanity_table import format_sanity_table, sanity_row

    rows = [sanity_row(name, result) for name, result in
            sanity_results(["MPRT"], x, None, model, "gradcam", layers, {}, None).items()]
    print(format_sanity_table(rows))
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.metric_names import METRICS, SANITY_CHECKS
from pytorch_grad_cam.metrics.randomisation import randomisable_layers
from pytorch_grad_cam.metrics.sanity import SANITY_THRESHOLDS, SanityResult, SmoothMPRT, passes

__all__ = ["SANITY_RULES", "SIMILARITIES", "format_sanity_table", "sanity_cost",
           "sanity_cost_text", "sanity_row", "threshold_lines", "threshold_text"]

#: the similarity columns of a row: name -> the detail of each check it is read from
#: (MPRT: after the full cascade; eMPRT compares entropies, no similarity)
SIMILARITIES: dict[str, dict[str, str]] = {
    "spearman": {"MPRT": "cascading/spearman", "sMPRT": "spearman", "RandomLogit": "spearman"},
    "ssim": {"MPRT": "cascading/ssim", "sMPRT": "ssim", "RandomLogit": "ssim"},
    "top_k": {"MPRT": "cascading/top_k", "sMPRT": "top_k"},
}

#: what each check's pass mark is and where it comes from (see the docstring of
#: :mod:`pytorch_grad_cam.metrics.sanity`)
SANITY_RULES: dict[str, str] = {
    "MPRT": "Spearman rank correlation of the map with the map after full cascading "
            "randomisation; the mark is halfway between unchanged (1) and no agreement (0): "
            "Adebayo et al. (NeurIPS 2018) state no number",
    "sMPRT": "the same on maps averaged over 50 noisy copies of the image (Hedström et al., "
             "TMLR 2024); mark as MPRT's",
    "eMPRT": "ratio of the map's histogram entropy after / before full randomisation; the "
             "mark is Hedström et al.'s (TMLR 2024): the complexity must rise",
    "RandomLogit": "SSIM of the maps of the class and of a random other class; the mark is "
                   "halfway between identical (1) and unrelated (0): Sixt et al. (ICML 2020) "
                   "state no number",
}
assert tuple(SANITY_RULES) == SANITY_CHECKS


def threshold_text(check: str, threshold: float | None = None) -> str:
    """``< 0.5`` (the similarities) or ``> 1`` (eMPRT): what a pass needs."""
    mark = SANITY_THRESHOLDS[check] if threshold is None else threshold
    return f"{'<' if METRICS[check] == 'lower' else '>'} {mark:g}"


def threshold_lines(checks: Sequence[str]) -> list[str]:
    """One line per check: what passes and where the threshold comes from."""
    return [f"{check} passes {threshold_text(check)}: {SANITY_RULES[check]}"
            for check in SANITY_CHECKS if check in checks]


def _mean(values: Any, index: int | None) -> float:
    array = np.asarray(values, dtype=np.float64)
    if index is not None:
        array = array[..., index]
    return float(np.mean(array))


def sanity_row(method: str, result: SanityResult, index: int | None = None) -> dict[str, Any]:
    """One (method, check) row of ``result``: ``method``, ``check``,
    ``value`` (the mean over the images, or image ``index``'s),
    ``threshold``, ``passed``, ``verdict`` ("PASS" / "FAIL"), ``measure``
    and the similarities ``spearman``, ``ssim``, ``top_k`` (None where the
    check has none), ``images`` (how many it covers). JSON-ready."""
    value = _mean(result.values, index)
    row: dict[str, Any] = {"method": method, "check": result.test, "value": value,
                           "threshold": float(result.threshold),
                           "passed": passes(result.test, value, result.threshold),
                           "measure": result.measure,
                           "images": 1 if index is not None else int(len(result.values))}
    row["verdict"] = "PASS" if row["passed"] else "FAIL"
    for column, sources in SIMILARITIES.items():
        key = sources.get(result.test)
        # MPRT's details are steps x images: the last step is the full randomisation
        values = result.details.get(key) if key is not None else None
        if values is not None and np.ndim(values) == 2:
            values = np.asarray(values)[-1]
        row[column] = None if values is None else _mean(values, index)
    return row


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.4f}"


def format_sanity_table(rows: Sequence[Mapping[str, Any]], indent: str = "") -> str:
    """The rows (:func:`sanity_row`; a row with ``error`` instead of a value
    shows ERROR and the message) as a table: method, check, value, what a
    pass needs, PASS/FAIL, the similarities; then, for every check shown,
    its threshold and where it comes from, and a line naming the methods
    that fail."""
    if not rows:
        raise ValueError("rows is empty: no sanity check to show")
    header = ["method", "check", "value", "pass if", "verdict", "spearman", "ssim", "top-k"]
    lines = []
    for row in rows:
        if row.get("error"):
            lines.append([row["method"], row["check"], "-", threshold_text(row["check"]),
                          "ERROR", "-", "-", "-"])
            continue
        lines.append([row["method"], row["check"], _number(row["value"]),
                      threshold_text(row["check"], row["threshold"]), row["verdict"],
                      _number(row.get("spearman")), _number(row.get("ssim")),
                      _number(row.get("top_k"))])
    widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        left = [cells[i].ljust(widths[i]) for i in (0, 1)]
        right = [cells[i].rjust(widths[i]) for i in range(2, len(cells))]
        return indent + "  ".join(left + right).rstrip()

    table = [render(header), indent + "  ".join("-" * w for w in widths)]
    table += [render(line) for line in lines]
    table += [indent + line for line in threshold_lines([row["check"] for row in rows])]
    failing = list(dict.fromkeys(row["method"] for row in rows
                                 if not row.get("error") and not row["passed"]))
    errors = [row for row in rows if row.get("error")]
    if failing:
        table.append(f"{indent}FAIL: {', '.join(failing)} fail(s) a sanity check: the map does "
                     "not depend enough on the model's weights or on the class; do not trust "
                     "it as an explanation of this model")
    for row in errors:
        table.append(f"{indent}ERROR: {row['method']} {row['check']}: {row['error']}")
    return "\n".join(table)


def sanity_cost(checks: Sequence[str], model: torch.nn.Module) -> dict[str, int]:
    """The maps each check computes per method (each map one call of the
    method on the batch: for a gradient method one forward and one
    backward pass): MPRT 1 + one per layer it re-initialises
    (:func:`~pytorch_grad_cam.metrics.randomisation.randomisable_layers`),
    sMPRT 2 x 50 (its noisy copies, on the trained and the fully
    randomised model), eMPRT 2, RandomLogit 2."""
    costs = {"MPRT": 1 + len(randomisable_layers(model)) if "MPRT" in checks else 0,
             "sMPRT": 2 * SmoothMPRT().n_samples, "eMPRT": 2, "RandomLogit": 2}
    return {check: costs[check] for check in checks}


def sanity_cost_text(checks: Sequence[str], model: torch.nn.Module) -> str:
    """``MPRT 12 maps, RandomLogit 2 maps`` and the copy of the model the
    randomisation checks make."""
    counts = sanity_cost(checks, model)
    text = ", ".join(f"{check} {count:,} maps" for check, count in counts.items())
    copies = [check for check in checks if check != "RandomLogit"]
    if copies:
        text += (f" ({', '.join(copies)} on a re-initialised copy of the model, one more "
                 "model in memory; the model itself is not changed)")
    return text
