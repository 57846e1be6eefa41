"""Reshape transforms: token layouts -> B x C x H x W feature maps."""
import math
from typing import Optional, Tuple

import torch


def _grid(tokens: int, height: Optional[int], width: Optional[int]) -> Optional[Tuple[int, int]]:
    if height is not None and width is not None:
        return height, width
    side = math.isqrt(tokens)
    if side * side == tokens:
        return side, side
    return None


def vit_reshape_transform(tensor: torch.Tensor, height: Optional[int] = None,
                          width: Optional[int] = None,
                          num_prefix_tokens: Optional[int] = None) -> torch.Tensor:
    """B x N x C tokens of a Vision Transformer -> B x C x H x W.

    The class token (and the distillation token of DeiT, or any register
    tokens) come first and are dropped. Unless given, the number of such
    prefix tokens and the grid are derived from the token count: the
    largest square grid that leaves 0 to 8 prefix tokens (so 197 tokens ->
    one class token + 14 x 14, 198 -> two + 14 x 14, 50 -> one + 7 x 7).
    For grids that are not square pass ``height`` and ``width``.
    """
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"vit_reshape_transform expects B x tokens x channels, got {shape}")
    tokens = tensor.shape[1]
    if num_prefix_tokens is None:
        if height is not None and width is not None:
            num_prefix_tokens = tokens - height * width
        else:
            num_prefix_tokens = next((p for p in range(0, 9) if p < tokens
                                      and _grid(tokens - p, None, None)), None)
            if num_prefix_tokens is None:
                raise ValueError(f"cannot derive a square patch grid from {tokens} tokens; "
                                 "pass height= and width= (for example with functools.partial)")
    grid = _grid(tokens - num_prefix_tokens, height, width)
    if grid is None or grid[0] * grid[1] != tokens - num_prefix_tokens or num_prefix_tokens < 0:
        raise ValueError(f"{tokens} tokens do not fit {num_prefix_tokens} prefix tokens and a "
                         f"{height} x {width} grid")
    h, w = grid
    result = tensor[:, num_prefix_tokens:, :].reshape(tensor.shape[0], h, w, tensor.shape[2])
    return result.permute(0, 3, 1, 2)


def swinT_reshape_transform(tensor: torch.Tensor, height: Optional[int] = None,
                            width: Optional[int] = None) -> torch.Tensor:
    """Swin Transformer features -> B x C x H x W.

    Accepts the B x H x W x C layout of torchvision's and recent timm's Swin
    stages, and the older B x (H*W) x C token layout (no class token).
    """
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return tensor.permute(0, 3, 1, 2)
    return vit_reshape_transform(tensor, height, width, num_prefix_tokens=0)
