import torch

from pytorch_grad_cam.base_cam import BaseCAM


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++: gradients weighted per location by second/third order terms.

    alpha_k(i, j) = g^2 / (2 g^2 + sum_ab A_k(a, b) * g^3)   (0 where the
    denominator is 0), with g = dY/dA_k(i, j) and the exponential-score
    approximation of the paper;
    weights_k = sum_ij alpha_k(i, j) * ReLU(g(i, j)).

    Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep
    Convolutional Networks", WACV 2018, https://arxiv.org/abs/1710.11063
    """

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        grads_2 = grads.pow(2)
        grads_3 = grads_2 * grads
        sum_activations = activations.flatten(2).sum(dim=2)
        sum_activations = sum_activations.reshape(sum_activations.shape + (1,) * (grads.dim() - 2))
        eps = 1e-6
        denominator = 2 * grads_2 + sum_activations * grads_3 + eps
        alpha = grads_2 / denominator
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (alpha * torch.relu(grads)).flatten(2).sum(dim=2)
