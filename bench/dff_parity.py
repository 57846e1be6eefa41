"""Deep Feature Factorization under grad-cam 1.5.7 and under this library, on the same input.

    python bench/dff_parity.py --reference-python /work/venv-ref/bin/python

Runs the call of 1.5.7's "Deep Feature Factorizations" tutorial,
``DeepFeatureFactorization(model=model, target_layer=model.layer4,
computation_on_concepts=model.fc)`` then ``dff(input_tensor, n_components)``,
on ``SETUP`` (a seeded ``resnet50(weights=None)``, two seeded images) under
1.5.7 itself (``reference.run_reference``: a child process with the 1.5.7
source tree; it needs scikit-learn) and here with every NMF solver this
interpreter can run ("cd", the torch port of scikit-learn's solver, always;
"sklearn" where scikit-learn is installed; "auto", the default, is one of
those two). Prints, per solver, the largest difference from 1.5.7 of the
concepts, the heat maps and the concept outputs (relative to the largest
value of each), and the time of one call of each. The numbers of
``tests/feature_factorization/test_dff_reference.py`` come from the same
call on a smaller input, ``SMALL`` (``--test-values`` prints them).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's library
from reference import run_reference  # noqa: E402

SETUP = '''
import time
import warnings

import numpy as np
import torch
import torchvision

warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning at max_iter
torch.set_num_threads(2)
torch.manual_seed(0)
model = torchvision.models.resnet50(weights=None).eval()
images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
N_COMPONENTS = 16
'''

# the input of tests/feature_factorization/test_dff_reference.py (repeated there): the model
# is the identity then a linear head on the mean, so the activations are the input: 1 image, 6 channels
# (0-2 after a ReLU, 3 with a positive minimum, 4-5 with negative values), 4 x 4
SMALL = '''
import time
import warnings

import numpy as np
import torch

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
activations = rng.normal(size=(1, 6, 4, 4)).astype(np.float32)
activations[:, :3] = np.maximum(activations[:, :3], 0)
activations[:, 3] = np.abs(activations[:, 3]) + 0.5
head = rng.normal(size=(3, 6)).astype(np.float32)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer4 = torch.nn.Identity()
        self.fc = torch.nn.Linear(6, 3, bias=False)

    def forward(self, x):
        return self.fc(self.layer4(x).mean(dim=(2, 3)))


model = Model().eval()
with torch.no_grad():
    model.fc.weight.copy_(torch.from_numpy(head))
images = torch.from_numpy(activations)
N_COMPONENTS = 3
'''

CALL = '''
from pytorch_grad_cam import DeepFeatureFactorization

dff = DeepFeatureFactorization(model=model, target_layer=model.layer4,
                               computation_on_concepts=model.fc{extra})
start = time.perf_counter()
concepts, batch_explanations, concept_outputs = dff(images, N_COMPONENTS)
seconds = time.perf_counter() - start
result = {{"concepts": np.asarray(concepts, dtype=np.float64),
          "explanations": np.asarray(batch_explanations, dtype=np.float64),
          "outputs": np.asarray(concept_outputs, dtype=np.float64),
          "seconds": np.asarray(seconds)}}
'''


def ours(solver: str) -> dict[str, np.ndarray]:
    """``CALL`` run here with ``solver=solver``."""
    scope: dict = {}
    exec(compile(SETUP + CALL.format(extra=f", solver={solver!r}"), "<dff call>", "exec"), scope)
    return scope["result"]


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", default=None,
                        help="the interpreter that runs grad-cam 1.5.7 (needs scikit-learn)")
    parser.add_argument("--test-values", action="store_true",
                        help="print 1.5.7's results on SMALL, the test's input, instead")
    args = parser.parse_args()
    if args.test_values:
        small = run_reference(SMALL + CALL.format(extra=""), args.reference_python)
        np.set_printoptions(precision=8, floatmode="maxprec", linewidth=100)
        for key in ("concepts", "explanations", "outputs"):
            print(f"{key.upper()} = np.{np.float32(small[key])!r}")
        return
    reference = run_reference(SETUP + CALL.format(extra=""), args.reference_python)
    solvers = ["cd", "sklearn"] if importlib.util.find_spec("sklearn") else ["cd"]
    print(f"1.5.7: {float(reference['seconds']):.3f} s a call")
    print(f"{'solver':<8} {'concepts':>9} {'maps':>9} {'outputs':>9} {'seconds':>8}")
    for solver in solvers:
        here = ours(solver)
        diffs = [relative_difference(reference[key], here[key])
                 for key in ("concepts", "explanations", "outputs")]
        print(f"{solver:<8} " + " ".join(f"{d:>9.1e}" for d in diffs)
              + f" {float(here['seconds']):>8.3f}")


if __name__ == "__main__":
    main()
