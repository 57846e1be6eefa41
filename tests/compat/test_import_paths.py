"""Every module of grad-cam 1.5.7 imports, with every public name it
defines: code written for 1.5.7 finds what it imports.

The table lists each module of the grad-cam 1.5.7 source distribution
with the functions, classes and constants it defines at its top level
(for the package itself, the names its ``__init__`` imports).
"""
import importlib

import pytest

RELEASE_1_5_7 = {
    'pytorch_grad_cam': ('GradCAM', 'FinerCAM', 'ShapleyCAM', 'FEM', 'HiResCAM', 'GradCAMElementWise',
        'AblationLayer', 'AblationLayerVit', 'AblationLayerFasterRCNN', 'AblationCAM', 'XGradCAM',
        'GradCAMPlusPlus', 'ScoreCAM', 'LayerCAM', 'EigenCAM', 'EigenGradCAM', 'KPCA_CAM', 'RandomCAM',
        'FullGrad', 'GuidedBackpropReLUModel', 'SegEigenCAM', 'ActivationsAndGradients', 'RefineCAM',
        'SESS', 'DeepFeatureFactorization', 'run_dff_on_image'),
    'pytorch_grad_cam.ablation_cam': ('AblationCAM',),
    'pytorch_grad_cam.ablation_cam_multilayer': ('AblationLayer', 'replace_layer_recursive', 'AblationCAM'),
    'pytorch_grad_cam.ablation_layer': ('AblationLayer', 'AblationLayerVit', 'AblationLayerFasterRCNN'),
    'pytorch_grad_cam.activations_and_gradients': ('ActivationsAndGradients',),
    'pytorch_grad_cam.base_cam': ('BaseCAM',),
    'pytorch_grad_cam.eigen_cam': ('EigenCAM',),
    'pytorch_grad_cam.eigen_grad_cam': ('EigenGradCAM',),
    'pytorch_grad_cam.feature_factorization': (),
    'pytorch_grad_cam.feature_factorization.deep_feature_factorization': ('dff',
        'DeepFeatureFactorization', 'run_dff_on_image'),
    'pytorch_grad_cam.fem': ('FEM',),
    'pytorch_grad_cam.finer_cam': ('FinerCAM', 'DEFAULT_COMPARISON_CATEGORIES'),
    'pytorch_grad_cam.fullgrad_cam': ('FullGrad',),
    'pytorch_grad_cam.grad_cam': ('GradCAM',),
    'pytorch_grad_cam.grad_cam_elementwise': ('GradCAMElementWise',),
    'pytorch_grad_cam.grad_cam_plusplus': ('GradCAMPlusPlus',),
    'pytorch_grad_cam.guided_backprop': ('GuidedBackpropReLU', 'GuidedBackpropReLUasModule',
        'GuidedBackpropReLUModel'),
    'pytorch_grad_cam.hirescam': ('HiResCAM',),
    'pytorch_grad_cam.kpca_cam': ('KPCA_CAM',),
    'pytorch_grad_cam.layer_cam': ('LayerCAM',),
    'pytorch_grad_cam.metrics': (),
    'pytorch_grad_cam.metrics.arcc': ('batch_pearson_coherency', 'Complexity', 'Coherency', 'ARCC'),
    'pytorch_grad_cam.metrics.cam_mult_image': ('multiply_tensor_with_cam',
        'CamMultImageConfidenceChange', 'DropInConfidence', 'IncreaseInConfidence'),
    'pytorch_grad_cam.metrics.perturbation_confidence': ('PerturbationConfidenceMetric',
        'RemoveMostRelevantFirst', 'RemoveLeastRelevantFirst', 'AveragerAcrossThresholds'),
    'pytorch_grad_cam.metrics.road': ('NoisyLinearImputer', 'ROADMostRelevantFirst',
        'ROADLeastRelevantFirst', 'ROADMostRelevantFirstAverage', 'ROADLeastRelevantFirstAverage',
        'ROADCombined', 'neighbors_weights'),
    'pytorch_grad_cam.random_cam': ('RandomCAM',),
    'pytorch_grad_cam.refine_cam': ('RefineCAM',),
    'pytorch_grad_cam.score_cam': ('ScoreCAM',),
    'pytorch_grad_cam.seg_eigen_cam': ('SegEigenCAM',),
    'pytorch_grad_cam.sess': ('SESS', 'sliding_window', 'window_starts'),
    'pytorch_grad_cam.shapley_cam': ('ShapleyCAM',),
    'pytorch_grad_cam.sobel_cam': ('sobel_cam',),
    'pytorch_grad_cam.utils': (),
    'pytorch_grad_cam.utils.find_layers': ('replace_layer_recursive', 'replace_all_layer_type_recursive',
        'find_layer_types_recursive', 'find_layer_predicate_recursive'),
    'pytorch_grad_cam.utils.image': ('preprocess_image', 'deprocess_image', 'show_cam_on_image',
        'create_labels_legend', 'show_factorization_on_image', 'scale_cam_image',
        'scale_accross_batch_and_channels'),
    'pytorch_grad_cam.utils.model_targets': ('ClassifierOutputTarget', 'ClassifierOutputSoftmaxTarget',
        'ClassifierOutputReST', 'BinaryClassifierOutputTarget', 'SoftmaxOutputTarget',
        'RawScoresOutputTarget', 'SemanticSegmentationTarget', 'FasterRCNNBoxScoreTarget',
        'FinerWeightedTarget'),
    'pytorch_grad_cam.utils.reshape_transforms': ('fasterrcnn_reshape_transform',
        'swinT_reshape_transform', 'vit_reshape_transform'),
    'pytorch_grad_cam.utils.svd_on_activations': ('get_2d_projection', 'get_2d_projection_kernel',
        'get_2d_projection_with_sign_correction'),
    'pytorch_grad_cam.xgrad_cam': ('XGradCAM',),
}


@pytest.mark.parametrize("module", sorted(RELEASE_1_5_7))
def test_every_module_and_name_of_1_5_7_imports(module):
    imported = importlib.import_module(module)
    missing = [name for name in RELEASE_1_5_7[module] if not hasattr(imported, name)]
    assert missing == []


def test_from_import_of_the_package_names():
    namespace: dict = {}
    exec("from pytorch_grad_cam import " + ", ".join(RELEASE_1_5_7["pytorch_grad_cam"]), namespace)
    assert all(callable(namespace[name]) for name in RELEASE_1_5_7["pytorch_grad_cam"])
