"""AttnLRP: Layer-wise Relevance Propagation through a Vision Transformer's
attention, in one forward and one backward pass (the rules are in
``pytorch_grad_cam.attnlrp_rules``)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.activations_and_gradients import hook_handles, owned_hooks
from pytorch_grad_cam.attention import _tokens, patch_grid
from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.attnlrp_rules import lrp_rules
from pytorch_grad_cam.call_context import PerThread, current_call
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.utils.image import scale_cam_image

__all__ = ["AttnLRP"]

_TOKENS = "attnlrp_tokens"


@register_method("attnlrp", attention=True)
class AttnLRP(AttentionCAM):
    r"""AttnLRP: the relevance of every input pixel, propagated back through the attention.

    Layer-wise Relevance Propagation with the attention-aware rules of
    AttnLRP, computed as "Gradient x Input" with modified gradients: the
    relevance of the target score S starts at the output (``R = S``) and
    flows back through the network, every operation passing it on by its
    rule; the relevance of a tensor x is

    .. math::

        R(x) = x \odot \tilde\nabla_x S

    where :math:`\tilde\nabla` is the gradient with the rules applied in
    the backward pass (``pytorch_grad_cam.attnlrp_rules``):

    - linear layers, the patch embedding, residual additions: epsilon rule
      (epsilon -> 0), the plain gradient;
    - LayerNorm / RMSNorm: identity rule on the normalisation,
      ``y = (x - mean(x)) / std(x).detach() * w + b``;
    - GELU, SiLU and other element-wise activations: identity rule,
      ``R(x) = R(f(x))`` (gradient ``f(x) / (x + 1e-10)``);
    - softmax: ``R(x_i) = x_i (R_i - s_i sum_j R_j)`` (Proposition 3.1 of the
      paper), which is ``x_i`` times the plain gradient;
    - ``Q K^T`` and ``A V``: uniform rule, each factor receives half the
      relevance of the product (gradient x 0.5).

    Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin, Samek, "AttnLRP:
    Attention-Aware Layer-Wise Relevance Propagation for Transformers",
    ICML 2024, https://arxiv.org/abs/2402.05602; the rules as the authors'
    package ``lxt`` 2.1 implements them (``lxt.efficient``), with the
    epsilon rule on the linear layers (the paper's Vision Transformer
    figures use zennit's Gamma rule there, a choice ``lxt`` leaves to the
    user).

    The map: with ``target_layers`` left out, the relevance of the input
    pixels summed over the colour channels, at the input resolution; with
    ``target_layers`` (transformer blocks), the relevance of those blocks'
    output tokens summed over the channels, the patch tokens on the patch
    grid (averaged over the given blocks), scaled to the input size. LRP
    relevance is signed; the map keeps the positive relevance (ReLU), min-max
    normalised to [0, 1] like every method's map. The signed relevance of
    the calling thread's last call is ``cam.relevance`` (a float32 tensor:
    B x H x W for the pixels, B x blocks x rows x columns for the tokens;
    with K targets per image, row ``i * K + k``). Its sum over the pixels
    approximates the target score (the rules conserve relevance except
    where biases absorb it and at the softmax).

    Cost: one forward pass and one backward pass (to the input pixels),
    whatever the number of blocks. Nothing of the model is changed: the
    rules act through a ``torch.overrides.TorchFunctionMode`` active in the
    calling thread for the forward pass only, and forward hooks on
    composite activation modules (CLIP's QuickGELU) acting only in that
    thread.

    Args:
        model: a Vision Transformer of a supported family (torchvision,
            timm, Hugging Face ViT / DeiT / CLIP vision tower), or a module
            that contains one.
        target_layers: left out for the pixels' relevance; transformer
            blocks for the relevance of their output tokens.
        reshape_transform: not used (a UserWarning says so).
        **kwargs: BaseCAM's other arguments.
    """

    made_without_channels = "makes its map by relevance propagation to the pixels"
    reads = "the relevance of the input pixels, propagated through every transformer block"

    #: the signed relevance of the calling thread's last call (see above)
    relevance: PerThread[torch.Tensor | None] = PerThread(None)

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None, **kwargs: Any) -> None:
        #: True when the map is the relevance of the target blocks' tokens
        self.of_tokens = target_layers is not None or kwargs.get("target_layer") is not None
        super().__init__(model, target_layers, reshape_transform, **kwargs)

    def record(self, input_tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Step 2: one forward pass under AttnLRP's rules, from a copy of the
        input that requires grad (the user's tensor is left alone), with
        the target blocks' output tokens recorded when they are the map's."""
        self.transformer.check_implementation()
        context = current_call()
        kept: list[torch.Tensor | None] = [None] * len(self.block_indices)
        with torch.inference_mode(False), torch.enable_grad():
            pixels = input_tensor.detach().clone().requires_grad_(True)
            with owned_hooks() as mine, hook_handles() as handles:

                def keep(position: int) -> Callable[..., None]:
                    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
                        if mine():
                            kept[position] = _tokens(output)
                    return hook

                if self.of_tokens:
                    for position, index in enumerate(self.block_indices):
                        block = self.transformer.blocks[index]
                        handles.append(block.register_forward_hook(keep(position)))
                with lrp_rules(self.model):
                    raw = self.model(pixels)
        for position, tokens in enumerate(kept if self.of_tokens else []):
            if tokens is None:
                raise ValueError(f"target_layers[{position}] (block "
                                 f"{self.block_indices[position]} of {self.transformer.name}) "
                                 "never ran in the model's forward pass")
        context.state[_TOKENS] = [pixels] if not self.of_tokens else kept
        return pixels, raw

    def recorded_activations(self) -> list[Any]:
        """The tensors whose relevance is the map: the input pixels, or the
        target blocks' output tokens (B x N x C each)."""
        return list(current_call().state.pop(_TOKENS))

    def _check_layer_shapes(self, activations: Sequence[Any],
                            input_tensor: torch.Tensor) -> None:
        """Nothing to check: the layout of the pixels and tokens is known."""

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: list[Callable],
                              activations: list[Any], grads: list[Any],
                              eigen_smooth: bool) -> torch.Tensor:
        """Step 6: R = x * (modified gradient), summed over the channels;
        ``cam.relevance`` keeps it signed; the map is its ReLU, min-max
        normalised and scaled to the input size (B x 1 x H x W)."""
        size = tuple(input_tensor.shape[2:])
        if not self.of_tokens:
            relevance = (activations[0].float() * grads[0].float()).sum(dim=1)
            mean = relevance
        else:
            grids = []
            for tokens, grad in zip(activations, grads):
                per_token = (tokens.float() * grad.float()).sum(dim=-1)
                patches = per_token[:, self.transformer.num_prefix_tokens:]
                rows, columns = patch_grid(patches.shape[1], size)
                grids.append(patches.reshape(patches.shape[0], rows, columns))
            relevance = torch.stack(grids, dim=1)
            mean = relevance.mean(dim=1)
        self.relevance = relevance.detach()
        cam = torch.nan_to_num(mean, nan=0.0, posinf=torch.finfo(torch.float32).max, neginf=0.0)
        return scale_cam_image(torch.relu(cam), size)[:, None]

    def empty_map_message(self, images: list[int]) -> str:
        where = "token of the target blocks" if self.of_tokens else "input pixel"
        return (f"the map is all zeros for image(s) {images}: no {where} has positive "
                "relevance for the target (cam.relevance holds the signed relevance), for "
                "example because the score does not depend on the input (a classifier left at "
                "its initial zeros, as torchvision's ViT head starts). Try another target")
