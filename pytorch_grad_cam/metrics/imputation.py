"""The linear imputation of ROAD: every unknown pixel becomes the weighted
mean of its 8 neighbours (weight 1/6 for the 4 direct, 1/12 for the 4
diagonal ones, as in the ROAD paper's code and grad-cam 1.5.7), which is a
sparse linear system over all unknown pixels of an image.

Two solvers give the same values (to about 1e-6 of the image's range):

- ``"direct"``: the system is built with numpy and solved by SciPy's
  sparse LU factorisation (SuperLU, ``scipy.sparse.linalg.splu``), one
  factorisation per image for all its channels, in float64 on the CPU, as
  grad-cam 1.5.7 does (1.5.7 builds the matrix element by element in a
  ``lil_matrix``; here it is built in one vectorised step). SciPy is an
  optional dependency (``pip install grad-cam[road]``).
- ``"cg"``: batched in torch on the input's device, conjugate gradients
  preconditioned by the diagonal (the system is symmetric positive
  definite on every region that touches a known pixel), to a relative
  residual of ``tol``. It needs about as many iterations as the largest
  unknown region is wide: fast for scattered pixels, but several times
  slower than the direct solve for the large connected regions that the
  maps of a CAM remove (a measurement: ``bench/road_imputation.py``).

``"auto"`` (the default) is ``"direct"`` when SciPy is installed, else
``"cg"``. A region of unknown pixels without any known neighbour (nothing
to interpolate from) is imputed with zeros by both (1.5.7's solver returns
NaN there).
"""
import importlib.util
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

#: the solvers of :func:`linear_imputation`
Solver = Literal["auto", "direct", "cg"]
SOLVERS = ("auto", "direct", "cg")

#: (offset (dy, dx), weight) of neighbours, as the imputation's ``weighting`` takes them
Weighting = Sequence[tuple[tuple[int, int], float]]

#: (offset (dy, dx), weight) of the neighbours in the imputation
neighbors_weights = [((1, 1), 1 / 12),
                     ((0, 1), 1 / 6),
                     ((-1, 1), 1 / 12),
                     ((1, -1), 1 / 12),
                     ((0, -1), 1 / 6),
                     ((-1, -1), 1 / 12),
                     ((1, 0), 1 / 6),
                     ((-1, 0), 1 / 6)]


def weighting_kernel(weighting: Weighting) -> torch.Tensor:
    """The 3 x 3 kernel of ``weighting`` (checked: neighbours only, positive
    weights, symmetric)."""
    kernel = torch.zeros(3, 3, dtype=torch.float64)
    for entry in weighting:
        try:
            (dy, dx), weight = entry
        except (TypeError, ValueError) as error:
            raise ValueError(f"weighting entries must be ((dy, dx), weight), "
                             f"got {entry!r}") from error
        if not (dy in (-1, 0, 1) and dx in (-1, 0, 1)) or (dy, dx) == (0, 0):
            raise ValueError(f"weighting offsets must be neighbours in -1..1 other than (0, 0), "
                             f"got {(dy, dx)}")
        if not weight > 0:
            raise ValueError(f"weighting weights must be positive, got {weight}")
        kernel[1 + dy, 1 + dx] += float(weight)
    if not torch.equal(kernel, kernel.flip(0).flip(1)):
        raise ValueError("weighting must be symmetric: the weight of (dy, dx) must equal "
                         "that of (-dy, -dx)")
    return kernel


class _Laplacian:
    """The imputation operator on one grid: for an unknown pixel i,
    (L u)_i = S_i u_i - sum_n w_n u_n over its unknown neighbours n, where
    S_i is the sum of the weights of all its neighbours inside the image."""

    def __init__(self, kernel: torch.Tensor, shape: Sequence[int], device: torch.device,
                 dtype: torch.dtype) -> None:
        self.kernel = kernel.to(device=device, dtype=dtype)[None, None]
        # the default weights are (1 2 1)^T (1 2 1) / 12 without the centre:
        # two 1-D passes instead of a 3 x 3 convolution
        self.separable = torch.equal(kernel, weighting_kernel(neighbors_weights))
        ones = torch.ones((1, 1) + tuple(shape), device=device, dtype=dtype)
        self.sums = self.neighbours(ones)

    def neighbours(self, values: torch.Tensor) -> torch.Tensor:
        """sum_n w_n values_n for every pixel (zero outside the image)."""
        height, width = values.shape[-2:]
        if self.separable:
            padded = F.pad(values, (1, 1, 1, 1))
            rows = padded[..., :height, :] + 2 * padded[..., 1:height + 1, :] \
                + padded[..., 2:, :]
            both = rows[..., :width] + 2 * rows[..., 1:width + 1] + rows[..., 2:]
            return (both - 4 * values) / 12
        batch, channels = values.shape[:2]
        flat = values.reshape((batch * channels, 1) + values.shape[2:])
        return F.conv2d(flat, self.kernel, padding=1).reshape(values.shape)


def _conjugate_gradients(operator: _Laplacian, unknown: torch.Tensor, rhs: torch.Tensor,
                         tol: float, max_iter: int) -> tuple[torch.Tensor, bool]:
    """Solve L u = rhs on the unknown pixels of every (image, channel) by
    conjugate gradients preconditioned with the diagonal, from u = 0;
    returns (solution, converged)."""
    diagonal = torch.where(unknown, operator.sums, torch.ones_like(operator.sums))

    def apply(u: torch.Tensor) -> torch.Tensor:
        return unknown * (operator.sums * u - operator.neighbours(u))

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).flatten(2).sum(dim=2)[..., None, None]

    x = torch.zeros_like(rhs)
    r = rhs
    z = r / diagonal
    p = z
    rz = dot(r, z)
    limit = (tol * rhs.flatten(2).norm(dim=2))[..., None, None]
    converged = False
    for iteration in range(max_iter):
        if iteration % 8 == 0 and bool((dot(r, r).sqrt() <= limit).all()):
            converged = True
            break
        ap = apply(p)
        pap = dot(p, ap)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-30), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        z = r / diagonal
        rz_new = dot(r, z)
        beta = torch.where(rz > 0, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    else:
        converged = bool((dot(r, r).sqrt() <= limit).all())
    return x, converged


def check_solver(solver: str) -> str:
    """``solver`` resolved: ``"auto"`` becomes ``"direct"`` when SciPy is
    installed, else ``"cg"``; ``"direct"`` without SciPy raises."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    has_scipy = importlib.util.find_spec("scipy") is not None
    if solver == "direct" and not has_scipy:
        raise ImportError("solver='direct' needs SciPy: pip install scipy (or grad-cam[road]), "
                          "or use solver='cg'")
    if solver == "auto":
        return "direct" if has_scipy else "cg"
    return solver


def linear_imputation(image: torch.Tensor, known: torch.Tensor,
                      weighting: Weighting | None = None,
                      tol: float = 1e-5, max_iter: int | None = None,
                      solver: Solver = "auto") -> torch.Tensor:
    """Fill the unknown pixels of ``image`` (B x C x H x W) so that each is
    the weighted mean of its neighbours (the noise-free ROAD imputation).

    ``known`` (B x H x W, bool or 0/1) marks the pixels that keep their
    values. ``solver`` (see the module): ``"direct"`` (SciPy's sparse LU,
    as grad-cam 1.5.7), ``"cg"`` (conjugate gradients in torch to a
    relative residual of ``tol``, at most ``max_iter`` iterations, default
    10 x (H + W); the error of the imputed values is then about 1e-3 or
    less of the image's range on 224 x 224 images) or ``"auto"`` (direct
    when SciPy is installed). A region of unknown pixels without any known
    neighbour gets zeros."""
    kernel = weighting_kernel(neighbors_weights if weighting is None else weighting)
    resolved = check_solver(solver)
    known = known.to(torch.bool)[:, None]
    if bool(known.all()):
        return image.clone()
    if resolved == "direct":
        return _direct_imputation(image, known[:, 0], kernel)
    height, width = image.shape[-2:]
    unknown = ~known
    operator = _Laplacian(kernel, (height, width), image.device, image.dtype)
    rhs = unknown * operator.neighbours(image * known)
    iterations = max_iter if max_iter is not None else 10 * (height + width)
    solution, converged = _conjugate_gradients(operator, unknown, rhs, tol, iterations)
    if not converged:
        warnings.warn(f"the ROAD imputation did not reach the relative residual {tol} in "
                      f"{iterations} iterations on a {height} x {width} grid; the imputed "
                      "values are approximate", RuntimeWarning, stacklevel=2)
    return torch.where(known, image, solution)


def _direct_imputation(image: torch.Tensor, known: torch.Tensor,
                       kernel: torch.Tensor) -> torch.Tensor:
    """linear_imputation by SciPy's sparse LU, one image at a time."""
    values = image.detach().to("cpu", torch.float64).numpy()
    known_np = known.cpu().numpy()
    height, width = image.shape[-2:]
    offsets = [(dy - 1, dx - 1, float(kernel[dy, dx])) for dy in range(3) for dx in range(3)
               if float(kernel[dy, dx]) > 0]
    result = values.copy()
    for index in range(values.shape[0]):
        flat = result[index].reshape(values.shape[1], -1)  # a view: filled in place
        unknown = np.flatnonzero(~known_np[index].ravel())
        if unknown.size:
            flat[:, unknown] = _solve_system(flat, known_np[index].ravel(), unknown,
                                             (height, width), offsets).T
    return torch.from_numpy(result).to(device=image.device, dtype=image.dtype)


def _solve_system(flat: np.ndarray, known: np.ndarray, unknown: np.ndarray,
                  shape: tuple[int, int], offsets: list[tuple[int, int, float]]) -> np.ndarray:
    """The imputed values (unknown pixels x channels) of one image: solves
    S_i u_i - sum_n w_n u_n = sum_k w_k x_k over the unknown pixels i, with
    n its unknown and k its known neighbours and S_i the sum of the weights
    of its neighbours inside the image."""
    import scipy.sparse  # optional dependency (grad-cam[road])
    import scipy.sparse.csgraph
    import scipy.sparse.linalg

    height, width = shape
    count = unknown.size
    variable = np.full(height * width, -1)
    variable[unknown] = np.arange(count)
    ys, xs = np.divmod(unknown, width)
    diagonal = np.zeros(count)
    rhs = np.zeros((count, flat.shape[0]))
    grounded = np.zeros(count, dtype=bool)  # has a known neighbour
    rows, cols, weights = [np.arange(count)], [np.arange(count)], []
    for dy, dx, weight in offsets:
        ny, nx = ys + dy, xs + dx
        inside = np.flatnonzero((ny >= 0) & (ny < height) & (nx >= 0) & (nx < width))
        neighbour = ny[inside] * width + nx[inside]
        diagonal[inside] += weight
        is_known = known[neighbour]
        with_value = inside[is_known]
        rhs[with_value] += weight * flat[:, neighbour[is_known]].T
        grounded[with_value] = True
        rows.append(inside[~is_known])
        cols.append(variable[neighbour[~is_known]])
        weights.append(np.full(rows[-1].size, -weight))
    matrix = scipy.sparse.csc_matrix((np.concatenate([diagonal] + weights),
                                      (np.concatenate(rows), np.concatenate(cols))),
                                     shape=(count, count))
    solution = np.zeros_like(rhs)
    solvable = np.ones(count, dtype=bool)
    if not grounded.all():  # regions without a known pixel are singular: zeros there
        _, labels = scipy.sparse.csgraph.connected_components(matrix, directed=False)
        solvable = np.isin(labels, np.unique(labels[grounded]))
        matrix = matrix[solvable][:, solvable].tocsc()
    if solvable.any():
        solution[solvable] = scipy.sparse.linalg.splu(matrix).solve(rhs[solvable])
    return solution
