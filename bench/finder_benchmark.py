"""What finding the target layers costs: the first call of a CAM made
without target_layers against the first call of one given them.

    python bench/finder_benchmark.py [--repeats 5]

For each model (random weights, one 224 x 224 image, GradCAM on the CPU)
it times, in one process and alternating, "make the CAM and call it once"
with target_layers=None (the table, or the probe for a model the table does
not know) and with the same layers given, and prints the medians and the
probe's share. The probe's cost is one forward and one backward pass of
one image, once per CAM object; later calls cost the same either way.
"""
import argparse
import statistics
import time

import torch
import torchvision
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.layer_finder import locate_layers


class UnknownCNN(nn.Module):
    """A model of no known family, so the probe decides."""

    def __init__(self):
        super().__init__()
        self.body = torchvision.models.resnet18(weights=None)
        self.body.fc = nn.Identity()
        self.classifier = nn.Linear(512, 1000)

    def forward(self, x):
        return self.classifier(self.body(x))


MODELS = {
    "resnet50 (table)": lambda: torchvision.models.resnet50(weights=None),
    "vit_b_16 (table)": lambda: torchvision.models.vit_b_16(weights=None),
    "resnet18 in a wrapper (probe)": UnknownCNN,
}


def first_call(model, x, layers=None, reshape=None):
    start = time.perf_counter()
    cam = GradCAM(model, target_layers=layers, reshape_transform=reshape)
    cam(x)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    print(f"{'model':32s} {'found by':8s} {'explicit ms':>12s} {'found ms':>10s} {'ratio':>6s}")
    for name, build in MODELS.items():
        model = build().eval()
        found = locate_layers(model)
        first_call(model, x)  # warm-up
        explicit, automatic = [], []
        for _ in range(args.repeats):
            explicit.append(first_call(model, x, found.layers, found.reshape_transform))
            automatic.append(first_call(model, x))
        e, a = statistics.median(explicit) * 1e3, statistics.median(automatic) * 1e3
        print(f"{name:32s} {found.source:8s} {e:12.1f} {a:10.1f} {a / e:6.2f}", flush=True)


if __name__ == "__main__":
    main()
