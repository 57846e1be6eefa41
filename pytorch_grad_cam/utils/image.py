"""Image helpers: preprocessing, overlays and map scaling."""
import colorsys
import functools
from collections.abc import Mapping, Sequence
from typing import overload

import cv2
import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_image(img: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """H x W x 3 float image in [0, 1] -> normalised 1 x 3 x H x W tensor."""
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"img must be an H x W x C image, got shape {img.shape}")
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    mean_array = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
    std_array = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
    normalised = (img.astype(np.float32) - mean_array) / std_array
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]


def deprocess_image(img: np.ndarray) -> np.ndarray:
    """Any array -> uint8 image, contrast-stretched the way the guided
    backprop pictures of the Grad-CAM paper are."""
    img = np.asarray(img, dtype=np.float64)
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = img * 0.1 + 0.5
    img = np.clip(img, 0, 1)
    return np.uint8(img * 255)


def _overlay_photo(img: np.ndarray) -> np.ndarray:
    """The photo of :func:`show_cam_on_image` as floats in [0, 1]: a uint8
    photo (0..255) is divided by 255; a float one must already be in
    [0, 1] and is used as it is."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"img must be an H x W x 3 image, got shape {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"img must be a uint8 image (0..255) or a float image with values in "
                         f"[0, 1], got dtype {img.dtype}; convert it, for example with "
                         "np.float32(img) / img.max()")
    low, high = float(np.min(img)), float(np.max(img))
    if high > 1 + 1e-6 or low < -1e-6:
        hint = ("; divide it by 255 (np.float32(img) / 255) or pass it as uint8"
                if high <= 255 else "")
        raise ValueError("img must be a float image with values in [0, 1] (or a uint8 image, "
                         f"0..255), got dtype {img.dtype} with range [{low}, {high}]{hint}")
    return img


def _overlay_mask(mask: np.ndarray, size: tuple[int, int], resize: bool) -> np.ndarray:
    """The map of :func:`show_cam_on_image` at the photo's ``size`` (H, W):
    as it is, or with ``resize`` bilinearly resized; a ValueError that names
    the resize call otherwise."""
    mask = np.asarray(mask, dtype=np.float32)
    height, width = size
    if mask.shape == (height, width):
        return mask
    if mask.ndim != 2:
        raise ValueError(f"mask must be an H x W map, got shape {mask.shape} (for a CAM's "
                         "B x H x W output pass one map, grayscale_cam[0])")
    if not resize:
        raise ValueError(f"mask has shape {mask.shape} but the image is {(height, width)}; "
                         "pass resize=True to resize the map to the image, or resize it "
                         f"first: cv2.resize(mask, ({width}, {height}))")
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)


def show_cam_on_image(img: np.ndarray, mask: np.ndarray, use_rgb: bool = False,
                      colormap: int = cv2.COLORMAP_JET, image_weight: float = 0.5,
                      resize: bool = False) -> np.ndarray:
    """Overlay a map on an image.

    Args:
        img: H x W x 3 image (RGB or BGR, see use_rgb): float with values in
            [0, 1], or uint8 (0..255), which is converted (divided by 255).
        mask: H x W map in [0, 1] (values outside are clipped). A map of
            another size (a CAM's map at the model's input size over the
            original photo) needs ``resize=True``; without it the error names
            the call that resizes it, ``cv2.resize(mask, (W, H))``.
        use_rgb: whether to return the heat map in RGB order (default BGR,
            as cv2.imwrite expects).
        colormap: an OpenCV colormap.
        image_weight: weight of the image in the blend, in [0, 1].
        resize: resize a map of another size bilinearly to the image's
            (``cv2.resize(mask, (W, H))``).

    Returns:
        uint8 H x W x 3 overlay.

    Example::

        photo = cv2.cvtColor(cv2.imread("chelsea.jpg"), cv2.COLOR_BGR2RGB)   # uint8, any size
        overlay = show_cam_on_image(photo, grayscale_cam[0], use_rgb=True, resize=True)
    """
    img = _overlay_photo(img)
    if not 0 <= image_weight <= 1:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight}")
    mask = _overlay_mask(mask, img.shape[:2], resize)
    heatmap = cv2.applyColorMap(np.uint8(255 * np.clip(mask, 0, 1)), colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


@functools.lru_cache(maxsize=32)
def bilinear_matrix(size_in: int, size_out: int, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """size_out x size_in matrix of 1-D linear interpolation with the
    sampling of ``F.interpolate(mode="bilinear", align_corners=False)``:
    output pixel i samples the input at (i + 0.5) * size_in / size_out - 0.5,
    clamped to the first pixel, between its two neighbours. Built outside
    inference mode, so that the cached matrix can enter autograd later."""
    with torch.inference_mode(False):
        source = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out)
                  - 0.5).clamp(min=0)
        lower = source.floor().long().clamp(max=size_in - 1)
        upper = (lower + 1).clamp(max=size_in - 1)
        fraction = source - lower
        rows = torch.arange(size_out)
        matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
        matrix.index_put_((rows, lower), 1 - fraction, accumulate=True)
        matrix.index_put_((rows, upper), fraction, accumulate=True)
        return matrix.to(device=device, dtype=dtype)


def _resize(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """B x ... maps resized to ``size``: bilinear (trilinear for volumes),
    align_corners=False. A 2-D enlargement, the common case (a 7 x 7 layer
    to a 224 x 224 image), is two small matrix products with the same
    sampling as F.interpolate (equal up to float rounding), 4x to 8x faster
    than its kernel on a CPU (GPUs keep the kernel: no TF32 matmul there)."""
    if (len(size) == 2 and cam.device.type == "cpu" and cam.dtype in (torch.float32, torch.float64)
            and size[0] >= cam.shape[1] and size[1] >= cam.shape[2]):
        rows = bilinear_matrix(cam.shape[1], size[0], cam.device, cam.dtype)
        columns = bilinear_matrix(cam.shape[2], size[1], cam.device, cam.dtype)
        return rows @ cam @ columns.T
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(cam[:, None], size=tuple(size), mode=mode, align_corners=False)[:, 0]


def scale_tensor(cam: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
    """Min-max normalise each map of a B x ... tensor to [0, 1], then resize
    it (bilinear, or trilinear for volumes) to ``size``.

    A map that is not constant gets maximum 1 whatever the magnitude of
    its values (no absolute epsilon: maps of small scores are not
    dimmed); a constant map becomes all zeros."""
    if not cam.is_floating_point():
        cam = cam.float()
    flat = cam.flatten(1)
    # two reductions: torch.aminmax(flat, dim=1) is 5x slower on a 224 x 224 map
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    shape = (-1,) + (1,) * (cam.dim() - 1)
    span = high - low  # == max(cam - low): rounding is monotone, so the maximum becomes 1
    span = span.masked_fill_(span <= 0, 1).reshape(shape)
    cam = (cam - low.reshape(shape)) / span
    if size is not None and tuple(cam.shape[1:]) != tuple(size):
        cam = _resize(cam, tuple(size))
    return cam


@overload
def scale_cam_image(cam: torch.Tensor,
                    target_size: Sequence[int] | None = None) -> torch.Tensor: ...
@overload
def scale_cam_image(cam: np.ndarray, target_size: Sequence[int] | None = None) -> np.ndarray: ...


def scale_cam_image(cam: np.ndarray | torch.Tensor,
                    target_size: Sequence[int] | None = None) -> np.ndarray | torch.Tensor:
    """Normalise every map of a batch to [0, 1] and resize it.

    ``cam`` is a numpy array or a torch tensor (B x H x W, or B x D x H x W).
    For numpy input ``target_size`` is (width, height) as in OpenCV (the
    established convention), for torch input it is the output shape (H, W).
    Returns the same type as given.
    """
    if isinstance(cam, torch.Tensor):
        return scale_tensor(cam, target_size)
    array = np.asarray(cam, dtype=np.float32)
    size = None
    if target_size is not None:
        size = tuple(target_size)[::-1] if len(target_size) == 2 else tuple(target_size)
    return scale_tensor(torch.from_numpy(array), size).numpy()


def _rainbow(count: int) -> list[np.ndarray]:
    """``count`` saturated RGB colours (floats in [0, 1]) with evenly spaced
    hues from red to magenta, like matplotlib's gist_rainbow."""
    colors = []
    for index in range(count):
        hue = 0.85 * index / max(count, 1)
        colors.append(np.array(colorsys.hsv_to_rgb(hue, 1.0, 1.0), dtype=np.float32))
    return colors


def create_labels_legend(concept_scores: np.ndarray,
                         labels: Mapping[int, str] | Sequence[str],
                         top_k: int = 2) -> list[str]:
    """One legend string per concept: its ``top_k`` categories with their
    scores, one per line ("tabby, tabby cat:0.43").

    ``concept_scores`` is n_concepts x n_categories; ``labels`` maps a
    category index to its name (a dict such as a HuggingFace config's
    ``id2label`` or a list)."""
    scores = np.asarray(concept_scores)
    if scores.ndim != 2:
        raise ValueError(f"concept_scores must be n_concepts x n_categories, got shape "
                         f"{scores.shape}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    legend = []
    for concept, categories in enumerate(best):
        lines = []
        for category in categories:
            name = str(labels[int(category)])
            lines.append(f"{','.join(name.split(',')[:3])}:{scores[concept, category]:.2f}")
        legend.append("\n".join(lines))
    return legend


def _legend_image(height: int, width: int, colors: Sequence[np.ndarray],
                  concept_labels: Sequence[str]) -> np.ndarray:
    """A white H x W x 3 uint8 panel listing each concept's colour and label."""
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    lines = [(i, text) for i, label in enumerate(concept_labels)
             for text in str(label).split("\n")]
    if not lines:
        return panel
    row = max(8, min(32, height // (len(lines) + len(concept_labels))))
    scale = row / 30
    y = row
    for index, label in enumerate(concept_labels):
        color = tuple(int(255 * c) for c in np.asarray(colors[index])[:3])
        cv2.line(panel, (4, y - row // 3), (4 + row, y - row // 3), color,
                 max(1, row // 5))
        for text in str(label).split("\n"):
            cv2.putText(panel, text, (row + 10, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
            y += row
        y += row // 2
    return panel


def show_factorization_on_image(img: np.ndarray, explanations: np.ndarray,
                                colors: list[np.ndarray] | None = None,
                                image_weight: float = 0.5,
                                concept_labels: list[str] | None = None) -> np.ndarray:
    """Colour every pixel by the concept whose heat map is strongest there,
    with brightness given by that heat map, and blend it with the image.

    Args:
        img: H x W x 3 float RGB image in [0, 1].
        explanations: n_components x H x W heat maps in [0, 1].
        colors: one RGB colour (floats in [0, 1]) per component (default:
            evenly spaced hues, like gist_rainbow).
        image_weight: weight of the image in the blend, in [0, 1].
        concept_labels: one string per component; when given, a legend
            panel of the image's size is appended on the right.

    Returns:
        uint8 H x W x 3 (H x 2W x 3 with the legend) RGB image.
    """
    img = np.asarray(img, dtype=np.float32)
    explanations = np.asarray(explanations, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"img must be an H x W x 3 image, got shape {img.shape}")
    if explanations.ndim != 3 or explanations.shape[1:] != img.shape[:2]:
        raise ValueError(f"explanations must be n_components x H x W with H x W = "
                         f"{img.shape[:2]}, got shape {explanations.shape}")
    if img.max(initial=0) > 1 + 1e-6 or img.min(initial=0) < -1e-6:
        raise ValueError("img must be a float image with values in [0, 1]")
    if not 0 <= image_weight <= 1:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight}")
    count = explanations.shape[0]
    colors = _rainbow(count) if colors is None else [np.asarray(c, dtype=np.float32)[:3]
                                                     for c in colors]
    if len(colors) < count:
        raise ValueError(f"colors has {len(colors)} entries for {count} components")
    if concept_labels is not None and len(concept_labels) != count:
        raise ValueError(f"concept_labels has {len(concept_labels)} entries for {count} "
                         "components")
    strongest = explanations.argmax(axis=0)
    palette = np.stack(colors[:count])  # n x 3
    value = np.clip(np.take_along_axis(explanations, strongest[None], axis=0)[0], 0, 1)
    mask = palette[strongest] * value[..., None]
    result = np.uint8(255 * np.clip(img * image_weight + mask * (1 - image_weight), 0, 1))
    if concept_labels is not None:
        legend = _legend_image(result.shape[0], result.shape[1], colors, concept_labels)
        result = np.hstack((result, legend))
    return result


def scale_accross_batch_and_channels(tensor: np.ndarray | torch.Tensor,
                                     target_size: Sequence[int] | None) -> np.ndarray:
    """grad-cam 1.5's helper (its spelling kept): :func:`scale_cam_image` of
    every map of a B x C x H x W array, ``target_size`` (width, height);
    returns B x C x height x width."""
    array = np.asarray(tensor)
    batch, channels = array.shape[:2]
    scaled = scale_cam_image(array.reshape(batch * channels, *array.shape[2:]), target_size)
    return scaled.reshape(batch, channels, *scaled.shape[1:])
