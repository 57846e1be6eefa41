"""The names of the library's metrics, which direction of each is better,
and the check of a dataset run's ``metrics``, without torch: the dataset
command checks ``--metrics`` with them before torch and the metrics
(:mod:`pytorch_grad_cam.metrics`) are imported."""
from __future__ import annotations

import difflib
from typing import Any

from pytorch_grad_cam.messages import describe, given

__all__ = ["BATCH_ONLY_METRICS", "DATASET_METRICS", "METRICS", "OPT_IN_METRICS",
           "REGION_METRICS", "SANITY_CHECKS", "check_metrics", "check_sanity_checks"]

#: every metric of ``metrics.evaluate``'s table and whether a higher or a lower
#: value is better
METRICS = {
    "DropInConfidence": "lower",
    "IncreaseInConfidence": "higher",
    "ROADMoRF": "lower",
    "ROADLeRF": "higher",
    "ROADCombined": "higher",
    "Deletion": "lower",
    "Insertion": "higher",
    "FaithfulnessCorrelation": "higher",
    "Complexity": "lower",
    "Sparseness": "higher",
    "EntropyComplexity": "lower",
    "Coherency": "higher",
    "ARCC": "higher",
    "PointingGame": "higher",
    "EnergyPointingGame": "higher",
    "RelevanceMassAccuracy": "higher",
    "RelevanceRankAccuracy": "higher",
    "MPRT": "lower",
    "sMPRT": "lower",
    "eMPRT": "higher",
    "RandomLogit": "lower",
}
#: the metrics that need ground-truth regions (a box or mask per image)
REGION_METRICS = ("PointingGame", "EnergyPointingGame", "RelevanceMassAccuracy",
                  "RelevanceRankAccuracy")
#: the sanity checks (``metrics.sanity``): the similarity of the map after
#: the model's full randomisation (MPRT, sMPRT: lower is better), the rise of
#: its complexity (eMPRT: higher), the similarity of the maps of two classes
#: (RandomLogit: lower); a method passes or fails each
SANITY_CHECKS = ("MPRT", "sMPRT", "eMPRT", "RandomLogit")
#: the metrics of :data:`METRICS` that ``metrics.evaluate`` computes on a
#: batch but a dataset run does not
BATCH_ONLY_METRICS = ("FaithfulnessCorrelation", "Sparseness", "EntropyComplexity") + SANITY_CHECKS
#: the metrics ``metrics.evaluate`` computes only when asked for by name, not
#: by default: FaithfulnessCorrelation costs 100 forward passes per method
#: and image, as many as all the default metrics together; the sanity checks
#: a copy of the model and a map per re-initialised layer (sMPRT 100 maps)
OPT_IN_METRICS = ("FaithfulnessCorrelation",) + SANITY_CHECKS

#: the metrics a dataset run can compute (those of :data:`METRICS` that need
#: no ground-truth regions, less :data:`BATCH_ONLY_METRICS`), with "higher"
#: or "lower" is better
DATASET_METRICS: dict[str, str] = {name: better for name, better in METRICS.items()
                                   if name not in REGION_METRICS + BATCH_ONLY_METRICS}


def check_metrics(metrics: Any) -> list[str]:
    """``explain_dataset``'s ``metrics``: None (none), ``"all"`` or a list of
    names of :data:`DATASET_METRICS` -> the list of names."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        if metrics == "all":
            return list(DATASET_METRICS)
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be None, 'all' or a list of names, got {given(metrics)}")
    chosen = []
    for index, name in enumerate(metrics):
        if name not in DATASET_METRICS:
            extra = ""
            if name in REGION_METRICS:
                extra = " (it needs ground-truth regions, which a dataset run does not have)"
            elif name in BATCH_ONLY_METRICS:
                extra = (" (a dataset run does not compute it; metrics.evaluate_cam_methods "
                         "does, on a batch)")
            raise ValueError(f"metrics[{index}] is {describe(name)}{extra}; choose from "
                             f"{', '.join(DATASET_METRICS)} or 'all'")
        if name not in chosen:
            chosen.append(name)
    return chosen


def check_sanity_checks(names: Any, argument: str = "sanity_checks") -> list[str]:
    """The command lines' ``--sanity-checks`` and ``explain_dataset``'s
    ``sanity_checks``: None (none), ``"all"`` or a list of names of
    :data:`SANITY_CHECKS`, case-insensitive (an empty list or ``["all"]``:
    all of them) -> the names as :data:`SANITY_CHECKS` spells them, in the
    order given, without repeats. ValueError naming ``argument``, the
    entry, the close names and every valid one."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)):
        raise TypeError(f"{argument} must be None, 'all' or a list of names, got "
                        f"{given(names)}")
    if not names or [str(n).lower() for n in names] == ["all"]:
        return list(SANITY_CHECKS)
    spelled = {name.lower(): name for name in SANITY_CHECKS}
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{argument}: a check must be a name, got {given(name)}")
        found = spelled.get(name.strip().lower())
        if found is None:
            close = difflib.get_close_matches(name.strip().lower(), list(spelled), n=2,
                                              cutoff=0.5)
            hint = (f" (did you mean {' or '.join(spelled[c] for c in close)}?)"
                    if close else "")
            raise ValueError(f"{argument}: {describe(name)} is not a sanity check{hint}; "
                             f"choose from {', '.join(SANITY_CHECKS)} or 'all'")
        if found not in chosen:
            chosen.append(found)
    return chosen
