"""``grad-cam demo`` / ``python -m pytorch_grad_cam.demo``: serve the web demo.

The options only choose where and how the page is served; everything else
(the photo, model, methods, class, layer) is chosen in the page. Gradio is
imported only after the options are parsed, so ``--help`` works without
the ``demo`` extra, and a missing extra is one line, not a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pytorch_grad_cam.app.errors import os_error_line
from pytorch_grad_cam.app.options import positive_int
from pytorch_grad_cam.demo.models import DemoError, choose_device

__all__ = ["PROG", "SUMMARY", "build_parser", "main"]

PROG = "grad-cam demo"
#: the one-line description of the command in ``grad-cam --help``
SUMMARY = "serve the web demo (a page on http://127.0.0.1:7860; needs grad-cam[demo])"


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {text!r}")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The options of the demo command."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve the grad-cam web demo: pick or upload a photo, choose the "
        "model, the CAM methods, the class and the layer, and see the overlays, the top-5 "
        "predictions and the faithfulness metrics. It works offline and listens on this "
        "machine only unless --host says otherwise.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1, this machine only; "
                             "0.0.0.0 exposes the demo to the network)")
    parser.add_argument("--port", type=_port, default=None,
                        help="the port (default 7860, or the next free one)")
    parser.add_argument("--model", default=None,
                        help="the model the page starts with (default efficientnet_lite0, the "
                             "bundled one; or a torchvision name, or timm:<name>)")
    parser.add_argument("--device", default="auto",
                        help="where the models run: auto (CUDA when available), cpu, cuda, "
                             "cuda:1 (default auto)")
    parser.add_argument("--concurrency", type=positive_int, default=4,
                        help="how many requests run at once (default 4)")
    parser.add_argument("--max-pixels", type=positive_int, default=4_000_000,
                        help="photos with more pixels are downscaled first (default 4000000)")
    parser.add_argument("--no-preload", action="store_true",
                        help="do not load the starting model before serving")
    parser.add_argument("--quiet", action="store_true", help="do not print the address")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Parse the options and serve until interrupted; the exit status (0,
    2 for a usage error or a missing extra, 130 when interrupted)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # --help (0) or a bad option (2, already printed)
        return int(stop.code or 0)
    try:  # optional: Gradio, the demo extra (imported only after the options are parsed)
        from pytorch_grad_cam.demo.app import launch
    except ImportError as error:
        missing = getattr(error, "name", None)
        reason = f"the web demo needs {missing}" if missing else str(error)
        print(f"{prog}: error: {reason}; install the demo extra: pip install \"grad-cam[demo]\"",
              file=sys.stderr)
        return 2
    except OSError as error:  # its temporary folder cannot be made (GRADIO_TEMP_DIR, TMPDIR)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        choose_device(args.device)
    except DemoError as error:
        print(f"{prog}: error: --device: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    try:
        launch(args.host, args.port, device=args.device, model=args.model,
               concurrency=args.concurrency, max_pixels=args.max_pixels,
               preload=not args.no_preload, block=True, quiet=args.quiet)
    except KeyboardInterrupt:
        return 130
    except OSError as error:
        if error.filename is not None:  # a file the demo read or wrote
            print(f"{prog}: error: {os_error_line(error)}", file=sys.stderr)
        else:  # the port is taken, the address cannot be bound
            print(f"{prog}: error: cannot serve on {args.host}:{args.port or 7860}: {error}",
                  file=sys.stderr)
        return 2
    return 0
