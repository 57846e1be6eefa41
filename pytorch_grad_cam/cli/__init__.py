"""The command line: ``grad-cam``, ``python -m pytorch_grad_cam``, and the
root scripts ``cam.py`` and ``vit_example.py``.

Without a command it explains images with CAM methods (what ``python
cam.py`` does); a first argument that names a command runs that command::

    grad-cam --image-path examples/chelsea.jpg --method gradcam scorecam
    grad-cam vit --image-path examples/chelsea.jpg          # = python vit_example.py

Modules:

- :mod:`~pytorch_grad_cam.cli.parser`: the options and the usage errors;
- :mod:`~pytorch_grad_cam.cli.models`: loading torchvision models, the
  bundled offline EfficientNet-Lite0, ``timm:<name>`` and ``hf:<folder or
  hub id>`` models, checkpoints (with their own number of classes; read
  by :mod:`pytorch_grad_cam.utils.checkpoints`, pickled objects only with
  ``--trust-checkpoint``);
- :mod:`~pytorch_grad_cam.cli.folders`: checking that an output folder can
  be written, before the work;
- :mod:`~pytorch_grad_cam.cli.images`: the images of ``--image-path``,
  checked and read safely;
- :mod:`~pytorch_grad_cam.cli.job`: checking a request and running it;
- :mod:`~pytorch_grad_cam.cli.cost`: the forward passes a run will make,
  printed before it;
- :mod:`~pytorch_grad_cam.cli.outputs`: the pictures and reports;
- :mod:`~pytorch_grad_cam.cli.app`: running a command (errors, warnings);
- :mod:`~pytorch_grad_cam.cli.vit`: the ``vit`` command.

A new command is a function ``run(argv, prog) -> exit status`` and one
entry in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pytorch_grad_cam.cli import vit
from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.cli.parser import PROG, build_parser

__all__ = ["COMMANDS", "Command", "UsageError", "image_parser", "main"]


@dataclass(frozen=True)
class Command:
    """A subcommand: ``<prog> <name> ...`` calls ``run(rest, prog=<prog> <name>)``."""

    name: str
    summary: str
    run: Callable[..., int]


def _demo(argv: Sequence[str], prog: str) -> int:
    # imported when the command runs: the demo's extra (gradio) is optional
    from pytorch_grad_cam.demo.cli import main as demo_main

    return demo_main(list(argv), prog=prog)


def _explain_dataset(argv: Sequence[str], prog: str) -> int:
    from pytorch_grad_cam.datasets.cli import main as dataset_main

    return dataset_main(list(argv), prog=prog)


#: the subcommands, by name; no command is the image command
COMMANDS: Mapping[str, Command] = MappingProxyType({
    "vit": Command("vit", vit.SUMMARY, vit.main),
    "explain-dataset": Command("explain-dataset", "explains every image of a folder or dataset "
                               "into a resumable results store", _explain_dataset),
    "demo": Command("demo", "serves the web demo (pip install \".[demo]\")", _demo),
})


def image_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of the image command (no subcommand), its help listing
    :data:`COMMANDS`: what ``<prog> --help`` prints."""
    return build_parser(prog or PROG, {name: command.summary for name, command in COMMANDS.items()})


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
        return COMMANDS[args[0]].run(args[1:], prog=f"{prog} {args[0]}")
    return run_command(args, image_parser(prog))
