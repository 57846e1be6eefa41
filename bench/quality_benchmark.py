#!/usr/bin/env python
"""Which map to trust: every registered method scored against ground truth
on models trained here, with sanity checks, confidence intervals and the
same scores for grad-cam 1.5.7's and torchcam 0.5.0's implementations.

    python bench/quality_benchmark.py            # full: 3 seeds, 24 images per seed
    python bench/quality_benchmark.py --quick    # smoke run: 1 seed, 12 images, short training

Data and models (``pytorch_grad_cam.utils.synthetic_shapes``): 48 x 48
images of a disc, a ring or a cross on clutter, so the evidence of each
class is known pixel by pixel (the shape's region). For every seed the
script trains (on the CPU, seeded) the small CNN (``train_cnn(seed,
--cnn-steps)``; target layer: its last ReLU) and the small ViT
(``train_vit(seed, --vit-steps)``, a detector of each class; target layer of
the CAM methods: the last block's ``ln_1`` with ``vit_reshape_transform``;
the attention methods read every block), and scores each method's maps of
``--images`` held-out images (``make_shapes(images, seed=20251 + seed)``),
each explained for its true class.

Rows: every method of the registry, on each model, in registry order (so a
method added to the registry is benchmarked without editing this script).
A method that does not apply (an attention method on the CNN) or that
raises on the model (a method that needs a text prompt, a method whose
layer the ViT lacks) is listed as n/a with the reason. Variants:
``aug_smooth`` and ``eigen_smooth`` for the methods chosen by
``--variant-methods`` (default: the gradient methods without extra passes;
quick: gradcam), SESS for ``--sess-methods`` (default gradcam, with
``--sess-scales`` scales; SESS calls its method on every window of every
scale). The sampling methods (SSCAM, ISCAM) run with ``n_samples`` =
``--sampling-samples`` (8; their defaults, 35 and 10, made SSCAM alone
take most of a run), which their row's name says (``sscam + n_samples=8``).

Columns, per image (see docs/quality.md):

- pointing game (``PointingGame(tolerance=4)``: the map's peak within 4
  pixels of the shape's region; the paper's 15 pixels at 224 px scaled to
  48 px), relevance mass and rank accuracy (against the region);
- deletion and insertion AUC (``--n-steps`` steps) and ROAD (ROADCombined,
  percentiles 20, 40, 60, 80, removal by rank, noise seed 0), all on the
  class probability (softmax), as ``evaluate_cam_methods`` scores them;
- MPRT: Spearman rank correlation of the absolute maps of the trained and
  of the fully randomised model (every layer re-initialised, the end of
  ``metrics.sanity.MPRT``'s cascade; a run checks once that this equals
  ``MPRT(independent=False)``); random logit: SSIM of the maps of the true
  class and of a random other class (``metrics.sanity``'s
  ``other_classes`` with seed 0). A row whose mean fails the threshold
  (``SANITY_THRESHOLDS``: 0.5) is marked FAIL;
- ms per image: the seconds of a call on ``--batch`` images divided by
  their number, after one untimed call on one image.

Confidence intervals (95%): a two-stage percentile bootstrap, 2000
resamples: seeds drawn with replacement, then the images of each drawn seed
with replacement (``quality_stats.bootstrap_ci``); with one seed (quick),
over images only. Time: the same over the timed calls.

Peers: the methods they share run in their own environment on the same
weights and images: grad-cam 1.5.7 in ``--reference-python`` (default
/work/venv-ref/bin/python), torchcam 0.5.0 in a virtual environment made
on the first run (``--torchcam-venv``, see ``peer_env.py``), both through
``quality_peer_child.py`` (which loads the models' file by path, never this
repository's package). Their maps are scored here by the same metrics.

Output (each written whole or not at all): ``--json`` (every row, every
per-image value's summary, the sizes and timings), ``--markdown`` (the
tables and the "Which method?" lines that docs/quality.md includes) and
``--recommended`` (``pytorch_grad_cam/app/recommended_table.py``: the method
``--method recommended`` picks per model family). Run it on an idle
machine; ``--threads`` sets torch's threads in every process (default 1:
with 2 on a busy 2-core machine, the quick run's training took 7 CPU
minutes instead of under 1, its threads waiting for each other).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this repository's library, not an installed one
from peer_env import ensure_environment  # noqa: E402
from quality_stats import (  # noqa: E402
    COLUMNS,
    FAMILIES,
    bootstrap_ci,
    markdown_table,
    recommendations,
    recommended_module,
    situations,
)

from pytorch_grad_cam.metrics import (  # noqa: E402
    MPRT,
    DeletionAUC,
    InsertionAUC,
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    ROADCombined,
)
from pytorch_grad_cam.metrics.randomisation import cascading, model_copy  # noqa: E402
from pytorch_grad_cam.metrics.sanity import SANITY_THRESHOLDS, other_classes, passes  # noqa: E402
from pytorch_grad_cam.metrics.similarity import spearman, ssim  # noqa: E402
from pytorch_grad_cam.registry import (  # noqa: E402
    LIBRARY_METHODS,
    MethodInfo,
    get_method,
    registered_methods,
)
from pytorch_grad_cam.sess import SESS  # noqa: E402
from pytorch_grad_cam.utils import synthetic_shapes  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform  # noqa: E402

HELD_OUT_SEED = 20_251
TOLERANCE = 4  # pixels, the pointing game's
ROAD_PERCENTILES = (20, 40, 60, 80)
TORCHCAM = ("torchcam", "0.5.0")
#: our method name -> torchcam 0.5.0's class of the same method
TORCHCAM_CLASSES = {"cam": "CAM", "gradcam": "GradCAM", "gradcam++": "GradCAMpp",
                    "smoothgradcam++": "SmoothGradCAMpp", "xgradcam": "XGradCAM",
                    "layercam": "LayerCAM", "scorecam": "ScoreCAM", "sscam": "SSCAM",
                    "iscam": "ISCAM", "legrad": "LeGrad"}
#: the methods grad-cam 1.5.7 has (its class names are ours, LIBRARY_METHODS)
GRADCAM157_METHODS = ("gradcam", "hirescam", "gradcam++", "xgradcam", "ablationcam", "scorecam",
                      "eigencam", "eigengradcam", "layercam", "fullgrad", "gradcamelementwise",
                      "kpcacam", "fem", "shapleycam", "randomcam")


class Sizes(NamedTuple):
    seeds: int
    images: int
    cnn_steps: int
    vit_steps: int
    n_steps: int
    batch: int
    variant_methods: str
    sess_methods: str
    sess_scales: int
    sampling_samples: int


#: the size knobs of each mode (each can be set on the command line)
MODES = {"full": Sizes(seeds=3, images=24, cnn_steps=250, vit_steps=1000, n_steps=20, batch=8,
                       variant_methods="gradient", sess_methods="gradcam",
                       sess_scales=6, sampling_samples=8),
         "quick": Sizes(seeds=1, images=12, cnn_steps=150, vit_steps=300, n_steps=10, batch=12,
                        variant_methods="gradcam", sess_methods="gradcam", sess_scales=3,
                        sampling_samples=8)}


class Case(NamedTuple):
    model: str  # "cnn" or "vit"
    info: MethodInfo
    variant: str  # "", "aug_smooth", "eigen_smooth" or "sess"
    reason: str  # why it does not apply ("" when it does)


def variant_names(spec: str) -> set[str]:
    """``--variant-methods``/``--sess-methods``: ``gradient`` (the registry's
    gradient methods without extra passes, not random, not attention),
    ``none``, or names separated by commas."""
    if spec == "none":
        return set()
    if spec == "gradient":
        return {i.name for i in registered_methods(uses_gradients=True, extra_passes=False,
                                                   randomised=False, attention=False)}
    return {name.strip() for name in spec.split(",") if name.strip()}


def plain_variant(info: MethodInfo, sizes: Sizes) -> str:
    """The variant of a method's own row: ``n_samples=K`` for the sampling
    methods (SSCAM, ISCAM: K noisy copies per channel instead of their
    default 10 or 35, ``--sampling-samples``), else none."""
    return f"n_samples={sizes.sampling_samples}" if info.sampling else ""


def cases(models: list[str], methods: list[MethodInfo], sizes: Sizes) -> list[Case]:
    smooth, sess = variant_names(sizes.variant_methods), variant_names(sizes.sess_methods)
    found = []
    for model in models:
        for info in methods:
            reason = ""
            if model == "cnn" and info.attention:
                reason = "it reads a Vision Transformer's attention; the CNN has none"
            found.append(Case(model, info, plain_variant(info, sizes), reason))
            if reason:
                continue
            found.extend(Case(model, info, v, "") for v in ("aug_smooth", "eigen_smooth")
                         if info.name in smooth)
            if info.name in sess:
                found.append(Case(model, info, "sess", ""))
    return found


def layers_of(case: Case) -> tuple[Callable[[torch.nn.Module], list | None], Callable | None]:
    """The target layers (looked up in the model given: trained or randomised)
    and the reshape transform of a case."""
    if case.info.attention or not case.info.uses_target_layers:
        return (lambda model: None), None
    if case.model == "vit":
        return (lambda model: [model.encoder.layers[-1].ln_1]), vit_reshape_transform
    return (lambda model: [model.features[-1]]), None


def our_maps(case: Case, model: torch.nn.Module, inputs: torch.Tensor,
             classes: list[int], sizes: Sizes) -> np.ndarray:
    """The maps of this library's method of ``case`` on ``model``."""
    layers, reshape = layers_of(case)
    options: dict[str, Any] = {"progress": False}
    if case.info.extra_passes:
        options["batch_size"] = 256
    if case.variant.startswith("n_samples="):
        options["n_samples"] = sizes.sampling_samples
    targets = [ClassifierOutputTarget(c) for c in classes]
    if case.variant == "sess":
        with SESS(model, layers(model), reshape, base_method=case.info.cls,
                  num_scales=sizes.sess_scales, **options) as cam:
            return np.asarray(cam(inputs, targets), dtype=np.float32)
    call = {"aug_smooth": {"aug_smooth": True},
            "eigen_smooth": {"eigen_smooth": True}}.get(case.variant, {})
    with case.info.cls(model=model, target_layers=layers(model), reshape_transform=reshape,
                       **options) as cam:
        return np.asarray(cam(input_tensor=inputs, targets=targets, **call), dtype=np.float32)


class Seed(NamedTuple):
    seed: int
    models: dict[str, torch.nn.Module]
    randomised: dict[str, torch.nn.Module]
    inputs: torch.Tensor
    labels: list[int]
    others: list[int]
    regions: torch.Tensor
    accuracy: dict[str, float]
    train_seconds: dict[str, float]


def prepare_seed(seed: int, sizes: Sizes, models: list[str]) -> Seed:
    trained: dict[str, torch.nn.Module] = {}
    seconds: dict[str, float] = {}
    with torch.random.fork_rng():
        if "cnn" in models:
            trained["cnn"], seconds["cnn"] = synthetic_shapes.train_cnn(seed, sizes.cnn_steps)
        if "vit" in models:
            trained["vit"], seconds["vit"] = synthetic_shapes.train_vit(seed, sizes.vit_steps)
    data = synthetic_shapes.make_shapes(sizes.images, seed=HELD_OUT_SEED + seed)
    inputs = synthetic_shapes.model_input(data.images)
    randomised = {}
    for name, model in trained.items():
        for p in model.parameters():
            p.requires_grad_(False)
        copy = model_copy(model)
        for _ in cascading(copy, 0):  # every layer re-initialised: the cascade's last step
            pass
        randomised[name] = copy.eval()
    with torch.no_grad():
        accuracy = {name: float((m(inputs).argmax(dim=1) == data.labels).float().mean())
                    for name, m in trained.items()}
    labels = [int(c) for c in data.labels]
    others = [int(c) for c in other_classes(data.labels, len(synthetic_shapes.CLASSES), 0)]
    return Seed(seed, trained, randomised, inputs, labels, others, data.regions, accuracy,
                seconds)


def timed_maps(run: Callable[[torch.Tensor, list[int]], np.ndarray], s: Seed,
               batch: int) -> tuple[np.ndarray, np.ndarray]:
    run(s.inputs[:1], s.labels[:1])  # warm-up, untimed
    parts, seconds = [], []
    for start in range(0, len(s.labels), batch):
        began = time.perf_counter()
        parts.append(run(s.inputs[start:start + batch], s.labels[start:start + batch]))
        seconds.append(time.perf_counter() - began)
    return np.concatenate(parts), np.asarray(seconds)


def call_sizes(images: int, batch: int) -> np.ndarray:
    """The images of each timed call: ``batch`` at a time, the last call the rest."""
    return np.asarray([min(batch, images - start) for start in range(0, images, batch)])


def score_maps(maps: np.ndarray, other: np.ndarray, random: np.ndarray, seconds: np.ndarray,
               s: Seed, model: torch.nn.Module, sizes: Sizes) -> dict[str, np.ndarray]:
    """Per-image values of every column for one method's maps on one seed."""
    probs = [ClassifierOutputSoftmaxTarget(c) for c in s.labels]
    maps_t = torch.as_tensor(maps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-zero map scores as it is
        return {
            "PointingGame": PointingGame(TOLERANCE)(maps, s.regions),
            "RelevanceMassAccuracy": RelevanceMassAccuracy()(maps, s.regions),
            "RelevanceRankAccuracy": RelevanceRankAccuracy()(maps, s.regions),
            "Deletion": DeletionAUC(sizes.n_steps, batch_size=256)(s.inputs, maps, probs, model),
            "Insertion": InsertionAUC(sizes.n_steps, batch_size=256)(s.inputs, maps, probs, model),
            "ROADCombined": ROADCombined(ROAD_PERCENTILES, batch_size=256, seed=0,
                                         removal="rank")(s.inputs, maps, probs, model),
            "MPRT": spearman(maps_t.abs(), torch.as_tensor(random).abs()).numpy(),
            "RandomLogit": ssim(maps_t, torch.as_tensor(other)).numpy(),
            "ms": 1000 * seconds / call_sizes(len(s.labels), sizes.batch),
        }


def error_reason(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def run_ours(all_cases: list[Case], seeds: list[Seed], sizes: Sizes,
             values: dict[tuple, list]) -> dict[tuple, str]:
    """Our rows' per-seed values into ``values``; returns the n/a reasons."""
    reasons: dict[tuple, str] = {}
    for s in seeds:
        for case in all_cases:
            key = (case.model, case.info.name, case.variant, "ours")
            if case.reason or key in reasons:
                reasons.setdefault(key, case.reason)
                continue
            model = s.models[case.model]
            began = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-zero maps score as such
                    maps, seconds = timed_maps(lambda x, c, m=model, k=case: our_maps(
                        k, m, x, c, sizes), s, sizes.batch)
                    other = our_maps(case, model, s.inputs, s.others, sizes)
                    random = our_maps(case, s.randomised[case.model], s.inputs, s.labels,
                                      sizes)
            except Exception as error:  # the row is listed as n/a with this reason
                reasons[key] = error_reason(error)
                print(f"  seed {s.seed} {case.model} {case.info.name} {case.variant}: n/a, "
                      f"{reasons[key]}", flush=True)
                continue
            values.setdefault(key, []).append(
                score_maps(maps, other, random, seconds, s, model, sizes))
            print(f"  seed {s.seed} {case.model:3s} {case.info.name:18s} {case.variant:12s} "
                  f"{time.perf_counter() - began:6.1f} s", flush=True)
    return reasons


def run_peer(library: str, python: Path, seeds: list[Seed], sizes: Sizes, models: list[str],
             methods: dict[str, dict[str, str]], threads: int, variants: dict[str, str],
             values: dict[tuple, list]) -> dict[tuple, str]:
    """One peer's rows (its maps made in its own Python, scored here)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for s in seeds:
            data: dict[str, Any] = {"inputs": s.inputs, "labels": torch.tensor(s.labels),
                                    "other": torch.tensor(s.others)}
            for name in models:
                data[name] = s.models[name].state_dict()
                data[f"{name}_random"] = s.randomised[name].state_dict()
            torch.save(data, folder / f"seed{s.seed}.pt")
        job = {"library": library, "threads": threads, "batch": sizes.batch,
               "shapes_file": synthetic_shapes.__file__, "seeds": [s.seed for s in seeds],
               "methods": {m: methods[m] for m in models},
               "samples": sizes.sampling_samples}
        (folder / "job.json").write_text(json.dumps(job))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TQDM_DISABLE"] = "1"  # 1.5.7's perturbation methods show bars that cannot be hidden
        child = Path(__file__).resolve().parent / "quality_peer_child.py"
        began = time.perf_counter()
        subprocess.run([str(python), str(child), str(folder)], check=True, cwd=tmp, env=env)
        print(f"  {library}: {time.perf_counter() - began:.1f} s", flush=True)
        errors = json.loads((folder / "errors.json").read_text())
        with np.load(folder / "result.npz") as result:
            maps = {key: result[key] for key in result.files}
    reasons: dict[tuple, str] = {}
    for model in models:
        for name in methods[model]:
            key = (model, name, variants.get(name, ""), library)
            if f"{model}|{name}" in errors:
                reasons[key] = errors[f"{model}|{name}"]
                continue
            for s in seeds:
                p = f"{model}|{name}|{s.seed}"
                values.setdefault(key, []).append(score_maps(
                    maps[f"{p}|maps"], maps[f"{p}|other"], maps[f"{p}|random"],
                    maps[f"{p}|seconds"], s, s.models[model], sizes))
    return reasons


def summarise(values: dict[tuple, list], reasons: dict[tuple, str],
              order: list[tuple]) -> list[dict[str, Any]]:
    rows = []
    for key in order:
        model, method, variant, implementation = key
        row: dict[str, Any] = {"model": model, "method": method, "variant": variant,
                               "implementation": implementation,
                               "randomised": method in {i.name for i in registered_methods(
                                   randomised=True)}}
        if key in values:
            per_seed = values[key]
            row.update(status="ok", reason="", metrics={
                column: bootstrap_ci([seed_values[column] for seed_values in per_seed])
                for column, _, _ in COLUMNS})
            row["passed"] = {check: passes(check, row["metrics"][check]["mean"])
                             for check in ("MPRT", "RandomLogit")}
        else:
            row.update(status="n/a", reason=reasons.get(key, "not run"), metrics={}, passed={})
        rows.append(row)
    return rows


def check_mprt_shortcut(s: Seed) -> float:
    """The largest difference between our MPRT column and
    ``metrics.sanity.MPRT`` (full cascade) for Grad-CAM on the CNN."""
    model = s.models["cnn"]
    case = Case("cnn", get_method("gradcam"), "", "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = spearman(torch.as_tensor(our_maps(case, model, s.inputs, s.labels, MODES["quick"])).abs(),
                        torch.as_tensor(our_maps(case, s.randomised["cnn"], s.inputs,
                                                 s.labels, MODES["quick"])).abs()).numpy()
        library = MPRT(independent=False)(s.inputs, [ClassifierOutputTarget(c) for c in s.labels],
                                          model, "gradcam", [model.features[-1]]).values
    return float(np.abs(ours - library).max())


def write_whole(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # whole or not at all


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    sizes = meta["sizes"]
    mode = ("QUICK RUN (smoke test, not the published numbers)" if meta["quick"] else
            "full run" if sizes == MODES["full"]._asdict() else "run with its own sizes")
    lines = ["<!-- written by bench/quality_benchmark.py; do not edit by hand -->",
             "",
             f"**{mode}**: `{meta['command']}`, {sizes['seeds']} seed(s) x "
             f"{sizes['images']} held-out images, CNN {sizes['cnn_steps']} / ViT "
             f"{sizes['vit_steps']} training steps, {meta['threads']} torch thread(s), "
             f"{meta['minutes']:.1f} minutes on {meta['machine']}. Held-out accuracy: " +
             ", ".join(f"{FAMILIES[m]} {v:.2f}" for m, v in meta["accuracy"].items()) +
             f". Sanity thresholds: MPRT < {SANITY_THRESHOLDS['MPRT']:g}, random logit < "
             f"{SANITY_THRESHOLDS['RandomLogit']:g}. Each cell: mean [95% CI].", ""]
    for model, title in FAMILIES.items():
        if any(r["model"] == model for r in rows):
            lines += [f"### {title}", "", markdown_table(rows, model), ""]
    lines += ["### Which method? (from the tables above)", ""] + situations(rows) + [""]
    return "\n".join(lines)


#: options that say where things are, not what is measured: left out of the
#: command that the results record
_PLACES = ("--reference-python", "--torchcam-venv", "--json", "--markdown", "--recommended")


def sizes_given(argv: list[str]) -> list[str]:
    """``argv`` without the options of :data:`_PLACES` (and their values)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _PLACES:
            skip = True
        elif not arg.startswith(tuple(f"{place}=" for place in _PLACES)):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smoke-run sizes")
    for knob in Sizes._fields:
        parser.add_argument(f"--{knob.replace('_', '-')}", type=str if knob.endswith("methods")
                            else int, default=None, help=f"default: full {getattr(MODES['full'], knob)}, "
                            f"quick {getattr(MODES['quick'], knob)}")
    parser.add_argument("--models", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--methods", nargs="+", default=None, help="registry names (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in every process (default 1: on a shared CPU two "
                             "threads that wait for each other made a run several times slower)")
    parser.add_argument("--reference-python", default="/work/venv-ref/bin/python",
                        help="grad-cam 1.5.7's Python ('none': leave it out)")
    parser.add_argument("--torchcam-venv", default=str(ROOT / "bench" / ".cache" / "torchcam-0.5.0"),
                        help="torchcam 0.5.0's environment, made when missing ('none': leave it out)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "quality_results.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "quality_table.md"))
    parser.add_argument("--recommended",
                        default=str(ROOT / "pytorch_grad_cam" / "app" / "recommended_table.py"),
                        help="the module of --method recommended ('none': do not write it)")
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    base = MODES["quick" if args.quick else "full"]
    sizes = Sizes(*[getattr(args, k) if getattr(args, k) is not None else getattr(base, k)
                    for k in Sizes._fields])
    torch.set_num_threads(args.threads)
    methods = registered_methods() if args.methods is None else [
        i for i in registered_methods() if i.name in args.methods]
    started = time.perf_counter()
    all_cases = cases(args.models, methods, sizes)
    seeds = []
    for seed in range(sizes.seeds):
        seeds.append(prepare_seed(seed, sizes, args.models))
        print(f"seed {seed}: trained {seeds[-1].train_seconds} s, held-out accuracy "
              f"{seeds[-1].accuracy}", flush=True)
    values: dict[tuple, list] = {}
    reasons = run_ours(all_cases, seeds, sizes, values)
    order = [(c.model, c.info.name, c.variant, "ours") for c in all_cases]
    chosen = {c.info.name for c in all_cases}
    classes = {name: cls for name, _, cls in LIBRARY_METHODS}
    peers = []
    if args.reference_python != "none":
        peers.append(("grad-cam 1.5.7", Path(args.reference_python),
                      {m: classes[m] for m in GRADCAM157_METHODS if m in chosen}))
    if args.torchcam_venv != "none":
        peers.append(("torchcam 0.5.0", ensure_environment(Path(args.torchcam_venv), *TORCHCAM),
                      {m: c for m, c in TORCHCAM_CLASSES.items() if m in chosen}))
    for library, python, shared in peers:
        per_model = {m: {n: c for n, c in shared.items()
                         if not (m == "cnn" and n == "legrad")} for m in args.models}
        variants = {n: plain_variant(get_method(n), sizes) for n in shared}
        reasons.update(run_peer(library, python, seeds, sizes, args.models, per_model,
                                args.threads, variants, values))
        order += [(m, n, variants[n], library) for m in args.models for n in per_model[m]]
    # each peer row right after our row of the same method
    rank = {key: index for index, key in enumerate(order)}
    order.sort(key=lambda k: (k[0], rank.get((k[0], k[1], k[2], "ours"), rank[k]),
                              k[3] != "ours", rank[k]))
    rows = summarise(values, reasons, order)
    shortcut = check_mprt_shortcut(seeds[0]) if "cnn" in args.models else None
    meta = {"quick": args.quick, "sizes": sizes._asdict(), "threads": args.threads,
            "command": " ".join(["python bench/quality_benchmark.py", *sizes_given(given)]),
            "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
            "minutes": (time.perf_counter() - started) / 60,
            "accuracy": {m: float(np.mean([s.accuracy[m] for s in seeds])) for m in args.models},
            "mprt_shortcut_max_difference": shortcut}
    choices = recommendations(rows)
    write_whole(Path(args.json), json.dumps({"meta": meta, "rows": rows, "recommended": choices},
                                            indent=1) + "\n")
    write_whole(Path(args.markdown), markdown(rows, meta))
    if args.recommended != "none":
        write_whole(Path(args.recommended), recommended_module(choices, meta["command"]))
    print(f"done in {meta['minutes']:.1f} minutes; MPRT column against metrics.sanity.MPRT: "
          f"largest difference {shortcut}; recommended {choices}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
