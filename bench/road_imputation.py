"""The time of one ROAD imputation: grad-cam 1.5.7's NoisyLinearImputer against ours.

    python bench/road_imputation.py --reference-python /opt/venv-ref/bin/python

The same inputs on both sides: a seeded 3 x 224 x 224 image and a CAM-like map
(a ReLU'd random 7 x 7 map upsampled bilinearly: large connected regions and a flat
zero area), and the masks of 1.5.7's ROAD at percentiles 20, 50 and 80, most and least
relevant first (its threshold rule). Each imputer is called as 1.5.7's metrics call it,
one image at a time (``imputer(image, mask)``), ``--repeats`` times after a warm-up
call; the median is printed. 1.5.7 runs in a child process of ``--reference-python``
(``reference.run_reference``), ours here; both sides take their inputs from the same
seeded code. Ours is timed with each solver (``"direct"``: SciPy's sparse LU, the
default when SciPy is installed; ``"cg"``: conjugate gradients in torch, the fallback
without SciPy), and the largest difference of the imputed images from 1.5.7's (noise 0
on both sides) is printed too.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's library
from reference import run_reference  # noqa: E402

SETUP = '''
import time
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads({threads})
generator = torch.Generator().manual_seed(0)
image = torch.randn(3, 224, 224, generator=generator)
low = torch.relu(torch.randn(1, 1, 7, 7, generator=generator))
cam = F.interpolate(low, size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
cam = (cam - cam.min()) / (cam.max() - cam.min())
masks = {{}}
for percentile in (20, 50, 80):  # 1.5.7's rule: kept = map < np.percentile(map, p)
    for order, values in (("MoRF", cam), ("LeRF", 1 - cam)):
        threshold = np.percentile(values.numpy(), percentile)
        masks[f"{{order}} {{percentile}}"] = (values < threshold).float()


def timed(imputer, repeats):
    """{{case: (median seconds, imputed image)}} of imputer(image, mask) per mask."""
    out = {{}}
    for name, mask in masks.items():
        result = imputer(image, mask)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            imputer(image, mask)
            times.append(time.perf_counter() - start)
        out[name] = (float(np.median(times)), result.numpy())
    return out
'''

REFERENCE = '''
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
result = {{}}
for name, (seconds, imputed) in timed(NoisyLinearImputer(noise=0.0), {repeats}).items():
    result[name + " seconds"] = np.asarray(seconds)
    result[name + " image"] = imputed
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", default=None,
                        help="the interpreter that runs grad-cam 1.5.7 (needs scikit-learn)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--solvers", default="direct,cg")
    args = parser.parse_args()
    setup = SETUP.format(threads=args.threads)
    reference = run_reference(setup + REFERENCE.format(repeats=args.repeats),
                              args.reference_python)
    scope: dict = {}
    exec(compile(setup, "<road imputation setup>", "exec"), scope)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    solvers = args.solvers.split(",")
    ours = {solver: scope["timed"](NoisyLinearImputer(noise=0.0, solver=solver), args.repeats)
            for solver in solvers}
    header = f"{'mask':<8} {'removed':>7} {'1.5.7 ms':>9}"
    for solver in solvers:
        header += f" {solver + ' ms':>10} {'x 1.5.7':>7} {'max diff':>9}"
    print(header)
    totals = dict.fromkeys(solvers, 0.0)
    reference_total = 0.0
    for name, mask in scope["masks"].items():
        ref_seconds = float(reference[name + " seconds"])
        reference_total += ref_seconds
        line = f"{name:<8} {int((mask == 0).sum()):>7} {ref_seconds * 1e3:>9.1f}"
        for solver in solvers:
            seconds, imputed = ours[solver][name]
            totals[solver] += seconds
            diff = float(np.abs(imputed - reference[name + " image"]).max())
            line += f" {seconds * 1e3:>10.1f} {seconds / ref_seconds:>7.2f} {diff:>9.1e}"
        print(line)
    print(f"{'total':<16} {reference_total * 1e3:>9.1f}"
          + "".join(f" {totals[s] * 1e3:>10.1f} {totals[s] / reference_total:>7.2f} {'':>9}"
                    for s in solvers))
    ratios = {s: statistics.median(ours[s][n][0] / float(reference[n + " seconds"])
                                   for n in scope["masks"]) for s in solvers}
    print(f"median of {args.repeats} calls each, {args.threads} torch threads; median over "
          "the masks of ours / 1.5.7: " + ", ".join(f"{s} {r:.2f}" for s, r in ratios.items()))


if __name__ == "__main__":
    main()
