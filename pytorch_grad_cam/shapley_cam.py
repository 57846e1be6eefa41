from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.registry import register_method


@register_method("shapleycam")
class ShapleyCAM(BaseCAM):
    """ShapleyCAM: Grad-CAM weights from the gradient corrected by the Hessian.

    weights_k = mean_ij (g - 1/2 * H A)_k(i, j), with g = dY/dA and H A the
    Hessian-vector product d(g . A)/dA (A held fixed in the product);
    map = ReLU(sum_k weights_k * A_k)

    A second-order Taylor approximation of the Shapley value of each
    activation with respect to the target score: where the network after
    the target layer is piecewise linear for the score (ReLU layers, a
    logit) H A vanishes and the weights equal Grad-CAM's. The paper pairs
    it with the ReST target ``ClassifierOutputReST(category)`` (logit minus
    cross-entropy), whose softmax term makes the Hessian non-zero; the
    default target stays the top class's logit, as for every method.

    The Hessian-vector product comes from double backpropagation with
    torch.autograd: the first gradient is taken with ``create_graph=True``
    and differentiated again against the detached activations
    (``torch.autograd.grad(g, A, grad_outputs=A)``). Only the layers after
    the target layer take part, and no parameter gets a ``.grad``. The
    forward pass runs with the math backend of scaled dot-product
    attention, because the fused attention kernels have no second
    derivative (Vision Transformers).

    Cai, "CAMs as Shapley Value-based Explainers", The Visual Computer
    2025, https://arxiv.org/abs/2501.06261
    """

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor:
        with sdpa_kernel([SDPBackend.MATH]):
            return super().forward(input_tensor, targets, eigen_smooth)

    def compute_gradients(self, scores: torch.Tensor,
                          inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        inputs = list(inputs)
        if not scores.requires_grad:
            return [torch.zeros_like(x) for x in inputs]
        grads = torch.autograd.grad(scores.sum(), inputs, create_graph=True, allow_unused=True)
        results: list[torch.Tensor] = []
        for x, g in zip(inputs, grads):
            if g is None:
                results.append(torch.zeros_like(x))
                continue
            hvp = None
            if g.requires_grad:
                # H A of this layer alone: d(g . A) / dA with A held fixed in the product
                hvp, = torch.autograd.grad(g, x, grad_outputs=x.detach(), allow_unused=True,
                                           retain_graph=True)
            results.append(g.detach() if hvp is None else (g - 0.5 * hvp).detach())
        return results

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        assert grads is not None  # uses_gradients: the base step passes the gradients
        return grads.flatten(2).mean(dim=2)
