from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("gradcam")
class GradCAM(BaseCAM):
    """Grad-CAM: channels weighted by their spatially averaged gradient.

    weights_k = mean_ij dY/dA_k(i, j);  map = ReLU(sum_k weights_k * A_k)

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391
    """

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        return grads.flatten(2).mean(dim=2)
