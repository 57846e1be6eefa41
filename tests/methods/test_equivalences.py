"""The equivalences the speed-ups rely on: each fast path gives the maps of
the straightforward computation.

- AblationCAM running only the layers after the target layer on the
  ablated copies (``prefix_once``) == full forward passes of repeated
  inputs, on a ResNet, a DenseNet (target layer inside a dense block, where
  the fast path must detect that it cannot work and fall back) and a ViT;
- ScoreCAM in chunks of one == all masked inputs in one chunk;
- the constant-channel shortcut of ScoreCAM and the zero-channel shortcut of
  AblationCAM == running every channel (and they really skip forwards);
- aug_smooth's one batched pass == the augmented copies one after another;
- memory stays flat over 500 calls.

No timing here: speed is measured by bench/benchmark.py.
"""
import gc

import numpy as np
import psutil
import pytest
import torch
import torchvision

from pytorch_grad_cam import AblationCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def _input(size=32, batch=2):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def _resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _densenet121():
    torch.manual_seed(0)
    return torchvision.models.densenet121(weights=None).eval()


def _vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=10).eval()
    # torchvision starts the head at zero: every score would be 0
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


def _with_constant_channels():
    """resnet18 whose stem ReLU has 24 all-zero and 8 constant non-zero
    channels (of 64)."""
    model = _resnet18()
    with torch.no_grad():
        model.bn1.weight[:32] = 0
        model.bn1.bias[:24] = -1.0   # ReLU(-1) = 0 everywhere
        model.bn1.bias[24:32] = 0.5  # 0.5 everywhere
    return model


class _ImageCounter:
    """Counts the images that go through the model's forward passes."""

    def __init__(self, model):
        self.images = 0
        self.handle = model.register_forward_pre_hook(self._count)

    def _count(self, module, inputs):
        self.images += inputs[0].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _non_trivial(maps):
    """Each map has structure: not constant, not all zero."""
    flat = maps.reshape(len(maps), -1)
    return bool((flat.std(axis=1) > 0.05).all())


# ------------------------------------------------------------ AblationCAM
ABLATION_CASES = {
    # model, target layer, reshape transform, images, prefix-once possible
    "resnet18": (_resnet18, lambda m: m.layer1[-1], None, 2, True),
    "densenet121-inside-dense-block": (_densenet121,
                                       lambda m: m.features.denseblock2.denselayer3,
                                       None, 1, False),
    "vit": (_vit, lambda m: m.encoder.layers[-1].ln_1, vit_reshape_transform, 2, True),
}


@pytest.mark.parametrize("case", list(ABLATION_CASES))
def test_ablation_prefix_once_equals_full_forwards(case):
    build, layer_of, reshape, images, possible = ABLATION_CASES[case]
    model = build()
    x = _input(batch=images)
    maps = {}
    for prefix_once in (True, False):
        cam = AblationCAM(model=model, target_layers=[layer_of(model)],
                          reshape_transform=reshape, prefix_once=prefix_once, progress=False)
        maps[prefix_once] = cam(input_tensor=x, targets=TARGETS[:images])
        assert cam.used_prefix_once is (prefix_once and possible)
        if prefix_once and not possible:
            # the dense block concatenates the earlier features (batch 1)
            # with the ablated copies: detected, not guessed
            assert cam.fallback_reason is not None
    assert _non_trivial(maps[False])
    np.testing.assert_allclose(maps[True], maps[False], atol=1e-4, rtol=0)


def test_ablation_prefix_once_runs_the_prefix_once_per_chunk():
    """With every copy in one chunk, the model sees the image once for the
    scores and once for the ablated copies (they enter after the target
    layer); the straightforward way feeds one image per ablated channel."""
    model = _resnet18()
    x = _input(batch=1)
    channels = 64  # layer1
    for prefix_once, expected in ((True, 1 + 1), (False, 1 + channels)):
        cam = AblationCAM(model=model, target_layers=[model.layer1[-1]], batch_size=1000,
                          prefix_once=prefix_once, zero_channel_shortcut=False, progress=False)
        with _ImageCounter(model) as counter:
            cam(input_tensor=x, targets=TARGETS[:1])
        assert counter.images == expected


def test_ablation_zero_channel_shortcut_equals_no_shortcut():
    model = _with_constant_channels()
    x = _input(batch=1)
    maps, images = {}, {}
    for shortcut in (True, False):
        cam = AblationCAM(model=model, target_layers=[model.relu], batch_size=16,
                          prefix_once=False, zero_channel_shortcut=shortcut, progress=False)
        with _ImageCounter(model) as counter:
            maps[shortcut] = cam(input_tensor=x, targets=TARGETS[:1])
        images[shortcut] = counter.images
    # the 24 all-zero channels are skipped; the constant 0.5 channels are
    # not zero, so they are ablated
    assert images[False] == 1 + 64
    assert images[True] == 1 + 64 - 24
    assert _non_trivial(maps[False])
    np.testing.assert_allclose(maps[True], maps[False], atol=1e-5, rtol=0)


# --------------------------------------------------------------- ScoreCAM
def test_scorecam_chunked_equals_unchunked():
    """Chunks of 3 (crossing from one image's channels to the next) and of
    one image == every masked input in one chunk."""
    model = _resnet18()
    x = _input()
    layer = model.relu  # 64 channels, 16 x 16
    maps = {}
    for batch_size in (1, 3, 1000):
        cam = ScoreCAM(model=model, target_layers=[layer], batch_size=batch_size, progress=False)
        maps[batch_size] = cam(input_tensor=x[:1] if batch_size == 1 else x,
                               targets=TARGETS[:1] if batch_size == 1 else TARGETS)
    assert _non_trivial(maps[1000])
    np.testing.assert_allclose(maps[3], maps[1000], atol=1e-5, rtol=0)
    np.testing.assert_allclose(maps[1], maps[1000][:1], atol=1e-5, rtol=0)


def test_scorecam_constant_channel_shortcut_equals_no_shortcut():
    model = _with_constant_channels()
    x = _input(batch=1)
    maps, images = {}, {}
    for shortcut in (True, False):
        cam = ScoreCAM(model=model, target_layers=[model.relu], batch_size=16,
                       constant_channel_shortcut=shortcut, progress=False)
        with _ImageCounter(model) as counter:
            maps[shortcut] = cam(input_tensor=x, targets=TARGETS[:1])
        images[shortcut] = counter.images
    # the 32 constant channels (zero or not) share one zero-mask forward
    assert images[False] == 1 + 64
    assert images[True] == 1 + 64 - 32 + 1
    assert _non_trivial(maps[False])
    np.testing.assert_allclose(maps[True], maps[False], atol=1e-5, rtol=0)


# ------------------------------------------------------------- aug_smooth
def test_aug_smooth_batched_equals_one_copy_at_a_time():
    model = _resnet18()
    x = _input()
    cam = GradCAM(model=model, target_layers=[model.layer2[-1]])
    smoothed = cam(input_tensor=x, targets=TARGETS, aug_smooth=True)
    expected = np.zeros_like(smoothed)
    transforms = list(cam.tta_transforms)
    for transform in transforms:
        maps = cam(input_tensor=transform.augment_image(x), targets=TARGETS)
        expected += transform.deaugment_mask(torch.from_numpy(maps)[:, None])[:, 0].numpy()
    expected /= len(transforms)
    assert _non_trivial(smoothed)
    np.testing.assert_allclose(smoothed, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_aug_smooth_grouping_of_the_copies_does_not_change_the_maps(method):
    """batch_size decides how many transforms' copies share a pass (all 12
    copies in one pass at 64, one transform's 2 copies per pass at 1, 2
    transforms' at 5): the maps and the outputs are the same."""
    model = _resnet18()
    x = _input()
    results = []
    for batch_size in (64, 1, 5):
        cam = method(model=model, target_layers=[model.layer2[-1]], batch_size=batch_size,
                     progress=False)
        passes = []
        handle = model.register_forward_pre_hook(
            lambda m, i, passes=passes: passes.append(i[0].shape[0]))
        try:
            maps = cam(input_tensor=x, targets=TARGETS, aug_smooth=True)
        finally:
            handle.remove()
        results.append((maps, cam.outputs, passes))
    (one, out_one, passes_one), (single, out_single, passes_single), (five, out_five, _) = results
    if method is GradCAM:
        assert passes_one == [12] and passes_single == [2] * 6
    assert _non_trivial(one)
    np.testing.assert_allclose(single, one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(five, one, atol=1e-5, rtol=0)
    assert out_one.shape == out_single.shape == out_five.shape == (12, 1000)
    torch.testing.assert_close(out_single, out_one, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------- memory
def test_memory_flat_gradcam():
    """500 calls of a small model: the resident memory after them is within
    5% of the memory after the first 10."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 4)).eval()
    x = _input(size=16, batch=1)
    targets = [ClassifierOutputTarget(1)]
    process = psutil.Process()
    with GradCAM(model=model, target_layers=[model[2]]) as cam:
        for call in range(500):
            maps = cam(input_tensor=x, targets=targets)
            if call == 9:
                gc.collect()
                start = process.memory_info().rss
    gc.collect()
    growth = process.memory_info().rss - start
    assert _non_trivial(maps)
    assert growth < 0.05 * start, f"RSS grew by {growth / 2 ** 20:.1f} MiB over 490 calls"
