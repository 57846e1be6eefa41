"""ROAD under grad-cam 1.5.7 and under this library, on the same inputs.

    python bench/road_parity.py --reference-python /opt/venv-ref/bin/python

Runs the calls of 1.5.7's metrics tutorial (``ROADMostRelevantFirst(percentile=75)``,
``ROADLeastRelevantFirst(percentile=25)``, the two averages and ``ROADCombined`` over
20, 40, 60, 80) under 1.5.7 itself (``reference.run_reference``: a child process with
the 1.5.7 source tree) and here, each call after ``torch.manual_seed(0)`` (1.5.7 draws
the imputation's noise from torch's global generator), and prints both and their largest
difference. The inputs are ``SETUP``: a fixed linear model (3 logits of a 3 x 12 x 12
image) and two maps with ties (a flat zero area and a clipped plateau at 1), which is
where 1.5.7's percentile threshold and an exact pixel count disagree. The last block
shows our ``removal="rank"`` for comparison. ``tests/metrics/test_road_reference.py``
holds the 1.5.7 values this script printed (``SETUP`` is repeated there; change both
together).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's library
from reference import run_reference  # noqa: E402

SETUP = '''
import numpy as np
import torch

rng = np.random.default_rng(0)
images = torch.from_numpy(rng.normal(size=(2, 3, 12, 12)).astype(np.float32))
weights = torch.from_numpy(rng.normal(size=(3, 3 * 12 * 12)).astype(np.float32) / 20)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3, bias=False))
with torch.no_grad():
    model[1].weight.copy_(weights)
model.eval()
y, x = np.mgrid[0:12, 0:12] / 11.0
cams = np.stack([np.clip(1.6 - 3 * np.hypot(y - 0.3, x - 0.6), 0, 1),
                 np.clip(2 * (x + 0.5 * y) - 1.2, 0, 1)]).astype(np.float32)
'''

CALLS = '''
from pytorch_grad_cam.metrics.road import (ROADCombined, ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage, ROADMostRelevantFirst, ROADMostRelevantFirstAverage)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
metrics = {
    "MoRF75": ROADMostRelevantFirst(percentile=75),
    "LeRF25": ROADLeastRelevantFirst(percentile=25),
    "MoRFAverage": ROADMostRelevantFirstAverage(percentiles=[20, 40, 60, 80]),
    "LeRFAverage": ROADLeastRelevantFirstAverage(percentiles=[20, 40, 60, 80]),
    "Combined": ROADCombined(percentiles=[20, 40, 60, 80]),
}
result = {}
for name, metric in metrics.items():
    torch.manual_seed(0)
    result[name] = np.asarray(metric(images, cams, targets, model), dtype=np.float64)
'''


def ours(extra: str = "") -> dict[str, np.ndarray]:
    """``CALLS`` run here (``extra``: keywords added to every metric's constructor)."""
    code = SETUP + CALLS
    if extra:
        for name in ("percentile=75", "percentile=25", "percentiles=[20, 40, 60, 80]"):
            code = code.replace(f"({name})", f"({name}, {extra})")
    scope: dict = {}
    exec(compile(code, "<road calls>", "exec"), scope)
    return scope["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", default=None,
                        help="the interpreter that runs grad-cam 1.5.7 (needs scikit-learn)")
    args = parser.parse_args()
    reference = run_reference(SETUP + CALLS, args.reference_python)
    here = ours()
    rank = ours('removal="rank"')
    print(f"{'metric':<12} {'image':>5} {'1.5.7':>12} {'ours':>12} {'diff':>9} "
          f"{'ours, rank':>12}")
    worst = 0.0
    for name in reference:
        for index, (a, b, c) in enumerate(zip(reference[name], here[name], rank[name])):
            worst = max(worst, abs(a - b))
            print(f"{name:<12} {index:>5} {a:>12.8f} {b:>12.8f} {abs(a - b):>9.1e} {c:>12.8f}")
    print(f"largest difference from 1.5.7: {worst:.2e}")
    print("1.5.7's values (for the test):")
    for name, values in reference.items():
        print(f'    "{name}": {[float(v) for v in values]!r},')


if __name__ == "__main__":
    main()
