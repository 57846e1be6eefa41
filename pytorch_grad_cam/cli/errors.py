"""The error every part of the command line raises for a bad request, and
the one line it prints for a failed read or write: the front-ends' shared
:mod:`pytorch_grad_cam.app.errors`, by its earlier name."""
from pytorch_grad_cam.app.errors import UsageError, os_error_line, os_error_reason

__all__ = ["UsageError", "os_error_line", "os_error_reason"]
