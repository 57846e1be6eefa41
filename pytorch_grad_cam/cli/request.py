"""The image command's and ``vit``'s arguments, checked before torch is
imported.

:func:`check_arguments` checks everything that needs no model, cheapest
first: the method names, the SESS options, the ``--sanity-checks`` names,
that every image path exists
and is a regular file or a folder of images whose headers give at most
``--max-pixels`` pixels (nothing decoded), that the output folder can be
written, the ``--class-names`` file, and the ``--target-category`` classes
(each given once) and ``--top-k`` when the class list is known before the
model is (the file's, or ImageNet's for the ImageNet models). :func:`check_image` and
:func:`check_vit` are the commands' ``check`` (see
:mod:`pytorch_grad_cam.commands`): they parse, list the classes for
``--list-classes``, and report a problem as one line in a fraction of a
second; :func:`pytorch_grad_cam.cli.job.prepare` runs the same checks
again before the model loads.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytorch_grad_cam.app.classes import IMAGENET_CLASSES, check_top_k, read_class_names, resolve_categories
from pytorch_grad_cam.app.errors import UsageError, run_check
from pytorch_grad_cam.app.folders import check_output_folder
from pytorch_grad_cam.app.methods import check_method_option
from pytorch_grad_cam.cli.images import check_image_sizes, find_image_paths
from pytorch_grad_cam.cli.parser import Parser, build_vit_parser, image_parser
from pytorch_grad_cam.metric_names import check_sanity_checks
from pytorch_grad_cam.models.specs import HF_PREFIX, TIMM_PREFIX

__all__ = ["SESS_OPTIONS", "CheckedArguments", "check_arguments", "check_image", "check_vit",
           "imagenet_for_sure", "list_classes", "parse_and_check", "sess_options"]

#: --sess-* option -> SESS argument
SESS_OPTIONS = {"sess_scales": "num_scales", "sess_step": "step_size",
                "sess_pre_filter": "pre_filter_ratio", "sess_pool": "pool"}


@dataclass(frozen=True)
class CheckedArguments:
    """What :func:`check_arguments` found."""

    methods: list[str]              # registry names and 'all' / 'everything', as asked
    sess: dict[str, Any] | None     # SESS's arguments, None without --sess
    image_paths: list[Path]         # the image files (not read yet)
    output_dir: Path
    class_names: list[str] | None   # the --class-names file's
    sanity_checks: list[str] = field(default_factory=list)  # --sanity-checks, as SANITY_CHECKS


def sess_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """SESS's arguments from --sess and its options; None without --sess
    (its options alone are a usage error)."""
    given = {argument: getattr(args, option) for option, argument in SESS_OPTIONS.items()
             if getattr(args, option, None) is not None}
    if not getattr(args, "sess", False):
        if given:
            flags = ", ".join("--" + option.replace("_", "-") for option in SESS_OPTIONS
                              if getattr(args, option, None) is not None)
            raise UsageError(f"{flags} only work with --sess (give --sess too)")
        return None
    return given


def imagenet_for_sure(args: argparse.Namespace) -> bool:
    """Whether the model will be an ImageNet classifier whatever loads
    (class names can then be checked before loading it)."""
    spec = (args.model or "").strip().lower()
    return not (getattr(args, "weights", None) or getattr(args, "num_classes", None)
                or spec.startswith((TIMM_PREFIX, HF_PREFIX)))


def check_arguments(args: argparse.Namespace, prog: str) -> CheckedArguments:
    """Check what can be checked without the model (see the module's
    docstring); UsageError for the first problem."""
    methods = check_method_option(args.method)
    sess = sess_options(args)
    try:
        sanity_checks = check_sanity_checks(getattr(args, "sanity_checks", None),
                                            "--sanity-checks")
    except ValueError as error:
        raise UsageError(str(error)) from None
    image_paths = find_image_paths(args.image_path)
    check_image_sizes(image_paths, args.max_pixels)
    output_dir = check_output_folder("--output-dir", args.output_dir)
    given_names = read_class_names(args.class_names) if getattr(args, "class_names", None) \
        else None
    # the classes, when their list is known before the model is: fail before loading one
    known = given_names if given_names is not None else (
        IMAGENET_CLASSES if imagenet_for_sure(args) else None)
    if known is not None:
        resolve_categories(args.target_category, known, len(known), prog=prog)
    check_top_k(getattr(args, "top_k", None), None if known is None else len(known))
    return CheckedArguments(methods, sess, image_paths, output_dir, given_names, sanity_checks)


def list_classes(args: argparse.Namespace) -> None:
    """``--list-classes``: every class index and name (ImageNet's, or the
    --class-names file's)."""
    names = read_class_names(args.class_names) if args.class_names else IMAGENET_CLASSES
    for index, name in enumerate(names):
        print(f"{index:>4}  {name}")


def parse_and_check(argv: Sequence[str] | None, parser: argparse.ArgumentParser,
                    check: bool = True) -> argparse.Namespace | int:
    """The arguments parsed and (``check``) checked (:func:`check_arguments`),
    or the exit status when the command is done: 0 after ``--list-classes``,
    2 after a usage error (its line printed), 130 when interrupted."""
    prog = parser.prog

    def parse_and_check() -> argparse.Namespace | int:
        args = parser.parse_args(argv)
        if args.list_classes:
            list_classes(args)
            return 0
        if check:
            check_arguments(args, prog)
        return args

    return run_check(prog, parse_and_check)


def _done(parsed: argparse.Namespace | int) -> int | None:
    return parsed if isinstance(parsed, int) else None


def check_image(argv: Sequence[str], prog: str) -> int | None:
    """The image command's check (see :mod:`pytorch_grad_cam.commands`):
    an exit status when it is done, None to run it."""
    parser: Parser = image_parser(prog)
    return _done(parse_and_check(argv, parser))


def check_vit(argv: Sequence[str], prog: str) -> int | None:
    """``vit``'s check (see :mod:`pytorch_grad_cam.commands`)."""
    return _done(parse_and_check(argv, build_vit_parser(prog)))
