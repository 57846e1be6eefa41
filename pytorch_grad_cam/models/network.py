"""Whether the model hubs can be reached, and downloads that give up in time.

Nothing in :mod:`pytorch_grad_cam.models.loading` downloads without first
asking :func:`online`, so that a machine without network gets its answer
(the cache, or a message that says where to put the weights) at once
instead of after the time-outs and retries of torch and Hugging Face.
The loaders call ``network.online`` through this module, so that a test
(or a program) that replaces it here replaces it for all of them.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from urllib.parse import urlparse

from pytorch_grad_cam.utils.settings import temporary_setting

__all__ = ["HF_URL", "hf_cache", "hub_offline", "online", "socket_timeout"]

#: the Hugging Face hub (timm's weights, transformers models)
HF_URL = "https://huggingface.co"
#: the proxy variables under which the host is taken as reachable (the proxy decides)
_PROXIES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def online(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` can be reached (a proxy counts as reachable)."""
    if any(os.environ.get(name) for name in _PROXIES):
        return True
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def socket_timeout(seconds: float) -> contextlib.AbstractContextManager[None]:
    """The default socket time-out set to ``seconds`` inside the block."""
    timeout: float | None = seconds  # the setting's type (None: no time-out)
    return temporary_setting(socket.getdefaulttimeout, socket.setdefaulttimeout, timeout)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Make the Hugging Face hub use its cache only (no retries on a dead network)."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    old_constant = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_constant  # type: ignore[attr-defined]


def hf_cache() -> str:
    """Where the Hugging Face hub keeps its downloads (for messages)."""
    try:  # optional: transformers and timm bring it
        from huggingface_hub import constants
        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001  (only for a message)
        return "~/.cache/huggingface/hub"
