"""AttentionCAM: what the methods that explain a Vision Transformer through
its attention probabilities share (LeGrad, attention rollout,
gradient-weighted attention).

They run BaseCAM's steps with the transformer blocks as target layers:

- **record**: one forward pass with the attention probabilities of the
  target blocks captured (``pytorch_grad_cam.attention``); the model is
  not changed;
- the **activations** of the blocks are their attention probabilities
  A_l (B x heads x N x N), so that the **gradients** step, BaseCAM's one
  ``torch.autograd.grad``, gives d(score)/dA_l;
- the **maps** step is the method's idea, one override,
  :meth:`AttentionCAM.token_relevance` (attentions and gradients ->
  one relevance per token, B x N); the prefix tokens (class,
  distillation, register) are dropped, the patch tokens laid out on the
  patch grid and the map scaled like every method's (``scale_cam_image``:
  min-max to [0, 1], bilinear to the input size).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.attention import (
    AttentionCapture,
    Transformer,
    capture_attention,
    find_transformer,
    patch_grid,
)
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.scoring import describe
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.warn import warn_at_caller

__all__ = ["AttentionCAM"]

_CAPTURE = "attention_capture"


class AttentionCAM(BaseCAM):
    """Base class of the methods that explain a Vision Transformer through
    the attention probabilities of its blocks.

    Args:
        model: a Vision Transformer of a supported family, or a module
            that contains one (``pytorch_grad_cam.attention``); anything
            else raises ValueError here, before any forward pass.
        target_layers: the transformer blocks to use (modules of the model
            or layer paths such as ``"encoder.layers[-1]"``), in any order
            (they are used in the order the forward pass runs them); left
            out: every block of the model.
        reshape_transform: not used (the layout of the attention
            probabilities is known); a UserWarning says so, so that the
            object can be made like every other method's.
        **kwargs: BaseCAM's other arguments (``output_selector``,
            ``tta_transforms``, ``batch_size``, ...).

    ``eigen_smooth`` does not apply (there are no channels to project) and
    raises ValueError; ``aug_smooth`` works as for every method.
    """

    #: the capture's options (see ``attention.capture_attention``)
    detach_block_inputs = False
    keep_block_outputs = False
    #: the target blocks when ``target_layers`` is left out: ``"all"`` of
    #: them, or only the ``"last"``
    default_blocks = "all"
    made_without_channels = "makes its map from attention probabilities"
    #: what the map is made from, for the command line's header
    reads = "the attention of every transformer block"

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None, **kwargs: Any) -> None:
        #: the Vision Transformer found in the model (its family, blocks, head)
        self.transformer: Transformer = find_transformer(model)
        wanted = kwargs.get("uses_gradients")
        if wanted is not None and bool(wanted) != type(self).uses_gradients:
            raise ValueError(f"uses_gradients={wanted!r}: {type(self).__name__} "
                             f"{'needs' if type(self).uses_gradients else 'takes no'} gradients; "
                             "leave uses_gradients out")
        defaulted = target_layers is None and kwargs.get("target_layer") is None
        if defaulted:
            target_layers = list(self.transformer.blocks) if self.default_blocks == "all" \
                else [self.transformer.blocks[-1]]
        super().__init__(model, target_layers, None, **kwargs)
        if reshape_transform is not None:
            warn_at_caller(f"{type(self).__name__} ignores reshape_transform: it reads the "
                           "attention probabilities of the transformer blocks, whose layout it "
                           "knows", UserWarning)
        if defaulted:
            self.target_layers_source = "table"
        #: the indices of the target blocks among the model's blocks, in
        #: forward order (``target_layers`` is reordered to match)
        self.block_indices: list[int] = self._block_indices(self.target_layers)
        self.target_layers = [self.transformer.blocks[i] for i in self.block_indices]

    def _block_indices(self, layers: Sequence[torch.nn.Module]) -> list[int]:
        names = {id(module): name for name, module in self.model.named_modules()}
        blocks = ", ".join(names.get(id(b), "?") for b in self.transformer.blocks[:2])
        default = (f"all {len(self.transformer.blocks)}" if self.default_blocks == "all"
                   else "the last")
        indices: dict[int, int] = {}
        for position, layer in enumerate(layers):
            index = self.transformer.block_index(layer)
            if index is None:
                raise ValueError(
                    f"target_layers[{position}] ({names.get(id(layer), describe(layer))}, a "
                    f"{type(layer).__name__}) is not a transformer block of "
                    f"{self.transformer.name}; {type(self).__name__} explains whole blocks: "
                    f"give blocks ({blocks}, ...) or leave target_layers out to use {default}")
            if index in indices:
                raise ValueError(f"target_layers[{position}] repeats target_layers"
                                 f"[{indices[index]}] (block {index}); give each block once")
            indices[index] = position
        return sorted(indices)

    # ------------------------------------------------------------- steps
    def capture_options(self) -> dict[str, Any]:
        """The options of this method's attention capture."""
        return {"detach_inputs": self.detach_block_inputs,
                "leaf_input": self.uses_gradients and not self.detach_block_inputs,
                "keep_outputs": self.keep_block_outputs}

    def capture(self) -> AttentionCapture:
        """What the forward pass of the current call captured."""
        return current_call().state[_CAPTURE]

    def forward(self, input_tensor: torch.Tensor, targets: Any,
                eigen_smooth: bool = False) -> torch.Tensor:
        try:
            context = current_call()
        except RuntimeError:  # called directly: BaseCAM opens a context and comes back
            return super().forward(input_tensor, targets, eigen_smooth)
        try:
            return super().forward(input_tensor, targets, eigen_smooth)
        finally:
            captured = context.state.pop(_CAPTURE, None)
            if captured is not None:
                captured.release()  # the attention tensors and their graph, at once

    def record(self, input_tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Step 2: one forward pass with the attention probabilities of the
        target blocks captured (with autograd for the gradient methods,
        under ``torch.inference_mode`` otherwise)."""
        context = current_call()
        needs_graph = self.uses_gradients or self.compute_input_gradient
        grad_context = torch.enable_grad() if needs_graph else torch.inference_mode()
        with torch.inference_mode(False), grad_context:
            if self.compute_input_gradient:
                input_tensor = input_tensor.clone().requires_grad_(True)
            with capture_attention(self.transformer, self.block_indices,
                                   **self.capture_options()) as captured:
                context.state[_CAPTURE] = captured
                raw = self.model(input_tensor)
        for position, attention in enumerate(captured.attentions):
            if attention is None:
                index = self.block_indices[position]
                how = ("never ran in the model's forward pass" if captured.runs[position] == 0
                       else "ran, but its attention probabilities could not be captured")
                raise ValueError(f"target_layers[{position}] (block {index} of "
                                 f"{self.transformer.name}) {how}")
        return input_tensor, raw

    def recorded_activations(self) -> list[Any]:
        """The attention probabilities of the target blocks (B x heads x N x
        N each), the tensors the gradients are taken with respect to."""
        return list(self.capture().attentions)

    def compute_cam_per_layer(self, input_tensor: torch.Tensor, targets: list[Callable],
                              activations: list[Any], grads: list[Any],
                              eigen_smooth: bool) -> torch.Tensor:
        """Step 6: one map from all target blocks: the tokens' relevance
        (``token_relevance``), the prefix tokens dropped, the patch tokens
        on the patch grid, ReLU, min-max normalised and scaled to the input
        size (B x 1 x H x W)."""
        relevance = self.token_relevance(activations, grads)
        patches = relevance[:, self.transformer.num_prefix_tokens:]
        size = tuple(input_tensor.shape[2:])
        rows, columns = patch_grid(patches.shape[1], size)
        cam = patches.reshape(patches.shape[0], rows, columns).float()
        cam = torch.nan_to_num(cam, nan=0.0, posinf=torch.finfo(torch.float32).max, neginf=0.0)
        return scale_cam_image(torch.relu(cam), size)[:, None]

    # ------------------------------------------------------ method hooks
    def empty_map_message(self, images: list[int]) -> str:
        return (f"the map is all zeros for image(s) {images}: every patch token has the same "
                "relevance, or (for the gradient methods) the target score's gradient with "
                "respect to the attention is nowhere positive, for example because the score "
                "does not depend on the input (a classifier left at its initial zeros, as "
                "torchvision's ViT head starts). Try another target or another method")

    def token_relevance(self, attentions: list[torch.Tensor],
                        grads: list[torch.Tensor | None]) -> torch.Tensor:
        """The method's idea: B x N, one relevance per token (prefix tokens
        included), from the target blocks' attention probabilities
        (B x heads x N x N, in forward order) and, for the gradient
        methods, the gradients of the summed target scores with respect to
        them."""
        raise NotImplementedError

    def query_row(self, matrix: torch.Tensor) -> torch.Tensor:
        """B x N x N -> B x N: the class token's row (its relevance to every
        token), or the mean over the rows for a model without a class
        token."""
        return matrix[:, 0] if self.transformer.class_token else matrix.mean(dim=1)

    @staticmethod
    def identity(attention: torch.Tensor) -> torch.Tensor:
        """The B x N x N identity, in the attention's dtype and device."""
        batch, tokens = attention.shape[0], attention.shape[-1]
        eye = torch.eye(tokens, dtype=attention.dtype, device=attention.device)
        return eye.expand(batch, tokens, tokens)
