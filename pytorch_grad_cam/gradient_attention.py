
import torch

from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.registry import register_method


@register_method("gradattention", attention=True)
class GradientWeightedAttention(AttentionCAM):
    r"""Gradient-weighted attention: attention times its positive gradient, rolled out.

    The class token's relevance to every patch, accumulated block by block
    from the attention probabilities weighted by their positive gradients.

    With A_l the attention probabilities of block l (B x heads x N x N, the
    tensor multiplied with the values) and S the target score of the
    model's output:

    .. math::

        R_0 = I_N, \qquad
        \bar A_l = \frac{1}{H} \sum_h \mathrm{ReLU}\Big(\frac{\partial S}{\partial A_l}
                   \odot A_l\Big)_h, \qquad
        R_l = R_{l-1} + \bar A_l R_{l-1}

    over the target blocks in forward order; the map is the class token's
    row of R over the patch tokens (for a model without a class token, the
    mean of the rows), on the patch grid, min-max normalised and scaled to
    the input size.

    Chefer, Gur, Wolf, "Generic Attention-model Explainability for
    Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021,
    https://arxiv.org/abs/2103.15679 (rule 6 of the self-attention
    relevance, as the authors' ViT code applies it)

    One backward pass gives every block's gradient (the gradient of the
    model's own output: nothing is detached between the blocks; with
    frozen parameters the graph starts at the first block's input). Per
    family, the attention probabilities are captured as described in
    ``pytorch_grad_cam.attention``; the class token is token 0 of every
    supported family (distillation and register tokens are dropped from
    the map with it).
    """

    def token_relevance(self, attentions: list[torch.Tensor],
                        grads: list[torch.Tensor | None]) -> torch.Tensor:
        relevance = self.identity(attentions[0].float()).clone()
        for attention, grad in zip(attentions, grads):
            assert grad is not None  # uses_gradients
            weighted = torch.relu(grad.float() * attention.float()).mean(dim=1)
            relevance = relevance + torch.bmm(weighted, relevance)
        return self.query_row(relevance)
