"""The ``explain-dataset`` command: explain every image of a folder into a
results store.

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
its weights cannot be had. ``--out`` is checked (it can be created and
written) before the model is loaded. Errors are one line, ``<prog>: error:
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
from pytorch_grad_cam.app.classes import IMAGENET_CLASSES, is_index, resolve_category
from pytorch_grad_cam.app.devices import device_option
from pytorch_grad_cam.app.errors import UsageError, one_line_warnings, os_error_line
from pytorch_grad_cam.app.folders import check_output_folder
from pytorch_grad_cam.app.layers import family_reshape
from pytorch_grad_cam.app.methods import parse_methods
from pytorch_grad_cam.app.models import load_from_options
from pytorch_grad_cam.app.options import (
    TRUST_CHECKPOINT_HELP,
    Parser,
    formatter,
    non_negative_int,
    positive_int,
)
from pytorch_grad_cam.datasets.cost import run_cost
from pytorch_grad_cam.datasets.evaluation import DATASET_METRICS, check_metrics
from pytorch_grad_cam.datasets.ownership import StoreRefused
from pytorch_grad_cam.datasets.runner import explain_dataset
from pytorch_grad_cam.datasets.sources import Preprocess
from pytorch_grad_cam.models.loading import BUNDLED_MODEL, DEFAULT_MODEL, LoadedModel
from pytorch_grad_cam.registry import method_names
from pytorch_grad_cam.utils.image_io import MAX_READ_PIXELS

__all__ = ["PROG", "SUMMARY", "build_parser", "main"]

PROG = "grad-cam explain-dataset"
SUMMARY = "explains every image of a folder into a resumable results store"

Loader = Callable[[argparse.Namespace], LoadedModel]


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
    parser.add_argument("--target-category", metavar="CLASS", default=None,
                        help="explain this class (an ImageNet index or name) in every image "
                             "(default: each image's top-1 class)")
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
                        help="predictions kept per image (default: 5)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where to run (default: auto: cuda, then mps, then cpu; under "
                             "torchrun each process takes cuda:LOCAL_RANK)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results in --out: delete the files the store wrote, "
                             "nothing else (default: resume them; a store of another "
                             "configuration or source is an error; a folder that is not a "
                             "store is refused either way)")
    return parser


def _category(text: str | None, prog: str) -> int | None:
    if text is None:
        return None
    if is_index(text) and int(text) >= 0:
        return int(text)  # the range is checked against the model's classes
    return resolve_category(text, IMAGENET_CLASSES, prog=prog)


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
            methods = parse_methods(args.method)
            metrics = None if args.metrics is None else (
                "all" if args.metrics in ([], ["all"]) else list(args.metrics))
            try:
                check_metrics(metrics)
            except ValueError as error:
                raise UsageError(f"--metrics: {error}") from None
            source = Path(args.source)
            if not source.is_dir():
                raise UsageError(f"{args.source}: no such folder")
            out = check_output_folder("--out", args.out)
            category = _category(args.target_category, prog)
            device = device_option(args.device)
            loaded = load_from_options(args) if load is None else load(args)
            model = loaded.model.to(device).eval()
            methods, _ = applicable_methods(methods, model, args.method, loaded.name)
            reshape = family_reshape(model) if args.target_layer else None
            size = args.input_size or loaded.input_size
            summary = explain_dataset(
                source, model, methods, out=out, target_layers=args.target_layer,
                targets=category, reshape_transform=reshape,
                preprocess=Preprocess(size=(size, size), mean=loaded.mean, std=loaded.std),
                map_size=args.map_size, metrics=metrics, top_k=args.top_k,
                batch_size=args.batch_size, workers=args.workers, shard_size=args.shard_size,
                device=device, progress=not args.no_progress, report=args.report,
                overwrite=args.overwrite, max_pixels=args.max_pixels,
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
