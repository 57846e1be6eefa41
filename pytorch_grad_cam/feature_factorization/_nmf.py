"""Non-negative matrix factorization V ~ W H for Deep Feature Factorization.

``non_negative_matrix_factorization`` solves it as scikit-learn's
``NMF(n_components, init="random", random_state=seed)`` does (the call of
grad-cam 1.5.7's DFF): the same random start and the same cyclic coordinate
descent and stopping rule, written in torch (on V's device, in V's
precision), so scikit-learn is not needed. ``solver="sklearn"`` calls
scikit-learn itself (the optional extra ``grad-cam[dff]``) and
``solver="mu"`` runs the multiplicative updates of Lee & Seung instead. The
default, ``solver="auto"``, is scikit-learn where it is installed (exactly
1.5.7's numbers) and the torch port otherwise (the same up to float rounding).
"""
import importlib.util
from typing import Literal, NamedTuple

import numpy as np
import torch

from pytorch_grad_cam.messages import given
from pytorch_grad_cam.scoring import check_positive_int

Solver = Literal["auto", "cd", "sklearn", "mu"]
SOLVERS = ("auto", "cd", "sklearn", "mu")


class NMFResult(NamedTuple):
    """W (m x k), H (k x n) and the Frobenius error ||V - W H|| after every
    iteration (after the last one only for ``solver="sklearn"``)."""
    W: torch.Tensor
    H: torch.Tensor
    errors: torch.Tensor


def random_start(matrix: torch.Tensor, n_components: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's ``init="random"``: sqrt(mean(V) / k) times the absolute
    values of standard normal draws of ``np.random.RandomState(seed)``, H
    (k x n) drawn first, then W (m x k), in V's dtype and on its device."""
    rows, cols = matrix.shape
    dtype = np.float64 if matrix.dtype == torch.float64 else np.float32
    # numpy's mean (pairwise summation in V's precision), as scikit-learn's
    scale = np.sqrt(matrix.cpu().numpy().mean() / n_components).astype(dtype)
    state = np.random.RandomState(seed)
    h = np.abs(scale * state.standard_normal(size=(n_components, cols)).astype(dtype))
    w = np.abs(scale * state.standard_normal(size=(rows, n_components)).astype(dtype))
    return (torch.from_numpy(w).to(matrix.device), torch.from_numpy(h).to(matrix.device))


def _coordinate_sweep(w: torch.Tensor, hht: torch.Tensor, xht: torch.Tensor) -> float:
    """One cyclic pass of coordinate descent over the columns of ``w`` (in
    place) for min ||X - w h|| with hht = h h^T, xht = X h^T: column t
    moves to max(0, w_t - grad_t / hht[t, t]), every row at once (the rows
    do not interact). Returns the sum of |projected gradient| before the
    pass (scikit-learn's ``_update_cdnmf_fast``)."""
    violations = []
    for t, hessian in enumerate(hht.diagonal().tolist()):
        grad = torch.addmv(xht[:, t], w, hht[t], beta=-1)
        column = w[:, t]
        projected = torch.where(column == 0, grad.clamp_max(0), grad)
        violations.append(torch.linalg.vector_norm(projected, 1))
        if hessian != 0:
            column.sub_(grad.div_(hessian)).clamp_(min=0)
    return float(torch.stack(violations).sum())


def _coordinate_descent(v: torch.Tensor, w: torch.Tensor, h: torch.Tensor, max_iter: int,
                        tol: float) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """scikit-learn's ``_fit_coordinate_descent`` (no regularisation, no
    shuffling): W's sweep then H's, until the violation falls to ``tol``
    times the first iteration's."""
    ht = h.T.contiguous()
    errors = []
    first = None
    for _ in range(max_iter):
        violation = _coordinate_sweep(w, ht.T @ ht, v @ ht)
        violation += _coordinate_sweep(ht, w.T @ w, v.T @ w)
        errors.append(torch.linalg.norm(v - w @ ht.T))
        first = violation if first is None else first
        if first == 0 or violation / first <= tol:
            break
    return w, ht.T, errors


def _multiplicative_updates(v: torch.Tensor, w: torch.Tensor, h: torch.Tensor, max_iter: int,
                            tol: float) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Lee & Seung's H <- H (W^T V) / (W^T W H), W <- W (V H^T) / (W H H^T);
    stops when 10 iterations gain less than ``tol`` times the first error."""
    tiny = torch.finfo(v.dtype).tiny
    errors = []
    for iteration in range(max_iter):
        h = h * (w.T @ v) / ((w.T @ w) @ h).clamp_min(tiny)
        w = w * (v @ h.T) / (w @ (h @ h.T)).clamp_min(tiny)
        errors.append(torch.linalg.norm(v - w @ h))
        if ((iteration + 1) % 10 == 0 and iteration >= 10
                and float(errors[-11] - errors[-1]) < tol * float(errors[0])):
            break
    return w, h, errors


def _sklearn(v: torch.Tensor, n_components: int, max_iter: int, tol: float,
             seed: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    try:
        from sklearn.decomposition import NMF
    except ImportError as error:
        raise ImportError('solver="sklearn" needs scikit-learn: pip install "grad-cam[dff]", '
                          'or use solver="cd" (the same algorithm in torch)') from error
    array = v.cpu().numpy()
    model = NMF(n_components=n_components, init="random", random_state=seed,
                max_iter=max_iter, tol=tol)
    w = torch.from_numpy(model.fit_transform(array)).to(v.device)
    h = torch.from_numpy(model.components_).to(v.device)
    return w, h, [torch.linalg.norm(v - w @ h)]


def non_negative_matrix_factorization(matrix: torch.Tensor, n_components: int,
                                      max_iter: int = 200, tol: float = 1e-4,
                                      seed: int = 0, solver: Solver = "auto") -> NMFResult:
    """Factorise a non-negative m x n matrix V ~ W H (W: m x k, H: k x n,
    both non-negative) minimising the Frobenius error ||V - W H||.

    ``solver="cd"`` is scikit-learn's ``NMF(n_components,
    init="random", random_state=seed, max_iter=max_iter, tol=tol)`` (its
    default solver, coordinate descent) written in torch: the same start
    (``random_start``), the same cyclic updates of W's then H's columns and
    the same stop (the sum of |projected gradient| of an iteration at most
    ``tol`` times the first iteration's), so it gives scikit-learn's W and H
    up to float rounding, on V's device. ``solver="sklearn"`` runs
    scikit-learn itself (on the CPU; ``pip install "grad-cam[dff]"``);
    ``solver="mu"`` the multiplicative updates of Lee & Seung (2001) from the
    same start, which stop when 10 iterations gain less than ``tol`` times
    the first error (a different local minimum, no scikit-learn parity).
    The default, ``solver="auto"``, is "sklearn" where scikit-learn is
    installed and "cd" otherwise: grad-cam 1.5.7's DFF called scikit-learn,
    so its W and H either way (exactly, or to about 1e-5 of their largest
    value: the sums run in another order). Computes in float32 (float64 for
    float64 input), as scikit-learn does.
    """
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
        raise ValueError(f"matrix must be a 2-D torch tensor, got {given(matrix)}")
    n_components = check_positive_int("n_components", n_components)
    max_iter = check_positive_int("max_iter", max_iter)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(map(repr, SOLVERS))}, got {solver!r}")
    if bool((matrix < 0).any()):
        raise ValueError("matrix has negative entries; NMF needs a non-negative matrix")
    dtype = torch.float64 if matrix.dtype == torch.float64 else torch.float32
    v = matrix.detach().to(dtype)
    if solver == "auto":
        solver = "sklearn" if importlib.util.find_spec("sklearn") is not None else "cd"
    if solver == "sklearn":
        w, h, errors = _sklearn(v, n_components, max_iter, tol, int(seed))
    else:
        w, h = random_start(v, n_components, int(seed))
        fit = _coordinate_descent if solver == "cd" else _multiplicative_updates
        w, h, errors = fit(v, w, h, max_iter, tol)
    return NMFResult(w, h, torch.stack(errors))
