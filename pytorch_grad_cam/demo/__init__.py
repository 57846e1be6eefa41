"""The web demo of grad-cam (the ``demo`` extra: ``pip install "grad-cam[demo]"``).

``grad-cam demo`` (or ``python -m pytorch_grad_cam.demo``) serves a page on
http://127.0.0.1:7860 where one picks a bundled photo or uploads one,
chooses the model, the methods, the class (or several) and the layer, and
sees the overlays side by side, the top-5 predictions and, on request, the
faithfulness metrics of each map. It works offline and serves several
users at once.

- :mod:`~pytorch_grad_cam.demo.request`: :func:`explain`, the request as a
  plain function (no Gradio needed);
- :mod:`~pytorch_grad_cam.demo.models`: the shared models, their layers
  and the :class:`DemoError` messages;
- :mod:`~pytorch_grad_cam.demo.classes`: the Class box's entries (classes,
  the top class, the top 3), the classes a request explains;
- :mod:`~pytorch_grad_cam.demo.app`: the Gradio page, :func:`build_demo`
  and :func:`launch` (imported on first use: they need Gradio);
- :mod:`~pytorch_grad_cam.demo.cli`: the command line.

The demo imports the library; the library never imports the demo.
"""
from __future__ import annotations

from typing import Any

from pytorch_grad_cam.demo.models import DemoError, DemoModel, ModelStore
from pytorch_grad_cam.demo.request import Explanation, explain

__all__ = ["DemoError", "DemoModel", "Explanation", "ModelStore", "build_demo", "explain",
           "launch"]


def __getattr__(name: str) -> Any:
    if name in ("build_demo", "launch"):  # Gradio is imported only when the page is built
        from pytorch_grad_cam.demo import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
