"""Several targets per image in one call (``targets`` = one list of K
targets per image), for every registered method (the ``method_name`` and
``attention_method`` parameters come from the registry, tests/conftest.py):

- the maps come back as B x K x H x W, map [i, k] equal to that of a call
  with the single target ``targets[i][k]`` (exactly, except for the
  sampling methods: within float rounding);
- the model runs exactly the forward passes of a one-target call: the
  recording pass and every perturbation pass are shared by the K targets;
- the model comes back unchanged;
- a ragged table, an empty list or a non-callable entry is a ValueError /
  TypeError naming the entry, before any forward pass;
- the same with ``aug_smooth``, ``eigen_smooth``, several target layers,
  SESS, volumes, the attention methods on every Vision Transformer family,
  and ``differentiable_maps``.
"""
import warnings

import numpy as np
import pytest
import torch
from registry_cases import EIGEN_REFUSED, refuses_eigen_smooth  # tests/registry_cases.py
from test_batching import SmallNet, make, method_and_model  # tests/core/test_batching.py
from test_model_state import assert_same_state, snapshot  # tests/core/test_model_state.py
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.sess import SESS
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, RankedClassTarget
from pytorch_grad_cam.utils.target_sets import ranked_targets, top_k_classes, top_k_targets

TABLE = [[2, 0, 4], [1, 3, 1], [4, 4, 0]]  # K = 3 classes for each of 3 images


@pytest.fixture
def images():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))


def table(rows):
    return [[ClassifierOutputTarget(c) for c in row] for row in rows]


def column(rows, k):
    return [ClassifierOutputTarget(row[k]) for row in rows]


def tolerance(method_name):
    """0 (exactly equal maps), except for the methods that average random
    samples or masks (RISE), whose sums may round differently."""
    info = get_method(method_name)
    return 1e-5 if info.sampling or info.black_box else 0.0


@pytest.mark.parametrize("eigen_smooth", [False, True], ids=["plain", "eigen"])
def test_table_equals_the_single_target_calls(method_name, eigen_smooth, images):
    method, model = method_and_model(method_name)
    cam = make(method, model)
    if eigen_smooth and refuses_eigen_smooth(method_name):  # no channels to project
        with pytest.raises(ValueError, match=EIGEN_REFUSED):
            cam(images, table(TABLE), eigen_smooth=True)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = cam(images, table(TABLE), eigen_smooth=eigen_smooth)
        singles = np.stack([cam(images, column(TABLE, k), eigen_smooth=eigen_smooth)
                            for k in range(3)], axis=1)
    assert maps.shape == (3, 3, 16, 16)
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, singles, atol=tolerance(method_name), rtol=0)
    # a table with K = 1 is still a table: B x 1 x H x W
    one = cam(images, table([[r[0]] for r in TABLE]), eigen_smooth=eigen_smooth)
    assert one.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(one[:, 0], singles[:, 0], atol=tolerance(method_name), rtol=0)


def test_table_runs_the_forward_passes_of_one_target(method_name, images):
    """SmallNet's ``after`` module logs the batch size of every forward
    pass: K targets cost exactly the passes (recording and perturbation
    chunks) of one target."""
    method, model = method_and_model(method_name)
    cam = make(method, model, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.after.sizes.clear()
        cam(images, column(TABLE, 0))
        one_target = list(model.after.sizes)
        model.after.sizes.clear()
        cam(images, table(TABLE))
    assert model.after.sizes == one_target
    assert one_target[0] == 3  # the recording pass of the 3 images, once


def test_table_with_aug_smooth_equals_the_single_target_calls(method_name, images):
    method, model = method_and_model(method_name)
    cam = make(method, model)
    rows = [row[:2] for row in TABLE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = cam(images, table(rows), aug_smooth=True)
        singles = np.stack([cam(images, column(rows, k), aug_smooth=True) for k in range(2)],
                           axis=1)
    assert maps.shape == (3, 2, 16, 16)
    np.testing.assert_allclose(maps, singles, atol=max(1e-6, tolerance(method_name)), rtol=0)


def test_table_call_leaves_the_model_as_it_was(method_name, images):
    method, model = method_and_model(method_name)
    model.train()
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.25)
    model.conv2.weight.requires_grad_(False)
    before = snapshot(model)
    cam = make(method, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam(images, table(TABLE))
    assert_same_state(before, snapshot(model))


@pytest.mark.parametrize("bad, error, message", [
    ([[0, 1], [2], [3, 4]], ValueError,
     r"targets\[1\] has 1 targets but targets\[0\] has 2; every image needs the same number"),
    ([[0, 1], [], [3, 4]], ValueError, r"targets\[1\] is an empty list"),
    ([[0, 1], [2, 3]], ValueError, "targets has 2 entries but the batch has 3 images"),
], ids=["ragged", "empty", "rows"])
def test_bad_tables_are_refused_before_any_forward_pass(method_name, images, bad, error,
                                                        message):
    method, model = method_and_model(method_name)
    cam = make(method, model)
    model.after.sizes.clear()
    with pytest.raises(error, match=message):
        cam(images, table(bad))
    assert model.after.sizes == []


def test_mixed_and_non_callable_entries_are_refused(images):
    model = SmallNet().eval()
    cam = make(GradCAM, model)
    with pytest.raises(TypeError, match=r"targets\[1\] is ClassifierOutputTarget.*other entries "
                                        r"of targets are lists"):
        cam(images, [table([[1]])[0], ClassifierOutputTarget(2), table([[3]])[0]])
    with pytest.raises(TypeError, match=r"targets\[2\]\[1\] must be callable.*got 7$"):
        cam(images, [table([[1, 2]])[0], table([[1, 2]])[0], [ClassifierOutputTarget(0), 7]])
    assert model.after.sizes == []


def test_several_target_layers_and_volumes():
    """Two target layers, and a 3-D network on volumes B x C x D x H x W."""
    model = SmallNet().eval()
    cam = GradCAM(model, target_layers=[model.block1, model.relu2])
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    rows = [[0, 1, 2], [3, 4, 0]]
    maps = cam(x, table(rows))
    np.testing.assert_array_equal(maps, np.stack([cam(x, column(rows, k)) for k in range(3)], 1))

    volume_net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                               nn.Flatten(), nn.Linear(4, 3)).eval()
    cam = GradCAM(volume_net, target_layers=[volume_net[1]])
    v = torch.randn(2, 2, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    rows = [[0, 2], [1, 0]]
    maps = cam(v, table(rows))
    assert maps.shape == (2, 2, 4, 6, 6)
    np.testing.assert_array_equal(maps, np.stack([cam(v, column(rows, k)) for k in range(2)], 1))


@pytest.mark.parametrize("pre_filter", [0.0, 0.3])
@pytest.mark.parametrize("pool", ["mean", "max"])
def test_sess_table_equals_the_single_target_calls_and_shares_the_patch_passes(pool, pre_filter):
    model = SmallNet(pooled=True).eval()  # takes the patches' size
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    sess = SESS(model, target_layers=[model.relu2], base_method=GradCAM, window_size=12,
                step_size=4, pool=pool, pre_filter_ratio=pre_filter, progress=False)
    rows = [[0, 3], [2, 1]]
    model.after.sizes.clear()
    sess(x, column(rows, 0))
    one_target = list(model.after.sizes)
    model.after.sizes.clear()
    maps = sess(x, table(rows))
    if pre_filter == 0:
        assert model.after.sizes == one_target
    else:
        # the patches run once for all targets: those that any target keeps,
        # at most the ones the first target drops more than its own
        dropped = int(sess.patch_count(16, 16) * pre_filter)
        assert sum(one_target) < sum(model.after.sizes) <= sum(one_target) + 2 * dropped
    assert maps.shape == (2, 2, 16, 16)
    singles = np.stack([sess(x, column(rows, k)) for k in range(2)], axis=1)
    np.testing.assert_allclose(maps, singles, atol=1e-6, rtol=0)


def test_differentiable_maps_of_a_table(differentiable_method, images):
    method, model = method_and_model(differentiable_method)
    cam = make(method, model)
    maps = cam.differentiable_maps(images, table(TABLE))
    assert maps.shape == (3, 3, 16, 16) and maps.requires_grad
    expected = cam(images, table(TABLE))
    np.testing.assert_allclose(maps.detach().numpy(), expected, atol=1e-5, rtol=0)
    maps.sum().backward()
    assert model.fc.weight.grad is not None


def test_attention_methods_table_equals_the_single_target_calls(attention_method, vit):
    model = vit.build()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    cam = get_method(attention_method).cls(model, output_selector=vit.output_selector,
                                           progress=False)
    rows = [[1, 0, 2], [3, 1, 1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps = cam(x, table(rows))
        singles = np.stack([cam(x, column(rows, k)) for k in range(3)], axis=1)
    assert maps.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(maps, singles)


def test_outputs_are_the_images_not_the_pairs(images):
    model = SmallNet().eval()
    cam = make(GradCAM, model)
    cam(images, table(TABLE))
    assert cam.outputs.shape == (3, 5)
    torch.testing.assert_close(cam.outputs, model(images))


def test_ranked_targets_choose_the_classes_from_the_calls_own_pass(method_name, images):
    """``ranked_targets`` gives the maps of ``top_k_targets`` on the model's
    scores, with no forward pass of the caller's and no more passes than a
    call with ``targets=None``; the perturbed inputs are scored for the
    classes the images chose."""
    method, model = method_and_model(method_name)
    cam = make(method, model, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            scores = model(images)
        expected = cam(images, top_k_targets(scores, 3))
        model.after.sizes.clear()
        cam(images)  # each image's top class
        top_class_passes = list(model.after.sizes)
        model.after.sizes.clear()
        maps = cam(images, ranked_targets(3, 3))
    assert model.after.sizes == top_class_passes
    np.testing.assert_allclose(maps, expected, atol=tolerance(method_name), rtol=0)
    assert top_k_classes(cam.outputs, 3) == top_k_classes(scores, 3)


def test_ranked_class_target_checks_its_rank():
    model = SmallNet().eval()
    cam = make(GradCAM, model)
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"targets\[0\] \(RankedClassTarget\(5\)\): rank 5 is "
                                         r"out of range for a model output with 5 classes"):
        cam(x, [[RankedClassTarget(0), RankedClassTarget(5)]])
    with pytest.raises(ValueError, match="rank must be >= 0"):
        RankedClassTarget(-1)
    # called directly: the score of the class of that rank in the output it is given
    output = torch.tensor([0.5, 2.0, -1.0, 2.0])
    assert float(RankedClassTarget(0)(output)) == 2.0 and RankedClassTarget(1).category(output) == 3
    assert float(RankedClassTarget(3)(output)) == -1.0


def test_the_empty_map_diagnostic_of_a_table_runs_a_small_batch(images):
    """All 3 x 20 maps are empty (the classifier's weights are zero): the
    warning still says why, from three passes of at most 8 of those images,
    not of all 60 (image, target) pairs."""
    model = SmallNet().eval()
    with torch.no_grad():
        model.fc.weight.zero_()
    cam = make(GradCAM, model)
    model.after.sizes.clear()
    with pytest.warns(RuntimeWarning, match="the target score does not depend on the input"):
        cam(images, table([[c % 5 for c in range(20)]] * 3))
    assert model.after.sizes == [3, 8, 8, 8]
