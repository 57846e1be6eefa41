"""Projections of activations on their first (kernel) principal component."""
from typing import overload

import numpy as np
import torch

_KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")


def _as_points(activation_batch: np.ndarray | torch.Tensor
               ) -> tuple[torch.Tensor, tuple[int, ...], bool]:
    """(tensor or array B x C x spatial) -> (float tensor B x N x C, spatial, as_numpy)."""
    as_numpy = not isinstance(activation_batch, torch.Tensor)
    x = activation_batch if isinstance(activation_batch, torch.Tensor) else \
        torch.as_tensor(np.asarray(activation_batch))
    x = torch.nan_to_num(x.float())
    batch, channels = x.shape[:2]
    spatial = tuple(x.shape[2:])
    return x.reshape(batch, channels, -1).transpose(1, 2), spatial, as_numpy


def _centre(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The points (B x N x C) centred over the positions, and per image
    whether they are constant up to rounding: their spread is within the
    float32 rounding error of the centring (N * eps * max |x|), so that
    they have no principal direction, only noise (zero or constant
    activations)."""
    centred = points - points.mean(dim=1, keepdim=True)
    scale = points.abs().flatten(1).amax(dim=1)
    tolerance = points.shape[1] * torch.finfo(torch.float32).eps * scale
    return centred, centred.abs().flatten(1).amax(dim=1) <= tolerance


def _zero_where(flat: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """A projection of zeros for the images whose points are constant."""
    return torch.where(flat[:, None], torch.zeros_like(projection), projection)


def _orient(projection: torch.Tensor, points: torch.Tensor, centred: bool) -> torch.Tensor:
    """Flip each image's projection (B x N) so that, for centred points
    (B x N x C), it correlates positively with their channel sum, and for
    uncentred points, it sums to >= 0 (the singular vector points along the
    mean of the points)."""
    if centred:
        reference = points.sum(dim=2)
        reference = reference - reference.mean(dim=1, keepdim=True)
        agreement = (projection * reference).sum(dim=1, keepdim=True)
    else:
        agreement = projection.sum(dim=1, keepdim=True)
    return projection * torch.where(agreement < 0, -1.0, 1.0)


def _finish(projection: torch.Tensor, spatial: tuple[int, ...],
            as_numpy: bool) -> np.ndarray | torch.Tensor:
    projection = projection.reshape((projection.shape[0],) + spatial)
    return projection.numpy() if as_numpy else projection


@overload
def get_2d_projection(activation_batch: torch.Tensor, center: bool = True) -> torch.Tensor: ...
@overload
def get_2d_projection(activation_batch: np.ndarray, center: bool = True) -> np.ndarray: ...


def get_2d_projection(activation_batch: np.ndarray | torch.Tensor,
                      center: bool = True) -> np.ndarray | torch.Tensor:
    """Project every image's B x C x (spatial) activations on their first
    principal component over the spatial positions (the eigen_smooth of the
    Grad-CAM library, and with ``center=False`` the map of Eigen-CAM,
    Muhammad & Yeasin 2020, which factorises the activations as they are).

    The sign of a singular vector is arbitrary; it is chosen so that the
    projection correlates positively with the channel sum of the
    activations (centred), or sums to >= 0, that is the singular vector
    points along the mean of the activation vectors (``center=False``).
    This makes the result deterministic and keeps positive evidence
    positive. With centring, an image whose activations are the same at
    every position (zero, or constant up to rounding) has no principal
    direction and gets a projection of zeros, never rounding noise
    stretched into a map. Accepts a torch tensor or a numpy array and
    returns the same type (B x spatial).
    """
    points, spatial, as_numpy = _as_points(activation_batch)
    flat: torch.Tensor | None = None
    if center:
        points, flat = _centre(points)
    _, _, vh = torch.linalg.svd(points, full_matrices=False)
    projection = _orient((points @ vh[:, 0, :, None])[..., 0], points, centred=center)  # B x N
    if flat is not None:
        projection = _zero_where(flat, projection)
    return _finish(projection, spatial, as_numpy)


@overload
def get_2d_projection_with_sign_correction(activation_batch: torch.Tensor) -> torch.Tensor: ...
@overload
def get_2d_projection_with_sign_correction(activation_batch: np.ndarray) -> np.ndarray: ...


def get_2d_projection_with_sign_correction(activation_batch: np.ndarray | torch.Tensor
                                           ) -> np.ndarray | torch.Tensor:
    """Centred first-principal-component projection whose sign is chosen by
    the rule of Seg-Eigen-CAM (Chung & Ying 2025, Eq. 13): flipped when
    its most negative value is larger in magnitude than its most positive
    one, so that the salient region comes out positive."""
    points, spatial, as_numpy = _as_points(activation_batch)
    points, flat = _centre(points)
    _, _, vh = torch.linalg.svd(points, full_matrices=False)
    projection = (points @ vh[:, 0, :, None])[..., 0]
    return _finish(_zero_where(flat, _largest_positive(projection)), spatial, as_numpy)


def _largest_positive(projection: torch.Tensor) -> torch.Tensor:
    """Flip each image's projection (B x N) whose most negative value is
    larger in magnitude than its most positive one."""
    flip = projection.amin(dim=1, keepdim=True).abs() > projection.amax(dim=1, keepdim=True).abs()
    return torch.where(flip, -projection, projection)


def _kernel_matrix(points: torch.Tensor, kernel: str, gamma: float, coef0: float,
                   degree: int) -> torch.Tensor:
    if kernel == "cosine":
        unit = points / points.norm(dim=2, keepdim=True).clamp_min(1e-12)
        return unit @ unit.transpose(1, 2)
    gram = points @ points.transpose(1, 2)
    if kernel == "linear":
        return gram
    if kernel == "poly":
        return (gamma * gram + coef0) ** degree
    if kernel == "sigmoid":
        return torch.tanh(gamma * gram + coef0)
    squared = points.pow(2).sum(dim=2)
    distances = (squared[:, :, None] + squared[:, None, :] - 2 * gram).clamp_min(0)
    return torch.exp(-gamma * distances)  # rbf


@overload
def get_2d_projection_kernel(activation_batch: torch.Tensor, kernel: str = "sigmoid",
                             gamma: float | None = None, coef0: float = 1.0,
                             degree: int = 3) -> torch.Tensor: ...
@overload
def get_2d_projection_kernel(activation_batch: np.ndarray, kernel: str = "sigmoid",
                             gamma: float | None = None, coef0: float = 1.0,
                             degree: int = 3) -> np.ndarray: ...


def get_2d_projection_kernel(activation_batch: np.ndarray | torch.Tensor,
                             kernel: str = "sigmoid", gamma: float | None = None,
                             coef0: float = 1.0, degree: int = 3
                             ) -> np.ndarray | torch.Tensor:
    """Project every image's activations on their first kernel principal
    component (KPCA-CAM, Karmani et al. 2024).

    The spatial positions are the samples and the channels the features:
    the features are centred, the N x N kernel matrix K is built
    (``kernel`` one of linear, poly, rbf, sigmoid, cosine with the usual
    parameters: poly (gamma <x, y> + coef0) ** degree, sigmoid
    tanh(gamma <x, y> + coef0), rbf ``exp(-gamma |x - y|^2)``; ``gamma``
    defaults to 1 / channels), centred in feature space
    (K - 1K - K1 + 1K1), and the projection is the leading eigenvector
    scaled by the square root of its eigenvalue, as scikit-learn's
    KernelPCA(n_components=1).fit_transform returns, with scikit-learn's
    sign convention: the entry of largest magnitude is positive. An image
    whose activations are the same at every position (zero, or constant up
    to rounding) gets a projection of zeros. The cost grows as N^3 in the
    number of positions N.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {kernel!r}")
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float))
                              or gamma <= 0):
        raise ValueError(f"gamma must be a positive number or None, got {gamma!r}")
    points, spatial, as_numpy = _as_points(activation_batch)
    points, flat = _centre(points)
    channels = points.shape[2]
    gamma = 1.0 / channels if gamma is None else float(gamma)
    k = _kernel_matrix(points.double(), kernel, gamma, coef0, degree)
    k = (k - k.mean(dim=1, keepdim=True) - k.mean(dim=2, keepdim=True)
         + k.mean(dim=(1, 2), keepdim=True))
    values, vectors = torch.linalg.eigh((k + k.transpose(1, 2)) / 2)
    projection = (vectors[..., -1] * values[..., -1:].clamp_min(0).sqrt()).float()
    return _finish(_zero_where(flat, _largest_positive(projection)), spatial, as_numpy)
