"""Models and helpers shared by the tests of the methods: tiny models whose activations and
gradients are known in closed form, and what BaseCAM does to a layer map, by hand."""
import numpy as np
import torch
from torch import nn

C, H, W, K = 3, 4, 4, 5  # channels, height, width, classes of the tiny models


# ----------------------------------------------------------------- helpers
def normalise(maps):
    """What BaseCAM does to a layer map: ReLU, then min-max per image."""
    maps = np.maximum(np.asarray(maps, dtype=np.float64), 0)
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    maps = maps - low
    high = maps.reshape(len(maps), -1).max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return maps / (high + 1e-7)


def weighted(weights, a):
    """sum_k weights[b, k] * a[b, k]."""
    return np.einsum("bk,bk...->b...", weights, a)


class Head(nn.Module):
    """A = x through an identity target layer, then
    y_k = <V_k, A> + 0.5 * <U_k, A>^2 (U optional): dY_k/dA = V_k + <U_k, A> U_k
    and the Hessian-vector product H A = <U_k, A> U_k are known exactly."""

    def __init__(self, v, u=None):
        super().__init__()
        self.target = nn.Identity()
        self.register_buffer("v", torch.as_tensor(v, dtype=torch.float32))
        self.u = None if u is None else torch.as_tensor(u, dtype=torch.float32)

    def forward(self, x):
        a = self.target(x)
        y = torch.einsum("kchw,bchw->bk", self.v, a)
        if self.u is not None:
            y = y + 0.5 * torch.einsum("kchw,bchw->bk", self.u, a) ** 2
        return y


class PooledHead(nn.Module):
    """A = x, then global average pooling and a linear classifier (CAM's setting)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.target = nn.Identity()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(torch.as_tensor(weight))
            self.fc.bias.copy_(torch.as_tensor(bias))

    def forward(self, x):
        return self.fc(self.target(x).mean(dim=(2, 3)))


def run(cam, x, targets=None, **kwargs):
    return cam(torch.as_tensor(x, dtype=torch.float32), targets, **kwargs)
