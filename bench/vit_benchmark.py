#!/usr/bin/env python
"""The Vision Transformer methods: agreement with torchcam 0.5.0's LeGrad and
the cost of each method (LeGrad, gradient-weighted attention, attention
rollout, AttnLRP) against its floor.

    python -m venv .venv-bench && .venv-bench/bin/pip install -e . torchcam==0.5.0
    .venv-bench/bin/python bench/vit_benchmark.py [--repeats 7] [--batches 1 8]

torchcam is installed only in the benchmark's own environment; the package
never depends on it (without it, the torchcam rows are left out).

Model: torchvision ``vit_b_16(weights=None)``, seed 0, eval mode (its
classifier, which torchvision starts at zero, drawn from N(0, 0.02)), 224 x 224
random inputs (seed 1), the class 3 as the target of every image. Rows:

- ``legrad`` against torchcam's ``LeGrad`` on the same blocks (all twelve),
  the same inputs and the same class: the Pearson r of the two maps per
  image (torchcam's 14 x 14 map scaled to 224 x 224 by our
  ``scale_cam_image``, as ours is) and the median time of one call each. A
  torchcam call is what its users run: a forward pass with its hooks, then
  the extractor.
- each method's median time against its floor, measured in the same run:
  attention rollout against one plain forward pass (``torch.inference_mode``);
  LeGrad and gradient-weighted attention against one forward pass plus one
  backward pass of the class score to the input of the first block (frozen
  parameters, so no parameter gradients: what any gradient method must at
  least pay); AttnLRP against one forward pass plus one backward pass of
  the class score to the input pixels, times the pixels (plain gradient x
  input, frozen parameters): the same passes without AttnLRP's rules.

Every timing is the median of ``--repeats`` calls after one warm-up call, in
one process, one case after another. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchvision

from pytorch_grad_cam import AttentionRollout, AttnLRP, GradientWeightedAttention, LeGrad
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

CLASS = 3


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def torchcam_legrad(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], np.ndarray]:
    from torchcam.methods import LeGrad as TorchcamLeGrad

    blocks = list(model.encoder.layers)

    def call() -> np.ndarray:
        with TorchcamLeGrad(model, blocks) as extractor:
            with torch.enable_grad():
                scores = model(x)
            cams = extractor([CLASS] * x.shape[0], scores)[0]  # B x 14 x 14
        return scale_cam_image(cams.detach().float(), (x.shape[-2], x.shape[-1])).cpu().numpy()
    return call


def floors(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    first_block = model.encoder.layers[0]

    def forward() -> object:
        with torch.inference_mode():
            return model(x)

    def forward_backward() -> object:
        saved: list[torch.Tensor] = []

        def hook(module: torch.nn.Module, inputs: tuple) -> tuple:
            start = inputs[0].detach().requires_grad_(True)
            saved.append(start)
            return (start,)

        handle = first_block.register_forward_pre_hook(hook)
        try:
            with torch.enable_grad():
                score = model(x)[:, CLASS].sum()
                return torch.autograd.grad(score, saved)
        finally:
            handle.remove()
    def to_pixels() -> object:
        pixels = x.detach().requires_grad_(True)
        with torch.enable_grad():
            score = model(pixels)[:, CLASS].sum()
            (grad,) = torch.autograd.grad(score, pixels)
        return (pixels * grad).sum(dim=1)  # plain gradient x input

    return {"forward": forward, "forward+backward": forward_backward,
            "forward+backward to the pixels": to_pixels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    # torchvision starts the classifier at zero, which makes every class score
    # constant: a random head instead, as a trained model has
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        import torchcam  # noqa: F401
        have_torchcam = True
    except ImportError:
        have_torchcam = False
        print("torchcam is not installed: its rows are left out")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"vit_b_16 (random weights), {args.repeats} repeats")
    print("| batch | method | ms per call | floor | floor ms | ratio | torchcam ms | "
          "ours / torchcam | r with torchcam (min over images) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in args.batches:
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        targets = [ClassifierOutputTarget(CLASS)] * batch
        floor_calls = floors(model, x)
        floor_ms = {name: 1000 * median_seconds(call, args.repeats)
                    for name, call in floor_calls.items()}
        cams = {"legrad": (LeGrad(model=model), "forward+backward"),
                "gradattention": (GradientWeightedAttention(model=model), "forward+backward"),
                "attentionrollout": (AttentionRollout(model=model), "forward"),
                "attnlrp": (AttnLRP(model=model), "forward+backward to the pixels")}
        for name, (cam, floor) in cams.items():
            ms = 1000 * median_seconds(lambda cam=cam, x=x, targets=targets: cam(x, targets),
                                       args.repeats)
            extra = "| | |"
            if name == "legrad" and have_torchcam:
                theirs = torchcam_legrad(model, x)
                their_ms = 1000 * median_seconds(theirs, args.repeats)
                ours_map, their_map = cam(x, targets), theirs()
                r = min(pearson(ours_map[i], their_map[i]) for i in range(batch))
                extra = f"{their_ms:.0f} | {ms / their_ms:.2f} | {r:.4f} |"
            print(f"| {batch} | {name} | {ms:.0f} | {floor} | {floor_ms[floor]:.0f} | "
                  f"{ms / floor_ms[floor]:.2f} | {extra}", flush=True)


if __name__ == "__main__":
    main()
