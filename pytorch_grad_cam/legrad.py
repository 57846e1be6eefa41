from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.attention import main_tensor
from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import given

#: how LeGrad reads a block's tokens (see the class docstring)
POOLINGS = ("mean", "model")


@register_method("legrad", attention=True)
class LeGrad(AttentionCAM):
    r"""LeGrad: each block's attention gradient of its own target score, averaged.

    The positive gradient of every block's own target score with respect to
    that block's attention probabilities, averaged over heads, queries and
    blocks.

    For every target block l, with attention probabilities A_l (B x heads
    x N x N, the tensor the block multiplies with its values) and output
    tokens Z_l (B x N x C):

    .. math::

        s_l = \mathrm{target}(\mathrm{head}(Z_l)), \qquad
        E_l[j] = \frac{1}{H N} \sum_{h, i}
                 \mathrm{ReLU}\Big(\frac{\partial s_l}{\partial A_l[h, i, j]}\Big), \qquad
        \mathrm{map} = \frac{1}{L} \sum_l E_l[\text{patch tokens}]

    on the patch grid, min-max normalised to [0, 1] and scaled to the input
    size like every method's map.

    Bousselham, Boggust, Chaybouti, Strobelt, Kuehne, "LeGrad: An
    Explainability Method for Vision Transformers via Feature Formation
    Sensitivity", ICCV 2025, https://arxiv.org/abs/2404.03214

    ``head(Z)`` is the model's own final norm and head applied to a block's
    tokens, so that the target receives the same kind of output as from
    the model (class logits for ``ClassifierOutputTarget``, an image
    embedding for ``SimilarityToConceptTarget``), per family: torchvision
    ``encoder.ln`` then ``heads``; timm ``norm`` then ``forward_head`` (its
    pooling, ``fc_norm`` and head, the mean of both heads for distilled
    DeiT); Hugging Face ViT/DeiT ``layernorm`` then ``classifier`` (DeiT
    with teacher: the mean of ``cls_classifier`` and
    ``distillation_classifier``); CLIP ``post_layernorm`` then
    ``visual_projection``. For a Vision Transformer inside a wrapper the
    head must reproduce the wrapper's output on the last block (checked at
    every call: for example a wrapper returning CLIP's image embedding
    passes, one returning similarities to prompts does not); otherwise, or
    for any other head, pass ``head=``: a callable mapping a block's output
    tokens (B x N x C) to what the model returns (``output_selector``
    applies to it as to the model's output).

    Choices where the paper leaves one, as the authors' code and torchcam
    0.5's ``LeGrad`` make them:

    - ``pooling="mean"`` (default): the head reads the mean of all N
      tokens of the block (the final norm applied to the mean token, as
      the authors' code and torchcam do); ``pooling="model"``: it reads the
      tokens as the model's own head does (the class token for torchvision,
      Hugging Face and CLIP; timm's ``global_pool``);
    - blocks: every block of the model unless ``target_layers`` names some
      (the authors' code defaults to the last two, torchcam's example uses
      the last four);
    - queries: the mean over all queries, prefix tokens included; keys:
      the prefix tokens (class, distillation, register) are dropped after
      the means;
    - normalisation: the blocks' maps are averaged as they are (no
      per-block normalisation), then min-max normalised once.

    Only d s_l / d A_l enters E_l, not the gradients of later blocks'
    scores: in the forward pass every block's input is detached (values
    unchanged), so no gradient flows from one block into the blocks
    before it, and one ``torch.autograd.grad`` of sum_l s_l gives every
    block its own gradient (the backward pass of each block stops at its
    attention probabilities).

    Args:
        head: see above (default: derived from the model's family).
        pooling: ``"mean"`` or ``"model"``, see above.
    """

    detach_block_inputs = True
    keep_block_outputs = True

    def __init__(self, model: torch.nn.Module, target_layers: Sequence[Any] | None = None,
                 reshape_transform: Callable | None = None, *,
                 head: Callable[[torch.Tensor], Any] | None = None, pooling: str = "mean",
                 **kwargs: Any) -> None:
        if head is not None and not callable(head):
            raise TypeError(f"head must be a callable that maps a block's output tokens "
                            f"(B x N x C) to the model's output, or None, got {given(head)}")
        if not isinstance(pooling, str) or pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, "
                             f"got {given(pooling)}")
        super().__init__(model, target_layers, reshape_transform, **kwargs)
        self.head = head
        self.pooling = pooling

    def block_output(self, tokens: torch.Tensor, pooling: str) -> Any:
        """The score tensor of a block's tokens through the head, as the
        targets score it."""
        if pooling == "mean":
            tokens = tokens.mean(dim=1, keepdim=True).expand_as(tokens)
        if self.head is not None:
            return self.select_output(self.head(tokens))
        family_head = self.transformer.head
        assert family_head is not None  # every supported family has one
        output = family_head(tokens)
        return main_tensor(output) if self.transformer.wrapped else self.select_output(output)

    def check_head(self, last_tokens: torch.Tensor | None, outputs: Any) -> None:
        """Raise ValueError, before the backward pass, unless the head on
        the last block's tokens gives the model's output."""
        if last_tokens is None:
            raise ValueError(f"the last block of {self.transformer.name} did not run")
        with torch.no_grad():
            got = self.block_output(last_tokens, "model")
            same = (isinstance(got, torch.Tensor) and isinstance(outputs, torch.Tensor)
                    and got.shape == outputs.shape)
            if same:
                scale = float(outputs.detach().abs().max()) if outputs.numel() else 0.0
                same = torch.allclose(got.float(), outputs.detach().float(), rtol=1e-3,
                                      atol=1e-5 + 1e-3 * scale)
        if not same:
            what = (f"shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                    else type(got).__name__)
            model = (f"shape {tuple(outputs.shape)}" if isinstance(outputs, torch.Tensor)
                     else type(outputs).__name__)
            source = ("head=" if self.head is not None else
                      f"the head of {self.transformer.name} ({self.transformer.head_text})")
            raise ValueError(
                f"LeGrad scores every block's tokens through the model's head, but {source} "
                f"gives {what} on the last block where the model's output is {model} (or the "
                f"values differ): the model does more after its Vision Transformer. Pass "
                "head=lambda tokens: ..., mapping a block's output tokens (B x N x C) to what "
                "the model returns")

    # an instance method where BaseCAM's is static: it reads the call's blocks
    def target_scores(self, targets: Sequence[Callable],  # type: ignore[override]
                      outputs: Any) -> torch.Tensor:
        """sum_l s_l: every target block's own target score (one
        backward pass gives each block its gradient: the blocks' inputs
        are detached)."""
        captured = self.capture()
        self.check_head(captured.last_output, outputs)
        total: torch.Tensor | None = None
        for tokens in captured.outputs:
            assert tokens is not None  # record() checked that every target block ran
            output = self.block_output(tokens, self.pooling)
            scores = AttentionCAM.target_scores(targets, output)
            total = scores if total is None else total + scores
        assert total is not None
        return total

    def token_relevance(self, attentions: list[torch.Tensor],
                        grads: list[torch.Tensor | None]) -> torch.Tensor:
        per_block = []
        for grad in grads:
            assert grad is not None  # uses_gradients
            per_block.append(torch.relu(grad.float()).mean(dim=(1, 2)))
        return torch.stack(per_block).mean(dim=0)
