"""What a dataset run explains: the items of a folder, a list of paths or a
torch ``Dataset``, decoded and preprocessed for the model.

Every item has a position in its source (``index``), a stable ``id`` (the
key of the results store: a folder's files by their path relative to the
folder, a list's paths as given, a Dataset's items by their index) and,
where there is one, a file ``path`` and a class ``label``.

Items are decoded in DataLoader workers (:class:`WorkItems`), so that
decoding overlaps the model. A problem with one item (a file that is
missing, empty, corrupt or not an image, a named pipe or a device, an
image with more pixels than ``max_pixels`` or smaller than
``min_image_size``, a Dataset whose ``__getitem__`` raises) does not raise:
the item comes back as a :class:`Record` with a status and a reason, and the
run goes on.

Decoding (:func:`decode_image`, files read by
:mod:`pytorch_grad_cam.utils.image_io`) is :mod:`~pytorch_grad_cam.datasets.decoding`'s.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pytorch_grad_cam.datasets.decoding import (
    BadItem,
    check_layout,
    decode_image,
    decode_source,
    load_picture,
    three_channels,
    to_rgb,
    to_unit,
)
from pytorch_grad_cam.messages import describe, first_line, given
from pytorch_grad_cam.utils.image import IMAGENET_MEAN, IMAGENET_STD
from pytorch_grad_cam.utils.image_io import IMAGE_SUFFIXES, MAX_READ_PIXELS, bounded_copy, find_images

__all__ = [
    "IMAGE_SUFFIXES",
    "STATUSES",
    "BadItem",
    "Batch",
    "DatasetSource",
    "PathSource",
    "Preprocess",
    "Record",
    "Source",
    "WorkItems",
    "collate_records",
    "decode_image",
    "list_images",
    "load_picture",
    "make_source",
    "model_input_size",
    "to_rgb",
]

#: what the ``status`` column of the results can say
STATUSES = {
    "ok": "explained",
    "unreadable": "the file or Dataset item could not be read or decoded as an image",
    "not_a_file": "the path is not a regular file (a named pipe, a device, a socket, a folder, "
                  "a broken link): it is not read",
    "too_large": "the image has more pixels than max_pixels (read from its header, before "
                 "decoding), or its file is larger than image_io.MAX_FILE_BYTES",
    "too_small": "the image is smaller than min_image_size on a side",
    "no_label": "targets='label' but the item has no usable class label",
    "no_target": "targets=MultiLabel(threshold): no class of the image reaches the threshold",
    "model_error": "the model (or the CAM method) raised on this item",
}

# ------------------------------------------------------------ preprocessing
def _pair(name: str, value: Any) -> tuple[int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
                       for v in value)):
        raise ValueError(f"{name} must be a positive int or (height, width), got {given(value)}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input: resized to ``size`` (height,
    width; ``cv2.INTER_AREA`` when shrinking, bilinear when enlarging; the
    aspect ratio is not kept, as ``cam.py`` does), scaled to [0, 1] (by 255,
    or 65535 for 16-bit images) and normalised with ``mean`` and ``std``
    (default: ImageNet's)."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = tuple(IMAGENET_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_STD)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair("Preprocess.size", self.size))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list)) or len(value) != 3
                    or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                               for v in value)):
                raise ValueError(f"Preprocess.{name} must be three numbers (R, G, B), "
                                 f"got {given(value)}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if not all(v > 0 for v in self.std):
            raise ValueError(f"Preprocess.std must be positive, got {self.std}")

    def config(self) -> dict[str, Any]:
        """What the results store records of it (part of its fingerprint)."""
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std)}

    def resize(self, image: np.ndarray) -> np.ndarray:
        """An H x W (x C) image (uint8, uint16 or float32) resized to ``size``."""
        height, width = self.size
        if image.shape[:2] == (height, width):
            return image
        shrink = image.shape[0] >= height and image.shape[1] >= width
        return cv2.resize(image, (width, height),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        """H x W x 3 RGB (uint8, uint16, or float in [0, 1]) -> the
        normalised 3 x height x width float32 model input."""
        return self.normalise(self.resize(rgb))

    def normalise(self, image: np.ndarray) -> torch.Tensor:
        """An H x W x 3 RGB image already at ``size`` -> the model input."""
        scaled = to_unit(image)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        normalised = (scaled - mean) / std
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))

    def unnormalise(self, tensor: torch.Tensor) -> np.ndarray:
        """A 3 x H x W model input -> H x W x 3 float32 RGB in [0, 1] (for
        pictures of Dataset items that are tensors already)."""
        array = tensor.detach().float().cpu().numpy().transpose(1, 2, 0)
        array = array * np.asarray(self.std, dtype=np.float32) + np.asarray(self.mean,
                                                                            dtype=np.float32)
        return np.clip(array, 0, 1).astype(np.float32)


def model_input_size(model: torch.nn.Module, default: int = 224) -> tuple[int, int]:
    """The input size a model was trained at, where it says so (timm's
    ``pretrained_cfg`` / ``default_cfg`` ``input_size``), else ``default``."""
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attribute, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == 3:
            return int(size[1]), int(size[2])
    return default, default


# ---------------------------------------------------------------- sources
@dataclass
class Record:
    """One item as a DataLoader worker delivers it.

    Attributes:
        position: the item's position in the source.
        id: its key in the results store.
        path: its file, or "".
        label: its class label, -1 when it has none.
        height, width: the size of the image as decoded (0 when unknown).
        tensor: the 3 x H x W model input (None unless status is "ok").
        status: a key of :data:`STATUSES`.
        reason: why the status is not "ok".
    """

    position: int
    id: str
    path: str = ""
    label: int = -1
    height: int = 0
    width: int = 0
    tensor: torch.Tensor | None = None
    status: str = "ok"
    reason: str = ""


@dataclass
class Batch:
    """Records of one batch, with the inputs of the "ok" ones stacked (in
    the worker, so that the main process receives one tensor)."""

    records: list[Record]
    inputs: torch.Tensor | None = None
    good: list[int] = field(default_factory=list)  # indices into records of the stacked rows

    def pin_memory(self) -> Batch:
        if self.inputs is not None:
            self.inputs = self.inputs.pin_memory()
        return self


def collate_records(records: list[Record]) -> Batch:
    """DataLoader ``collate_fn``: a :class:`Batch`."""
    good = [i for i, record in enumerate(records) if record.status == "ok"]
    inputs = torch.stack([records[i].tensor for i in good]) if good else None  # type: ignore[misc]
    for i in good:
        records[i].tensor = None
    return Batch(records=records, inputs=inputs, good=good)


def _label(value: Any) -> int:
    """A class label -> int, -1 when it is not one."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value.item())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return -1


class Source:
    """The items of a run, in order."""

    kind = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def item_id(self, position: int) -> str:
        raise NotImplementedError

    def item_path(self, position: int) -> str:
        """The item's file, or "" (known without loading the item)."""
        return ""

    def load(self, position: int, preprocess: Preprocess, min_image_size: int = 1,
             max_pixels: int = MAX_READ_PIXELS) -> Record:
        """The item decoded and preprocessed; BadItem for a bad one (an
        image smaller than ``min_image_size`` on a side, or whose header
        gives more than ``max_pixels`` pixels, included)."""
        raise NotImplementedError

    def picture(self, position: int, preprocess: Preprocess,
                max_pixels: int = MAX_READ_PIXELS) -> np.ndarray:
        """The item as an H x W x 3 float32 RGB picture in [0, 1] (for the
        report), of at most ``image_io.PICTURE_PIXELS`` pixels; BadItem when
        there is none."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class PathSource(Source):
    """Image files: a folder's (``root`` set; ids relative to it) or a
    list's (ids as given), with optional labels."""

    def __init__(self, paths: Sequence[str], ids: Sequence[str],
                 labels: Sequence[int] | None = None, root: str | None = None):
        self.paths = list(paths)
        self.ids = list(ids)
        self.labels = list(labels) if labels is not None else None
        self.root = root
        self.kind = "folder" if root is not None else "paths"

    def __len__(self) -> int:
        return len(self.paths)

    def item_id(self, position: int) -> str:
        return self.ids[position]

    def item_path(self, position: int) -> str:
        return self.paths[position]

    def load(self, position: int, preprocess: Preprocess, min_image_size: int = 1,
             max_pixels: int = MAX_READ_PIXELS) -> Record:
        label = self.labels[position] if self.labels is not None else -1
        record = Record(position, self.ids[position], self.paths[position], label)
        image, bgr = decode_source(self.paths[position], max_pixels)
        record.height, record.width = int(image.shape[0]), int(image.shape[1])
        record.tensor = _model_input(image, bgr, preprocess, min_image_size)
        return record

    def picture(self, position: int, preprocess: Preprocess,
                max_pixels: int = MAX_READ_PIXELS) -> np.ndarray:
        return load_picture(self.paths[position], max_pixels)

    def describe(self) -> str:
        return f"folder {self.root}" if self.root is not None else f"{len(self)} paths"


class DatasetSource(Source):
    """A map-style torch Dataset. An item is an image, ``(image, label,
    ...)`` or a dict with ``"image"`` (or ``"img"``, ``"pixel_values"``)
    and optionally ``"label"`` (or ``"labels"``, ``"target"``) and
    ``"path"``. An image is a path, bytes, a PIL image, an H x W (x C)
    numpy array, a uint8 C x H x W tensor (decoded and preprocessed like a
    file) or a float C x H x W tensor, which is taken as a ready model
    input (the dataset's own transform did the preprocessing) and must have
    the run's input size. Ids are the indices; a Dataset with ``samples``
    (torchvision's ImageFolder) gives each item's path."""

    kind = "dataset"

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.length = len(dataset)
        samples = getattr(dataset, "samples", None)
        self.sample_paths: list | None = None
        if isinstance(samples, list) and len(samples) == self.length:
            self.sample_paths = [s[0] if isinstance(s, (tuple, list)) and s else s
                                 for s in samples]

    def __len__(self) -> int:
        return self.length

    def item_id(self, position: int) -> str:
        return str(position)

    def item_path(self, position: int) -> str:
        return self._path(position)

    def _path(self, position: int) -> str:
        if self.sample_paths is not None and isinstance(self.sample_paths[position], (str, Path)):
            return str(self.sample_paths[position])
        return ""

    def _get(self, position: int) -> tuple[Any, int, str]:
        try:
            item = self.dataset[position]
        except Exception as error:  # noqa: BLE001  (any failure of the user's Dataset is a row)
            raise BadItem("unreadable", f"the Dataset raised {first_line(error)}") from None
        label, path = -1, self._path(position)
        if isinstance(item, dict):
            image = next((item[k] for k in ("image", "img", "pixel_values") if k in item), None)
            if image is None:
                raise BadItem("unreadable", f"a dict item needs an 'image' entry, it has "
                                            f"{sorted(map(str, item))}")
            label = _label(next((item[k] for k in ("label", "labels", "target") if k in item),
                                None))
            if isinstance(item.get("path"), (str, Path)):
                path = str(item["path"])
        elif isinstance(item, (tuple, list)):
            if not item:
                raise BadItem("unreadable", "the Dataset returned an empty tuple")
            image = item[0]
            label = _label(item[1]) if len(item) > 1 else -1
        else:
            image = item
        if isinstance(image, (str, Path)) and not path:
            path = str(image)
        return image, label, path

    def load(self, position: int, preprocess: Preprocess, min_image_size: int = 1,
             max_pixels: int = MAX_READ_PIXELS) -> Record:
        image, label, path = self._get(position)
        record = Record(position, str(position), path, label)
        if isinstance(image, torch.Tensor) and image.is_floating_point():
            expected = (3,) + preprocess.size
            if tuple(image.shape) != expected:
                raise BadItem("unreadable", f"a float tensor item is taken as a ready model "
                                            f"input and must be {expected}, got "
                                            f"{tuple(image.shape)}")
            if not bool(torch.isfinite(image).all()):
                raise BadItem("unreadable", "the tensor holds NaN or infinite values")
            record.height, record.width = preprocess.size
            record.tensor = image.detach().float().contiguous()
            return record
        if isinstance(image, (str, Path, bytes)):
            array, bgr = decode_source(image, max_pixels)
        else:
            array, bgr = to_rgb(image), False
        record.height, record.width = int(array.shape[0]), int(array.shape[1])
        record.tensor = _model_input(array, bgr, preprocess, min_image_size)
        return record

    def picture(self, position: int, preprocess: Preprocess,
                max_pixels: int = MAX_READ_PIXELS) -> np.ndarray:
        image, _, _ = self._get(position)
        if isinstance(image, torch.Tensor) and image.is_floating_point():
            return preprocess.unnormalise(image)
        if isinstance(image, (str, Path, bytes)):
            return load_picture(image, max_pixels)
        return to_unit(bounded_copy(to_rgb(image)))

    def describe(self) -> str:
        return f"{type(self.dataset).__name__} of {self.length} items"


def _model_input(image: np.ndarray, bgr: bool, preprocess: Preprocess,
                 minimum: int) -> torch.Tensor:
    """Decoded image -> model input: size check, resize (in the file's own
    channel order, so that only the small image is converted), RGB, the
    normalisation."""
    check_layout(image)
    if min(image.shape[0], image.shape[1]) < minimum:
        raise BadItem("too_small", f"the image is {image.shape[0]} x {image.shape[1]} pixels, "
                                   f"smaller than min_image_size={minimum}")
    small = preprocess.resize(image)  # an H x W x 1 image comes back H x W: still grayscale
    return preprocess.normalise(three_channels(small, bgr))


class WorkItems(Dataset):
    """The DataLoader's dataset: the positions this process explains,
    loaded into :class:`Record` objects; a bad item becomes a Record with
    its status and reason instead of an exception."""

    def __init__(self, source: Source, positions: Sequence[int], preprocess: Preprocess,
                 min_image_size: int = 1, max_pixels: int = MAX_READ_PIXELS):
        self.source = source
        self.positions = list(positions)
        self.preprocess = preprocess
        self.min_image_size = min_image_size
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> Record:
        position = self.positions[k]
        try:
            return self.source.load(position, self.preprocess, self.min_image_size,
                                    self.max_pixels)
        except BadItem as bad:
            return Record(position, self.source.item_id(position),
                          path=self.source.item_path(position), status=bad.status,
                          reason=bad.reason)


# --------------------------------------------------------- making a source
def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (by suffix, hidden files left out;
    regular files only, after resolving links), sorted by their path
    relative to it (``image_io.find_images``)."""
    return find_images(folder, recursive)[0]


def make_source(source: Any, recursive: bool = True) -> tuple[Source, dict[str, Any]]:
    """``explain_dataset``'s ``source`` -> a :class:`Source` and, for a
    DataLoader, the loader settings to keep (batch size, workers, ...).

    Raises FileNotFoundError for a missing folder, ValueError for an empty
    source or a repeated path, TypeError for anything else."""
    settings: dict[str, Any] = {}
    if isinstance(source, DataLoader):
        dataset = source.dataset
        if isinstance(dataset, IterableDataset):
            raise TypeError("source is a DataLoader over an IterableDataset; the runner needs "
                            "a map-style Dataset (len() and indexing), to resume and to share "
                            "the items between processes")
        settings = {"batch_size": source.batch_size, "workers": source.num_workers,
                    "pin_memory": source.pin_memory, "timeout": source.timeout,
                    "worker_init_fn": source.worker_init_fn,
                    "multiprocessing_context": source.multiprocessing_context,
                    "prefetch_factor": source.prefetch_factor if source.num_workers else None}
        source = dataset
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.exists():
            raise FileNotFoundError(f"source {os.fspath(source)!r}: no such folder")
        if not folder.is_dir():
            raise ValueError(f"source {os.fspath(source)!r} is a file, not a folder; pass a "
                             "folder, a list of paths or a Dataset")
        # the entries that are not regular files (a named pipe, a link to a device) are
        # items too: reading them fails at once, and their rows say why
        images, others = find_images(folder, recursive)
        files = sorted(images + [path for path, _ in others],
                       key=lambda p: p.relative_to(folder).as_posix())
        if not files:
            raise ValueError(f"source {os.fspath(source)!r}: the folder holds no image file "
                             f"({', '.join(IMAGE_SUFFIXES)}){' (searched recursively)' if recursive else ''}")
        ids = [p.relative_to(folder).as_posix() for p in files]
        return PathSource([str(p) for p in files], ids, root=str(folder)), settings
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("source is an empty list; give at least one image path")
        paths, labels = [], []
        for index, entry in enumerate(source):
            label = -1
            if isinstance(entry, (tuple, list)) and len(entry) == 2:
                entry, label = entry
                if _label(label) < 0:
                    raise ValueError(f"source[{index}]: the label of ({describe(entry)}, "
                                     f"{describe(label)}) must be an int >= 0")
                label = _label(label)
            if not isinstance(entry, (str, os.PathLike)):
                raise TypeError(f"source[{index}] must be a path (or a (path, label) pair), "
                                f"got {given(entry)}")
            paths.append(os.fspath(entry))
            labels.append(label)
        seen: dict[str, int] = {}
        for index, path in enumerate(paths):
            if path in seen:
                raise ValueError(f"source[{index}] repeats source[{seen[path]}] ({path!r}); "
                                 "every item must be explained once")
            seen[path] = index
        has_labels = any(label >= 0 for label in labels)
        return PathSource(paths, paths, labels if has_labels else None), settings
    if isinstance(source, IterableDataset):
        raise TypeError("source is an IterableDataset; the runner needs a map-style Dataset "
                        "(len() and indexing), to resume and to share the items between "
                        "processes")
    if isinstance(source, Dataset) or (hasattr(source, "__getitem__") and hasattr(source, "__len__")
                                       and not isinstance(source, (str, bytes, dict))):
        sized: Any = source
        if len(sized) == 0:
            raise ValueError(f"source ({type(source).__name__}) is an empty Dataset")
        return DatasetSource(source), settings
    raise TypeError(f"source must be a folder, a list of image paths, a torch Dataset or a "
                    f"DataLoader, got {given(source)}")
