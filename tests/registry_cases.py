"""The lists of methods the tests are generated from, read from the registry.

``tests/conftest.py`` turns every entry of :data:`REGISTRY_PARAMS` into a
parameter: a test that takes an argument of that name runs once for every
registered method with those traits (names as the command line spells
them), so a new method goes through the guarantees every method owes
without anyone editing a list. A test that needs one of the lists itself
(to build every method's CAM at once, or a matrix of cases) imports it from
here (``from registry_cases import REGISTRY_PARAMS``; pytest puts tests/ on
the import path through tests/conftest.py); no test file keeps a list of
methods of its own.
"""
from collections.abc import Callable

from pytorch_grad_cam.registry import MethodInfo, get_method, registered_methods


def method_names(**traits: bool) -> list[str]:
    """The registered methods with these traits, in the order of ``METHODS``."""
    return [info.name for info in registered_methods(**traits)]


def feature_map_names_where(predicate: Callable[[MethodInfo], bool]) -> list[str]:
    """The methods for feature maps (not attention) for which ``predicate``
    holds: for the traits ``registered_methods`` does not filter by."""
    return [info.name for info in registered_methods(attention=False) if predicate(info)]


def refuses_eigen_smooth(name: str) -> bool:
    """Whether the method's map has no channels for ``eigen_smooth`` to
    project, so that ``eigen_smooth=True`` raises ValueError: the
    black-box methods (RISE) and the attention methods."""
    info = get_method(name)
    return info.black_box or info.attention


#: the start of the ValueError of a method that refuses eigen_smooth
EIGEN_REFUSED = r"^eigen_smooth=True: .* no channels to project"


REGISTRY_PARAMS: dict[str, list[str]] = {
    # the methods that explain any network with feature maps (the tests run
    # them on small CNNs)
    "method_name": method_names(attention=False),
    "gradient_method": method_names(uses_gradients=True, attention=False),
    "perturbation_method": method_names(perturbation=True, attention=False),
    "class_specific_method": method_names(class_specific=True, attention=False),
    "class_agnostic_method": method_names(class_specific=False, attention=False),
    # the methods with a batch loop (``BaseCAM.chunks``): perturbation passes
    # or noisy copies
    "batch_loop_method": method_names(extra_passes=True),
    # the methods that explain the whole network, not the target layers
    # (FullGrad: every bias; RISE: the model as a black box)
    "whole_network_method": feature_map_names_where(lambda info: not info.uses_target_layers),
    # maps a loss can be taken of (cam.differentiable_maps), and the rest
    "differentiable_method": feature_map_names_where(lambda info: info.cls.differentiable),
    "non_differentiable_method": feature_map_names_where(lambda info: not info.cls.differentiable),
    # the maps that should lie on the object of the target class of a
    # trained classifier: class-specific and not random by design; the
    # sampling methods (SSCAM, ISCAM: a Score-CAM pass over every channel per
    # sample) are left out for time, tests/methods/test_sscam_iscam.py
    # checks them on a smaller photo; the black-box methods (RISE: 1000
    # masked copies of each photo) are checked on the trained shapes CNN
    # instead (tests/quality/test_quality.py)
    "localising_method": feature_map_names_where(
        lambda info: info.class_specific and not info.randomised and not info.sampling
        and not info.black_box),
    # the localising methods that run no perturbation passes (one forward
    # pass, or a few noisy copies): cheap enough for more photos and layers
    "localising_single_pass_method": method_names(class_specific=True, randomised=False,
                                                  sampling=False, perturbation=False,
                                                  attention=False),
    # the class-agnostic maps that are not random: what the layer responds
    # to most, whatever the target (on a photo: the dominant object)
    "dominant_object_method": method_names(class_specific=False, randomised=False,
                                           attention=False),
    # every method but the sampling ones (SSCAM, ISCAM: tens of Score-CAM
    # runs per image), attention methods included
    "non_sampling_method": method_names(sampling=False),
    # every registered method
    "any_method": method_names(),
    # the methods that explain a Vision Transformer's attention (registry
    # trait ``attention``); the tests run them on the tiny Vision
    # Transformers of every supported family (the ``vit`` fixture)
    "attention_method": method_names(attention=True),
    "attention_gradient_method": method_names(attention=True, uses_gradients=True),
    "attention_class_specific_method": method_names(attention=True, class_specific=True),
    "attention_class_agnostic_method": method_names(attention=True, class_specific=False),
}
