"""A static HTML report of a results store: one file, no server.

``write_report("results/")`` writes ``results/report.html`` and, beside it,
``results/report_files/``: the overlay JPEGs of the gallery
(``show_cam_on_image`` of each method's map on the photo) and one PNG per
metric: each method's mean with its 95% confidence interval, and the
distribution of its values over the images (:mod:`~pytorch_grad_cam.
datasets.plots`; matplotlib, an optional dependency: without it the report
says so and leaves the plots out). Every file is recorded as the store's
(:class:`~pytorch_grad_cam.datasets.ownership.NewFiles`).

The report shows the run's summary (items by status, per method the
statuses and empty maps), the metrics table (mean, std, 95% confidence
interval, count, NaN and skipped, and whether higher or lower is better)
and its plots, the ranked comparison of the methods, the sanity checks
when the store has them (``sanity.json``, :mod:`~pytorch_grad_cam.datasets.
sanity`: each method's value, threshold and a visible FAIL), the items that could
not be explained with their reasons, and a gallery of the most and the
least confident explanations (by the softmax probability of the explained
class). A store with several targets per image (``TopClasses``,
``MultiLabel``) shows the targets explained per rank, and its gallery has
one table row per image (and method), one column per target, best first,
each map under its class name, score and probability.
"""
from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pytorch_grad_cam.datasets.evaluation import DATASET_METRICS
from pytorch_grad_cam.datasets.ownership import NewFiles
from pytorch_grad_cam.datasets.plots import metric_plots, write_plots
from pytorch_grad_cam.datasets.results import Results, class_names_of
from pytorch_grad_cam.datasets.sanity import read_sanity, sanity_html
from pytorch_grad_cam.datasets.sources import BadItem, Preprocess, Source, load_picture
from pytorch_grad_cam.datasets.store import atomic_write
from pytorch_grad_cam.datasets.summary import SHOWN_RANKS, compute_index
from pytorch_grad_cam.datasets.target_modes import TargetSpec
from pytorch_grad_cam.scoring import check_positive_int
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS, PICTURE_PIXELS, fit_size

__all__ = ["write_overlays", "write_report"]

FILES = "report_files"
DISPLAY_SIDE = 224

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
figure { display: inline-block; margin: 4px; text-align: center; font-size: 0.8em; }
figure img { display: block; }
table.targets td { vertical-align: top; }
.note { color: #a60; }
.fail, strong.fail, strong.error { color: #c00; } strong.pass { color: #070; }
table.sanity td:nth-child(-n+2) { text-align: left; }
"""


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    def cls(i: int) -> str:
        return ' class="text"' if i < text_columns else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_cell(v)}</td>" for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _display_size(height: int, width: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    if height <= 0 or width <= 0:
        return side, side
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _picture(row: Any, source: Source | None, preprocess: Preprocess) -> np.ndarray | None:
    """The item's photo as float32 RGB in [0, 1] of at most PICTURE_PIXELS
    pixels, or None. Read with the pixel limit of the size the run
    explained it at (at least the default's)."""
    position = int(row["position"])
    max_pixels = max(MAX_READ_PIXELS, int(row["height"]) * int(row["width"]))
    try:
        if source is not None and 0 <= position < len(source) \
                and source.item_id(position) == row["id"]:
            return source.picture(position, preprocess, max_pixels)
        if row["path"] and os.path.isfile(row["path"]):
            return load_picture(row["path"], max_pixels)
    except BadItem:
        return None
    return None


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path.name}")
    atomic_write(path, lambda handle: handle.write(data.tobytes()))


def _overlay(results: Results, row: int, source: Source | None, preprocess: Preprocess,
             side: int | None) -> tuple[np.ndarray | None, np.ndarray]:
    """(the photo or None, the overlay of row ``row``'s map), RGB uint8 /
    float, at the photo's aspect ratio with ``side`` pixels on the longer
    side (None: the photo's own size, shrunk to at most PICTURE_PIXELS)."""
    entry = results.frame.iloc[row]
    height, width = int(entry["height"]), int(entry["width"])
    if side is not None:
        height, width = _display_size(height, width, side)
    elif height <= 0 or width <= 0:
        height, width = _display_size(0, 0)
    else:
        width, height = fit_size(width, height, PICTURE_PIXELS)
    photo = _picture(entry, source, preprocess)
    if photo is not None and photo.shape[:2] != (height, width):
        photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    base = np.full((height, width, 3), 0.5, np.float32) if photo is None else photo
    cam = results.map(row, size=(height, width))
    return photo, show_cam_on_image(np.clip(base, 0, 1), cam, use_rgb=True)


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._") or "item"


def write_overlays(store: str | os.PathLike[str], folder: str | os.PathLike[str],
                   rows: Sequence[int] | None = None, *, source: Source | None = None,
                   preprocess: Preprocess | None = None,
                   side: int | None = None) -> list[Path]:
    """Overlay pictures on request: ``show_cam_on_image`` of the stored map
    on the photo, one JPEG per row that has a map (all rows, or ``rows``:
    positions in ``Results.frame``, for example of a filtered DataFrame's
    ``.index``), named ``<id>_<method>.jpg`` (``<id>_<method>_rank<r>.jpg``
    in a store with several targets per image; characters other than
    letters, digits, ``-_.`` replaced by ``_``). At the photo's size (shrunk
    to at most ``image_io.PICTURE_PIXELS`` pixels), or ``side`` pixels on
    its longer side. Returns the files written."""
    results = Results(store)
    preprocess = preprocess or _stored_preprocess(results.config)
    several = TargetSpec.from_config(results.config.get("targets")).from_scores
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for row, _ in results.iter_maps(rows):
        entry = results.frame.iloc[row]
        _, overlay = _overlay(results, row, source, preprocess, side)
        rank = f"_rank{int(entry['rank'])}" if several else ""
        path = target / (f"{_safe_name(str(entry['id']))}_{_safe_name(str(entry['method']))}"
                         f"{rank}.jpg")
        _write_jpeg(path, overlay)
        written.append(path)
    return written


def _stored_preprocess(config: dict) -> Preprocess:
    settings = config.get("preprocess", {})
    return Preprocess(size=tuple(settings.get("size", (224, 224))),
                      mean=tuple(settings.get("mean", (0.485, 0.456, 0.406))),
                      std=tuple(settings.get("std", (0.229, 0.224, 0.225))))


def _class_text(target: int, class_names: Sequence[str] | None) -> str:
    name = class_names[target] if class_names and 0 <= target < len(class_names) else ""
    return f"class {target}{' ' + name if name else ''}"


def _figure(file_name: str, caption: str, height: int, width: int, above: bool = False) -> str:
    """A picture of report_files/ with its caption (below it, or above)."""
    image = (f'<img src="{FILES}/{html.escape(file_name)}" width="{width}" height="{height}" '
             f'alt="{html.escape(caption)}">')
    text = f"<figcaption>{html.escape(caption)}</figcaption>"
    return f"<figure>{text + image if above else image + text}</figure>"


def _target_table(results: Results, folder: Path, source: Source | None,
                  preprocess: Preprocess, kind: str, rows: Sequence[Any],
                  class_names: Sequence[str] | None) -> str:
    """The gallery of a store with several targets per image: one table
    row per (image, method), the photo first, then one column per target,
    best first, the class name, score and probability above each map."""
    frame = results.frame
    methods = list(results.config.get("methods", []))
    positions = {(item_id, method, int(rank)): position for position, (item_id, method, rank)
                 in enumerate(zip(frame["id"], frame["method"].astype(str), frame["rank"]))}
    targets = max(1, int(frame["rank"].max()) + 1)
    columns = min(targets, SHOWN_RANKS)
    header = ('<tr><th class="text">image</th><th class="text">method</th>'
              + "".join(f"<th>rank {r}</th>" for r in range(columns)) + "</tr>")
    body: list[str] = []
    for number, row_index in enumerate(rows):
        entry = frame.loc[row_index]
        height, width = _display_size(int(entry["height"]), int(entry["width"]))
        photo_cell = html.escape(str(entry["id"]))
        lines: list[str] = []
        for method in methods:
            cells: list[str] = []
            for rank in range(columns):
                position = positions.get((entry["id"], method, rank))
                if position is None or int(frame["map_row"].iat[position]) < 0:
                    cells.append("<td></td>")
                    continue
                photo, overlay = _overlay(results, position, source, preprocess, DISPLAY_SIDE)
                if photo is not None and not lines and not cells:
                    image_name = f"{kind}-{number:03d}-image.jpg"
                    _write_jpeg(folder / image_name, np.uint8(np.clip(photo, 0, 1) * 255))
                    photo_cell = _figure(image_name, str(entry["id"]), height, width)
                file_name = f"{kind}-{number:03d}-{method}-rank{rank}.jpg"
                _write_jpeg(folder / file_name, overlay)
                found = frame.iloc[position]
                caption = (f"{_class_text(int(found['target']), class_names)}: score "
                           f"{float(found['score']):.3f}, p={float(found['prob']):.3f}")
                cells.append(f"<td>{_figure(file_name, caption, height, width, above=True)}</td>")
            lines.append(f'<td class="text">{html.escape(method)}</td>' + "".join(cells))
        first = f'<td class="text" rowspan="{len(lines)}">{photo_cell}</td>'
        body.extend(f"<tr>{first if k == 0 else ''}{line}</tr>" for k, line in enumerate(lines))
    note = (f"<p>(the first {columns} targets of each image; some have up to {targets})</p>"
            if targets > columns else "")
    return f'<table class="targets">{header}{"".join(body)}</table>{note}'


def _gallery(results: Results, folder: Path, source: Source | None, preprocess: Preprocess,
             size: int, class_names: Sequence[str] | None) -> str:
    frame = results.frame
    methods = list(results.config.get("methods", []))
    if not methods:
        return "<p>No methods.</p>"
    first = frame[(frame["method"] == methods[0]) & (frame["status"] == "ok")
                  & (frame["rank"] == 0)]
    if first.empty:
        return "<p>No explained item.</p>"
    ranked = first.sort_values(["prob", "position"], ascending=[False, True], kind="stable")
    most = list(ranked.index[:size])
    least = [i for i in list(ranked.index[::-1][:size]) if i not in most]
    several = TargetSpec.from_config(results.config.get("targets")).from_scores
    parts = []
    for title, rows in (("Most confident", most), ("Least confident", least)):
        if not rows:
            continue
        parts.append(f"<h3>{title}</h3>")
        if several:
            parts.append(_target_table(results, folder, source, preprocess,
                                       title.split()[0].lower(), rows, class_names))
            continue
        for rank, row_index in enumerate(rows):
            row = frame.loc[row_index]
            height, width = _display_size(int(row["height"]), int(row["width"]))
            kind = title.split()[0].lower()
            label = (f"{row['id']}: {_class_text(int(row['target']), class_names)}, "
                     f"p={row['prob']:.3f}")
            figures: list[tuple[str, str]] = []
            for method in methods:
                hits = frame.index[(frame["id"] == row["id"]) & (frame["method"] == method)]
                if len(hits) == 0:
                    continue
                position = int(frame.index.get_loc(hits[0]))
                if int(frame["map_row"].iat[position]) < 0:
                    continue
                photo, overlay = _overlay(results, position, source, preprocess, DISPLAY_SIDE)
                if photo is not None and not figures:
                    image_name = f"{kind}-{rank:03d}-image.jpg"
                    _write_jpeg(folder / image_name, np.uint8(np.clip(photo, 0, 1) * 255))
                    figures.append((image_name, "image"))
                file_name = f"{kind}-{rank:03d}-{method}.jpg"
                _write_jpeg(folder / file_name, overlay)
                figures.append((file_name, method))
            cells = "".join(_figure(f, c, height, width) for f, c in figures)
            parts.append(f"<div><p>{html.escape(label)}</p>{cells}</div>")
    return "\n".join(parts)


def _plots(results: Results, index: dict, folder: Path) -> str:
    metrics = list(results.config.get("metrics", []))
    if not metrics:
        return "<p>No metrics were computed (run with metrics=...).</p>"
    plots = metric_plots(results.frame, index, list(results.config.get("methods", [])), metrics)
    try:
        written = write_plots(plots, folder)
    except ImportError:
        return ('<p class="note">matplotlib is not installed: the plots of the metrics are '
                "left out (pip install matplotlib).</p>")
    return "\n".join(f'<figure><img src="{FILES}/{html.escape(path.name)}" '
                     f'alt="{html.escape(plot.metric)}"></figure>'
                     for plot, path in zip(plots, written))


def write_report(store: str | os.PathLike[str], *, source: Source | None = None,
                 preprocess: Preprocess | None = None, gallery_size: int = 6,
                 class_names: Sequence[str] | None = None) -> Path:
    """Write ``<store>/report.html`` and its pictures in
    ``<store>/report_files/``; returns the HTML file's path.

    Args:
        store: the results store folder.
        source: the run's source, for the photos of Dataset items (files are
            read from their paths without it).
        preprocess: to turn Dataset items that are model inputs back into
            photos (default: the store's normalisation).
        gallery_size: items in each of the most / least confident galleries.
        class_names: names of the classes (default: the store's, see
            ``results.class_names_of``: the run's ``class_names``, else
            ImageNet's for 1,000 classes, else none).
    """
    gallery_size = int(check_positive_int("gallery_size", gallery_size) or 1)
    results = Results(store)
    config = results.config
    if preprocess is None:
        preprocess = _stored_preprocess(config)
    index = results.index if results.complete else compute_index(results.store, config)
    if class_names is None:
        class_names = class_names_of(config)
    folder = results.path / FILES
    written = NewFiles(results.path, folder)  # recorded as the store's files at the end
    assert index is not None
    methods = list(config.get("methods", []))
    statuses = index.get("status_counts", {})
    sections = [f"<h1>Explanations of {html.escape(str(results.path))}</h1>"]
    if not results.complete:
        sections.append('<p class="note">The last run did not finish: this report shows the '
                        "items explained so far.</p>")
    sections.append("<h2>Summary</h2>" + _table(
        ["", "value"],
        [["items", index.get("items", 0)], *[[f"status {s}", n] for s, n in statuses.items()],
         ["model", config.get("model", {}).get("class", "?")],
         ["target layers", ", ".join(config.get("target_layers", []))],
         ["methods", ", ".join(methods)],
         ["targets", TargetSpec.from_config(config.get("targets")).describe()],
         ["input size", " x ".join(map(str, config.get("preprocess", {}).get("size", [])))],
         ["stored map size", " x ".join(map(str, config.get("map_size", [])))]]))
    sections.append("<h2>Methods</h2>" + _table(
        ["method", *sorted({s for m in index.get("methods", {}).values()
                            for s in m["status_counts"]}), "empty maps"],
        [[m, *[index["methods"][m]["status_counts"].get(s, 0)
               for s in sorted({s for x in index["methods"].values() for s in x["status_counts"]})],
          index["methods"][m]["empty_maps"]] for m in methods if m in index.get("methods", {})]))
    by_rank = {m: index["methods"][m].get("ranks", {}) for m in methods
               if m in index.get("methods", {})}
    ranks = sorted({int(r) for counts in by_rank.values() for r in counts})
    if len(ranks) > SHOWN_RANKS:
        ranks = [*ranks[:SHOWN_RANKS - 1], ranks[-1]]
    if len(ranks) > 1:
        sections.append("<h2>Targets explained per rank</h2><p>Rank 0 is each image's best "
                        "class; each count is of the images explained at that rank.</p>" + _table(
                            ["method", *[f"rank {r}" for r in ranks]],
                            [[m, *[counts.get(str(r), 0) for r in ranks]]
                             for m, counts in by_rank.items()]))
    metric_rows = []
    for method, by_metric in index.get("metrics", {}).items():
        for metric, s in by_metric.items():
            metric_rows.append([method, metric, DATASET_METRICS.get(metric, "?"), s["mean"],
                                s["std"], s["ci95_low"], s["ci95_high"], s["count"], s["nan"],
                                s["skipped"]])
    if metric_rows:
        sections.append("<h2>Metrics</h2>" + _table(
            ["method", "metric", "better", "mean", "std", "95% CI low", "95% CI high", "n",
             "NaN", "skipped"], metric_rows, text_columns=3))
    sections.append("<h2>The metrics per method: means and distributions</h2>"
                    + _plots(results, index, folder))
    ranking = index.get("ranking", [])
    if ranking:
        metrics = list(config.get("metrics", []))
        sections.append("<h2>Which method is most faithful here?</h2>" + _table(
            ["method", "mean rank", *metrics, "best at (clear = 95% intervals apart)"],
            [[row["method"], row["mean_rank"], *[row["ranks"].get(m, math.nan) for m in metrics],
              ", ".join(f"{m}{' (clear)' if row['clear'].get(m) else ''}" for m in row["wins"])]
             for row in ranking]))
    sanity = read_sanity(results.path)
    if sanity is not None:
        sections.append(sanity_html(sanity))
    frame = results.frame
    bad = frame[(frame["status"] != "ok") & (frame["method"] == (methods[0] if methods else ""))]
    if len(bad):
        shown = bad.head(100)
        sections.append(f"<h2>Items not explained ({len(bad)})</h2>" + _table(
            ["id", "status", "reason"],
            [[r["id"], r["status"], r["reason"]] for _, r in shown.iterrows()], text_columns=3)
            + ("<p>(the first 100)</p>" if len(bad) > 100 else ""))
    sections.append("<h2>Gallery</h2>" + _gallery(results, folder, source, preprocess,
                                                   gallery_size, class_names))
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>CAM report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = results.path / "report.html"
    atomic_write(path, lambda handle: handle.write(page.encode("utf-8")))
    written.record(path)
    return path
