"""``explain-dataset``'s options, and the checks of its arguments that need
no model, run before torch is imported.

:func:`check` is the command's ``check`` (see :mod:`pytorch_grad_cam.commands`):
it parses the arguments and runs :func:`check_arguments`, cheapest first:
the numbers (``--batch-size 0``), the method names (close matches offered),
the metric and sanity check names, that the input folder exists and can be read, that the
output folder can be written, and a ``--target-category`` given as an
ImageNet class name. A problem is one line, ``<prog>: error: ...``, exit
status 2, in a fraction of a second instead of after torch and the model
libraries have loaded. :func:`pytorch_grad_cam.datasets.cli.main` runs the
same checks again (it is also called directly) before it loads the model.
This module imports no torch (nor does the package module, whose names are
imported on first use).
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytorch_grad_cam.app.classes import IMAGENET_CLASSES, is_index, resolve_category
from pytorch_grad_cam.app.errors import UsageError, os_error_reason, run_check
from pytorch_grad_cam.app.folders import check_output_folder
from pytorch_grad_cam.app.methods import check_method_option
from pytorch_grad_cam.app.options import (
    TRUST_CHECKPOINT_HELP,
    Parser,
    formatter,
    non_negative_int,
    positive_int,
)
from pytorch_grad_cam.datasets.target_modes import MultiLabel, TopClasses
from pytorch_grad_cam.metric_names import DATASET_METRICS, SANITY_CHECKS, check_metrics, check_sanity_checks
from pytorch_grad_cam.models.specs import BUNDLED_MODEL, DEFAULT_MODEL
from pytorch_grad_cam.registry import method_names
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS

__all__ = ["PROG", "CheckedArguments", "build_parser", "category", "check", "check_arguments",
           "check_source", "probability"]

PROG = "grad-cam explain-dataset"
#: --sanity-images' default (``datasets.sanity.DEFAULT_SANITY_IMAGES``, which a
#: test keeps equal; that module imports torch, this one must not)
DEFAULT_SANITY_IMAGES = 8


@dataclass(frozen=True)
class CheckedArguments:
    """What :func:`check_arguments` found."""

    metrics: list[str] | str | None  # None (none), "all" or the names, as explain_dataset takes them
    source: Path                      # the input folder (its images not read yet)
    out: Path                         # the results store's folder, writable
    category: int | None              # the class to explain, None: each image's top class
    targets: int | TopClasses | MultiLabel | None = None  # explain_dataset's targets
    sanity_checks: list[str] | None = None  # --sanity-checks, as SANITY_CHECKS names (None: none)


def probability(text: str) -> float:
    """argparse ``type=``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1], got {text!r}")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options of ``explain-dataset``."""
    parser = Parser(
        prog=prog, formatter_class=formatter,
        description="Explain every image of a folder (recursively) with one or more CAM "
                    "methods into a results store: sharded, resumable (run the same command "
                    "again to continue after an interruption), readable with "
                    "pytorch_grad_cam.datasets.load_results. Unreadable or odd images get a "
                    "row with the reason; the run goes on.",
        epilog="Several processes or GPUs: torchrun --nproc_per_node=N -m "
               "pytorch_grad_cam.datasets.cli DIR ... (each process explains its share and "
               "writes its own shards). Errors exit with status 2.")
    parser.add_argument("source", metavar="DIR", help="the folder of images")
    parser.add_argument(
        "--method", nargs="+", metavar="NAME", default=["gradcam"],
        help="one or more CAM methods, case-insensitive, or 'all': " + ", ".join(method_names())
             + " (default: gradcam)")
    parser.add_argument("--out", metavar="DIR", default="results",
                        help="the results store (default: results/)")
    parser.add_argument(
        "--metrics", nargs="*", metavar="NAME", default=None,
        help="score every map with these faithfulness metrics and accumulate them per method: "
             + ", ".join(DATASET_METRICS) + "; no name or 'all': all of them (default: none)")
    parser.add_argument(
        "--sanity-checks", nargs="*", metavar="NAME", default=None,
        help="after the run, run these sanity checks for every method on the first "
             "--sanity-images images every method explained, store them (sanity.json) and "
             "show them in the summary and the report with each value, its threshold and "
             f"PASS or FAIL: {', '.join(SANITY_CHECKS)}, case-insensitive; no name or 'all': "
             "all four. Cost per method, in maps of a batch of the sample: MPRT 1 + one per "
             "layer with parameters (resnet50: 108), sMPRT 100, eMPRT 2, RandomLogit 2; on a "
             "copy of the model (the model itself is not changed). A resumed run reuses the "
             "stored checks of the same sample (default: none)")
    parser.add_argument(
        "--sanity-images", type=positive_int, metavar="N", default=None,
        help="with --sanity-checks: the size of their sample, the first N images (in the "
             f"order of the run) that every method explained (default: {DEFAULT_SANITY_IMAGES})")
    parser.add_argument("--report", action="store_true",
                        help="also write report.html in --out: summary, metrics, ranking, gallery")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--model", metavar="NAME", default=None,
        help=f"a torchvision classification model or {BUNDLED_MODEL} (bundled, pretrained, "
             f"offline); default: {DEFAULT_MODEL} with its ImageNet weights if cached or "
             f"downloadable, else {BUNDLED_MODEL}")
    parser.add_argument("--weights", metavar="FILE", default=None,
                        help="a local checkpoint: a state_dict, read without unpickling any "
                             "object; a whole model saved with torch.save(model) only with "
                             "--trust-checkpoint")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_CHECKPOINT_HELP)
    parser.add_argument(
        "--target-layer", nargs="+", metavar="LAYER", default=None,
        help="the layer(s) to explain, as a path such as 'layer4[-1]' (default: chosen for "
             "the model family)")
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument("--target-category", metavar="CLASS", default=None,
                         help="explain this class (an ImageNet index or name) in every image "
                              "(default: each image's top-1 class)")
    targets.add_argument("--top-classes", type=positive_int, metavar="K", default=None,
                         help="explain each image's K best classes, best first: K rows per "
                              "image and method (rank 0 to K-1), each method explaining all K "
                              "in one call (default: 1, the top class)")
    targets.add_argument("--multilabel", type=probability, metavar="THRESHOLD", default=None,
                         help="for multi-label models: explain every class whose "
                              "sigmoid(score) >= THRESHOLD, in (0, 1]; an image without one "
                              "gets a no_target row")
    parser.add_argument("--max-labels", type=positive_int, metavar="N", default=None,
                        help="with --multilabel: at most N classes an image, the most probable "
                             "(default: all above the threshold)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", default=None,
                        help="images per forward pass (default: 8 on CPU, 64 on CUDA)")
    parser.add_argument("--workers", type=non_negative_int, metavar="N", default=None,
                        help="DataLoader processes that decode the images (default: with a GPU "
                             "half the CPUs, at most 8; on a CPU the cores torch's threads leave "
                             "free; 0: decode in the main process)")
    parser.add_argument("--shard-size", type=positive_int, metavar="N", default=512,
                        help="images per shard of the store (default: 512)")
    parser.add_argument("--map-size", choices=["layer", "input"], default="layer",
                        help="store the maps at the target layer's resolution (default) or at "
                             "the model's input size; float16 either way")
    parser.add_argument("--max-pixels", type=positive_int, metavar="N", default=MAX_READ_PIXELS,
                        help="images whose header gives more pixels are recorded as too_large "
                             f"without being decoded (default: {MAX_READ_PIXELS})")
    parser.add_argument("--input-size", type=positive_int, metavar="N", default=None,
                        help="the side the images are resized to (default: the model's)")
    parser.add_argument("--top-k", type=positive_int, metavar="K", default=None,
                        help="predictions (class and probability columns top1..topK) kept "
                             "per image; to explain several classes see --top-classes "
                             "(default: 5, or --top-classes K if larger)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to run (default: auto: cuda, then mps, then cpu; under "
                             "torchrun each process takes cuda:LOCAL_RANK)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results in --out: delete the files the store wrote, "
                             "nothing else (default: resume them; a store of another "
                             "configuration or source is an error; a folder that is not a "
                             "store is refused either way)")
    return parser


def check_source(text: str) -> Path:
    """The input folder ``DIR``: a folder that exists and can be listed;
    UsageError (``<DIR>: <reason>``) otherwise."""
    source = Path(text)
    if not os.path.lexists(source):
        raise UsageError(f"{text}: no such folder")
    if not source.is_dir():
        kind = "a file" if source.is_file() else "not a folder"
        raise UsageError(f"{text}: is {kind}; give the folder of images")
    try:
        with os.scandir(source) as entries:
            next(entries, None)
    except OSError as error:  # permission denied, ...
        raise UsageError(f"{text}: cannot read the folder ({os_error_reason(error)})") from None
    return source


def category(text: str | None, prog: str) -> int | None:
    """``--target-category``: an index (checked against the model's classes
    later) or an ImageNet class name -> the index; None when not given."""
    if text is None:
        return None
    if is_index(text) and int(text) >= 0:
        return int(text)  # the range is checked against the model's classes
    return resolve_category(text, IMAGENET_CLASSES, prog=prog)


def check_arguments(args: argparse.Namespace, prog: str) -> CheckedArguments:
    """Check what can be checked without the model (see the module's
    docstring); UsageError for the first problem."""
    check_method_option(args.method)
    metrics = None if args.metrics is None else (
        "all" if args.metrics in ([], ["all"]) else list(args.metrics))
    try:
        check_metrics(metrics)
    except ValueError as error:
        raise UsageError(f"--metrics: {error}") from None
    try:
        sanity_checks = None if args.sanity_checks is None else check_sanity_checks(
            args.sanity_checks, "--sanity-checks")
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.sanity_images is not None and sanity_checks is None:
        raise UsageError("--sanity-images is the sample of --sanity-checks; give "
                         "--sanity-checks too")
    if args.max_labels is not None and args.multilabel is None:
        raise UsageError("--max-labels caps the classes --multilabel THRESHOLD finds in an "
                         "image; give --multilabel too")
    source = check_source(args.source)
    out = check_output_folder("--out", args.out)
    fixed = category(args.target_category, prog)
    targets: int | TopClasses | MultiLabel | None = fixed
    if args.top_classes is not None:
        targets = TopClasses(args.top_classes)
    elif args.multilabel is not None:
        targets = MultiLabel(args.multilabel, args.max_labels)
    return CheckedArguments(metrics, source, out, fixed, targets, sanity_checks)


def check(argv: Sequence[str], prog: str = PROG) -> int | None:
    """The command's check (see :mod:`pytorch_grad_cam.commands`): 2 after
    a usage error (its line printed), 130 when interrupted, None to run the
    command."""
    status = run_check(prog, lambda: check_arguments(build_parser(prog).parse_args(list(argv)),
                                                     prog))
    return status if isinstance(status, int) else None
