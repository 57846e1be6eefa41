"""The pure parts of ``quality_benchmark.py``: confidence intervals, the
Markdown table, and the choice of the recommended method per model family.

No torch here: ``tests/bench/test_quality_stats.py`` tests these on small
hand-made tables.

A *row* (one method, variant and implementation on one model) is a dict::

    {"model": "cnn", "method": "gradcam", "variant": "", "implementation": "ours",
     "status": "ok",                      # or "n/a" (then "reason" says why)
     "reason": "",
     "metrics": {"PointingGame": {"mean": 0.9, "low": 0.85, "high": 0.95, "n": 96}, ...},
     "passed": {"MPRT": True, "RandomLogit": False}}   # the sanity checks' verdicts

``metrics`` holds every column of :data:`COLUMNS` that was measured.
"""
from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: the table's columns: (key, heading, whether higher is better)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("PointingGame", "pointing game", True),
    ("RelevanceMassAccuracy", "relevance mass", True),
    ("RelevanceRankAccuracy", "relevance rank", True),
    ("Deletion", "deletion AUC", False),
    ("Insertion", "insertion AUC", True),
    ("ROADCombined", "ROAD", True),
    ("MPRT", "MPRT (Spearman)", False),
    ("RandomLogit", "random logit (SSIM)", False),
    ("ms", "ms / image", False),
)
#: the sanity checks of the table (their cells say FAIL when the mean fails)
SANITY_COLUMNS = ("MPRT", "RandomLogit")
#: the localisation scores the recommendation ranks by (their mean)
RANKED_BY = ("PointingGame", "RelevanceMassAccuracy")
#: the model families of the benchmark and of ``--method recommended``
FAMILIES = {"cnn": "CNN", "vit": "ViT"}
#: the "several objects" and "speed budget" lines choose among the methods
#: whose score lies within this of the best score
SLACK = 0.05
#: bootstrap resamples of the confidence intervals
RESAMPLES = 2000


def bootstrap_ci(values_by_seed: Sequence[Sequence[float]], resamples: int = RESAMPLES,
                 seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """The mean over all values and its ``level`` confidence interval by a
    two-stage (hierarchical) percentile bootstrap: each resample draws the
    seeds with replacement, then within each drawn seed its values (one per
    image) with replacement, and takes the mean of all drawn values; the
    interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the
    resampled means. With one seed this is the plain bootstrap over images.
    Returns ``{"mean", "low", "high", "n"}`` (n: the number of values)."""
    groups = [np.asarray(group, dtype=np.float64).ravel() for group in values_by_seed]
    groups = [group for group in groups if group.size]
    if not groups:
        raise ValueError("values_by_seed holds no values")
    everything = np.concatenate(groups)
    if not np.isfinite(everything).all():
        raise ValueError("values_by_seed holds values that are not finite")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for index in range(resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        parts = [groups[g][rng.integers(0, groups[g].size, groups[g].size)] for g in drawn]
        means[index] = np.concatenate(parts).mean()
    tail = (1 - level) / 2
    return {"mean": float(everything.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1 - tail)), "n": int(everything.size)}


def row_label(row: Mapping[str, Any]) -> str:
    """``gradcam``, ``gradcam + aug_smooth``, ``gradcam [grad-cam 1.5.7]``."""
    label = row["method"] + (f" + {row['variant']}" if row.get("variant") else "")
    if row.get("implementation", "ours") != "ours":
        label += f" [{row['implementation']}]"
    return label


def failed_checks(row: Mapping[str, Any]) -> list[str]:
    """The sanity checks the row fails."""
    return [name for name in SANITY_COLUMNS if row.get("passed", {}).get(name) is False]


def _number(value: float) -> str:
    if math.isinf(value):
        return "inf"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{value:.{digits}f}"


def format_cell(stats: Mapping[str, float] | None, failed: bool = False) -> str:
    """``0.912 [0.871, 0.944]``, followed by `` **FAIL**`` for a sanity
    check that fails; ``-`` when not measured."""
    if stats is None:
        return "-"
    text = f"{_number(stats['mean'])} [{_number(stats['low'])}, {_number(stats['high'])}]"
    return text + (" **FAIL**" if failed else "")


def markdown_table(rows: Sequence[Mapping[str, Any]], model: str) -> str:
    """The rows of ``model`` that were measured as a Markdown table (one
    line per row, in the order given), then the rows that do not apply,
    each with its reason."""
    measured = [r for r in rows if r["model"] == model and r["status"] == "ok"]
    skipped = [r for r in rows if r["model"] == model and r["status"] != "ok"]
    arrows = {True: "↑", False: "↓"}
    head = ["method"] + [f"{title} {arrows[higher]}" for _, title, higher in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(COLUMNS) + "|"]
    for row in measured:
        failed = set(failed_checks(row))
        cells = [row_label(row)] + [format_cell(row["metrics"].get(key), key in failed)
                                    for key, _, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines.append("")
        lines.append(f"Not measured on the {FAMILIES.get(model, model)} (n/a):")
        lines.append("")
        lines.extend(f"- `{row_label(r)}`: n/a, {r['reason']}" for r in skipped)
    return "\n".join(lines)


def score(row: Mapping[str, Any]) -> float:
    """The mean of the row's :data:`RANKED_BY` means."""
    return float(np.mean([row["metrics"][key]["mean"] for key in RANKED_BY]))


def candidates(rows: Sequence[Mapping[str, Any]], model: str) -> list[Mapping[str, Any]]:
    """The rows a recommendation may name: this library's methods on
    ``model``, measured, plain (no variant: ``--method`` names a method),
    not random by design, passing every sanity check of the table."""
    return [r for r in rows if r["model"] == model and r["status"] == "ok"
            and r.get("implementation", "ours") == "ours" and not r.get("variant")
            and not r.get("randomised") and not failed_checks(r)
            and all(key in r["metrics"] for key in RANKED_BY)
            and all(name in r.get("passed", {}) for name in SANITY_COLUMNS)]


def choose(rows: Sequence[Mapping[str, Any]], model: str) -> dict[str, Any] | None:
    """The recommended method for ``model``: the candidate with the best
    :func:`score` (rounded to 3 decimals), on a tie the one listed first
    (the registry's order: the established methods come first; times are
    too noisy to break ties); None when no row qualifies."""
    found = candidates(rows, model)
    if not found:
        return None
    best = min(enumerate(found), key=lambda item: (-round(score(item[1]), 3), item[0]))[1]
    names = " / ".join(key for key in RANKED_BY)
    return {"method": best["method"], "score": round(score(best), 3),
            "reason": f"best mean of {names} ({score(best):.3f}) among the methods that pass "
                      f"the {' and '.join(SANITY_COLUMNS)} sanity checks on the quality "
                      "benchmark, docs/quality.md"}


def recommendations(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`choose` for every family of :data:`FAMILIES` that has a choice."""
    chosen = {family: choose(rows, family) for family in FAMILIES}
    return {family: choice for family, choice in chosen.items() if choice is not None}


def situations(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The "Which method?" bullets, each naming the table rows it comes
    from (Markdown lines)."""
    lines = []
    for model, title in FAMILIES.items():
        found = candidates(rows, model)
        if not found:
            lines.append(f"- **{title}**: no method of this library passed both sanity checks "
                         "on this run; see the table.")
            continue
        best = choose(rows, model)
        assert best is not None
        lines.append(f"- **{title}**: `{best['method']}` (row `{best['method']}` of the "
                     f"{title} table: the best mean of pointing game and relevance mass, "
                     f"{best['score']:.3f}, among the methods that pass both sanity checks); "
                     f"`--method recommended` picks it for a {title}.")
        close = [r for r in found if score(r) >= best["score"] - SLACK]
        specific = min(close, key=lambda r: r["metrics"]["RandomLogit"]["mean"])
        lines.append(f"- **Several objects, {title}**: `{specific['method']}`, whose maps "
                     "change most with the class asked for (row "
                     f"`{specific['method']}`: the lowest random-logit SSIM, "
                     f"{specific['metrics']['RandomLogit']['mean']:.3f}, among the passing "
                     f"methods within {SLACK} of the best score); explain each object's class "
                     "in its own call.")
        timed = [r for r in close if "ms" in r["metrics"]]
        if timed:
            fast = min(timed, key=lambda r: r["metrics"]["ms"]["mean"])
            lines.append(f"- **Speed budget, {title}**: `{fast['method']}` (row "
                         f"`{fast['method']}`: {_number(fast['metrics']['ms']['mean'])} ms per "
                         f"image, the fastest passing method within {SLACK} of the best score, "
                         f"scoring {score(fast):.3f}).")
    return lines


def _python_string(text: str, indent: int) -> str:
    """``text`` as a Python literal of lines under 100 characters (adjacent
    string literals in parentheses when it is long)."""
    parts = textwrap.wrap(text, 76, drop_whitespace=False)
    if len(parts) <= 1:
        return json.dumps(text)
    return "(" + ("\n" + " " * (indent + 1)).join(json.dumps(part) for part in parts) + ")"


def recommended_module(choices: Mapping[str, Mapping[str, Any]], source: str) -> str:
    """The text of ``pytorch_grad_cam/app/recommended_table.py`` for
    ``choices`` (family -> ``{"method", "score", "reason"}``)."""
    entries = "".join(
        f"    {json.dumps(family)}: {{\n"
        f"        \"method\": {json.dumps(choice['method'])},\n"
        f"        \"reason\": {_python_string(choice['reason'], 18)},\n"
        "    },\n"
        for family, choice in choices.items())
    return (
        '"""The method ``--method recommended`` picks for each model family, as\n'
        "measured by ``bench/quality_benchmark.py`` (written by that script; do not\n"
        'edit by hand). See docs/quality.md."""\n'
        "from __future__ import annotations\n\n"
        "#: the benchmark run these choices come from\n"
        f"SOURCE = {_python_string(source, 9)}\n"
        "#: model family -> the method and why it was chosen\n"
        "RECOMMENDED: dict[str, dict[str, str]] = {\n"
        f"{entries}"
        "}\n")
