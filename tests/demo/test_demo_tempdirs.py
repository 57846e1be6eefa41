"""The demo's temporary folders (pytorch_grad_cam.demo.tempdirs): new and
private, removed on close and on SIGTERM (the previous handler put back and
obeyed), nothing else removed; and a demo server stopped with SIGTERM leaves
nothing of the photo it explained in its temporary folder."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from demo_helpers import ROOT, TINY, demo_server, free_port
from PIL import Image

from pytorch_grad_cam.demo import tempdirs

STARTUP_TIMEOUT = 120.0  # seconds for the server to answer (10-20 s here)
REQUEST_TIMEOUT = 90.0   # seconds for the explanation (the first loads the model)
STOP_TIMEOUT = 30.0      # seconds for the server to end after SIGTERM


@pytest.fixture
def sigterm(monkeypatch):
    """SIGTERM's handler is a recorder of the signals it gets (the
    "previous handler"), and the module's bookkeeping starts empty; both
    are put back afterwards, and the folders made meanwhile are removed."""
    received: list[int] = []
    original = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(tempdirs, "_LIVE", {})
    monkeypatch.setattr(tempdirs, "_PREVIOUS", {})

    def recorder(signum, frame):
        received.append(signum)

    signal.signal(signal.SIGTERM, recorder)
    try:
        yield recorder, received
    finally:
        signal.signal(signal.SIGTERM, recorder)  # so that no cleanup below can end pytest
        for finalizer in list(tempdirs._LIVE.values()):
            finalizer()
        signal.signal(signal.SIGTERM, original)


def test_a_scratch_folder_is_new_private_and_removed_on_close(sigterm, tmp_path):
    existing = tmp_path / "grad-cam-demo-maps-existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("not the demo's")
    folder = tempdirs.ScratchFolder("grad-cam-demo-maps-", tmp_path)
    assert folder.path.parent == tmp_path and folder.path.name.startswith("grad-cam-demo-maps-")
    assert folder.path != existing and stat.S_IMODE(folder.path.stat().st_mode) == 0o700
    (folder.path / "maps.npz").write_bytes(b"maps of a photo")
    folder.close()
    assert folder.closed and not folder.path.exists()
    assert (existing / "keep.txt").read_text() == "not the demo's"


def test_sigterm_with_a_python_handler_calls_it_and_keeps_the_folders(sigterm, tmp_path):
    # the handler decides: this one returns, so the process (and the demo) goes on
    recorder, received = sigterm
    folders = [tempdirs.ScratchFolder(prefix, tmp_path)
               for prefix in ("grad-cam-demo-", "grad-cam-demo-maps-")]
    assert signal.getsignal(signal.SIGTERM) is tempdirs._on_sigterm
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 5  # the handler runs on the main thread, between bytecodes
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert received == [signal.SIGTERM]
    assert [folder.path.is_dir() for folder in folders] == [True, True]
    assert signal.getsignal(signal.SIGTERM) is tempdirs._on_sigterm
    for folder in folders:
        folder.close()
    assert signal.getsignal(signal.SIGTERM) is recorder


_EXITING_HANDLER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
from pytorch_grad_cam.demo.tempdirs import ScratchFolder
folder = ScratchFolder("grad-cam-demo-maps-")
(folder.path / "maps.npz").write_bytes(b"the maps of a photo")
print(folder.path, flush=True)
time.sleep(60)
"""


def test_sigterm_with_a_python_handler_that_exits_removes_the_folders_at_exit(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "notes.txt").write_text("the user's own file")
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _EXITING_HANDLER], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        folder = Path(process.stdout.readline().strip())  # "" if the script failed
        assert folder.parent == temp and (folder / "maps.npz").is_file(), process.stderr.read()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=STOP_TIMEOUT)
    finally:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
    assert process.returncode == 7, err  # the handler's sys.exit(7), as without the demo
    assert not folder.exists()
    assert [p.name for p in temp.iterdir() if not _made_by_others(p.name)] == ["notes.txt"]


def test_closing_the_last_folder_puts_the_previous_handler_back(sigterm, tmp_path):
    recorder, received = sigterm
    first = tempdirs.ScratchFolder("grad-cam-demo-", tmp_path)
    second = tempdirs.ScratchFolder("grad-cam-demo-maps-", tmp_path)
    first.close()
    assert signal.getsignal(signal.SIGTERM) is tempdirs._on_sigterm
    second.close()
    assert signal.getsignal(signal.SIGTERM) is recorder and received == []


def test_an_ignored_sigterm_stays_ignored(sigterm, tmp_path):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    folder = tempdirs.ScratchFolder("grad-cam-demo-", tmp_path)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    folder.close()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_a_forked_child_leaves_its_parents_folders_alone(sigterm, tmp_path, monkeypatch):
    folder = tempdirs.ScratchFolder("grad-cam-demo-", tmp_path)
    parent_pid = os.getpid()
    monkeypatch.setattr(tempdirs.os, "getpid", lambda: parent_pid + 1)  # as in a forked child
    folder.close()
    monkeypatch.undo()
    assert folder.path.is_dir()
    folder.path.rmdir()


def test_gradio_cache_is_a_new_folder_inside_the_given_gradio_temp_dir(sigterm, tmp_path,
                                                                       monkeypatch):
    mine = tmp_path / "mine"  # the user's GRADIO_TEMP_DIR, not there yet
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(mine))
    monkeypatch.setattr(tempdirs, "_PROCESS", [])
    monkeypatch.setattr(tempdirs, "_GRADIO_TEMP_DIR", {})
    cache = tempdirs.gradio_cache()
    assert cache.name == "gradio" and cache.parent.parent == mine
    assert cache.parent.name.startswith("grad-cam-demo-") and cache.is_dir()
    assert os.environ["GRADIO_TEMP_DIR"] == str(cache) and tempdirs.gradio_cache() == cache
    tempdirs._PROCESS[0].close()
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and list(mine.iterdir()) == []
    again = tempdirs.gradio_cache()  # a new one, in the given folder again (not in the old one)
    assert again.parent.parent == mine and again != cache and not cache.exists()
    tempdirs._PROCESS[0].close()
    assert list(mine.iterdir()) == []


def test_a_gradio_temp_dir_that_is_a_file_is_named(sigterm, tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempdirs, "_PROCESS", [])
    monkeypatch.setattr(tempdirs, "_GRADIO_TEMP_DIR", {})
    with pytest.raises(OSError) as caught:
        tempdirs.gradio_cache()
    assert str(caught.value) == (f"cannot make the demo's folder in GRADIO_TEMP_DIR="
                                 f"{str(tmp_path / 'cache')!r}: it is not a folder")
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_the_command_line_names_a_bad_gradio_temp_dir(tmp_path):
    pytest.importorskip("gradio")
    (tmp_path / "cache").write_text("a file")
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pytorch_grad_cam.demo", "--port", "7999"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert out.returncode == 2, out.stderr
    assert out.stderr == (f"python -m pytorch_grad_cam.demo: error: cannot make the demo's "
                          f"folder in GRADIO_TEMP_DIR={str(tmp_path / 'cache')!r}: it is not a "
                          f"folder\n")


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (relative), with a file's bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _made_by_others(name: str) -> bool:
    """Top-level entries of the temporary folder that torch makes when it
    is imported (its compiler's cache), not the demo."""
    return name.split(os.sep)[0].startswith("torchinductor_")


@pytest.mark.slow  # starts a server
@pytest.mark.parametrize("how", ["launch", "command line"])
def test_a_server_stopped_with_sigterm_leaves_nothing_of_the_photo(tmp_path, how):
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    temp = tmp_path / "tmp"  # the server's TMPDIR, with what was there before it started
    (temp / "grad-cam-demo-photos").mkdir(parents=True)
    (temp / "grad-cam-demo-photos" / "chelsea.jpg").write_bytes(b"an older demo's photo")
    (temp / "notes.txt").write_text("the user's own file")
    # not the GRADIO_TEMP_DIR that this process has when it imported the demo's page
    env: dict[str, str | None] = {"TMPDIR": str(temp), "GRADIO_TEMP_DIR": None}
    if how == "command line":
        (temp / "mine").mkdir()  # GRADIO_TEMP_DIR given: the demo's cache goes inside it
        (temp / "mine" / "keep.txt").write_text("the user's Gradio cache")
        env["GRADIO_TEMP_DIR"] = str(temp / "mine")
    before = _tree(temp)
    photo = tmp_path / "holiday.png"  # a photo no other test uploads: its bytes are found below
    pixels = np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)

    port = free_port()
    if how == "launch":  # pytorch_grad_cam.demo.launch(), the library's entry point
        command = [sys.executable, str(Path(__file__).with_name("demo_helpers.py")),
                   "--port", str(port)]
        model = TINY
    else:
        command = [sys.executable, "-m", "pytorch_grad_cam.demo", "--port", str(port),
                   "--no-preload", "--quiet"]
        model = "efficientnet_lite0"
    with demo_server(command, port, tmp_path / "server.log", STARTUP_TIMEOUT, env) as (url, server):
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "client"))
        job = client.submit(gradio_client.handle_file(str(photo)), model, ["gradcam"], "auto", "",
                            False, api_name="/explain")
        _, _, _, maps_path, status = job.result(timeout=REQUEST_TIMEOUT)
        client.close()
        assert status.startswith("Explained ") and Path(maps_path).is_file()
        during = _tree(temp)
        # the upload and the maps are in the server's TMPDIR (else this test would prove nothing)
        assert photo.read_bytes() in during.values()
        assert any(name.endswith(".npz") for name in during)
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=STOP_TIMEOUT)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert returncode == -signal.SIGTERM, log  # it ends as SIGTERM ends a process (143 in a shell)
    after = {name: data for name, data in _tree(temp).items() if not _made_by_others(name)}
    assert sorted(set(after) - set(before)) == [], log
    assert after == before  # what was there before is untouched
