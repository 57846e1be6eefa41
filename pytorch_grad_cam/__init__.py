"""Class activation maps for PyTorch models.

The public names below are imported when the first of them is used (``from
pytorch_grad_cam import GradCAM`` imports every method then, and the
metrics): ``import pytorch_grad_cam`` alone imports neither torch nor any
method, so that the command line (``python -m pytorch_grad_cam``) and code
that imports one submodule (``pytorch_grad_cam.registry``) start at once. The order of
``METHODS`` (and of the command line's ``--method all``) is
``registry.LIBRARY_METHODS``'s.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytorch_grad_cam._version import __version__
from pytorch_grad_cam.lazy import submodule
from pytorch_grad_cam.registry import (
    LIBRARY_METHODS,
    METHODS,
    MethodInfo,
    get_method,
    load_methods,
    register_method,
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers
    from pytorch_grad_cam.ablation_cam import AblationCAM
    from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerFasterRCNN, AblationLayerVit
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
    from pytorch_grad_cam.attention_rollout import AttentionRollout
    from pytorch_grad_cam.attnlrp import AttnLRP
    from pytorch_grad_cam.base_cam import BaseCAM
    from pytorch_grad_cam.eigen_cam import EigenCAM
    from pytorch_grad_cam.eigen_grad_cam import EigenGradCAM
    from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
        DeepFeatureFactorization,
        run_dff_on_image,
    )
    from pytorch_grad_cam.fem import FEM
    from pytorch_grad_cam.finer_cam import FinerCAM
    from pytorch_grad_cam.fullgrad_cam import FullGrad
    from pytorch_grad_cam.grad_cam import GradCAM
    from pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise
    from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
    from pytorch_grad_cam.grad_eclip import GradECLIP
    from pytorch_grad_cam.gradient_attention import GradientWeightedAttention
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
    from pytorch_grad_cam.hirescam import HiResCAM
    from pytorch_grad_cam.iscam import ISCAM
    from pytorch_grad_cam.kpca_cam import KPCA_CAM
    from pytorch_grad_cam.layer_cam import LayerCAM
    from pytorch_grad_cam.legrad import LeGrad
    from pytorch_grad_cam.original_cam import CAM
    from pytorch_grad_cam.random_cam import RandomCAM
    from pytorch_grad_cam.refine_cam import RefineCAM
    from pytorch_grad_cam.rise import RISE
    from pytorch_grad_cam.score_cam import ScoreCAM
    from pytorch_grad_cam.seg_eigen_cam import SegEigenCAM
    from pytorch_grad_cam.sess import SESS
    from pytorch_grad_cam.shapley_cam import ShapleyCAM
    from pytorch_grad_cam.smooth_grad_cam_plusplus import SmoothGradCAMPlusPlus
    from pytorch_grad_cam.sscam import SSCAM
    from pytorch_grad_cam.xgrad_cam import XGradCAM

#: the public names that are not methods, and the modules they come from
_OTHERS = {
    "AblationLayer": "pytorch_grad_cam.ablation_layer",
    "AblationLayerFasterRCNN": "pytorch_grad_cam.ablation_layer",
    "AblationLayerVit": "pytorch_grad_cam.ablation_layer",
    "ActivationsAndGradients": "pytorch_grad_cam.activations_and_gradients",
    "BaseCAM": "pytorch_grad_cam.base_cam",
    "DeepFeatureFactorization": "pytorch_grad_cam.feature_factorization.deep_feature_factorization",
    "run_dff_on_image": "pytorch_grad_cam.feature_factorization.deep_feature_factorization",
    "GuidedBackpropReLUModel": "pytorch_grad_cam.guided_backprop",
    "SESS": "pytorch_grad_cam.sess",
}
#: name -> the module that defines it
_LAZY = {**{cls: module for _, module, cls in LIBRARY_METHODS}, **_OTHERS}

__all__ = [
    "AblationCAM", "AblationLayer", "AblationLayerFasterRCNN", "AblationLayerVit",
    "ActivationsAndGradients", "BaseCAM",
    "CAM", "DeepFeatureFactorization", "EigenCAM", "EigenGradCAM", "FEM", "FinerCAM",
    "FullGrad", "GradCAM", "GradCAMElementWise", "GradCAMPlusPlus", "GuidedBackpropReLUModel",
    "HiResCAM", "ISCAM", "KPCA_CAM", "LayerCAM", "METHODS", "MethodInfo", "RandomCAM", "RefineCAM",
    "get_method", "register_method", "__version__",
    "run_dff_on_image", "ScoreCAM", "SegEigenCAM", "ShapleyCAM", "SmoothGradCAMPlusPlus",
    "SSCAM", "XGradCAM",
    "AttentionRollout", "GradientWeightedAttention", "LeGrad", "SESS",
    "GradECLIP", "AttnLRP", "RISE",
]


def _load_public_names() -> None:
    """Import every module of the public names (the methods in the order of
    ``METHODS``) and the metrics, and bind the names here: what importing
    this package did before it was lazy."""
    load_methods()
    for name, module in _LAZY.items():
        globals()[name] = getattr(importlib.import_module(module), name)
    importlib.import_module(f"{__name__}.metrics")


def __getattr__(name: str) -> Any:
    """A public name: the first one asked for imports them all
    (:func:`_load_public_names`); a submodule (``pytorch_grad_cam.metrics``)
    imported when it is first reached as an attribute."""
    if name in _LAZY:
        _load_public_names()
        return globals()[name]
    return submodule(__name__, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
