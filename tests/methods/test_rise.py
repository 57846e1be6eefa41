"""RISE: the formula by hand on a tiny case, the masks, the seed, the
chunks, the models it explains that cannot be hooked (TorchScript,
torch.export, a function), and its argument checks.

The guarantees every method owes (batch = singles, model unchanged,
many targets, threads, bad inputs) run on RISE from the registry
(tests/core, tests/methods), with ``QUICK_MASKS`` masks (tests/conftest.py).
"""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import METHODS, GradCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.rise import DEFAULT_NUM_MASKS, RISE, FunctionModel, RiseMasks
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

H = W = 6
GRID = 3  # cells of 2 x 2 pixels, upsampled to 8 x 8, shifted by 0 or 1


class LinearScores(nn.Module):
    """y_k = <V_k, x>: the score of a masked input is known exactly."""

    def __init__(self, classes=3, channels=2, size=(H, W)):
        super().__init__()
        self.v = nn.Parameter(torch.randn(classes, channels, *size, generator=torch.Generator()
                                          .manual_seed(5)))

    def forward(self, x):
        return torch.einsum("kc...,bc...->bk", self.v, x)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).amax(dim=(2, 3)))


def images(batch=2, channels=3, size=16):
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))


def rise(model, **kwargs):
    kwargs.setdefault("progress", False)
    return RISE(model, **kwargs)


# ------------------------------------------------------------ by hand
def bilinear_up(grid, size):
    """Bilinear upsampling (align_corners=False) of a 2-D grid, by hand."""
    def axis(out, length):
        src = np.maximum((np.arange(out) + 0.5) * length / out - 0.5, 0)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, length - 1), src - low
    (y0, y1, wy), (x0, x1) = axis(size[0], grid.shape[0]), axis(size[1], grid.shape[1])[:2]
    wx = axis(size[1], grid.shape[1])[2]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def hand_masks(masks):
    """The masks of a RiseMasks, from its grids and shifts, by hand."""
    out = []
    for grid, (dy, dx) in zip(masks.grids[:, 0].numpy().astype(np.float64), masks.shifts):
        up = bilinear_up(grid, masks.upsampled)
        out.append(up[dy:dy + H, dx:dx + W])
    return np.stack(out)


def test_masks_are_shifted_bilinear_upsamplings_of_random_grids():
    masks = RiseMasks(40, (H, W), GRID, 0.5, seed=3)
    assert masks.cells == [2, 2] and masks.upsampled == (8, 8)
    assert masks.grids.shape == (40, 1, GRID, GRID)
    assert {tuple(s) for s in masks.shifts} <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert len({tuple(s) for s in masks.shifts}) == 4  # every shift is drawn
    made = masks.make(torch.arange(40), torch.device("cpu"), torch.float64)
    assert made.shape == (40, 1, H, W)
    np.testing.assert_allclose(made[:, 0].numpy(), hand_masks(masks), atol=1e-12)
    # any subset, in any order, is the same masks
    index = torch.tensor([7, 3, 39])
    np.testing.assert_array_equal(masks.make(index, torch.device("cpu"), torch.float64).numpy(),
                                  made[index].numpy())


def test_map_is_the_hand_computed_rise():
    model = LinearScores()
    x = torch.randn(2, 2, H, W, generator=torch.Generator().manual_seed(2))
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    count, p = 30, 0.4
    cam = rise(model, num_masks=count, grid_size=GRID, p=p, seed=11, batch_size=7)
    masks = hand_masks(RiseMasks(count, (H, W), GRID, p, seed=11))  # N x H x W
    v = model.v.detach().numpy().astype(np.float64)
    xs = x.numpy().astype(np.float64)
    expected = []
    for image, k in zip(xs, (0, 2)):
        scores = np.einsum("chw,nhw->n", v[k] * image, masks)  # f(I * M_i)
        expected.append(np.einsum("n,nhw->hw", scores, masks) / (count * p))
    expected = np.stack(expected)
    saliency = cam.saliency(x, targets, 1)[:, 0].numpy()
    np.testing.assert_allclose(saliency, expected, rtol=1e-5, atol=1e-5)
    low = expected.min(axis=(1, 2), keepdims=True)
    normalised = (expected - low) / (expected.max(axis=(1, 2), keepdims=True) - low)
    maps = cam(x, targets)
    assert maps.shape == (2, H, W) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, normalised, atol=1e-5)


# ------------------------------------------------------ seed and chunks
def test_same_seed_same_map_whatever_the_chunks():
    model, x = SmallNet().eval(), images(2)
    targets = [ClassifierOutputTarget(c) for c in (0, 3)]
    maps = [rise(model, num_masks=25, seed=4, batch_size=size)(x, targets)
            for size in (3, 7, 200)]
    for other in maps[1:]:
        np.testing.assert_allclose(other, maps[0], atol=1e-5, rtol=0)
    again = rise(model, num_masks=25, seed=4)
    np.testing.assert_array_equal(again(x, targets), again(x, targets))
    other_seed = rise(model, num_masks=25, seed=5)(x, targets)
    assert np.abs(other_seed - maps[0]).max() > 0.05


def test_seed_none_draws_new_masks_at_every_call():
    model, x = SmallNet().eval(), images(1)
    cam = rise(model, num_masks=16, seed=None)
    assert np.abs(cam(x) - cam(x)).max() > 0.05


def test_passes_are_chunks_of_batch_size_and_targets_share_them():
    model = SmallNet().eval()
    seen = []

    def scores(batch):
        seen.append(len(batch))
        return model(batch)

    cam = rise(scores, num_masks=10, batch_size=4)
    one = cam(images(2), [ClassifierOutputTarget(1), ClassifierOutputTarget(2)])
    single_target_passes = list(seen)
    seen.clear()
    table = cam(images(2), [[ClassifierOutputTarget(1), ClassifierOutputTarget(0)],
                            [ClassifierOutputTarget(2), ClassifierOutputTarget(3)]])
    # one unmasked pass of the batch, then 2 x 10 masked copies, 4 at a time
    assert single_target_passes == [2, 4, 4, 4, 4, 4] == seen
    assert table.shape == (2, 2, 16, 16)
    np.testing.assert_allclose(table[:, 0], one, atol=1e-6)


def test_progress_bar_is_named_rise(capsys):
    rise(SmallNet().eval(), num_masks=8, progress=True)(images(1))
    assert "RISE" in capsys.readouterr().err


# ------------------------------------------- models that cannot be hooked
def _scripted(model):
    with warnings.catch_warnings():  # torch.jit is deprecated in recent torch
        warnings.simplefilter("ignore")
        return torch.jit.script(model)


def _traced(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, x)


def _exported(model, x):
    batch = torch.export.Dim("batch")
    return torch.export.export(model, (x,), dynamic_shapes=({0: batch},))


BLACK_BOXES = {
    "torch.jit.script": lambda model, x: _scripted(model),
    "torch.jit.trace": _traced,
    "a plain function": lambda model, x: (lambda batch: model(batch)),
    "torch.export program": _exported,
    "torch.export program's module": lambda model, x: _exported(model, x).module(),
}


@pytest.mark.parametrize("kind", list(BLACK_BOXES))
def test_models_that_cannot_be_hooked_give_the_map_of_the_module(kind):
    model, x = SmallNet().eval(), images(2)
    targets = [ClassifierOutputTarget(2), ClassifierOutputTarget(0)]
    expected = rise(model, num_masks=20, batch_size=6)(x, targets)
    black_box = BLACK_BOXES[kind](model, x)
    cam = rise(black_box, num_masks=20, batch_size=6)
    np.testing.assert_allclose(cam(x, targets), expected, atol=1e-5)
    np.testing.assert_allclose(cam(x), rise(model, num_masks=20)(x), atol=1e-5)  # top class


@pytest.mark.slow  # torch.compile compiles for each new batch shape: tens of seconds on a CPU
def test_a_compiled_model_runs_compiled_and_gives_the_map_of_the_module():
    model, x = SmallNet().eval(), images(2)
    compiled = torch.compile(model)
    cam = rise(compiled, num_masks=16, batch_size=8)
    assert cam.model is compiled  # run as compiled, not unwrapped
    np.testing.assert_allclose(cam(x), rise(model, num_masks=16, batch_size=8)(x), atol=1e-5)


def test_torch_export_module_keeps_its_mode_and_is_left_as_it_was():
    model, x = SmallNet().eval(), images(2)
    exported = _exported(model, x).module()
    flags = [m.training for m in exported.modules()]
    requires = [p.requires_grad for p in exported.parameters()]
    rise(exported, num_masks=8)(x)
    assert [m.training for m in exported.modules()] == flags
    assert [p.requires_grad for p in exported.parameters()] == requires


def test_torch_export_with_a_fixed_batch_is_refused_before_any_pass():
    model, x = SmallNet().eval(), images(2)
    for given in (torch.export.export(model, (x,)), torch.export.export(model, (x,)).module()):
        with pytest.raises(ValueError) as excinfo:
            RISE(given)
        assert str(excinfo.value) == (
            "model: this torch.export program takes a fixed batch of 2 image(s), and RISE runs "
            "batch_size masked copies at a time; export it with a dynamic batch dimension, "
            "from an example batch of 2 or more: torch.export.export(model, (x,), "
            "dynamic_shapes=({0: torch.export.Dim('batch')},))")


def test_a_function_model_is_wrapped_without_parameters():
    cam = rise(lambda batch: batch.mean(dim=(2, 3)), num_masks=8)
    assert isinstance(cam.model, FunctionModel) and list(cam.model.parameters()) == []
    assert cam(images(1)).shape == (1, 16, 16)


def test_registry_traits():
    info = get_method("rise")
    assert METHODS["rise"] is RISE
    assert (info.black_box, info.perturbation, info.extra_passes, info.uses_gradients,
            info.uses_target_layers, info.class_specific, info.sampling) == (
        True, True, True, False, False, True, False)


# ------------------------------------------------ hook-based methods refuse
def test_hook_based_methods_point_to_rise_for_models_they_cannot_hook():
    model, x = SmallNet().eval(), images(2)
    advice = ("or explain the model as a black box with RISE(model) (--method rise), which "
              "needs only its forward passes")
    with pytest.raises(TypeError) as excinfo:
        GradCAM(_exported(model, x).module(), target_layers=None)
    assert str(excinfo.value) == (
        "the model is the module of a torch.export program (a GraphModule), whose layers "
        "cannot be hooked, so no CAM can record them; pass the original torch.nn.Module "
        "(before torch.jit.script/trace or torch.export), for example by rebuilding it and "
        f"loading its state_dict, {advice}")
    with pytest.raises(TypeError) as excinfo:
        GradCAM(_scripted(model))  # no target layers: refused before the layer search
    assert str(excinfo.value).startswith("the model is a TorchScript RecursiveScriptModule, ")
    assert str(excinfo.value).endswith(advice)
    with pytest.raises(TypeError) as excinfo:
        GradCAM(_exported(model, x), target_layers=[model.conv])
    message = str(excinfo.value)
    assert message.startswith("model must be a torch.nn.Module, got <torch.export")
    assert message.endswith("a model given as a function (for example one that runs an ONNX "
                            "Runtime session) or as a torch.export program has no layers to "
                            f"hook: pass its torch.nn.Module, {advice}")


# ----------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_masks": 0}, ValueError, "num_masks must be >= 1, got 0"),
    ({"num_masks": "100"}, TypeError, "num_masks must be a positive int, got '100' (str)"),
    ({"grid_size": 1}, ValueError, "grid_size must be >= 2 (a grid of one cell keeps or drops "
                                   "the whole image), got 1"),
    ({"grid_size": 7.0}, TypeError, "grid_size must be a positive int, got 7.0 (float)"),
    ({"p": 1}, ValueError, "p must lie strictly between 0 and 1 (the probability that a cell "
                           "of a mask is kept; 0 or 1 gives masks that are all alike), got 1"),
    ({"p": "half"}, TypeError, "p must be a number between 0 and 1 (the probability that a "
                               "cell of a mask is kept), got 'half' (str)"),
    ({"seed": 1.5}, TypeError, "seed must be an int or None, got 1.5 (float)"),
    ({"uses_gradients": True}, ValueError, "uses_gradients=True: RISE takes no gradients, it "
                                           "runs forward passes only; leave uses_gradients out"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    with pytest.raises(error) as excinfo:
        RISE(SmallNet(), **kwargs)
    assert str(excinfo.value) == message


def test_eigen_smooth_does_not_apply():
    with pytest.raises(ValueError) as excinfo:
        rise(SmallNet().eval(), num_masks=4)(images(1), eigen_smooth=True)
    assert str(excinfo.value) == (
        "eigen_smooth=True: RISE makes its map as an average of masks, it has no channels to project; "
        "leave eigen_smooth out (aug_smooth=True works)")


def test_default_masks_and_the_paper_defaults(monkeypatch):
    # the quick tests run RISE with fewer masks (tests/conftest.py)
    monkeypatch.setattr(RISE, "default_num_masks", DEFAULT_NUM_MASKS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when no layer is given
        cam = RISE(SmallNet())
    assert (cam.num_masks, cam.grid_size, cam.p, cam.seed) == (1000, 7, 0.5, 0)
    assert RISE(SmallNet(), num_masks=3).num_masks == 3
