"""``python -m pytorch_grad_cam.datasets DIR ...``: the explain-dataset command
(its arguments checked before torch is imported)."""
import sys

from pytorch_grad_cam.commands import run

raise SystemExit(run("explain-dataset", sys.argv[1:], prog="python -m pytorch_grad_cam.datasets"))
