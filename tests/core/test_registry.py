"""The registry of methods: names, traits, and that a method added with one
decorator is picked up by everything that lists methods."""
import inspect

import numpy as np
import pytest
import torch
from torch import nn

import pytorch_grad_cam
from pytorch_grad_cam import METHODS, BaseCAM, GradCAM, registry
from pytorch_grad_cam.metrics.evaluate import evaluate_cam_methods
from pytorch_grad_cam.registry import get_method, method_info, register_method, registered_methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


def test_every_public_method_class_is_registered_once():
    public = {obj for name, obj in vars(pytorch_grad_cam).items()
              if inspect.isclass(obj) and issubclass(obj, BaseCAM) and obj is not BaseCAM}
    registered = {info.cls for info in registered_methods()}
    assert public == registered
    assert len(METHODS) == len(registered) == 28
    assert list(METHODS)[:6] == ["gradcam", "hirescam", "gradcam++", "xgradcam",
                                 "ablationcam", "scorecam"]
    assert list(METHODS)[-6:] == ["legrad", "attentionrollout", "gradattention", "gradeclip",
                                  "attnlrp", "rise"]


def test_traits_match_what_the_methods_do():
    assert {i.name for i in registered_methods(uses_gradients=False)} == {
        n for n, cls in METHODS.items() if not cls.uses_gradients}
    assert {i.name for i in registered_methods(perturbation=True)} == {
        "ablationcam", "scorecam", "sscam", "iscam", "rise"}
    assert {i.name for i in registered_methods(sampling=True)} == {"sscam", "iscam"}
    assert {i.name for i in registered_methods(class_specific=False)} == {
        "eigencam", "kpcacam", "fem", "randomcam", "attentionrollout"}
    assert {i.name for i in registered_methods(attention=True)} == {
        "legrad", "attentionrollout", "gradattention", "gradeclip", "attnlrp"}
    assert {i.name for i in registered_methods(attention=True, uses_gradients=False)} == {
        "attentionrollout"}
    assert len(registered_methods(attention=False)) == 23
    assert get_method("legrad").attention and not get_method("gradcam").attention
    assert {i.name for i in registered_methods(extra_passes=True)} == {
        "ablationcam", "scorecam", "sscam", "iscam", "smoothgradcam++", "rise"}
    assert get_method("cam").needs_linear_head and not get_method("gradcam").needs_linear_head
    assert not get_method("fullgrad").uses_target_layers
    assert [i.name for i in registered_methods() if i.black_box] == ["rise"]
    assert not get_method("rise").uses_target_layers and not get_method("rise").uses_gradients
    assert get_method("randomcam").randomised
    assert get_method("GradCAM").cls is GradCAM  # case-insensitive
    assert get_method("gradcam").summary.startswith("Grad-CAM")


def test_method_info_of_a_class_and_of_a_combined_class():
    from pytorch_grad_cam import FinerCAM, HiResCAM

    assert method_info(GradCAM).name == "gradcam"
    model = _Net()
    combined = type(FinerCAM(model, [model.relu], base_method=HiResCAM))
    assert combined is not FinerCAM and issubclass(combined, HiResCAM)
    assert method_info(combined).name == "finercam"  # the nearest class, not the base method
    with pytest.raises(KeyError, match="not a registered"):
        method_info(int)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean gradcam"):
        get_method("gradcm")
    with pytest.raises(KeyError, match="Registered methods: gradcam, hirescam"):
        get_method("nothing-like-it")
    with pytest.raises(TypeError, match="must be a string"):
        get_method(3)


def test_a_name_cannot_be_taken_twice(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="taken by GradCAM"):
        @register_method("gradcam")
        class Other(BaseCAM):
            pass
    with pytest.raises(ValueError, match="lower-case"):
        register_method("Bad Name")


def test_methods_is_a_read_only_live_view():
    with pytest.raises(TypeError):
        METHODS["x"] = GradCAM  # type: ignore[index]
    assert "gradcam" in METHODS and "nope" not in METHODS
    assert "GradCAM" in repr(METHODS)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_a_new_method_is_one_class_and_one_decorator(monkeypatch):
    """Registered in a test (the registry is restored afterwards), a new
    method appears in METHODS and is accepted by name by evaluate_cam_methods."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_method("meangradcam")
    class MeanGradCAM(BaseCAM):
        """Mean-Grad-CAM: channels weighted by their mean gradient, halved."""

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            return grads.mean(dim=(2, 3)) / 2

    assert METHODS["meangradcam"] is MeanGradCAM
    assert list(METHODS)[-1] == "meangradcam"
    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.randn(2, 3, 8, 8)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    ours = MeanGradCAM(model, [model.relu])(x, targets)
    np.testing.assert_allclose(ours, GradCAM(model, [model.relu])(x, targets), atol=1e-6)
    table = evaluate_cam_methods(model, [model.relu], x, methods=["meangradcam"],
                                 metrics=["DropInConfidence"], targets=targets)
    assert list(table) == ["meangradcam"] and np.isfinite(table["meangradcam"]["DropInConfidence"])


def test_a_method_with_weights_per_position_is_one_override_of_weigh(monkeypatch):
    """``weigh(activations, grads)`` is called with the gradients; its
    result is summed over the channels like every method's."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    from pytorch_grad_cam import HiResCAM, LayerCAM

    @register_method("poslayercam")
    class PositiveLayerCAM(BaseCAM):
        """LayerCAM written as a new method."""

        def weigh(self, activations, grads):
            return grads.clamp(min=0) * activations

    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.randn(2, 3, 8, 8)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    expected = LayerCAM(model, [model.relu])(x, targets)
    np.testing.assert_array_equal(PositiveLayerCAM(model, [model.relu])(x, targets), expected)
    assert not np.allclose(expected, HiResCAM(model, [model.relu])(x, targets), atol=1e-3)
    with pytest.raises(ValueError, match=r"^uses_gradients=False: PositiveLayerCAM weighs the "
                                         r"activations with their gradients; leave "
                                         r"uses_gradients out$"):
        PositiveLayerCAM(model, [model.relu], uses_gradients=False)(x, targets)


def test_an_override_of_get_weighted_activations_still_wins():
    """Code written for earlier releases overrides get_weighted_activations
    (with its five arguments); its override is used, and super() gives the
    method's own weighting."""
    from pytorch_grad_cam import HiResCAM

    class PlusActivations(HiResCAM):
        def get_weighted_activations(self, input_tensor, target_layer, targets, activations,
                                     grads):
            return super().get_weighted_activations(input_tensor, target_layer, targets,
                                                    activations, grads) + activations

    torch.manual_seed(0)
    model = _Net().eval()
    x = torch.randn(2, 3, 8, 8)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    maps = PlusActivations(model, [model.relu])(x, targets)
    # the same map by hand: ReLU(sum_k g A + A), min-max normalised
    activations = model.relu(model.conv(x))
    scores = model.fc(activations.mean(dim=(2, 3)))[[0, 1], [0, 2]]
    grads, = torch.autograd.grad(scores.sum(), activations)
    by_hand = torch.relu((grads * activations + activations).sum(dim=1)).detach()
    low = by_hand.flatten(1).min(dim=1).values[:, None, None]
    high = by_hand.flatten(1).max(dim=1).values[:, None, None]
    np.testing.assert_allclose(maps, ((by_hand - low) / (high - low)).numpy(), atol=1e-5)
    assert not np.allclose(maps, HiResCAM(model, [model.relu])(x, targets), atol=1e-3)
