"""The methods beyond Grad-CAM/Grad-CAM++/XGrad-CAM/Score-CAM/Ablation-CAM.

Every formula is checked against a map computed here with numpy on tiny
models whose activations and gradients are known in closed form; then every
method runs on resnet18, vgg11 and vit_b_16, batches equal single images,
and on the pretrained EfficientNet-Lite0 the top-class map peaks on the cat.
"""
import warnings

import numpy as np
import pytest
import torch
import torchvision
from photo_regions import CAT_BACKGROUND, CAT_HEAD, EGYPTIAN_CAT, peak_in, region_mean
from torch import nn

from pytorch_grad_cam import (
    CAM,
    FEM,
    KPCA_CAM,
    METHODS,
    EigenCAM,
    EigenGradCAM,
    FinerCAM,
    FullGrad,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    RandomCAM,
    RefineCAM,
    ScoreCAM,
    SegEigenCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
)
from pytorch_grad_cam.registry import registered_methods
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    FinerWeightedTarget,
    SimilarityToConceptTarget,
    SoftmaxOutputTarget,
)
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

NEW_METHODS = {
    "hirescam": HiResCAM, "gradcamelementwise": GradCAMElementWise, "layercam": LayerCAM,
    "eigencam": EigenCAM, "eigengradcam": EigenGradCAM, "fullgrad": FullGrad,
    "kpcacam": KPCA_CAM, "fem": FEM, "shapleycam": ShapleyCAM, "finercam": FinerCAM,
    "segeigencam": SegEigenCAM, "refinecam": RefineCAM, "randomcam": RandomCAM, "cam": CAM,
    "smoothgradcam++": SmoothGradCAMPlusPlus,
}
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


def first_component(points):
    """N x C -> projection on the first right singular vector of the
    uncentred points, with the sign that makes it sum to >= 0."""
    _, _, vt = np.linalg.svd(points, full_matrices=False)
    projection = points @ vt[0]
    return projection if projection.sum() >= 0 else -projection


def count_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


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


@pytest.fixture
def tiny():
    rng = np.random.default_rng(7)
    v = rng.normal(size=(K, C, H, W))
    u = rng.normal(size=(K, C, H, W)) * 0.3
    x = rng.normal(size=(2, C, H, W))
    return v, u, x


def run(cam, x, targets=None, **kwargs):
    return cam(torch.as_tensor(x, dtype=torch.float32), targets, **kwargs)


# ---------------------------------------------- hand-computed maps: formulas
def test_hirescam_elementwise_layercam_match_hand_computed(tiny):
    v, _, x = tiny
    model = Head(v)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]
    g = v[[1, 3]]  # dY/dA of each image's class
    expected = {
        HiResCAM: (g * x).sum(axis=1),
        GradCAMElementWise: np.maximum(g * x, 0).sum(axis=1),
        LayerCAM: (np.maximum(g, 0) * x).sum(axis=1),
    }
    for method, raw in expected.items():
        got = run(method(model, [model.target]), x, targets)
        np.testing.assert_allclose(got, normalise(raw), atol=1e-5, err_msg=method.__name__)
    # the three differ on this model, so each formula is pinned down
    assert np.abs(normalise(expected[HiResCAM]) - normalise(expected[LayerCAM])).max() > 0.1


def test_hirescam_eigen_smooth_warns_that_faithfulness_is_lost(tiny):
    v, _, x = tiny
    model = Head(v)
    with pytest.warns(UserWarning, match="faithfulness"):
        run(HiResCAM(model, [model.target]), x, None, eigen_smooth=True)


def test_eigencam_is_the_uncentred_first_component(tiny):
    _, _, x = tiny
    x = np.abs(x) + np.linspace(0, 1, H * W).reshape(1, 1, H, W)  # post-ReLU-like activations
    model = Head(np.zeros((K, C, H, W)))
    expected = [first_component(a.reshape(C, -1).T).reshape(H, W) for a in x]
    got = run(EigenCAM(model, [model.target]), x, [ClassifierOutputTarget(0)] * 2)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-5)
    # class-agnostic: another target gives the same map
    np.testing.assert_allclose(run(EigenCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(4)] * 2), got, atol=1e-6)


def test_eigengradcam_and_segeigencam_match_hand_computed(tiny):
    v, _, x = tiny
    model = Head(v)
    targets = [ClassifierOutputTarget(2), ClassifierOutputTarget(0)]
    g = v[[2, 0]]
    eigen_grad = [first_component((gi * a).reshape(C, -1).T).reshape(H, W)
                  for gi, a in zip(g, x)]
    got = run(EigenGradCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, normalise(eigen_grad), atol=1e-5)

    seg = []
    for gi, a in zip(g, x):
        points = (np.abs(gi) * a).reshape(C, -1).T
        points = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(points, full_matrices=False)
        projection = points @ vt[0]
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection
        seg.append(projection.reshape(H, W))
    got = run(SegEigenCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, normalise(seg), atol=1e-5)


@pytest.mark.parametrize("kernel", ["sigmoid", "rbf", "poly", "linear", "cosine"])
def test_kpca_cam_matches_hand_computed_kernel_pca(tiny, kernel):
    _, _, x = tiny
    model = Head(np.zeros((K, C, H, W)))
    expected = []
    for a in x:
        points = a.reshape(C, -1).T
        points = points - points.mean(axis=0)
        gram, gamma = points @ points.T, 1.0 / C
        if kernel == "sigmoid":
            k = np.tanh(gamma * gram + 1)
        elif kernel == "rbf":
            sq = (points ** 2).sum(axis=1)
            k = np.exp(-gamma * (sq[:, None] + sq[None] - 2 * gram))
        elif kernel == "poly":
            k = (gamma * gram + 1) ** 3
        elif kernel == "linear":
            k = gram
        else:
            unit = points / np.linalg.norm(points, axis=1, keepdims=True)
            k = unit @ unit.T
        n = len(k)
        one = np.full((n, n), 1.0 / n)
        k = k - one @ k - k @ one + one @ k @ one
        values, vectors = np.linalg.eigh(k)
        projection = vectors[:, -1] * np.sqrt(max(values[-1], 0))
        if abs(projection.min()) > abs(projection.max()):
            projection = -projection  # scikit-learn's sign: largest magnitude positive
        expected.append(projection.reshape(H, W))
    got = run(KPCA_CAM(model, [model.target], kernel=kernel), x, [ClassifierOutputTarget(0)] * 2)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-4)


def test_fem_is_channel_means_times_k_sigma_masks():
    x = np.zeros((1, C, H, W))
    x[0, 0] = 1.0
    x[0, 0, 1, 2] = 9.0          # a spike far above mean + 2 std
    x[0, 1] = np.arange(H * W).reshape(H, W) / 10  # a ramp: nothing above mean + 2 std
    x[0, 2, 3, 0], x[0, 2, 0, 3] = 5.0, 4.0
    model = Head(np.zeros((K, C, H, W)))
    expected = np.zeros((1, H, W))
    for a in x[0]:
        mean, std = a.mean(), a.std()
        expected[0] += mean * (a >= mean + 2 * std)
    assert expected[0, 1, 2] > 0 and expected[0, 3, 0] > 0 and expected.sum() > expected.max()
    got = run(FEM(model, [model.target]), x)
    np.testing.assert_allclose(got, normalise(expected), atol=1e-5)
    # with k = 0 every position above its channel's mean counts
    expected0 = np.zeros((1, H, W))
    for a in x[0]:
        expected0[0] += a.mean() * (a >= a.mean())
    got0 = run(FEM(model, [model.target], k=0), x)
    np.testing.assert_allclose(got0, normalise(expected0), atol=1e-5)


def test_shapleycam_adds_the_hessian_vector_product(tiny):
    v, u, x = tiny
    model = Head(v, u)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(4)]
    classes = [1, 4]
    weights = []
    for b, c in enumerate(classes):
        ua = (u[c] * x[b]).sum()
        gradient = v[c] + ua * u[c]
        hvp = ua * u[c]
        weights.append((gradient - 0.5 * hvp).mean(axis=(1, 2)))
    expected = normalise(weighted(np.array(weights), x))
    got = run(ShapleyCAM(model, [model.target]), x, targets)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # it differs from Grad-CAM here (the Hessian is not zero)
    gradcam = run(GradCAM(model, [model.target]), x, targets)
    assert np.abs(gradcam - got).max() > 0.05


def test_shapleycam_with_rest_target_matches_closed_form(tiny):
    v, _, x = tiny
    model = Head(v)  # linear: y = <V, A>
    c = 2
    y = np.einsum("kchw,bchw->bk", v, x)
    weights = []
    for b in range(2):
        p = np.exp(y[b] - y[b].max())
        p /= p.sum()
        gradient = 2 * v[c] - np.einsum("k,kchw->chw", p, v)      # d(y_c + log p_c)/dA
        hvp = -np.einsum("k,kchw->chw", p * (y[b] - p @ y[b]), v)  # d gradient(A + tA)/dt
        weights.append((gradient - 0.5 * hvp).mean(axis=(1, 2)))
    got = run(ShapleyCAM(model, [model.target]), x, [ClassifierOutputReST(c)] * 2)
    np.testing.assert_allclose(got, normalise(weighted(np.array(weights), x)), atol=1e-5)


def test_finercam_single_comparison_is_gradcam_of_the_logit_difference(tiny):
    v, _, x = tiny
    model = Head(v)
    y = np.einsum("kchw,bchw->bk", v, x)
    weights = []
    for b in range(2):
        main = int(y[b].argmax())
        distance = np.abs(y[b] - y[b, main])
        distance[main] = np.inf
        nearest = int(distance.argmin())
        weights.append((v[main] - 0.7 * v[nearest]).mean(axis=(1, 2)))
    expected = normalise(weighted(np.array(weights), x))
    # (the target's p / (p + 1e-9) factor moves the map by ~1e-5)
    cam = FinerCAM(model, [model.target], alpha=0.7, comparison_categories=[1])
    np.testing.assert_allclose(run(cam, x), expected, atol=1e-4)
    # the same options given to one call instead of the constructor
    cam = FinerCAM(model, [model.target])
    np.testing.assert_allclose(run(cam, x, alpha=0.7, comparison_categories=[1]), expected,
                               atol=1e-4)
    assert cam.finer_options == (1.0, [1, 2, 3], None)  # a call's options are its own


def test_finercam_default_matches_finite_differences_of_the_weighted_target(tiny):
    v, _, x = tiny
    model = Head(v)
    c = 0

    def target(a):  # numpy float64 version of FinerWeightedTarget for the 3 nearest classes
        y = np.einsum("kchw,chw->k", v, a)
        distance = np.abs(y - y[c])
        distance[c] = np.inf
        others = np.argsort(distance, kind="stable")[:3]
        p = np.exp(y - y.max())
        p /= p.sum()
        return sum(p[d] * (y[c] - y[d]) for d in others) / (sum(p[d] for d in others) + 1e-9)

    weights = []
    for a in x:
        grad = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            step = np.zeros_like(a)
            step[index] = 1e-5
            grad[index] = (target(a + step) - target(a - step)) / 2e-5
        weights.append(grad.mean(axis=(1, 2)))
    got = run(FinerCAM(model, [model.target]), x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(weighted(np.array(weights), x)), atol=1e-4)


def test_refinecam_multiplies_the_layer_maps():
    rng = np.random.default_rng(3)
    mix = rng.normal(size=(4, C))
    v2 = rng.normal(size=(K, 4, H, W))
    x = rng.normal(size=(2, C, H, W))

    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Identity()
            self.second = nn.Sequential(nn.Conv2d(C, 4, 1, bias=False), nn.ReLU())
            with torch.no_grad():
                self.second[0].weight.copy_(torch.as_tensor(mix)[:, :, None, None])
            self.register_buffer("v", torch.as_tensor(v2, dtype=torch.float32))

        def forward(self, inputs):
            return torch.einsum("kchw,bchw->bk", self.v, self.second(self.first(inputs)))

    model = TwoLayers()
    c = 3
    pre = np.einsum("jc,bchw->bjhw", mix, x)
    a2 = np.maximum(pre, 0)
    g2 = np.broadcast_to(v2[c], a2.shape)
    g1 = np.einsum("jc,bjhw->bchw", mix, g2 * (pre > 0))
    gradcam1 = normalise(weighted(g1.mean(axis=(2, 3)), x))
    gradcam2 = normalise(weighted(g2.mean(axis=(2, 3)), a2))
    expected = normalise(gradcam1 * gradcam2)
    assert np.abs(gradcam1 - gradcam2).max() > 0.1
    cam = RefineCAM(model, [model.first, model.second], base_method=GradCAM)
    np.testing.assert_allclose(run(cam, x, [ClassifierOutputTarget(c)] * 2), expected, atol=1e-5)
    assert isinstance(cam, RefineCAM) and isinstance(cam, GradCAM)
    # one layer: the base method's map; the default base method is Grad-CAM++
    single = RefineCAM(model, [model.second])
    assert single.base_method is GradCAMPlusPlus
    np.testing.assert_allclose(run(single, x, [ClassifierOutputTarget(c)] * 2),
                               run(GradCAMPlusPlus(model, [model.second]), x,
                                   [ClassifierOutputTarget(c)] * 2), atol=1e-6)


def test_randomcam_weights_are_uniform_draws_of_the_seeded_generator(tiny):
    _, _, x = tiny
    model = Head(np.zeros((K, C, H, W)))
    # one draw per channel, the same for every image of the call
    draws = torch.rand(C, generator=torch.Generator().manual_seed(5)).double().numpy()
    expected = normalise(weighted(np.tile(draws * 2 - 1, (2, 1)), x))
    got = run(RandomCAM(model, [model.target], seed=5), x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(run(RandomCAM(model, [model.target], seed=5), x), got)
    other = run(RandomCAM(model, [model.target], seed=6), x)
    assert np.abs(other - got).max() > 0.05
    # the default seed is fixed: the same inputs give the same map
    default = RandomCAM(model, [model.target])
    np.testing.assert_array_equal(run(default, x), run(default, x))
    np.testing.assert_array_equal(run(default, x), run(RandomCAM(model, [model.target], seed=0), x))
    unseeded = RandomCAM(model, [model.target], seed=None)
    assert np.abs(run(unseeded, x) - run(unseeded, x)).max() > 0.01


def test_cam_uses_the_classifier_weights():
    rng = np.random.default_rng(11)
    weight, bias = rng.normal(size=(K, C)), rng.normal(size=K)
    x = rng.normal(size=(2, C, H, W))
    model = PooledHead(weight, bias)
    logits = np.einsum("kc,bc->bk", weight, x.mean(axis=(2, 3))) + bias
    top = logits.argmax(axis=1)
    expected = normalise(weighted(weight[top], x))
    for cam in (CAM(model, [model.target]), CAM(model, [model.target], fc_layer=model.fc)):
        np.testing.assert_allclose(run(cam, x), expected, atol=1e-5)
    # a class target picks that row of the weights
    expected = normalise(weighted(weight[[2, 4]], x))
    got = run(CAM(model, [model.target]), x, [ClassifierOutputTarget(2), ClassifierOutputTarget(4)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Grad-CAM is the same map for global average pooling + linear layer
    np.testing.assert_allclose(run(GradCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(2), ClassifierOutputTarget(4)]),
                               got, atol=1e-5)


def test_cam_binary_classifier_and_refused_targets():
    rng = np.random.default_rng(12)
    weight = rng.normal(size=(1, C))
    x = rng.normal(size=(1, C, H, W))
    model = PooledHead(weight, np.zeros(1))
    cam = CAM(model, [model.target])
    np.testing.assert_allclose(run(cam, x, [BinaryClassifierOutputTarget(0)]),
                               normalise(weighted(-weight, x)), atol=1e-5)
    np.testing.assert_allclose(run(cam, x, [BinaryClassifierOutputTarget(1)]),
                               normalise(weighted(weight, x)), atol=1e-5)
    with pytest.raises(TypeError, match="ClassifierOutputTarget"):
        run(cam, x, [ClassifierOutputSoftmaxTarget(0)])


def test_fullgrad_matches_hand_computed_bias_and_input_gradients():
    rng = np.random.default_rng(5)
    cin, cmid = 2, 3
    conv_w, conv_b = rng.normal(size=(cmid, cin)), rng.normal(size=cmid)
    gamma, beta = rng.normal(size=cmid), rng.normal(size=cmid)
    mean, var = rng.normal(size=cmid), rng.uniform(0.5, 2, size=cmid)
    v = rng.normal(size=(K, cmid, H, W))
    x = rng.normal(size=(2, cin, H, W))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(cin, cmid, 1)
            self.bn = nn.BatchNorm2d(cmid)
            self.head = nn.Linear(cmid * H * W, K)
            with torch.no_grad():
                self.conv.weight.copy_(torch.as_tensor(conv_w)[:, :, None, None])
                self.conv.bias.copy_(torch.as_tensor(conv_b))
                self.bn.weight.copy_(torch.as_tensor(gamma))
                self.bn.bias.copy_(torch.as_tensor(beta))
                self.bn.running_mean.copy_(torch.as_tensor(mean))
                self.bn.running_var.copy_(torch.as_tensor(var))
                self.head.weight.copy_(torch.as_tensor(v.reshape(K, -1)))

        def forward(self, inputs):
            return self.head(torch.relu(self.bn(self.conv(inputs))).flatten(1))

    model = Net().eval()
    c = 1
    scale = gamma / np.sqrt(var + 1e-5)
    z1 = np.einsum("oc,bchw->bohw", conv_w, x) + conv_b[:, None, None]
    z2 = scale[:, None, None] * (z1 - mean[:, None, None]) + beta[:, None, None]
    g2 = v[c] * (z2 > 0)                       # dY/dz2 (through the ReLU)
    g1 = g2 * scale[:, None, None]             # dY/dz1
    gx = np.einsum("oc,bohw->bchw", conv_w, g1)  # dY/dx
    bn_bias = beta - mean * scale

    def psi_sum(t):  # |.|, min-max per channel, summed over the channels
        t = np.abs(t)
        low = t.min(axis=(2, 3), keepdims=True)
        high = t.max(axis=(2, 3), keepdims=True)
        return ((t - low) / (high - low + 1e-7)).sum(axis=1)

    total = (psi_sum(gx * x) + psi_sum(g1 * conv_b[:, None, None])
             + psi_sum(g2 * bn_bias[:, None, None]))
    with pytest.warns(UserWarning, match="ignores target_layers"):
        cam = FullGrad(model, [model.bn])
    assert cam.target_layers == [model.conv, model.bn]
    got = run(cam, x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(total), atol=1e-5)
    for p in model.parameters():
        assert p.grad is None and p.requires_grad


def test_fullgrad_of_a_bias_free_network_is_its_input_term():
    """No bias anywhere: the full-gradient is the input-gradient alone
    (for a bias-free ReLU network df/dx . x is the score)."""
    rng = np.random.default_rng(9)
    weight = rng.normal(size=(4, C))
    x = rng.normal(size=(2, C, H, W))
    model = nn.Sequential(nn.Conv2d(C, 4, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten()).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(weight)[:, :, None, None])
    c = 2
    z = np.einsum("oc,bchw->bohw", weight, x)
    gx = weight[c][None, :, None, None] * (z[:, c:c + 1] > 0) / (H * W)  # dY/dx
    t = np.abs(gx * x)
    low, high = t.min(axis=(2, 3), keepdims=True), t.max(axis=(2, 3), keepdims=True)
    expected = normalise(((t - low) / (high - low + 1e-7)).sum(axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        cam = FullGrad(model)
    assert cam.target_layers == []
    np.testing.assert_allclose(run(cam, x, [ClassifierOutputTarget(c)] * 2), expected, atol=1e-5)
    # with a bias, its term is added: the map changes
    biased = nn.Sequential(nn.Conv2d(C, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                           nn.Flatten()).eval()
    with torch.no_grad():
        biased[0].weight.copy_(model[0].weight)
        biased[0].bias.fill_(0.5)
    assert np.abs(run(FullGrad(biased), x, [ClassifierOutputTarget(c)] * 2) - expected).max() > 0.05


def test_smoothgradcampp_averages_gradient_moments_over_seeded_noise(tiny):
    v, u, x = tiny
    model = Head(v, u)
    n, level, c = 3, 0.2, 2
    maps = []
    for a in x:
        generator = torch.Generator().manual_seed(0)
        sigma = level * (a.max() - a.min())
        grads = []
        for _ in range(n):
            noise = torch.randn((C, H, W), generator=generator).double().numpy()
            noisy = a + sigma * noise
            grads.append(v[c] + (u[c] * noisy).sum() * u[c])
        grads = np.array(grads)
        d1, d2, d3 = grads.mean(0), (grads ** 2).mean(0), (grads ** 3).mean(0)
        sums = a.sum(axis=(1, 2))[:, None, None]
        alpha = np.where(d2 > 0, d2 / (2 * d2 + sums * d3 + 1e-6), 0)
        w = (alpha * np.maximum(d1, 0)).sum(axis=(1, 2))
        maps.append((w[:, None, None] * a).sum(axis=0))
    cam = SmoothGradCAMPlusPlus(model, [model.target], num_samples=n, noise_level=level,
                                batch_size=2, progress=False)
    got = run(cam, x, [ClassifierOutputTarget(c)] * 2)
    np.testing.assert_allclose(got, normalise(maps), atol=1e-5)
    # without noise it is Grad-CAM++
    quiet = SmoothGradCAMPlusPlus(model, [model.target], num_samples=2, noise_level=0.0)
    np.testing.assert_allclose(run(quiet, x, [ClassifierOutputTarget(c)] * 2),
                               run(GradCAMPlusPlus(model, [model.target]), x,
                                   [ClassifierOutputTarget(c)] * 2), atol=1e-5)


# --------------------------------------------------------------- targets
def test_new_targets_values():
    y = torch.tensor([[1.0, 3.0, -2.0, 0.5], [0.0, 0.0, 1.0, 2.0]])
    p = np.exp(y.numpy()) / np.exp(y.numpy()).sum(axis=1, keepdims=True)
    rest = ClassifierOutputReST(1)
    np.testing.assert_allclose(rest(y).numpy(), y[:, 1].numpy() + np.log(p[:, 1]), rtol=1e-5)
    assert float(rest(y[0])) == pytest.approx(3.0 + np.log(p[0, 1]), rel=1e-5)
    np.testing.assert_allclose(SoftmaxOutputTarget()(y).numpy(), p, rtol=1e-5)
    finer = FinerWeightedTarget(1, [0, 3], alpha=0.5)
    expected = [(p[b, 0] * (y[b, 1] - 0.5 * y[b, 0]) + p[b, 3] * (y[b, 1] - 0.5 * y[b, 3]))
                / (p[b, 0] + p[b, 3]) for b in range(2)]
    np.testing.assert_allclose(finer(y).numpy(), np.array(expected, dtype=np.float32), rtol=1e-5)
    assert float(finer(y[1])) == pytest.approx(float(expected[1]), rel=1e-5)
    concept = np.array([1.0, 0.0, 0.0, 1.0])
    similarity = SimilarityToConceptTarget(concept)
    cosine = (y.numpy() @ concept) / (np.linalg.norm(y.numpy(), axis=1) * np.sqrt(2))
    np.testing.assert_allclose(similarity(y).numpy(), cosine, rtol=1e-5)
    assert float(similarity(y[0])) == pytest.approx(cosine[0], rel=1e-5)
    with pytest.raises(ValueError, match="1-D"):
        SimilarityToConceptTarget(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        FinerWeightedTarget(1, [])


def test_similarity_to_concept_explains_an_embedding_model():
    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Identity()  # 512-d embeddings
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        concept = model(torch.randn(1, 3, 64, 64))[0]
    cam = GradCAM(model, [model.layer4[-1]])
    maps = cam(x, [SimilarityToConceptTarget(concept)] * 2)
    assert maps.shape == (2, 64, 64) and maps.max() == pytest.approx(1, abs=1e-4)
    with pytest.raises(ValueError, match="concept features have 3 entries"):
        cam(x, [SimilarityToConceptTarget(torch.ones(3))] * 2)


# ---------------------------------------------------------- errors, state
def test_wrong_arguments_raise_before_any_work():
    model = PooledHead(np.ones((K, C)), np.zeros(K))
    layer = [model.target]
    with pytest.raises(ValueError, match="kernel must be one of"):
        KPCA_CAM(model, layer, kernel="laplace")
    with pytest.raises(ValueError, match="gamma"):
        KPCA_CAM(model, layer, gamma=-1)
    with pytest.raises(TypeError, match="k must be a number"):
        FEM(model, layer, k="2")
    with pytest.raises(ValueError, match="num_samples"):
        SmoothGradCAMPlusPlus(model, layer, num_samples=0)
    with pytest.raises(ValueError, match="noise_level"):
        SmoothGradCAMPlusPlus(model, layer, noise_level=-0.1)
    with pytest.raises(ValueError, match="comparison_categories"):
        FinerCAM(model, layer, comparison_categories=[0, 1])
    with pytest.raises(TypeError, match="base_method must be a CAM class"):
        FinerCAM(model, layer, base_method="gradcam")
    with pytest.raises(TypeError, match="base_method must be a CAM class"):
        RefineCAM(model, layer, base_method=GradCAM(model, layer))
    with pytest.raises(TypeError, match="fc_layer must be a torch.nn.Linear"):
        CAM(model, layer, fc_layer=model.target)
    with pytest.raises(ValueError, match="fc_layer is not a module of the model"):
        CAM(model, layer, fc_layer=nn.Linear(C, K))
    with pytest.raises(ValueError, match="has none"):
        no_linear = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        CAM(no_linear, [no_linear[0]])
    with pytest.raises(TypeError, match="seed"):
        RandomCAM(model, layer, seed=1.5)


def test_finercam_and_refinecam_combine_with_any_base_method(tiny):
    v, _, x = tiny
    model = Head(v)
    for base in (HiResCAM, LayerCAM, ScoreCAM, FEM):
        cam = FinerCAM(model, [model.target], base_method=base, progress=False)
        assert isinstance(cam, base) and isinstance(cam, FinerCAM) and cam.base_method is base
        assert type(cam).__name__ == "FinerCAM"
        maps = run(cam, x)
        assert maps.shape == (2, H, W) and np.isfinite(maps).all()
    # alpha = 0 explains the main class alone: the base method's map
    np.testing.assert_allclose(run(FinerCAM(model, [model.target], base_method=HiResCAM, alpha=0),
                                   x, [ClassifierOutputTarget(1)] * 2),
                               run(HiResCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(1)] * 2), atol=1e-5)
    # target_idx replaces the top class
    np.testing.assert_allclose(run(FinerCAM(model, [model.target], target_idx=4), x),
                               run(FinerCAM(model, [model.target]), x,
                                   [ClassifierOutputTarget(4)] * 2), atol=1e-6)


def small_cnn(classes=K):
    """Convolutions with batch norm and in-place ReLUs, pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))


def test_extra_autograd_paths_restore_the_model_and_remove_hooks():
    torch.manual_seed(0)
    model = small_cnn()
    model.train()
    model[0].requires_grad_(False)
    x = torch.randn(1, 3, 16, 16)
    flags = [p.requires_grad for p in model.parameters()]
    hooks = count_hooks(model)

    def broken(output):
        raise RuntimeError("target failed")

    makers = [lambda: ShapleyCAM(model, [model[7]]),
              lambda: SmoothGradCAMPlusPlus(model, [model[7]], num_samples=2),
              lambda: RefineCAM(model, [model[2], model[7]]),
              lambda: FinerCAM(model, [model[7]]),
              lambda: FullGrad(model)]
    for make in makers:
        cam = make()
        with torch.no_grad():
            maps = cam(x, None)
        assert maps.max() == pytest.approx(1, abs=1e-4)
        np.testing.assert_allclose(cam(x, None), maps, atol=1e-5)
        with torch.inference_mode():
            np.testing.assert_allclose(cam(x, None), maps, atol=1e-5)
        with pytest.raises(RuntimeError, match="target failed"):
            cam(x, [broken])
        assert count_hooks(model) == hooks
        assert all(module.training for module in model.modules())
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert not hasattr(cam, "input_gradient")  # per-call state stays in the call


# ------------------------------------------------------ real architectures
@pytest.fixture(scope="module")
def architectures():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    vgg = torchvision.models.vgg11(weights=None, num_classes=10).eval()
    vit = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=10).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.02)  # torchvision starts it at zero
    return {
        # model, target layers, RefineCAM's layers, reshape transform, input size
        "resnet18": (resnet, [resnet.layer4[-1]], [resnet.layer3[-1], resnet.layer4[-1]], None, 64),
        "vgg11": (vgg, [vgg.features[19]], [vgg.features[14], vgg.features[19]], None, 64),
        "vit_b_16": (vit, [vit.encoder.layers[-1].ln_1],
                     [vit.encoder.layers[-2].ln_1, vit.encoder.layers[-1].ln_1],
                     vit_reshape_transform, 32),
    }


#: small settings for speed: few noisy copies; and the target layers are
#: 2 x 2 here, where no value can exceed mean + 2 std (FEM's default k)
FAST = {"smoothgradcam++": {"num_samples": 4}, "fem": {"k": 1}}


@pytest.mark.parametrize("arch", ["resnet18", "vgg11", "vit_b_16"])
@pytest.mark.parametrize("name", list(NEW_METHODS))
def test_runs_on_real_architectures_and_batch_equals_singles(architectures, arch, name):
    model, layers, refine_layers, reshape, size = architectures[arch]
    method = METHODS[name]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    targets = [ClassifierOutputTarget(3), ClassifierOutputTarget(7)]
    kwargs = dict(FAST.get(name, {}), progress=False)
    if name == "refinecam":
        layers = refine_layers
    if name == "cam" and arch == "vgg11":
        with pytest.raises(ValueError, match="in_features=4096 but the target layer has 512"):
            method(model=model, target_layers=layers, **kwargs)(x, targets)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FullGrad: target_layers are ignored
        cam = method(model=model, target_layers=layers, reshape_transform=reshape, **kwargs)
    hooks = count_hooks(model)
    with warnings.catch_warnings():
        # with random weights a class can have no positive evidence in an image
        warnings.filterwarnings("ignore", "the class activation map is all zeros")
        maps = cam(x, targets)
    assert maps.shape == (2, size, size) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0
    peaks = maps.reshape(2, -1).max(axis=1)
    assert peaks.max() == pytest.approx(1, abs=1e-4)
    assert all(p == pytest.approx(1, abs=1e-4) or p == 0 for p in peaks)
    assert count_hooks(model) == hooks
    if arch != "resnet18":
        return  # the large VGG and ViT: one pass, for time
    singles = np.concatenate([cam(x[i:i + 1], targets[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(maps, singles, atol=2e-4)


def test_every_new_method_is_on_the_command_line_and_runs_with_the_common_signature():
    torch.manual_seed(0)
    model = small_cnn(10).eval()
    x = torch.randn(1, 3, 16, 16)
    for name, method in NEW_METHODS.items():
        assert METHODS[name] is method
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cam = method(model=model, target_layers=[model[7]])
            cam.progress = False
            maps = cam(x, None)
        assert maps.shape == (1, 16, 16) and np.isfinite(maps).all(), name
        assert maps.max() == pytest.approx(1, abs=1e-4), name


# ------------------------------------------------ the pretrained classifier
DISCRIMINATIVE = ["hirescam", "gradcamelementwise", "layercam", "eigengradcam", "fullgrad",
                  "shapleycam", "finercam", "segeigencam", "refinecam", "cam", "smoothgradcam++"]
# Not class-discriminative, so not in the list above: RandomCAM (random weights),
# and EigenCAM, KPCA_CAM and FEM, which ignore the target (they map what the layer
# responds to most; on this photo that is the cat too, checked separately).
CLASS_AGNOSTIC = [info.name for info in registered_methods(class_specific=False,
                                                            randomised=False, attention=False)]


def _pretrained_map(model, photo, name, targets=None):
    method = METHODS[name]
    layers = [model.head_activation]
    if name == "refinecam":
        layers = [model.net._blocks[10], model.head_activation]  # 14 x 14 and 7 x 7
    kwargs = {"num_samples": 4} if name == "smoothgradcam++" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cam = method(model=model, target_layers=layers, progress=False, **kwargs)
    return cam(photo, targets)[0]


@pytest.mark.parametrize("name", DISCRIMINATIVE)
def test_pretrained_top_class_map_peaks_on_the_cat(pretrained, chelsea, name):
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, name)
    assert peak_in(cam, CAT_HEAD), np.unravel_index(int(np.argmax(cam)), cam.shape)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)


def test_pretrained_shapleycam_with_rest_target_peaks_on_the_cat(pretrained, chelsea):
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, "shapleycam", [ClassifierOutputReST(EGYPTIAN_CAT)])
    assert peak_in(cam, CAT_HEAD)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)


@pytest.mark.parametrize("name", CLASS_AGNOSTIC)
def test_pretrained_class_agnostic_maps_find_the_dominant_object(pretrained, chelsea, name):
    _, x = chelsea
    cam = _pretrained_map(pretrained, x, name)
    assert peak_in(cam, CAT_HEAD)
    assert region_mean(cam, CAT_HEAD) > 3 * region_mean(cam, CAT_BACKGROUND)
