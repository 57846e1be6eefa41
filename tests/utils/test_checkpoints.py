"""pytorch_grad_cam.utils.checkpoints: reading a checkpoint without running
the code it may hold; only regular files; the documented layouts."""
import argparse
import os
import threading
from pathlib import Path

import pytest
import torch
import torchvision
from checkpoint_helpers import LIBRARY_REFUSAL_END, write_hostile_checkpoint

from pytorch_grad_cam.utils.checkpoints import (
    CheckpointError,
    UntrustedCheckpointError,
    read_checkpoint,
)


def _small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_hostile_checkpoint_is_refused_without_running_it(tmp_path, wrapped):
    marker = tmp_path / "marker"
    path = write_hostile_checkpoint(tmp_path / "evil.pt", marker, wrapped=wrapped)
    with pytest.raises(UntrustedCheckpointError) as caught:
        read_checkpoint(path)
    assert not marker.exists()
    error = caught.value
    assert "pathlib.Path" in error.names and error.path == str(path)
    message = str(error)
    assert message.startswith(f"{path}: holds pickled Python objects (")
    assert message.endswith(LIBRARY_REFUSAL_END) and "\n" not in message
    assert isinstance(error, CheckpointError) and isinstance(error, ValueError)


def test_trusted_the_hostile_checkpoint_does_run(tmp_path):
    """The file of the test above is a real threat: trusted, it runs."""
    marker = tmp_path / "marker"
    path = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match=r"holds NoneType, neither a state_dict nor a model"):
        read_checkpoint(path, trust_checkpoint=True)
    assert marker.exists()


def test_a_whole_model_needs_trust(tmp_path):
    model = _small_model()
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(UntrustedCheckpointError) as caught:
        read_checkpoint(tmp_path / "whole.pt")
    assert caught.value.names == ["torch.nn.modules.activation.ReLU",
                                  "torch.nn.modules.container.Sequential",
                                  "torch.nn.modules.conv.Conv2d"]
    assert str(caught.value) == (
        f"{tmp_path / 'whole.pt'}: holds pickled Python objects "
        "(torch.nn.modules.activation.ReLU, torch.nn.modules.container.Sequential, "
        "torch.nn.modules.conv.Conv2d" + LIBRARY_REFUSAL_END)
    loaded = read_checkpoint(tmp_path / "whole.pt", trust_checkpoint=True)
    assert isinstance(loaded, torch.nn.Sequential) and not loaded.training
    assert torch.equal(loaded[0].weight, model[0].weight)


def test_many_objects_are_counted_not_listed(tmp_path):
    torch.save(torchvision.models.squeezenet1_1(), tmp_path / "squeezenet.pt")
    with pytest.raises(UntrustedCheckpointError) as caught:
        read_checkpoint(tmp_path / "squeezenet.pt")
    names = caught.value.names
    assert len(names) > 3
    assert f"{', '.join(names[:3])} and {len(names) - 3} more), and loading" in str(caught.value)


def test_an_argparse_namespace_next_to_the_weights_needs_trust(tmp_path):
    state = _small_model().state_dict()
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": state}, tmp_path / "ck.pt")
    with pytest.raises(UntrustedCheckpointError) as caught:
        read_checkpoint(tmp_path / "ck.pt")
    assert caught.value.names == ["argparse.Namespace"]
    loaded = read_checkpoint(tmp_path / "ck.pt", trust_checkpoint=True)
    assert isinstance(loaded, dict) and loaded.keys() == state.keys()


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model_state_dict", "model",
                                    "dataparallel"])
def test_state_dicts_load_without_trust(tmp_path, layout):
    state = _small_model().state_dict()
    saved = {
        "plain": state,
        "state_dict": {"epoch": 3, "state_dict": state},
        "model_state_dict": {"epoch": 3, "model_state_dict": state, "optimizer": {"lr": 0.1}},
        "model": {"model": state},
        "dataparallel": {"state_dict": {"module." + k: v for k, v in state.items()}},
    }[layout]
    torch.save(saved, tmp_path / "ck.pt")
    loaded = read_checkpoint(str(tmp_path / "ck.pt"))
    assert isinstance(loaded, dict) and list(loaded) == list(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def _read_in_thread(path) -> BaseException:
    """read_checkpoint's error, from a thread that must finish at once (a
    read that waited on a pipe or read /dev/zero forever would not)."""
    outcome = []

    def read():
        try:
            read_checkpoint(path)
        except BaseException as error:  # noqa: BLE001  (handed to the test)
            outcome.append(error)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), f"read_checkpoint({path}) did not return"
    assert outcome, "read_checkpoint returned"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.pt")
    (tmp_path / "link.pt").symlink_to(tmp_path / "pipe.pt")
    for name in ("pipe.pt", "link.pt"):  # a link is followed to what it names
        error = _read_in_thread(tmp_path / name)
        assert isinstance(error, CheckpointError)
        assert str(error) == f"{tmp_path / name}: is a named pipe, not a regular file"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_refused_without_reading_it():
    error = _read_in_thread("/dev/zero")
    assert str(error) == "/dev/zero: is a character device, not a regular file"


@pytest.mark.parametrize("name, content, message", [
    ("missing.pt", None, "no such file"),
    ("folder.pt", "folder", "is a folder, not a regular file"),
    ("empty.pt", b"", "cannot load it (the file is empty)"),
    ("garbage.pt", b"garbage", "cannot load it: not a PyTorch checkpoint, or a damaged one ("),
])
def test_what_is_not_a_checkpoint(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert not isinstance(caught.value, UntrustedCheckpointError)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_a_truncated_checkpoint_is_damaged_not_untrusted(tmp_path):
    torch.save(_small_model().state_dict(), tmp_path / "full.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(tmp_path / "cut.pt")
    assert not isinstance(caught.value, UntrustedCheckpointError)
    assert str(caught.value).startswith(f"{tmp_path / 'cut.pt'}: cannot load it: not a "
                                        "PyTorch checkpoint, or a damaged one (")
