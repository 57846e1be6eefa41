"""What the tests of pytorch_grad_cam.cli share: paths, the end-to-end
runs (each made once per test session, whichever test file asks first) and
the heat of an overlay.

Not a conftest.py: a second conftest.py would replace tests/conftest.py
as the module ``conftest`` that the test files import their constants
from.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from pytorch_grad_cam.models import loading

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LITE = "efficientnet_lite0"
BUNDLED = ["--model", LITE]
# an https proxy that refuses connections: no download can succeed, on any machine
OFFLINE_ENV = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "NO_PROXY": "", "no_proxy": ""}


def _environment(env=None) -> dict:
    environment = dict(os.environ)
    # the package of this checkout, also where it is not installed
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else []))
    environment.update(env or {})
    return environment


def run_script(script: str, *args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    """``python <repo>/<script> args...`` in ``cwd``."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd,
                          env=_environment(env), capture_output=True, text=True, timeout=600)


def run_module(*args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    """``python -m pytorch_grad_cam args...`` in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "pytorch_grad_cam", *map(str, args)], cwd=cwd,
                          env=_environment(env), capture_output=True, text=True, timeout=600)


def installed_command(name: str = "grad-cam"):
    """The path of an installed console script: on PATH or next to this
    Python (a virtual environment that is not activated); None if neither."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def use_loaded_bundled(monkeypatch, pretrained) -> None:
    """In-process runs get ``pretrained`` (the session's bundled model, loaded
    once) wherever the library's loader would load the bundled model (the
    command line neither changes nor keeps it)."""
    monkeypatch.setattr(loading, "load_bundled",
                        lambda names=loading.PYTHON_NAMES: loading.LoadedModel(
                            pretrained, loading.BUNDLED_MODEL, 224))


def heat(picture_path: Path, original: np.ndarray) -> np.ndarray:
    """How 'hot' the overlay is at each pixel of the 224 x 224 view: red minus
    blue of the heat map that was blended over the photo (JET: red = high)."""
    overlay = cv2.imread(str(picture_path)).astype(np.float32)
    heatmap = 2 * overlay - original.astype(np.float32)
    heatmap = cv2.resize(heatmap, (224, 224))
    return heatmap[..., 2] - heatmap[..., 0]


def mean_in(values: np.ndarray, region) -> float:
    y0, y1, x0, x1 = region
    return float(values[y0:y1, x0:x1].mean())


# ----------------------------------------------- end-to-end runs, made once
_RUNS: dict = {}


def _once(name: str, make):
    if name not in _RUNS:
        _RUNS[name] = make()
    return _RUNS[name]


def folder_run(tmp_path_factory):
    """cam.py on two photos in a folder, two methods, the bundled model:
    (result, photos folder, output folder)."""
    def make():
        base = tmp_path_factory.mktemp("folder_run")
        photos = base / "photos"
        photos.mkdir()
        for name in ("chelsea.jpg", "coffee.jpg"):
            shutil.copy(EXAMPLES / name, photos / name)
        (photos / "notes.txt").write_text("not an image, ignored")
        result = run_script("cam.py", "--image-path", photos, "--method", "gradcam",
                            "GradCAM++", *BUNDLED, "--output-dir", base / "out", "--no-progress",
                            cwd=base)
        return result, photos, base / "out"
    return _once("folder_run", make)


def default_offline_run(tmp_path_factory):
    """cam.py with the default model, an empty torch hub cache and no
    network (it falls back): (result, output folder)."""
    def make():
        base = tmp_path_factory.mktemp("default_run")
        env = dict(OFFLINE_ENV, TORCH_HOME=str(base / "torch_home"))
        result = run_script("cam.py", "--image-path", EXAMPLES / "chelsea.jpg",
                            "--target-category", "ESPRESSO", cwd=base, env=env)
        return result, base / "output"
    return _once("default_offline_run", make)
