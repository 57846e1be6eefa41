"""Real photos and the regions in them, shared by the tests
(``from photo_regions import CAT_HEAD, peak_in``; pytest puts tests/ on
the import path through tests/conftest.py)."""
import cv2
import numpy as np

# Regions of the 224 x 224 resized photos, as (y0, y1, x0, x1), read off the
# pictures (tests/README.md shows how to look at them):
# skimage.data.chelsea(): the cat's head fills the left three quarters of
# the frame; its eyes sit near (y 85, x 85) and (y 100, x 155), the nose
# near (y 175, x 130). The strip right of x = 196 is background.
CAT_HEAD = (30, 224, 25, 190)
CAT_BACKGROUND = (0, 224, 196, 224)
# skimage.data.coffee(): the cup (rim, coffee and body) spans x 60-160,
# y 10-135; the saucer lies around it, table wood in the corners.
CUP = (5, 140, 55, 170)

EGYPTIAN_CAT, TABBY, ESPRESSO = 285, 281, 967


def load_photo(name: str, size: int = 224) -> np.ndarray:
    """An skimage.data photo as H x W x 3 float32 RGB in [0, 1], resized."""
    import skimage.data

    img = getattr(skimage.data, name)()
    return cv2.resize(img, (size, size)).astype(np.float32) / 255


def region_mean(cam: np.ndarray, region) -> float:
    y0, y1, x0, x1 = region
    return float(cam[y0:y1, x0:x1].mean())


def peak_in(cam: np.ndarray, region) -> bool:
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    y0, y1, x0, x1 = region
    return y0 <= y < y1 and x0 <= x < x1
