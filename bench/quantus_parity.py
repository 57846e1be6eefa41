#!/usr/bin/env python
"""The metrics against Quantus 0.6.0: faithfulness correlation, relevance
mass and rank accuracy, the energy-based pointing game, sparseness and
complexity on the same maps.

    python bench/quantus_parity.py [--images 4] [--seeds 10] [--size 112] [--threads 1]

Quantus is installed only in the benchmark's own environment: on the first
run the script makes a virtual environment ``bench/.cache/quantus-0.6.0/``
(``--venv`` to put it elsewhere) that sees this interpreter's packages
(torch, numpy, scipy, ...) through a ``.pth`` file, runs ``pip install
quantus==0.6.0`` in it (which adds only what Quantus needs beyond them),
and runs itself again there (this repository's library first on ``sys.path``). Later
runs reuse it. The package never depends on Quantus.

Inputs: torchvision ``resnet18(weights=None)``, seed 0, eval mode (its
classifier is drawn by torch's default initialisation, so the class scores
differ), ``--images`` random images of ``--size`` pixels (seed 1), each
explained for its top class with GradCAM on ``layer4[-1]``; the ground
truth of image i is a fixed box. Quantus gets the maps as B x 1 x H x W
and the boxes as masks of the same shape, and scores logits
(``softmax=False``), as ours do with ``ClassifierOutputTarget``.

Each row is a metric, our value and Quantus's (means over the images), and
the largest absolute difference over the images. Where Quantus's defaults
depart from the paper, a second row makes the setting equal (what is equal
is said in the row's note).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's library
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peer_env beside this script
from peer_env import ensure_environment  # noqa: E402

from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.metrics import (  # noqa: E402
    Complexity,
    EnergyPointingGame,
    EntropyComplexity,
    FaithfulnessCorrelation,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    Sparseness,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

VERSION = "0.6.0"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = ROOT / "bench" / ".cache" / f"quantus-{VERSION}"
CHILD = "GRAD_CAM_QUANTUS_PARITY_CHILD"


def quantus_version() -> str | None:
    try:
        import quantus
    except ImportError:
        return None
    return str(quantus.__version__)


def relaunch_in_environment(path: Path) -> None:
    python = ensure_environment(path, "quantus", VERSION)
    env = dict(os.environ)
    env[CHILD] = "1"
    os.execve(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:], env)


class OneChannel(torch.nn.Module):
    """The network on a grey image (its one channel repeated three times):
    then Quantus's features, single input values, are pixels."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))


def boxes(count: int, size: int) -> np.ndarray:
    """Image i's ground truth: a box of half the side, moved along the
    diagonal by i / count of the free space, as B x H x W masks."""
    masks = np.zeros((count, size, size), dtype=bool)
    side, free = size // 2, size - size // 2
    for i in range(count):
        at = (free * i) // max(1, count)
        masks[i, at:at + side, at // 2:at // 2 + side] = True
    return masks


def tied_at_k(maps: np.ndarray, masks: np.ndarray) -> int:
    """How many maps have another pixel equal to their K-th highest value
    (K = the ground truth's pixels), where rank accuracy's tie rule matters."""
    count = 0
    for cam, mask in zip(maps, masks):
        kth = np.sort(cam.ravel())[::-1][int(mask.sum()) - 1]
        count += int((cam == kth).sum() > 1)
    return count


class Row:
    def __init__(self, metric: str, ours: np.ndarray, theirs: np.ndarray, note: str) -> None:
        self.metric, self.note = metric, note
        self.ours, self.theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)

    def render(self) -> str:
        diff = float(np.max(np.abs(self.ours - self.theirs)))
        note = self.note.replace("|", "\\|")  # a Markdown table row
        return (f"| {self.metric} | {self.ours.mean():.6f} | {self.theirs.mean():.6f} | "
                f"{diff:.1e} | {note} |")


def faithfulness_rows(quantus: Any, model: torch.nn.Module, gray: torch.nn.Module,
                      x: torch.Tensor, x1: torch.Tensor, maps: np.ndarray, maps1: np.ndarray,
                      classes: list[int], seeds: int) -> list[Row]:
    from quantus.functions.perturb_func import batch_baseline_replacement_by_indices

    targets = [ClassifierOutputTarget(c) for c in classes]
    y = np.asarray(classes)
    kwargs = {"nr_runs": 100, "subset_size": 224, "perturb_baseline": 0.0,
              "disable_warnings": True, "return_aggregate": False}

    def theirs(net: torch.nn.Module, inputs: torch.Tensor, cams: np.ndarray, seed: int,
               perturb_func: Callable | None = None) -> np.ndarray:
        np.random.seed(seed)  # Quantus draws its subsets from numpy's global generator
        metric = quantus.FaithfulnessCorrelation(perturb_func=perturb_func, **kwargs)
        return np.asarray(metric(model=net, x_batch=inputs.numpy(), y_batch=y,
                                 a_batch=cams[:, None], device="cpu", batch_size=len(y)))

    # 1. defaults (baseline 0 on both sides): Quantus's subsets are of input
    #    values (C x H x W), ours of pixels: the distributions over seeds
    ours = np.stack([FaithfulnessCorrelation(seed=s)(x, maps, targets, model)
                     for s in range(seeds)])
    quantus_values = np.stack([theirs(model, x, maps, s) for s in range(seeds)])
    rows = [Row(f"FaithfulnessCorrelation, mean over {seeds} seeds", ours.mean(0),
                quantus_values.mean(0),
                "3 channels: Quantus draws 224 of the 3 x H x W input values (a pixel "
                "partly replaced, its relevance counted once per chosen channel), we draw "
                "224 whole pixels; subsets differ, so only the distributions compare "
                f"(std over seeds: ours {ours.std(0).mean():.3f}, "
                f"Quantus {quantus_values.std(0).mean():.3f})")]

    # 2. the setting made equal: one channel (values = pixels) and Quantus's
    #    own subsets fed to ours through ``subsets=``
    drawn: list[np.ndarray] = []

    def recording(arr: np.ndarray, indices: np.ndarray, **extra: Any) -> np.ndarray:
        drawn.append(np.array(indices))
        return batch_baseline_replacement_by_indices(arr=arr, indices=indices, **extra)

    quantus_gray = theirs(gray, x1, maps1, 0, recording)
    subsets = np.stack(drawn, axis=1)  # B x runs x 224
    ours_gray = FaithfulnessCorrelation()(x1, maps1, targets, gray, subsets=subsets)
    rows.append(Row("FaithfulnessCorrelation, Quantus's subsets", ours_gray, quantus_gray,
                    "one-channel input (grey, repeated to 3 channels inside the model), "
                    "Quantus's 100 subsets of 224 pixels per image given to ours as "
                    "subsets=; Quantus normalises the map by its maximum (no effect on a "
                    "correlation)"))
    return rows


def run(images: int, size: int, seeds: int, threads: int) -> None:
    import quantus

    warnings.simplefilter("ignore")  # Quantus's parameterisation and size warnings
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    gray = OneChannel(net).eval()
    x = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(1))
    x1 = x.mean(dim=1, keepdim=True)
    with torch.no_grad():
        classes = net(x).argmax(dim=1).tolist()
    targets = [ClassifierOutputTarget(c) for c in classes]
    maps = GradCAM(net, [net.layer4[-1]])(x, targets)
    maps1 = GradCAM(gray, [net.layer4[-1]])(x1, targets)
    masks = boxes(images, size)
    y = np.asarray(classes)
    plain = {"model": net, "x_batch": x.numpy(), "y_batch": y, "a_batch": maps[:, None],
             "s_batch": masks[:, None], "device": "cpu"}
    quiet = {"disable_warnings": True, "return_aggregate": False}

    def call(metric: Any, **change: Any) -> np.ndarray:
        return np.asarray(metric(**dict(plain, **change)), dtype=np.float64)

    rows = faithfulness_rows(quantus, net, gray, x, x1, maps, maps1, classes, seeds)
    rows.append(Row("RelevanceMassAccuracy", RelevanceMassAccuracy()(maps, masks),
                    call(quantus.RelevanceMassAccuracy(**quiet)),
                    "Quantus normalises by the maximum (no effect on the ratio)"))
    rows.append(Row("RelevanceRankAccuracy", RelevanceRankAccuracy()(maps, masks),
                    call(quantus.RelevanceRankAccuracy(**quiet)),
                    "pixels tied with the K-th value: ours count them by share, Quantus in "
                    f"np.argsort's order ({tied_at_k(maps, masks)} of {images} maps have "
                    "such ties here)"))
    rows.append(Row("EnergyPointingGame vs AttributionLocalisation",
                    EnergyPointingGame()(maps, masks),
                    call(quantus.AttributionLocalisation(**quiet)),
                    "Quantus: abs, normalised by the maximum, inside / (total + 1e-9)"))
    rows.append(Row("Sparseness", Sparseness()(maps),
                    call(quantus.Sparseness(**quiet)),
                    "Quantus adds 1e-7 to every value of |map| / max|map| before the Gini "
                    "index (the paper's Gini index has no offset)"))
    scaled = np.abs(maps) / np.abs(maps).reshape(images, -1).max(1)[:, None, None] + 1e-7
    rows.append(Row("Sparseness, Quantus's offset", Sparseness()(scaled.astype(np.float32)),
                    call(quantus.Sparseness(**quiet)),
                    "ours given |map| / max|map| + 1e-7, as Quantus preprocesses the map"))
    rows.append(Row("EntropyComplexity vs Complexity", EntropyComplexity()(maps),
                    call(quantus.Complexity(**quiet)),
                    "Bhatt et al.'s entropy of |map| / sum |map|; Quantus adds 1e-12 inside the "
                    "logarithm"))
    rows.append(Row("Complexity (ours) vs Complexity (Quantus)", Complexity()(maps),
                    call(quantus.Complexity(**quiet)),
                    "different metrics under one name: ours is Poppi et al.'s mean |map|, "
                    "Quantus's Bhatt et al.'s entropy of |map| / sum |map| (ours: "
                    "EntropyComplexity, the row above); Quantus has no metric for Poppi et al.'s"))
    print(f"quantus {quantus.__version__}, torch {torch.__version__}, resnet18 "
          f"(weights=None, seed 0), {images} images {size} x {size}, GradCAM layer4[-1]")
    print("| metric | ours | Quantus | max abs difference | note |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row.render(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=112, help="image side in pixels")
    parser.add_argument("--seeds", type=int, default=10,
                        help="seeds of the faithfulness-correlation distributions")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: on a shared CPU more threads "
                             "wait for each other)")
    args = parser.parse_args()
    if quantus_version() != VERSION:
        if os.environ.get(CHILD):
            raise SystemExit(f"quantus {VERSION} is not importable in {sys.executable} "
                             f"(found {quantus_version()})")
        relaunch_in_environment(args.venv)
    run(args.images, args.size, args.seeds, args.threads)


if __name__ == "__main__":
    main()
