#!/usr/bin/env python
"""Class activation maps of a Vision Transformer, from the command line.

    python vit_example.py --image-path examples/chelsea.jpg --method gradcam

explains torchvision's ``vit_b_16`` (or ``--model deit_tiny_patch16_224``
and other timm ViTs) at the input of the last block's self-attention,
``encoder.layers[-1].ln_1`` (timm: ``blocks[-1].norm1``), turning its
tokens into a map with a reshape transform derived from the model's patch
grid. It shares its options and outputs with cam.py.
"""
import argparse
import difflib
import os
import sys
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cam as cli  # noqa: E402  (cam.py, next to this file)

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
    def __init__(self, prog):
        super().__init__(prog, width=cli.HELP_WIDTH, max_help_position=30)


def build_parser() -> argparse.ArgumentParser:
    parser = cli._Parser(prog="vit_example.py", formatter_class=_Formatter,
                         description=textwrap.fill(DESCRIPTION, cli.HELP_WIDTH), epilog=EPILOG)
    cli.add_common_arguments(
        parser, DEFAULT_VIT,
        "a torchvision ViT (vit_b_16, vit_b_32, vit_l_16, ...) or, with timm installed, a "
        f"timm ViT such as deit_tiny_patch16_224 (default: {DEFAULT_VIT})")
    parser.add_argument("--random-weights", action="store_true",
                        help="random weights instead of pretrained ones: for smoke tests "
                             "only, the maps are meaningless")
    return parser


@contextmanager
def _hub_offline():
    """Make the Hugging Face hub use its cache only (no retries on a dead network)."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    old_constant = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_constant


def _no_weights(name: str, where: str) -> cli.UsageError:
    return cli.UsageError(f"--model {name}: {where}; put the weights there on a machine with "
                          "network (or copy them), pass a checkpoint with --weights FILE, or "
                          "use --random-weights for a smoke test")


def _randomise(model, name: str):
    """--random-weights: warn, and give a zero-initialised head (torchvision's
    ViT starts with one, which would make every score and map zero) small
    random weights, reproducibly."""
    warnings.warn(f"{name} has RANDOM weights (--random-weights): the maps are meaningless, "
                  "use this only to check that everything runs", UserWarning)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and not bool(module.weight.any()):
                module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
    return model


def load_torchvision_vit(args, name: str) -> cli.LoadedModel:
    if args.weights:
        architecture = torchvision.models.get_model(name, weights=None)
        model = cli.load_checkpoint(args.weights, architecture, name)
        return cli.LoadedModel(model.eval(), name, cli._input_size(name))
    if args.random_weights:
        model = _randomise(torchvision.models.get_model(name, weights=None), name)
        return cli.LoadedModel(model.eval(), f"{name} (random weights)",
                               getattr(model, "image_size", cli._input_size(name)))
    try:
        return cli.torchvision_pretrained(name)
    except cli.WeightsUnavailable as error:
        raise _no_weights(name, str(error)) from None


def load_timm_vit(args, name: str) -> cli.LoadedModel:
    try:
        import timm
    except ImportError:
        raise cli.UsageError(f"--model {name}: not a torchvision ViT, and timm is not installed "
                             "(pip install '.[vit]')") from None
    if not timm.is_model(name):
        vits = [n for n in timm.list_models() if "vit" in n or "deit" in n] + \
            [n for n in torchvision.models.list_models(module=torchvision.models)
             if n.startswith("vit_")]
        close = difflib.get_close_matches(name, vits, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise cli.UsageError(f"--model {name!r}: neither a torchvision nor a timm model{hint}")
    if args.weights or args.random_weights:
        model = timm.create_model(name, pretrained=False)
    elif not cli._online(HF_URL):
        with _hub_offline():
            model = _create_timm(timm, name, offline=True)
    else:
        model = _create_timm(timm, name, offline=False)
    if args.weights:
        model = cli.load_checkpoint(args.weights, model, name)
    elif args.random_weights:
        model = _randomise(model, name)
        name = f"{name} (random weights)"
    config = getattr(model, "pretrained_cfg", None) or {}
    size = int(config.get("input_size", (3, 224, 224))[-1])
    return cli.LoadedModel(model.eval(), name, size, mean=tuple(config.get("mean", cli.MEAN)),
                           std=tuple(config.get("std", cli.STD)))


def _create_timm(timm, name: str, offline: bool):
    """A pretrained timm model; UsageError when its weights cannot be had."""
    try:
        return timm.create_model(name, pretrained=True)
    except Exception as error:  # any failed download or cache miss
        if offline:
            reason = f"{HF_URL} is unreachable"
        else:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reason = f"the download failed: {type(error).__name__} {first[:100]}".strip()
        raise _no_weights(name, f"its pretrained weights are not in the Hugging Face cache "
                                f"and {reason}") from None


def load_vit(args) -> cli.LoadedModel:
    """``--model``, ``--weights`` / ``--random-weights`` -> the ViT."""
    if args.weights and args.random_weights:
        raise cli.UsageError("--weights and --random-weights exclude each other")
    name = args.model.strip()
    if name.lower() in torchvision.models.list_models(module=torchvision.models):
        return load_torchvision_vit(args, name.lower())
    return load_timm_vit(args, name)


def main(argv=None) -> int:
    return cli.main(argv, parser=build_parser(), load=load_vit, guided_backprop=False)


if __name__ == "__main__":
    sys.exit(main())
