"""``python -m pytorch_grad_cam ...``: the command line (``grad-cam``)."""
import sys

from pytorch_grad_cam.commands import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m pytorch_grad_cam"))
