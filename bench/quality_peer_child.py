"""The peer side of ``quality_benchmark.py``: the maps of grad-cam 1.5.7 or
torchcam 0.5.0 on the benchmark's trained models and held-out images.

Run by ``quality_benchmark.py`` in the peer's own Python, from a temporary
folder, with ``PYTHONPATH`` removed, so that ``import pytorch_grad_cam``
there is grad-cam 1.5.7 (the two packages share that name)::

    PEER_PYTHON quality_peer_child.py JOB_FOLDER

It imports nothing of this repository's package: the models' definitions
come from ``pytorch_grad_cam/utils/synthetic_shapes.py`` loaded by its path
(that file imports only torch, torchvision and numpy). ``JOB_FOLDER/job.json``
says what to run::

    {"library": "grad-cam 1.5.7" or "torchcam 0.5.0", "shapes_file": PATH,
     "threads": 1, "batch": 16, "seeds": [0, 1], "samples": 8,
     "methods": {"cnn": {"gradcam": "GradCAM", ...}, "vit": {...}}}

(our method name -> the peer's class name; ``samples``: the sampling
methods' noisy copies, torchcam's ``num_samples``), and ``JOB_FOLDER/seed<S>.pt``
holds, per seed, the state dicts of the trained models (``cnn``, ``vit``),
of their fully randomised copies (``cnn_random``, ``vit_random``), the
held-out ``inputs``, their ``labels`` and each image's random ``other`` class.
For every model, method and seed it writes the maps of the labels (timed,
``batch`` images per call, after one untimed call on one image), of the
other classes and of the randomised model into ``JOB_FOLDER/result.npz``
(keys ``<model>|<method>|<seed>|maps``, ``...|other``, ``...|random``,
``...|seconds``: the seconds of each timed call) and the errors into
``JOB_FOLDER/errors.json`` (``"<model>|<method>"`` -> the message).
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def load_shapes(path: str):  # noqa: ANN201 - the module loaded by path
    spec = importlib.util.spec_from_file_location("quality_synthetic_shapes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """B x (1 + n * n) x C tokens (class token first) -> B x C x n x n."""
    patches = tokens[:, 1:, :]
    side = int(round(patches.shape[1] ** 0.5))
    return patches.reshape(patches.shape[0], side, side, -1).permute(0, 3, 1, 2)


def gradcam157_maker(model_kind: str, model: torch.nn.Module, class_name: str, batch: int,
                     samples: int) -> Callable[[torch.Tensor, list[int]], np.ndarray]:
    import pytorch_grad_cam as reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(reference, class_name)
    if model_kind == "vit":
        layers, reshape = [model.encoder.layers[-1].ln_1], vit_tokens_to_grid
    else:
        layers, reshape = [model.features[-1]], None

    def maps(x: torch.Tensor, classes: list[int]) -> np.ndarray:
        with cls(model=model, target_layers=layers, reshape_transform=reshape) as cam:
            if hasattr(cam, "batch_size"):
                cam.batch_size = max(batch, 64)
            return np.asarray(cam(input_tensor=x, targets=[ClassifierOutputTarget(c)
                                                           for c in classes]), dtype=np.float32)
    return maps


def torchcam_maker(model_kind: str, model: torch.nn.Module, class_name: str, batch: int,
                   samples: int) -> Callable[[torch.Tensor, list[int]], np.ndarray]:
    import torchcam.methods as methods

    cls = getattr(methods, class_name)
    if class_name == "LeGrad":
        layer = list(model.encoder.layers)
    elif model_kind == "vit":
        raise ValueError(f"torchcam's {class_name} reads a feature map of B x C x H x W; the "
                         "ViT's token layers have none (torchcam takes no reshape transform)")
    else:
        layer = model.features[-1]
    options: dict = {"fc_layer": model.fc} if class_name == "CAM" else {}
    if class_name in ("SSCAM", "ISCAM"):
        options["num_samples"] = samples

    def maps(x: torch.Tensor, classes: list[int]) -> np.ndarray:
        if class_name != "LeGrad":  # LeGrad reads the token grid of the model instead
            options["input_shape"] = tuple(x.shape[1:])
        extractor = cls(model, layer, **options)
        try:
            with torch.enable_grad():
                scores = model(x)
            cams = extractor(classes, scores)
            cam = cams[0] if len(cams) == 1 else extractor.fuse_cams(cams)
        finally:
            extractor.remove_hooks()
        up = F.interpolate(cam.detach().float()[:, None], size=tuple(x.shape[-2:]),
                           mode="bilinear", align_corners=False)[:, 0]
        return up.cpu().numpy().astype(np.float32)
    return maps


def main(folder: Path) -> None:
    job = json.loads((folder / "job.json").read_text())
    torch.set_num_threads(int(job["threads"]))
    shapes = load_shapes(job["shapes_file"])
    builders = {"cnn": shapes.SmallCNN, "vit": shapes.small_vit}
    maker = gradcam157_maker if job["library"].startswith("grad-cam") else torchcam_maker
    batch, samples = int(job["batch"]), int(job["samples"])
    result: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for seed in job["seeds"]:
        data = torch.load(folder / f"seed{seed}.pt", weights_only=True)
        inputs, labels = data["inputs"], [int(c) for c in data["labels"]]
        others = [int(c) for c in data["other"]]
        for model_kind, methods in job["methods"].items():
            for name, class_name in methods.items():
                key = f"{model_kind}|{name}"
                if key in errors:
                    continue
                # fresh models for every method: grad-cam 1.5.7's AblationCAM swaps a layer
                # of the model and leaves it swapped when it fails (on the ViT)
                trained, randomised = builders[model_kind](), builders[model_kind]()
                trained.load_state_dict(data[model_kind])
                randomised.load_state_dict(data[f"{model_kind}_random"])
                trained.eval()
                randomised.eval()
                try:
                    run = maker(model_kind, trained, class_name, batch, samples)
                    run(inputs[:1], labels[:1])  # warm-up, untimed
                    parts, seconds = [], []
                    for start in range(0, len(labels), batch):
                        began = time.perf_counter()
                        parts.append(run(inputs[start:start + batch], labels[start:start + batch]))
                        seconds.append(time.perf_counter() - began)
                    prefix = f"{key}|{seed}"
                    result[f"{prefix}|maps"] = np.concatenate(parts)
                    result[f"{prefix}|seconds"] = np.asarray(seconds)
                    result[f"{prefix}|other"] = run(inputs, others)
                    result[f"{prefix}|random"] = maker(model_kind, randomised, class_name,
                                                       batch, samples)(inputs, labels)
                except Exception as error:  # reported as the row's n/a reason
                    last = traceback.extract_tb(error.__traceback__)[-1]
                    errors[key] = (f"{type(error).__name__}: {' '.join(str(error).split())[:200]} "
                                   f"(at {Path(last.filename).name}:{last.lineno})")
    np.savez(folder / "result.npz", **result)
    (folder / "errors.json").write_text(json.dumps(errors, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
