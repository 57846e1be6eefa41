"""Running a command: parse, check, run, and report problems as one line.

:func:`run_command` is what every command that explains images shares (the
image command and ``vit``): warnings become ``<prog>: warning: ...`` lines,
a :class:`~pytorch_grad_cam.app.errors.UsageError` becomes
``<prog>: error: ...`` and exit status 2, Ctrl-C exit status 130. A read or
write that fails during the run (a full disk, a folder removed meanwhile)
is an error too: ``<prog>: error: <path>: <reason>``, exit status 2, as
every error of the command line, without a traceback. :func:`main` is the
image command (``grad-cam ...`` without a command name).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytorch_grad_cam.app.errors import UsageError, one_line_warnings, os_error_line
from pytorch_grad_cam.cli.job import Job, Loader, prepare, run
from pytorch_grad_cam.cli.parser import PROG, image_parser
from pytorch_grad_cam.cli.request import parse_and_check
from pytorch_grad_cam.models.specs import DEFAULT_MODEL

__all__ = ["main", "one_line_warnings", "run_command"]


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
    parsed = parse_and_check(argv, parser, check=False)  # prepare() checks them
    if isinstance(parsed, int):
        return parsed
    prog = parser.prog
    job: Job | None = None
    with one_line_warnings(prog):
        try:
            job = prepare(parsed, load=load, guided_backprop=guided_backprop, prog=prog,
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


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """The image command: explain images with CAM methods; the exit status."""
    return run_command(argv, image_parser(prog))
