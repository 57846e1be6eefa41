import torch

from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus
from pytorch_grad_cam.meta_cam import MetaCAM
from pytorch_grad_cam.registry import register_method


@register_method("refinecam")
class RefineCAM(MetaCAM):
    """RefineCAM: the product of one method's maps at several layers.

    map = normalise(prod_l M_l), where M_l is the base method's map of
    target layer l, ReLU'd, normalised to [0, 1] and upsampled to the
    input size

    Give several target layers from coarse to fine (for example the last
    block of every stage): the deep layer's map says where the class is,
    and multiplying by the shallow layers' maps, which are detailed but
    noisy, keeps their detail only there. With one target layer the map is
    the base method's.

    Arguments besides those of BaseCAM:
        base_method: the CAM class computing every layer's map (default
            GradCAMPlusPlus); its extra arguments can be passed too.

    Domeniconi, Stramiglio, Lombardi & Salti, "How to Evaluate and Refine
    your CAM", 2026, https://arxiv.org/abs/2605.14641

    All layers are explained in one forward (and backward) pass, where
    grad-cam 1.5.7 runs the base method once per layer; the maps are the
    same.
    """

    @staticmethod
    def default_base_method() -> type:
        return GradCAMPlusPlus

    def aggregate_multi_layers(self, cam_per_layer: torch.Tensor) -> torch.Tensor:
        return super().aggregate_multi_layers(cam_per_layer.prod(dim=1, keepdim=True))
