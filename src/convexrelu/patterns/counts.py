"""How many patterns: the bounds of theory.md, "How many patterns", and actual counts.

- First layer (Cover's count of the regions of n hyperplanes through the origin of
  R^r; tight when the rows are in general position):

      P1(n, r) = 2 sum_{k=0}^{r-1} binom(n-1, k)  <=  2 r (e (n-1) / r)^r.

  The second (loose) form holds for ``n - 1 >= r``; for smaller n it can fall below
  P1 (e.g. n = 1 gives 0), so use the first.
- Three layers: see :func:`three_layer_pattern_bound`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._validation import check_matrix, check_positive_int

__all__ = ["two_layer_pattern_bound", "three_layer_pattern_bound", "pattern_counts"]


def _check_nonneg_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(value)


def _regions(n: int, r: int) -> int:
    """``2 sum_{k<r} binom(n-1, k)``; 1 when r = 0 or n = 0 (the whole space is one cell)."""
    if n == 0 or r == 0:
        return 1
    return 2 * sum(math.comb(n - 1, k) for k in range(r))


def two_layer_pattern_bound(n: int, r: int, *, loose: bool = False):
    """Upper bound on the number of first-layer patterns (theory.md, "How many patterns").

    Parameters
    ----------
    n : int >= 1
        Number of rows of the design matrix X (n, d).
    r : int >= 0
        rank(X).
    loose : bool, default False
        Return ``2 r (e (n-1) / r)^r`` (a float) instead of the exact count.

    Returns
    -------
    int or float
        ``P1 = 2 sum_{k<r} binom(n-1, k)``: the number of regions of n hyperplanes
        through the origin of R^r in general position, hence an upper bound on the
        regions (and on the patterns of :func:`~convexrelu.patterns.enumerate_two_layer`)
        for any X of rank r. It counts the all-zero mask, which the pattern sets drop.
        For r = 0 the bound is 1 (one cell, the all-ones mask). The loose form is
        only valid for ``n - 1 >= r``.
    """
    n = check_positive_int(n, "n")
    r = _check_nonneg_int(r, "r")
    if loose:
        if r == 0:
            return 1.0
        return float(2 * r * (math.e * (n - 1) / r) ** r)
    return _regions(n, r)


def three_layer_pattern_bound(n: int, r: int, hidden: int, *, loose: bool = False):
    """Upper bound on the number of three-layer patterns (theory.md, "How many patterns").

    A pattern is ``c = (D2; S)`` with S a set of k distinct (sign, first-layer pattern)
    pairs, 1 <= k <= hidden. For fixed S, ``D2`` is a cell of the lifted arrangement
    ``[s_1 D_11 X, ..., s_k D_1k X]`` (n rows of rank at most ``k r``), so

        |C| <= sum_{k=1}^{hidden} binom(2 P1, k) * P1(n, min(k r, n))

    with ``P1 = two_layer_pattern_bound(n, r)`` and ``P1(n, rho) = 2 sum_{i<rho}
    binom(n-1, i)``: the number of pair sets of size k times the region bound of the
    lifted arrangement. That is what this function multiplies (exact integers).

    Parameters
    ----------
    n : int >= 1
    r : int >= 0
        rank(X).
    hidden : int >= 1
        m1, first-layer neurons per sub-network.
    loose : bool, default False
        Return theory.md's closed form instead,
        ``(2 P1_loose)^m1 * 2 m1 r (e (n-1) / (m1 r))^{m1 r}`` with
        ``P1_loose = 2 r (e (n-1) / r)^r`` (uses ``sum_{k<=m1} binom(N, k) <= N^m1``
        for N >= 2; valid for ``n - 1 >= m1 r``). A float.

    Returns
    -------
    int or float
    """
    n = check_positive_int(n, "n")
    r = _check_nonneg_int(r, "r")
    hidden = check_positive_int(hidden, "hidden")
    if loose:
        if r == 0:
            return float(2 ** hidden)
        p1 = two_layer_pattern_bound(n, r, loose=True)
        mr = hidden * r
        return float((2 * p1) ** hidden * 2 * mr * (math.e * (n - 1) / mr) ** mr)
    p1 = _regions(n, r)
    return sum(math.comb(2 * p1, k) * _regions(n, min(k * r, n)) for k in range(1, hidden + 1))


def pattern_counts(X, hidden: int | None = None, *, max_regions: int = 100_000, max_pair_sets: int = 2_000) -> dict:
    """Actual numbers of patterns of ``X`` against the bounds of theory.md, "How many patterns".

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix (intercept column included if any).
    hidden : int or None
        m1 for the three-layer counts; None to skip them.
    max_regions : int >= 1, default 100000
        Enumerate the first-layer patterns only when rank <= 2 or the region bound
        ``two_layer_pattern_bound(n, r)`` is at most this (the LP-free enumeration
        handles about 1e5 regions per second).
    max_pair_sets : int >= 1, default 2000
        Enumerate the three-layer patterns only when n <= 8 and the number of pair sets
        ``sum_{k<=hidden} binom(2 P1, k)`` is at most this (one small LP series each).

    Returns
    -------
    dict with keys
        ``n_samples``, ``n_features``, ``rank`` (r), ``n_hyperplanes`` (distinct non-zero
        rows up to scaling), ``n_zero_rows``;
        ``two_layer`` (patterns of :func:`enumerate_two_layer`, all-zero mask dropped,
        or None), ``two_layer_regions`` (regions of the arrangement, the quantity the
        bound counts, or None), ``two_layer_bound`` (int), ``two_layer_bound_loose``
        (float);
        with ``hidden``: ``hidden``, ``three_layer`` (patterns of
        :func:`enumerate_three_layer` or None), ``three_layer_bound`` (int),
        ``three_layer_bound_loose`` (float).
    """
    from .exact import _arrangement, _n_pair_sets, _two_layer_cells, enumerate_three_layer

    X = check_matrix(X, "X")
    max_regions = check_positive_int(max_regions, "max_regions")
    max_pair_sets = check_positive_int(max_pair_sets, "max_pair_sets")
    if hidden is not None:
        hidden = check_positive_int(hidden, "hidden")
    n, d = X.shape
    tol = 1e-10
    arr = _arrangement(X, tol)
    r = arr.rank
    out = {
        "n_samples": n,
        "n_features": d,
        "rank": r,
        "n_hyperplanes": int(arr.H.shape[0]),
        "n_zero_rows": int(arr.zero.sum()),
        "two_layer": None,
        "two_layer_regions": None,
        "two_layer_bound": two_layer_pattern_bound(n, r),
        "two_layer_bound_loose": two_layer_pattern_bound(n, r, loose=True),
    }
    p1 = None
    if r <= 2 or out["two_layer_bound"] <= max_regions:
        arr, sigma, _, _ = _two_layer_cells(X, tol)
        masks = arr.masks(sigma)
        out["two_layer_regions"] = int(sigma.shape[0])
        p1 = int(np.sum(masks.any(axis=0)))
        out["two_layer"] = p1
    if hidden is not None:
        out["hidden"] = hidden
        out["three_layer"] = None
        out["three_layer_bound"] = three_layer_pattern_bound(n, r, hidden)
        out["three_layer_bound_loose"] = three_layer_pattern_bound(n, r, hidden, loose=True)
        if p1 is not None and n <= 8 and _n_pair_sets(p1, hidden) <= max_pair_sets:
            out["three_layer"] = len(enumerate_three_layer(X, hidden))
    return out
