"""``python -m pytorch_grad_cam.demo``: serve the web demo (``grad-cam demo``)."""
import sys

from pytorch_grad_cam.demo.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m pytorch_grad_cam.demo"))
