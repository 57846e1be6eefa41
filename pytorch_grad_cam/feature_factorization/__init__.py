"""Deep Feature Factorization: concepts found by factorising activations."""
from pytorch_grad_cam.feature_factorization._nmf import NMFResult, non_negative_matrix_factorization
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    DeepFeatureFactorization,
    dff,
    run_dff_on_image,
)

__all__ = ["DeepFeatureFactorization", "NMFResult", "dff", "non_negative_matrix_factorization",
           "run_dff_on_image"]
