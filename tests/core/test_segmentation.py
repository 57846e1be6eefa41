"""Segmentation models, whose outputs are dicts: torchvision's return
``{"out": ..., "aux": ...}``; the score tensor is the ``"out"`` entry
without an ``output_selector`` (``scoring.select_output``)."""
import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.segmentation import deeplabv3_resnet50

from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.scoring import select_output
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget


@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    return deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21,
                              aux_loss=True).eval()


def test_dict_outputs_pick_logits_then_out():
    out, aux = torch.zeros(1, 2), torch.ones(1, 2)
    assert select_output({"out": out, "aux": aux}) is out
    assert select_output({"logits": aux, "out": out}) is aux
    with pytest.raises(TypeError, match=r"dict with keys \['boxes', 'masks'\].*output_selector"):
        select_output({"boxes": out, "masks": aux})


def test_gradcam_on_torchvision_deeplabv3_without_output_selector(deeplab):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = deeplab(x)
    assert set(out) == {"out", "aux"}  # the layout this test is about
    mask = np.zeros((64, 64), dtype=np.float32)
    mask[8:40, 16:48] = 1
    targets = [SemanticSegmentationTarget(8, mask), SemanticSegmentationTarget(8, mask)]
    layer = deeplab.backbone.layer4
    maps = GradCAM(deeplab, [layer])(x, targets)
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    assert np.isclose(maps.reshape(2, -1).max(axis=1), 1, atol=1e-5).all()
    # the same as selecting "out" explicitly
    explicit = GradCAM(deeplab, [layer], output_selector=lambda o: o["out"])(x, targets)
    np.testing.assert_allclose(maps, explicit, atol=1e-6, rtol=0)
    # and not what the auxiliary head would give
    aux = HiResCAM(deeplab, [layer], output_selector=lambda o: o["aux"])(x, targets)
    ours = HiResCAM(deeplab, [layer])(x, targets)
    assert np.abs(aux - ours).max() > 0.05
    # another region of the image, another map
    other = np.zeros_like(mask)
    other[40:64, 0:20] = 1
    moved = GradCAM(deeplab, [layer])(x, [SemanticSegmentationTarget(8, other)] * 2)
    assert np.abs(moved - maps).max() > 0.05


def test_a_dict_without_a_known_key_names_its_keys():
    class Boxes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            return {"heatmap": self.conv(x)}

    model = Boxes()
    with pytest.raises(TypeError, match=r"keys \['heatmap'\]"):
        GradCAM(model, [model.conv])(torch.randn(1, 3, 8, 8),
                                     [SemanticSegmentationTarget(0, np.ones((8, 8)))])
