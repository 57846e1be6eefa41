"""The Gradio page of the web demo: :func:`build_demo` and :func:`launch`.

The page converts its inputs for :func:`pytorch_grad_cam.demo.request.explain`
and its outputs for Gradio; nothing else happens here. What the page
promises:

- offline: no analytics (``analytics_enabled=False``, and
  ``GRADIO_ANALYTICS_ENABLED=False`` before Gradio is imported), no share
  link, no run history that could be sent to a Hugging Face bucket, a theme
  with the system's fonts (nothing is fetched from a font service);
- it listens on 127.0.0.1 unless told otherwise;
- nothing of the users' photos is left behind: Gradio's cache and the maps
  are in folders of this process (:mod:`~pytorch_grad_cam.demo.tempdirs`),
  removed when it exits, on Ctrl-C and on SIGTERM;
- several users at once: the *Explain* event runs up to ``concurrency``
  requests in parallel, each with its own CAM objects on the shared model;
- a bad input gets a message in the page (an error pop-up), never a stack
  trace: the message of the :class:`~pytorch_grad_cam.demo.models.DemoError`,
  or for an unexpected failure its type and first line (the traceback goes
  to the server's log).

The *Explain* event is also the HTTP API ``/explain`` (see the page's "Use
via API" link): its outputs include the maps as a ``.npz`` file (one S x S
float32 array per method, the explained ``category`` and the ``top5``
indices; with several classes each method's K x S x S maps and the
``categories``), which is how the load test checks every answer. The class
input takes a list of entries (the page's multi-select) or, as it did
before, one string.
"""
from __future__ import annotations

import html
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytorch_grad_cam.demo.tempdirs import ScratchFolder, gradio_cache, process_folder

# before Gradio is imported: it reads these when it starts; its cache (the uploads, the
# overlays and maps it serves) goes to a folder of this process, removed when it stops
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
gradio_cache()

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

if int(gr.__version__.split(".")[0]) < 6:
    raise ImportError(f"the web demo needs gradio 6 or later, found {gr.__version__} "
                      "(pip install \"grad-cam[demo]\")")

from pytorch_grad_cam.demo.classes import TOP_CHOICES  # noqa: E402
from pytorch_grad_cam.demo.models import (  # noqa: E402
    DEFAULT_MODEL,
    IMAGENET_CLASSES,
    DemoError,
    ModelFactory,
    ModelStore,
)
from pytorch_grad_cam.demo.request import (  # noqa: E402
    AUTOMATIC,
    DEFAULT_MAX_PIXELS,
    DEFAULT_METHODS,
    Explanation,
    explain,
    method_choices,
)

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_HOST", "MapFiles", "build_demo", "bundled_photos",
           "class_choices", "launch", "make_handler", "offline_theme"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CONCURRENCY = 4
#: the largest upload Gradio accepts
MAX_FILE_SIZE = "50mb"
SOURCE_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")
_SKIMAGE_PHOTOS = {"chelsea.jpg": "chelsea", "coffee.jpg": "coffee", "astronaut.jpg": "astronaut"}
METRIC_HEADERS = ["method", "DropInConfidence (lower is better)",
                  "IncreaseInConfidence (higher is better)"]
#: the metrics table's headers when several classes were explained
CLASS_METRIC_HEADERS = [METRIC_HEADERS[0], "class", *METRIC_HEADERS[1:]]


def _supported(function: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The ``options`` that ``function`` takes (Gradio 6 releases differ)."""
    parameters = inspect.signature(function).parameters
    return {name: value for name, value in options.items() if name in parameters}


def offline_theme() -> gr.themes.Base:
    """Gradio's default theme with the system's fonts, so that the page
    loads no font from anywhere."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def bundled_photos() -> list[Path]:
    """The photos the page offers: ``examples/*.jpg`` of a clone, else the
    same photos from ``skimage.data`` written once to ``photos`` in the
    process's own folder (:func:`~pytorch_grad_cam.demo.tempdirs.process_folder`,
    removed when the demo stops); none when neither is there."""
    found = [SOURCE_ROOT / "examples" / name for name in PHOTOS]
    if all(path.is_file() for path in found):
        return found
    try:
        import skimage.data  # noqa: PLC0415  (optional, as everywhere: see pyproject.toml)
    except ImportError:
        return []
    folder = process_folder() / "photos"
    folder.mkdir(exist_ok=True)
    photos = []
    for name, function in _SKIMAGE_PHOTOS.items():
        path = folder / name
        if not path.is_file():
            partial = folder / f".{name}.{uuid.uuid4().hex}.partial"
            Image.fromarray(getattr(skimage.data, function)()).save(partial, "JPEG", quality=92)
            os.replace(partial, path)
        photos.append(path)
    return photos


def class_choices() -> list[tuple[str, str]]:
    """The Class box's choices: the top class, the top 3 and 5 classes,
    then every ImageNet class as ``"tabby (281)"`` (the box filters them as
    one types)."""
    return [("top class (automatic)", AUTOMATIC), *TOP_CHOICES] + [
        (f"{name} ({index})", str(index)) for index, name in enumerate(IMAGENET_CLASSES)]


class MapFiles:
    """The ``.npz`` files of the maps, in a temporary folder of their own
    (a :class:`~pytorch_grad_cam.demo.tempdirs.ScratchFolder`), removed by
    :meth:`close`, when this object is garbage collected, when the process
    exits and on SIGTERM; files older than ``keep_seconds`` are removed as
    new ones are written (Gradio copies each into its own cache, which it
    cleans itself: ``delete_cache``)."""

    def __init__(self, keep_seconds: float = 600.0) -> None:
        self._scratch = ScratchFolder("grad-cam-demo-maps-")
        self.folder = self._scratch.path
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()

    def write(self, result: Explanation) -> str:
        """Save the maps of ``result`` (with several classes each method's
        K x S x S maps and the ``categories``); the file's path."""
        path = self.folder / f"maps-{uuid.uuid4().hex[:12]}.npz"
        arrays: dict[str, Any] = dict(result.maps.items())
        arrays["category"] = np.array(result.category)
        arrays["top5"] = np.array([p.index for p in result.predictions])
        if len(result.categories) > 1:
            arrays["categories"] = np.array(result.categories)
        np.savez(path, **arrays)
        self._prune()
        return str(path)

    def _prune(self) -> None:
        limit = time.time() - self.keep_seconds
        with self._lock:
            for old in self.folder.glob("maps-*.npz"):
                try:
                    if old.stat().st_mtime < limit:
                        old.unlink()
                except FileNotFoundError:  # another request removed it first
                    continue

    def close(self) -> None:
        """Remove the folder and its files."""
        self._scratch.close()


def _photo_path(photo: Any) -> str | None:
    """The server-side path of the Photo box's value (a FileData dict when
    Gradio's preprocessing is off, a path when it is on), or None."""
    if photo is None:
        return None
    if isinstance(photo, (str, Path)):
        return str(photo)
    if isinstance(photo, Mapping):
        path = photo.get("path")
        return str(path) if path else None
    raise DemoError(f"the photo must be an uploaded file, got {type(photo).__name__}")


def _message(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _escape(text: str) -> str:
    """Text for the page's HTML (error pop-ups and the status render HTML)."""
    return html.escape(text, quote=False)


def _status(result: Explanation) -> str:
    titles = ", ".join(dict.fromkeys(r.title for r in result.results))
    classes = ", ".join(f"**{_escape(label)}**" for label in result.class_labels)
    lines = [f"Explained {classes} with {titles} on "
             f"`{_escape(result.model)}`, layer `{_escape(', '.join(result.layers))}` "
             f"({result.seconds:.1f} s)."]
    lines += [_escape(note) for note in result.notes]
    lines += [f"{_escape(name)} failed: {_escape(reason)}"
              for name, reason in result.failures.items()]
    return "\n\n".join(lines)


Handler = Callable[..., tuple[Any, ...]]


def make_handler(store: ModelStore, files: MapFiles,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Handler:
    """The function behind the *Explain* button and the ``/explain`` API:
    (photo, model, methods, class(es), layer, metrics) -> (overlays, top-5,
    metrics table, maps file, status). The class is one entry or a list of
    them (the top class, ``top 3``, names, indices: see
    :mod:`pytorch_grad_cam.demo.classes`); the overlays are one per method
    and class, captioned ``"GradCAM: tabby (281)"``. Raises ``gr.Error``
    with the problem's message."""

    def handle(photo: Any, model: str | None, methods: Sequence[str] | str | None,
               target_class: str | Sequence[str] | None, layer: str | None,
               metrics: bool | None) -> tuple[Any, ...]:
        try:
            path = _photo_path(photo)
            if path is None:
                raise DemoError("no photo: upload one or pick a bundled photo below the Photo box")
            result = explain(path, model, methods, target_class, layer, bool(metrics),
                             store=store, max_pixels=max_pixels)
        except DemoError as error:
            raise gr.Error(_escape(_message(error)), duration=None, title="Cannot explain",
                           print_exception=False) from None
        except Exception as error:  # noqa: BLE001  (a bug: the page gets one line, the log the rest)
            log.exception("the demo's request failed")
            raise gr.Error(_escape(f"unexpected {type(error).__name__}: {_message(error)} "
                                       "(the server's log has the details)"),
                           duration=None, title="Cannot explain", print_exception=False) from None
        gallery = [(r.overlay, f"{r.title}: {r.class_label}") for r in result.results]
        top5 = {p.label: p.probability for p in result.predictions}
        if result.metrics is None:
            table = gr.Dataframe(value=None, visible=False)
        else:
            several = len(result.categories) > 1
            labels = dict(zip(result.categories, result.class_labels))
            rows = [[row.method, *([labels[row.category]] if several else []),
                     round(row.drop_in_confidence, 4), round(row.increase_in_confidence, 4)]
                    for row in result.metrics]
            table = gr.Dataframe(value=rows, visible=True,
                                 headers=CLASS_METRIC_HEADERS if several else METRIC_HEADERS)
        return gallery, top5, table, files.write(result), _status(result)

    return handle


_INTRO = """\
# Grad-CAM demo

Which pixels made the model say *tabby cat*? Pick a bundled photo or upload one, choose the
model, the methods, the class (or several: the top 3, or a few by name) and the layer, and
press **Explain**. The overlays show each method's class activation map of each class on the
photo (red: the pixels that raise the class's score most).
Everything runs on this machine; nothing is sent anywhere.
"""


def build_demo(store: ModelStore | None = None, *, device: str = "auto",
               extra_models: Mapping[str, ModelFactory] | None = None,
               model: str | None = None, concurrency: int = DEFAULT_CONCURRENCY,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> gr.Blocks:
    """The demo's page.

    Args:
        store: the models (default: a new :class:`ModelStore` on ``device``
            with ``extra_models``).
        device: where the models run, when ``store`` is not given.
        extra_models: more model names and the functions that build them.
        model: the model the page starts with (default: the first of
            ``extra_models``, else the bundled EfficientNet-Lite0).
        concurrency: how many requests run at once.
        max_pixels: uploads with more pixels are downscaled.

    Returns:
        the Blocks; start it with :func:`launch` (or ``.launch()`` with the
        theme of :func:`offline_theme`).
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
    if store is None:
        store = ModelStore(device, extra_models)
    elif extra_models:
        raise ValueError("give extra_models to the ModelStore, not with store=")
    model = model or (next(iter(store.extra_models), None) or DEFAULT_MODEL)
    files = MapFiles()
    handle = make_handler(store, files, max_pixels)
    photos = bundled_photos()
    with gr.Blocks(title="Grad-CAM demo", analytics_enabled=False,
                   delete_cache=(600, 3600)) as demo:
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                photo = gr.Image(label="Photo", type="filepath", sources=["upload", "clipboard"],
                                 elem_id="photo", height=320)
                if photos:
                    gr.Examples([[str(p)] for p in photos], inputs=[photo],
                                label="Bundled photos (click one)", examples_per_page=len(photos))
            with gr.Column(scale=3):
                with gr.Row():
                    model_box = gr.Dropdown(
                        choices=store.suggestions(), value=model, allow_custom_value=True,
                        filterable=True, label="Model", elem_id="model",
                        info="efficientnet_lite0 is bundled and works offline; or a "
                             "torchvision name, or timm:<name>")
                    class_box = gr.Dropdown(
                        choices=class_choices(), value=[AUTOMATIC], multiselect=True,
                        allow_custom_value=True, filterable=True, label="Classes",
                        elem_id="class",
                        info="the top class, the top 3 or 5, and/or type to search the "
                             "ImageNet classes (a name or an index): one overlay per method "
                             "and class, side by side")
                method_box = gr.CheckboxGroup(
                    choices=method_choices(), value=list(DEFAULT_METHODS), label="Methods",
                    elem_id="methods", info="one overlay each, side by side; slow: a forward "
                    "pass per channel, very slow: thousands of forward passes")
                with gr.Row():
                    layer_box = gr.Textbox(
                        value="", label="Target layer", placeholder="automatic",
                        elem_id="layer", info="empty: the model family's default; or a "
                        "layer path such as layer4[-1]")
                    with gr.Column():
                        metrics_box = gr.Checkbox(
                            value=False, label="Faithfulness metrics", elem_id="metrics",
                            info="DropInConfidence and IncreaseInConfidence of each map")
                        run = gr.Button("Explain", variant="primary", elem_id="run")
        status = gr.Markdown(elem_id="status")
        with gr.Row(equal_height=False):
            overlays = gr.Gallery(label="Overlays", columns=3, height="auto",
                                  object_fit="contain", format="png", preview=False,
                                  elem_id="overlays", interactive=False, scale=3,
                                  **_supported(gr.Gallery, fit_columns=False))
            top5 = gr.Label(num_top_classes=5, label="Top-5 predictions", elem_id="top5",
                            scale=1)
        with gr.Row(equal_height=False):
            table = gr.Dataframe(headers=METRIC_HEADERS, label="Faithfulness metrics",
                                 visible=False, interactive=False, elem_id="metrics-table",
                                 scale=3)
            maps_file = gr.File(label="The maps (.npz: one array per method)",
                                elem_id="maps", interactive=False, scale=1)
        run.click(handle, inputs=[photo, model_box, method_box, class_box, layer_box,
                                  metrics_box],
                  outputs=[overlays, top5, table, maps_file, status], api_name="explain",
                  concurrency_limit=concurrency, preprocess=False)
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    # what the page serves, for launch(), tests and programs that embed the page
    demo.grad_cam_store = store
    demo.grad_cam_photos = photos
    demo.grad_cam_map_files = files
    return demo


def launch(host: str = DEFAULT_HOST, port: int | None = None, *, device: str = "auto",
           model: str | None = None, extra_models: Mapping[str, ModelFactory] | None = None,
           concurrency: int = DEFAULT_CONCURRENCY, max_pixels: int = DEFAULT_MAX_PIXELS,
           preload: bool = True, block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Build the page and serve it.

    Args:
        host: the address to listen on (127.0.0.1: this machine only;
            0.0.0.0 would expose it to the network).
        port: the port (default: 7860 or the next free one; also the
            ``GRADIO_SERVER_PORT`` environment variable).
        device, model, extra_models, concurrency, max_pixels: see
            :func:`build_demo`.
        preload: load the starting model before serving, so that the first
            request is quick; a model that cannot be loaded is logged, and
            the page still starts (another model may be chosen).
        block: serve until interrupted; False returns at once with the
            server running in a thread (stop it with ``.close()``).
        quiet: do not print the address.

    Returns:
        the running Blocks (``.local_url`` is its address).
    """
    store = ModelStore(device, extra_models)
    demo = build_demo(store, model=model, concurrency=concurrency, max_pixels=max_pixels)
    if preload:
        start = model or (next(iter(store.extra_models), None) or DEFAULT_MODEL)
        try:
            store.target_layers(store.get(start))
        except DemoError as error:
            log.warning("the model %s is not available: %s", start, error)
    photos = bundled_photos()
    # the options that keep the page offline and local, where this Gradio has them
    optional = _supported(demo.launch, enable_monitoring=False, ssr_mode=False, pwa=False,
                          mcp_server=False, run_history=False, footer_links=["api", "settings"])
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                prevent_thread_lock=not block, quiet=quiet, show_error=False,
                allowed_paths=[str(p) for p in photos], max_file_size=MAX_FILE_SIZE,
                theme=offline_theme(), **optional)
    return demo
