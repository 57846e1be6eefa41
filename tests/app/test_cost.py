"""pytorch_grad_cam.app.cost: the forward passes each method makes per
image, printed before a run; checked against the passes a method really
makes on a tiny model."""
import pytest
import torch
from torch import nn

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.app import cost
from pytorch_grad_cam.registry import registered_methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

CPU = torch.device("cpu")


@pytest.mark.parametrize("name, expected", [
    ("gradcam", "1 forward + 1 backward pass on cpu"),
    ("eigencam", "1 forward pass on cpu"),
    ("scorecam", "~1,281 forward passes on cpu"),           # channels + 1
    ("sscam", "~44,835 forward passes on cpu"),             # 35 samples x 1,281
    ("iscam", "~12,810 forward passes on cpu"),             # 10 steps x 1,281
    ("ablationcam", "1,280 forward passes on cpu"),         # channels
    ("smoothgradcam++", "~17 forward + 17 backward passes on cpu"),  # 16 noisy copies + 1
])
def test_cost_of_each_kind_of_method(name, expected):
    assert cost.method_cost(name, [1280]).describe(CPU) == expected


def test_aug_smooth_multiplies_by_the_copies_and_layers_add_up():
    assert cost.method_cost("scorecam", [1280], aug_smooth=True).forward == 6 * 1281
    assert cost.method_cost("gradcam", [8], aug_smooth=True) == cost.Cost(6, 6)
    assert cost.method_cost("ablationcam", [8, 4]).forward == 12
    assert cost.method_cost("scorecam", [8, 4]).describe("cuda") == \
        "~13 forward passes on cuda"


def test_every_registered_method_has_a_cost():
    for name in METHODS:
        found = cost.method_cost(name, [64])
        assert found.forward >= 1
        info = registered_methods()[list(METHODS).index(name)]
        assert (found.backward > 0) == info.uses_gradients, name
        if info.sampling:
            assert found.forward > 64, name


def test_samples_of_a_configured_cam_object():
    model = _Tiny().eval()
    cam = METHODS["sscam"](model, [model.features[-1]], n_samples=3)
    assert cost.method_cost("sscam", [6], cam=cam).forward == 3 * 7


def test_report_groups_methods_of_equal_cost_and_totals_images():
    text = cost.cost_report(["gradcam", "hirescam", "scorecam"], [1280], CPU, images=3)
    assert text.splitlines() == [
        "cost per image:",
        "  gradcam, hirescam: 1 forward + 1 backward pass on cpu",
        "  scorecam: ~1,281 forward passes on cpu",
        "  in all: ~3,849 forward passes for 3 images on cpu"]
    assert cost.cost_report(["gradcam"], [8], CPU, aug_smooth=True).splitlines()[0] == \
        "cost per image (x6 for --aug-smooth):"


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("name, options", [("scorecam", {}), ("sscam", {"n_samples": 3}),
                                           ("iscam", {"n_samples": 2}), ("gradcam", {})])
def test_the_estimate_matches_the_images_the_model_scores(name, options):
    """Count the images the classifier scores in one call. The estimate
    of a perturbation method leaves out the recording pass and counts, per
    sample, one pass for the channels that are constant over the image (a
    random input has none), so here it is exactly the count - 1 + the
    samples; a gradient method's one pass is the recording pass."""
    torch.manual_seed(0)
    model = _Tiny().eval()
    scored = []
    model.fc.register_forward_hook(lambda module, args, output: scored.append(output.shape[0]))
    cam = METHODS[name](model, [model.features[-1]], batch_size=4, progress=False, **options)
    cam(torch.randn(1, 3, 8, 8), [ClassifierOutputTarget(1)])
    estimate = cost.method_cost(name, [6], cam=cam).forward
    samples = options.get("n_samples", 1)  # gradcam: its one pass is the recording pass
    assert sum(scored) == estimate + 1 - samples, (scored, estimate)


def test_several_classes_add_backward_passes_only():
    """K classes in one call: the same forward passes, scored for every
    class, and one backward pass per class where the method takes gradients."""
    assert cost.method_cost("gradcam", [8], classes=3) == cost.Cost(1, 3)
    assert cost.method_cost("gradcam", [8], aug_smooth=True, classes=3) == cost.Cost(6, 18)
    assert cost.method_cost("scorecam", [8], classes=3) == cost.method_cost("scorecam", [8])
    assert cost.method_cost("eigencam", [8], classes=3) == cost.Cost(1, 0)
    assert cost.cost_report(["gradcam", "scorecam"], [8], CPU, classes=3).splitlines() == [
        "cost per image (its 3 classes in one call per method):",
        "  gradcam: 1 forward + 3 backward passes on cpu",
        "  scorecam: ~9 forward passes on cpu"]
    assert cost.cost_report(["gradcam"], [8], CPU, aug_smooth=True, classes=2).splitlines()[0] \
        == "cost per image (x6 for --aug-smooth; its 2 classes in one call per method):"


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "smoothgradcam++", "scorecam"])
def test_the_backward_estimate_of_several_classes_is_the_gradients_taken(name, monkeypatch):
    """Count the gradients a call takes (each torch.autograd.grad call is one
    backward pass): 3 classes per image take 3 times those of one, as the
    estimate says; where the estimate is exact, it is the count."""
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(1, 3, 8, 8)
    grads = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        grads.append(1)
        return real(*args, **kwargs)

    options = {"num_samples": 2} if name == "smoothgradcam++" else {}
    cam = METHODS[name](model, [model.features[-1]], progress=False, **options)
    monkeypatch.setattr(torch.autograd, "grad", counting)
    taken = {}
    for classes in (1, 3):
        grads.clear()
        cam(x, [[ClassifierOutputTarget(c) for c in range(classes)]])
        taken[classes] = len(grads)
    one, three = (cost.method_cost(name, [6], cam=cam, classes=k) for k in (1, 3))
    assert taken[3] == 3 * taken[1] and three.backward == 3 * one.backward, (taken, one, three)
    if not one.approximate:
        assert taken[1] == one.backward, (taken, one)
