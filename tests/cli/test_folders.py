"""pytorch_grad_cam.cli.folders and the commands' write errors: an output
folder that cannot be written is one line and exit status 2 before any model
is loaded; a write that fails later is one line too, never a traceback."""
from __future__ import annotations

import errno
import os
import tempfile

import pytest
import torch
from cli_helpers import EXAMPLES, run_module

from pytorch_grad_cam.cli import UsageError, image_parser, outputs, vit
from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.errors import os_error_line
from pytorch_grad_cam.cli.folders import PROBE_PREFIX, check_output_folder
from pytorch_grad_cam.cli.models import LoadedModel

CHELSEA = str(EXAMPLES / "chelsea.jpg")


def _failing_mkdtemp(number: int):
    def mkdtemp(prefix=None, dir=None, **kwargs):
        raise OSError(number, os.strerror(number), os.path.join(str(dir), f"{prefix}x"))
    return mkdtemp


# ------------------------------------------------------------- the check
def test_an_existing_folder_passes_and_is_left_as_it_was(tmp_path):
    (tmp_path / "mine.jpg").write_bytes(b"the user's file")
    assert check_output_folder("--output-dir", str(tmp_path)) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.jpg"]
    assert (tmp_path / "mine.jpg").read_bytes() == b"the user's file"


def test_a_folder_to_be_made_passes_and_is_not_made_yet(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert check_output_folder("--output-dir", str(target)) == target
    assert list(tmp_path.iterdir()) == []  # made when the first picture is written


@pytest.mark.parametrize("given, message", [
    ("file.txt", "--output-dir {tmp}/file.txt: exists and is not a folder"),
    ("file.txt/sub", "--output-dir {tmp}/file.txt/sub: {tmp}/file.txt is a file, not a folder"),
    ("file.txt/a/b", "--output-dir {tmp}/file.txt/a/b: {tmp}/file.txt is a file, not a folder"),
])
def test_a_path_through_a_file_is_refused(tmp_path, given, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError) as caught:
        check_output_folder("--output-dir", str(tmp_path / given))
    assert str(caught.value) == message.format(tmp=tmp_path)
    assert (tmp_path / "file.txt").read_text() == "x"


@pytest.mark.parametrize("number, reason", [(errno.EACCES, "permission denied"),
                                            (errno.EROFS, "read-only file system")])
def test_a_folder_nothing_can_be_created_in_is_refused(tmp_path, monkeypatch, number, reason):
    """(The tests run as root, whom permissions do not stop: the failing
    creation is simulated.)"""
    monkeypatch.setattr(tempfile, "mkdtemp", _failing_mkdtemp(number))
    with pytest.raises(UsageError) as caught:
        check_output_folder("--out", str(tmp_path))
    assert str(caught.value) == f"--out {tmp_path}: cannot write in it ({reason})"
    with pytest.raises(UsageError) as caught:
        check_output_folder("--output-dir", str(tmp_path / "new" / "sub"))
    assert str(caught.value) == (f"--output-dir {tmp_path / 'new' / 'sub'}: cannot create it in "
                                 f"{tmp_path} ({reason})")


def test_the_probe_is_a_folder_of_a_name_of_its_own(tmp_path, monkeypatch):
    made = []
    real = tempfile.mkdtemp

    def spy(prefix=None, dir=None, **kwargs):
        made.append(real(prefix=prefix, dir=dir, **kwargs))
        return made[-1]
    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    check_output_folder("--output-dir", str(tmp_path / "out"))
    assert len(made) == 1 and os.path.dirname(made[0]) == str(tmp_path)
    assert os.path.basename(made[0]).startswith(PROBE_PREFIX) and not os.path.exists(made[0])


def test_an_os_error_as_one_line():
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device", "out/a.jpg")) == \
        "out/a.jpg: no space left on device"
    assert os_error_line(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")) == \
        "a -> b: invalid cross-device link"
    assert os_error_line(FileNotFoundError("source 'x': no such folder")) == \
        "source 'x': no such folder"
    # a write() that failed names no file: the folder being written into stands in
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device"), "out") == \
        "out: no space left on device"
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device")) == \
        "no space left on device"


# --------------------------------------------------------- the commands
class SpyLoader:
    """A loader that records that it was asked for the model."""

    def __init__(self, model: torch.nn.Module | None = None):
        self.calls = 0
        self.model = model

    def __call__(self, args) -> LoadedModel:
        self.calls += 1
        assert self.model is not None, "the model was loaded"
        return LoadedModel(self.model, "tiny", 32)


def _tiny_classifier() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 3)).eval()


@pytest.mark.parametrize("command", ["image", "vit"])
def test_an_unwritable_output_dir_stops_before_the_model_is_loaded(command, tmp_path, capsys,
                                                                   monkeypatch):
    (tmp_path / "file.txt").write_text("x")
    spy = SpyLoader()
    out = str(tmp_path / "file.txt" / "sub")
    argv = ["--image-path", CHELSEA, "--output-dir", out]
    if command == "image":
        status = run_command(argv, image_parser("cam.py"), load=spy)
        prog = "cam.py"
    else:
        monkeypatch.setattr(vit, "load_vit", spy)
        status = vit.main(argv, prog="grad-cam vit")
        prog = "grad-cam vit"
    assert status == 2 and spy.calls == 0
    captured = capsys.readouterr()
    assert captured.err == f"{prog}: error: --output-dir {out}: {tmp_path / 'file.txt'} is a " \
                           "file, not a folder\n"
    assert captured.out == ""


def test_permission_denied_stops_before_the_model_is_loaded(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "mkdtemp", _failing_mkdtemp(errno.EACCES))
    spy = SpyLoader()
    argv = ["--image-path", CHELSEA, "--output-dir", str(tmp_path)]
    assert run_command(argv, image_parser("cam.py"), load=spy) == 2 and spy.calls == 0
    assert capsys.readouterr().err == \
        f"cam.py: error: --output-dir {tmp_path}: cannot write in it (permission denied)\n"


@pytest.mark.parametrize("names_the_file", [True, False])
def test_a_write_that_fails_during_the_run_is_one_line(tmp_path, capsys, monkeypatch,
                                                      names_the_file):
    """The disk fills up after the check: one line naming the file (or,
    when the error names none, as a failed write() does, the output folder)
    and the reason, exit status 2, no traceback."""
    failed = []

    def disk_full(path, picture, quality=95):
        failed.append(path)
        if names_the_file:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(outputs, "write_jpeg", disk_full)
    spy = SpyLoader(_tiny_classifier())
    out = tmp_path / "out"
    argv = ["--image-path", CHELSEA, "--target-category", "0", "--no-progress",
            "--output-dir", str(out)]
    assert run_command(argv, image_parser("cam.py"), load=spy) == 2 and spy.calls == 1
    captured = capsys.readouterr()
    assert len(failed) == 1
    where = failed[0] if names_the_file else out
    assert captured.err == f"cam.py: error: {where}: no space left on device\n"


def test_the_command_refuses_a_path_under_a_file_in_one_line(tmp_path):
    """``python -m pytorch_grad_cam --output-dir file.txt/sub`` as a user
    runs it (the default model: the check comes before resolving it)."""
    (tmp_path / "file.txt").write_text("x")
    result = run_module("--image-path", CHELSEA, "--output-dir", "file.txt/sub", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("python -m pytorch_grad_cam: error: --output-dir file.txt/sub: "
                             "file.txt is a file, not a folder\n")
    assert result.stdout == "" and (tmp_path / "file.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
