"""Running a command: parse, check, run, and report problems as one line.

:func:`run_command` is what every command that explains images shares (the
image command and ``vit``): warnings become ``<prog>: warning: ...`` lines,
a :class:`~pytorch_grad_cam.cli.errors.UsageError` becomes
``<prog>: error: ...`` and exit status 2, Ctrl-C exit status 130. A read or
write that fails during the run (a full disk, a folder removed meanwhile)
is an error too: ``<prog>: error: <path>: <reason>``, exit status 2, as
every error of the command line, without a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO

from pytorch_grad_cam.cli.errors import UsageError, os_error_line
from pytorch_grad_cam.cli.job import IMAGENET_CLASSES, Job, Loader, prepare, run
from pytorch_grad_cam.cli.models import DEFAULT_MODEL, read_class_names

__all__ = ["one_line_warnings", "run_command"]


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Warnings as '<prog>: warning: ...' lines on stderr."""
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def run_command(argv: Sequence[str] | None, parser: argparse.ArgumentParser,
                load: Loader | None = None, guided_backprop: bool = True,
                default_model: str | None = DEFAULT_MODEL) -> int:
    """Parse ``argv`` with ``parser`` (options of
    :func:`~pytorch_grad_cam.cli.parser.add_common_arguments`), then list
    the classes or prepare and run the job (the model from ``load(args)``,
    default ``--model``/``--weights``; ``default_model``: the model the file
    names leave out, None to name every model). 0 on success, 2 for a usage
    error or a failed read or write (one line on stderr), 130 when
    interrupted."""
    prog = parser.prog
    job: Job | None = None
    with one_line_warnings(prog):
        try:
            args = parser.parse_args(argv)
            if args.list_classes:
                names = read_class_names(args.class_names) if args.class_names \
                    else IMAGENET_CLASSES
                for index, name in enumerate(names):
                    print(f"{index:>4}  {name}")
                return 0
            job = prepare(args, load=load, guided_backprop=guided_backprop, prog=prog,
                          default_model=default_model)
            run(job)
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            folder = None if job is None else str(job.output_dir)
            print(f"{prog}: error: {os_error_line(error, folder)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
    return 0
