"""An edge map of an image: grad-cam 1.5.7's ``sobel_cam``, the baseline
"explanation" its metrics tutorial scores against the CAM methods (a map
that knows nothing of the model; a faithful method should beat it).

The map is the mean of the absolute horizontal and vertical 3 x 3 Sobel
derivatives of the image's grey levels, saturated to 0-255, as 1.5.7
computes it.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["sobel_cam"]


def sobel_cam(img: np.ndarray) -> np.ndarray:
    """The H x W uint8 edge map of an H x W x 3 RGB image, uint8 (0-255) or
    float32. As in 1.5.7 the derivatives are saturated to uint8 whatever
    the input's scale, so a float image in [0, 1] gives a map of small
    integers (0-2): pass the uint8 image for a map in 0-255."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"img must be a numpy array (H x W x 3 RGB), got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img must be H x W x 3 RGB, got shape {img.shape}")
    if img.dtype not in (np.uint8, np.float32):
        raise ValueError(f"img must be uint8 (0-255) or float32 (0-1), got {img.dtype}")
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    horizontal = cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3))
    vertical = cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3))
    return cv2.addWeighted(horizontal, 0.5, vertical, 0.5, 0)
