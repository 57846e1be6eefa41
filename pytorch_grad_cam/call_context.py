"""What an explainer's calls share with the code around them.

``ReleaseOnExit``: the context-manager form of the established API,
``with GradCAM(...) as cam: ...``, for every explainer (the CAM methods,
SESS, DeepFeatureFactorization).
"""
from __future__ import annotations

from typing import Any, Literal, TypeVar

__all__ = ["ReleaseOnExit"]

_Self = TypeVar("_Self", bound="ReleaseOnExit")


class ReleaseOnExit:
    """``with explainer as e: ...`` calls ``release()`` when the block
    ends and never swallows an exception."""

    def release(self) -> None:
        """Nothing stays registered between calls (hooks live only inside a
        call); kept for code written for earlier releases, which called it."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> Literal[False]:
        self.release()
        return False  # never swallow an exception
