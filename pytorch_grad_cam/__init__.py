"""Class activation maps for PyTorch models."""
# The methods register themselves in this order (the order of METHODS and of
# the command line's --method all).
from pytorch_grad_cam.grad_cam import GradCAM
from pytorch_grad_cam.hirescam import HiResCAM
from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.xgrad_cam import XGradCAM
from pytorch_grad_cam.ablation_cam import AblationCAM
from pytorch_grad_cam.score_cam import ScoreCAM
from pytorch_grad_cam.eigen_cam import EigenCAM
from pytorch_grad_cam.eigen_grad_cam import EigenGradCAM
from pytorch_grad_cam.layer_cam import LayerCAM
from pytorch_grad_cam.fullgrad_cam import FullGrad
from pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise
from pytorch_grad_cam.kpca_cam import KPCA_CAM
from pytorch_grad_cam.fem import FEM
from pytorch_grad_cam.shapley_cam import ShapleyCAM
from pytorch_grad_cam.finer_cam import FinerCAM
from pytorch_grad_cam.seg_eigen_cam import SegEigenCAM
from pytorch_grad_cam.refine_cam import RefineCAM
from pytorch_grad_cam.random_cam import RandomCAM
from pytorch_grad_cam.original_cam import CAM
from pytorch_grad_cam.smooth_grad_cam_plusplus import SmoothGradCAMPlusPlus
from pytorch_grad_cam.sscam import SSCAM
from pytorch_grad_cam.iscam import ISCAM
# the methods for Vision Transformers' attention (registry trait ``attention``)
from pytorch_grad_cam.legrad import LeGrad
from pytorch_grad_cam.attention_rollout import AttentionRollout
from pytorch_grad_cam.gradient_attention import GradientWeightedAttention
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerFasterRCNN, AblationLayerVit
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    DeepFeatureFactorization, run_dff_on_image)
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.sess import SESS

from pytorch_grad_cam._version import __version__
from pytorch_grad_cam.registry import METHODS, MethodInfo, get_method, register_method

import pytorch_grad_cam.metrics  # noqa: E402,F401  (pytorch_grad_cam.metrics.road etc.)

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
]
