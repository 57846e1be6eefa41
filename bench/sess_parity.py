"""SESS parity with grad-cam 1.5.7: writes tests/data/sess_reference_157.npz.

    python bench/sess_parity.py            # run both, print r per case, write the file
    python bench/sess_parity.py --no-write # only compare

A seeded torchvision resnet18 (weights=None, eval) explains seeded inputs
(two 48 x 48 images, one 48 x 72 and one 32 x 32 image) at layer3[-1] with SESS at the
settings of CASES, once under grad-cam 1.5.7 (``reference.run_reference``,
a child process) and once with this library. Printed per case: the Pearson
r and the largest absolute difference between the two libraries' maps.
Stored: 1.5.7's maps (float16), the model's logits for the inputs (the
fingerprint that tests/methods/test_sess.py checks first) and the cases as JSON,
which tests/methods/test_sess.py reruns with this library.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import run_reference  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "sess_reference_157.npz"

#: the seeded model and inputs; tests/methods/test_sess.py builds the same (its
#: ``parity_setup``), and the stored logits tell when they differ
SETUP = """
import torch, torchvision
import torch.nn.functional as F
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()
generator = torch.Generator().manual_seed(1)
def smooth_noise(batch, height, width):
    coarse = torch.randn(batch, 3, height // 8, width // 8, generator=generator)
    fine = torch.randn(batch, 3, height, width, generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bilinear",
                         align_corners=False) + 0.3 * fine
inputs = {"square": smooth_noise(2, 48, 48), "wide": smooth_noise(1, 48, 72),
          "small": smooth_noise(1, 32, 32)}
"""

#: name, input, base method (1.5.7 class name), targets (class indices or
#: None), SESS keyword arguments
CASES: list[dict[str, Any]] = [
    {"name": "gradcam_default_scales", "input": "small", "method": "GradCAM",
     "targets": None, "kwargs": {}},
    {"name": "gradcam_max_wide", "input": "wide", "method": "GradCAM",
     "targets": [7], "kwargs": {"num_scales": 4, "pool": "max"}},
    {"name": "gradcam_prefilter_overlap_nosmooth", "input": "square", "method": "GradCAM",
     "targets": [3, 500],
     "kwargs": {"num_scales": 3, "step_size": 24, "pre_filter_ratio": 0.5, "smooth": False}},
    {"name": "layercam_theta_logits", "input": "square", "method": "LayerCAM",
     "targets": None,
     "kwargs": {"num_scales": 3, "theta": 0.2, "use_softmax_scores": False}},
    {"name": "gradcamplusplus_downscale_wide", "input": "wide", "method": "GradCAMPlusPlus",
     "targets": [1],
     "kwargs": {"window_size": 40, "step_size": 20, "scales": [44, 60], "smooth": False}},
    {"name": "gradcam_max_prefilter_wide", "input": "wide", "method": "GradCAM",
     "targets": None, "kwargs": {"num_scales": 3, "pool": "max", "pre_filter_ratio": 0.3}},
]

RUN = """
import json
import numpy as np
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
CASES = json.loads({cases!r})
result = {{"logits_" + key: model(x).detach().numpy() for key, x in inputs.items()}}
for case in CASES:
    x = inputs[case["input"]]
    targets = (None if case["targets"] is None
               else [ClassifierOutputTarget(c) for c in case["targets"]])
    cam = make_sess(case)
    result[case["name"]] = cam(x, targets=targets)
"""

REFERENCE = """
import pytorch_grad_cam
from pytorch_grad_cam import SESS
def make_sess(case):
    method = getattr(pytorch_grad_cam, case["method"])
    return SESS(model, [model.layer3[-1]], base_method=method, **case["kwargs"])
"""

OURS = """
import pytorch_grad_cam
from pytorch_grad_cam.sess import SESS
def make_sess(case):
    method = getattr(pytorch_grad_cam, case["method"])
    return SESS(model, [model.layer3[-1]], base_method=method, progress=False,
                **case["kwargs"])
"""


def run_ours(code: str) -> dict[str, np.ndarray]:
    scope: dict[str, Any] = {}
    exec(code, scope)
    return scope["result"]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="compare only")
    args = parser.parse_args()
    job = RUN.format(cases=json.dumps(CASES))
    start = time.perf_counter()
    reference = run_reference(SETUP + REFERENCE + job)
    reference_time = time.perf_counter() - start
    start = time.perf_counter()
    ours = run_ours(SETUP + OURS + job)
    ours_time = time.perf_counter() - start
    for key in reference:
        if key.startswith("logits_"):
            drift = np.abs(reference[key] - ours[key]).max()
            print(f"{key}: max |difference| {drift:.2e} (the same seeded model in both)")
    print(f"{'case':40s} {'Pearson r':>10s} {'max |diff|':>11s}")
    for case in CASES:
        name = case["name"]
        r = pearson(reference[name], ours[name])
        print(f"{name:40s} {r:10.8f} {np.abs(reference[name] - ours[name]).max():11.2e}")
    print(f"time (all cases): grad-cam 1.5.7 {reference_time:.1f} s, ours {ours_time:.1f} s")
    if not args.no_write:
        stored = {key: (value.astype(np.float32) if key.startswith("logits_")
                        else value.astype(np.float16)) for key, value in reference.items()}
        stored["cases"] = np.array(json.dumps(CASES))
        OUT.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(OUT, **stored)
        print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
