"""Volumes (B x C x D x H x W): every method's formula holds in 3D.

A volume of depth 1 through the 3D twin of a 2D network (same weights,
kernels of depth 1) must give exactly the 2D map of the image; maps of
real volumes are checked against numpy on a tiny model, and every method
runs on a small Conv3d network with trilinear upsampling, batch == singles.
"""
import warnings

import numpy as np
import pytest
import torch
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn

from pytorch_grad_cam import CAM, FEM, METHODS, EigenCAM, GradCAMElementWise, HiResCAM, LayerCAM, ShapleyCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

OPTIONS = {"smoothgradcam++": {"num_samples": 3}}


def make(name, model, layers, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad ignores target_layers
        return METHODS[name](model=model, target_layers=layers, progress=False,
                             **OPTIONS.get(name, {}), **extra)


class Net2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv1(x)))
        return self.fc(self.act(self.conv2(x)).mean(dim=(2, 3)))


class Net3d(nn.Module):
    """The 3D twin of Net2d: depth-1 kernels with the same weights."""

    def __init__(self, net2d):
        super().__init__()
        self.conv1 = nn.Conv3d(2, 4, (1, 3, 3), padding=(0, 1, 1))
        self.bn = nn.BatchNorm3d(4)
        self.conv2 = nn.Conv3d(4, 6, (1, 3, 3), padding=(0, 1, 1))
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 5)
        with torch.no_grad():
            for name in ("conv1", "conv2"):
                getattr(self, name).weight.copy_(getattr(net2d, name).weight[:, :, None])
                getattr(self, name).bias.copy_(getattr(net2d, name).bias)
            self.bn.load_state_dict(net2d.bn.state_dict())
            self.fc.load_state_dict(net2d.fc.state_dict())

    def forward(self, x):
        x = torch.relu(self.bn(self.conv1(x)))
        return self.fc(self.act(self.conv2(x)).mean(dim=(2, 3, 4)))


@pytest.fixture(scope="module")
def twins():
    torch.manual_seed(0)
    net2d = Net2d()
    with torch.no_grad():
        net2d.bn.running_mean.uniform_(-0.3, 0.3)
        net2d.bn.running_var.uniform_(0.5, 1.5)
        net2d.bn.bias.uniform_(-0.3, 0.3)
    net2d.eval()
    return net2d, Net3d(net2d).eval()


@pytest.mark.parametrize("name", REGISTRY_PARAMS["method_name"])
def test_depth_one_volume_gives_the_image_map(twins, name):
    net2d, net3d = twins
    image = torch.randn(2, 2, 6, 7, generator=torch.Generator().manual_seed(2))
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(4)]
    layers2d = [net2d.act] if name != "refinecam" else [net2d.bn, net2d.act]
    layers3d = [net3d.act] if name != "refinecam" else [net3d.bn, net3d.act]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the class activation map is all zeros")
        flat = make(name, net2d, layers2d)(image, targets)
        volume = make(name, net3d, layers3d)(image[:, :, None], targets)
    assert volume.shape == (2, 1, 6, 7)
    assert flat.reshape(2, -1).max(axis=1).max() == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose(volume[:, 0], flat, atol=2e-5)


class Head3d(nn.Module):
    """A = x through an identity target layer; y = <V, A> (dY/dA = V), or,
    with ``pooled``, global average pooling and a linear layer W."""

    def __init__(self, v=None, weight=None):
        super().__init__()
        self.target = nn.Identity()
        self.v = None if v is None else torch.as_tensor(v, dtype=torch.float32)
        self.fc = None
        if weight is not None:
            self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            with torch.no_grad():
                self.fc.weight.copy_(torch.as_tensor(weight))

    def forward(self, x):
        a = self.target(x)
        if self.fc is not None:
            return self.fc(a.mean(dim=(2, 3, 4)))
        return torch.einsum("kcdhw,bcdhw->bk", self.v, a)


def normalise(maps):
    maps = np.maximum(np.asarray(maps, dtype=np.float64), 0)
    low = maps.reshape(len(maps), -1).min(axis=1).reshape(-1, 1, 1, 1)
    maps = maps - low
    return maps / (maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1, 1) + 1e-7)


def test_volume_maps_match_hand_computed():
    rng = np.random.default_rng(4)
    c, k, shape = 3, 4, (3, 4, 5)
    v = rng.normal(size=(k, c) + shape)
    x = rng.normal(size=(2, c) + shape)
    x[0, 1, 2, 1, 3] = 12.0  # a spike for FEM
    model = Head3d(v)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    g = v[[0, 2]]
    expected = {
        HiResCAM: (g * x).sum(axis=1),
        GradCAMElementWise: np.maximum(g * x, 0).sum(axis=1),
        LayerCAM: (np.maximum(g, 0) * x).sum(axis=1),
        ShapleyCAM: np.einsum("bk,bk...->b...", g.mean(axis=(2, 3, 4)), x),  # Hessian is 0
    }
    fem = np.zeros((2,) + shape)
    eigen = []
    for b in range(2):
        for channel in x[b]:
            fem[b] += channel.mean() * (channel >= channel.mean() + 2 * channel.std())
        points = x[b].reshape(c, -1).T
        _, _, vt = np.linalg.svd(points, full_matrices=False)
        projection = points @ vt[0]
        eigen.append((projection if projection.sum() >= 0 else -projection).reshape(shape))
    expected[FEM] = fem
    expected[EigenCAM] = np.array(eigen)
    assert fem[0, 2, 1, 3] > 0
    tensor = torch.as_tensor(x, dtype=torch.float32)
    for method, raw in expected.items():
        got = method(model, [model.target])(tensor, targets)
        assert got.shape == (2,) + shape
        np.testing.assert_allclose(got, normalise(raw), atol=1e-5, err_msg=method.__name__)
    weight = rng.normal(size=(k, c))
    pooled = Head3d(weight=weight)
    got = CAM(pooled, [pooled.target])(tensor, targets)
    np.testing.assert_allclose(got, normalise(np.einsum("bk,bk...->b...", weight[[0, 2]], x)),
                               atol=1e-5)


class Volumes(nn.Module):
    """A small 3D CNN whose target layer is at half resolution."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
            nn.Conv3d(4, 8, 3, stride=2, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
            nn.Conv3d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("name", REGISTRY_PARAMS["method_name"])
def test_every_method_explains_volumes_in_batches(name):
    torch.manual_seed(1)
    model = Volumes().eval()
    x = torch.randn(2, 1, 8, 10, 12, generator=torch.Generator().manual_seed(5))
    layers = [model.features[7]] if name != "refinecam" else [model.features[2],
                                                              model.features[7]]
    cam = make(name, model, layers)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the class activation map is all zeros")
        maps = cam(x, None)
        singles = np.concatenate([cam(x[i:i + 1], None) for i in range(2)])
    assert maps.shape == (2, 8, 10, 12) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0
    assert maps.reshape(2, -1).max(axis=1).max() == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose(maps, singles, atol=2e-5)
    with pytest.raises(ValueError, match="aug_smooth=True needs images"):
        cam(x, None, aug_smooth=True)
