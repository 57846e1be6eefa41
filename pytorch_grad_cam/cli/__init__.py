"""The command line: ``grad-cam``, ``python -m pytorch_grad_cam``, and the
root scripts ``cam.py`` and ``vit_example.py``.

Without a command it explains images with CAM methods (what ``python
cam.py`` does); a first argument that names a command runs that command
(:mod:`pytorch_grad_cam.commands`, the dispatcher)::

    grad-cam --image-path examples/chelsea.jpg --method gradcam scorecam
    grad-cam vit --image-path examples/chelsea.jpg          # = python vit_example.py

Modules:

- :mod:`~pytorch_grad_cam.cli.parser`: the options and the usage errors;
- :mod:`~pytorch_grad_cam.cli.request`: the arguments checked before torch
  is imported (a typo is reported at once);
- :mod:`~pytorch_grad_cam.cli.images`: the images of ``--image-path``,
  checked and read safely;
- :mod:`~pytorch_grad_cam.cli.job`: preparing the run (the model, the
  layers, the class) and running it; :mod:`~pytorch_grad_cam.cli.records`
  what it passes around;
- :mod:`~pytorch_grad_cam.app.cost` (re-exported as ``cli.cost``): the forward passes a run will make,
  printed before it;
- :mod:`~pytorch_grad_cam.cli.outputs`: the file names, pictures and reports;
- :mod:`~pytorch_grad_cam.cli.sanity`: the ``--sanity-checks`` tables;
- :mod:`~pytorch_grad_cam.cli.app`: running a command (errors, warnings);
- :mod:`~pytorch_grad_cam.cli.vit`: the ``vit`` command.

What the commands share with ``explain-dataset`` and the web demo (device,
methods, classes, layers, output folders, the model options) is in
:mod:`pytorch_grad_cam.app`; loading models and checkpoints is the
library's :mod:`pytorch_grad_cam.models.loading` (``cli.models``,
``cli.errors`` and ``cli.folders`` keep their earlier names working). A new
command is a function ``run(argv, prog) -> exit status`` and one entry in
:data:`pytorch_grad_cam.commands.COMMANDS`.

This package module imports no torch: ``main`` checks the arguments first.
"""
from __future__ import annotations

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.cli.parser import image_parser
from pytorch_grad_cam.commands import COMMANDS, Command, main

__all__ = ["COMMANDS", "Command", "UsageError", "image_parser", "main"]
