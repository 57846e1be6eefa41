"""Run code under grad-cam 1.5.7, the established implementation, to compare with.

    from reference import run_reference          # from a script in bench/
    arrays = run_reference(CODE)                 # dict of numpy arrays

``CODE`` is Python source that imports ``pytorch_grad_cam`` (there: grad-cam
1.5.7) and fills a dict named ``result`` with numpy arrays. It runs in a
child process of the current interpreter (or ``--reference-python``'s),
with the 1.5.7 source tree first on ``PYTHONPATH``, so the two libraries,
which share the package name, never meet in one process. The 1.5.7 source
is fetched once from the package index (``pip download grad-cam==1.5.7``)
into ``bench/.cache/`` unless ``GRAD_CAM_157_SRC`` names an unpacked tree.
1.5.7 imports scikit-learn: ``pip install scikit-learn`` in that
interpreter.

The test suite never calls this: tests compare with reference maps stored
in ``tests/data/`` that scripts in ``bench/`` wrote with it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
VERSION = "1.5.7"


def reference_source() -> Path:
    """The directory that holds 1.5.7's ``pytorch_grad_cam`` package."""
    given = os.environ.get("GRAD_CAM_157_SRC")
    if given:
        return Path(given)
    root = CACHE / f"grad_cam-{VERSION}"
    if not (root / "pytorch_grad_cam").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", f"grad-cam=={VERSION}", "-d", str(CACHE)], check=True)
        archive = next(CACHE.glob(f"grad_cam-{VERSION}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(CACHE, filter="data")
    return root


def run_reference(code: str, python: str | None = None) -> dict[str, np.ndarray]:
    """The ``result`` dict that ``code`` fills when run under grad-cam 1.5.7."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.npz"
        script = Path(tmp) / "reference_job.py"
        script.write_text(code + f"\n\nimport numpy as _np\n_np.savez({str(out)!r}, **result)\n")
        env = dict(os.environ, PYTHONPATH=str(reference_source()))
        subprocess.run([python or sys.executable, str(script)], check=True, env=env, cwd=tmp)
        with np.load(out) as data:
            return {key: data[key] for key in data.files}
