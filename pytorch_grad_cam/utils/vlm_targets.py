"""Targets for what a language model says: scores of answer tokens in the
logits of a causal language model (one image's ``logits``, T x V: a row per
position of the token sequence, a column per vocabulary entry).

Row ``t`` of the logits predicts the token at position ``t + 1``, so an
answer whose tokens ``a_1 .. a_n`` sit at positions ``s .. s + n - 1`` of
the sequence the model read (teacher forcing: the prompt and the answer in
one forward pass) is scored from rows ``s - 1 .. s + n - 2``::

    log p(answer | image, prompt) = sum_k log softmax(logits[s - 1 + k])[a_k]

:class:`AnswerLogProbTarget` is that sum; :class:`AnswerLogitTarget` the
sum of the raw logits ``logits[s - 1 + k, a_k]`` (for a one-token answer,
the logit of one generated token, before the softmax that couples it to
every other token). Both are targets as the CAM classes take them
(``targets=[...]``, one per image), like ``ClassifierOutputTarget``.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from pytorch_grad_cam.messages import given

__all__ = ["AnswerLogProbTarget", "AnswerLogitTarget", "check_token_ids"]


def check_token_ids(name: str, token_ids: Any) -> list[int]:
    """``token_ids`` (a sequence or 1-D tensor of non-negative ints, at
    least one) as a list; ValueError / TypeError naming ``name``."""
    if isinstance(token_ids, torch.Tensor):
        if token_ids.dim() != 1 or token_ids.is_floating_point():
            raise TypeError(f"{name} must be a 1-D tensor of token ids, got {given(token_ids)}")
        token_ids = token_ids.tolist()
    if isinstance(token_ids, (str, bytes)) or not isinstance(token_ids, Sequence):
        raise TypeError(f"{name} must be a sequence of int token ids, got {given(token_ids)}")
    ids = list(token_ids)
    if not ids:
        raise ValueError(f"{name} is empty: an answer needs at least one token")
    for token in ids:
        if isinstance(token, bool) or not isinstance(token, numbers.Integral) or token < 0:
            raise TypeError(f"{name} must hold non-negative int token ids, got {given(token)}")
    return [int(token) for token in ids]


class _AnswerTarget:
    """The answer tokens ``token_ids`` at positions ``start ..`` of the
    sequence; subclasses score each token's row of the logits."""

    def __init__(self, token_ids: Sequence[int] | torch.Tensor, start: int) -> None:
        self.token_ids = check_token_ids("token_ids", token_ids)
        if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 1:
            raise ValueError(f"start must be the position (>= 1) of the answer's first token "
                             f"in the sequence, after the prompt, got {given(start)}")
        self.start: int = int(start)

    def check_output(self, model_output: Any) -> None:
        if not isinstance(model_output, torch.Tensor) or model_output.dim() not in (2, 3):
            raise ValueError(f"expects one image's logits (positions x vocabulary), got "
                             f"{given(model_output)}")
        positions, vocabulary = model_output.shape[-2:]
        end = self.start + len(self.token_ids)
        if end > positions:
            raise ValueError(f"the answer's tokens sit at positions {self.start}..{end - 1}, but "
                             f"the logits cover {positions} positions")
        if max(self.token_ids) >= vocabulary:
            raise ValueError(f"token id {max(self.token_ids)} is out of range for a vocabulary "
                             f"of {vocabulary} (allowed 0..{vocabulary - 1})")

    def _rows(self, model_output: torch.Tensor) -> torch.Tensor:
        """The logits rows that predict the answer's tokens (..., n x V)."""
        return model_output[..., self.start - 1:self.start - 1 + len(self.token_ids), :]

    def _index(self, rows: torch.Tensor) -> torch.Tensor:
        ids = torch.tensor(self.token_ids, device=rows.device)
        return ids.expand(*rows.shape[:-1]).unsqueeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_ids={self.token_ids}, start={self.start})"


class AnswerLogProbTarget(_AnswerTarget):
    """The log-probability of an answer given the image and the prompt:
    ``sum_k log softmax(logits[start - 1 + k])[token_ids[k]]`` (teacher
    forcing: the sequence the model reads is the prompt followed by the
    answer, whose first token is at position ``start``). Called with one
    image's logits (T x V) it returns a scalar; with a batch (B x T x V)
    one score per image."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        rows = torch.log_softmax(self._rows(model_output), dim=-1)
        return rows.gather(-1, self._index(rows))[..., 0].sum(dim=-1)


class AnswerLogitTarget(_AnswerTarget):
    """The sum of the answer tokens' raw logits,
    ``sum_k logits[start - 1 + k, token_ids[k]]``; with one token, the
    logit of the token the model generates after the prompt (the answer's
    first token at ``start``, the prompt's length)."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        rows = self._rows(model_output)
        return rows.gather(-1, self._index(rows))[..., 0].sum(dim=-1)
