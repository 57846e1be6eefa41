from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.activations_and_gradients import output_leaves, rebuild_output
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.grad_cam_plusplus import plusplus_weights
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import check_non_negative, check_positive_int, check_seed


@register_method("smoothgradcam++", extra_passes=True)
class SmoothGradCAMPlusPlus(BaseCAM):
    """Smooth Grad-CAM++: Grad-CAM++ with gradients averaged over noisy copies of the input.

    For n copies x_s = x + N(0, sigma^2), with g_s = dY/dA at x_s::

        D1 = mean_s g_s,  D2 = mean_s g_s^2,  D3 = mean_s g_s^3;
        alpha_k(i, j) = D2 / (2 D2 + sum_ab A_k(a, b) * D3)  (0 where D2 = 0);
        weights_k = sum_ij alpha_k(i, j) * ReLU(D1(i, j));
        map = ReLU(sum_k weights_k * A_k), with A the activations of the clean input.

    The averaging (SmoothGrad) removes much of the gradients' noise.

    Arguments besides those of BaseCAM:
        num_samples: the number n of noisy copies per image (default 16).
        noise_level: sigma as a fraction of each image's value range
            (max - min), as in SmoothGrad (default 0.15).
        seed: the noise of every image is drawn from a generator seeded
            with it, so maps are reproducible and an image gets the same
            noise alone or in a batch; None draws from torch's global
            random generator.

    The noisy copies run ``batch_size`` at a time, with a progress bar.

    Omeiza, Speakman, Cintas & Weldemariam, "Smooth Grad-CAM++: An Enhanced
    Inference Level Visualization Technique for Deep Convolutional Neural
    Network Models", 2019, https://arxiv.org/abs/1908.01224; noise as in
    Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017,
    https://arxiv.org/abs/1706.03825
    """

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None, num_samples: int = 16,
                 noise_level: float = 0.15, seed: int | None = 0, **kwargs: Any) -> None:
        num_samples = check_positive_int("num_samples", num_samples)
        noise_level = check_non_negative("noise_level", noise_level)
        seed = check_seed(seed, allow_none=True)
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.num_samples = num_samples
        self.noise_level = noise_level
        self.seed = seed

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: list[Callable],
                              activations: list[torch.Tensor],
                              grads: list[torch.Tensor | None],
                              eigen_smooth: bool) -> torch.Tensor:
        current_call().state["moments"] = self._noisy_moments(input_tensor, targets)
        return super().compute_cam_per_layer(input_tensor, targets, activations, grads,
                                             eigen_smooth)

    def _noisy_moments(self, input_tensor: torch.Tensor,
                       targets: list[Callable]) -> list[list[Any]]:
        """Per target layer, the means of g, g^2 and g^3 over the noisy
        copies (raw layout of the layer's output, one row per image; a structure
        of tensors for a layer that returns one). An image explained for K
        targets (the call's ``group``) has K rows: its noisy copies run once,
        with one gradient per target from their graph."""
        context = current_call()
        group = context.group
        input_tensor = input_tensor[::group]  # the rows of an image share its input
        batch, n = input_tensor.shape[0], self.num_samples
        device, dtype = input_tensor.device, input_tensor.dtype
        flat = input_tensor.flatten(1)
        sigma = self.noise_level * (flat.amax(dim=1) - flat.amin(dim=1))
        generators: list[torch.Generator | None] = [None] * batch
        if self.seed is not None:
            generators = [torch.Generator(device=device).manual_seed(self.seed)
                          for _ in range(batch)]
        sums: list[list[list[torch.Tensor]]] | None = None  # layer, power, leaf
        templates: list[Any] = []
        for start, stop in self.chunks(batch * n, "SmoothGradCAM++"):
            images = [k // n for k in range(start, stop)]
            with torch.inference_mode(False):  # the copies must be able to enter autograd
                noise = torch.stack([torch.randn(input_tensor.shape[1:], generator=generators[b],
                                                 device=device, dtype=dtype) for b in images])
                index = torch.tensor(images, device=device)
                scale = sigma[index].reshape((-1,) + (1,) * (input_tensor.dim() - 1))
                noisy = input_tensor[index] + noise * scale
            _, raw = self.record(noisy)
            outputs = self.select_output(raw)
            for j in range(group):
                with torch.inference_mode(False), torch.enable_grad():
                    context.retain_graph = j < group - 1
                    scores = self.target_scores([targets[b * group + j] for b in images], outputs)
                    layer_grads = self.compute_gradients(scores, self.recorded_activations())
                # a layer's gradient may be a structure of tensors (a dict of FPN
                # levels): its moments are accumulated tensor by tensor
                leaves = [output_leaves(g) for g in layer_grads]
                if sums is None:
                    templates = list(layer_grads)
                    sums = [[[torch.zeros((batch * group,) + tuple(leaf.shape[1:]),
                                          dtype=torch.float32, device=leaf.device)
                              for leaf in layer] for _ in range(3)] for layer in leaves]
                rows = index * group + j
                for layer_sums, layer in zip(sums, leaves):
                    for power, totals in enumerate(layer_sums, start=1):
                        for total, leaf in zip(totals, layer):
                            total.index_add_(0, rows.to(leaf.device),
                                             leaf.detach().float().pow(power))
            context.recording = None  # the noisy copies' activations, at once
        context.retain_graph = False
        assert sums is not None  # at least one chunk ran
        return [[rebuild_output(template, [total / n for total in totals]) for totals in layer_sums]
                for template, layer_sums in zip(templates, sums)]

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        call = current_call()
        d1, d2, d3 = (self.layer_gradients(m, input_tensor)
                      for m in call.state["moments"][call.layer_index])
        return plusplus_weights(activations, d1, d2, d3)
