"""Reshape transforms: token layouts (built on ``models.tokens``) and
structured layer outputs (dicts, tuples, lists of feature maps) -> B x C x
H x W feature maps."""
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from pytorch_grad_cam.models.tokens import channels_last_to_maps, tokens_to_maps
from pytorch_grad_cam.utils.layer_outputs import output_leaves, output_paths


def vit_reshape_transform(tensor: torch.Tensor, height: int | None = None,
                          width: int | None = None,
                          num_prefix_tokens: int | None = None) -> torch.Tensor:
    """B x N x C tokens of a Vision Transformer -> B x C x H x W.

    The class token (and the distillation token of DeiT, or any register
    tokens) come first and are dropped. Unless given, the number of such
    prefix tokens and the grid are derived from the token count: the
    largest square grid that leaves 0 to 8 prefix tokens (so 197 tokens ->
    one class token + 14 x 14, 198 -> two + 14 x 14, 50 -> one + 7 x 7).
    For grids that are not square pass ``height`` and ``width``.
    (``models.tokens.tokens_to_maps``.)
    """
    return tokens_to_maps(tensor, height, width, num_prefix_tokens)


def swinT_reshape_transform(tensor: torch.Tensor, height: int | None = None,
                            width: int | None = None) -> torch.Tensor:
    """Swin Transformer features -> B x C x H x W.

    Accepts the B x H x W x C layout of torchvision's and recent timm's Swin
    stages, and the older B x (H*W) x C token layout (no class token).
    """
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return channels_last_to_maps(tensor)
    return tokens_to_maps(tensor, height, width, num_prefix_tokens=0)


# ------------------------------------------- layers that return several tensors
# A target layer may return a dict, tuple or list of tensors (the feature
# pyramid of a detection backbone, a block that returns (output, attention)).
# Its reshape_transform receives that structure (for the activations and,
# for the gradient methods, the gradients in the same structure) and
# returns B x C x H x W. The transforms below may also tell AblationCAM
# where the channels of their result come from (``channel_leaves``): the
# positions, in ``utils.layer_outputs.output_leaves(output)`` order,
# of the tensors whose channels make up the result's channels, in order.
# A transform without it is taken to concatenate all the tensors in order.

def _interpolation(tensor: torch.Tensor) -> str:
    modes = {3: "linear", 4: "bilinear", 5: "trilinear"}
    if tensor.dim() not in modes:
        raise ValueError(f"a level to resize must be B x C x H x W (or B x C x D x H x W), got "
                         f"shape {tuple(tensor.shape)}")
    return modes[tensor.dim()]


def fasterrcnn_reshape_transform(x: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The feature pyramid of torchvision's Faster R-CNN backbone (an
    ``OrderedDict`` of levels ``'0'``, ``'1'``, ``'2'``, ``'3'``, ``'pool'``)
    -> B x (5 * 256) x h x w: every level's absolute value, resized
    (bilinear) to the size of the ``'pool'`` level, concatenated on the
    channels in the dict's order. Exactly grad-cam 1.5.7's transform.

    Channel ``k`` of the result is channel ``k % 256`` of level ``k // 256``
    (AblationCAM ablates it there). The gradients of the gradient methods
    go through the same transform, so their sign is lost (GradCAM's weights
    are then means of ``|gradient|``, as in 1.5.7); ``combine_levels()`` keeps
    signs. Example::

        model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights="DEFAULT").eval()
        cam = EigenCAM(model, target_layers=[model.backbone],
                       reshape_transform=fasterrcnn_reshape_transform)
        maps = cam(images, targets=[FasterRCNNBoxScoreTarget(labels, boxes)])
    """
    if not isinstance(x, Mapping) or "pool" not in x:
        keys = f" with keys {list(x)}" if isinstance(x, Mapping) else ""
        raise ValueError(f"fasterrcnn_reshape_transform expects the dict of feature pyramid "
                         f"levels with a 'pool' level (torchvision's Faster R-CNN backbone), got "
                         f"{type(x).__name__}{keys}; for other pyramids use combine_levels()")
    target_size = x["pool"].size()[-2:]
    activations = []
    for value in x.values():
        activations.append(torch.nn.functional.interpolate(torch.abs(value), target_size,
                                                           mode="bilinear"))
    return torch.cat(activations, dim=1)


def _entry(output: Any, key: Any, who: str) -> Any:
    """``output[key]`` of a dict, tuple or list, with an error that names
    the keys (or the length) there are."""
    if isinstance(output, Mapping):
        if key in output:
            return output[key]
        raise ValueError(f"{who}: the layer's output has no key {key!r} (its keys: "
                         f"{list(output)})")
    if isinstance(output, (tuple, list)):
        if isinstance(key, int) and not isinstance(key, bool) and -len(output) <= key < len(output):
            return output[key]
        raise ValueError(f"{who}: the layer's output is a {type(output).__name__} of length "
                         f"{len(output)}; key must be an index in {-len(output)}..{len(output) - 1}"
                         f", got {key!r}")
    raise ValueError(f"{who}: the layer's output is a {type(output).__name__}, not a dict, tuple "
                     "or list to select from")


def _leaf_positions(output: Any, key: Any) -> list[int]:
    """Positions (in output_leaves order) of the tensors inside output[key]."""
    if isinstance(output, (tuple, list)) and isinstance(key, int) and key < 0:
        key += len(output)
    return [position for position, path in enumerate(output_paths(output)) if path[:1] == (key,)]


class SelectOutputKey:
    """reshape_transform that takes one entry of a structured layer output
    (a key of a dict, an index of a tuple or list), optionally followed by
    another transform ``then``. See :func:`select_output_key`."""

    def __init__(self, key: Any, then: Callable[[Any], torch.Tensor] | None = None) -> None:
        if then is not None and not callable(then):
            raise TypeError(f"then must be a reshape transform (callable) or None, got "
                            f"{type(then).__name__}")
        self.key = key
        self.then = then

    def __call__(self, output: Any) -> torch.Tensor:
        value = _entry(output, self.key, repr(self))
        return self.then(value) if self.then is not None else value

    def channel_leaves(self, output: Any) -> list[int]:
        """Where the channels of the result come from (for AblationCAM)."""
        positions = _leaf_positions(output, self.key)
        inner = getattr(self.then, "channel_leaves", None)
        if inner is not None:
            return [positions[i] for i in inner(_entry(output, self.key, repr(self)))]
        return positions

    def __repr__(self) -> str:
        then = f", then={getattr(self.then, '__name__', self.then)!r}" if self.then else ""
        return f"select_output_key({self.key!r}{then})"


def select_output_key(key: Any, then: Callable[[Any], torch.Tensor] | None = None
                      ) -> SelectOutputKey:
    """A reshape_transform that explains one entry of a layer that returns a
    dict, tuple or list: ``output[key]`` (a dict key, or an index), then
    ``then`` if given (for example ``vit_reshape_transform`` for a block
    that returns ``(tokens, attention)``).

    The gradients take the same entry, so GradCAM's map at
    ``select_output_key('0')`` of a Faster R-CNN backbone is the map of the
    FPN level ``'0'``, as if that level's layer were the target. Examples::

        # one level of torchvision's Faster R-CNN feature pyramid
        cam = GradCAM(model, target_layers=[model.backbone],
                      reshape_transform=select_output_key("0"))
        # a transformer block that returns (hidden_states, attention_weights)
        reshape = select_output_key(0, then=vit_reshape_transform)
    """
    return SelectOutputKey(key, then)


class CombineLevels:
    """reshape_transform that resizes several levels of a structured layer
    output to one size and concatenates them on the channels. See
    :func:`combine_levels`."""

    def __init__(self, size: Any = None, abs: bool = False,
                 keys: Sequence[Any] | None = None) -> None:
        self.size = size
        self.abs = bool(abs)
        self.keys = list(keys) if keys is not None else None
        if self.keys is not None and not self.keys:
            raise ValueError("keys must name at least one level, or be None (all levels)")

    def _levels(self, output: Any) -> list[torch.Tensor]:
        if self.keys is not None:
            return [_entry(output, key, repr(self)) for key in self.keys]
        levels = output_leaves(output)
        if not levels:
            raise ValueError(f"{self!r}: the layer's output holds no tensor")
        return levels

    def _target_size(self, output: Any, levels: list[torch.Tensor]) -> tuple[int, ...]:
        size = self.size
        if size is None:
            return tuple(levels[0].shape[2:])
        if isinstance(size, (tuple, list)) and all(isinstance(s, int) for s in size):
            return tuple(size)
        level = _entry(output, size, repr(self))
        if not isinstance(level, torch.Tensor):
            raise ValueError(f"{self!r}: size names the entry {size!r}, which is a "
                             f"{type(level).__name__}, not a tensor")
        return tuple(level.shape[2:])

    def __call__(self, output: Any) -> torch.Tensor:
        levels = self._levels(output)
        size = self._target_size(output, levels)
        resized = []
        for level in levels:
            if not isinstance(level, torch.Tensor):
                raise ValueError(f"{self!r}: a level is a {type(level).__name__}, not a tensor")
            if self.abs:
                level = torch.abs(level)
            if tuple(level.shape[2:]) != size:
                level = torch.nn.functional.interpolate(level, size, mode=_interpolation(level))
            resized.append(level)
        return torch.cat(resized, dim=1)

    def channel_leaves(self, output: Any) -> list[int]:
        """Where the channels of the result come from (for AblationCAM)."""
        if self.keys is None:
            return list(range(len(output_leaves(output))))
        return [position for key in self.keys for position in _leaf_positions(output, key)]

    def __repr__(self) -> str:
        keys = f", keys={self.keys!r}" if self.keys is not None else ""
        return f"combine_levels(size={self.size!r}, abs={self.abs}{keys})"


def combine_levels(size: Any = None, abs: bool = False,
                   keys: Sequence[Any] | None = None) -> CombineLevels:
    """A reshape_transform for a layer that returns several feature maps (a
    feature pyramid as a dict, tuple or list): every level resized
    (bilinear; trilinear for volumes) to one size and concatenated on the
    channels, B x (C_1 + C_2 + ...) x h x w.

    Args:
        size: the size to resize to: ``None`` (default) the size of the
            *first* level (for torchvision's feature pyramids, whose first
            level is the finest, the largest); a key (or index) of the
            output: that level's size (``"pool"``: the smallest level of a
            Faster R-CNN pyramid, as ``fasterrcnn_reshape_transform``); or
            ``(h, w)``.
        abs: take every level's absolute value first (as grad-cam 1.5.7's
            Faster R-CNN transform does; it also drops the sign of the
            gradients, default False keeps it).
        keys: the levels to combine, in this order (default: every tensor
            of the output, in its order).

    The channel index of the result runs through the levels in order (the
    channels of the first level, then those of the second, ...); AblationCAM
    and ScoreCAM perturb channels of that concatenation. Example::

        # RetinaNet / FCOS: levels '0', '1', '2', 'p6', 'p7', at the size of '0'
        cam = GradCAM(model, target_layers=[model.backbone],
                      reshape_transform=combine_levels())
    """
    return CombineLevels(size, abs, keys)


fasterrcnn_reshape_transform.channel_leaves = (  # type: ignore[attr-defined]
    lambda output: list(range(len(output))))
