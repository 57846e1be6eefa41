"""pytorch_grad_cam.app.targets: the classes a front-end explains per image
and their maps from one call of a CAM object."""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.app.targets import class_maps, class_targets, explained_classes
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

SCORES = torch.tensor([[0.1, 3.0, 2.0, 3.0, -1.0],
                       [5.0, 0.0, 1.0, 2.0, 4.0]])


def test_explained_classes():
    assert explained_classes(SCORES) == [[1], [0]]  # the best; a tie goes to the lower index
    assert explained_classes(SCORES, top_k=3) == [[1, 3, 2], [0, 4, 3]]
    assert explained_classes(SCORES.numpy(), top_k=5)[1] == [0, 4, 3, 2, 1]
    assert explained_classes(SCORES, classes=[4, 0]) == [[4, 0], [4, 0]]


@pytest.mark.parametrize("options, error, message", [
    ({"classes": [1], "top_k": 2}, ValueError,
     "give classes or top_k, not both (got classes=[1], top_k=2)"),
    ({"classes": []}, ValueError, "classes is empty; give at least one class index, or None "
                                  "for each image's best class"),
    ({"top_k": 6}, ValueError, "k is 6 but the model has only 5 classes"),
    ({"top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
    ({"top_k": 2.0}, TypeError, "top_k must be a positive int or None, got 2.0 (float)"),
])
def test_explained_classes_errors(options, error, message):
    with pytest.raises(error) as caught:
        explained_classes(SCORES, **options)
    assert str(caught.value) == message


def test_class_targets():
    table = class_targets([[3, 1], [0, 2]])
    assert [[(type(t), t.category) for t in row] for row in table] == [
        [(ClassifierOutputTarget, 3), (ClassifierOutputTarget, 1)],
        [(ClassifierOutputTarget, 0), (ClassifierOutputTarget, 2)]]


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


class _Recording:
    """A CAM object that records the targets of every call."""

    def __init__(self, cam):
        self.cam, self.calls = cam, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs["targets"])
        return self.cam(**kwargs)


@pytest.mark.parametrize("method", [GradCAM, ScoreCAM])
def test_class_maps_is_one_call_and_each_map_is_the_one_class_maps(method):
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 8, 8)
    table = [[3, 1, 4], [0, 3, 2]]
    with method(model=model, target_layers=[model.features[-1]], progress=False) as cam:
        recording = _Recording(cam)
        maps = class_maps(recording, x, table)
        assert maps.shape == (2, 3, 8, 8) and maps.dtype == np.float32
        assert len(recording.calls) == 1
        assert [[t.category for t in row] for row in recording.calls[0]] == table
        for k in range(3):
            single = cam(input_tensor=x, targets=[ClassifierOutputTarget(row[k]) for row in table])
            np.testing.assert_array_equal(maps[:, k], single)


def test_class_maps_of_one_class_is_the_one_target_call_with_its_axis():
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 8, 8)
    with GradCAM(model=model, target_layers=[model.features[-1]]) as cam:
        recording = _Recording(cam)
        maps = class_maps(recording, x, [[2], [4]], aug_smooth=False, eigen_smooth=True)
        single = cam(input_tensor=x, targets=[ClassifierOutputTarget(2),
                                              ClassifierOutputTarget(4)], eigen_smooth=True)
    assert maps.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(maps[:, 0], single)
    # a flat list of one target per image: the call a one-class run has always made
    assert [type(t) for t in recording.calls[0]] == [ClassifierOutputTarget] * 2


@pytest.mark.parametrize("table", [[[1, 2], [3]], [[], []], []])
def test_class_maps_refuses_a_ragged_or_empty_table(table):
    with pytest.raises(ValueError) as caught:
        class_maps(lambda **kwargs: pytest.fail("called"), torch.zeros(len(table), 3, 8, 8),
                   table)
    assert str(caught.value) == (
        "table must give every image the same number of classes (at least one), got "
        f"{[len(row) for row in table]} for its {len(table)} images")
