"""RefineCAM: the product of the layers' maps.
"""
import numpy as np
import torch
from method_cases import C, H, K, W, normalise, run, weighted
from torch import nn

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, RefineCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


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
