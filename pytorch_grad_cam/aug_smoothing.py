"""Test-time augmentation (``aug_smooth=True``): the maps of augmented
copies of the input, de-augmented and averaged."""
from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytorch_grad_cam.legacy import augmented_targets

__all__ = ["augmentation_smoothing"]


def augmentation_smoothing(forward: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
                           transforms: Sequence[Any], batch_size: int,
                           input_tensor: torch.Tensor, targets: Any) -> tuple[torch.Tensor, Any]:
    """(the mean of the de-augmented maps, the model's outputs of every
    augmented copy, transform by transform, or None when they are not
    tensors).

    ``forward(images, targets)`` gives the maps of a batch of copies and
    the model's outputs for them. The copies of as many ttach
    ``transforms`` as fit in ``batch_size`` images (at least one
    transform's copies of the whole batch) go through one pass: on a GPU
    (default ``batch_size`` 64) that is usually all of them at once; on a
    CPU (default 8), whose time per image grows with the batch beyond a
    few images, a batch of 8 images runs as one pass per transform. Every
    image's map is independent of the others in its pass, so the grouping
    does not change the result."""
    transforms = list(transforms)
    batch = input_tensor.shape[0]
    group = max(1, batch_size // batch)
    result: torch.Tensor | None = None
    outputs: list[Any] = []
    for first in range(0, len(transforms), group):
        chosen = transforms[first:first + group]
        augmented = torch.cat([t.augment_image(input_tensor) for t in chosen], dim=0)
        cams, chunk_outputs = forward(augmented, augmented_targets(targets, len(chosen)))
        outputs.append(chunk_outputs)
        # maps B x H x W, or B x K x H x W for K targets per image: the
        # de-augmentation takes the K maps of an image as its channels
        per_target = cams.dim() > input_tensor.dim() - 1
        for k, transform in enumerate(chosen):
            part = cams[k * batch:(k + 1) * batch]
            cam = (transform.deaugment_mask(part) if per_target
                   else transform.deaugment_mask(part[:, None])[:, 0])
            result = cam if result is None else result + cam
    assert result is not None  # at least one transform
    if all(isinstance(o, torch.Tensor) for o in outputs):
        return result / len(transforms), torch.cat(outputs, dim=0)
    return result / len(transforms), None
