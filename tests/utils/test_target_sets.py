"""utils.target_sets: the target lists of the top-k classes, a
multi-label model's labels and a detector's boxes, and the grouping of
ragged lists into calls."""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import (
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
)
from pytorch_grad_cam.utils.target_sets import (
    box_targets,
    groups_by_count,
    multilabel_classes,
    multilabel_targets,
    top_k_classes,
    top_k_targets,
)

SCORES = torch.tensor([[0.1, 3.0, -1.0, 3.0, 2.0],
                       [5.0, -2.0, 0.0, 1.0, 4.0]])


def test_top_k_classes_best_first_ties_by_index():
    assert top_k_classes(SCORES, 3) == [[1, 3, 4], [0, 4, 3]]
    assert top_k_classes(SCORES.numpy(), 1) == [[1], [0]]
    assert top_k_classes({"logits": SCORES}, 2) == [[1, 3], [0, 4]]


def test_top_k_targets_build_the_table_a_call_takes():
    targets = top_k_targets(SCORES, 2)
    assert [[type(t) for t in row] for row in targets] == [[ClassifierOutputTarget] * 2] * 2
    assert [[t.category for t in row] for row in targets] == [[1, 3], [0, 4]]
    softmax = top_k_targets(SCORES, 1, target=ClassifierOutputSoftmaxTarget)
    assert type(softmax[0][0]) is ClassifierOutputSoftmaxTarget and softmax[1][0].category == 0


@pytest.mark.parametrize("k, error, message", [
    (6, ValueError, "k is 6 but the model has only 5 classes"),
    (0, ValueError, "k must be >= 1, got 0"),
    (2.0, TypeError, r"k must be a positive int, got 2.0 \(float\)"),
])
def test_top_k_bad_k(k, error, message):
    with pytest.raises(error, match=message):
        top_k_classes(SCORES, k)


def test_top_k_bad_scores():
    with pytest.raises(ValueError, match=r"scores must be a tensor B x classes .*got shape \(5,\)"):
        top_k_classes(SCORES[0], 2)
    with pytest.raises(TypeError, match="scores must be the model's scores"):
        top_k_classes("logits", 2)


def test_multilabel_classes_by_probability():
    # sigmoid(5) = 0.993, sigmoid(4) = 0.982, sigmoid(3) = 0.953, sigmoid(2) = 0.881,
    # sigmoid(1) = 0.731, sigmoid(0.1) = 0.525, sigmoid(0) = 0.5
    assert multilabel_classes(SCORES, 0.9) == [[1, 3], [0, 4]]
    assert multilabel_classes(SCORES, 0.5) == [[1, 3, 4, 0], [0, 4, 3, 2]]
    assert multilabel_classes(SCORES, 0.5, max_classes=2) == [[1, 3], [0, 4]]
    assert multilabel_classes(SCORES, 4.5, sigmoid=False) == [[], [0]]
    targets = multilabel_targets(SCORES, 0.9)
    assert [[t.category for t in row] for row in targets] == [[1, 3], [0, 4]]


def test_multilabel_bad_arguments():
    with pytest.raises(TypeError, match=r"threshold must be a number, got '0.5' \(str\)"):
        multilabel_classes(SCORES, "0.5")
    with pytest.raises(ValueError, match="max_classes must be >= 1, got 0"):
        multilabel_classes(SCORES, 0.5, max_classes=0)


def test_groups_by_count_makes_one_call_per_count():
    lists = [[1, 2], [3], [], [4, 5], [6]]
    assert groups_by_count(lists) == [[0, 3], [1, 4]]
    with pytest.raises(TypeError, match=r"target_lists\[1\] must be a list of targets"):
        groups_by_count([[1], 2])


class _Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def test_multilabel_groups_explain_each_image_once_per_group():
    torch.manual_seed(0)
    model = _Pooled().eval()
    x = torch.randn(3, 3, 8, 8)
    lists = multilabel_targets(model(x), 0.0, sigmoid=False)  # every class with a score >= 0
    cam = GradCAM(model, target_layers=[model.relu])
    for group in groups_by_count(lists):
        maps = cam(x[group], [lists[i] for i in group])
        assert maps.shape == (len(group), len(lists[group[0]]), 8, 8)
        for row, i in enumerate(group):
            for k, target in enumerate(lists[i]):
                np.testing.assert_allclose(maps[row, k], cam(x[i:i + 1], [target])[0], atol=1e-5)


def test_box_targets_one_per_box_above_the_score():
    detections = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 3, 3]]),
         "labels": torch.tensor([3, 7, 3]), "scores": torch.tensor([0.6, 0.9, 0.2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
         "scores": torch.zeros(0)},
    ]
    targets = box_targets(detections, score_threshold=0.5)
    assert [len(row) for row in targets] == [2, 0]
    assert all(type(t) is FasterRCNNBoxScoreTarget for t in targets[0])
    best, second = targets[0]  # highest score first
    assert best.labels == [7] and best.bounding_boxes == [[5.0, 5.0, 20.0, 20.0]]
    assert second.labels == [3] and second.bounding_boxes == [[0.0, 0.0, 10.0, 10.0]]
    # each scores its own box: IoU 1 + its score, and 0 for the other box
    assert float(best(detections[0])) == pytest.approx(1.9)
    assert float(second(detections[0])) == pytest.approx(1.6)
    assert [len(row) for row in box_targets(detections, 0.1, max_boxes=2)] == [2, 0]


def test_box_targets_bad_detections():
    with pytest.raises(ValueError, match=r"detections\[0\] must be a dict with 'boxes', 'labels' "
                                         "and 'scores'"):
        box_targets([{"boxes": torch.zeros(0, 4)}])
    with pytest.raises(TypeError, match="detections must be a list"):
        box_targets({"boxes": torch.zeros(0, 4)})
