"""pytorch_grad_cam.demo.cli: what the demo command prints when serving
fails with an OSError (one line, exit status 2, never a traceback)."""
import errno
import os

import pytest

pytest.importorskip("gradio")

from pytorch_grad_cam.demo import app as demo_app  # noqa: E402
from pytorch_grad_cam.demo import cli as demo_cli  # noqa: E402


def _failing_launch(error: OSError):
    def launch(*args, **kwargs):
        raise error
    return launch


def test_a_failed_file_operation_names_the_file(monkeypatch, capsys):
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/tmp/gradio/upload.png")
    monkeypatch.setattr(demo_app, "launch", _failing_launch(error))
    assert demo_cli.main(["--device", "cpu", "--no-preload"]) == 2
    assert capsys.readouterr().err == \
        "grad-cam demo: error: /tmp/gradio/upload.png: no space left on device\n"


def test_a_port_that_cannot_be_bound_names_the_address(monkeypatch, capsys):
    error = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    monkeypatch.setattr(demo_app, "launch", _failing_launch(error))
    assert demo_cli.main(["--device", "cpu", "--port", "7999", "--no-preload"]) == 2
    assert capsys.readouterr().err == (f"grad-cam demo: error: cannot serve on 127.0.0.1:7999: "
                                       f"{error}\n")
