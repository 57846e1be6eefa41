"""The attention methods in the library's other entry points:
evaluate_cam_methods and the dataset runner pick them for Vision
Transformers only, and give them every block instead of the target layers."""
import pytest
import torch
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.datasets import explain_dataset
from pytorch_grad_cam.metrics.evaluate import evaluate_cam_methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

ATTENTION = REGISTRY_PARAMS["attention_method"]


def _vit():
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=4).eval()
    torch.nn.init.normal_(vit.heads.head.weight)  # torchvision starts it at zero
    return vit


def _cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 4)).eval()


def test_evaluate_scores_the_attention_methods_of_a_vit_with_every_block():
    vit = _vit()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    rows = evaluate_cam_methods(vit, [vit.encoder.layers[-1].ln_1], x, targets,
                                methods=[*ATTENTION, "gradcam"], metrics=["DropInConfidence"],
                                reshape_transform=vit_reshape_transform, per_image=True)
    assert list(rows) == [*ATTENTION, "gradcam"]
    # each row is the method's own map: the metric of a plain call's map
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    for name in ATTENTION:
        maps = METHODS[name](vit)(x, targets)
        expected = DropInConfidence(relative=True)(x, maps, [ClassifierOutputSoftmaxTarget(t.category)
                                                for t in targets], vit)
        assert rows[name]["DropInConfidence"] == pytest.approx(expected, abs=1e-5)


def test_evaluate_leaves_the_attention_methods_out_for_a_cnn_by_default():
    cnn = _cnn()
    rows = evaluate_cam_methods(cnn, [cnn[1]], torch.randn(1, 3, 8, 8),
                                [ClassifierOutputTarget(0)],
                                methods=None, metrics=["DropInConfidence"],
                                method_kwargs={"sscam": {"n_samples": 1},
                                               "iscam": {"n_samples": 1},
                                               "smoothgradcam++": {"num_samples": 1}})
    assert list(rows) == [name for name in METHODS if name not in ATTENTION]
    with pytest.raises(ValueError, match="Vision Transformer"):
        evaluate_cam_methods(cnn, [cnn[1]], torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(0)],
                             methods=["legrad"], metrics=["DropInConfidence"])


def _folder(tmp_path):
    import cv2
    import numpy as np
    folder = tmp_path / "images"
    folder.mkdir()
    generator = np.random.default_rng(0)
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"),
                    generator.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    return folder


def test_the_dataset_runner_explains_a_vit_with_the_attention_methods(tmp_path):
    from pytorch_grad_cam.datasets import Preprocess, load_results

    vit = _vit()
    explain_dataset(_folder(tmp_path), vit, [*ATTENTION, "gradcam"], out=tmp_path / "out",
                    target_layers=[vit.encoder.layers[-1].ln_1],
                    reshape_transform=vit_reshape_transform,
                    preprocess=Preprocess(size=(32, 32)), progress=False)
    table = load_results(tmp_path / "out")
    assert sorted(set(table["method"])) == sorted([*ATTENTION, "gradcam"])
    assert set(table["status"]) == {"ok"} and len(table) == 3 * (len(ATTENTION) + 1)  # 3 images


def test_the_dataset_runner_refuses_attention_methods_for_a_cnn_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"methods \['legrad'\]: .*Vision Transformer"):
        explain_dataset(_folder(tmp_path), _cnn(), ["legrad"], out=tmp_path / "out",
                        progress=False)
    assert not (tmp_path / "out").exists()
