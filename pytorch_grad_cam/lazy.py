"""What the lazy package modules (``pytorch_grad_cam``, ``pytorch_grad_cam.utils``)
share: a submodule imported when it is first reached as an attribute."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["submodule"]


def submodule(package: str, name: str) -> ModuleType:
    """``package.name``, imported now: for a package's module-level
    ``__getattr__``. AttributeError when the package has no such submodule
    (an error inside an existing submodule is raised as it is)."""
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
