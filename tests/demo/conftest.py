"""Fixtures of the web demo's tests: one shared model store (the bundled
EfficientNet-Lite0 and the tiny model), the example photos."""
from __future__ import annotations

from pathlib import Path

import pytest
from demo_helpers import EXAMPLES, TINY, tiny_demo_model

from pytorch_grad_cam.demo.models import ModelStore


@pytest.fixture(scope="session")
def store() -> ModelStore:
    """The models of the demo on the CPU, shared by the tests as by a server."""
    return ModelStore("cpu", extra_models={TINY: tiny_demo_model})


@pytest.fixture(scope="session")
def chelsea_path() -> Path:
    path = EXAMPLES / "chelsea.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is missing (a clone has it)")
    return path
