"""The tiny linear model of the metric tests (two logits, each a fixed linear function of a
1 x 4 x 4 image), the same model by hand, and what tqdm drew."""
import numpy as np
import torch
from torch import nn

# The tiny model: two logits, each a fixed linear function of a 1 x 4 x 4 image.
W = np.stack([np.linspace(-1, 1, 16), np.cos(np.arange(16))]).astype(np.float32)
B = np.array([0.3, -0.2], dtype=np.float32)


class Linear2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(16, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(W))
            self.fc.bias.copy_(torch.from_numpy(B))

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def logits(x: np.ndarray) -> np.ndarray:
    """The model by hand: B x 1 x 4 x 4 -> B x 2."""
    return x.reshape(len(x), 16) @ W.T + B


def removed_most_relevant(cam: np.ndarray, count: int) -> np.ndarray:
    """Mask of the `count` highest pixels (cam values distinct)."""
    threshold = np.sort(cam.ravel())[::-1][count - 1]
    return cam >= threshold


# ------------------------------------------------------------ progress bars
def tqdm_lines(text: str) -> str:
    """What tqdm drew on stderr, its carriage returns as new lines."""
    return text.replace("\r", "\n")
