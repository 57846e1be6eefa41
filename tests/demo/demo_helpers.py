"""Helpers of the web demo's tests: free loopback ports, a demo server in a
subprocess (stopped at the end, killed if it does not stop), a tiny
deterministic ImageNet-shaped model, and the library call a map must equal.

Run as a script it serves the demo with the tiny model (the load test's
server)::

    python tests/demo/demo_helpers.py --port 7900
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TINY = "tiny"


def run_in_threads(work: Callable[[int], None], items: Sequence[int], timeout: float) -> None:
    """``work(item)`` in one thread per item, all started together; fails if
    a thread still runs after ``timeout`` seconds, and re-raises the first
    error of any thread."""
    start = threading.Barrier(len(items))
    errors: list[BaseException] = []

    def body(item: int) -> None:
        try:
            start.wait(30)
            work(item)
        except BaseException as error:  # noqa: BLE001  (re-raised below)
            errors.append(error)

    threads = [threading.Thread(target=body, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TinyNet(torch.nn.Module):
    """Two strided convolutions, global pooling and a 1000-class head:
    explained at ``features[-1]`` (16 x 56 x 56 at 224 x 224)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU())
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def tiny_model() -> TinyNet:
    """The TinyNet with weights drawn from a fixed seed: the same in every
    process, without touching the global random state."""
    model = TinyNet()
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval()


def tiny_demo_model():
    """The tiny model as the demo registers it (its layer named)."""
    from pytorch_grad_cam.demo import DemoModel

    return DemoModel(tiny_model(), TINY, layers=("features[-1]",))


def photo_rgb(path: Path) -> np.ndarray:
    """A photo as the demo reads it: PIL, EXIF orientation, RGB uint8."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB")).copy()


def library_map(model: torch.nn.Module, layer: torch.nn.Module, rgb: np.ndarray, category: int,
                method: str = "gradcam", size: int = 224) -> np.ndarray:
    """The map a direct library call gives: the photo resized to size x
    size (cv2, bilinear), [0, 1], ImageNet-normalised, the method of
    pytorch_grad_cam.METHODS on ``layer`` for ``category``."""
    from pytorch_grad_cam import METHODS
    from pytorch_grad_cam.utils.image import preprocess_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    input_tensor = preprocess_image(np.float32(resized) / 255)
    with METHODS[method](model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(category)])[0]


def top_class(model: torch.nn.Module, rgb: np.ndarray, size: int = 224) -> int:
    """The model's top class for the photo, prepared as :func:`library_map` does."""
    from pytorch_grad_cam.utils.image import preprocess_image

    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    with torch.inference_mode():
        return int(model(preprocess_image(np.float32(resized) / 255)).argmax())


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``url`` answers 200; RuntimeError with the server's
    output when it exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the demo server did not answer {url} within {timeout:.0f} s")


@contextlib.contextmanager
def demo_server(command: Sequence[str], port: int, log_path: Path, timeout: float = 90.0,
                env: Mapping[str, str | None] | None = None
                ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``command`` (a demo server on 127.0.0.1:``port``) until the block
    ends; yields (base URL, process). The server imports this checkout's
    package (``PYTHONPATH``); ``env`` sets variables of its environment (or
    removes them: None); its output goes to ``log_path``; it is stopped
    with SIGTERM, then killed after 10 s."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
                   "PYTHONPATH": path}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    with open(log_path, "wb") as log:
        process = subprocess.Popen(list(command), cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            try:
                wait_for_http(url, process, timeout)
            except RuntimeError as error:
                raise RuntimeError(f"{error}; its output:\n{log_path.read_text(errors='replace')}") \
                    from None
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo with the tiny model (and the built-in ones)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    from pytorch_grad_cam.demo import launch

    launch(port=args.port, device="cpu", extra_models={TINY: tiny_demo_model}, model=TINY,
           concurrency=args.concurrency, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
