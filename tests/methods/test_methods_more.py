"""What the methods beyond Grad-CAM/Grad-CAM++/XGrad-CAM/Score-CAM/Ablation-CAM share:
their argument errors, the model and hooks restored on their extra autograd paths, every
one on resnet18, vgg11 and vit_b_16 (batches equal single images) and on the command line.
"""
import warnings

import numpy as np
import pytest
import torch
import torchvision
from method_cases import C, K, PooledHead
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
    HiResCAM,
    LayerCAM,
    RandomCAM,
    RefineCAM,
    SegEigenCAM,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

NEW_METHODS = {
    "hirescam": HiResCAM, "gradcamelementwise": GradCAMElementWise, "layercam": LayerCAM,
    "eigencam": EigenCAM, "eigengradcam": EigenGradCAM, "fullgrad": FullGrad,
    "kpcacam": KPCA_CAM, "fem": FEM, "shapleycam": ShapleyCAM, "finercam": FinerCAM,
    "segeigencam": SegEigenCAM, "refinecam": RefineCAM, "randomcam": RandomCAM, "cam": CAM,
    "smoothgradcam++": SmoothGradCAMPlusPlus,
}


def count_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


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
