"""``metrics.evaluate``: the table of every metric for several methods, its rows equal the
single metrics; argument errors; one progress bar per metric and method.
"""
import numpy as np
import pytest
import torch
from metric_cases import tqdm_lines
from torch import nn

from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.metric_names import OPT_IN_METRICS, REGION_METRICS, SANITY_CHECKS
from pytorch_grad_cam.metrics.arcc import Coherency, Complexity
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.evaluate import METRICS, evaluate_cam_methods, format_table
from pytorch_grad_cam.metrics.faithfulness_correlation import FaithfulnessCorrelation
from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, PointingGame
from pytorch_grad_cam.metrics.relevance_accuracy import RelevanceMassAccuracy, RelevanceRankAccuracy
from pytorch_grad_cam.metrics.road import ROADCombined, ROADMostRelevantFirstAverage
from pytorch_grad_cam.metrics.sparseness import EntropyComplexity, Sparseness
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget


# ------------------------------------------------------------------ evaluate
class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_evaluate_rows_match_the_single_metrics():
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(2, 3, 12, 12)
    layer = model.features[-1]
    regions = [(0, 0, 6, 6), (6, 6, 12, 12)]
    default = evaluate_cam_methods(model, [layer], x, methods=[GradCAM], regions=regions,
                                   n_steps=6)
    # every metric but those asked for by name (FaithfulnessCorrelation: 100
    # forward passes per method; the sanity checks, tests/metrics/test_sanity.py)
    assert list(default["GradCAM"]) == [m for m in METRICS if m not in OPT_IN_METRICS]
    scored = [m for m in METRICS if m not in SANITY_CHECKS]
    rows = evaluate_cam_methods(model, [layer], x, methods=[GradCAM, "scorecam"], regions=regions,
                                metrics=scored, per_image=True, n_steps=6, batch_size=5)
    assert list(rows) == ["GradCAM", "scorecam"]
    assert list(rows["GradCAM"]) == scored
    maps = GradCAM(model, [layer])(x)
    top = model(x).argmax(dim=1).tolist()
    probs = [ClassifierOutputSoftmaxTarget(c) for c in top]
    got = rows["GradCAM"]
    average_drop = DropInConfidence(relative=True)(x, maps, probs, model)
    np.testing.assert_allclose(got["DropInConfidence"], average_drop, rtol=1e-5, atol=1e-7)
    # evaluate's ROAD: exact pixel counts and fixed noise
    road = {"seed": 0, "removal": "rank"}
    np.testing.assert_allclose(got["ROADCombined"],
                               ROADCombined([20, 40, 60, 80], **road)(x, maps, probs, model),
                               atol=1e-6)
    np.testing.assert_allclose(got["ROADMoRF"],
                               ROADMostRelevantFirstAverage([20, 40, 60, 80], **road)(
                                   x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["Deletion"], DeletionAUC(6)(x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["Insertion"], InsertionAUC(6)(x, maps, probs, model), atol=1e-6)
    np.testing.assert_allclose(got["Complexity"], Complexity()(maps), rtol=1e-6)
    with GradCAM(model, [layer]) as cam:
        coherency = Coherency()(x, maps, [ClassifierOutputTarget(c) for c in top], model, cam)
    np.testing.assert_allclose(got["Coherency"], coherency, rtol=1e-5)
    np.testing.assert_allclose(got["PointingGame"], PointingGame()(maps, regions))
    np.testing.assert_allclose(got["EnergyPointingGame"], EnergyPointingGame()(maps, regions),
                               rtol=1e-6)
    # 100 runs of a quarter of the 144 pixels (fewer than 224), seed 0, on probabilities
    np.testing.assert_allclose(got["FaithfulnessCorrelation"],
                               FaithfulnessCorrelation(100, 36)(x, maps, probs, model), atol=1e-5)
    np.testing.assert_allclose(got["Sparseness"], Sparseness()(maps), rtol=1e-6)
    np.testing.assert_allclose(got["EntropyComplexity"], EntropyComplexity()(maps), rtol=1e-6)
    np.testing.assert_allclose(got["RelevanceMassAccuracy"],
                               RelevanceMassAccuracy()(maps, regions), rtol=1e-6)
    np.testing.assert_allclose(got["RelevanceRankAccuracy"],
                               RelevanceRankAccuracy()(maps, regions), rtol=1e-6)

    means = evaluate_cam_methods(model, [layer], x, methods=[GradCAM], n_steps=6,
                                 metrics=["Complexity", "ROADLeRF"])
    assert list(means["GradCAM"]) == ["Complexity", "ROADLeRF"]
    assert means["GradCAM"]["Complexity"] == pytest.approx(float(Complexity()(maps).mean()),
                                                           rel=1e-5)
    table = format_table(means)
    lines = table.splitlines()
    assert lines[0].split() == ["method", "Complexity", "ROADLeRF"]
    assert lines[1].split() == ["(lower)", "(higher)"]
    assert lines[3].split()[0] == "GradCAM"
    assert float(lines[3].split()[1]) == pytest.approx(means["GradCAM"]["Complexity"], abs=1e-4)


def test_evaluate_argument_errors():
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 8, 8)
    layers = [model.features[-1]]
    with pytest.raises(ValueError, match="needs regions"):
        evaluate_cam_methods(model, layers, x, methods=[GradCAM], metrics=["PointingGame"])
    with pytest.raises(ValueError, match="'RelevanceRankAccuracy' needs regions"):
        evaluate_cam_methods(model, layers, x, methods=[GradCAM],
                             metrics=["RelevanceRankAccuracy"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_cam_methods(model, layers, x, methods=[GradCAM], metrics=["Accuracy"])
    with pytest.raises(ValueError, match="not one of"):
        evaluate_cam_methods(model, layers, x, methods=["nocam"])
    with pytest.raises(TypeError, match="BaseCAM subclass"):
        evaluate_cam_methods(model, layers, x, methods=[ScoreCAM(model, layers)])


def test_evaluate_progress_shows_one_bar_per_metric_and_method(capsys):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 12, 12)
    layers = [model.features[-1]]
    every = [name for name in METRICS if name not in REGION_METRICS + SANITY_CHECKS]
    quiet = evaluate_cam_methods(model, layers, x, methods=[GradCAM, "scorecam"], n_steps=4,
                                 metrics=every)
    assert capsys.readouterr().err == ""
    loud = evaluate_cam_methods(model, layers, x, methods=[GradCAM, "scorecam"], n_steps=4,
                                metrics=every, progress=True)
    err = tqdm_lines(capsys.readouterr().err)
    for row in ("GradCAM", "scorecam"):
        for what in ("Drop/IncreaseInConfidence", "ROADMoRF/LeRF/Combined (imputing + scoring)",
                     "Deletion (4 steps)", "Insertion (4 steps)",
                     "FaithfulnessCorrelation (100 runs)",
                     "Coherency (the map of the masked input)"):
            assert f"{row}: {what}:" in err, (row, what)
    assert "ScoreCAM:" in err  # the method's own bar
    assert quiet == loud
