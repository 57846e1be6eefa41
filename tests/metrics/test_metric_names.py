"""``metric_names``: the new metrics are in the table with their direction, the region
metrics need regions, and a dataset run offers neither those nor the batch-only metrics.
"""
import pytest

from pytorch_grad_cam.metric_names import (
    BATCH_ONLY_METRICS,
    DATASET_METRICS,
    METRICS,
    OPT_IN_METRICS,
    REGION_METRICS,
    check_metrics,
)
from pytorch_grad_cam.metrics.evaluate import _metric_names


def test_the_new_metrics_and_their_directions():
    for name in ("FaithfulnessCorrelation", "Sparseness", "RelevanceMassAccuracy",
                 "RelevanceRankAccuracy"):
        assert METRICS[name] == "higher"
    assert METRICS["EntropyComplexity"] == "lower"
    assert REGION_METRICS == ("PointingGame", "EnergyPointingGame", "RelevanceMassAccuracy",
                              "RelevanceRankAccuracy")
    assert BATCH_ONLY_METRICS == ("FaithfulnessCorrelation", "Sparseness", "EntropyComplexity",
                                  "MPRT", "sMPRT", "eMPRT", "RandomLogit")
    # the dataset runner's metrics are the ones it computes, as before
    assert list(DATASET_METRICS) == ["DropInConfidence", "IncreaseInConfidence", "ROADMoRF",
                                     "ROADLeRF", "ROADCombined", "Deletion", "Insertion",
                                     "Complexity", "Coherency", "ARCC"]
    assert check_metrics("all") == list(DATASET_METRICS)
    # evaluate by default: everything but the region metrics and those
    # computed only when named (FaithfulnessCorrelation: 100 passes per method;
    # the sanity checks: a copy of the model and a map per re-initialised layer)
    assert OPT_IN_METRICS == ("FaithfulnessCorrelation", "MPRT", "sMPRT", "eMPRT",
                              "RandomLogit")
    assert _metric_names(None, None) == [m for m in METRICS if m not in REGION_METRICS
                                         and m not in OPT_IN_METRICS]
    assert _metric_names(["FaithfulnessCorrelation"], None) == ["FaithfulnessCorrelation"]
    assert _metric_names(["MPRT", "RandomLogit"], None) == ["MPRT", "RandomLogit"]


@pytest.mark.parametrize("name, reason", [
    ("Sparseness", "a dataset run does not compute it; metrics.evaluate_cam_methods does, "
                   "on a batch"),
    ("RelevanceMassAccuracy", "it needs ground-truth regions, which a dataset run does not "
                              "have"),
])
def test_a_dataset_run_says_why_it_does_not_offer_a_metric(name, reason):
    with pytest.raises(ValueError, match=f"metrics\\[1\\] is '{name}' \\({reason}\\); "
                                         "choose from DropInConfidence, "):
        check_metrics(["Complexity", name])
