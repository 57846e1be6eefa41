"""The dispatcher of the command line: ``grad-cam``, ``python -m
pytorch_grad_cam``, ``cam.py`` and ``vit_example.py`` start here.

Without a command the arguments go to the image command; a first argument
that names a command (:data:`COMMANDS`) runs that command::

    grad-cam --image-path examples/chelsea.jpg --method gradcam scorecam
    grad-cam vit --image-path examples/chelsea.jpg          # = python vit_example.py
    grad-cam explain-dataset photos/ --out results/
    grad-cam demo

The commands live in the front-end packages (:mod:`pytorch_grad_cam.cli`,
:mod:`pytorch_grad_cam.datasets`, :mod:`pytorch_grad_cam.demo`), which
never import each other: this module names each command's functions by
``"module:function"`` and imports them with :mod:`importlib` only when the
command runs. That is the lazy loading of a subcommand, and the only place
the front-ends are imported by name: ``grad-cam demo --help`` loads neither
torch nor the image command, and ``grad-cam explain-dataset`` not the demo.

A command may have a ``check``: a function of a module that imports no
torch, which parses and checks the arguments first and returns an exit
status when it is done (a usage error, ``--list-classes``) or None to go
on. A typo (``--method gradcm``, a missing image) is then reported in a
fraction of a second instead of after torch and the model libraries have
loaded. ``run`` then runs the command with all its checks.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["COMMANDS", "IMAGE_COMMAND", "PROG", "Command", "main", "run"]

#: the program name of the installed command (``cam.py`` and
#: ``python -m pytorch_grad_cam`` pass their own)
PROG = "grad-cam"


def _function(entry: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (its module imported now)."""
    module, _, name = entry.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


@dataclass(frozen=True)
class Command:
    """A command: ``<prog> <name> ...`` calls ``run(rest, prog=<prog> <name>)``,
    after ``check(rest, prog=...)`` when the command has one.

    Attributes:
        name: the first argument that selects it ("" for the image command).
        summary: one line for ``grad-cam --help``.
        entry: ``"module:function"`` of ``run(argv, prog) -> exit status``.
        check_entry: ``"module:function"`` of ``check(argv, prog) -> exit
            status or None``, in a module that imports no torch; or None.
    """

    name: str
    summary: str
    entry: str
    check_entry: str | None = None

    @property
    def run(self) -> Callable[..., int]:
        """The command's ``run(argv, prog)`` (its module imported now)."""
        return _function(self.entry)

    def __call__(self, argv: Sequence[str], prog: str) -> int:
        if self.check_entry is not None:
            status = _function(self.check_entry)(list(argv), prog=prog)
            if status is not None:
                return int(status)
        return int(self.run(list(argv), prog=prog))


#: the image command: the arguments when none names a command
IMAGE_COMMAND = Command("", "explains images with CAM methods",
                        "pytorch_grad_cam.cli.app:main", "pytorch_grad_cam.cli.request:check_image")

#: the subcommands, by name
COMMANDS: Mapping[str, Command] = MappingProxyType({
    "vit": Command("vit", "explains a Vision Transformer", "pytorch_grad_cam.cli.vit:main",
                   "pytorch_grad_cam.cli.request:check_vit"),
    "explain-dataset": Command("explain-dataset", "explains every image of a folder or dataset "
                               "into a resumable results store",
                               "pytorch_grad_cam.datasets.cli:main",
                               "pytorch_grad_cam.datasets.options:check"),
    "demo": Command("demo", "serves the web demo (pip install \".[demo]\")",
                    "pytorch_grad_cam.demo.cli:main"),
})


def run(name: str, argv: Sequence[str], prog: str) -> int:
    """Run command ``name`` ("" for the image command) with ``argv``, its
    messages and help naming the program ``prog``."""
    command = COMMANDS[name] if name else IMAGE_COMMAND
    return command(argv, prog)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 usage
    error, 130 interrupted).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name shown in help and messages (default
            ``grad-cam``; the root scripts pass ``cam.py`` /
            ``vit_example.py``, ``python -m pytorch_grad_cam`` its own).
    """
    prog = prog or PROG
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return run(args[0], args[1:], f"{prog} {args[0]}")
    return run("", args, prog)
