"""Reading a checkpoint file without running the code it may hold.

A file written by ``torch.save`` is a pickle. A state_dict pickles only
tensors, numbers, strings and containers, which
``torch.load(weights_only=True)`` reads without importing or calling
anything. A whole model (``torch.save(model)``), an ``argparse.Namespace``
of training options or any other Python object is pickled as "import this,
call that" instructions: unpickling them can run arbitrary code, so
:func:`read_checkpoint` refuses such a file (:class:`UntrustedCheckpointError`)
unless the caller says it trusts it (``trust_checkpoint=True``).

:func:`read_checkpoint` also refuses, before reading anything, a path that
is not a regular file (a folder, a named pipe, a device such as
``/dev/zero``), so that nothing waits on a pipe or reads forever.
"""
from __future__ import annotations

import os
import pickle
import re
import stat
import warnings
from typing import IO

import torch

from pytorch_grad_cam.messages import first_line

__all__ = [
    "STATE_DICT_KEYS",
    "CheckpointError",
    "UntrustedCheckpointError",
    "checkpoint_classes",
    "classifier_key",
    "read_checkpoint",
]

#: the keys under which training scripts wrap a state_dict, in the order they are tried
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
#: how many of the pickled objects a message names
_NAMED = 3


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint that holds pickled Python objects (a whole model, a
    Namespace, ...), refused because unpickling them can run arbitrary code.
    ``names``: the objects' import paths, as far as they can be read without
    unpickling."""

    def __init__(self, path: str, names: list[str]) -> None:
        self.names = names
        super().__init__(path, self.explain("pass trust_checkpoint=True"))

    def explain(self, opt_in: str) -> str:
        """The reason, one line, ending with how to opt in (``opt_in``:
        what the caller's front-end calls it)."""
        shown = ", ".join(_printable(name) for name in self.names[:_NAMED])
        if len(self.names) > _NAMED:
            shown += f" and {len(self.names) - _NAMED} more"
        what = f" ({shown})" if shown else ""
        return (f"holds pickled Python objects{what}, and loading them can run arbitrary code; "
                f"refused unless you trust the file: then {opt_in}")


def _printable(text: str, limit: int = 80) -> str:
    """A name read from a file, safe to print on one line."""
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _open_regular(path: str) -> IO[bytes]:
    """``path`` opened for reading, after checking (links resolved) that it
    is a regular file; checked again on the open file, so that nothing
    swapped in between is read. A named pipe is opened without waiting for
    a writer."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise CheckpointError(path, f"is {_kind(mode)}, not a regular file")
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as error:
        reason = error.strerror or first_line(error, with_type=False)
        raise CheckpointError(path, f"cannot open it ({reason[:1].lower()}{reason[1:]})") from None
    file = os.fdopen(descriptor, "rb")
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        file.close()
        raise CheckpointError(path, f"is {_kind(mode)}, not a regular file")
    return file


def _refused_globals(file: IO[bytes], error: BaseException) -> list[str]:
    """The pickled objects that made the safe loader refuse the file, read
    without unpickling (torch's static scan of a ``torch.save`` archive,
    else the object its error names); [] when it refused it for another
    reason (a corrupt file, not a checkpoint)."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is not None:
        try:
            file.seek(0)
            names = sorted(scan(file))
        except Exception:  # noqa: BLE001  (not a torch.save archive: torch's message below)
            names = []
        if names:
            return names
    if not isinstance(error, pickle.UnpicklingError):
        return []
    # torch >= 2.4 says "Unsupported global: GLOBAL name", older versions "Unsupported class name"
    found = re.search(r"Unsupported (?:global: GLOBAL|class) ([^\s]+)", str(error))
    return [found.group(1)] if found else []


def _why_unreadable(error: BaseException) -> str:
    """torch's reason for not reading a file, without its advice on
    weights_only: one printable line."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = lines[0].split(". ", 1)[0]  # its first sentence: torch goes on with advice
    return _printable(first, limit=200)


def _load(path: str, trust_checkpoint: bool) -> object:
    """Whatever the file holds: read with ``weights_only=True``; unpickled
    in full only with ``trust_checkpoint``."""
    with _open_regular(path) as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise CheckpointError(path, "cannot load it (the file is empty)")
        try:
            with warnings.catch_warnings():  # its note on a pickle protocol it may not read
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001  (classified and reported below)
            if not trust_checkpoint:
                refused = _refused_globals(file, error)
                if refused:
                    raise UntrustedCheckpointError(path, refused) from None
                raise CheckpointError(path, f"cannot load it: not a PyTorch checkpoint, or a "
                                            f"damaged one ({_why_unreadable(error)})") from None
        try:  # trusted by the caller: a whole pickled model, or any other object
            file.seek(0)
            return torch.load(file, map_location="cpu", weights_only=False)
        except Exception as error:  # noqa: BLE001  (whatever is wrong with the file is reported)
            raise CheckpointError(path, f"cannot load it ({_why_unreadable(error)})") from None


def read_checkpoint(path: str | os.PathLike[str], *,
                    trust_checkpoint: bool = False) -> torch.nn.Module | dict[str, torch.Tensor]:
    """The state_dict a checkpoint file holds (taken from under
    ``state_dict`` / ``model_state_dict`` / ``model`` when it is wrapped,
    DataParallel's ``module.`` prefix removed), or the whole model it holds
    (in eval mode; only with ``trust_checkpoint=True``).

    The file is read with ``torch.load(weights_only=True)``, which unpickles
    nothing but tensors, numbers, strings and containers. A file that holds
    other pickled objects is refused with :class:`UntrustedCheckpointError`
    (nothing of it is run) unless ``trust_checkpoint=True``: then it is
    unpickled in full, which runs whatever code it holds, so pass that only
    for files you trust.

    Raises:
        CheckpointError: the path is missing or not a regular file (a
            folder, a named pipe, a device), the file is not a checkpoint or
            damaged, or it holds neither a state_dict nor a model.
        UntrustedCheckpointError: it holds pickled Python objects and
            ``trust_checkpoint`` is False.
    """
    text = os.fspath(path)
    checkpoint = _load(text, trust_checkpoint)
    if isinstance(checkpoint, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), (dict, torch.nn.Module)):
                checkpoint = checkpoint[key]
                break
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.eval()
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(text, f"holds {type(checkpoint).__name__}, neither a state_dict "
                                    "nor a model")
    return {str(k).removeprefix("module."): v for k, v in checkpoint.items()}


def classifier_key(model: torch.nn.Module) -> str | None:
    """The state_dict key of the weight of the model's final classifier
    (``fc.weight``, ``classifier.1.weight``, ``heads.head.weight``, ...):
    timm's ``get_classifier()``, else the last ``Linear`` or ``Conv2d`` layer
    with as many outputs as the model has classes. None if there is none."""
    names = {id(module): name for name, module in model.named_modules()}
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        try:
            head = get_classifier()
        except Exception:  # noqa: BLE001  (a model whose method does something else)
            head = None
        if isinstance(head, torch.nn.Module) and id(head) in names \
                and isinstance(getattr(head, "weight", None), torch.Tensor):
            return f"{names[id(head)]}.weight"
    outputs = None
    for module in model.modules():  # the model's number of classes: its last layer's outputs
        if isinstance(module, torch.nn.Linear):
            outputs = module.out_features
        elif isinstance(module, torch.nn.Conv2d):
            outputs = module.out_channels
    found = None
    for name, module in model.named_modules():
        size = module.out_features if isinstance(module, torch.nn.Linear) else (
            module.out_channels if isinstance(module, torch.nn.Conv2d) else None)
        if size is not None and size == outputs and name:
            found = f"{name}.weight"
    return found


def checkpoint_classes(state: dict[str, torch.Tensor], key: str | None) -> int | None:
    """The number of classes of a state_dict: the rows of its classifier weight."""
    if key is None or key not in state or state[key].dim() < 1:
        return None
    return int(state[key].shape[0])
