"""What every perturbation metric shares (``metrics.perturbation_confidence``): batches equal
single images whatever the chunk size, the model is restored, no_grad and inference
tensors work, arguments are checked, and a progress bar that names the metric.
"""
import numpy as np
import pytest
import torch
from metric_cases import tqdm_lines
from torch import nn

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metrics.arcc import ARCC
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
)
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.road import (
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

# ---------------------------------------------------- batching and model state
METRIC_CALLS = {
    "cam_mult": lambda bs: CamMultImageConfidenceChange(batch_size=bs),
    "drop": lambda bs: DropInConfidence(batch_size=bs),
    "increase": lambda bs: IncreaseInConfidence(batch_size=bs),
    # ROAD with a fixed noise (seed=0): by default it comes from the global generator
    "morf": lambda bs: ROADMostRelevantFirst(60, batch_size=bs, seed=0),
    "lerf_average": lambda bs: ROADLeastRelevantFirstAverage([30, 70], batch_size=bs, seed=0),
    "combined": lambda bs: ROADCombined([30, 70], batch_size=bs, seed=0),
    "deletion": lambda bs: DeletionAUC(5, batch_size=bs),
    "insertion": lambda bs: InsertionAUC(5, batch_size=bs),
}


@pytest.mark.parametrize("name", sorted(METRIC_CALLS))
def test_batch_equals_single_images_and_chunking(model, images, cams, name):
    targets = [ClassifierOutputSoftmaxTarget(c) for c in (0, 1, 0)]
    x = torch.from_numpy(images)
    batched = METRIC_CALLS[name](2)(x, cams, targets, model)
    singles = [METRIC_CALLS[name](1)(x[b:b + 1], cams[b:b + 1], targets[b:b + 1], model)[0]
               for b in range(3)]
    whole = METRIC_CALLS[name](64)(x, cams, targets, model)
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, batched, rtol=1e-5, atol=1e-6)


class TrainingModel(nn.Module):
    """Dropout and batch norm make train mode visible in the outputs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                      nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 2))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("metric", [
    lambda m: DropInConfidence(relative=False),
    lambda m: ROADCombined([50], seed=0),  # fixed noise: calls compare
    lambda m: DeletionAUC(4),
    lambda m: ARCC(GradCAM(m, [m.features[2]]), road_percentiles=[50], seed=0),
])
def test_model_state_is_restored(images, cams, metric):
    torch.manual_seed(0)
    model = TrainingModel().train()
    model.head[2].weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(images)
    targets = [ClassifierOutputSoftmaxTarget(0)] * 3
    first = metric(model)(x, cams, targets, model)
    second = metric(model)(x, cams, targets, model)
    np.testing.assert_array_equal(first, second)  # eval mode inside: no dropout
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, False, True]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())


def test_metrics_run_under_no_grad_and_on_inference_tensors(model, images, cams):
    with torch.inference_mode():
        x = torch.from_numpy(images).clone()
    with torch.no_grad():
        result = ROADCombined([50])(x, cams, None, model)
    assert result.shape == (3,) and np.isfinite(result).all()


def test_argument_errors(model, images, cams):
    x = torch.from_numpy(images)
    with pytest.raises(ValueError, match="grayscale_cams has shape"):
        CamMultImageConfidenceChange()(x, cams[:2], None, model)
    with pytest.raises(ValueError, match="targets has 1 entries"):
        CamMultImageConfidenceChange()(x, cams, [ClassifierOutputTarget(0)], model)
    with pytest.raises(ValueError, match="percentile must be in"):
        ROADMostRelevantFirst(120)
    with pytest.raises(TypeError, match="batch_size"):
        ROADCombined(batch_size=1.5)
    with pytest.raises(ValueError, match="n_steps=20 is more than the 16 pixels"):
        DeletionAUC(20)(x, cams, None, model)
    with pytest.raises(ValueError, match="substrate must be one of"):
        InsertionAUC(substrate="noise")


@pytest.mark.parametrize("make, desc, total", [
    (lambda p: DropInConfidence(progress=p), "DropInConfidence", 3),
    (lambda p: IncreaseInConfidence(progress=p), "IncreaseInConfidence", 3),
    (lambda p: ROADMostRelevantFirst(80, progress=p, seed=0), "ROAD MoRF 80 (imputing + scoring)", 3),
    (lambda p: ROADLeastRelevantFirst(20, progress=p, seed=0), "ROAD LeRF 20 (imputing + scoring)", 3),
    (lambda p: ROADMostRelevantFirstAverage([20, 80], progress=p, seed=0),
     "ROAD MoRF (imputing + scoring)", 6),
    (lambda p: ROADLeastRelevantFirstAverage([20, 80], progress=p, seed=0),
     "ROAD LeRF (imputing + scoring)", 6),
    (lambda p: ROADCombined([20, 80], progress=p, seed=0), "ROADCombined (imputing + scoring)", 12),
    (lambda p: DeletionAUC(4, progress=p), "DeletionAUC (4 steps)", 15),
    (lambda p: InsertionAUC(4, progress=p), "InsertionAUC (4 steps)", 15),
])
def test_metric_progress_bar_names_the_metric_and_is_off_by_default(make, desc, total, model,
                                                                    images, cams, capsys):
    images = torch.from_numpy(images)
    probs = [ClassifierOutputSoftmaxTarget(0)] * len(images)
    quiet = make(False)(images, cams, probs, model)
    assert capsys.readouterr().err == ""
    loud = make(True)(images, cams, probs, model)
    err = tqdm_lines(capsys.readouterr().err)
    # tqdm draws '<desc>:   0%|   | 0/<total> ...': the metric's name and its perturbed passes
    assert f"{desc}:" in err and f"0/{total} " in err, err
    np.testing.assert_array_equal(quiet, loud)  # the bar changes nothing else
