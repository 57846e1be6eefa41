"""Prompts for Grad-ECLIP's text side (``pytorch_grad_cam.grad_eclip``):
prompts to token ids with the user's tokenizer (:func:`as_token_ids`),
token ids back to the tokenizer's spelling (:func:`spell_tokens`) and
tokens merged into words (:func:`words_of`).

Tokenizers: open_clip's (``open_clip.get_tokenizer(name)``, its
``SimpleTokenizer``, or its ``HFTokenizer`` wrapper) and Hugging Face's
(``CLIPTokenizer``, ``CLIPTokenizerFast``, any tokenizer with
``convert_ids_to_tokens``). Word boundaries follow the tokenizer's
markers: CLIP's byte-pair encoding ends a word's last token with ``</w>``;
SentencePiece (``▁``) and GPT-2-style (``Ġ``) tokens start a word.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.messages import given

__all__ = ["WORD_END", "WORD_STARTS", "as_token_ids", "spell_tokens", "words_of"]

#: the marker of CLIP's BPE at the end of a word's last token
WORD_END = "</w>"
#: the markers at the start of a word's first token (SentencePiece, GPT-2)
WORD_STARTS = ("\u2581", "\u0120")


def _hf_tokenizer(tokenizer: Any) -> Any:
    """The Hugging Face tokenizer of ``tokenizer`` (itself, or the one
    open_clip's ``HFTokenizer`` wraps), else None."""
    for candidate in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        if candidate is not None and callable(getattr(candidate, "convert_ids_to_tokens", None)):
            return candidate
    return None


def as_token_ids(text: str | Sequence[str] | torch.Tensor, tokenizer: Any,
                 argument: str) -> torch.Tensor:
    """Token ids (P x L, int64) of a prompt, a list of prompts or given ids
    (L or P x L); ``argument`` names the argument in messages."""
    if isinstance(text, torch.Tensor):
        if text.dim() not in (1, 2) or text.numel() == 0 or text.is_floating_point():
            raise ValueError(f"{argument} given as token ids must be an integer tensor of shape "
                             f"L or P x L, got {given(text)}")
        return (text if text.dim() == 2 else text[None]).long()
    prompts = [text] if isinstance(text, str) else list(text) \
        if isinstance(text, Sequence) else None
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{argument} must be a prompt, a non-empty list of prompts or token ids "
                        f"(a tensor), got {given(text)}")
    if tokenizer is None or not callable(tokenizer):
        raise ValueError(f"{argument} are strings: pass tokenizer= (open_clip.get_tokenizer(name), "
                         f"or a Hugging Face CLIPTokenizer), got tokenizer={given(tokenizer)}")
    if _hf_tokenizer(tokenizer) is tokenizer:
        ids = tokenizer(prompts, padding=True, return_tensors="pt")["input_ids"]
    else:
        ids = tokenizer(prompts)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return torch.as_tensor(ids).long().reshape(len(prompts), -1)


def spell_tokens(ids: torch.Tensor, tokenizer: Any) -> list[str]:
    """How the tokenizer spells each id of ``ids`` (1-D); the ids as text
    without a tokenizer that can spell them."""
    values = [int(i) for i in ids.tolist()]
    hf = _hf_tokenizer(tokenizer)
    if hf is not None:
        return [str(token) for token in hf.convert_ids_to_tokens(values)]
    decoder = getattr(tokenizer, "decoder", None)  # open_clip's SimpleTokenizer: id -> BPE token
    if isinstance(decoder, dict):
        return [str(decoder.get(i, i)) for i in values]
    return [str(i) for i in values]


def words_of(tokens: Sequence[str], scores: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The words of ``tokens`` and the sum of their tokens' scores. A token
    ending with ``</w>`` ends a word; one starting with ``▁`` or ``Ġ``
    starts one; tokens with neither marker each form a word when the
    tokenizer uses no marker at all."""
    marked = any(t.endswith(WORD_END) or t.startswith(WORD_STARTS) for t in tokens)
    words: list[str] = []
    totals: list[float] = []
    open_word = False
    for token, score in zip(tokens, scores.tolist()):
        starts = token.startswith(WORD_STARTS) or not marked
        text = token[1:] if token.startswith(WORD_STARTS) else token
        ends = text.endswith(WORD_END)
        text = text[:-len(WORD_END)] if ends else text
        if open_word and not starts:
            words[-1] += text
            totals[-1] += score
        else:
            words.append(text)
            totals.append(score)
        open_word = not ends if marked else False
    return words, np.asarray(totals, dtype=np.float32)
