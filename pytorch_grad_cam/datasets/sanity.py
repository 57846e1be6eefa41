"""The sanity checks of a dataset run (``explain_dataset(sanity_checks=...)``,
``explain-dataset --sanity-checks``): the checks of
:mod:`pytorch_grad_cam.metrics.sanity` for every method, on a bounded
sample of the run's images, stored in the results store as
``sanity.json`` and shown in the summary and the report.

The checks re-run a method on a re-initialised copy of the model once per
layer (MPRT) or 100 times (sMPRT), so they run on a sample, not on every
image: the first ``sanity_images`` items of the source (in its order, the
order of the run) that every method explained, each for the class its row
of rank 0 explains (its best class, the class given, or its label), as
one batch. A value is the mean over the sample; the table says for every
method and check the value, its threshold, PASS or FAIL, and the
similarities behind it (:mod:`pytorch_grad_cam.metrics.sanity_table`).

They run after the images are explained and the index is written (rank 0
only, under torchrun), so they see the whole store. ``sanity.json`` is
written whole (atomically) after each method's checks: a run stopped
during them keeps the methods done, and the next run with the same checks
and the same sample reuses them, recomputing only the rest. The file is
not part of the store's configuration: a store made without sanity checks
resumes with them and the other way round; a store without the file (one
written before this module existed) loads as before.
"""
from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pytorch_grad_cam.datasets.atomic import read_json, write_json
from pytorch_grad_cam.datasets.ownership import record
from pytorch_grad_cam.datasets.sources import Preprocess, Source, WorkItems, collate_records
from pytorch_grad_cam.datasets.store import DEFAULTS, Store, read_shard
from pytorch_grad_cam.metrics.sanity import SANITY_THRESHOLDS, sanity_results
from pytorch_grad_cam.metrics.sanity_table import (
    format_sanity_table,
    sanity_cost_text,
    sanity_row,
    threshold_lines,
    threshold_text,
)
from pytorch_grad_cam.utils.image_io import first_line
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

__all__ = ["DEFAULT_SANITY_IMAGES", "SANITY_FORMAT", "SANITY_NAME", "read_sanity",
           "run_sanity_checks", "sanity_html", "sanity_lines", "sanity_sample"]

SANITY_NAME = "sanity.json"
SANITY_FORMAT = "pytorch_grad_cam.datasets/sanity"
#: the images the checks run on by default: MPRT on a ResNet-50 is 108 maps of
#: a batch of that many images per method
DEFAULT_SANITY_IMAGES = 8


def sanity_sample(store: Store, items: Source, methods: Sequence[str],
                  n_images: int) -> list[tuple[int, str, int]]:
    """(position, id, class) of the first ``n_images`` items of ``items``
    that every method of ``methods`` explained (status ``ok``), the class
    of their rank-0 rows, read from the store's committed shards."""
    explained: dict[str, dict[str, int]] = {}  # id -> method -> class of rank 0
    failed: set[str] = set()
    for path in store.committed_shards():
        data = read_shard(path, ["id", "method", "status", "rank", "target"])
        ranks = data.get("rank")
        for k, (item_id, method, status) in enumerate(zip(
                data["id"].tolist(), data["method"].tolist(), data["status"].tolist())):
            if status != "ok":
                failed.add(item_id)
            elif int(ranks[k] if ranks is not None else DEFAULTS["rank"]) == 0:
                explained.setdefault(item_id, {})[method] = int(data["target"][k])
    sample: list[tuple[int, str, int]] = []
    for position in range(len(items)):
        if len(sample) == n_images:
            break
        item_id = items.item_id(position)
        classes = explained.get(item_id, {})
        if item_id in failed or any(method not in classes for method in methods):
            continue
        sample.append((position, item_id, classes[methods[0]]))
    return sample


def read_sanity(root: str | Path) -> dict[str, Any] | None:
    """The store's ``sanity.json``, or None when it has none (a store of
    a run without sanity checks, or written before they existed)."""
    path = Path(root) / SANITY_NAME
    if not path.exists():
        return None
    try:
        stored = read_json(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} cannot be read ({error}); delete it to run the sanity "
                         "checks again") from None
    if not isinstance(stored, dict) or stored.get("format") != SANITY_FORMAT:
        raise ValueError(f"{str(path)!r} is not the sanity checks of a results store; delete "
                         "it to run them again")
    return stored


def _reusable(previous: Mapping[str, Any] | None, head: Mapping[str, Any], method: str,
              checks: Sequence[str]) -> list[dict[str, Any]] | None:
    """A method's stored rows, when they are of the same model, sample and
    classes and hold every check asked for (else None)."""
    if previous is None or any(previous.get(key) != head[key] for key in
                               ("format", "version", "fingerprint", "sample", "targets")):
        return None
    by_check = {row.get("check"): row for row in previous.get("rows", [])
                if row.get("method") == method}
    if not all(check in by_check for check in checks):
        return None
    return [by_check[check] for check in checks]


def run_sanity_checks(store: Store, items: Source, preprocess: Preprocess,
                      min_image_size: int, max_pixels: int, model: torch.nn.Module,
                      entries: Sequence[tuple[str, type]], layers: list[torch.nn.Module] | None,
                      reshape_transform: Callable | None, options: Mapping[str, Any],
                      batch_size: int | None, checks: Sequence[str], n_images: int,
                      fingerprint: str, device: torch.device,
                      reads_attention: Callable[[type], bool],
                      say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``checks`` for every method (``entries``) on the store's sample
    (:func:`sanity_sample`) and write ``sanity.json`` after each method;
    returns what it holds. A method's check that raises gets a row with
    its ``error`` (shown as ERROR). ``say`` is told what runs."""
    methods = [name for name, _ in entries]
    sample = sanity_sample(store, items, methods, n_images)
    head: dict[str, Any] = {
        "format": SANITY_FORMAT, "version": 1, "fingerprint": fingerprint,
        "checks": list(checks), "images": n_images, "sample": [item_id for _, item_id, _ in sample],
        "targets": [target for _, _, target in sample],
        "thresholds": {check: SANITY_THRESHOLDS[check] for check in checks}}
    previous = read_sanity(store.root)
    record(store.root, files=[SANITY_NAME])  # --overwrite deletes it with the store's files
    stored: dict[str, Any] = {**head, "rows": []}
    inputs: torch.Tensor | None = None
    if sample:
        loaded = WorkItems(items, [position for position, _, _ in sample], preprocess,
                           min_image_size, max_pixels)
        batch = collate_records([loaded[k] for k in range(len(loaded))])
        if len(batch.good) != len(sample):
            bad = [r.id for r in batch.records if r.status != "ok"]
            raise ValueError(f"sanity checks: the sample's items {bad} cannot be read any "
                             "more although the store explained them; run again")
        assert batch.inputs is not None
        inputs = batch.inputs.to(device)
    targets = [ClassifierOutputTarget(target) for _, _, target in sample]
    for name, cls in entries:
        reused = _reusable(previous, head, name, checks)
        if reused is not None or inputs is None:
            stored["rows"] += reused or []
            continue
        if say is not None:
            say(f"sanity checks of {name} on {len(sample)} image(s): "
                f"{sanity_cost_text(checks, model)}")
        kwargs = dict(options.get(name, {}))
        if batch_size is not None:
            kwargs.setdefault("batch_size", batch_size)
        attention = reads_attention(cls)  # the attention of every block, its own layout
        rows = []
        for check in checks:
            try:
                result = sanity_results([check], inputs, targets, model, cls,
                                        None if attention else layers, kwargs,
                                        None if attention else reshape_transform)[check]
                rows.append(sanity_row(name, result))
            except Exception as error:  # noqa: BLE001  (shown as ERROR with its message)
                rows.append({"method": name, "check": check, "error": first_line(error),
                             "threshold": SANITY_THRESHOLDS[check], "images": len(sample)})
        stored["rows"] += rows
        stored["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(store.root / SANITY_NAME, stored)
    stored["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(store.root / SANITY_NAME, stored)
    return stored


def _rows(sanity: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(sanity.get("rows", []))


def sanity_lines(sanity: Mapping[str, Any]) -> list[str]:
    """The summary's section: which images, then the table
    (:func:`~pytorch_grad_cam.metrics.sanity_table.format_sanity_table`)."""
    sample = list(sanity.get("sample", []))
    if not sample:
        return [f"sanity checks {', '.join(sanity.get('checks', []))}: no image that every "
                "method explained, nothing checked"]
    shown = ", ".join(sample[:3]) + (", ..." if len(sample) > 3 else "")
    lines = [f"sanity checks on the first {len(sample)} image(s) every method explained "
             f"({shown}), mean over them:"]
    rows = _rows(sanity)
    if rows:
        lines.append(format_sanity_table(rows, indent="  "))
    return lines


def sanity_html(sanity: Mapping[str, Any]) -> str:
    """The report's section: the table, FAIL and ERROR marked, and the
    thresholds with where they come from."""
    sample = list(sanity.get("sample", []))
    rows = _rows(sanity)
    text = ("<h2 id='sanity'>Sanity checks</h2>\n<p>Does each method's map depend on what the "
            "model learned, and on the class? ")
    if not sample or not rows:
        return text + "No image that every method explained: nothing checked.</p>\n"
    text += (f"On the first {len(sample)} image(s) that every method explained "
             f"({html.escape(', '.join(sample[:5]))}{', ...' if len(sample) > 5 else ''}), "
             "each for its explained class; values are means over them.</p>\n")
    header = ["method", "check", "value", "pass if", "verdict", "spearman", "ssim", "top-k"]
    body = []
    for row in rows:
        verdict = "ERROR" if row.get("error") else row["verdict"]
        cells = [html.escape(row["method"]), html.escape(row["check"]),
                 "-" if row.get("error") else f"{row['value']:.4f}",
                 html.escape(threshold_text(row["check"], row.get("threshold"))),
                 f"<strong class='{verdict.lower()}'>{verdict}</strong>"]
        cells += ["-" if row.get(key) is None else f"{row[key]:.4f}"
                  for key in ("spearman", "ssim", "top_k")]
        if row.get("error"):
            cells[-1] += f" ({html.escape(row['error'])})"
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    text += ("<table class='sanity'><tr>" + "".join(f"<th>{h}</th>" for h in header)
             + "</tr>\n" + "\n".join(body) + "</table>\n<ul>\n")
    text += "".join(f"<li>{html.escape(line)}</li>\n"
                    for line in threshold_lines([row["check"] for row in rows]))
    failing = list(dict.fromkeys(row["method"] for row in rows
                                 if not row.get("error") and not row["passed"]))
    text += "</ul>\n"
    if failing:
        text += (f"<p class='fail'><strong>FAIL</strong>: {html.escape(', '.join(failing))} "
                 "fail(s) a sanity check: the map does not depend enough on the model's "
                 "weights or on the class; do not trust it as an explanation of this "
                 "model.</p>\n")
    return text
