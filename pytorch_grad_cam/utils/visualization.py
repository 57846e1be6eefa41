"""Pictures of maps: overlays, labelled panels, side-by-side rows and grids.

Everything here takes and returns uint8 H x W x 3 pictures (BGR, as
``cv2.imwrite`` expects, unless a function says otherwise) and keeps no
state::

    import cv2
    from pytorch_grad_cam.utils.visualization import label_panel, overlay_cam, side_by_side

    photo = cv2.imread("chelsea.jpg")                       # any size
    picture = overlay_cam(photo, grayscale_cam)             # the map resized to the photo
    row = side_by_side([label_panel(photo, "input"), label_panel(picture, "gradcam")])
    cv2.imwrite("row.jpg", row)

:func:`~pytorch_grad_cam.utils.image.show_cam_on_image` (the overlay of a
float image and a map of the same size) is importable from here as well as
from ``pytorch_grad_cam.utils.image``.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pytorch_grad_cam.utils.image import show_cam_on_image, show_factorization_on_image

__all__ = [
    "caption",
    "grid",
    "label_panel",
    "overlay_cam",
    "show_cam_on_image",
    "show_factorization_on_image",
    "side_by_side",
]

WHITE = 255
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _check_picture(name: str, picture: np.ndarray) -> None:
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] != 3 \
            or picture.dtype != np.uint8:
        shape = getattr(picture, "shape", None)
        dtype = getattr(picture, "dtype", type(picture).__name__)
        raise TypeError(f"{name} must be a uint8 H x W x 3 picture, got {dtype} of shape "
                        f"{shape}")


def overlay_cam(image: np.ndarray, cam: np.ndarray, use_rgb: bool = False,
                colormap: int = cv2.COLORMAP_JET, image_weight: float = 0.5) -> np.ndarray:
    """A map laid over a picture of any size.

    Args:
        image: uint8 H x W x 3 picture (BGR; RGB with ``use_rgb=True``).
        cam: a map in [0, 1] of any size (a CAM's ``grayscale_cam[0]``); it
            is resized bilinearly to H x W and clipped to [0, 1].
        use_rgb, colormap, image_weight: as in
            :func:`~pytorch_grad_cam.utils.image.show_cam_on_image`.

    Returns:
        uint8 H x W x 3 overlay, in the channel order of ``image``.
    """
    _check_picture("image", image)
    h, w = image.shape[:2]
    mask = np.asarray(cam, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"cam must be an H x W map, got shape {mask.shape}")
    mask = np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
    return show_cam_on_image(np.float32(image) / 255, mask, use_rgb=use_rgb, colormap=colormap,
                             image_weight=image_weight)


def label_panel(image: np.ndarray, text: str, height: int = 256) -> np.ndarray:
    """``image`` scaled to ``height`` pixels (keeping its aspect ratio) under
    a 28-pixel white strip with ``text`` centred in it (shrunk to fit)."""
    _check_picture("image", image)
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    panel = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    scale, thickness = 0.55, 1
    (text_w, text_h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    if text_w > width - 8:  # shrink long labels to fit
        scale *= (width - 8) / text_w
        (text_w, text_h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    strip = np.full((28, width, 3), WHITE, np.uint8)
    cv2.putText(strip, text, ((width - text_w) // 2, 14 + text_h // 2), _FONT, scale,
                (0, 0, 0), thickness, cv2.LINE_AA)
    return np.vstack([strip, panel])


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Pictures in one row, top-aligned, ``gap`` white pixels apart; shorter
    ones are padded with white at the bottom."""
    if not panels:
        raise ValueError("panels is empty; give at least one picture")
    for index, panel in enumerate(panels):
        _check_picture(f"panels[{index}]", panel)
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, gap, 3), WHITE, np.uint8)
    row = []
    for index, panel in enumerate(panels):
        if index:
            row.append(spacer)
        if panel.shape[0] < height:
            padding = np.full((height - panel.shape[0], *panel.shape[1:]), WHITE, np.uint8)
            panel = np.vstack([panel, padding])
        row.append(panel)
    return np.hstack(row)


def caption(text: str, width: int, height: int = 24, scale: float = 0.45) -> np.ndarray:
    """A white ``height`` x ``width`` strip with ``text`` centred in it
    (shrunk to fit the width)."""
    strip = np.full((height, width, 3), WHITE, np.uint8)
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
    if w > width - 6:
        scale *= (width - 6) / w
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.putText(strip, text, ((width - w) // 2, (height + h) // 2), _FONT, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip


def grid(rows: Sequence[Sequence[np.ndarray]], column_titles: Sequence[str],
         row_titles: Sequence[str], gap: int = 3) -> np.ndarray:
    """Pictures in rows (each row as many pictures as ``column_titles``, of
    the same size), a caption above every column and, under each row, the
    row's title under its first picture; ``gap`` white pixels between the
    columns."""
    if not rows:
        raise ValueError("rows is empty; give at least one row of pictures")
    if len(row_titles) != len(rows):
        raise ValueError(f"row_titles has {len(row_titles)} entries for {len(rows)} rows")
    for r, pictures in enumerate(rows):
        if len(pictures) != len(column_titles):
            raise ValueError(f"rows[{r}] has {len(pictures)} pictures for "
                             f"{len(column_titles)} column titles")
        for c, picture in enumerate(pictures):
            _check_picture(f"rows[{r}][{c}]", picture)
            if picture.shape != rows[0][0].shape:
                raise ValueError(f"rows[{r}][{c}] has shape {picture.shape}, the first "
                                 f"picture {rows[0][0].shape}; resize them to one size")
    cell = rows[0][0].shape[1]

    def hjoin(parts: Sequence[np.ndarray]) -> np.ndarray:
        spacer = np.full((parts[0].shape[0], gap, 3), WHITE, np.uint8)
        out = [parts[0]]
        for part in parts[1:]:
            out += [spacer, part]
        return np.hstack(out)

    lines = [hjoin([caption(title, cell) for title in column_titles])]
    for pictures, title in zip(rows, row_titles):
        lines.append(hjoin(list(pictures)))
        lines.append(hjoin([caption(title, cell)] + [caption("", cell)] * (len(pictures) - 1)))
    return np.vstack(lines)
