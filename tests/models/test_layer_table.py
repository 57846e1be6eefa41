"""The family table: for every family docs/target_layers.md's table lists, the layer
found without target_layers is the documented one, and GradCAM with it
gives a non-empty map for a class target (random weights, no downloads);
for torchvision's segmentation models a mask target, for its detection
models a box target."""
import warnings

import numpy as np
import pytest
import torch
import torchvision

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.layer_finder import locate_layers
from pytorch_grad_cam.layers import resolve_layer
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    SemanticSegmentationTarget,
)
from pytorch_grad_cam.utils.reshape_transforms import CombineLevels, fasterrcnn_reshape_transform

pytestmark = pytest.mark.slow


def tv(name, **kwargs):
    return lambda: getattr(torchvision.models, name)(weights=None, **kwargs)


def tv_vit():
    model = torchvision.models.vit_b_16(weights=None)
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero
    return model


def timm_model(name, **kwargs):
    def build():
        timm = pytest.importorskip("timm", reason="the timm extra is not installed")
        return timm.create_model(name, pretrained=False, **kwargs)
    return build


def hf(config_name, model_name, **config):
    def build():
        transformers = pytest.importorskip("transformers",
                                           reason="the hf extra (transformers) is not installed")
        small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 64, "image_size": 64, "patch_size": 16, "num_labels": 5}
        small.update(config)
        small = _clean(small)
        return getattr(transformers, model_name)(getattr(transformers, config_name)(**small))
    return build


# (id, builder, documented layer path, input size)
CASES = [
    ("tv-resnet18", tv("resnet18"), "layer4[-1]", 64),
    ("tv-resnext50_32x4d", tv("resnext50_32x4d"), "layer4[-1]", 64),
    ("tv-wide_resnet50_2", tv("wide_resnet50_2"), "layer4[-1]", 64),
    ("tv-vgg11", tv("vgg11"), "features[-1]", 64),
    ("tv-densenet121", tv("densenet121"), "features[-1]", 64),
    ("tv-mobilenet_v2", tv("mobilenet_v2"), "features[-1]", 64),
    ("tv-mobilenet_v3_small", tv("mobilenet_v3_small"), "features[-1]", 64),
    ("tv-efficientnet_b0", tv("efficientnet_b0"), "features[-1]", 64),
    ("tv-efficientnet_v2_s", tv("efficientnet_v2_s"), "features[-1]", 64),
    ("tv-convnext_tiny", tv("convnext_tiny"), "features[-1]", 64),
    ("tv-regnet_y_400mf", tv("regnet_y_400mf"), "trunk_output", 64),
    ("tv-mnasnet0_5", tv("mnasnet0_5"), "layers[-1]", 64),
    ("tv-shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5"), "conv5", 64),
    ("tv-squeezenet1_0", tv("squeezenet1_0"), "features[-1]", 64),
    ("tv-alexnet", tv("alexnet"), "features[-1]", 128),
    ("tv-googlenet", tv("googlenet", aux_logits=False, init_weights=False), "inception5b", 128),
    ("tv-inception_v3", tv("inception_v3", aux_logits=False, init_weights=False), "Mixed_7c", 160),
    ("tv-maxvit_t", tv("maxvit_t"), "blocks[-1]", 224),
    ("tv-vit_b_16", tv_vit, "encoder.layers[-1].ln_1", 224),
    ("tv-swin_t", tv("swin_t"), "features[-1][-1].norm1", 224),
    ("tv-swin_v2_t", tv("swin_v2_t"), "features[-1][-1].norm1", 256),
    ("timm-resnet18", timm_model("resnet18"), "layer4[-1]", 64),
    ("timm-convnext_atto", timm_model("convnext_atto"), "stages[-1]", 64),
    ("timm-efficientnet_b0", timm_model("efficientnet_b0"), "bn2", 64),
    ("timm-mobilenetv3_small_050", timm_model("mobilenetv3_small_050"), "blocks[-1]", 64),
    ("timm-regnetx_002", timm_model("regnetx_002"), "s4", 64),
    ("timm-vit_tiny_patch16_224", timm_model("vit_tiny_patch16_224"), "blocks[-1].norm1", 224),
    ("timm-vit_tiny_patch16_384", timm_model("vit_tiny_patch16_384"), "blocks[-1].norm1", 384),
    ("timm-deit_tiny_distilled", timm_model("deit_tiny_distilled_patch16_224"),
     "blocks[-1].norm1", 224),
    ("timm-vit_small_reg4_dinov2", timm_model("vit_small_patch14_reg4_dinov2", img_size=126),
     "blocks[-1].norm1", 126),
    ("timm-swin_tiny", timm_model("swin_tiny_patch4_window7_224"),
     "layers[-1].blocks[-1].norm1", 224),
    ("timm-beit_base", timm_model("beit_base_patch16_224"), "blocks[-1].norm1", 224),
    ("timm-eva02_tiny", timm_model("eva02_tiny_patch14_224"), "blocks[-1].norm1", 224),
    # transformers 5 spells these blocks vit.layers[i], 4.x vit.encoder.layer[i]
    ("hf-vit", hf("ViTConfig", "ViTForImageClassification"),
     ("vit.layers[-1].layernorm_before", "vit.encoder.layer[-1].layernorm_before"), 64),
    ("hf-deit", hf("DeiTConfig", "DeiTForImageClassificationWithTeacher"),
     ("deit.layers[-1].layernorm_before", "deit.encoder.layer[-1].layernorm_before"), 64),
    ("hf-beit", hf("BeitConfig", "BeitForImageClassification"),
     ("beit.layers[-1].layernorm_before", "beit.encoder.layer[-1].layernorm_before"), 64),
    ("hf-dinov2", hf("Dinov2Config", "Dinov2ForImageClassification"),
     "dinov2.encoder.layer[-1].norm1", 64),
    ("hf-swin", hf("SwinConfig", "SwinForImageClassification", embed_dim=16, depths=[1, 1],
                   num_heads=[1, 2], window_size=4, patch_size=4, hidden_size=None,
                   num_hidden_layers=None, num_attention_heads=None, intermediate_size=None),
     "swin.encoder.layers[-1].blocks[-1].layernorm_before", 64),
    ("hf-convnext", hf("ConvNextConfig", "ConvNextForImageClassification",
                       hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, hidden_size=None,
                       num_hidden_layers=None, num_attention_heads=None, intermediate_size=None,
                       patch_size=None),
     "convnext.encoder.stages[-1]", 64),
    ("hf-resnet", hf("ResNetConfig", "ResNetForImageClassification", hidden_sizes=[8, 16],
                     depths=[1, 1], embedding_size=8, hidden_size=None, num_hidden_layers=None,
                     num_attention_heads=None, intermediate_size=None, patch_size=None),
     "resnet.encoder.stages[-1]", 64),
]


def _paths_that_resolve(model, paths):
    found = []
    for path in paths:
        try:
            resolve_layer(model, path)
        except ValueError:
            continue
        found.append(path)
    return found


def _clean(config):
    return {k: v for k, v in config.items() if v is not None}


@pytest.mark.parametrize("build,path,size", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_found_layer_is_the_documented_one_and_gives_a_map(build, path, size):
    torch.manual_seed(0)
    model = build().eval()
    found = locate_layers(model)
    assert found.source == "table"
    paths = (path,) if isinstance(path, str) else path
    expected = next(resolve_layer(model, p) for p in paths if p in _paths_that_resolve(model, paths))
    assert found.layers == [expected], (found.names, path)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(model)
    assert cam.target_layers == found.layers
    with torch.no_grad():
        logits = cam.select_output(model(x))
    # class targets: with random weights a class's map may be empty (no
    # positive evidence anywhere), so the top five classes are tried in turn
    peaks = []
    for rank in range(5):
        classes = logits.argsort(dim=1, descending=True)[:, rank]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            maps = cam(x, [ClassifierOutputTarget(int(c)) for c in classes])
        assert maps.shape == (2, size, size) and np.isfinite(maps).all()
        peaks.append(maps.reshape(2, -1).max(axis=1))
        if (peaks[-1] > 0.99).any():
            break
    assert (peaks[-1] > 0.99).any(), f"every map of the top five classes is empty: {peaks}"


def test_the_table_covers_thirty_architectures():
    assert len(CASES) >= 30


# ------------------------------------------- torchvision segmentation and detection
def seg(name):
    return lambda: getattr(torchvision.models.segmentation, name)(weights=None,
                                                                  weights_backbone=None)


# small inputs and few boxes, so that a forward pass takes a fraction of a
# second; score threshold 0, so that random weights still give boxes
_SMALL = {"min_size": 96, "max_size": 96}


def det(name, **kwargs):
    return lambda: getattr(torchvision.models.detection, name)(weights=None,
                                                               weights_backbone=None, **kwargs)


def rcnn(name, **kwargs):
    build = det(name, box_score_thresh=0.0, box_detections_per_img=5,
                rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20, **_SMALL, **kwargs)

    def build_with_anchor_boxes():
        # random box regressions stretch most boxes over the image border,
        # where clipping leaves them zero wide (no IoU, no target); without
        # them the boxes are the anchors, and the scores still depend on
        # the features
        model = build()
        with torch.no_grad():
            for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
                layer.weight.zero_()
                layer.bias.zero_()
        return model
    return build_with_anchor_boxes


# (id, builder, documented layer path, reshape transform (None, "fasterrcnn" or
# "levels"), input size or None). None: only the table row is checked here,
# the map of the family is checked with a lighter sibling (the ResNet-101
# models are their ResNet-50 siblings with more blocks; SSD300's VGG-16 at
# its fixed 300 x 300 costs seconds a pass): their maps were checked by hand
# when the rows were added.
def _few(**kwargs):
    return dict(score_thresh=0.0, detections_per_img=5, topk_candidates=20, **kwargs)


DENSE_CASES = [
    ("tv-fcn_resnet50", seg("fcn_resnet50"), "backbone.layer4", None, 64),
    ("tv-fcn_resnet101", seg("fcn_resnet101"), "backbone.layer4", None, None),
    ("tv-deeplabv3_resnet50", seg("deeplabv3_resnet50"), "backbone.layer4", None, 64),
    ("tv-deeplabv3_resnet101", seg("deeplabv3_resnet101"), "backbone.layer4", None, None),
    ("tv-deeplabv3_mobilenet_v3_large", seg("deeplabv3_mobilenet_v3_large"), "backbone.16",
     None, 64),
    ("tv-lraspp_mobilenet_v3_large", seg("lraspp_mobilenet_v3_large"), "backbone.16", None, 64),
    ("tv-fasterrcnn_resnet50_fpn", rcnn("fasterrcnn_resnet50_fpn"), "backbone", "fasterrcnn",
     96),
    ("tv-fasterrcnn_resnet50_fpn_v2", rcnn("fasterrcnn_resnet50_fpn_v2"), "backbone",
     "fasterrcnn", 96),
    ("tv-fasterrcnn_mobilenet_v3_large_fpn", rcnn("fasterrcnn_mobilenet_v3_large_fpn"),
     "backbone", "fasterrcnn", 96),
    ("tv-fasterrcnn_mobilenet_v3_large_320_fpn", rcnn("fasterrcnn_mobilenet_v3_large_320_fpn"),
     "backbone", "fasterrcnn", 96),
    ("tv-maskrcnn_resnet50_fpn", rcnn("maskrcnn_resnet50_fpn"), "backbone", "fasterrcnn", 96),
    ("tv-keypointrcnn_resnet50_fpn", rcnn("keypointrcnn_resnet50_fpn"), "backbone",
     "fasterrcnn", 96),
    ("tv-retinanet_resnet50_fpn", det("retinanet_resnet50_fpn", **_few(**_SMALL)), "backbone",
     "levels", 64),
    ("tv-fcos_resnet50_fpn", det("fcos_resnet50_fpn", **_few(**_SMALL)), "backbone", "levels",
     64),
    # the SSDs resize every image to their fixed size (300 x 300, 320 x 320)
    ("tv-ssd300_vgg16", det("ssd300_vgg16", **_few()), "backbone", "levels", None),
    ("tv-ssdlite320_mobilenet_v3_large", det("ssdlite320_mobilenet_v3_large", **_few()),
     "backbone", "levels", 64),
]


def _targets_to_try(model, x, is_detector):
    """Targets for the one image of x, the likeliest to give a map first:
    the mask of the class that covers most of the image, or the model's own
    box whose shorter side is the longest (random weights give many boxes
    of zero width, whose IoU with themselves is undefined: no target)."""
    with torch.no_grad():
        output = model(x)
    if not is_detector:
        scores = output["out"][0]
        classes = scores.argmax(dim=0)
        counts = torch.bincount(classes.flatten(), minlength=scores.shape[0])
        return [SemanticSegmentationTarget(int(c), (classes == c).float().numpy())
                for c in counts.argsort(descending=True)[:3]]
    detections = output[0]
    boxes = detections["boxes"]
    assert len(boxes) > 0, "the detector gives no box at score threshold 0"
    sides = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return [FasterRCNNBoxScoreTarget(detections["labels"][i:i + 1], boxes[i:i + 1])
            for i in sides.argsort(descending=True)[:3].tolist()]


@pytest.mark.parametrize("build,path,layout,size", [c[1:] for c in DENSE_CASES],
                         ids=[c[0] for c in DENSE_CASES])
def test_segmentation_and_detection_rows(build, path, layout, size):
    torch.manual_seed(0)
    model = build().eval()
    found = locate_layers(model)
    assert found.source == "table" and found.layers == [resolve_layer(model, path)]
    if layout is None:
        assert found.reshape_transform is None
    elif layout == "fasterrcnn":
        assert found.reshape_transform is fasterrcnn_reshape_transform
    else:
        assert isinstance(found.reshape_transform, CombineLevels)
    if size is None:
        return
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(model)
    assert cam.target_layers == found.layers
    # random weights: a target's map may be empty, so up to three are tried
    peaks = []
    for target in _targets_to_try(model, x, layout is not None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            maps = cam(x, [target])
        assert maps.shape == (1, size, size) and np.isfinite(maps).all()
        peaks.append(float(maps.max()))
        if peaks[-1] > 0.99:
            break
    assert peaks[-1] > 0.99, f"every target's map is empty: {peaks}"
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
