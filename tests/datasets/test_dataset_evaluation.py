"""pytorch_grad_cam.datasets.evaluation: streaming statistics against
numpy, the ranking, the metrics of a batch against the metric classes, and
the dataset-level numbers of a run against its per-image values."""
import math

import numpy as np
import pytest
import torch
from dataset_helpers import LAYER, SMALL, TinyNet, photo, write_photos

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.datasets import (
    BatchMetrics,
    RunningStats,
    check_metrics,
    explain_dataset,
    open_results,
    rank_methods,
)
from pytorch_grad_cam.metrics.arcc import Coherency, Complexity
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC
from pytorch_grad_cam.metrics.road import ROADCombined, ROADMostRelevantFirstAverage
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget


def test_running_stats_equal_numpy_in_any_chunking():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, 1001)
    values[[5, 100]] = np.nan
    stats = RunningStats()
    for start in range(0, len(values), 97):
        stats.update(values[start:start + 97])
    stats.skip(7)
    finite = values[np.isfinite(values)]
    result = stats.result()
    assert result["count"] == 999 and result["nan"] == 2 and result["skipped"] == 7
    assert result["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert result["std"] == pytest.approx(finite.std(ddof=1), rel=1e-10)
    half = 1.959963984540054 * finite.std(ddof=1) / math.sqrt(999)
    assert result["ci95_low"] == pytest.approx(finite.mean() - half, rel=1e-10)
    assert result["ci95_high"] == pytest.approx(finite.mean() + half, rel=1e-10)
    assert (result["min"], result["max"]) == (finite.min(), finite.max())
    # merging the halves of two accumulators is exact
    left, right = RunningStats().update(values[:400]), RunningStats().update(values[400:])
    merged = left.merge(right).result()
    for key in ("count", "nan", "mean", "std"):
        assert merged[key] == pytest.approx(result[key], rel=1e-12)
    empty = RunningStats().result()
    assert empty["count"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["std"])


def _stats(mean, std=0.1, n=100):
    half = 1.959963984540054 * std / math.sqrt(n)
    return {"mean": mean, "std": std, "count": n, "ci95_low": mean - half,
            "ci95_high": mean + half}


def test_rank_methods_follows_each_metrics_direction():
    stats = {"gradcam": {"Deletion": _stats(0.30), "Insertion": _stats(0.60)},
             "scorecam": {"Deletion": _stats(0.20), "Insertion": _stats(0.605)},
             "random": {"Deletion": _stats(0.50), "Insertion": _stats(0.40)}}
    ranking = rank_methods(stats)
    assert [row["method"] for row in ranking] == ["scorecam", "gradcam", "random"]
    assert ranking[0]["ranks"] == {"Deletion": 1.0, "Insertion": 1.0}  # lower / higher better
    assert ranking[0]["mean_rank"] == 1.0 and ranking[2]["mean_rank"] == 3.0
    assert ranking[0]["wins"] == ["Deletion", "Insertion"]
    # Deletion 0.20 vs 0.30 is clear; Insertion 0.605 vs 0.600 is within the intervals
    assert ranking[0]["clear"] == {"Deletion": True, "Insertion": False}
    tie = rank_methods({"a": {"ARCC": _stats(0.5)}, "b": {"ARCC": _stats(0.5)}})
    assert [row["ranks"]["ARCC"] for row in tie] == [1.5, 1.5]


def test_check_metrics():
    assert check_metrics(None) == []
    assert check_metrics("all")[:2] == ["DropInConfidence", "IncreaseInConfidence"]
    assert "PointingGame" not in check_metrics("all")
    assert check_metrics(["Deletion", "Deletion"]) == ["Deletion"]
    with pytest.raises(ValueError, match="choose from DropInConfidence"):
        check_metrics(["Nope"])
    with pytest.raises(TypeError):
        check_metrics(3)


def _batch():
    model = TinyNet()
    x = torch.cat([SMALL(photo(i))[None] for i in range(3)])
    cam = GradCAM(model=model, target_layers=[model.features[-1]])
    classes = [1, 2, 0]
    maps = torch.from_numpy(cam(x, [ClassifierOutputTarget(c) for c in classes]))
    return model, x, cam, classes, maps


def test_batch_metrics_are_the_metric_classes():
    model, x, cam, classes, maps = _batch()
    names = ["DropInConfidence", "ROADMoRF", "ROADLeRF", "ROADCombined", "Deletion",
             "Complexity", "Coherency", "ARCC"]
    values, errors = BatchMetrics(names, n_steps=8)(x, maps, classes, model, cam)
    assert errors == {} and list(values) == names
    probability = [ClassifierOutputSoftmaxTarget(c) for c in classes]
    np.testing.assert_allclose(values["DropInConfidence"],
                               DropInConfidence(relative=True)(x, maps, probability, model), rtol=1e-6)
    # the runner's ROAD: exact pixel counts (by rank) and fixed noise
    np.testing.assert_allclose(values["ROADMoRF"], ROADMostRelevantFirstAverage(
        [20, 40, 60, 80], seed=0, removal="rank")(x, maps, probability, model), rtol=1e-6)
    # derived from MoRF and LeRF, it equals the ROADCombined class
    np.testing.assert_allclose(values["ROADCombined"], ROADCombined(
        [20, 40, 60, 80], seed=0, removal="rank")(x, maps, probability, model), atol=1e-6)
    np.testing.assert_allclose(values["Deletion"], DeletionAUC(8)(x, maps, probability, model),
                               rtol=1e-6)
    np.testing.assert_allclose(values["Complexity"], Complexity()(maps), rtol=1e-6)
    np.testing.assert_allclose(values["Coherency"], Coherency()(
        x, maps, [ClassifierOutputTarget(c) for c in classes], model, cam), rtol=1e-6)
    alone, _ = BatchMetrics(["ROADCombined"])(x, maps, classes, model, cam)
    np.testing.assert_allclose(alone["ROADCombined"], values["ROADCombined"], atol=1e-6)


def test_a_failing_metric_is_nan_with_its_reason():
    model, x, cam, classes, maps = _batch()
    values, errors = BatchMetrics(["Deletion", "Complexity"], n_steps=5000)(
        x, maps, classes, model, cam)  # more steps than the 1024 pixels
    assert np.isnan(values["Deletion"]).all()
    assert errors == {"Deletion": "ValueError: n_steps=5000 is more than the 1024 pixels of an "
                                  "image; use at most one step per pixel"}
    assert np.isfinite(values["Complexity"]).all()


def test_dataset_level_metrics_of_a_run(tmp_path):
    write_photos(tmp_path / "photos", 6)
    (tmp_path / "photos" / "zz_empty.png").write_bytes(b"")
    summary = explain_dataset(tmp_path / "photos", TinyNet(), ["gradcam", "gradcam++"],
                              metrics=["Complexity", "ROADCombined", "Deletion"], n_steps=8,
                              target_layers=[LAYER], preprocess=SMALL, workers=0,
                              progress=False, out=tmp_path / "out", batch_size=4)
    results = open_results(tmp_path / "out")
    frame = results.frame
    for method in ("gradcam", "gradcam++"):
        mine = frame[(frame["method"] == method) & (frame["status"] == "ok")]
        for metric in ("Complexity", "ROADCombined", "Deletion"):
            s = summary.metrics[method][metric]
            column = mine[metric].to_numpy(np.float64)
            assert s["count"] == 6 and s["skipped"] == 1 and s["nan"] == 0
            assert s["mean"] == pytest.approx(column.mean(), rel=1e-6)
            assert s["std"] == pytest.approx(column.std(ddof=1), rel=1e-5)
        # Complexity is the mean of the map at the input size
        row = int(mine.index[0])
        full = results.map(row, size=(32, 32))
        assert mine["Complexity"].iloc[0] == pytest.approx(float(full.mean()), abs=0.02)
    assert [row["method"] for row in summary.ranking] == [
        row["method"] for row in rank_methods(summary.metrics)]
    assert results.index["metrics"] == summary.metrics
