"""``utils.model_targets``: every target's score, by hand (ReST, softmax, Finer and
similarity to a concept too), and a similarity target explaining an embedding model."""
import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    FasterRCNNBoxScoreTarget,
    FinerWeightedTarget,
    RawScoresOutputTarget,
    SemanticSegmentationTarget,
    SimilarityToConceptTarget,
    SoftmaxOutputTarget,
)


def test_classifier_targets():
    logits = torch.tensor([1.0, 5.0, 3.0])
    assert ClassifierOutputTarget(2)(logits).item() == 3.0
    assert ClassifierOutputTarget(np.int64(1))(logits).item() == 5.0
    assert ClassifierOutputTarget(2)(torch.tensor([[1.0, 5.0, 3.0], [0.0, 0.0, 6.0]])).tolist() \
        == [3.0, 6.0]
    e = [math.exp(v) for v in (1.0, 5.0, 3.0)]
    assert ClassifierOutputSoftmaxTarget(0)(logits).item() == pytest.approx(e[0] / sum(e))
    with pytest.raises(TypeError, match="category"):
        ClassifierOutputTarget(1.5)
    with pytest.raises(ValueError, match="out of range"):
        ClassifierOutputTarget(3).check_output(logits)
    ClassifierOutputTarget(-1).check_output(logits)


def test_binary_and_raw_targets():
    out = torch.tensor([0.7])
    assert BinaryClassifierOutputTarget(1)(out).item() == pytest.approx(0.7)
    assert BinaryClassifierOutputTarget(0)(out).item() == pytest.approx(-0.7)
    with pytest.raises(ValueError, match="0 or 1"):
        BinaryClassifierOutputTarget(2)
    raw = torch.tensor([2.5])
    assert torch.equal(RawScoresOutputTarget()(raw), raw)


def test_semantic_segmentation_target():
    out = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)  # C x H x W
    mask = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32)
    # class 1 scores [[6, 7, 8], [9, 10, 11]] inside the mask: 6 + 10 + 11
    assert SemanticSegmentationTarget(1, mask)(out).item() == 27.0
    assert SemanticSegmentationTarget(0, torch.ones(2, 3))(out.double()).item() == 15.0


def _detections():
    return {
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0],
                               [0.0, 0.0, 9.0, 10.0]]),
        "labels": torch.tensor([1, 2, 1]),
        "scores": torch.tensor([0.9, 0.8, 0.7], requires_grad=True),
    }


def test_faster_rcnn_box_score_target():
    detections = _detections()
    boxes = np.array([[0, 0, 10, 10], [21, 21, 30, 30], [20, 20, 30, 30]], dtype=np.float32)
    labels = [1, 2, 3]
    # box 0: detection 0, IoU 1, label 1 -> 1 + 0.9
    # box 1: detection 1, IoU 81/100, label 2 -> 0.81 + 0.8
    # box 2: detection 1, IoU 1, but label 2 != 3 -> nothing
    score = FasterRCNNBoxScoreTarget(labels, boxes)(detections)
    assert score.item() == pytest.approx(1.9 + 1.61, abs=1e-6)
    (grad,) = torch.autograd.grad(score.sum(), detections["scores"])
    assert grad.tolist() == [1.0, 1.0, 0.0]
    strict = FasterRCNNBoxScoreTarget(labels, boxes, iou_threshold=0.9)(detections)
    assert strict.item() == pytest.approx(1.9, abs=1e-6)


def test_faster_rcnn_box_score_target_without_detections():
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "scores": torch.zeros(0)}
    score = FasterRCNNBoxScoreTarget([1], [[0, 0, 10, 10]])(empty)
    assert isinstance(score, torch.Tensor) and score.item() == 0.0


# ------------------------------------- the targets of the methods beyond the first five
def test_new_targets_values():
    y = torch.tensor([[1.0, 3.0, -2.0, 0.5], [0.0, 0.0, 1.0, 2.0]])
    p = np.exp(y.numpy()) / np.exp(y.numpy()).sum(axis=1, keepdims=True)
    rest = ClassifierOutputReST(1)
    np.testing.assert_allclose(rest(y).numpy(), y[:, 1].numpy() + np.log(p[:, 1]), rtol=1e-5)
    assert float(rest(y[0])) == pytest.approx(3.0 + np.log(p[0, 1]), rel=1e-5)
    np.testing.assert_allclose(SoftmaxOutputTarget()(y).numpy(), p, rtol=1e-5)
    finer = FinerWeightedTarget(1, [0, 3], alpha=0.5)
    expected = [(p[b, 0] * (y[b, 1] - 0.5 * y[b, 0]) + p[b, 3] * (y[b, 1] - 0.5 * y[b, 3]))
                / (p[b, 0] + p[b, 3]) for b in range(2)]
    np.testing.assert_allclose(finer(y).numpy(), np.array(expected, dtype=np.float32), rtol=1e-5)
    assert float(finer(y[1])) == pytest.approx(float(expected[1]), rel=1e-5)
    concept = np.array([1.0, 0.0, 0.0, 1.0])
    similarity = SimilarityToConceptTarget(concept)
    cosine = (y.numpy() @ concept) / (np.linalg.norm(y.numpy(), axis=1) * np.sqrt(2))
    np.testing.assert_allclose(similarity(y).numpy(), cosine, rtol=1e-5)
    assert float(similarity(y[0])) == pytest.approx(cosine[0], rel=1e-5)
    with pytest.raises(ValueError, match="1-D"):
        SimilarityToConceptTarget(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        FinerWeightedTarget(1, [])


def test_similarity_to_concept_explains_an_embedding_model():
    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Identity()  # 512-d embeddings
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        concept = model(torch.randn(1, 3, 64, 64))[0]
    cam = GradCAM(model, [model.layer4[-1]])
    maps = cam(x, [SimilarityToConceptTarget(concept)] * 2)
    assert maps.shape == (2, 64, 64) and maps.max() == pytest.approx(1, abs=1e-4)
    with pytest.raises(ValueError, match="concept features have 3 entries"):
        cam(x, [SimilarityToConceptTarget(torch.ones(3))] * 2)
