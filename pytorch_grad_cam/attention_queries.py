"""The queries and keys of a transformer's attention, read during one
forward pass: :func:`record_queries_keys`.

For the methods that compare a block's queries with its keys outside the
softmax (Grad-ECLIP's spatial weights, ``pytorch_grad_cam.grad_eclip``).
Every head's vectors are concatenated, so that a token's query or key is
one vector of the attention's width (B x N x D), as the model computes
them before it splits them into heads, per kind of attention module
(``models.vit_families.Transformer.kind``):

- ``"mha"`` (torchvision's and open_clip's ``nn.MultiheadAttention``): the
  module's input projected with the query and key rows of its own
  ``in_proj_weight`` and ``in_proj_bias`` (the module computes them inside
  ``F.multi_head_attention_forward``, where no hook sees them);
- ``"timm"`` (timm's ``Attention``): the outputs of its ``q_norm`` and
  ``k_norm`` modules (identities unless the model normalises them), the
  vectors it multiplies;
- ``"hf"`` (Hugging Face ViT, DeiT, CLIP): the outputs of the attention
  module's ``q_proj`` and ``k_proj``.

The vectors are recorded detached: they weigh a map, they are not
differentiated. Forward hooks and pre-hooks act only in the calling thread
(``owned_hooks``) and are removed when the block ends, also on an
exception; nothing of the model changes.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pytorch_grad_cam.activations_and_gradients import hook_handles, owned_hooks
from pytorch_grad_cam.models.vit_families import Transformer

__all__ = ["QueriesKeys", "record_queries_keys"]


@dataclass
class QueriesKeys:
    """What :func:`record_queries_keys` recorded: per chosen block (in the
    order of ``blocks``), its queries and keys (B x N x D, every head's
    concatenated, detached) of its last call; ``None`` if it never ran."""

    queries: list[torch.Tensor | None] = field(default_factory=list)
    keys: list[torch.Tensor | None] = field(default_factory=list)


def _heads_joined(tensor: torch.Tensor) -> torch.Tensor:
    """B x heads x N x d -> B x N x (heads * d)."""
    return tensor.transpose(1, 2).flatten(2)


def _mha_argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int,
                  name: str) -> torch.Tensor:
    return args[position] if len(args) > position else kwargs[name]


@contextmanager
def record_queries_keys(transformer: Transformer, blocks: Sequence[int]) -> Iterator[QueriesKeys]:
    """While the block runs, the forward passes of this thread record the
    queries and keys of ``transformer.attentions[i]`` for every ``i`` of
    ``blocks``.

    Raises:
        ValueError: a Hugging Face attention module without ``q_proj`` and
            ``k_proj`` (before any forward pass).
    """
    blocks = list(blocks)
    record = QueriesKeys([None] * len(blocks), [None] * len(blocks))
    attentions: list[Any] = [transformer.attentions[index] for index in blocks]
    if transformer.kind == "hf":
        for index, attention in zip(blocks, attentions):
            if not all(isinstance(getattr(attention, name, None), torch.nn.Module)
                       for name in ("q_proj", "k_proj")):
                raise ValueError(f"the attention module of block {index} of {transformer.name} "
                                 f"({type(attention).__name__}) has no q_proj and k_proj modules: "
                                 "its queries and keys cannot be read")
    with owned_hooks() as mine, hook_handles() as handles:

        def keep(store: list[torch.Tensor | None], position: int, joined: bool) -> Any:
            def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
                if mine() and isinstance(output, torch.Tensor):
                    store[position] = (_heads_joined(output) if joined else output).detach()
            return hook

        def project(position: int) -> Any:
            # kwargs=None: a call of another thread while torch registers the
            # hook in two steps (see attention.capture_attention) is not ours
            def hook(module: Any, args: Any, kwargs: Any = None) -> None:
                if not mine() or kwargs is None:
                    return
                query = _mha_argument(args, kwargs, 0, "query")
                key = _mha_argument(args, kwargs, 1, "key")
                if not module.batch_first:  # L x B x E
                    query, key = query.transpose(0, 1), key.transpose(0, 1)
                width = module.embed_dim
                weight, bias = module.in_proj_weight, module.in_proj_bias
                with torch.no_grad():
                    record.queries[position] = F.linear(
                        query, weight[:width], None if bias is None else bias[:width])
                    record.keys[position] = F.linear(
                        key, weight[width:2 * width],
                        None if bias is None else bias[width:2 * width])
            return hook

        for position, attention in enumerate(attentions):
            if transformer.kind == "mha":
                handles.append(attention.register_forward_pre_hook(project(position),
                                                                   with_kwargs=True))
            elif transformer.kind == "timm":
                handles.append(attention.q_norm.register_forward_hook(
                    keep(record.queries, position, True)))
                handles.append(attention.k_norm.register_forward_hook(
                    keep(record.keys, position, True)))
            else:
                handles.append(attention.q_proj.register_forward_hook(
                    keep(record.queries, position, False)))
                handles.append(attention.k_proj.register_forward_hook(
                    keep(record.keys, position, False)))
        yield record
