"""Token layouts: where an image's patches are in the output of a
transformer layer, and how that output becomes B x C x H x W maps.

The layouts the library knows:

- **tokens**: B x N x C, a few *prefix tokens* first (a class token, the
  distillation token of DeiT, register tokens: 0 to
  :data:`MAX_PREFIX_TOKENS`), then the patch tokens row by row
  (:func:`tokens_to_maps`, :class:`TokenGrid`, :func:`vit_tokens_to_maps`);
- **channels last**: B x H x W x C (Swin stages, timm ConvNeXt norms:
  :func:`channels_last_to_maps`, :class:`ChannelsLast`);
- **maps**: B x C x H x W, nothing to do.

The patch grid of a token sequence is given (``height`` x ``width``),
derived from the token count (the largest square grid that leaves 0 to 8
prefix tokens: :func:`square_prefixes`), or, for a relevance per token of
an input that is not square, the factorisation of the patch count closest
to the input's aspect ratio (:func:`patch_grid`). :func:`output_layout`
tells from an output's shape which layout it has (the layer finder's
probe).

Every reshape transform of token layouts
(``utils.reshape_transforms.vit_reshape_transform`` and
``swinT_reshape_transform``), the family table (``models.families``), the
layer finder and the attention methods use these functions. This module
imports nothing of the package, so ``utils`` may build on it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["MAX_PREFIX_TOKENS", "ChannelsLast", "ReshapeTransform", "TokenGrid", "channels_last_to_maps",
           "grid_to_maps", "output_layout", "patch_grid", "prefix_candidates",
           "square_prefixes", "square_side", "stated_prefix_tokens", "tokens_to_maps",
           "vit_tokens_to_maps"]

#: the most prefix tokens (class, distillation, register tokens) a token
#: count is searched for
MAX_PREFIX_TOKENS = 8

Transform = Callable[[torch.Tensor], torch.Tensor]
#: what a CAM's ``reshape_transform`` is: a layer's output (a tensor, or a
#: dict / tuple / list of tensors) -> B x C x H x W
ReshapeTransform = Callable[[Any], torch.Tensor]


# ----------------------------------------------------------- patch grids
def square_side(count: int) -> int | None:
    """The side of a square grid of ``count`` cells (``count >= 0``), or
    ``None`` when ``count`` is not a square."""
    side = math.isqrt(count)
    return side if side * side == count else None


def square_prefixes(tokens: int) -> list[int]:
    """The prefix-token counts, 0 to :data:`MAX_PREFIX_TOKENS` (smallest
    first), that leave one patch token or more on a square grid: 197 ->
    ``[1]`` (a class token and 14 x 14), 50 -> ``[1]`` (7 x 7)."""
    return [prefix for prefix in range(MAX_PREFIX_TOKENS + 1)
            if prefix < tokens and square_side(tokens - prefix) is not None]


def stated_prefix_tokens(model: Any) -> int | None:
    """The prefix-token count a model states (timm's
    ``num_prefix_tokens``), or ``None``."""
    own = getattr(model, "num_prefix_tokens", None)
    return own if isinstance(own, int) and own >= 0 else None


def prefix_candidates(tokens: int, num_prefix_tokens: int | None = None) -> list[int]:
    """The prefix-token counts that leave a square grid of two patch tokens
    or more: ``[num_prefix_tokens]`` if it is given and does (else none),
    otherwise those of :func:`square_prefixes`."""
    if num_prefix_tokens is not None:
        rest = tokens - num_prefix_tokens
        return [num_prefix_tokens] if rest > 1 and square_side(rest) is not None else []
    return [prefix for prefix in square_prefixes(tokens) if tokens - prefix > 1]


def patch_grid(patches: int, size: Sequence[int]) -> tuple[int, int]:
    """(rows, columns) of ``patches`` patch tokens for an input of spatial
    ``size`` (H, W): the factorisation whose aspect ratio is closest to the
    input's (a square grid for a square input; of two equally close, the
    one with fewer rows)."""
    height, width = int(size[0]), int(size[1])
    best: tuple[float, int, int] | None = None
    for rows in range(1, patches + 1):
        if patches % rows:
            continue
        columns = patches // rows
        error = abs(math.log((rows / columns) / (height / width)))
        if best is None or error < best[0] - 1e-9:
            best = (error, rows, columns)
    if best is None:
        raise ValueError(f"no patch tokens left ({patches}) to lay out on a grid")
    return best[1], best[2]


# ------------------------------------------------------ layouts -> maps
def grid_to_maps(tensor: torch.Tensor, prefix: int, rows: int, columns: int) -> torch.Tensor:
    """B x N x C tokens -> B x C x ``rows`` x ``columns``: the first
    ``prefix`` tokens dropped, the others laid out row by row."""
    patches = tensor[:, prefix:]
    return patches.reshape(tensor.shape[0], rows, columns, tensor.shape[2]).permute(0, 3, 1, 2)


def channels_last_to_maps(tensor: torch.Tensor) -> torch.Tensor:
    """B x H x W x C -> B x C x H x W."""
    return tensor.permute(0, 3, 1, 2)


def tokens_to_maps(tensor: torch.Tensor, height: int | None = None,
                   width: int | None = None,
                   num_prefix_tokens: int | None = None) -> torch.Tensor:
    """B x N x C tokens -> B x C x H x W (what
    ``utils.reshape_transforms.vit_reshape_transform`` does).

    Unless given, the number of prefix tokens is ``N - height * width``
    (with a grid) or the smallest of :func:`square_prefixes` (without), and
    the grid is square.

    Raises:
        ValueError: the tensor is not B x N x C, or its tokens fit no
            square grid, or not the given grid and prefix.
    """
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"vit_reshape_transform expects B x tokens x channels, got {shape}")
    tokens = tensor.shape[1]
    if num_prefix_tokens is None:
        if height is not None and width is not None:
            num_prefix_tokens = tokens - height * width
        else:
            prefixes = square_prefixes(tokens)
            if not prefixes:
                raise ValueError(f"cannot derive a square patch grid from {tokens} tokens; "
                                 "pass height= and width= (for example with functools.partial)")
            num_prefix_tokens = prefixes[0]
    grid: tuple[int, int] | None = None
    if height is not None and width is not None:
        grid = height, width
    else:
        side = square_side(tokens - num_prefix_tokens)
        grid = (side, side) if side is not None else None
    if grid is None or grid[0] * grid[1] != tokens - num_prefix_tokens or num_prefix_tokens < 0:
        raise ValueError(f"{tokens} tokens do not fit {num_prefix_tokens} prefix tokens and a "
                         f"{height} x {width} grid")
    return grid_to_maps(tensor, num_prefix_tokens, grid[0], grid[1])


def vit_tokens_to_maps(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """B x tokens x C -> B x C x ``height`` x ``width``, dropping the class
    (and distillation or register) tokens that come first; a tensor that
    already is B x C x H x W passes unchanged."""
    if tensor.dim() == 4:
        return tensor
    return tokens_to_maps(tensor, height=height, width=width)


class TokenGrid:
    """reshape_transform for B x tokens x C outputs: drops the first
    ``prefix`` tokens (class, distillation, register tokens) and lays the
    rest out as a square grid, B x C x side x side."""

    def __init__(self, prefix: int) -> None:
        self.prefix = int(prefix)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4:
            return tensor
        patches = tensor[:, self.prefix:].shape[1]
        side = square_side(patches)
        if side is None:
            raise ValueError(f"{patches} patch tokens (after {self.prefix} prefix "
                             "tokens) are not a square grid; pass reshape_transform= with the "
                             "grid of your input size")
        return grid_to_maps(tensor, self.prefix, side, side)

    def __repr__(self) -> str:
        return f"TokenGrid(prefix={self.prefix})"


class ChannelsLast:
    """reshape_transform for B x H x W x C outputs (Swin, timm ConvNeXt
    norms): B x C x H x W."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return channels_last_to_maps(tensor)

    def __repr__(self) -> str:
        return "ChannelsLast()"


# A results store of ``pytorch_grad_cam.datasets`` records its reshape
# transform by module and name, and resumes only with the same one: these
# keep the names they were published under (those modules re-export them),
# so that stores written before they moved here still resume.
vit_tokens_to_maps.__module__ = "pytorch_grad_cam.layers"
TokenGrid.__module__ = ChannelsLast.__module__ = "pytorch_grad_cam.layer_finder"


# ------------------------------------------------- which layout is it?
def output_layout(shape: Sequence[int], module: torch.nn.Module,
                  num_prefix_tokens: int | None, input_size: tuple[int, int]
                  ) -> tuple[Transform | None, list[int] | None] | None:
    """The layout of an output of ``shape`` that ``module`` returned, as
    ``(reshape_transform, alternatives)``; ``None`` for an output that is
    no spatial map.

    - B x C x H x W: ``(None, None)``, or ``(ChannelsLast(), None)`` when
      ``module`` is a ``LayerNorm``/``Linear`` over the last axis (then
      the output is B x H x W x C);
    - B x N x C: ``(TokenGrid(prefix), None)`` for the one prefix-token
      count that leaves a square grid (:func:`prefix_candidates`, with the
      model's own ``num_prefix_tokens`` if it states one; of several, those
      whose grid side divides the input's ``input_size``), or ``(None,
      counts)`` when several remain (ambiguous).
    """
    shape = tuple(shape)
    if len(shape) == 4:
        last_dim_op = isinstance(module, (torch.nn.LayerNorm, torch.nn.Linear))
        features = getattr(module, "normalized_shape", None) or \
            (getattr(module, "out_features", None),)
        if last_dim_op and tuple(features)[-1] == shape[-1] and shape[-1] != shape[1]:
            return ChannelsLast(), None
        return None, None
    if len(shape) == 3:
        prefixes = prefix_candidates(shape[1], num_prefix_tokens)
        if len(prefixes) > 1:
            # patches tile the image: keep the grids whose side divides the input's
            height, width = input_size
            tiling = [p for p in prefixes
                      if height % math.isqrt(shape[1] - p) == 0
                      and width % math.isqrt(shape[1] - p) == 0]
            prefixes = tiling or prefixes
        if len(prefixes) == 1:
            return TokenGrid(prefixes[0]), None
        if prefixes:
            return None, prefixes  # ambiguous
    return None
