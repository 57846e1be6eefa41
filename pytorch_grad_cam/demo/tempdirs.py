"""The web demo's temporary folders, and their removal on SIGTERM.

Every file the demo writes about a user's photo (Gradio's copy of the
upload, the overlays and ``.npz`` maps it serves) lies in a folder made here
with :func:`tempfile.mkdtemp` (a new name, readable by its user only), which
is removed:

- by its owner's ``close()``, or when its owner is garbage collected;
- when the process exits normally, Ctrl-C included (``atexit``);
- on SIGTERM: while such a folder exists, a SIGTERM handler of the demo
  stands in for the one that was there before. In place of the default
  action it removes the folders, puts the default back and sends the
  signal again, so the process ends with SIGTERM's status (143 in a
  shell), as it would without the demo. In place of a Python handler it
  calls that handler, which decides: when it ends the process (``sys.exit``,
  an exception), the folders go at exit; when it returns, the process and
  its folders go on. Where SIGTERM is ignored, or the first folder is made
  outside the main thread, no handler is installed (the folders are still
  removed at exit). The previous handler is put back when the last folder
  is removed.

Nothing else is removed: only the folders made here, and only by the
process that made them (not by a forked child).

:func:`gradio_cache` points ``GRADIO_TEMP_DIR`` (Gradio's cache: the uploads
and the files it serves) into this process's folder;
:mod:`~pytorch_grad_cam.demo.app` calls it before it imports Gradio, which
reads the variable when it is imported and when a page is built and served.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

__all__ = ["ScratchFolder", "gradio_cache", "process_folder"]

log = logging.getLogger(__name__)

PROCESS_PREFIX = "grad-cam-demo-"

_LOCK = threading.RLock()  # re-entrant: a finalizer or the handler may run while it is held
_LIVE: dict[str, weakref.finalize] = {}  # the folders not yet removed, by path
_PREVIOUS: dict[str, Any] = {}  # "handler": the SIGTERM handler ours replaced, while ours is in
_PROCESS: list[ScratchFolder] = []  # this process's folder, once made
# "given": GRADIO_TEMP_DIR as it was before gradio_cache() changed it (None: not set)
_GRADIO_TEMP_DIR: dict[str, str | None] = {}


class ScratchFolder:
    """A new folder (``mkdtemp(prefix=prefix, dir=parent)``), removed by
    :meth:`close`, when this object is garbage collected, when the process
    exits and on SIGTERM."""

    def __init__(self, prefix: str, parent: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._finalizer = weakref.finalize(self, _remove, str(self.path), os.getpid())
        with _LOCK:
            _LIVE[str(self.path)] = self._finalizer
        _install_handler()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Remove the folder and everything in it."""
        self._finalizer()


def process_folder() -> Path:
    """This process's folder of the demo (``grad-cam-demo-*``), made on the
    first call in ``GRADIO_TEMP_DIR`` when that is set (made if missing,
    as Gradio would, and never removed), else in the temporary folder.
    OSError naming the place when the folder cannot be made there."""
    with _LOCK:
        if not _PROCESS or _PROCESS[0].closed:
            parent = _GRADIO_TEMP_DIR.setdefault("given", os.environ.get("GRADIO_TEMP_DIR") or None)
            try:
                if parent:
                    os.makedirs(parent, exist_ok=True)
                _PROCESS[:] = [ScratchFolder(PROCESS_PREFIX, parent)]
            except OSError as error:
                where = (f"GRADIO_TEMP_DIR={parent!r}" if parent
                         else f"the temporary folder {tempfile.gettempdir()!r}")
                reason = ("it is not a folder" if isinstance(error, FileExistsError)
                          else error.strerror or str(error))
                raise OSError(f"cannot make the demo's folder in {where}: {reason}") from error
        return _PROCESS[0].path


def gradio_cache() -> Path:
    """Point ``GRADIO_TEMP_DIR`` at ``gradio`` in :func:`process_folder`;
    that path (the same on every call while the folder exists)."""
    with _LOCK:
        path = process_folder() / "gradio"
        path.mkdir(exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(path)
        return path


def _remove(path: str, owner_pid: int) -> None:
    try:
        if os.getpid() == owner_pid:  # a forked child leaves its parent's folders alone
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove the demo's temporary folder %s: %s", path, error)
    finally:
        with _LOCK:
            _LIVE.pop(path, None)
            if not _LIVE:
                _restore_handler()


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install_handler() -> None:
    if not _on_main_thread():  # signal.signal works on the main thread only
        return
    with _LOCK:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or current is None or current == signal.SIG_IGN:
            return  # ours already, or set outside Python (cannot be put back), or ignored
        _PREVIOUS["handler"] = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_handler() -> None:
    if _on_main_thread() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, _PREVIOUS.pop("handler"))


def _on_sigterm(signum: int, frame: Any) -> None:
    """In place of a Python handler: call it (it decides whether the
    process ends; if it does, the folders go at exit). In place of the
    default action: remove the folders, put the default back and end the
    process with the signal, as without the demo."""
    previous = _PREVIOUS.get("handler", signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM meanwhile: the one re-sent below
    try:
        for finalizer in list(_LIVE.values()):
            finalizer()
    finally:
        _PREVIOUS.pop("handler", None)
        signal.signal(signum, previous)
    os.kill(os.getpid(), signum)
