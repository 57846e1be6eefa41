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
it never writes the image command's files. Its options are
:func:`pytorch_grad_cam.cli.parser.build_vit_parser`'s.

No pretrained Vision Transformer ships with grad-cam: offline and without
the weights in the cache, the command stops with one line that names the
file to download and the folder to put it in, the options that run without
it (``--weights FILE``, ``--random-weights``), and the image command, with
the same images, that explains the bundled pretrained CNN offline
(:func:`bundled_cnn_command`). It does not fall back to another model as the
image command does: a CNN's map is not an explanation of a ViT, and random
weights give pictures that look like results and mean nothing.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import shlex
from collections.abc import Sequence
from pathlib import Path

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.models import load_model, load_timm, load_torchvision
from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.parser import DEFAULT_VIT, VIT_PROG, VIT_SUMMARY, build_vit_parser
from pytorch_grad_cam.models.loading import (
    BUNDLED_MODEL,
    HF_PREFIX,
    TIMM_PREFIX,
    LoadedModel,
    WeightsUnavailable,
    torchvision_models,
)

__all__ = ["DEFAULT_VIT", "PROG", "SUMMARY", "bundled_cnn_command", "build_parser", "load_vit",
           "main"]

PROG = VIT_PROG
SUMMARY = VIT_SUMMARY
build_parser = build_vit_parser


def bundled_cnn_command(args: argparse.Namespace, prog: str) -> str:
    """The image command that explains the same images (and classes) with
    the bundled pretrained CNN, offline: ``python cam.py ... --model
    efficientnet_lite0`` for ``vit_example.py``, ``grad-cam ...`` for
    ``grad-cam vit``."""
    words = [prog[:-len(" vit")] if prog.endswith(" vit") else "python cam.py"]
    if args.image_path:
        words += ["--image-path", *map(shlex.quote, args.image_path)]
    if args.method != ["gradcam"]:
        words += ["--method", *map(shlex.quote, args.method)]
    if getattr(args, "target_category", None):
        words += ["--target-category", *map(shlex.quote, args.target_category)]
    if getattr(args, "top_k", None):
        words += ["--top-k", str(args.top_k)]
    return " ".join([*words, "--model", BUNDLED_MODEL])


def load_torchvision_vit(args: argparse.Namespace, name: str, prog: str = PROG) -> LoadedModel:
    """A torchvision ViT: from ``--weights``, random, or pretrained."""
    try:
        return load_torchvision(name, args.weights, args.num_classes, args.random_weights,
                                trust_checkpoint=args.trust_checkpoint)
    except WeightsUnavailable as error:
        get = "put its weights file into the torch hub cache" if error.file is None else \
            f"download {error.url} into {Path(error.file).parent}"
        raise UsageError(f"--model {name}: {error}, and no pretrained Vision Transformer ships "
                         f"with grad-cam; to explain with {name}, {get} and run this command "
                         f"again, or pass a {name} checkpoint with --weights FILE "
                         "(--random-weights runs a smoke test whose maps mean nothing); to "
                         "explain the image offline with the bundled pretrained CNN instead, "
                         f"run: {bundled_cnn_command(args, prog)}") from None


def load_timm_vit(args: argparse.Namespace, name: str) -> LoadedModel:
    """A timm ViT (``deit_tiny_patch16_224`` or ``timm:deit_tiny_patch16_224``):
    from ``--weights``, random, or pretrained."""
    spec = name
    if name.lower().startswith(TIMM_PREFIX):
        name = name[len(TIMM_PREFIX):].strip()
    try:  # optional: the vit extra
        import timm
    except ImportError:
        raise UsageError(f"--model {spec}: not a torchvision ViT, and timm is not installed "
                         "(pip install '.[vit]')") from None
    if not timm.is_model(name):
        vits = [n for n in timm.list_models() if "vit" in n or "deit" in n] + \
            [n for n in torchvision_models() if n.startswith("vit_")]
        close = difflib.get_close_matches(name, vits, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"--model {spec!r}: neither a torchvision nor a timm model{hint}")
    return load_timm(name, args.weights, args.num_classes, args.random_weights, spec=spec,
                     trust_checkpoint=args.trust_checkpoint)


def load_vit(args: argparse.Namespace, prog: str = PROG) -> LoadedModel:
    """``--model``, ``--weights`` / ``--random-weights`` -> the ViT (``prog``:
    the command, which its messages name)."""
    if args.weights and args.random_weights:
        raise UsageError("--weights and --random-weights exclude each other")
    name = args.model.strip()
    if name.lower().startswith(HF_PREFIX):
        return load_model(name, args.weights, num_classes=args.num_classes,
                          random_weights=args.random_weights,
                          trust_checkpoint=args.trust_checkpoint)
    if name.lower() in torchvision_models():
        return load_torchvision_vit(args, name.lower(), prog)
    return load_timm_vit(args, name)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the ``vit`` command; the exit status (0, 2 for a usage error)."""
    return run_command(argv, build_parser(prog), load=functools.partial(load_vit, prog=prog),
                       guided_backprop=False, default_model=None)
