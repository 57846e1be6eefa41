import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import given

#: how the heads' attention probabilities are fused into one matrix per block
HEAD_FUSIONS = ("mean", "max", "min")


@register_method("attentionrollout", class_specific=False, attention=True)
class AttentionRollout(AttentionCAM):
    r"""Attention rollout: the attention flow from every patch into the class token.

    How much every patch flows into the class token through the product of
    the blocks' attention, with the residual connection as an identity.

    With A_l the attention probabilities of block l (B x heads x N x N)
    fused over the heads (``head_fusion``: mean, max or min), the weakest
    ``discard_ratio`` of its entries set to zero:

    .. math::

        \hat A_l = \frac{\tfrac12 (A_l + I)}{\mathrm{rowsum}(\tfrac12 (A_l + I))},
        \qquad R = \hat A_L \hat A_{L-1} \cdots \hat A_1

    over the target blocks in forward order; the map is the class token's
    row of R over the patch tokens (for a model without a class token, the
    mean of the rows), on the patch grid, min-max normalised and scaled to
    the input size. The map does not depend on the target (the targets are
    still checked): the method is class-agnostic. No gradients: it runs
    under ``torch.inference_mode``.

    Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020,
    https://arxiv.org/abs/2005.00928

    ``discard_ratio``: per image and block, the ``int(discard_ratio *
    count)`` smallest entries of the fused matrix are set to zero, where
    the entries in the class token's column (every token's attention to
    the class token) are never discarded and not counted; a model without
    a class token has every entry counted. (Jacob Gildenblat's widely used
    implementation, vit-explain, means to keep the class token too but
    protects only the class token's attention to itself, entry (0, 0), for
    the first image of the batch; the rows are renormalised here, where it
    divides by the row sums along the wrong axis.)

    Per family, the attention probabilities are captured as described in
    ``pytorch_grad_cam.attention``; the class token is token 0 of every
    supported family (distillation and register tokens are dropped from
    the map with it).

    Args:
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.
        discard_ratio: the fraction of each fused matrix's entries set to
            zero, in [0, 1).
    """

    uses_gradients = False

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None, *, head_fusion: str = "mean",
                 discard_ratio: float = 0.0, **kwargs: Any) -> None:
        if not isinstance(head_fusion, str) or head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"head_fusion must be one of {', '.join(map(repr, HEAD_FUSIONS))}, "
                             f"got {given(head_fusion)}")
        if isinstance(discard_ratio, bool) or not isinstance(discard_ratio, numbers.Real):
            raise TypeError(f"discard_ratio must be a number in [0, 1), got {given(discard_ratio)}")
        if not 0 <= float(discard_ratio) < 1:
            raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.head_fusion: str = head_fusion
        self.discard_ratio: float = float(discard_ratio)

    def fuse(self, attention: torch.Tensor) -> torch.Tensor:
        """B x heads x N x N -> B x N x N, fused over the heads."""
        if self.head_fusion == "mean":
            return attention.mean(dim=1)
        if self.head_fusion == "max":
            return attention.amax(dim=1)
        return attention.amin(dim=1)

    def discard(self, fused: torch.Tensor) -> torch.Tensor:
        """The weakest ``discard_ratio`` of every image's entries set to zero
        (the class token's column kept)."""
        batch, tokens, _ = fused.shape
        count = tokens * tokens - (tokens if self.transformer.class_token else 0)
        discarded = int(self.discard_ratio * count)
        if discarded == 0:
            return fused
        flat = fused.reshape(batch, tokens * tokens)
        ranked = flat
        if self.transformer.class_token:
            protected = torch.zeros(tokens, tokens, dtype=torch.bool, device=fused.device)
            protected[:, 0] = True
            ranked = flat.masked_fill(protected.flatten(), float("inf"))
        weakest = ranked.topk(discarded, dim=1, largest=False).indices
        return flat.scatter(1, weakest, 0.0).reshape(batch, tokens, tokens)

    def token_relevance(self, attentions: list[torch.Tensor],
                        grads: list[torch.Tensor | None]) -> torch.Tensor:
        # the map is one row of the product M_L ... M_1 (the class token's, or
        # the mean of the rows): that row times M_L, then M_{L-1}, ..., a
        # vector-matrix product per block instead of a matrix product
        row: torch.Tensor | None = None
        for attention in reversed(attentions):
            fused = self.discard(self.fuse(attention.float()))
            mixed = (fused + self.identity(fused)) / 2
            mixed = mixed / mixed.sum(dim=-1, keepdim=True)
            row = self.query_row(mixed) if row is None else torch.bmm(row[:, None], mixed)[:, 0]
        assert row is not None  # at least one target block
        return row
