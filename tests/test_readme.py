"""Every Python snippet of README.md runs as written (offline: the snippets
use the bundled pretrained EfficientNet-Lite0 or weights=None).

Each ```python block runs in a fresh namespace, in a temporary folder that
has the repository's ``examples/`` beside it, so that what a snippet
writes stays out of the repository."""
import re
import warnings
from pathlib import Path

import pytest

from pytorch_grad_cam import registry

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets():
    text = README.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append(pytest.param(match.group(1), id=f"README.md:{line}"))
    return found


def test_the_readme_has_python_snippets():
    assert len(snippets()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("code", snippets())
def test_readme_snippet_runs(code, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    # a snippet that registers a method registers it for this test only
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exec(compile(code, "README.md snippet", "exec"), {"__name__": "__readme__"})
