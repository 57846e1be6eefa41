"""Every Python code block of README.md and of the documentation's pages
(``docs/**/*.md``) runs as written, offline: the blocks use the bundled
pretrained EfficientNet-Lite0, models with random weights or local files.

Each ```python block runs in a fresh namespace, in a temporary folder that
has the repository's ``examples/`` beside it, so that what a block writes
stays out of the repository. (The tutorials, ``docs/tutorials/*.py``, run
when the site is built: ``.ci/run`` builds it.)"""
import re
import warnings
from pathlib import Path

import pytest

from pytorch_grad_cam import registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(?:python|py)\n(.*?)^```", re.S | re.M)
SKIP_DIRS = {"_build", "auto_tutorials"}


def pages() -> list[Path]:
    found = [ROOT / "README.md"]
    found += sorted(p for p in DOCS.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(DOCS).parts))
    return found


def blocks():
    found = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(ROOT).as_posix()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group(1), name, id=f"{name}:{line}"))
    return found


def test_the_pages_have_python_blocks():
    names = {param.values[1] for param in blocks()}
    assert "README.md" in names and "docs/usage.md" in names and "docs/vit.md" in names
    assert len(blocks()) >= 20


@pytest.mark.slow
@pytest.mark.parametrize(("code", "page"), blocks())
def test_code_block_runs(code, page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    # a block that registers a method registers it for this test only
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exec(compile(code, f"{page} block", "exec"), {"__name__": "__docs__"})
