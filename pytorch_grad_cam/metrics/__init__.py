"""Metrics that score explanations.

Faithfulness (the model's score when the input is changed according to
the map): ``cam_mult_image`` (Average Drop / Increase in Confidence),
``road`` (ROAD), ``deletion_insertion`` (RISE deletion and insertion),
``faithfulness_correlation``; map quality: ``arcc`` (Complexity,
Coherency, ARCC), ``sparseness``; localisation: ``pointing_game``,
``relevance_accuracy`` (relevance mass and rank accuracy); sanity checks
of a method: ``sanity`` (MPRT, sMPRT, eMPRT, the random logit test; their
measures in ``similarity``). ``evaluate`` runs them all for several
methods.
"""
from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
)
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.evaluate import METRICS, evaluate_cam_methods, format_table
from pytorch_grad_cam.metrics.faithfulness_correlation import FaithfulnessCorrelation
from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, PointingGame
from pytorch_grad_cam.metrics.relevance_accuracy import RelevanceMassAccuracy, RelevanceRankAccuracy
from pytorch_grad_cam.metrics.road import (
    NoisyLinearImputer,
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.metrics.sanity import (
    MPRT,
    EfficientMPRT,
    RandomLogitTest,
    SanityResult,
    SmoothMPRT,
)
from pytorch_grad_cam.metrics.sparseness import EntropyComplexity, Sparseness

__all__ = [
    "ARCC", "CamMultImageConfidenceChange", "Coherency", "Complexity", "DeletionAUC",
    "DropInConfidence", "EfficientMPRT", "EnergyPointingGame", "EntropyComplexity", "FaithfulnessCorrelation",
    "IncreaseInConfidence", "InsertionAUC", "METRICS", "MPRT", "NoisyLinearImputer",
    "PointingGame", "ROADCombined",
    "ROADLeastRelevantFirst", "ROADLeastRelevantFirstAverage", "ROADMostRelevantFirst",
    "ROADMostRelevantFirstAverage", "RandomLogitTest", "RelevanceMassAccuracy",
    "RelevanceRankAccuracy", "SanityResult", "SmoothMPRT", "Sparseness", "evaluate_cam_methods",
    "format_table",
]
