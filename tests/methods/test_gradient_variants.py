"""HiRes-CAM, Grad-CAM element-wise and Layer-CAM against maps computed with numpy on a
tiny model whose activations and gradients are known in closed form.
"""
import numpy as np
import pytest
from method_cases import Head, normalise, run

from pytorch_grad_cam import GradCAMElementWise, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


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
