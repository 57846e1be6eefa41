"""pytorch_grad_cam.datasets.report: one static HTML file with the summary,
the metrics, the ranking, the bad items, a gallery of overlays (the
library's show_cam_on_image of the stored maps) and the distribution
plots (each method's mean with its interval, and its values over the
images), or a note when matplotlib is missing."""
import re
import sys

import cv2
import numpy as np
import pytest
from dataset_helpers import LAYER, SMALL, TinyNet, write_photos

from pytorch_grad_cam.datasets import explain_dataset, open_results, write_overlays, write_report
from pytorch_grad_cam.datasets.ownership import read_marker
from pytorch_grad_cam.datasets.plots import draw, metric_plots, plot_name
from pytorch_grad_cam.utils.image import show_cam_on_image

OPTIONS = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False}


@pytest.fixture
def store(tmp_path):
    write_photos(tmp_path / "photos", 9, sizes=[(40, 60), (50, 50)])
    (tmp_path / "photos" / "broken.png").write_bytes(b"")
    summary = explain_dataset(tmp_path / "photos", TinyNet(), ["gradcam", "gradcam++"],
                              metrics=["Complexity", "DropInConfidence"], report=True,
                              out=tmp_path / "out", **OPTIONS)
    return tmp_path / "out", summary


def test_report_has_the_numbers_and_the_pictures(store):
    out, summary = store
    assert summary.report == out / "report.html"
    page = summary.report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page  # static, nothing to fetch
    assert "<td>status ok</td><td>9</td>" in page.replace(' class="text"', "")
    assert "<td>status unreadable</td><td>1</td>" in page.replace(' class="text"', "")
    mean = summary.metrics["gradcam"]["Complexity"]["mean"]
    assert f"{mean:.4f}" in page
    assert "Which method is most faithful here?" in page
    assert summary.ranking[0]["method"] in page
    assert "the file is empty (0 bytes)" in page
    pictures = re.findall(r'<img src="report_files/([^"]+)"', page)
    assert {"metric-Complexity.png", "metric-DropInConfidence.png"} <= set(pictures)
    for name in pictures:
        image = cv2.imread(str(out / "report_files" / name))
        assert image is not None, name
    # 6 most and 3 least confident items (9 explained), each: photo + 2 methods
    assert len([p for p in pictures if p.endswith(".jpg")]) == 9 * 3


def test_the_gallery_shows_the_most_confident_first_with_the_stored_maps(store):
    out, _ = store
    results = open_results(out)
    frame = results.frame
    page = (out / "report.html").read_text()
    first = frame[(frame["method"] == "gradcam") & (frame["status"] == "ok")]
    best = first.loc[first["prob"].idxmax()]
    captions = re.findall(r"<div><p>([^<]+)</p>", page)
    assert captions[0].startswith(f"{best['id']}: class {best['target']}, p={best['prob']:.3f}")
    worst = first.loc[first["prob"].idxmin()]
    assert captions[6].startswith(f"{worst['id']}:")  # the least confident section starts there
    # the overlay is show_cam_on_image of the photo and the stored map at the display size
    row = int(best.name)
    photo = cv2.imread(str(out / "report_files" / "most-000-image.jpg"))
    height, width = photo.shape[:2]
    assert max(height, width) == 224
    assert width / height == pytest.approx(best["width"] / best["height"], rel=0.02)
    original = cv2.cvtColor(cv2.imread(best["path"]), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    resized = cv2.resize(original, (width, height), interpolation=cv2.INTER_AREA)
    expected = show_cam_on_image(resized, results.map(row, size=(height, width)), use_rgb=True)
    written = cv2.cvtColor(cv2.imread(str(out / "report_files" / "most-000-gradcam.jpg")),
                           cv2.COLOR_BGR2RGB)
    assert np.abs(written.astype(int) - expected.astype(int)).mean() < 3  # JPEG's loss only


def test_without_matplotlib_the_plots_are_left_out_with_a_note(store, monkeypatch):
    out, _ = store
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    for path in (out / "report_files").glob("*.png"):
        path.unlink()
    page = write_report(out).read_text()
    assert "matplotlib is not installed" in page
    assert not list((out / "report_files").glob("*.png"))
    assert "Gallery" in page and "Metrics" in page


def test_a_report_of_an_unfinished_store_says_so(store):
    out, _ = store
    (out / "index.json").unlink()
    page = write_report(out, gallery_size=1).read_text()
    assert "The last run did not finish" in page
    assert "<td>status ok</td><td>9</td>" in page.replace(' class="text"', "")
    with pytest.raises(ValueError, match="gallery_size must be >= 1"):
        write_report(out, gallery_size=0)


def test_overlays_on_request(store, tmp_path):
    out, _ = store
    results = open_results(out)
    frame = results.frame
    chosen = frame.index[frame["method"] == "gradcam"]  # 9 explained + the broken file
    written = write_overlays(out, tmp_path / "overlays", chosen)
    assert len(written) == 9 and all(p.name.endswith("_gradcam.jpg") for p in written)
    assert not (tmp_path / "overlays" / "broken.png_gradcam.jpg").exists()
    row = results.find("img_000.png", "gradcam")
    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "overlays" / "img_000.png_gradcam.jpg")),
                           cv2.COLOR_BGR2RGB)
    assert picture.shape[:2] == (frame["height"][row], frame["width"][row])  # the photo's size
    photo = cv2.cvtColor(cv2.imread(frame["path"][row]), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    expected = show_cam_on_image(photo, results.map(row, size=photo.shape[:2]), use_rgb=True)
    assert np.abs(picture.astype(int) - expected.astype(int)).mean() < 3
    small = write_overlays(out, tmp_path / "small", [row], side=32)
    assert max(cv2.imread(str(small[0])).shape[:2]) == 32


def test_overlays_and_report_pictures_of_a_large_photo_are_bounded(tmp_path):
    """A 6-megapixel photo: its overlay 'at the photo's size' has at most
    image_io.PICTURE_PIXELS (4 megapixels), its aspect ratio kept."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "large.png"), np.full((2000, 3000, 3), 90, np.uint8))
    explain_dataset(folder, TinyNet(), out=tmp_path / "out", report=True, **OPTIONS)
    assert open_results(tmp_path / "out").frame["height"][0] == 2000  # as decoded
    written = write_overlays(tmp_path / "out", tmp_path / "overlays")
    assert cv2.imread(str(written[0])).shape == (1632, 2449, 3)
    pictures = sorted((tmp_path / "out" / "report_files").glob("*-image.jpg"))
    assert [cv2.imread(str(p)).shape for p in pictures] == [(149, 224, 3)]


def test_the_metrics_are_plotted_with_the_tables_numbers(store):
    """One PNG per metric: each method's mean with its 95% interval (the
    numbers of the metrics table, the summary's) and its values over the
    images as a box; valid PNG files, recorded as the store's own."""
    out, summary = store
    results = open_results(out)
    plots = metric_plots(results.frame, results.index, ["gradcam", "gradcam++"],
                         ["Complexity", "DropInConfidence"])
    assert [p.metric for p in plots] == ["Complexity", "DropInConfidence"]
    for plot in plots:
        assert plot.methods == ["gradcam", "gradcam++"] and plot.better == "lower"
        for k, method in enumerate(plot.methods):
            stats = summary.metrics[method][plot.metric]
            assert plot.means[k] == stats["mean"]
            assert (plot.ci_low[k], plot.ci_high[k]) == (stats["ci95_low"], stats["ci95_high"])
            assert plot.values[k].size == stats["count"] == 9  # the broken file has no value
            assert plot.values[k].mean() == pytest.approx(stats["mean"], rel=1e-6)
        # what the figure draws: the means with their whiskers, the boxes' medians
        figure = draw(plot)
        means_axes, box_axes = figure.axes
        points, = [line for line in means_axes.lines if line.get_gid() == "means"]
        np.testing.assert_array_equal(points.get_xdata(), [1, 2])
        np.testing.assert_allclose(points.get_ydata(), plot.means, rtol=1e-12)
        whiskers = means_axes.collections[0].get_segments()
        np.testing.assert_allclose([segment[:, 1] for segment in whiskers],
                                   np.stack([plot.ci_low, plot.ci_high], axis=1), rtol=1e-12)
        medians = [line.get_ydata()[0] for line in box_axes.lines if line.get_gid() == "median"]
        np.testing.assert_allclose(medians, [np.median(v) for v in plot.values], rtol=1e-12)

    page = (out / "report.html").read_text()
    marker = read_marker(out)
    for metric in ("Complexity", "DropInConfidence"):
        name = plot_name(metric)
        assert f'<img src="report_files/{name}"' in page
        data = (out / "report_files" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[0] >= 300 and picture.shape[1] >= 600
        assert f"report_files/{name}" in marker["files"]
    assert not [p for p in (out / "report_files").iterdir() if p.name.startswith(".")]
    # --overwrite deletes them as the store's files
    explain_dataset(out.parent / "photos", TinyNet(), ["gradcam"], out=out, overwrite=True,
                    **OPTIONS)
    assert not (out / "report_files").exists()
