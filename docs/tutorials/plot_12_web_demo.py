"""
The web demo: a page, a function and an HTTP API
================================================

``grad-cam demo`` serves a page in the browser for explaining a photo
without writing code: pick a bundled photo or upload one, choose the model,
the methods, the class and the layer, press **Explain**, and see each
method's overlay, the top-5 predictions and, on request, the faithfulness
metrics of each map. This tutorial starts it, looks at what it computes
through the same Python function the page calls, and calls its HTTP API
once. :doc:`/demo` documents all of it.

Start it from a shell (it needs the ``demo`` extra, ``pip install
".[demo]"``):

.. code-block:: bash

   grad-cam demo                        # http://127.0.0.1:7860, this machine only
   grad-cam demo --port 8000 --model resnet50 --device cuda --concurrency 8
   grad-cam demo --host 0.0.0.0         # your whole network, with no login: think twice

The page works offline: no analytics, no share link, no font or script
from the internet. It listens on 127.0.0.1 unless ``--host`` says
otherwise.
"""

# %%
# The page as an object
# ---------------------
# ``build_demo`` returns the page as a ``gradio.Blocks`` without serving it:
# mount it into your own FastAPI application or launch it yourself. The
# models come from a ``ModelStore``: each model is loaded once, on one
# device, and shared by every request (several requests may run at the same
# time, each with its own CAM objects).
import shutil
import socket
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from pytorch_grad_cam.demo import ModelStore, build_demo, explain, launch

store = ModelStore(device="cpu")
page = build_demo(store)
print(type(page).__name__, "with the endpoints:",
      sorted(d["api_name"] for d in page.config["dependencies"] if d.get("api_name")))

# %%
# One request, without the browser
# --------------------------------
# The *Explain* button calls ``explain`` (``pytorch_grad_cam.demo.request``)
# with the photo, the model's name, the methods, the class, the layer and
# whether to score the maps. It returns an ``Explanation``: the maps (exactly
# what the library returns for the same input), the overlays the page shows,
# the top-5 predictions and the metrics. Passing the page's ``store`` makes
# it use the same loaded model (an RGB array or a PIL image works as well as
# a path). The class can be a name, searched among the
# ImageNet names (``"tabby"``), or an index; empty means the top class.
folder = Path(tempfile.mkdtemp(prefix="grad-cam-demo-tutorial-"))
photo_file = folder / "chelsea.png"   # a photo file, as an upload would be
cv2.imwrite(str(photo_file), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))

result = explain(photo_file, model="efficientnet_lite0", methods=["gradcam", "layercam", "eigencam"],
                 target_class="tabby", metrics=True, store=store)
print(f"explained {result.class_label} at {', '.join(result.layers)} in {result.seconds:.1f} s")
for prediction in result.predictions:
    print(f"  {prediction.label:<32} {prediction.probability:.3f}")
for row in result.metrics:
    print(f"  {row.method:<9} drop in confidence {row.drop_in_confidence:.3f}, "
          f"increase {row.increase_in_confidence:.0f}")

# %%
# What the page shows
# -------------------
# (The first request took longer than the later ones: it loaded the model.)
# The overlays are in the photo's own aspect ratio (the maps are computed on
# the 224 x 224 model input and stretched back); the bars are the top-5
# predictions the page lists next to them.
fig, axes = plt.subplots(1, len(result.results) + 1, figsize=(12.5, 2.9),
                         gridspec_kw={"width_ratios": [1.5] * len(result.results) + [1.4]})
for ax, method_map in zip(axes, result.results):
    ax.imshow(method_map.overlay)
    ax.set_title(f"{method_map.title}: {result.class_label}", fontsize=9)
    ax.axis("off")
labels = [p.label for p in result.predictions][::-1]
axes[-1].barh(labels, [p.probability for p in result.predictions][::-1], color="tab:orange")
axes[-1].set_xlim(0, 1)
axes[-1].set_title("top-5 predictions", fontsize=9)
axes[-1].tick_params(labelsize=8)
fig.tight_layout()

# %%
# Bad input gets a message, never a stack trace: an unknown class name, for
# example, raises ``DemoError`` (which the page shows in a pop-up) with the
# close matches.
try:
    explain(photo_file, target_class="tabby kat", store=store)
except ValueError as error:   # DemoError is a ValueError
    print(type(error).__name__, ":", error)

# %%
# The HTTP API
# ------------
# The *Explain* button is also the endpoint ``/explain``. Here the server is
# started on a free port of 127.0.0.1 with ``launch(block=False)``, which
# returns with the server running in a thread, called once with
# ``gradio_client`` exactly as in :doc:`/demo`, and closed again (in a
# ``finally``, so that it never outlives the script). Arguments, in the
# page's order: the photo, the model, the methods, the class, the layer and
# whether to compute the metrics.
from gradio_client import Client, handle_file  # noqa: E402  (ships with gradio)

with socket.socket() as probe:   # a port nobody uses now
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
start = time.perf_counter()
server = launch(host="127.0.0.1", port=port, device="cpu", block=False, quiet=True)
try:
    client = Client(server.local_url, verbose=False)
    overlays, top5, metrics, maps_file, status = client.predict(
        handle_file(str(photo_file)), "efficientnet_lite0", ["gradcam"], "tabby", "", False,
        api_name="/explain")
finally:
    server.close()
print(f"served, answered and closed in {time.perf_counter() - start:.1f} s")
maps = np.load(maps_file)
print("top-5:", [(c["label"], round(c["confidence"], 3)) for c in top5["confidences"]])
print("maps file:", sorted(maps.files), maps["gradcam"].shape, maps["gradcam"].dtype)
same = np.abs(maps["gradcam"] - result.maps["gradcam"]).max()
print(f"largest difference from the map computed above: {same:.2e}")
shutil.rmtree(folder)
