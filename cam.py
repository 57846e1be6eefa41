#!/usr/bin/env python
"""Class activation maps of an image classifier, from the command line.

    python cam.py --image-path examples/chelsea.jpg --method gradcam

is the installed ``grad-cam`` command (``pytorch_grad_cam.cli``) run from a
clone; ``python cam.py --help`` lists the options.
"""
import sys

from pytorch_grad_cam.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="cam.py"))
