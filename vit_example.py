#!/usr/bin/env python
"""Class activation maps of a Vision Transformer, from the command line.

    python vit_example.py --image-path examples/chelsea.jpg --method gradcam

is ``grad-cam vit`` (``pytorch_grad_cam.cli.vit``) run from a clone;
``python vit_example.py --help`` explains the options and the layer.
"""
import sys

from pytorch_grad_cam.commands import run

if __name__ == "__main__":
    sys.exit(run("vit", sys.argv[1:], prog="vit_example.py"))
