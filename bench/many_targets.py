"""Explaining K targets of an image in one call, against K = 1 and K calls.

A CAM call takes, per image, a list of K targets (``utils.target_sets``:
``top_k_targets(scores, 5)``) and returns B x K x H x W maps from one
forward pass (one set of perturbation passes); only the scoring and the
gradients are per target. For each case below, on the CPU at batch 1, one
run times:

- **K = 1**: the call with one target per image (the top class);
- **K = 5 table**: one call with the table of each image's 5 best classes;
- **K = 5 separate**: 5 calls, one per class, one after another (what a
  loop over the classes costs);

and prints the ratios table / K = 1 and separate / K = 1, with the bound
the library claims for the table and whether this run kept it. The maps of
the table call are compared with those of the separate calls (they must be
equal: ``max |table - separate|``).

Cases (models with ``weights=None``, seed 0, except the pretrained
EfficientNet-Lite0):

- ``gradcam-layer4``: GradCAM, resnet50 at ``layer4[-1]``, random input
  (seed 1): at most 1.25x (separate calls: about 5x);
- ``gradcam-layer3``: the same at ``layer3[-1]`` (the backward pass runs
  through layer4 once per target): at most 2x;
- ``scorecam``: Score-CAM on the pretrained EfficientNet-Lite0 at
  ``head_activation``, ``skimage.data.chelsea()`` resized to 224 x 224
  (1,280 masked forward passes a call): at most 1.1x;
- ``ablationcam``: Ablation-CAM, mobilenet_v3_small at ``features[-1]``,
  random input: at most 1.1x;
- ``runner``: the dataset runner's command line (``explain-dataset``,
  in this process through ``pytorch_grad_cam.datasets.cli.main`` with the
  model handed to its loader) with ``--top-classes 5`` (each image's 5
  best classes; ``--top-k`` is the number of predictions kept) against the
  same command without it (each image's top class): GradCAM, resnet50 at
  ``layer4[-1]``, batch 8, over ``--images`` JPEGs of
  ``dataset_benchmark.py``'s folder: at most 1.3x. A runner without that
  option (it is refused, or the store gets no more rows than without it)
  is reported as "the runner has no --top-classes" and only this case is
  skipped.

Timing: each side is called once to warm up, then the sides alternate for
``--repeats`` rounds (default 7; the runner 3; ``--quick`` 1), so that a
machine that slows down for a while slows all sides alike; each side
reports its median. A case whose warm-up K = 1 call takes longer than
``--long-call`` seconds (default 10: Score-CAM) is timed once: the warm-up
K = 1 call is its measurement, then one table call and the 5 separate calls
(``--quick`` leaves the separate calls of such a case out). The default run
should take 4 to 5 minutes on an idle 2-core CPU, most of it Score-CAM's 7
calls (32 minutes on one shared with other work, load average 6 to 10).

    python bench/many_targets.py                          # all cases, Markdown table
    python bench/many_targets.py --quick                  # smoke run: 1 round, 8 images
    python bench/many_targets.py --cases gradcam-layer3 --repeats 15 --threads 2 --json k.json
"""
import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torchvision

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dataset_benchmark import make_folder  # noqa: E402  (bench/, this script's folder)

from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM  # noqa: E402
from pytorch_grad_cam.datasets import load_results  # noqa: E402
from pytorch_grad_cam.datasets.cli import main as explain_dataset_cli  # noqa: E402
from pytorch_grad_cam.layers import resolve_layer  # noqa: E402
from pytorch_grad_cam.models.loading import LoadedModel  # noqa: E402
from pytorch_grad_cam.utils.image import preprocess_image  # noqa: E402
from pytorch_grad_cam.utils.target_sets import top_k_targets  # noqa: E402

K = 5
# name -> (method, model, layer, the bound on table / K = 1)
CASES = {
    "gradcam-layer4": ("GradCAM", "resnet50", "layer4[-1]", 1.25),
    "gradcam-layer3": ("GradCAM", "resnet50", "layer3[-1]", 2.0),
    "scorecam": ("ScoreCAM", "efficientnet_lite0", "head_activation", 1.1),
    "ablationcam": ("AblationCAM", "mobilenet_v3_small", "features[-1]", 1.1),
    "runner": ("GradCAM", "resnet50", "layer4[-1]", 1.3),
}
CAM_CLASSES = {"GradCAM": GradCAM, "ScoreCAM": ScoreCAM, "AblationCAM": AblationCAM}
RUNNER_BATCH = 8
# the runner's option that explains each image's K best classes (its --top-k is
# the number of predictions kept per image)
TOP_CLASSES = "--top-classes"
NO_TOP_CLASSES = f"the runner has no {TOP_CLASSES}"


def build_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "efficientnet_lite0":
        from pytorch_grad_cam.utils.pretrained import load_efficientnet_lite0

        return load_efficientnet_lite0()
    return torchvision.models.get_model(name, weights=None).eval()


def build_input(model_name: str) -> torch.Tensor:
    if model_name == "efficientnet_lite0":
        import skimage.data

        return preprocess_image(cv2.resize(skimage.data.chelsea(), (224, 224)))
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def timed(function: Callable[[], Any]) -> tuple:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def alternate(sides: dict, repeats: int, long_call: float, quick: bool) -> tuple:
    """Each side's samples (seconds) and its last result: a warm-up call of
    every side, then ``repeats`` rounds of all sides in turn. A first side
    slower than ``long_call`` is timed once (its warm-up is its sample); in
    ``quick`` mode the ``"separate"`` side of such a case is left out."""
    names = list(sides)
    seconds, results = {}, {}
    first, results[names[0]] = timed(sides[names[0]])
    if first > long_call:
        seconds[names[0]] = [first]
        for name in names[1:]:
            if quick and name == "separate":
                continue
            elapsed, results[name] = timed(sides[name])
            seconds[name] = [elapsed]
        return seconds, results
    for name in names[1:]:
        sides[name]()  # warm-up
    seconds = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            elapsed, results[name] = timed(sides[name])
            seconds[name].append(elapsed)
    return seconds, results


def cam_case(name: str, repeats: int, long_call: float, quick: bool) -> dict:
    method, model_name, layer_path, bound = CASES[name]
    model = build_model(model_name)
    x = build_input(model_name)
    with torch.no_grad():
        table = top_k_targets(model(x), K)  # 1 x K: the image's 5 best classes
    columns = [[row[k] for row in table] for k in range(K)]
    cam = CAM_CLASSES[method](model=model, target_layers=[resolve_layer(model, layer_path)],
                              progress=False)

    def separate() -> np.ndarray:
        return np.stack([cam(input_tensor=x, targets=column) for column in columns], axis=1)

    sides = {"k1": lambda: cam(input_tensor=x, targets=columns[0]),
             "table": lambda: cam(input_tensor=x, targets=table),
             "separate": separate}
    seconds, results = alternate(sides, repeats, long_call, quick)
    row = {"case": name, "method": method, "model": model_name, "layer": layer_path,
           "what": f"{method}, {model_name} `{layer_path}`", "bound": bound,
           "seconds": seconds}
    if "separate" in results:
        row["max_diff"] = float(np.abs(results["table"] - results["separate"]).max())
    return row


def runner_case(images: int, repeats: int, root: Path) -> dict:
    """The runner's command line with --top-classes 5 against without it."""
    _, model_name, layer_path, bound = CASES["runner"]
    seconds: dict[str, list[float]] = {}
    row: dict[str, Any] = {
        "case": "runner", "method": "GradCAM", "model": model_name, "layer": layer_path,
        "what": f"runner, GradCAM, {model_name} `{layer_path}`, {images} images, "
                f"batch {RUNNER_BATCH}", "bound": bound, "seconds": seconds}
    files = make_folder(root / "photos", images)
    probe = root / "probe"  # a few images: the warm-up, and whether the option explains K classes
    probe.mkdir()
    for path in files[:RUNNER_BATCH]:
        shutil.copy(path, probe / path.name)
    model = build_model(model_name)

    def run(folder: Path, classes: int | None) -> tuple:
        out = root / f"store-{folder.name}-{classes}"
        argv = [str(folder), "--out", str(out), "--method", "gradcam", "--target-layer",
                layer_path, "--batch-size", str(RUNNER_BATCH), "--no-progress", "--overwrite"]
        if classes is not None:
            argv += [TOP_CLASSES, str(classes)]
        printed, errors = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            status = explain_dataset_cli(argv, load=lambda args: LoadedModel(model, model_name))
        elapsed = time.perf_counter() - start
        return elapsed, status, errors.getvalue().strip(), out

    _, status, errors, one_out = run(probe, None)
    if status != 0:
        raise RuntimeError(f"explain-dataset without {TOP_CLASSES} failed (status {status}): "
                           f"{errors}")
    _, status, errors, k_out = run(probe, K)
    if status != 0:
        row["skipped"] = (f"{NO_TOP_CLASSES}: `{TOP_CLASSES} {K}` was refused "
                          f"({errors.splitlines()[-1] if errors else f'status {status}'})")
        return row
    one_rows, k_rows = len(load_results(one_out)), len(load_results(k_out))
    if k_rows != K * one_rows:
        row["skipped"] = (f"{NO_TOP_CLASSES} that explains {K} classes per image: "
                          f"`{TOP_CLASSES} {K}` wrote {k_rows} rows where the run without it "
                          f"wrote {one_rows}")
        return row
    for _ in range(repeats):
        for side, classes in (("k1", None), ("table", K)):
            elapsed, status, errors, _ = run(root / "photos", classes)
            if status != 0:
                raise RuntimeError(f"explain-dataset {TOP_CLASSES} {classes} failed: {errors}")
            seconds.setdefault(side, []).append(elapsed)
    return row


def summarise(row: dict) -> dict:
    medians = {side: statistics.median(samples) for side, samples in row["seconds"].items()}
    row["median_s"] = medians
    if "k1" in medians:
        row["table_ratio"] = medians["table"] / medians["k1"]
        row["holds"] = row["table_ratio"] <= row["bound"]
        if "separate" in medians:
            row["separate_ratio"] = medians["separate"] / medians["k1"]
    return row


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{1000 * seconds:.0f} ms"


def render(rows: list) -> str:
    lines = ["| case | K = 1 | K = 5 table | K = 5 separate | table / K=1 | separate / K=1 "
             "| bound | holds | max \\|table - separate\\| | repeats |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['what']} | skipped: {row['skipped']} | | | | | "
                         f"<= {row['bound']}x | - | | |")
            continue
        medians = row["median_s"]
        separate = row.get("separate_ratio")
        diff = row.get("max_diff")
        lines.append(
            f"| {row['what']} | {duration(medians['k1'])} | {duration(medians['table'])} | "
            f"{duration(medians.get('separate'))} | {row['table_ratio']:.2f}x | "
            f"{'-' if separate is None else f'{separate:.2f}x'} | <= {row['bound']}x | "
            f"{'yes' if row['holds'] else 'NO'} | {'-' if diff is None else f'{diff:.1e}'} | "
            f"{len(row['seconds']['k1'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--quick", action="store_true",
                        help="1 round a case, 8 runner images, no separate calls for slow cases")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds of the CAM cases (default 7; --quick: 1)")
    parser.add_argument("--runner-repeats", type=int, default=None,
                        help="timed rounds of the runner case (default 3; --quick: 1)")
    parser.add_argument("--images", type=int, default=None,
                        help="JPEGs of the runner case (default 32; --quick: 8)")
    parser.add_argument("--long-call", type=float, default=10.0,
                        help="a case whose K = 1 call takes longer (seconds) is timed once")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows, with every sample, as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # random weights leave some classes with an all-zero map (the library warns once per
    # CAM object); it does not change the work timed
    warnings.filterwarnings("ignore", message="the class activation map is all zeros",
                            category=RuntimeWarning)
    repeats = args.repeats or (1 if args.quick else 7)
    runner_repeats = args.runner_repeats or (1 if args.quick else 3)
    images = args.images or (8 if args.quick else 32)
    cpu = platform.processor() or platform.machine()
    header = (f"# K = {K} targets per image, batch 1, CPU ({cpu}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads); median of {repeats} rounds "
              f"(runner: {runner_repeats}) after a warm-up; calls over {args.long_call:g} s "
              "timed once")
    print(header, flush=True)
    rows = []
    started = time.perf_counter()
    for name in args.cases:
        if name == "runner":
            root = Path(tempfile.mkdtemp(prefix="many-targets-"))
            try:
                row = runner_case(images, runner_repeats, root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
        else:
            row = cam_case(name, repeats, args.long_call, args.quick)
        rows.append(summarise(row))
        note = row.get("skipped") or (f"table / K=1 {row['table_ratio']:.2f}x "
                                      f"(bound {row['bound']}x)")
        print(f"[{time.perf_counter() - started:.0f} s] {name}: {note}", flush=True)
    print()
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
