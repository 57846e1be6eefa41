"""Every method's map on tiny conv models, against the paper's formula
computed by hand.

The reference computation below does not use the library: it runs the
tiny networks as explicit float64 torch operations, takes the gradients
by hand (the classifier row, then ReLU gates and the adjoint of each
convolution), applies each method's formula, and turns the weighted
activations into maps the way BaseCAM documents (ReLU, min-max
normalise, bilinear resize to the input size with OpenCV, then per
image: ReLU, average over the target layers, min-max normalise again).

The classifier is a linear layer on the flattened feature map, not a
global average pool, so the gradients vary over space and the gradient
methods give different maps.
"""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

SIZE = (8, 11)  # input H x W (not square, so H and W cannot be swapped unnoticed);
# the first 3x3 convolution gives 6 x 9 feature maps
METHODS = [GradCAM, GradCAMPlusPlus, XGradCAM, AblationCAM, ScoreCAM]
IDS = [m.__name__ for m in METHODS]


class ConvNet(nn.Module):
    """conv(3x3, no padding) -> ReLU, then (conv(3x3, padding 1) -> ReLU)*,
    then a linear classifier on the flattened last feature map."""

    def __init__(self, channels=(3, 4), classes=3, inplace=False, seed=9):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        self.relus = nn.ModuleList()
        for index, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            self.convs.append(nn.Conv2d(c_in, c_out, 3, padding=0 if index == 0 else 1))
            self.relus.append(nn.ReLU(inplace=inplace))
        self.fc = nn.Linear(channels[-1] * (SIZE[0] - 2) * (SIZE[1] - 2), classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.4)
            for conv in self.convs:  # about half of the units active
                conv.bias.add_(0.2)

    def forward(self, x):
        for conv, relu in zip(self.convs, self.relus):
            x = relu(conv(x))
        return self.fc(x.flatten(1))


# ----------------------------------------------------------- by hand
def _p(t):
    return t.detach().double()


def hand_stages(model, x):
    """Pre-activations and activations of every stage of one image (float64)."""
    pres, acts = [], []
    a = _p(x)[None]
    for conv in model.convs:
        pre = F.conv2d(a, _p(conv.weight), _p(conv.bias), padding=conv.padding)
        a = pre.clamp(min=0)
        pres.append(pre[0])
        acts.append(a[0])
    return pres, acts


def hand_logits_from(model, level, a):
    """Continue the forward pass from stage ``level``'s activation a."""
    a = a[None]
    for conv in model.convs[level + 1:]:
        a = F.conv2d(a, _p(conv.weight), _p(conv.bias), padding=conv.padding).clamp(min=0)
    return a.flatten() @ _p(model.fc.weight).T + _p(model.fc.bias)


def hand_logits(model, x):
    return hand_logits_from(model, len(model.convs) - 1, hand_stages(model, x)[1][-1])


def hand_gradient(model, x, level, category):
    """d logit[category] / d activation of stage ``level``, derived by hand:
    the classifier row, then for each later stage the ReLU gate and the
    adjoint (transposed) convolution."""
    pres, acts = hand_stages(model, x)
    g = _p(model.fc.weight)[category].reshape(acts[-1].shape)
    for stage in range(len(model.convs) - 1, level, -1):
        conv = model.convs[stage]
        g = g * (pres[stage] > 0)
        g = F.conv_transpose2d(g[None], _p(conv.weight), padding=conv.padding)[0]
    return g


def bilinear_align_corners(a, size):
    """Bilinear resize with aligned corners, written out (numpy)."""
    h, w = a.shape
    ys, xs = np.linspace(0, h - 1, size[0]), np.linspace(0, w - 1, size[1])
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def minmax(m):
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def hand_weights(method, model, x, level, category):
    """The paper's channel weights of one image (numpy float64, C)."""
    _, acts = hand_stages(model, x)
    A = acts[level].numpy()
    if method in (GradCAM, GradCAMPlusPlus, XGradCAM):
        g = hand_gradient(model, x, level, category).numpy()
        if method is GradCAM:
            return g.mean(axis=(1, 2))
        if method is XGradCAM:  # eps as in the established implementation
            return (g * A).sum(axis=(1, 2)) / (A.sum(axis=(1, 2)) + 1e-7)
        # Grad-CAM++ with the established zero-denominator guard
        total = A.sum(axis=(1, 2))[:, None, None]
        alpha = g ** 2 / (2 * g ** 2 + total * g ** 3 + 1e-6)
        alpha = np.where(g != 0, alpha, 0)
        return (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    if method is AblationCAM:
        y = float(hand_logits_from(model, level, acts[level])[category])
        assert abs(y) > 0.05, "test set-up: the target score must not be ~0"
        weights = []
        for k in range(A.shape[0]):
            ablated = acts[level].clone()
            ablated[k] = 0
            y_k = float(hand_logits_from(model, level, ablated)[category])
            weights.append((y - y_k) / y)
        return np.array(weights)
    if method is ScoreCAM:
        scores = []
        for k in range(A.shape[0]):
            up = bilinear_align_corners(A[k], SIZE)
            mask = (up - up.min()) / (up.max() - up.min()) if up.max() > up.min() \
                else np.zeros_like(up)
            scores.append(float(hand_logits(model, _p(x) * torch.from_numpy(mask))[category]))
        scores = np.array(scores)
        e = np.exp(scores - scores.max())
        return e / e.sum()
    raise AssertionError(method)


def first_component(weighted):
    """Projection on the first principal component over positions, signed
    to correlate positively with the channel sum (svd_on_activations.py)."""
    c, h, w = weighted.shape
    points = weighted.reshape(c, -1).T
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    reference = points.sum(axis=1)
    reference = reference - reference.mean()
    if projection @ reference < 0:
        projection = -projection
    return projection.reshape(h, w)


def hand_map(method, model, x, levels, category, eigen_smooth=False):
    per_layer = []
    for level in levels:
        A = hand_stages(model, x)[1][level].numpy()
        weighted = hand_weights(method, model, x, level, category)[:, None, None] * A
        cam = first_component(weighted) if eigen_smooth else weighted.sum(axis=0)
        cam = minmax(np.maximum(cam, 0))
        per_layer.append(cv2.resize(cam, SIZE[::-1], interpolation=cv2.INTER_LINEAR))
    return minmax(np.maximum(np.mean(per_layer, axis=0), 0))


# --------------------------------------------------------------- tests
@pytest.fixture
def images():
    return torch.randn((2, 3) + SIZE, generator=torch.Generator().manual_seed(7))


def library_maps(method, model, layers, x, categories, **call):
    kwargs = {} if method.uses_gradients else {"progress": False}
    with method(model=model, target_layers=layers, **kwargs) as cam:
        targets = None if categories is None else [ClassifierOutputTarget(c) for c in categories]
        return cam(input_tensor=x, targets=targets, **call)


def assert_maps(actual, expected):
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("inplace", [False, True], ids=["relu", "inplace-relu"])
@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_one_layer_map_equals_hand_computation(method, inplace, images):
    model = ConvNet(inplace=inplace).eval()
    categories = [0, 2]
    maps = library_maps(method, model, [model.relus[0]], images, categories)
    expected = np.stack([hand_map(method, model, x, [0], c) for x, c in zip(images, categories)])
    assert_maps(maps, expected)
    # the maps are not trivial: they differ between the two images and peak at 1
    assert np.abs(expected[0] - expected[1]).max() > 0.1
    assert np.allclose(expected.reshape(2, -1).max(axis=1), 1, atol=1e-6)


def test_methods_give_different_maps(images):
    """The tiny model separates the formulas (otherwise the tests above
    could not tell one method from another)."""
    model = ConvNet().eval()
    maps = {m: np.stack([hand_map(m, model, x, [0], 1) for x in images]) for m in METHODS}
    for i, a in enumerate(METHODS):
        for b in METHODS[i + 1:]:
            assert np.abs(maps[a] - maps[b]).max() > 1e-2, (a.__name__, b.__name__)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_default_target_is_each_images_top_class(method, images):
    model = ConvNet(classes=5).eval()
    tops = [int(hand_logits(model, x).argmax()) for x in images]
    assert tops[0] != tops[1], "test set-up: the two images should have different top classes"
    maps = library_maps(method, model, [model.relus[0]], images, None)
    expected = np.stack([hand_map(method, model, x, [0], c) for x, c in zip(images, tops)])
    assert_maps(maps, expected)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_eigen_smooth_equals_first_principal_component(method, images):
    model = ConvNet(channels=(3, 6)).eval()
    categories = [1, 0]
    maps = library_maps(method, model, [model.relus[0]], images, categories, eigen_smooth=True)
    expected = np.stack([hand_map(method, model, x, [0], c, eigen_smooth=True)
                         for x, c in zip(images, categories)])
    assert_maps(maps, expected)
    plain = np.stack([hand_map(method, model, x, [0], c) for x, c in zip(images, categories)])
    assert np.abs(expected - plain).max() > 1e-2  # the smoothing does something


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_two_target_layers_are_averaged_after_scaling(method, images):
    model = ConvNet(channels=(3, 4, 5)).eval()
    categories = [2, 1]
    maps = library_maps(method, model, [model.relus[0], model.relus[1]], images, categories)
    expected = np.stack([hand_map(method, model, x, [0, 1], c)
                         for x, c in zip(images, categories)])
    assert_maps(maps, expected)
    # both layers matter: the average differs from either layer alone
    for level in (0, 1):
        alone = np.stack([hand_map(method, model, x, [level], c)
                          for x, c in zip(images, categories)])
        assert np.abs(expected - alone).max() > 1e-2


def test_hand_gradient_agrees_with_autograd(images):
    """Guards the reference computation itself."""
    model = ConvNet(channels=(3, 4, 5)).eval()
    x = images[0]
    pres, acts = hand_stages(model, x)
    a0 = acts[0].clone().requires_grad_(True)
    logit = hand_logits_from(model, 0, a0)[2]
    (auto,) = torch.autograd.grad(logit, a0)
    torch.testing.assert_close(hand_gradient(model, x, 0, 2), auto)
    torch.testing.assert_close(hand_logits(model, x).float(), model(x[None])[0].detach(),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", [GradCAM, XGradCAM], ids=["GradCAM", "XGradCAM"])
def test_maps_do_not_depend_on_the_scale_of_the_scores(method, images):
    """Grad-CAM and XGrad-CAM weights are linear in the score, so scaling the
    classifier by 1e-9 only scales the map before normalisation: the
    normalised map must stay the same (no absolute epsilon dims it)."""
    model = ConvNet().eval()
    maps = library_maps(method, model, [model.relus[0]], images, [0, 2])
    with torch.no_grad():
        model.fc.weight.mul_(1e-9)
        model.fc.bias.mul_(1e-9)
    small = library_maps(method, model, [model.relus[0]], images, [0, 2])
    np.testing.assert_allclose(small, maps, atol=1e-5, rtol=0)
    assert np.allclose(small.reshape(2, -1).max(axis=1), 1)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_float64_model(method, images):
    """A double precision model gets double inputs; the maps are the same
    float32 maps."""
    model = ConvNet().eval()
    expected = np.stack([hand_map(method, model, x, [0], c) for x, c in zip(images, [0, 2])])
    model.double()
    maps = library_maps(method, model, [model.relus[0]], images, [0, 2])
    assert_maps(maps, expected)
