"""pytorch_grad_cam.datasets.options: ``explain-dataset``'s arguments are
checked before torch is imported, so a typo is one line at once."""
import os
import subprocess
import sys
import textwrap

import pytest
from dataset_helpers import environment

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.datasets import MultiLabel, TopClasses, options
from pytorch_grad_cam.datasets.cli import main
from pytorch_grad_cam.metric_names import DATASET_METRICS

PROG = "grad-cam explain-dataset"

#: runs the dispatcher in a fresh interpreter and says, after it returned,
#: whether torch (or a model library) was imported on the way
_PROBE = textwrap.dedent("""
    import sys
    from pytorch_grad_cam.commands import main
    status = main(sys.argv[1:])
    loaded = sorted(name for name in ("torch", "torchvision", "timm", "transformers")
                    if name in sys.modules)
    print("status", status, "loaded", ",".join(loaded) or "-", file=sys.stderr)
""")


def _probe(*args, cwd):
    return subprocess.run([sys.executable, "-c", _PROBE, "explain-dataset", *map(str, args)],
                          cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    (images / "a.png").write_bytes(b"not read by the checks")
    return images


@pytest.mark.parametrize("argv, message", [
    (["--method", "gradcm"], "--method: unknown method 'gradcm' (did you mean gradcam, "
                             "xgradcam, gradcam++?); choose from "
                             f"{', '.join(METHODS)}, all, everything or recommended"),
    (["--method", "gradcam", "nosuch"], "--method: unknown method 'nosuch'; choose from "
                                        f"{', '.join(METHODS)}, all, everything or recommended"),
    (["--metrics", "Speed"], "--metrics: metrics[0] is 'Speed'; choose from "
                             f"{', '.join(DATASET_METRICS)} or 'all'"),
    (["--target-category", "tabbby"], "--target-category 'tabbby': no class has that name; "
                                      "close matches: 281 (tabby), 868 (tray)"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got '0'"),
    (["--workers", "-1"], "argument --workers: must be an integer >= 0, got '-1'"),
    (["--shard-size", "many"], "argument --shard-size: must be a positive integer, got 'many'"),
    (["--out", "file.txt"], "--out file.txt: exists and is not a folder"),
    (["--top-classes", "3", "--multilabel", "0.5"],
     "argument --multilabel: not allowed with argument --top-classes"),
    (["--target-category", "tabby", "--top-classes", "3"],
     "argument --top-classes: not allowed with argument --target-category"),
    (["--multilabel", "0.5", "--target-category", "3"],
     "argument --target-category: not allowed with argument --multilabel"),
    (["--max-labels", "2"], "--max-labels caps the classes --multilabel THRESHOLD finds in an "
                            "image; give --multilabel too"),
    (["--multilabel", "1.5"], "argument --multilabel: must be a probability in (0, 1], got '1.5'"),
    (["--top-classes", "0"], "argument --top-classes: must be a positive integer, got '0'"),
])
def test_a_typo_is_one_line_before_torch_is_imported(argv, message, folder, tmp_path):
    (tmp_path / "file.txt").write_text("a file")
    result = _probe(folder, *argv, cwd=tmp_path)
    assert result.stderr.splitlines() == [f"{PROG}: error: {message}",
                                          "status 2 loaded -"], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "photos"]


def test_a_missing_or_odd_input_folder_is_one_line_before_torch_is_imported(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"")
    result = _probe("nowhere", cwd=tmp_path)
    assert result.stderr.splitlines() == [f"{PROG}: error: nowhere: no such folder",
                                          "status 2 loaded -"]
    result = _probe("photo.jpg", cwd=tmp_path)
    assert result.stderr.splitlines() == [
        f"{PROG}: error: photo.jpg: is a file; give the folder of images", "status 2 loaded -"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_python_dash_m_datasets_checks_first(tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pytorch_grad_cam.datasets",
                             "nowhere"], cwd=tmp_path, env=environment(), capture_output=True,
                            text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert lines == ["python -m pytorch_grad_cam.datasets: error: nowhere: no such folder"]
    assert result.returncode == 2
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pytorch_grad_cam.commands" in imported
    assert not imported & {"torch", "torchvision", "timm", "transformers"}


def test_an_unreadable_input_folder_is_refused(folder, tmp_path, monkeypatch, capsys):
    real_scandir = os.scandir

    def denied(path):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", denied)  # root reads any folder: denial simulated
    with pytest.raises(UsageError, match=r"^.+photos: cannot read the folder \(permission "
                                         r"denied\)$"):
        options.check_source(str(folder))
    assert main([str(folder), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"{PROG}: error: {folder}: cannot read the folder "
                                       "(permission denied)\n")
    assert not (tmp_path / "out").exists()


def test_the_checks_pass_a_good_request_on():
    args = options.build_parser().parse_args(["photos", "--metrics", "--target-category",
                                              "tabby"])
    assert args.metrics == []
    assert options.check(["."], PROG) is None
    assert options.category("tabby", PROG) == 281 and options.category("7", PROG) == 7
    assert options.category(None, PROG) is None


@pytest.mark.parametrize("argv, targets", [
    ([], None),
    (["--target-category", "tabby"], 281),
    (["--top-classes", "3"], TopClasses(3)),
    (["--multilabel", "0.3"], MultiLabel(0.3)),
    (["--multilabel", "1", "--max-labels", "2"], MultiLabel(1.0, 2)),
])
def test_the_targets_options(argv, targets, folder, tmp_path):
    args = options.build_parser().parse_args([str(folder), "--out", str(tmp_path / "out"), *argv])
    assert options.check_arguments(args, PROG).targets == targets
