"""The attention probabilities of Vision Transformers, for the methods that
explain them (LeGrad, attention rollout, gradient-weighted attention):
:func:`capture_attention`, one forward pass that records the attention
probabilities ``A`` (B x heads x queries x keys) of chosen blocks of a
Vision Transformer that ``models.vit_families.find_transformer`` found
(re-exported here with :class:`Transformer`, ``SUPPORTED_FAMILIES`` and
``main_tensor``; ``patch_grid`` is ``models.tokens.patch_grid``).

The captured ``A`` is the tensor the model multiplies with the values
(``A @ V``), so that a gradient with respect to it is the model's real
sensitivity, and the model's outputs are those of a plain forward pass.
Nothing of the user's model is changed, not even for the call: no
attribute, no config value, no forward method is switched. The capture
works with

- a ``torch.overrides.TorchFunctionMode``, active in the calling thread
  only and only for the forward pass, that sees the attention kernels the
  blocks call and computes them explicitly, as
  ``softmax(Q K^T * scale + mask) @ V`` with the module's own projections:
  ``F.multi_head_attention_forward`` of torchvision's
  ``nn.MultiheadAttention`` (which the blocks call with
  ``need_weights=False``; the weights it returns with ``need_weights=True``
  are averaged or reshaped copies, not the tensor of the product), and
  ``F.scaled_dot_product_attention`` of timm (``fused_attn=True``) and of
  Hugging Face's ``"sdpa"`` implementation;
- the tensors the model builds itself where it multiplies them: the
  output of timm's ``attn_drop`` module (``fused_attn=False``; in eval
  mode the probabilities themselves), and the output of the attention
  dropout (``F.dropout``) inside a Hugging Face attention module with the
  ``"eager"`` implementation;
- forward hooks and pre-hooks on the blocks and their attention modules
  for this one pass, acting only in the calling thread
  (``owned_hooks``), removed in ``finally``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pytorch_grad_cam.activations_and_gradients import owned_hooks
from pytorch_grad_cam.models.tokens import patch_grid
from pytorch_grad_cam.models.vit_families import (
    HF_IMPLEMENTATIONS,
    SUPPORTED_FAMILIES,
    Transformer,
    find_transformer,
    main_tensor,
)
from pytorch_grad_cam.scoring import describe

__all__ = ["SUPPORTED_FAMILIES", "HF_IMPLEMENTATIONS", "Transformer", "AttentionCapture",
           "find_transformer", "capture_attention", "patch_grid", "main_tensor"]


# ------------------------------------------------------------------ capture
@dataclass
class AttentionCapture:
    """What one forward pass under :func:`capture_attention` recorded.

    Attributes:
        attentions: per chosen block, the attention probabilities of its
            last call (B x heads x queries x keys), the tensor multiplied
            with the values; ``None`` if the block never ran.
        outputs: per chosen block, its output tokens (B x N x C) with
            ``keep_outputs``, else empty.
        last_output: the output tokens of the model's last block with
            ``keep_outputs`` (the input of the final norm and head).
        runs: per chosen block, how often its attention module ran.
    """

    attentions: list[torch.Tensor | None]
    outputs: list[torch.Tensor | None] = field(default_factory=list)
    last_output: torch.Tensor | None = None
    runs: list[int] = field(default_factory=list)
    current: int | None = None

    def release(self) -> None:
        """Drop the recorded tensors (and with them the autograd graph)."""
        self.attentions = [None] * len(self.attentions)
        self.outputs = [None] * len(self.outputs)
        self.last_output = None


_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    if scores.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(scores.float(), dim=-1).to(scores.dtype)
    return torch.softmax(scores, dim=-1)


def _masked(scores: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
    """Scores with a causal mask, a boolean mask (True: take part) or an
    additive float mask applied, as ``scaled_dot_product_attention`` does."""
    if is_causal:
        rows, columns = scores.shape[-2:]
        allowed = torch.ones(rows, columns, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return scores


class _Capture:
    """The per-call machinery of :func:`capture_attention`."""

    def __init__(self, record: AttentionCapture, kind: str,
                 edit: Callable[[int, torch.Tensor], torch.Tensor | None] | None) -> None:
        self.record = record
        self.kind = kind
        self.edit = edit
        self.stored_this_run = False

    # the tensor of the product --------------------------------------
    def store(self, probs: torch.Tensor) -> torch.Tensor:
        index = self.record.current
        assert index is not None
        if self.edit is not None:
            edited = self.edit(index, probs)
            if edited is not None:
                if not isinstance(edited, torch.Tensor) or edited.shape != probs.shape:
                    raise ValueError(f"edit must return None or a tensor of shape "
                                     f"{tuple(probs.shape)}, got {describe(edited)}")
                probs = edited
        self.record.attentions[index] = probs
        self.stored_this_run = True
        return probs

    def sdpa(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
             is_causal: bool = False, scale: float | None = None,
             enable_gqa: bool = False) -> torch.Tensor:
        """``F.scaled_dot_product_attention``, explicitly."""
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            repeat = query.shape[-3] // key.shape[-3]
            key = key.repeat_interleave(repeat, dim=-3)
            value = value.repeat_interleave(repeat, dim=-3)
        scale = query.shape[-1] ** -0.5 if scale is None else scale
        scores = _masked(torch.matmul(query, key.transpose(-2, -1)) * scale, attn_mask, is_causal)
        probs = _softmax(scores)
        if dropout_p > 0:
            probs = F.dropout(probs, p=dropout_p, training=True)
        return torch.matmul(self.store(probs), value)

    def mha(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``F.multi_head_attention_forward`` (inputs L x B x E), explicitly."""
        bound = _MHA_SIGNATURE.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        query, key, value = a["query"], a["key"], a["value"]
        unsupported = [name for name in ("bias_k", "bias_v", "key_padding_mask", "static_k",
                                         "static_v") if a[name] is not None]
        if a["add_zero_attn"] or a["use_separate_proj_weight"] or query.dim() != 3:
            unsupported.append("add_zero_attn / separate projections / unbatched input")
        if unsupported:
            raise ValueError(f"nn.MultiheadAttention called with {', '.join(unsupported)}: its "
                             "attention probabilities cannot be captured")
        length, batch, embed = query.shape
        heads = int(a["num_heads"])
        head_dim = embed // heads
        weight, bias = a["in_proj_weight"], a["in_proj_bias"]
        # batch first (nn.MultiheadAttention passes transposed views of its
        # batch-first inputs): contiguous projections, as timm lays them out
        if query is key and key is value:
            qkv = F.linear(query.transpose(0, 1), weight, bias)
            q, k, v = qkv.reshape(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        else:
            weights = weight.chunk(3)
            biases = bias.chunk(3) if bias is not None else (None, None, None)
            q, k, v = (F.linear(t.transpose(0, 1), w, b)
                       .reshape(batch, t.shape[0], heads, head_dim).transpose(1, 2)
                       for t, w, b in zip((query, key, value), weights, biases))
        attn_mask = a["attn_mask"]
        if attn_mask is not None and attn_mask.dim() == 3:  # (B * heads) x L x S
            attn_mask = attn_mask.reshape(batch, heads, *attn_mask.shape[1:])
        scores = _masked(torch.matmul(q * head_dim ** -0.5, k.transpose(-2, -1)), attn_mask,
                         bool(a["is_causal"]) and attn_mask is None)
        probs = _softmax(scores)
        if a["dropout_p"] > 0 and a["training"]:
            probs = F.dropout(probs, p=a["dropout_p"], training=True)
        probs = self.store(probs)
        context = torch.matmul(probs, v).transpose(1, 2).reshape(batch, length, embed)
        output = F.linear(context, a["out_proj_weight"], a["out_proj_bias"]).transpose(0, 1)
        if not a["need_weights"]:
            return output, None
        return output, probs.mean(dim=1) if a["average_attn_weights"] else probs


class _CaptureMode(TorchFunctionMode):
    """Sees the torch functions the forward pass calls (in this thread
    only); inside the attention module of a chosen block, computes the
    attention kernel explicitly or keeps the attention dropout's output."""

    def __init__(self, capture: _Capture) -> None:
        super().__init__()
        self.capture = capture

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        capture = self.capture
        if capture.record.current is not None and not capture.stored_this_run:
            if capture.kind == "mha" and func is F.multi_head_attention_forward:
                return capture.mha(*args, **kwargs)
            if capture.kind in ("timm", "hf") and func is F.scaled_dot_product_attention:
                return capture.sdpa(*args, **kwargs)
            if capture.kind == "hf" and func is F.dropout and args \
                    and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
                # transformers' eager attention: dropout(softmax(...)) is the
                # tensor multiplied with the values (and returned)
                return capture.store(func(*args, **kwargs))
        return func(*args, **kwargs)


def _with_input(args: tuple[Any, ...], kwargs: dict[str, Any],
                change: Callable[[torch.Tensor], torch.Tensor]) -> tuple[Any, Any] | None:
    """A block's (args, kwargs) with its token input (the first positional
    tensor, or ``hidden_states``) changed."""
    if args and isinstance(args[0], torch.Tensor):
        return (change(args[0]),) + tuple(args[1:]), kwargs
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return args, dict(kwargs, hidden_states=change(kwargs["hidden_states"]))
    return None


def _tokens(output: Any) -> torch.Tensor | None:
    """A block's output tokens (transformers 4.x blocks return tuples)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor detached, a leaf that requires grad where autograd is on."""
    detached = tensor.detach()
    return detached.requires_grad_(True) if torch.is_grad_enabled() else detached


@contextmanager
def capture_attention(transformer: Transformer, blocks: Sequence[int], *,
                      detach_inputs: bool = False, leaf_input: bool = False,
                      keep_outputs: bool = False,
                      edit: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None
                      ) -> Iterator[AttentionCapture]:
    """While the block runs, the forward passes of this thread record the
    attention probabilities of ``transformer.blocks[i]`` for every ``i`` of
    ``blocks`` (indices into the blocks), in an :class:`AttentionCapture`.

    Args:
        transformer: from :func:`find_transformer`.
        blocks: indices of the blocks whose attention is recorded.
        detach_inputs: every block gets its input detached, as a new leaf
            that requires grad (values unchanged): no gradient flows from
            one block into the blocks before it, and each block's attention
            is part of an autograd graph even when the parameters are
            frozen (LeGrad's per-block scores in one backward pass).
        leaf_input: the first block's input, if it does not require grad,
            becomes a leaf that does, so that the attention of every block
            is part of one autograd graph with frozen parameters (a
            gradient pass through all blocks stops there).
        keep_outputs: record the output tokens of the chosen blocks and of
            the model's last block.
        edit: ``edit(position, A)`` may return a tensor of A's shape that the
            block uses instead of A (and that is recorded), ``position``
            being the index into ``blocks``: to knock out or perturb the
            attention of a block.

    Nothing of the model changes: the hooks are removed and the torch
    function mode is left when the block ends, also on an exception.

    Raises:
        ValueError: a Hugging Face model whose attention implementation is
            neither "eager" nor "sdpa" (before any forward pass).
    """
    transformer.check_implementation()
    blocks = list(blocks)
    record = AttentionCapture(attentions=[None] * len(blocks),
                              outputs=[None] * len(blocks) if keep_outputs else [],
                              runs=[0] * len(blocks))
    capture = _Capture(record, transformer.kind, edit)
    handles = []
    last_block: Any = transformer.blocks[-1]
    with owned_hooks() as mine:

        def enter(position: int) -> Callable[..., None]:
            def hook(module: torch.nn.Module, args: Any) -> None:
                if mine():
                    record.current, capture.stored_this_run = position, False
                    record.runs[position] += 1
            return hook

        def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
            if mine():
                record.current = None

        def attn_drop(module: torch.nn.Module, args: Any, output: Any) -> Any:
            if mine() and record.current is not None and not capture.stored_this_run \
                    and isinstance(output, torch.Tensor):
                return capture.store(output)
            return None

        # kwargs=None: torch registers a hook with keyword arguments in two
        # steps (the hook, then its with_kwargs flag) and removes it in two,
        # so a forward pass of another thread in between calls it without
        # them; such a call is not this thread's and does nothing
        def detach(module: torch.nn.Module, args: Any, kwargs: Any = None) -> Any:
            return _with_input(args, kwargs, _leaf) if mine() and kwargs is not None else None

        def first_leaf(module: torch.nn.Module, args: Any, kwargs: Any = None) -> Any:
            if not mine() or kwargs is None:
                return None
            return _with_input(args, kwargs,
                               lambda x: x if x.requires_grad else _leaf(x))

        def keep(position: int | None) -> Callable[..., None]:
            def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
                if not mine():
                    return
                tokens = _tokens(output)
                if position is not None:
                    record.outputs[position] = tokens
                if module is last_block:
                    record.last_output = tokens
            return hook

        try:
            for position, index in enumerate(blocks):
                attention = transformer.attentions[index]
                handles.append(attention.register_forward_pre_hook(enter(position)))
                handles.append(attention.register_forward_hook(leave))
                if transformer.kind == "timm":
                    drop: Any = attention.attn_drop
                    handles.append(drop.register_forward_hook(attn_drop))
            if detach_inputs:
                for block in transformer.blocks:
                    handles.append(block.register_forward_pre_hook(detach, with_kwargs=True))
            elif leaf_input:
                handles.append(transformer.blocks[0].register_forward_pre_hook(
                    first_leaf, with_kwargs=True))
            if keep_outputs:
                positions = {index: position for position, index in enumerate(blocks)}
                for index, block in enumerate(transformer.blocks):
                    if index in positions or block is last_block:
                        handles.append(block.register_forward_hook(keep(positions.get(index))))
            with _CaptureMode(capture):
                yield record
        finally:
            for handle in handles:
                handle.remove()
            record.current = None
