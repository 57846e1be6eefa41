"""Explaining what a LLaVA-style vision-language model says about an image,
as a map over the image, with the library's CAM classes.

The question "which image regions made the model answer *a red car*?" is
a CAM question once three things are fixed:

- **the target**: the log-probability of the answer given the image and
  the prompt, ``sum_k log p(a_k | image, prompt, a_<k)``, from one forward
  pass over the prompt followed by the answer (teacher forcing;
  ``utils.vlm_targets.AnswerLogProbTarget``), or the sum of the answer
  tokens' logits (``AnswerLogitTarget``: with a one-token answer, the
  logit of one generated token);
- **the target layer**: the ``multi_modal_projector`` (its output tokens
  are the image tokens of the language model's sequence) or the vision
  tower's hidden states that the projector reads
  (:meth:`LlavaImageModel.target_layer`);
- **the token layout**: the image tokens are the patches of the vision
  tower's grid, row by row, after the class token where it is kept
  (``models.llava.ImageTokenGrid``).

The CAM classes call ``model(input_tensor)``: :class:`LlavaImageModel`
holds the token ids of the prompt and the answer and takes the pixel
values as its input, so the map is over the pixel values, at their
resolution. It does not change the user's model.
:func:`llava_answer` (from a processor, an image and strings) and
:func:`llava_answer_from_ids` (from token ids and pixel values) build all
of it; use it as::

    setup = llava_answer(model, processor, image, "USER: <image>\\nWhat is this? ASSISTANT:",
                         " A cat.")
    with GradCAM(setup.model, target_layers=setup.target_layers,
                 reshape_transform=setup.reshape_transform) as cam:
        maps = cam(setup.input_tensor, targets=setup.targets)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from pytorch_grad_cam.messages import given
from pytorch_grad_cam.models.llava import ImageTokenGrid, check_layer, find_llava
from pytorch_grad_cam.utils.vlm_targets import (
    AnswerLogitTarget,
    AnswerLogProbTarget,
    check_token_ids,
)

__all__ = ["SCORES", "LlavaImageModel", "VLMExplanation", "llava_answer",
           "llava_answer_from_ids"]

#: what the target of an answer scores
SCORES = ("log_prob", "logit")


class LlavaImageModel(torch.nn.Module):
    """A LLaVA model with its token ids fixed: ``forward(pixel_values)``
    returns the logits (B x T x V) of the fixed sequence for every image of
    the batch (B x 3 x H x W), as the CAM classes call a model.

    The forward pass is LLaVA's, written out so that both target layers
    reach the answer: the vision tower's hidden states
    ``config.vision_feature_layer`` (through :attr:`vision_features`, an
    identity module of this wrapper), the class token dropped for the
    ``"default"`` strategy, the ``multi_modal_projector``, its tokens
    written over the image tokens of the embedded sequence, and the
    language model on that sequence. (A hook on the vision block itself
    would not do: transformers records ``hidden_states`` with hooks of its
    own, before the CAM's hook, so the projector would read a copy the
    CAM's gradients never reach.) It gives the logits of
    ``model(input_ids=..., pixel_values=...)``.

    The user's model is held, not changed: the CAM call's model-state guard
    walks it as this module's ``model`` and puts every flag back.

    Args:
        model: a ``LlavaForConditionalGeneration``.
        input_ids: the token ids (T, or 1 x T) with the image tokens
            expanded, as the model's processor returns them.
        attention_mask: its attention mask (default: all ones).
    """

    def __init__(self, model: torch.nn.Module, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.llava = find_llava(model)
        self.model = model
        #: the vision tower's hidden states the projector reads (B x N x C,
        #: class token included): the ``"vision"`` target layer
        self.vision_features = torch.nn.Identity()
        self.input_ids = _row("input_ids", input_ids)
        self.attention_mask = (torch.ones_like(self.input_ids) if attention_mask is None
                               else _row("attention_mask", attention_mask))
        if self.attention_mask.shape != self.input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(self.attention_mask.shape)}, "
                             f"input_ids {tuple(self.input_ids.shape)}; they must match")

    def target_layer(self, layer: str = "projector") -> torch.nn.Module:
        """The target layer ``"projector"`` (the ``multi_modal_projector``,
        whose output tokens are the image tokens of the language model's
        sequence) or ``"vision"`` (:attr:`vision_features`)."""
        check_layer(layer)
        return self.llava.projector if layer == "projector" else self.vision_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        llava, model = self.llava, cast(Any, self.model)
        batch = pixel_values.shape[0]
        ids = self.input_ids.to(pixel_values.device).expand(batch, -1)
        mask = self.attention_mask.to(pixel_values.device).expand(batch, -1)
        states = llava.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        features = self.vision_features(torch.cat([states[i] for i in llava.feature_layers],
                                                  dim=-1))
        if llava.strategy == "default":
            features = features[:, 1:]
        image = llava.projector(features)
        embeds = model.get_input_embeddings()(ids)
        image_positions = (ids == llava.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(image_positions, image.to(embeds.dtype))
        return model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits


def _row(name: str, ids: Any) -> torch.Tensor:
    """Token ids (T or 1 x T) as a 1 x T long tensor."""
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or \
            not (ids.dim() == 1 or (ids.dim() == 2 and ids.shape[0] == 1)) or ids.numel() == 0:
        raise ValueError(f"{name} must be the token ids of one sequence, an int tensor of "
                         f"shape T or 1 x T, got {given(ids)}")
    return ids.reshape(1, -1).long()


@dataclass(frozen=True)
class VLMExplanation:
    """What a CAM call needs to explain an answer (:func:`llava_answer`).

    Attributes:
        model: the :class:`LlavaImageModel` to give the CAM class.
        input_tensor: the pixel values (B x 3 x H x W).
        targets: one answer target per image.
        target_layers: ``[layer]``, the projector or the vision block.
        reshape_transform: the image-token grid of that layer.
        input_ids: the sequence the model reads, prompt then answer (1 x T).
        answer_ids: the answer's token ids.
        answer_start: the position of the answer's first token.
    """

    model: LlavaImageModel
    input_tensor: torch.Tensor
    targets: list[AnswerLogProbTarget | AnswerLogitTarget]
    target_layers: list[torch.nn.Module]
    reshape_transform: ImageTokenGrid
    input_ids: torch.Tensor
    answer_ids: list[int]
    answer_start: int


def llava_answer_from_ids(model: torch.nn.Module, input_ids: torch.Tensor,
                          pixel_values: torch.Tensor, answer_ids: Sequence[int] | torch.Tensor,
                          attention_mask: torch.Tensor | None = None, layer: str = "projector",
                          score: str = "log_prob") -> VLMExplanation:
    """The explanation of an answer, from token ids.

    Args:
        model: a ``LlavaForConditionalGeneration``.
        input_ids: the prompt's token ids (T or 1 x T) with its image
            tokens expanded (the processor's ``input_ids``).
        pixel_values: the image (1 x 3 x H x W; a batch of images is
            explained for the same prompt and answer).
        answer_ids: the answer's token ids (for example those ``generate``
            returned after the prompt), at least one.
        attention_mask: the prompt's attention mask (default: all ones).
        layer: ``"projector"`` (default) or ``"vision"``
            (:meth:`LlavaImageModel.target_layer`).
        score: ``"log_prob"``: the answer's log-probability;
            ``"logit"``: the sum of its tokens' logits.

    Raises:
        ValueError / TypeError: naming the argument: ``model`` is not a
        LLaVA model, the prompt has no image token or not as many as one
        image takes, the answer is empty, ``layer`` or ``score`` unknown.
    """
    llava = find_llava(model)
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(map(repr, SCORES))}, got "
                         f"{given(score)}")
    check_layer(layer)
    prompt = _row("input_ids", input_ids)
    image_tokens = int((prompt == llava.image_token_id).sum())
    if image_tokens == 0:
        raise ValueError(f"input_ids hold no image token (id {llava.image_token_id}): the prompt "
                         "must say where the image goes (the processor expands '<image>' into "
                         f"{llava.image_tokens} image tokens)")
    if image_tokens != llava.image_tokens:
        raise ValueError(f"input_ids hold {image_tokens} image tokens (id "
                         f"{llava.image_token_id}); one image takes {llava.image_tokens} (a "
                         f"{llava.rows} x {llava.columns} patch grid, strategy "
                         f"{llava.strategy!r}): give one image per prompt, its '<image>' expanded "
                         "by the model's processor")
    answer = check_token_ids("answer_ids", answer_ids)
    vocabulary = int(llava.config.text_config.vocab_size)
    if max(answer) >= vocabulary:
        raise ValueError(f"answer_ids hold token id {max(answer)}, out of range for the model's "
                         f"vocabulary of {vocabulary} (allowed 0..{vocabulary - 1})")
    size = int(llava.config.vision_config.image_size)
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or \
            tuple(pixel_values.shape[1:]) != (3, size, size):
        raise ValueError(f"pixel_values must be a B x 3 x {size} x {size} tensor (the vision "
                         f"tower's image_size), got {given(pixel_values)}")
    mask = torch.ones_like(prompt) if attention_mask is None else _row("attention_mask",
                                                                       attention_mask)
    if mask.shape != prompt.shape:
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, input_ids "
                         f"{tuple(prompt.shape)}; they must match")
    answer_tensor = torch.tensor([answer], dtype=torch.long, device=prompt.device)
    ids = torch.cat([prompt, answer_tensor], dim=1)
    full_mask = torch.cat([mask.to(prompt.device), torch.ones_like(answer_tensor)], dim=1)
    target_class = AnswerLogProbTarget if score == "log_prob" else AnswerLogitTarget
    target = target_class(answer, start=prompt.shape[1])
    wrapper = LlavaImageModel(model, ids, full_mask)
    return VLMExplanation(wrapper, pixel_values, [target] * pixel_values.shape[0],
                          [wrapper.target_layer(layer)],
                          llava.reshape_transform(layer), ids, answer, prompt.shape[1])


def llava_answer(model: torch.nn.Module, processor: Any, image: Any, prompt: str,
                 answer: str | Sequence[int], layer: str = "projector",
                 score: str = "log_prob") -> VLMExplanation:
    """The explanation of ``answer`` to ``prompt`` about ``image``.

    Args:
        model: a ``LlavaForConditionalGeneration``.
        processor: its ``LlavaProcessor`` (``AutoProcessor.from_pretrained``
            of the checkpoint): it resizes the image and expands the
            prompt's image token.
        image: the image (a PIL image, an H x W x 3 array, ...).
        prompt: the prompt, with the processor's image token (``"<image>"``)
            once, in the checkpoint's chat format (LLaVA-1.5:
            ``"USER: <image>\\nWhat is this? ASSISTANT:"``).
        answer: the answer to explain, a string (tokenized without special
            tokens and appended to the prompt's ids, as ``generate`` appends
            what it generates) or its token ids (a sequence of ints or a
            1-D tensor).
        layer, score: as for :func:`llava_answer_from_ids`.
    """
    find_llava(model)
    token = getattr(processor, "image_token", None)
    if not isinstance(token, str) or not callable(processor):
        raise TypeError(f"processor must be the model's LlavaProcessor (callable, with an "
                        f"image_token), got {type(processor).__name__}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {given(prompt)}")
    if prompt.count(token) != 1:
        raise ValueError(f"prompt must contain the image token {token!r} once (where the image "
                         f"goes), got {prompt.count(token)} in {prompt!r}")
    if isinstance(answer, str):
        if not answer.strip():
            raise ValueError(f"answer is empty ({answer!r}): give the answer's text or token ids")
        tokenizer = getattr(processor, "tokenizer", processor)
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if not answer_ids:
            raise ValueError(f"answer {answer!r} tokenizes to no tokens")
    elif isinstance(answer, (Sequence, torch.Tensor)):
        answer_ids = check_token_ids("answer", answer)
    else:
        raise TypeError(f"answer must be a string or token ids, got {given(answer)}")
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    return llava_answer_from_ids(model, inputs["input_ids"], inputs["pixel_values"], answer_ids,
                                 attention_mask=inputs.get("attention_mask"), layer=layer,
                                 score=score)
