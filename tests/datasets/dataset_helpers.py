"""What the tests of pytorch_grad_cam.datasets share: tiny seeded models,
folders of generated images, the preprocessing of the tests (32 x 32, so
that a run takes milliseconds) and a reference of what the runner must
store for an image.

Not a conftest.py: a second conftest.py would replace tests/conftest.py as
the module ``conftest`` that test files import their constants from.
"""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.datasets import Preprocess, decode_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SMALL = Preprocess(size=(32, 32))
LAYER = "features[-1]"
LAYER_SHAPE = (8, 8)  # features[-1] of TinyNet at 32 x 32

# skimage.data.chelsea() resized to 224 x 224: the cat's head fills the left three quarters
# of the frame (y0, y1, x0, x1), as tests/photo_regions.py reads it off the picture. Kept
# here too: the torchrun and subprocess children import this module with tests/datasets
# alone on their path.
CAT_HEAD = (30, 224, 25, 190)
EGYPTIAN_CAT, TABBY, ESPRESSO = 285, 281, 967


def peak_in(cam: np.ndarray, region) -> bool:
    """Whether the map's maximum lies inside ``region`` (y0, y1, x0, x1)."""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    y0, y1, x0, x1 = region
    return y0 <= y < y1 and x0 <= x < x1


class TinyNet(nn.Module):
    """conv-relu-pool(4)-conv-relu, global mean, linear: 8 x 8 maps at
    32 x 32 input; weights from ``seed``, without touching the global
    RNG."""

    def __init__(self, classes: int = 5, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                          nn.MaxPool2d(4), nn.Conv2d(6, 8, 3, padding=1),
                                          nn.ReLU())
            self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class RaisingNet(TinyNet):
    """TinyNet that raises ValueError on an image whose mean normalised
    value is above 1.5 (a white image, 2.2 after ImageNet normalisation;
    random photos are near 0.4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.flatten(1).mean(dim=1) > 1.5).any()):
            raise ValueError("this model cannot explain white images")
        return super().forward(x)


def photo(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    """A smooth random RGB uint8 image (blobs, so that maps are not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def write_photos(folder: Path, count: int, sizes=None, suffix: str = ".png") -> list:
    """``count`` photos ``img_000.png``... of several sizes; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = sizes or [(40, 48), (33, 33), (64, 40), (50, 70)]
    paths = []
    for i in range(count):
        height, width = sizes[i % len(sizes)]
        path = folder / f"img_{i:03d}{suffix}"
        cv2.imwrite(str(path), cv2.cvtColor(photo(i, height, width), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def reference(model, path, classes=None, size=LAYER_SHAPE):
    """What the runner must store for one image file: (layer-resolution
    map as float16 -> float32, predicted class, logits), computed with the
    public API directly: decode, SMALL, GradCAM, area downsampling."""
    x = SMALL(decode_image(path))[None]
    with torch.no_grad():
        logits = model(x)
    target = int(logits.argmax()) if classes is None else classes
    cam = GradCAM(model=model, target_layers=[model.features[-1]], progress=False)
    full = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
    small = F.adaptive_avg_pool2d(torch.from_numpy(full)[:, None], size)[0, 0]
    return small.half().float().numpy(), target, logits[0], full[0]


def environment() -> dict:
    """The environment of a child process that imports this checkout and
    these helpers."""
    env = dict(os.environ)
    paths = [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OMP_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable
