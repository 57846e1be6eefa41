"""Layers whose output is not one tensor (dicts, tuples, lists), detection
models (torchvision's Faster R-CNN: a list of dicts per image, box
targets), parity with grad-cam 1.5.7's Faster R-CNN recipe, and YOLO.

The detector is torchvision's ``fasterrcnn_resnet50_fpn`` with random
weights at 96 x 96 (a forward pass well under a second), its box
regressions scaled by 0.01 so that its boxes stay near the anchors (random
regressions clip most boxes to zero width, whose IoU is undefined).
"""
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM, ScoreCAM
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerFasterRCNN
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import (
    combine_levels,
    fasterrcnn_reshape_transform,
    select_output_key,
)
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "detection_reference_157.npz"


# ------------------------------------------------------------------ the detector
def _parity_setup():
    """The seeded detector, images and targets of bench/detection_parity.py
    (its SETUP, repeated here: change both together)."""
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=96, max_size=96, box_score_thresh=0.0,
        box_detections_per_img=5, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20).eval()
    with torch.no_grad():
        for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
            layer.weight.mul_(0.01)
            layer.bias.mul_(0.01)
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        detections = model(images)
    return model, images, detections


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    """The detector's numbers depend on the number of threads its
    convolutions run on (its box regression and proposal ranking amplify
    the rounding); the stored 1.5.7 maps were made with two, as
    bench/detection_parity.py runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector():
    return _parity_setup()


def box_target(detection, index):
    return FasterRCNNBoxScoreTarget(detection["labels"][index:index + 1],
                                    detection["boxes"][index:index + 1])


def widest(detection, rank=0):
    """The index of the detection whose shorter side is the rank-th longest."""
    boxes = detection["boxes"]
    sides = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return int(sides.argsort(descending=True)[rank])


def model_state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.grad for p in model.parameters()])


def no_hooks(model):
    return not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


# ------------------------------------------------------ the tutorial's recipe
# (EigenCAM and AblationCAM with fasterrcnn_reshape_transform, as 1.5.7's
# tutorial: test_parity_with_grad_cam_1_5_7 below)
def test_gradcam_of_the_feature_pyramid_gives_maps_and_leaves_the_model_as_it_was(detector):
    model, images, detections = detector
    before = model_state(model)
    targets = [box_target(d, widest(d)) for d in detections]
    # all levels at the size of the finest: 1.5.7's transform resizes the
    # gradients to the 2 x 2 'pool' level by sampling, which misses them
    cam = GradCAM(model, [model.backbone], reshape_transform=combine_levels())
    maps = cam(images, targets)
    assert maps.shape == (2, 96, 96) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert (maps.reshape(2, -1).max(axis=1) > 0.99).all()
    assert (maps.reshape(2, -1).std(axis=1) > 0.05).all()
    # the outputs of the call: the detections of each image, detached
    assert isinstance(cam.outputs, list) and len(cam.outputs) == 2
    assert all(not v.requires_grad for d in cam.outputs for v in d.values())
    torch.testing.assert_close(cam.outputs[1]["boxes"], detections[1]["boxes"])
    after = model_state(model)
    assert after[:2] == before[:2] and all(g is None for g in after[2]) and no_hooks(model)


def test_another_box_gives_another_map(detector):
    model, images, detections = detector
    cam = GradCAM(model, [model.backbone], reshape_transform=combine_levels())
    first = cam(images[:1], [box_target(detections[0], widest(detections[0], 0))])
    second = cam(images[:1], [box_target(detections[0], widest(detections[0], 1))])
    assert first.max() > 0.99 and second.max() > 0.99
    assert np.abs(first - second).max() > 0.1


def test_batch_of_two_equals_single_calls(detector):
    model, images, detections = detector
    targets = [box_target(d, widest(d)) for d in detections]
    cam = GradCAM(model, [model.backbone], reshape_transform=combine_levels())
    batch = cam(images, targets)
    singles = np.concatenate([cam(images[i:i + 1], targets[i:i + 1]) for i in range(2)])
    # the detector's convolutions round differently for one image and for two
    # (how much depends on the number of threads), and its box regression and
    # proposal ranking pass that on: equal up to that, not to float32 precision
    # (measured: r > 0.99999, max difference 4e-6 with two threads; r > 0.9998,
    # max difference 0.012 with one)
    for one, alone in zip(batch, singles):
        assert np.corrcoef(one.ravel(), alone.ravel())[0, 1] > 0.999
    np.testing.assert_allclose(batch, singles, atol=0.03, rtol=0)


@pytest.mark.filterwarnings("ignore:the class activation map is all zeros")
@pytest.mark.parametrize("key", ["0", "1"])
def test_selecting_a_level_gives_the_map_of_that_level(detector, key):
    """GradCAM of the backbone's dict at key '0' is GradCAM of the FPN layer
    that computes level '0' (its output is that entry of the dict)."""
    model, images, detections = detector
    targets = [box_target(d, widest(d)) for d in detections]
    selected = GradCAM(model, [model.backbone], reshape_transform=select_output_key(key))(
        images, targets)
    layer = GradCAM(model, [model.backbone.fpn.layer_blocks[int(key)]])(images, targets)
    np.testing.assert_allclose(selected, layer, atol=1e-6, rtol=0)
    # the boxes are small enough for the box head to pool them from level '0'
    # only: the map at '1' is empty, the same with both ways
    assert selected.max() > 0.99 if key == "0" else selected.max() == 0


def test_detector_without_targets_asks_for_box_targets(detector):
    model, images, _ = detector
    cam = GradCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform)
    with pytest.raises(ValueError, match="detection model needs box targets") as error:
        cam(images)
    assert "FasterRCNNBoxScoreTarget" in str(error.value) and no_hooks(model)


def test_a_method_that_ignores_targets_explains_a_detector_without_them(detector):
    # as grad-cam 1.5.7's YOLOv5 tutorial calls EigenCAM: no targets
    model, images, _ = detector
    cam = EigenCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform)
    maps = cam(images)
    assert maps.shape == (len(images),) + tuple(images.shape[2:]) and maps.max() > 0
    assert no_hooks(model)


def test_dict_output_without_reshape_transform_is_explained_in_the_error(detector):
    model, images, detections = detector
    cam = GradCAM(model, [model.backbone])
    with pytest.raises(ValueError) as error:
        cam(images, [box_target(d, 0) for d in detections])
    message = str(error.value)
    for fragment in ("target_layers[0]", "BackboneWithFPN", "OrderedDict with keys "
                     "['0', '1', '2', '3', 'pool']", "'0': (2, 256, 24, 24)",
                     "'pool': (2, 256, 2, 2)", "reshape_transform", "select_output_key",
                     "combine_levels", "fasterrcnn_reshape_transform"):
        assert fragment in message, (fragment, message)
    assert no_hooks(model)


class _Boom(Exception):
    pass


def _raise(*args):
    raise _Boom("on purpose")


@pytest.mark.parametrize("where", ["target", "reshape_transform"])
def test_hooks_removed_and_model_restored_after_an_exception(detector, where):
    model, images, detections = detector
    before = model_state(model)
    if where == "target":
        cam = GradCAM(model, [model.backbone], reshape_transform=combine_levels())
        targets = [_raise, _raise]
    else:
        cam = AblationCAM(model, [model.backbone], reshape_transform=_raise, progress=False)
        targets = [box_target(d, 0) for d in detections]
    with pytest.raises(_Boom):
        cam(images, targets)
    after = model_state(model)
    assert after[:2] == before[:2] and all(g is None for g in after[2]) and no_hooks(model)
    # and the model still works
    maps = EigenCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform)(
        images, [box_target(d, 0) for d in detections])
    assert np.isfinite(maps).all()


def test_box_target_takes_tensors_on_the_outputs_device_and_checks_lengths():
    detections = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
                  "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.4])}
    from_tensor = FasterRCNNBoxScoreTarget(torch.tensor([2]), torch.tensor([[20.0, 20, 30, 30]]))
    from_list = FasterRCNNBoxScoreTarget([2], [[20, 20, 30, 30]])
    from_tensors = FasterRCNNBoxScoreTarget([2], [torch.tensor([20.0, 20, 30, 30])])
    for target in (from_tensor, from_list, from_tensors):
        torch.testing.assert_close(target(detections), torch.tensor(1.4))
    with pytest.raises(ValueError, match="labels has 2 entries but bounding_boxes has 1"):
        FasterRCNNBoxScoreTarget([1, 2], [[0, 0, 10, 10]])


# ------------------------------------------------ tiny models, numbers by hand
class TupleBlock(nn.Module):
    """Returns (features, 2 * features): a block with two outputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        features = torch.relu(self.conv(x))
        return features, 2 * features


class SameTwice(nn.Module):
    def forward(self, x):
        return x, x


class TupleNet(nn.Module):
    """score_c = sum_k u_ck mean(a_k) + v_ck mean(b_k), (a, b) = block(x)."""

    def __init__(self, block):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = block
        self.u = nn.Linear(4 if isinstance(block, TupleBlock) else 3, 3)
        self.v = nn.Linear(4 if isinstance(block, TupleBlock) else 3, 3)

    def forward(self, x):
        a, b = self.block(self.stem(x))
        return self.u(a.mean(dim=(2, 3))) + self.v(b.mean(dim=(2, 3)))


def spy_weights(cam):
    """The list that every weights array ``cam.get_cam_weights`` returns from
    now on is appended to (one per target layer and call)."""
    weights = []
    original = cam.get_cam_weights

    def spy(*args):
        weights.append(original(*args))
        return weights[-1]

    cam.get_cam_weights = spy
    return weights


def _expected_gradcam(activations, weights, size):
    """ReLU(sum_k w_k A_k), min-max normalised, resized as the library does."""
    cam = torch.relu((weights[:, :, None, None] * activations).sum(dim=1))
    low = cam.flatten(1).min(dim=1).values[:, None, None]
    high = cam.flatten(1).max(dim=1).values[:, None, None]
    cam = (cam - low) / (high - low)
    return torch.nn.functional.interpolate(cam[:, None], size=size, mode="bilinear",
                                           align_corners=False)[:, 0].numpy()


@pytest.mark.parametrize("element", [0, 1])
def test_tuple_output_explained_with_select_output_key(element):
    """GradCAM weights of element e of (a, b): dY/dA = u_c / N (e = 0) or
    v_c / N (e = 1), so the map is ReLU(sum_k u_ck a_k) resp. v and b."""
    model = TupleNet(TupleBlock()).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    category = 1
    cam = GradCAM(model, [model.block], reshape_transform=select_output_key(element))
    maps = cam(x, [lambda out: out[category]] * 2)
    with torch.no_grad():
        a, b = model.block(model.stem(x))
    head = model.u if element == 0 else model.v
    activations = (a, b)[element]
    weights = head.weight[category].detach()[None].expand(2, -1) / 64
    np.testing.assert_allclose(maps, _expected_gradcam(activations, weights, (8, 8)), atol=1e-5)


def test_the_same_tensor_twice_in_a_tuple_gets_the_gradient_of_each_place():
    """(x, x): the gradient at element 0 is that of its own use (u), not of
    both uses (u + v)."""
    model = TupleNet(SameTwice()).eval()
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    cam = GradCAM(model, [model.block], reshape_transform=select_output_key(0))
    weights = spy_weights(cam)
    cam(x, [lambda out: out[2]])
    torch.testing.assert_close(weights[-1][0], model.u.weight[2].detach() / 36)


def test_combine_levels_and_fasterrcnn_transform_by_hand():
    levels = OrderedDict([("0", torch.arange(8.0).reshape(1, 2, 2, 2) - 3),
                          ("pool", torch.tensor([[[[-5.0]]]]))])
    # combine_levels(): the first level's size; 'pool' (1 x 1) repeated to 2 x 2
    combined = combine_levels()(levels)
    assert combined.shape == (1, 3, 2, 2)
    torch.testing.assert_close(combined[:, :2], levels["0"])
    torch.testing.assert_close(combined[:, 2], torch.full((1, 2, 2), -5.0))
    # at 'pool''s size, absolute values: the bilinear 2 x 2 -> 1 x 1 is the mean
    small = combine_levels(size="pool", abs=True)(levels)
    torch.testing.assert_close(small.flatten(), torch.tensor([(3 + 2 + 1 + 0) / 4,
                                                              (1 + 2 + 3 + 4) / 4, 5.0]))
    torch.testing.assert_close(fasterrcnn_reshape_transform(levels), small)
    torch.testing.assert_close(combine_levels(keys=["pool", "0"], size=(1, 1))(levels)[0, :, 0, 0],
                               torch.tensor([-5.0, -1.5, 2.5]))
    with pytest.raises(ValueError, match="no key 'p3'"):
        select_output_key("p3")(levels)
    with pytest.raises(ValueError, match="length 2; key must be an index in -2..1"):
        select_output_key(2)((torch.zeros(1), torch.zeros(1)))
    with pytest.raises(ValueError, match="combine_levels"):
        fasterrcnn_reshape_transform({"0": torch.zeros(1, 1, 2, 2)})


class PyramidNet(nn.Module):
    """A backbone returning {'fine': B x 3 x 8 x 8, 'coarse': B x 2 x 4 x 4}
    and a head on both."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = _Pyramid()
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        levels = self.backbone(x)
        pooled = torch.cat([levels["fine"].mean(dim=(2, 3)), levels["coarse"].amax(dim=(2, 3))],
                           dim=1)
        return self.head(pooled)


class _Pyramid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fine = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())
        self.coarse = nn.Conv2d(3, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return OrderedDict([("fine", self.fine(x)),
                            ("coarse", torch.relu(self.coarse(x)) + 0.1)])


@pytest.mark.parametrize("prefix_once", [True, False])
def test_ablation_of_a_combined_dict_ablates_each_channel_in_its_level(prefix_once):
    """Channel k of combine_levels()'s maps is channel k of 'fine' for k < 3
    and channel k - 3 of 'coarse' after: its weight is the relative score
    drop when that channel of that level is set to the ablation value."""
    model = PyramidNet().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    category = 2
    cam = AblationCAM(model, [model.backbone], reshape_transform=combine_levels(),
                      ablation_layer=AblationLayer(value=-1.0), prefix_once=prefix_once,
                      progress=False)
    weights = spy_weights(cam)
    maps = cam(x, [lambda out: out[category]])
    assert cam.ablation_mode == ("prefix" if prefix_once else "full")
    with torch.no_grad():
        y = model(x)[0, category]
        expected = []
        for level, channel in [("fine", 0), ("fine", 1), ("fine", 2), ("coarse", 0),
                               ("coarse", 1)]:
            def ablate(module, inputs, output, level=level, channel=channel):
                output = OrderedDict(output)
                output[level] = output[level].clone()
                output[level][:, channel] = -1.0
                return output
            handle = model.backbone.register_forward_hook(ablate)
            try:
                expected.append(float((y - model(x)[0, category]) / y))
            finally:
                handle.remove()
    torch.testing.assert_close(weights[-1][0], torch.tensor(expected), atol=1e-5,
                               rtol=1e-4)
    assert np.isfinite(maps).all() and no_hooks(model)


def test_ablation_and_scorecam_of_one_selected_level_and_of_the_combination():
    model = PyramidNet().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    targets = [lambda out: out[1], lambda out: out[3]]
    # one level selected: the same maps as a target layer that returns it
    selected = AblationCAM(model, [model.backbone], reshape_transform=select_output_key("fine"),
                           progress=False)(x, targets)
    layer = AblationCAM(model, [model.backbone.fine], progress=False)(x, targets)
    assert (selected.reshape(2, -1).max(axis=1) > 0.99).all()
    np.testing.assert_allclose(selected, layer, atol=1e-5)
    scores = ScoreCAM(model, [model.backbone], reshape_transform=combine_levels(),
                      progress=False)(x, targets)
    assert scores.shape == (2, 8, 8) and (scores.reshape(2, -1).max(axis=1) > 0.99).all()


# ------------------------------------------------------- parity with 1.5.7
class _CentredEigenCAM(EigenCAM):
    """EigenCAM as 1.5.7 computes it: the projection of the *centred*
    activations (ours factorises them as they are, as the paper does)."""

    def project(self, weighted):
        return get_2d_projection(weighted, center=True)


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.fail(f"{REFERENCE} is missing; make it with python bench/detection_parity.py")
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


def _check_fingerprint(reference, detections):
    for k, detection in enumerate(detections):
        for key in ("boxes", "labels", "scores"):
            if not np.allclose(detection[key].numpy(), reference[f"fingerprint_{key}_{k}"],
                               atol=1e-3, rtol=1e-3):
                pytest.fail("the seeded detector's detections differ from those the 1.5.7 "
                            f"reference was made with ({key} of image {k}): torchvision's "
                            "initialisation or the setup changed, not our maps; regenerate with "
                            "python bench/detection_parity.py")


def _pearson(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_parity_with_grad_cam_1_5_7(detector, reference):
    """1.5.7's Faster R-CNN tutorial (EigenCAM and AblationCAM of
    model.backbone with fasterrcnn_reshape_transform) and GradCAM of the FPN
    layers, on the seeded detector: the same maps and weights (to the
    float16 precision the maps are stored in)."""
    model, images, detections = detector
    _check_fingerprint(reference, detections)
    before = model_state(model)
    targets = [FasterRCNNBoxScoreTarget(reference["target_labels"][k:k + 1],
                                        reference["target_boxes"][k:k + 1]) for k in range(2)]
    # GradCAM at the four FPN layers that compute the levels '0'..'3'
    cam = GradCAM(model, list(model.backbone.fpn.layer_blocks))
    weights = spy_weights(cam)
    gradcam = cam(images, targets)
    np.testing.assert_allclose(gradcam, reference["gradcam"].astype(np.float32), atol=5e-4)
    # 1.5.7 computes the layers' weights in the order the forward pass calls them (3, 2, 1, 0)
    for index in range(4):
        np.testing.assert_allclose(weights[index].numpy(),
                                   reference[f"gradcam_weights_{3 - index}"], rtol=1e-3,
                                   atol=1e-9)
    assert max(float(np.abs(w.numpy()).max()) for w in weights) > 1e-7  # not all zero
    # EigenCAM: 1.5.7 centres the activations; with that, the same maps
    eigen = _CentredEigenCAM(model, [model.backbone],
                             reshape_transform=fasterrcnn_reshape_transform)(images, targets)
    np.testing.assert_allclose(eigen, reference["eigencam"].astype(np.float32), atol=5e-4)
    ours = EigenCAM(model, [model.backbone],
                    reshape_transform=fasterrcnn_reshape_transform)(images, targets)
    assert all(_pearson(ours[k], reference["eigencam"][k].astype(np.float32)) > 0.85
               for k in range(2))
    # AblationCAM with 1.5.7's ablation layer (value -1000, its channel choice)
    cam = AblationCAM(model, [model.backbone], reshape_transform=fasterrcnn_reshape_transform,
                      ablation_layer=AblationLayerFasterRCNN(), ratio_channels_to_ablate=0.005,
                      progress=False)
    weights = spy_weights(cam)
    ablation = cam(images, targets)
    cam_ablation_mode = (cam.ablation_mode, cam.fallback_reason)
    np.testing.assert_allclose(ablation, reference["ablationcam"].astype(np.float32), atol=5e-4)
    np.testing.assert_allclose(weights[0].numpy(), reference["ablationcam_weights_0"], atol=1e-4)
    # 6 + 6 channels ablated per image; those whose ablation moves the score are
    # 1.5.7's (its other weights are rounding noise, < 1e-6; ours are exactly 0
    # there: the backbone's recorded output stands in, as in 1.5.7)
    effective = torch.from_numpy(np.abs(reference["ablationcam_weights_0"]) > 1e-6)
    assert torch.equal(weights[0].abs() > 1e-6, effective) and (effective.sum(dim=1) >= 5).all()
    # the heads take as many images as the input has: the ablated copies
    # cannot enter after the backbone of one image; the backbone does not run
    # on the copies (its recorded output stands in), the heads run on every copy
    assert cam_ablation_mode[0] == "layer" and cam_ablation_mode[1] is not None
    after = model_state(model)
    assert after[:2] == before[:2] and all(g is None for g in after[2]) and no_hooks(model)


# ----------------------------------------------------------------------- YOLO
@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    """An ultralytics YOLOv8n built from its YAML config (random weights, no
    download), 3 classes; its settings file goes to a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        if "YOLO_CONFIG_DIR" not in os.environ:
            patch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))
        patch.setenv("YOLO_OFFLINE", "1")
        tasks = pytest.importorskip("ultralytics.nn.tasks",
                                    reason="ultralytics is not installed (pip install ultralytics)")
        torch.manual_seed(0)
        yield tasks.DetectionModel("yolov8n.yaml", nc=3, verbose=False).eval()


def _anchor_score(category, anchor):
    """A YOLOv8 output (4 + classes) x anchors per image (the first element of
    the model's output tuple): the class score of one anchor."""
    return lambda prediction: prediction[4 + category, anchor]


@pytest.mark.slow
def test_yolo_box_score_at_a_neck_layer(yolo):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        predictions = yolo(x)[0]  # B x (4 + 3) x 84 anchors (8 x 8 + 4 x 4 + 2 x 2)
    assert predictions.shape == (2, 7, 84)
    best = [divmod(int(p[4:].argmax()), p.shape[1]) for p in predictions]  # (class, anchor)
    neck = yolo.model[15]  # the C2f whose output the head reads at stride 8
    cam = GradCAM(yolo, [neck])
    maps = cam(x, [_anchor_score(c, a) for c, a in best])
    assert maps.shape == (2, 64, 64) and (maps.reshape(2, -1).max(axis=1) > 0.99).all()
    other = cam(x, [_anchor_score((c + 1) % 3, (a + 17) % 64) for c, a in best])
    assert np.abs(maps - other).max() > 0.1
    # EigenCAM at the last layer before the head, as grad-cam's YOLOv5 tutorial
    # (class-agnostic, but a call still needs targets for an output that is not B x classes)
    eigen = EigenCAM(yolo, [yolo.model[-2]])(x, [_anchor_score(c, a) for c, a in best])
    assert eigen.shape == (2, 64, 64) and (eigen.reshape(2, -1).std(axis=1) > 0.05).all()
    assert no_hooks(yolo) and not yolo.training


def test_smooth_gradcam_plusplus_takes_a_dict_output_layer():
    """Smooth Grad-CAM++ accumulates its gradient moments level by level of
    a dict output, and its map is the one of the selected level alone."""
    torch.manual_seed(0)

    class TwoLevels(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.act = torch.nn.ReLU()
            self.b = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)

        def forward(self, x):
            first = self.act(self.a(x))
            return {"fine": first, "coarse": torch.relu(self.b(x))}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.levels = TwoLevels()
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, x):
            out = self.levels(x)
            return self.fc(torch.cat([out["fine"].mean(dim=(2, 3)),
                                      out["coarse"].mean(dim=(2, 3))], dim=1))

    from pytorch_grad_cam import SmoothGradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.reshape_transforms import select_output_key

    model = Net().eval()
    x = torch.randn(2, 3, 16, 16)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    by_key = SmoothGradCAMPlusPlus(model, [model.levels], select_output_key("fine"),
                                   num_samples=3, progress=False)(x, targets)
    # the fine level is the output of levels.act (and nothing inside the module
    # uses it): the same activations and gradients
    direct = SmoothGradCAMPlusPlus(model, [model.levels.act], num_samples=3,
                                   progress=False)(x, targets)
    assert by_key.shape == (2, 16, 16) and by_key.max() > 0
    np.testing.assert_allclose(by_key, direct, atol=1e-5)
    coarse = SmoothGradCAMPlusPlus(model, [model.levels], select_output_key("coarse"),
                                   num_samples=3, progress=False)(x, targets)
    assert not np.allclose(coarse, by_key, atol=1e-2)
