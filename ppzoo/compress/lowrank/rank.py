"""Choosing the rank of a factorisation: by value, by kept energy, by parameter ratio, or by
empirical variational Bayesian matrix factorisation (EVBMF).

EVBMF is the rank selector of Kim et al. (arXiv 1511.06530, Sec. 3.1), who apply it to the
mode-0 and mode-1 unfoldings of a kernel to get the Tucker-2 ranks. The analytic solution
is Nakajima, Sugiyama, Babacan and Tomioka, "Global analytic solution of fully-observed
variational Bayesian matrix factorization", JMLR 14 (2013): for a fixed noise variance
sigma^2 a singular value is kept iff ``s^2 > M sigma^2 xi_bar`` (their Theorem 2 with the
threshold of Eq. 28), and sigma^2 itself minimises the free energy of their Eq. 31, a 1-D
problem bounded as in their Eq. 32-33.
"""
import math
from typing import Optional, Sequence

import numpy as np

__all__ = ["energy_rank", "ratio_rank", "evbmf_rank", "singular_values"]

_TAU_CONST = 2.5129  # tau_bar = 2.5129 sqrt(alpha): the zero of Eq. 29 of Nakajima et al. (2013)


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of a 2-D array, largest first, in float64."""
    return np.linalg.svd(np.asarray(matrix, dtype="float64"), compute_uv=False)


def energy_rank(s: Sequence[float], energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` (0, 1] of the sum of squares."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    power = np.asarray(s, dtype="float64") ** 2
    total = power.sum()
    if total == 0.0:
        return 1
    kept = np.cumsum(power) / total
    return int(min(len(power), np.searchsorted(kept, energy - 1e-12) + 1))


def ratio_rank(ratio: float, params_at_rank, full_params: int, max_rank: int) -> int:
    """Largest rank whose factorised weights stay within ``ratio`` of ``full_params``
    (``params_at_rank(r)`` is increasing in r); at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    budget = ratio * full_params
    lo, hi = 1, max_rank
    if params_at_rank(1) > budget:
        return 1
    while lo < hi:  # bisection on the increasing parameter count
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if params_at_rank(mid) <= budget else (lo, mid - 1)
    return lo


def _free_energy(sigma2: float, s: np.ndarray, L: int, M: int, xubar: float) -> float:
    """The part of the VB free energy that depends on sigma^2 (Eq. 31 of Nakajima et al.)."""
    alpha = L / M
    xi = s ** 2 / (M * sigma2)
    big, small = xi[xi > xubar], xi[xi <= xubar]
    tau = 0.5 * (big - (1 + alpha) + np.sqrt((big - (1 + alpha)) ** 2 - 4 * alpha))
    return float(np.sum(small - np.log(small)) + np.sum(big - tau) + np.sum(np.log((tau + 1) / big))
                 + alpha * np.sum(np.log(tau / alpha + 1)))


def evbmf_rank(matrix: np.ndarray, sigma2: Optional[float] = None) -> int:
    """Rank EVBMF keeps for ``matrix`` (noise variance estimated unless ``sigma2`` is given).

    Args:
        matrix (np.ndarray): any 2-D array; it is transposed so that L <= M.
        sigma2 (float, optional): known noise variance. Default: estimated (empirical VB).
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(matrix, dtype="float64")
    if y.ndim != 2 or min(y.shape) < 1:
        raise ValueError(f"evbmf_rank needs a non-empty 2-D array, got shape {list(y.shape)}")
    L, M = sorted(y.shape)
    s = singular_values(y)
    if s[0] == 0.0:
        return 0
    alpha = L / M
    tau_bar = _TAU_CONST * math.sqrt(alpha)
    xubar = (1 + tau_bar) * (1 + alpha / tau_bar)
    if sigma2 is None:
        residual = max(float(np.sum(y ** 2) - np.sum(s ** 2)), 0.0)  # zero for a full SVD
        upper = (np.sum(s ** 2) + residual) / (L * M)
        h_ub = int(min(math.ceil(L / (1 + alpha)) - 1, L)) - 1  # largest rank EVBMF can keep, 0-based
        lower = max(s[h_ub + 1] ** 2 / (M * xubar) if h_ub + 1 < L else 0.0,
                    float(np.mean(s[h_ub + 1:] ** 2)) / M if h_ub + 1 < L else 0.0)
        lower = max(lower, upper * 1e-12)
        if lower >= upper:
            sigma2 = upper
        else:
            sigma2 = minimize_scalar(_free_energy, args=(s, L, M, xubar), bounds=(lower, upper),
                                     method="bounded").x
    return int(np.sum(s > math.sqrt(M * sigma2 * xubar)))
