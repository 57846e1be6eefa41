"""The demo's Gradio page without a browser: its configuration (offline,
loopback, parallel requests), the handler behind the Explain button, the
command line, and launch() on a free loopback port."""
from __future__ import annotations

import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from demo_helpers import TINY, free_port, library_map, photo_rgb, tiny_demo_model

gr = pytest.importorskip("gradio")

from pytorch_grad_cam.demo import app as demo_app  # noqa: E402
from pytorch_grad_cam.demo import cli as demo_cli  # noqa: E402
from pytorch_grad_cam.demo.tempdirs import process_folder  # noqa: E402


@pytest.fixture(scope="module")
def page(store):
    demo = demo_app.build_demo(store, concurrency=3)
    yield demo
    demo.grad_cam_map_files.close()


@pytest.fixture(scope="module")
def handle(page):
    files = page.grad_cam_map_files
    return demo_app.make_handler(page.grad_cam_store, files)


def test_the_page_is_offline_and_runs_requests_in_parallel(page):
    assert page.analytics_enabled is False
    explain_fn = next(f for f in page.fns.values() if f.api_name == "explain")
    assert explain_fn.concurrency_limit == 3
    assert explain_fn.preprocess is False  # the handler reads the upload itself
    assert [type(b).__name__ for b in explain_fn.inputs] == [
        "Image", "Dropdown", "CheckboxGroup", "Dropdown", "Textbox", "Checkbox"]
    assert [type(b).__name__ for b in explain_fn.outputs] == [
        "Gallery", "Label", "Dataframe", "File", "Markdown"]
    assert page._queue.default_concurrency_limit == 3


def test_the_theme_loads_no_font_from_the_internet():
    theme = demo_app.offline_theme()
    fonts = [*theme._font, *theme._font_mono]
    assert fonts and not any(isinstance(f, gr.themes.GoogleFont) for f in fonts)
    assert theme._stylesheets == []
    assert "googleapis" not in theme._get_theme_css()


def test_bundled_photos_are_offered(page):
    names = [p.name for p in page.grad_cam_photos]
    assert names == ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
    assert all(p.is_file() for p in page.grad_cam_photos)


def test_photos_from_skimage_go_to_the_demos_own_folder(tmp_path, monkeypatch):
    # no examples/ (an installed package): the photos are written by this process, for it only,
    # never taken from a fixed folder in the shared temporary folder, which anyone can fill
    monkeypatch.setattr(demo_app, "SOURCE_ROOT", tmp_path)
    planted = tmp_path / "tmp" / "grad-cam-demo-photos"
    planted.mkdir(parents=True)
    (planted / "chelsea.jpg").write_bytes(b"someone else's file")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    photos = demo_app.bundled_photos()
    assert [p.name for p in photos] == ["chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
    assert {p.parent for p in photos} == {process_folder() / "photos"}
    assert photo_rgb(photos[0]).shape == (300, 451, 3)
    assert [p.name for p in planted.iterdir()] == ["chelsea.jpg"]
    assert (planted / "chelsea.jpg").read_bytes() == b"someone else's file"


def test_the_handler_returns_overlays_top5_and_the_maps(store, handle, chelsea_path):
    gallery, top5, table, maps_path, status = handle(
        {"path": str(chelsea_path), "orig_name": "chelsea.jpg"}, "efficientnet_lite0",
        ["gradcam", "layercam"], "tabby (281)", "", False)
    assert [caption for _, caption in gallery] == ["GradCAM: tabby (281)",
                                                   "LayerCAM: tabby (281)"]
    assert all(image.dtype == np.uint8 and image.shape == (300, 451, 3) for image, _ in gallery)
    assert len(top5) == 5 and max(top5, key=top5.get) in ("Egyptian cat (285)", "tabby (281)")
    assert table.visible is False
    assert status.startswith("Explained **tabby (281)** with GradCAM, LayerCAM on "
                             "`efficientnet_lite0`, layer `head_activation`")
    with np.load(maps_path) as saved:
        assert int(saved["category"]) == 281 and len(saved["top5"]) == 5
        model = store.get("efficientnet_lite0").model
        expected = library_map(model, model.head_activation, photo_rgb(chelsea_path), 281)
        np.testing.assert_allclose(saved["gradcam"], expected, atol=1e-6)


def test_the_handler_shows_the_metrics_on_request(handle, chelsea_path):
    _, _, table, _, _ = handle(str(chelsea_path), TINY, ["gradcam"], "auto", "", True)
    assert table.visible is True
    rows = table.value["data"]
    assert len(rows) == 1 and rows[0][0] == "gradcam" and 0 <= rows[0][1] <= 1
    assert rows[0][2] in (0.0, 1.0)


@pytest.mark.parametrize("photo, model, target, message", [
    (None, TINY, "auto", "no photo: upload one or pick a bundled photo"),
    ("NOT_AN_IMAGE", TINY, "auto", "'notes.png' is not an image this demo can read"),
    ("CHELSEA", TINY, "<b>tabby</b> kat", "unknown class '&lt;b&gt;tabby&lt;/b&gt; kat'"),
    ("CHELSEA", "resnet5", "auto", "unknown model 'resnet5'"),
])
def test_bad_input_is_a_message_in_the_page(handle, chelsea_path, tmp_path, photo, model,
                                            target, message):
    if photo == "NOT_AN_IMAGE":
        fake = tmp_path / "notes.png"
        fake.write_text("hello")
        photo = {"path": str(fake), "orig_name": "notes.png"}
    elif photo == "CHELSEA":
        photo = {"path": str(chelsea_path)}
    with pytest.raises(gr.Error) as caught:
        handle(photo, model, ["gradcam"], target, "", False)
    assert message in caught.value.message  # escaped: the pop-up renders HTML
    assert "Traceback" not in caught.value.message


def test_an_unexpected_failure_is_one_line_in_the_page(handle, chelsea_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(demo_app, "explain", broken)
    with pytest.raises(gr.Error) as caught:
        handle(str(chelsea_path), TINY, ["gradcam"], "auto", "", False)
    assert caught.value.message == ("unexpected ZeroDivisionError: a bug (the server's log has "
                                    "the details)")


def test_the_command_line_serves_this_machine_only_by_default():
    args = demo_cli.build_parser().parse_args([])
    assert (args.host, args.port, args.concurrency, args.device) == ("127.0.0.1", None, 4, "auto")
    assert demo_cli.main(["--help"]) == 0
    assert demo_cli.main(["--port", "0"]) == 2
    assert demo_cli.main(["--concurrency", "many"]) == 2


def test_the_command_line_rejects_an_unavailable_device(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert demo_cli.main(["--device", "cuda"]) == 2
    assert "--device: device 'cuda': CUDA is not available here" in capsys.readouterr().err


def test_launch_listens_on_loopback_and_stops(tmp_path):
    port = free_port()
    demo = demo_app.launch(port=port, device="cpu", extra_models={TINY: tiny_demo_model},
                           block=False, quiet=True)
    try:
        assert demo.server_name == "127.0.0.1" and demo.share is False
        assert demo.local_url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(demo.local_url, timeout=10) as response:
            assert response.status == 200
            page = response.read().decode()
        assert "fonts.googleapis.com" not in page and "Grad-CAM demo" in page
    finally:
        demo.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def test_python_m_runs_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pytorch_grad_cam.demo", "--help"],
                         capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m pytorch_grad_cam.demo")
