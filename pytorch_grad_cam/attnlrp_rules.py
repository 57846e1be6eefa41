"""The propagation rules of AttnLRP, as modified gradients: inside
:func:`lrp_rules`, the forward pass of a Vision Transformer builds an
autograd graph whose gradient, multiplied by the input, is the relevance
of Layer-wise Relevance Propagation with the rules of

Achtibat, Hatefi, Dreyer, Jain, Wiegand, Lapuschkin, Samek, "AttnLRP:
Attention-Aware Layer-Wise Relevance Propagation for Transformers",
ICML 2024, https://arxiv.org/abs/2402.05602

in the "Gradient x Input" form of the authors' package ``lxt`` 2.1
(``lxt.efficient``). With ``R(x) = x * dS/dx`` for the modified gradient
``d/dx``:

- linear layers, convolutions, additions (residuals, position
  embeddings): the epsilon rule with epsilon -> 0, which is the plain
  gradient: left as they are;
- LayerNorm and RMSNorm (``F.layer_norm``, ``F.rms_norm``): the identity
  rule on the normalisation: the standard deviation (root mean square) is
  a constant of the backward pass, so the layer is linear in its input
  (``(x - mean(x)) / std``: the centring keeps its gradient);
- element-wise nonlinearities (``F.gelu``, ``F.silu``, and activation
  modules computed from several functions, such as CLIP's QuickGELU): the
  identity rule, gradient ``f(x) / (x + 1e-10)``, so that
  ``R(x) = R(f(x))``;
- softmax: the rule of the paper (Proposition 3.1),
  ``R(x_i) = x_i (R_i - s_i sum_j R_j)`` with ``R_j = s_j dS/ds_j``, which
  is exactly ``x_i`` times the plain gradient of the softmax: left as it is;
- matrix products of two activations (``Q K^T`` and ``A V``): the uniform
  rule, each factor gets half the relevance of the product: the gradient
  of each factor is multiplied by 0.5; inside
  ``F.scaled_dot_product_attention`` (whose kernel is kept) the gradients
  of Q and K are multiplied by 0.25 and of V by 0.5, the same thing, as
  ``lxt`` divides them.
  A matrix product with a parameter (a frozen weight) is a linear layer.

Everything happens in :class:`LRPRules`, a ``torch.overrides.TorchFunctionMode``
that is active in the calling thread only and only while the block runs,
and, for activation modules that are not one torch function, forward
hooks that act only in the calling thread (``owned_hooks``). No module,
no function and no attribute of the model or of torch is replaced; the
forward pass computes exactly the values of a plain one (the rules change
only the backward pass).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pytorch_grad_cam.activations_and_gradients import hook_handles, owned_hooks
from pytorch_grad_cam.attention import AttentionCapture, _Capture

__all__ = ["IDENTITY_RULE_EPSILON", "COMPOSITE_ACTIVATIONS", "LRPRules", "identity_rule",
           "uniform", "layer_norm", "rms_norm", "lrp_rules"]

#: the epsilon of the identity rule's ratio f(x) / (x + epsilon), as in lxt
IDENTITY_RULE_EPSILON = 1e-10

#: class names of element-wise activation modules computed from several
#: torch functions (so that the function mode cannot see them as one):
#: the identity rule is applied to their output by a forward hook
COMPOSITE_ACTIVATIONS = frozenset({
    "QuickGELUActivation", "QuickGELU", "NewGELUActivation", "FastGELUActivation",
    "GELUTanh", "PytorchGELUTanh", "AccurateGELUActivation", "SiLUActivation",
    "MishActivation", "LaplaceActivation", "ReLUSquaredActivation"})


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor in float32, or float64 if it is."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


class _IdentityRule(torch.autograd.Function):
    """Forward: ``output`` (f(x), computed by the caller); backward: the
    gradient times f(x) / (x + epsilon), in float32."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input, output)
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        input, output = ctx.saved_tensors
        ratio = _wide(output) / (_wide(input) + IDENTITY_RULE_EPSILON)
        return (_wide(grad) * ratio).to(grad.dtype), None


class _Scale(torch.autograd.Function):
    """Forward: the input; backward: the gradient times ``factor``."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return input.view_as(input)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


class _Normalisation(torch.autograd.Function):
    """Forward: ``output``, the norm computed by the caller; backward: the
    identity rule (the scale ``1 / std`` a constant): ``g * w / std``,
    centred over the normalised dimensions for LayerNorm."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, output: torch.Tensor, inverse: torch.Tensor,
                weight: torch.Tensor | None, dims: int, centre: bool) -> torch.Tensor:
        ctx.save_for_backward(inverse, weight)
        ctx.dims, ctx.centre = dims, centre
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        inverse, weight = ctx.saved_tensors
        scaled = _wide(grad) if weight is None else _wide(grad) * _wide(weight)
        scaled = scaled * inverse
        if ctx.centre:
            scaled = scaled - scaled.mean(dim=tuple(range(-ctx.dims, 0)), keepdim=True)
        return scaled.to(grad.dtype), None, None, None, None, None


def identity_rule(input: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``output`` (an element-wise function of ``input``) with the identity
    rule as its backward pass: gradient ``f(x) / (x + 1e-10)``, so that
    ``x * gradient`` passes the relevance of the output unchanged."""
    return _IdentityRule.apply(input, output.detach())


def uniform(tensor: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """``tensor`` with its gradient multiplied by ``factor`` (the uniform
    rule of a product of two activations: 0.5 for each factor)."""
    return _Scale.apply(tensor, factor)


def _statistics_dims(normalized_shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(range(-len(normalized_shape), 0))


def layer_norm(input: torch.Tensor, normalized_shape: Sequence[int],
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """``F.layer_norm`` (the same values) with the identity rule on the
    normalisation: the gradient of ``(x - mean(x)) / std(x) * w + b`` with
    ``std`` held constant."""
    output = F.layer_norm(input, normalized_shape, weight, bias, eps)
    if not input.requires_grad:
        return output
    with torch.no_grad():
        dims = _statistics_dims(normalized_shape)
        x = _wide(input)
        variance = x.var(dim=dims, unbiased=False, keepdim=True)
        inverse = torch.rsqrt(variance + eps)
    return _Normalisation.apply(input, output.detach(), inverse, weight, len(dims), True)


def rms_norm(input: torch.Tensor, normalized_shape: Sequence[int],
             weight: torch.Tensor | None = None, eps: float | None = None) -> torch.Tensor:
    """``F.rms_norm`` (the same values) with the identity rule: the gradient
    of ``x / rms(x) * w`` with ``rms`` held constant."""
    output = F.rms_norm(input, normalized_shape, weight, eps)
    if not input.requires_grad:
        return output
    with torch.no_grad():
        dims = _statistics_dims(normalized_shape)
        x = _wide(input)
        epsilon = torch.finfo(input.dtype).eps if eps is None else eps
        inverse = torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + epsilon)
    return _Normalisation.apply(input, output.detach(), inverse, weight, len(dims), False)


def _both_activations(a: Any, b: Any) -> bool:
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
            and a.requires_grad and b.requires_grad)


def _sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
          *args: Any, **kwargs: Any) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (the kernel itself) with the uniform
    rule on ``Q K^T`` and on ``A V``: the softmax between them keeps its
    plain gradient, which is linear in the gradient it receives, so halving
    the gradient of A and then of Q and K is the same as a quarter at Q and
    K, and V gets half (as lxt's attention wrapper divides them)."""
    return F.scaled_dot_product_attention(uniform(query, 0.25), uniform(key, 0.25),
                                          uniform(value, 0.5), *args, **kwargs)


def _mha(*args: Any, **kwargs: Any) -> Any:
    """``F.multi_head_attention_forward``, explicitly (as the attention
    capture computes it), under the rules: its products of two activations
    get the uniform rule."""
    record = AttentionCapture(attentions=[None])
    record.current = 0
    with LRPRules():
        return _Capture(record, "mha", None).mha(*args, **kwargs)


_MATMULS = frozenset({torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
                      torch.Tensor.bmm})
_ELEMENTWISE_RULED = frozenset({F.gelu, F.silu, F.mish})


class LRPRules(TorchFunctionMode):
    """The function mode of :func:`lrp_rules`: sees the torch functions the
    forward pass calls (in this thread only) and gives the ones with an
    AttnLRP rule their rule's backward pass. ``F.scaled_dot_product_attention``
    keeps its kernel, its inputs' gradients scaled;
    ``F.multi_head_attention_forward`` is computed explicitly, as the
    attention capture of ``pytorch_grad_cam.attention`` computes it, under
    the rules."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _MATMULS and len(args) == 2 and _both_activations(*args):
            return func(uniform(args[0]), uniform(args[1]), **kwargs)
        if func is F.scaled_dot_product_attention:
            return _sdpa(*args, **kwargs)
        if func is F.layer_norm:
            return layer_norm(*args, **kwargs)
        if func is F.rms_norm:
            return rms_norm(*args, **kwargs)
        if func in _ELEMENTWISE_RULED and args and isinstance(args[0], torch.Tensor) \
                and args[0].requires_grad:
            return identity_rule(args[0], func(*args, **kwargs))
        if func is F.multi_head_attention_forward:
            return _mha(*args, **kwargs)
        return func(*args, **kwargs)


@contextmanager
def lrp_rules(model: torch.nn.Module) -> Iterator[None]:
    """While the block runs, the forward passes of this thread build the
    graph of AttnLRP's modified gradients (see the module's docstring):
    the function mode :class:`LRPRules`, and forward hooks on the
    activation modules of ``model`` whose class is in
    :data:`COMPOSITE_ACTIVATIONS` (their output gets the identity rule).
    The hooks are removed and the mode is left when the block ends, also
    on an exception."""

    with owned_hooks() as mine, hook_handles() as handles:

        def activation(module: torch.nn.Module, args: Any, output: Any) -> Any:
            if mine() and args and isinstance(args[0], torch.Tensor) \
                    and isinstance(output, torch.Tensor) and output.shape == args[0].shape \
                    and args[0].requires_grad:
                return identity_rule(args[0], output)
            return None

        for module in model.modules():
            if type(module).__name__ in COMPOSITE_ACTIVATIONS:
                handles.append(module.register_forward_hook(activation))
        with LRPRules():
            yield
