"""The warning of a CAM call whose maps are all zeros (a mixin of
:class:`~pytorch_grad_cam.base_cam.BaseCAM`): once per CAM object, which
maps, why, and which layer of the model to try instead."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from pytorch_grad_cam.call_context import running_call
from pytorch_grad_cam.target_layers import empty_map_reason
from pytorch_grad_cam.warn import warn_at_caller

__all__ = ["EmptyMapWarning"]


class _Explainer(Protocol):
    """What the warning reads of the CAM object: BaseCAM's."""

    model: torch.nn.Module
    target_layers: list[Any]
    _warned_empty: bool

    def select_output(self, output: Any) -> Any: ...

    def target_scores(self, targets: Sequence[Callable], outputs: Any) -> torch.Tensor: ...

    def empty_map_message(self: _Explainer, images: list[int]) -> str: ...


class EmptyMapWarning:
    """``_warn_if_empty`` (called by a CAM call with its maps) and the
    message a method may override (``empty_map_message``)."""

    def _warn_if_empty(self: _Explainer, cam: np.ndarray) -> None:
        """Once per CAM object (the first call with an all-zero map): which
        images, why, and which layer of this model to try instead."""
        if self._warned_empty:
            return
        context = running_call()
        rows = len(cam) * (context.group if context is not None else 1)  # (image, target) pairs
        empty = np.flatnonzero(cam.reshape(rows, -1).max(axis=1) <= 0).tolist()
        if empty:
            self._warned_empty = True
            message = self.empty_map_message(empty)
            if rows > len(cam):
                group = rows // len(cam)
                message += (f" (with {group} targets per image, map r is image r // {group}'s "
                            f"target r % {group})")
            warn_at_caller(message + " (shown once per CAM object).", RuntimeWarning)

    def empty_map_message(self: _Explainer, images: list[int]) -> str:
        """Why the maps of ``images`` may be all zeros and what to try
        (``target_layers.empty_map_reason``: a score that does not depend on
        the input, or a layer before the target layers). A method whose maps
        come from elsewhere than a layer's channels overrides this."""
        return empty_map_reason(self.model, self.target_layers, images, running_call(),
                                lambda targets, output:
                                self.target_scores(targets, self.select_output(output)))
