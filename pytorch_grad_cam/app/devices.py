"""Choosing the device the model runs on: one implementation for every
front-end, each wording its own message from :class:`DeviceError`."""
from __future__ import annotations

import warnings

import torch

from pytorch_grad_cam.app.errors import UsageError

__all__ = ["DeviceError", "choose_device", "device_option", "mps_available"]


class DeviceError(ValueError):
    """A device that cannot be used.

    Attributes:
        requested: the device asked for, as given.
        reason: why not: ``not a device``, ``CUDA is not available here``,
            ``Apple's MPS backend is not available here``.
    """

    def __init__(self, requested: str, reason: str) -> None:
        super().__init__(f"device {requested!r}: {reason}")
        self.requested = requested
        self.reason = reason


def mps_available() -> bool:
    """Whether Apple's MPS backend can run here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(requested: str = "auto", *, mps: bool = True) -> torch.device:
    """``auto`` (CUDA when available, then MPS unless ``mps`` is False, else
    the CPU), or a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked
    to be available: DeviceError otherwise."""
    text = requested.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps and mps_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(requested, "not a device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(requested, "CUDA is not available here")
    if device.type == "mps" and not mps_available():
        raise DeviceError(requested, "Apple's MPS backend is not available here")
    return device


def device_option(requested: str, use_cuda: bool = False) -> torch.device:
    """``--device`` (and the image command's older ``--use-cuda``) -> the
    device; UsageError when it is not available. ``--use-cuda`` without
    CUDA warns and runs on the CPU, as older scripts expect."""
    if use_cuda:
        if requested not in ("auto", "cuda"):
            raise UsageError(f"--use-cuda contradicts --device {requested}; give one of them")
        if not torch.cuda.is_available():
            warnings.warn("--use-cuda: CUDA is not available; running on the CPU", UserWarning,
                          stacklevel=2)
            return torch.device("cpu")
        return torch.device("cuda")
    try:
        return choose_device(requested)
    except DeviceError as error:
        version = f" (torch {torch.__version__})" if error.reason.startswith("CUDA") else ""
        raise UsageError(f"--device {requested}: {error.reason}{version}; use --device cpu or "
                         "auto") from None
