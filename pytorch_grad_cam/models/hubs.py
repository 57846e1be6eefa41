"""timm and Hugging Face models (``timm:<name>``, ``hf:<folder or hub id>``).

- :func:`load_timm`: ``timm.create_model(name, pretrained=True)``, the
  weights from the Hugging Face cache or downloaded (only when the hub can
  be reached: :func:`pytorch_grad_cam.models.network.online`); input size
  and normalisation from the model's ``pretrained_cfg``;
- :func:`load_hf`: a transformers image classifier
  (``AutoModelForImageClassification.from_pretrained``) from a folder
  written by ``save_pretrained`` or from the hub; input size and
  normalisation from its ``preprocessor_config.json`` when there is one,
  else 224 x 224 and the ImageNet statistics; class names from its
  ``id2label``.

timm and transformers are optional: each is imported when its loader runs,
and a missing one is a :class:`~pytorch_grad_cam.models.weights.LoadError`
that says what to install.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pytorch_grad_cam.messages import first_line
from pytorch_grad_cam.models import network
from pytorch_grad_cam.models.network import HF_URL, hf_cache, hub_offline, socket_timeout
from pytorch_grad_cam.models.specs import HF_PREFIX, TIMM_PREFIX
from pytorch_grad_cam.models.weights import (
    MEAN,
    PYTHON_NAMES,
    STD,
    ArgumentNames,
    LoadedModel,
    LoadError,
    classes_to_build,
    fill,
    load_checkpoint,
    randomise,
    read_checkpoint,
    with_classes,
)

__all__ = ["HF_PREFIX", "TIMM_PREFIX", "load_hf", "load_timm", "looks_like_path"]

# -------------------------------------------------------------------- timm
def _no_weights(spec: str, where: str, names: ArgumentNames) -> LoadError:
    return LoadError("model", f"{where}; put the weights there on a machine with network (or "
                              f"copy them), pass a checkpoint with "
                              f"{names.taking('weights', 'FILE')}, or use "
                              f"{names.flag('random_weights')} for a smoke test",
                     names.given("model", spec))


def _create_timm(timm: Any, name: str, spec: str, offline: bool,
                 names: ArgumentNames) -> torch.nn.Module:
    """A pretrained timm model; LoadError when its weights cannot be had."""
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
            first = first_line(error, with_type=False)
            reason = f"the download failed: {type(error).__name__} {first[:100]}".strip()
        raise _no_weights(spec, f"its pretrained weights are not in the Hugging Face cache "
                                f"({hf_cache()}) and {reason}", names) from None
    return model


def _timm_config(timm: Any, model: torch.nn.Module) -> tuple[int, tuple[float, ...],
                                                              tuple[float, ...]]:
    """Input side, mean and std of a timm model (its ``pretrained_cfg``)."""
    try:
        config = timm.data.resolve_model_data_config(model)
    except Exception:  # noqa: BLE001  (an older timm: the raw pretrained_cfg)
        config = dict(getattr(model, "pretrained_cfg", None) or {})
    size = int(tuple(config.get("input_size", (3, 224, 224)))[-1])
    return (size, tuple(float(v) for v in config.get("mean", MEAN)),
            tuple(float(v) for v in config.get("std", STD)))


def load_timm(name: str, weights: str | None = None, num_classes: int | None = None,
              random_weights: bool = False, spec: str | None = None, *,
              trust_checkpoint: bool = False, names: ArgumentNames = PYTHON_NAMES
              ) -> LoadedModel:
    """A timm model: from a checkpoint (a whole pickled model only with
    ``trust_checkpoint``), random, or pretrained from the Hugging Face cache
    (downloaded when the network is reachable). ``spec``: how the model was
    named (default ``timm:<name>``)."""
    spec = spec or TIMM_PREFIX + name
    given = names.given("model", spec)
    try:  # optional: the timm extra
        import timm
        import timm.data
    except ImportError:
        raise LoadError("model", "timm is not installed (pip install timm)", given) from None
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LoadError("model", f"timm has no model of that name{hint}",
                        names.given("model", spec, quote=True))
    label = spec
    if weights:
        checkpoint = read_checkpoint(weights, trust_checkpoint=trust_checkpoint, names=names)
        if isinstance(checkpoint, torch.nn.Module):
            model = checkpoint
        else:
            probe = timm.create_model(name, pretrained=False)
            classes = classes_to_build(checkpoint, probe, num_classes, weights, names)
            options: dict[str, Any] = {} if classes is None else {"num_classes": classes}
            model = fill(checkpoint, timm.create_model(name, pretrained=False, **options), spec,
                         weights, names)
            label = with_classes(spec, classes)
    elif random_weights:
        options = {} if num_classes is None else {"num_classes": num_classes}
        model = randomise(timm.create_model(name, pretrained=False, **options), spec, names)
        label = with_classes(f"{spec} (random weights)", num_classes)
    elif num_classes is not None:
        raise LoadError("num_classes", f"the pretrained weights of {spec} have their own classes; "
                                       "give the fine-tuned checkpoint with "
                                       f"{names.taking('weights', 'FILE')}",
                        names.given("num_classes", num_classes))
    else:
        model = _create_timm(timm, name, spec, not network.online(HF_URL), names)
    size, mean, std = _timm_config(timm, model)
    return LoadedModel(model.eval(), label, size, mean, std)


# --------------------------------------------------------- Hugging Face
def looks_like_path(text: str) -> bool:
    """A local path rather than a hub id (``org/name`` or ``name``)."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.rstrip("/").count("/") > 1


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No 'Loading weights' progress bars while a model is read."""
    try:  # optional: the hf extra
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
        try:  # optional: transformers brings it
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
        found = [str(labels[i]) for i in range(len(labels))]
    except KeyError:
        return None
    if all(re.fullmatch(r"LABEL_\d+", name) for name in found):
        return None
    return found


def _read_hf(transformers: Any, where: str, local: bool, offline: bool,
             num_classes: int | None, architecture_only: bool) -> torch.nn.Module:
    """The model of a folder or hub id: pretrained, or (``architecture_only``)
    built from its config alone."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_transformers())
        if offline:
            stack.enter_context(hub_offline())
        elif not local:
            stack.enter_context(socket_timeout(30))
        auto = transformers.AutoModelForImageClassification
        if architecture_only:
            config = transformers.AutoConfig.from_pretrained(
                where, local_files_only=offline, **({"num_labels": num_classes}
                                                    if num_classes else {}))
            model: torch.nn.Module = auto.from_config(config)
            return model
        options: dict[str, Any] = {}
        if num_classes is not None:
            options.update(num_labels=num_classes, ignore_mismatched_sizes=True)
        model = auto.from_pretrained(where, local_files_only=offline, **options)
        return model


def load_hf(source: str, weights: str | None = None, num_classes: int | None = None,
            random_weights: bool = False, spec: str | None = None, *,
            trust_checkpoint: bool = False, names: ArgumentNames = PYTHON_NAMES) -> LoadedModel:
    """A Hugging Face transformers image classifier from a local folder
    (``save_pretrained``) or a hub id (the cache, or downloaded); with
    ``weights``, filled from that checkpoint (a whole pickled model only
    with ``trust_checkpoint``). ``spec``: how the model was named (default
    ``hf:<source>``)."""
    spec = spec or HF_PREFIX + source
    given = names.given("model", spec)
    try:  # optional: the hf extra
        import transformers
    except ImportError:
        raise LoadError("model", "Hugging Face models need the transformers package "
                                 "(pip install transformers)", given) from None
    if not source:
        raise LoadError("model", f"give a folder or a hub id after {HF_PREFIX}", given)
    folder = Path(source).expanduser()
    local = folder.is_dir()
    if not local and (looks_like_path(source) or folder.exists()):
        raise LoadError("model", "no such folder", given)
    where = str(folder) if local else source
    offline = not local and not network.online(HF_URL)
    try:
        model = _read_hf(transformers, where, local, offline, num_classes,
                         architecture_only=bool(random_weights or weights))
    except Exception as error:  # noqa: BLE001  (a cache miss, a failed download, an odd folder)
        if local:
            reason = ("cannot load an image classifier from that folder "
                      f"({first_line(error, with_type=False)[:160]})")
        elif offline:
            reason = (f"not in the Hugging Face cache ({hf_cache()}) and {HF_URL} is "
                      "unreachable; download it on a machine with network (huggingface-cli "
                      "download ID) and copy the cache, or pass a folder written by "
                      f"save_pretrained as {HF_PREFIX}DIR")
        else:
            reason = f"cannot load it ({first_line(error, with_type=False)[:160]})"
        raise LoadError("model", reason, given) from None
    label = spec
    if weights:
        model = load_checkpoint(weights, model, spec, trust_checkpoint=trust_checkpoint,
                                names=names)
    elif random_weights:
        model = randomise(model, spec, names)
        label = f"{spec} (random weights)"
    size, mean, std = _hf_input(_preprocessor_config(where, local, offline), model)
    return LoadedModel(model.eval(), label, size, mean, std, class_names=_hf_class_names(model))
