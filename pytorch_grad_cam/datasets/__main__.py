"""``python -m pytorch_grad_cam.datasets DIR ...``: the explain-dataset command."""
from pytorch_grad_cam.datasets.cli import main

raise SystemExit(main(prog="python -m pytorch_grad_cam.datasets"))
