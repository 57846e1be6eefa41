"""Deep Feature Factorization: concepts found by factorising activations."""
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    DeepFeatureFactorization,
    dff,
    non_negative_matrix_factorization,
    run_dff_on_image,
)

__all__ = ["DeepFeatureFactorization", "dff", "non_negative_matrix_factorization",
           "run_dff_on_image"]
