"""``vit``: class activation maps of a Vision Transformer.

    grad-cam vit --image-path examples/chelsea.jpg --method gradcam
    python vit_example.py --image-path examples/chelsea.jpg --method gradcam

explains torchvision's ``vit_b_16`` (or ``--model deit_tiny_patch16_224``
and other timm ViTs) at the input of the last block's self-attention,
``encoder.layers[-1].ln_1`` (timm: ``blocks[-1].norm1``), turning its
tokens into a map with a reshape transform derived from the model's patch
grid (:mod:`pytorch_grad_cam.layers`). It shares its options and outputs
with the image command, without the guided backpropagation.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torchvision

from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.cli.models import (
    MEAN,
    STD,
    LoadedModel,
    WeightsUnavailable,
    load_checkpoint,
    online,
    torchvision_input_size,
    torchvision_pretrained,
)
from pytorch_grad_cam.cli.parser import HELP_WIDTH, Parser, add_common_arguments

__all__ = ["DEFAULT_VIT", "PROG", "SUMMARY", "build_parser", "load_vit", "main"]

#: the program name of the root script
PROG = "vit_example.py"
SUMMARY = "explains a Vision Transformer"
DEFAULT_VIT = "vit_b_16"
HF_URL = "https://huggingface.co"

DESCRIPTION = (
    "Explain a Vision Transformer's prediction with class activation maps. Prints the top-5 "
    "predictions of every image and writes <image>_<method>_cam.jpg (the map over the photo), "
    "with several methods also <image>_methods.jpg.")

EPILOG = """\
Which layer to explain. A ViT classifies from its class token only: after the
last block, the final LayerNorm and the head read nothing but that token. So
the gradient of the class score with respect to the last block's OUTPUT is
zero at every patch token, and a map made from it is empty. Inside the last
block the class token attends to all patch tokens, so the output of the
block's first LayerNorm, which feeds that attention, has a gradient at every
patch: encoder.layers[-1].ln_1 (torchvision), blocks[-1].norm1 (timm), the
default. Its tokens (class token first, then the patches: a 14 x 14 grid at
224 x 224 with 16 x 16 patches) become a channels x 14 x 14 map: the class
token is dropped and the grid is read off the model.

Weights. Pretrained weights are downloaded on first use (torchvision: into the
torch hub cache, timm: into the Hugging Face cache). Offline, put the file
there, or pass a checkpoint with --weights FILE. --random-weights runs with
random weights, for smoke tests only: its maps mean nothing.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH, max_help_position=30)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options of the image command, a ViT as the default model, and
    ``--random-weights``."""
    parser = Parser(prog=prog, formatter_class=_Formatter,
                    description=textwrap.fill(DESCRIPTION, HELP_WIDTH), epilog=EPILOG)
    add_common_arguments(
        parser, DEFAULT_VIT,
        "a torchvision ViT (vit_b_16, vit_b_32, vit_l_16, ...) or, with timm installed, a "
        f"timm ViT such as deit_tiny_patch16_224 (default: {DEFAULT_VIT})")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights instead of pretrained ones: for smoke tests "
                             "only, the maps are meaningless")
    return parser


@contextmanager
def _hub_offline() -> Iterator[None]:
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


def _no_weights(name: str, where: str) -> UsageError:
    return UsageError(f"--model {name}: {where}; put the weights there on a machine with "
                      "network (or copy them), pass a checkpoint with --weights FILE, or "
                      "use --random-weights for a smoke test")


def _randomise(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """--random-weights: warn, and give a zero-initialised head (torchvision's
    ViT starts with one, which would make every score and map zero) small
    random weights, reproducibly."""
    warnings.warn(f"{name} has RANDOM weights (--random-weights): the maps are meaningless, "
                  "use this only to check that everything runs", UserWarning, stacklevel=2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not bool(module.weight.any()):
                module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
    return model


def load_torchvision_vit(args: argparse.Namespace, name: str) -> LoadedModel:
    """A torchvision ViT: from ``--weights``, random, or pretrained."""
    if args.weights:
        architecture = torchvision.models.get_model(name, weights=None)
        model = load_checkpoint(args.weights, architecture, name)
        return LoadedModel(model.eval(), name, torchvision_input_size(name))
    if args.random_weights:
        model = _randomise(torchvision.models.get_model(name, weights=None), name)
        return LoadedModel(model.eval(), f"{name} (random weights)",
                           getattr(model, "image_size", torchvision_input_size(name)))
    try:
        return torchvision_pretrained(name)
    except WeightsUnavailable as error:
        raise _no_weights(name, str(error)) from None


def _create_timm(timm: Any, name: str, offline: bool) -> torch.nn.Module:
    """A pretrained timm model; UsageError when its weights cannot be had."""
    try:
        model: torch.nn.Module = timm.create_model(name, pretrained=True)
    except Exception as error:  # noqa: BLE001  (any failed download or cache miss)
        if offline:
            reason = f"{HF_URL} is unreachable"
        else:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reason = f"the download failed: {type(error).__name__} {first[:100]}".strip()
        raise _no_weights(name, f"its pretrained weights are not in the Hugging Face cache "
                                f"and {reason}") from None
    return model


def load_timm_vit(args: argparse.Namespace, name: str) -> LoadedModel:
    """A timm ViT: from ``--weights``, random, or pretrained."""
    try:
        import timm
    except ImportError:
        raise UsageError(f"--model {name}: not a torchvision ViT, and timm is not installed "
                         "(pip install '.[vit]')") from None
    if not timm.is_model(name):
        vits = [n for n in timm.list_models() if "vit" in n or "deit" in n] + \
            [n for n in torchvision.models.list_models(module=torchvision.models)
             if n.startswith("vit_")]
        close = difflib.get_close_matches(name, vits, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {name!r}: neither a torchvision nor a timm model{hint}")
    if args.weights or args.random_weights:
        model = timm.create_model(name, pretrained=False)
    elif not online(HF_URL):
        with _hub_offline():
            model = _create_timm(timm, name, offline=True)
    else:
        model = _create_timm(timm, name, offline=False)
    if args.weights:
        model = load_checkpoint(args.weights, model, name)
    elif args.random_weights:
        model = _randomise(model, name)
        name = f"{name} (random weights)"
    config = getattr(model, "pretrained_cfg", None) or {}
    size = int(config.get("input_size", (3, 224, 224))[-1])
    return LoadedModel(model.eval(), name, size, mean=tuple(config.get("mean", MEAN)),
                       std=tuple(config.get("std", STD)))


def load_vit(args: argparse.Namespace) -> LoadedModel:
    """``--model``, ``--weights`` / ``--random-weights`` -> the ViT."""
    if args.weights and args.random_weights:
        raise UsageError("--weights and --random-weights exclude each other")
    name = args.model.strip()
    if name.lower() in torchvision.models.list_models(module=torchvision.models):
        return load_torchvision_vit(args, name.lower())
    return load_timm_vit(args, name)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the ``vit`` command; the exit status (0, 2 for a usage error)."""
    return run_command(argv, build_parser(prog), load=load_vit, guided_backprop=False)
