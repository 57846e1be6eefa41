"""The API reference (docs/api/*.rst) documents every public module of the
library, and every public class and function of those modules has a
docstring for it to show (autodoc leaves out members without one).

The front-ends' own code (``pytorch_grad_cam.cli``, ``.app``, ``.demo``) is
documented as commands (docs/cli.md, docs/demo.md), not in the reference."""
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import pytorch_grad_cam

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"
FRONT_ENDS = ("pytorch_grad_cam.cli", "pytorch_grad_cam.app", "pytorch_grad_cam.demo")


def library_modules() -> list[str]:
    names = ["pytorch_grad_cam"]
    for info in pkgutil.walk_packages(pytorch_grad_cam.__path__, "pytorch_grad_cam."):
        private = any(part.startswith("_") for part in info.name.split("."))
        if not private and not info.name.startswith(FRONT_ENDS):
            names.append(info.name)
    return names


def documented_modules() -> list[str]:
    found = []
    for page in sorted(API.glob("*.rst")):
        found += re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(encoding="utf-8"), re.M)
    return found


def test_every_library_module_is_in_the_reference():
    documented = documented_modules()
    assert sorted(set(library_modules()) - set(documented)) == []
    assert sorted(set(documented) - set(library_modules())) == []
    repeated = {name for name in documented if documented.count(name) > 1}
    assert repeated == set()


def test_every_api_page_is_in_the_reference_toctree():
    index = (API / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (\w+)$", index, re.M))
    assert listed == {page.stem for page in API.glob("*.rst")} - {"index"}


@pytest.mark.parametrize("module_name", library_modules())
def test_public_classes_and_functions_have_docstrings(module_name):
    module = importlib.import_module(module_name)
    undocumented = [name for name, value in vars(module).items()
                    if not name.startswith("_")
                    and (inspect.isclass(value) or inspect.isfunction(value))
                    and value.__module__ == module_name and not value.__doc__]
    assert undocumented == [], f"{module_name}: no docstring for {undocumented}"
