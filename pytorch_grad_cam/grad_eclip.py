r"""Grad-ECLIP: gradient-weighted values with loosened attention, for CLIP
and other Vision Transformers.

Zhao, Wang, Zeng, Zhao, Chan, "Gradient-based Visual Explanation for
Transformer-based CLIP", ICML 2024 (code: github.com/Cyang-Zhao/Grad-Eclip).

For a transformer block whose attention output at the pooled token
(CLIP's class token on the image side, the end-of-text token on the text
side) is :math:`o = \sum_i A_i v_i` (every head's values :math:`v_i`
concatenated, before the output projection) and a score :math:`S` (the
cosine similarity of the image and text embeddings, or a class logit):

.. math::

    w_c = \frac{\partial S}{\partial o_c}, \qquad
    \lambda_i = \mathrm{minmax}_i\big(\cos(q, k_i)\big), \qquad
    R_i = \mathrm{ReLU}\Big(\lambda_i \sum_c w_c\, v_i^c\Big)

with :math:`q` the pooled token's query and :math:`k_i` token i's key
(every head's concatenated): the channel weights :math:`w` come from the
gradient, the spatial weights :math:`\lambda` from the query-key
similarity with the softmax replaced by a cosine ("loosened attention"),
min-max normalised over the tokens explained.

``sum_c w_c v_i^c`` is computed as :math:`\sum_h \partial S / \partial
A^h_{q,i}`, the gradient of the score with respect to the attention
probabilities of the pooled token's row, summed over the heads: ``A^h``
enters the model only through :math:`o^h = A^h V^h`, so the two are equal,
and the attention capture of ``pytorch_grad_cam.attention`` gives it for
every supported family without reading the output projection.

:class:`GradECLIP` is the image-side method, registered as ``gradeclip``:
the map of any supported Vision Transformer (``attention.SUPPORTED_FAMILIES``,
open_clip's image tower included) for any target; on a classifier the class
logit plays the part of the similarity. :func:`clip_image_maps` (one map
per prompt) and :func:`clip_word_relevance` (the relevance of a prompt's
tokens and words) take a whole CLIP model (``models.clip_towers``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.attention import capture_attention
from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.attention_queries import QueriesKeys, record_queries_keys
from pytorch_grad_cam.call_context import current_call
from pytorch_grad_cam.grad_eclip_text import as_token_ids, spell_tokens, words_of
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.models.clip_towers import ClipTowers, ImageEmbedding, find_clip
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import given
from pytorch_grad_cam.utils.model_targets import SimilarityToConceptTarget

__all__ = ["GradECLIP", "WordRelevance", "clip_image_maps", "clip_word_relevance",
           "grad_eclip_scores", "spatial_weights"]

_QUERIES_KEYS = "grad_eclip_queries_keys"

#: the text blocks the word relevance uses by default: the last 8, as the
#: authors' text notebook does (all of a smaller text tower)
TEXT_BLOCKS = 8


# ------------------------------------------------------------------ formula
def spatial_weights(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """lambda: the cosine similarity of the query (B x D) with every key
    (B x N x D), min-max normalised over the N keys to [0, 1] (B x N); all
    ones where every key is equally similar (no spatial preference)."""
    cosine = torch.nn.functional.cosine_similarity(query.float()[:, None], keys.float(), dim=-1)
    low = cosine.amin(dim=1, keepdim=True)
    span = cosine.amax(dim=1, keepdim=True) - low
    return torch.where(span > 0, (cosine - low) / span.clamp_min(torch.finfo(span.dtype).tiny),
                       torch.ones_like(cosine))


def grad_eclip_scores(gradient_row: torch.Tensor, query: torch.Tensor,
                      keys: torch.Tensor) -> torch.Tensor:
    """R_i = ReLU(lambda_i * sum_c w_c v_i^c) for one block (B x N), from
    ``gradient_row`` (B x N: ``sum_c w_c v_i^c``, the score's gradient with
    respect to the pooled token's attention row, summed over heads), the
    pooled token's query (B x D) and the keys (B x N x D)."""
    return torch.relu(spatial_weights(query, keys) * gradient_row.float())


# ------------------------------------------------------------- image side
@register_method("gradeclip", attention=True)
class GradECLIP(AttentionCAM):
    r"""Grad-ECLIP: the class token's gradient-weighted values, weighted by loosened attention.

    For every target block (default: the last block, as the authors do)
    and every patch token i, the value of token i weighted by the gradient
    of the target score with respect to the attention output of the class
    token, times the min-max normalised cosine similarity of the class
    token's query and token i's key, rectified; the blocks' maps summed:

    .. math::

        R_l[i] = \mathrm{ReLU}\Big(\lambda_l[i] \sum_h
                 \frac{\partial S}{\partial A^h_l[\mathrm{cls}, i]}\Big), \qquad
        \lambda_l[i] = \mathrm{minmax}_i \cos(q_l[\mathrm{cls}], k_l[i]), \qquad
        \mathrm{map} = \sum_l R_l

    over the patch tokens, on the patch grid, min-max normalised and scaled
    to the input size like every method's map. ``sum_h dS/dA^h[cls, i]``
    equals ``sum_c (dS/do_cls)_c v_i^c`` (the attention output ``o`` before
    the output projection, every head concatenated): the channel weights of
    the paper applied to the values (see ``pytorch_grad_cam.grad_eclip``).

    Zhao, Wang, Zeng, Zhao, Chan, "Gradient-based Visual Explanation for
    Transformer-based CLIP", ICML 2024; the authors' code:
    https://github.com/Cyang-Zhao/Grad-Eclip

    For CLIP, the target is the cosine similarity of the image embedding
    with a prompt's text embedding (``SimilarityToConceptTarget``; or use
    :func:`clip_image_maps`); for a classifier, a class logit
    (``ClassifierOutputTarget``). The queries and keys are those the model
    computes (``attention_queries``). The min-max of lambda runs over the
    patch tokens (the class, distillation and register tokens are not
    explained). A model without a class token (timm ``global_pool="avg"``)
    uses the mean of the rows and of the queries. The authors' code
    recomputes the last block's attention with one head; here the model
    runs as it is (``bench/grad_eclip_parity.py`` compares both).
    """

    default_blocks = "last"
    reads = "the attention of the last transformer block"

    def record(self, input_tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Step 2: AttentionCAM's forward pass, with the target blocks'
        queries and keys recorded too."""
        context = current_call()
        with record_queries_keys(self.transformer, self.block_indices) as recorded:
            result = super().record(input_tensor)
        context.state[_QUERIES_KEYS] = recorded
        return result

    def token_relevance(self, attentions: list[torch.Tensor],
                        grads: list[torch.Tensor | None]) -> torch.Tensor:
        recorded: QueriesKeys = current_call().state[_QUERIES_KEYS]
        prefix = self.transformer.num_prefix_tokens
        total: torch.Tensor | None = None
        for position, grad in enumerate(grads):
            queries, keys = recorded.queries[position], recorded.keys[position]
            assert grad is not None and queries is not None and keys is not None
            # a call with K targets per image has K gradient rows per image
            group = grad.shape[0] // queries.shape[0]
            queries, keys = (t.repeat_interleave(group, dim=0) for t in (queries, keys))
            row = self.query_row(grad.float().sum(dim=1))  # B x N
            query = queries[:, 0] if self.transformer.class_token else queries.mean(dim=1)
            scores = grad_eclip_scores(row[:, prefix:], query, keys[:, prefix:])
            total = scores if total is None else total + scores
        assert total is not None
        return torch.nn.functional.pad(total, (prefix, 0))


# ------------------------------------------------------------------- CLIP
def _single_image(image: Any, towers: ClipTowers) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) \
            or image.shape[-3] != 3 or (image.dim() == 4 and image.shape[0] != 1):
        raise ValueError(f"image must be one preprocessed image, a tensor of shape 3 x H x W or "
                         f"1 x 3 x H x W, got {given(image)}")
    device = next(towers.model.parameters()).device
    return (image if image.dim() == 4 else image[None]).to(device)


def _embedding(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.nn.functional.normalize(encode(x).float(), dim=-1)


def clip_image_maps(model: torch.nn.Module, image: torch.Tensor,
                    prompts: str | Sequence[str] | torch.Tensor, *, tokenizer: Any = None,
                    target_layers: Sequence[Any] | None = None) -> np.ndarray:
    """Grad-ECLIP's map of one image for each prompt (P x H x W, each
    min-max normalised to [0, 1], at the image's size).

    The score of a prompt is the cosine similarity of the image's
    embedding with the prompt's text embedding, explained by
    :class:`GradECLIP` on the model's image tower.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` or a Hugging
            Face ``CLIPModel`` (``models.clip_towers.find_clip``).
        image: one preprocessed image, 3 x H x W or 1 x 3 x H x W.
        prompts: a prompt, a list of prompts (then ``tokenizer`` is
            needed: ``open_clip.get_tokenizer(name)`` or a Hugging Face
            ``CLIPTokenizer``), or their token ids (P x L).
        tokenizer: see ``prompts``.
        target_layers: blocks of the image tower (default: its last).
    """
    towers = find_clip(model)
    single = _single_image(image, towers)
    ids = as_token_ids(prompts, tokenizer, "prompts").to(single.device)
    with model_state_guard(model):
        texts = _embedding(towers.encode_text, ids)
        encoder = ImageEmbedding(model)
        with GradECLIP(encoder, target_layers=target_layers) as cam:
            return cam(single.expand(len(ids), *single.shape[1:]),
                       [SimilarityToConceptTarget(text) for text in texts])


@dataclass(frozen=True)
class WordRelevance:
    """Grad-ECLIP's relevance of a prompt's tokens and words for an image.

    Attributes:
        tokens: the prompt's tokens between the start and end-of-text
            tokens, as the tokenizer spells them (CLIP's BPE marks the end
            of a word with ``</w>``).
        token_scores: one relevance per token, non-negative, summing to 1
            (all zeros if no token has a positive relevance).
        words: the words, the tokens of each joined (markers removed).
        word_scores: one relevance per word, the sum of its tokens'.
    """

    tokens: list[str]
    token_scores: np.ndarray
    words: list[str]
    word_scores: np.ndarray


def clip_word_relevance(model: torch.nn.Module, image: torch.Tensor,
                        text: str | torch.Tensor, *, tokenizer: Any = None,
                        blocks: int = TEXT_BLOCKS) -> WordRelevance:
    r"""Grad-ECLIP's relevance of every token (and word) of a prompt for an
    image.

    The score S is the cosine similarity of the image's and the prompt's
    embeddings; over the last ``blocks`` blocks l of the text tower, with
    ``e`` the end-of-text token whose output the model pools:

    .. math::

        t_j = \mathrm{ReLU}\Big(\sum_l \lambda_l[j] \sum_h
              \frac{\partial S}{\partial A^h_l[e, j]}\Big), \qquad
        \lambda_l[j] = \mathrm{minmax}_j \cos(q_l[e], k_l[j])

    (the blocks summed before the ReLU and lambda normalised over every
    position of the sequence, padding included, as the authors' text code
    does), then kept for the tokens between the start and end-of-text
    tokens and divided by their sum.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` or a Hugging
            Face ``CLIPModel``.
        image: one preprocessed image, 3 x H x W or 1 x 3 x H x W.
        text: the prompt (then ``tokenizer`` is needed), or its token ids
            (L or 1 x L; then ``tokenizer`` only spells them, else the
            tokens are their ids and each is a word).
        tokenizer: ``open_clip.get_tokenizer(name)`` (or
            ``open_clip.tokenizer.SimpleTokenizer()``) or a Hugging Face
            ``CLIPTokenizer``.
        blocks: how many of the text tower's last blocks to use (all of
            them if it has fewer).
    """
    towers = find_clip(model)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive int (the text tower's last blocks to use), "
                         f"got {given(blocks)}")
    single = _single_image(image, towers)
    if not isinstance(text, (str, torch.Tensor)):
        raise TypeError(f"text must be one prompt (a str) or its token ids (a tensor), got "
                        f"{given(text)}")
    ids = as_token_ids(text, tokenizer, "text").to(single.device)
    if ids.shape[0] != 1:
        raise ValueError(f"text must be one prompt, got {ids.shape[0]} token sequences")
    end = int(towers.end_positions(ids)[0])
    if end < 2:
        raise ValueError(f"text has no tokens between its start and end-of-text tokens (the "
                         f"end-of-text token is at position {end}), got {given(text)}")
    chosen = list(range(max(0, len(towers.text.blocks) - blocks), len(towers.text.blocks)))
    with model_state_guard(model):
        image_embedding = _embedding(towers.encode_image, single)
        with torch.inference_mode(False), torch.enable_grad():
            with record_queries_keys(towers.text, chosen) as recorded, \
                    capture_attention(towers.text, chosen, leaf_input=True) as captured:
                text_embedding = towers.encode_text(ids)
            score = torch.nn.functional.cosine_similarity(
                text_embedding.float(), image_embedding, dim=-1).sum()
            attentions = [a for a in captured.attentions if a is not None]
            if len(attentions) != len(chosen):
                raise ValueError(f"the text tower of {type(model).__name__} ran without its "
                                 "attention probabilities being captured")
            grads = torch.autograd.grad(score, attentions)
        captured.release()
    total = torch.zeros(ids.shape[1], device=ids.device)
    for grad, queries, keys in zip(grads, recorded.queries, recorded.keys):
        assert queries is not None and keys is not None
        row = grad.float().sum(dim=1)[0, end]
        total = total + spatial_weights(queries[:, end], keys)[0] * row
    relevance = torch.relu(total)[1:end]
    mass = relevance.sum()
    token_scores = (relevance / mass if float(mass) > 0 else relevance).cpu().numpy()
    tokens = spell_tokens(ids[0, 1:end], tokenizer)
    words, word_scores = words_of(tokens, token_scores)
    return WordRelevance(tokens, token_scores, words, word_scores)
