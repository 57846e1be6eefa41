"""The ``explain-dataset`` command: explain every image of a folder into a
results store::

    python -m pytorch_grad_cam.datasets.cli photos/ --method gradcam scorecam --out results/ \\
        --metrics ROADCombined Deletion --report
    torchrun --nproc_per_node=8 -m pytorch_grad_cam.datasets.cli photos/ --out results/

The model options are the image command's (``grad-cam --help``, the same
loader, :func:`pytorch_grad_cam.app.models.load_from_options`): ``--model`` a
torchvision classification model with its ImageNet weights from the torch
hub cache (or downloaded), or ``efficientnet_lite0``, bundled and
pretrained, offline; ``--weights FILE`` a local checkpoint (a whole
pickled model only with ``--trust-checkpoint``); without
``--model`` resnet50, falling back with a warning to the bundled model when
its weights cannot be had. The arguments are checked
(:func:`pytorch_grad_cam.datasets.options.check_arguments`: the method and
metric names, the input folder, that ``--out`` can be created and written,
the class) before the model is loaded, and by the command before torch is
imported. Errors are one line, ``<prog>: error:
...``, and exit status 2, a read or write that fails during the run
(``<prog>: error: <path>: <reason>``) included.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pytorch_grad_cam.app.applicable import applicable_methods
from pytorch_grad_cam.app.devices import device_option
from pytorch_grad_cam.app.errors import UsageError, one_line_warnings, os_error_line
from pytorch_grad_cam.app.layers import family_reshape
from pytorch_grad_cam.app.methods import parse_methods
from pytorch_grad_cam.app.models import load_from_options
from pytorch_grad_cam.app.recommended import resolve_recommended
from pytorch_grad_cam.datasets.cost import run_cost
from pytorch_grad_cam.datasets.options import DEFAULT_SANITY_IMAGES, PROG, build_parser, check_arguments
from pytorch_grad_cam.datasets.ownership import StoreRefused
from pytorch_grad_cam.datasets.runner import explain_dataset
from pytorch_grad_cam.datasets.sources import Preprocess
from pytorch_grad_cam.models.loading import LoadedModel

__all__ = ["PROG", "SUMMARY", "build_parser", "main"]

SUMMARY = "explains every image of a folder into a resumable results store"

Loader = Callable[[argparse.Namespace], LoadedModel]


def main(argv: Sequence[str] | None = None, *, prog: str = PROG,
         load: Loader | None = None) -> int:
    """Run ``explain-dataset``; returns the exit status (0 success, 2 usage
    error or a read or write that failed, 130 interrupted). ``load(args)``
    loads the model (default: the image command's ``--model`` /
    ``--weights`` / ``--trust-checkpoint``)."""
    parser = build_parser(prog)
    args_list = list(sys.argv[1:] if argv is None else argv)
    out: Path | None = None
    with one_line_warnings(prog):
        try:
            args = parser.parse_args(args_list)
            checked = check_arguments(args, prog)  # again: main() is also called directly
            methods = parse_methods(args.method)
            out = checked.out
            device = device_option(args.device)
            loaded = load_from_options(args) if load is None else load(args)
            model = loaded.model.to(device).eval()
            methods, recommended = resolve_recommended(methods, model)
            if recommended:
                print(recommended, flush=True)
            methods, _ = applicable_methods(methods, model, args.method, loaded.name)
            reshape = family_reshape(model) if args.target_layer else None
            size = args.input_size or loaded.input_size
            summary = explain_dataset(
                checked.source, model, methods, out=out, target_layers=args.target_layer,
                targets=checked.targets, reshape_transform=reshape,
                preprocess=Preprocess(size=(size, size), mean=loaded.mean, std=loaded.std),
                map_size=args.map_size, metrics=checked.metrics, top_k=args.top_k,
                batch_size=args.batch_size, workers=args.workers, shard_size=args.shard_size,
                device=device, progress=not args.no_progress, report=args.report,
                overwrite=args.overwrite, max_pixels=args.max_pixels,
                sanity_checks=checked.sanity_checks,
                sanity_images=args.sanity_images or DEFAULT_SANITY_IMAGES,
                on_start=lambda start: print(run_cost(start), flush=True))
        except UsageError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except StoreRefused as error:  # it names the option as this command spells it
            print(f"{prog}: error: {' '.join(error.message('--overwrite').split())}",
                  file=sys.stderr)
            return 2
        except (ValueError, FileNotFoundError) as error:  # the runner's checks of the request
            print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
        except OSError as error:  # a missing folder; a read or write that failed during the run
            folder = None if out is None else str(out)
            print(f"{prog}: error: {os_error_line(error, folder)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted (run the same command again to resume)", file=sys.stderr)
            return 130
    if int(os.environ.get("RANK", "0") or 0) == 0:
        print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
