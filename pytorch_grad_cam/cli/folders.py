"""Checking, before any work, that an output folder can be written: the
front-ends' shared :mod:`pytorch_grad_cam.app.folders`, by its earlier name."""
from pytorch_grad_cam.app.folders import PROBE_PREFIX, check_output_folder

__all__ = ["PROBE_PREFIX", "check_output_folder"]
