"""``vit``: class activation maps of a Vision Transformer.

    grad-cam vit --image-path examples/chelsea.jpg --method gradcam
    python vit_example.py --image-path examples/chelsea.jpg --method gradcam

explains torchvision's ``vit_b_16`` (or ``--model deit_tiny_patch16_224``
and other timm ViTs) at the input of the last block's self-attention,
``encoder.layers[-1].ln_1`` (timm: ``blocks[-1].norm1``), turning its
tokens into a map with a reshape transform derived from the model's patch
grid (:mod:`pytorch_grad_cam.layers`). It shares its options and outputs
with the image command, without the guided backpropagation; its file names
always carry the model's name (``coffee_vit_b_16_gradcam_cam.jpg``), so that
it never writes the image command's files.
"""
from __future__ import annotations

import argparse
import difflib
import textwrap
from collections.abc import Sequence

import torchvision

from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.errors import UsageError
from pytorch_grad_cam.cli.models import (
    HF_PREFIX,
    TIMM_PREFIX,
    LoadedModel,
    WeightsUnavailable,
    load_model,
    load_timm,
    load_torchvision,
)
from pytorch_grad_cam.cli.parser import HELP_WIDTH, Parser, add_common_arguments

__all__ = ["DEFAULT_VIT", "PROG", "SUMMARY", "build_parser", "load_vit", "main"]

#: the program name of the root script
PROG = "vit_example.py"
SUMMARY = "explains a Vision Transformer"
DEFAULT_VIT = "vit_b_16"

DESCRIPTION = (
    "Explain a Vision Transformer's prediction with class activation maps. Prints the top-5 "
    "predictions of every image and writes <image>_<model>_<method>_cam.jpg (the map over the "
    "photo; the model's name keeps these files apart from the image command's), with several "
    "methods also <image>_<model>_methods.jpg.")

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
there, or pass a checkpoint with --weights FILE (a whole pickled model only
with --trust-checkpoint). --random-weights runs with random weights, for
smoke tests only: its maps mean nothing.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH, max_help_position=30)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options of the image command, with a ViT as the default model."""
    parser = Parser(prog=prog, formatter_class=_Formatter,
                    description=textwrap.fill(DESCRIPTION, HELP_WIDTH), epilog=EPILOG)
    add_common_arguments(
        parser, DEFAULT_VIT,
        "a torchvision ViT (vit_b_16, vit_b_32, vit_l_16, ...), with timm installed a timm ViT "
        "such as deit_tiny_patch16_224 (or timm:deit_tiny_patch16_224), or a Hugging Face "
        f"one as hf:DIR_OR_ID (default: {DEFAULT_VIT})")
    return parser


def load_torchvision_vit(args: argparse.Namespace, name: str) -> LoadedModel:
    """A torchvision ViT: from ``--weights``, random, or pretrained."""
    try:
        return load_torchvision(name, args.weights, args.num_classes, args.random_weights,
                                trust_checkpoint=args.trust_checkpoint)
    except WeightsUnavailable as error:
        raise UsageError(f"--model {name}: {error}; put the weights there on a machine with "
                         "network (or copy them), pass a checkpoint with --weights FILE, or "
                         "use --random-weights for a smoke test") from None


def load_timm_vit(args: argparse.Namespace, name: str) -> LoadedModel:
    """A timm ViT (``deit_tiny_patch16_224`` or ``timm:deit_tiny_patch16_224``):
    from ``--weights``, random, or pretrained."""
    spec = name
    if name.lower().startswith(TIMM_PREFIX):
        name = name[len(TIMM_PREFIX):].strip()
    try:
        import timm
    except ImportError:
        raise UsageError(f"--model {spec}: not a torchvision ViT, and timm is not installed "
                         "(pip install '.[vit]')") from None
    if not timm.is_model(name):
        vits = [n for n in timm.list_models() if "vit" in n or "deit" in n] + \
            [n for n in torchvision.models.list_models(module=torchvision.models)
             if n.startswith("vit_")]
        close = difflib.get_close_matches(name, vits, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {spec!r}: neither a torchvision nor a timm model{hint}")
    return load_timm(name, args.weights, args.num_classes, args.random_weights, spec=spec,
                     trust_checkpoint=args.trust_checkpoint)


def load_vit(args: argparse.Namespace) -> LoadedModel:
    """``--model``, ``--weights`` / ``--random-weights`` -> the ViT."""
    if args.weights and args.random_weights:
        raise UsageError("--weights and --random-weights exclude each other")
    name = args.model.strip()
    if name.lower().startswith(HF_PREFIX):
        return load_model(name, args.weights, num_classes=args.num_classes,
                          random_weights=args.random_weights,
                          trust_checkpoint=args.trust_checkpoint)
    if name.lower() in torchvision.models.list_models(module=torchvision.models):
        return load_torchvision_vit(args, name.lower())
    return load_timm_vit(args, name)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the ``vit`` command; the exit status (0, 2 for a usage error)."""
    return run_command(argv, build_parser(prog), load=load_vit, guided_backprop=False,
                       default_model=None)
