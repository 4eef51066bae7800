"""Exact enumeration of activation patterns (theory.md, "How many patterns").

Two layers
----------
theory.md, "Notation", defines a pattern as ``D = diag(1[X u >= 0])``. The patterns
returned by :func:`enumerate_two_layer` are those of the **regions** (full-dimensional
cells) of the arrangement of the hyperplanes ``{u : x_i^T u = 0}``:

    { 1[X u >= 0] : u in R^d with x_i^T u != 0 for every non-zero row x_i }.

Why regions and not every ``u`` in R^d (lower-dimensional faces included):

- Nothing is lost for the convex programs. The closures of the regions cover R^d,
  so every neuron ``u`` lies in the closed cone ``K_D`` of some region pattern ``D``,
  and ``D X u = (X u)_+`` there (rows with ``x_i^T u = 0`` contribute 0 either way).
  The two-layer program (theory.md, "Two-layer networks") over the region patterns
  therefore has the same optimal value as over all patterns; the same holds for
  the first-layer pairs of (C3). Not for gated units, whose gate ``1[X g >= 0]``
  may lie on a face: without a constant column the gate ``g = 0`` (every unit
  active) can beat every region's gate (four points on a line, ``beta = 0.5``:
  0.4875 against 0.95), hence ``include_faces`` where a certificate must cover every
  gated network (:mod:`convexrelu.certificates`). With a constant column ``c`` every
  face's mask is a region's, that of ``g + eps c``.
- It is what the bound ``P1 <= 2 sum_{k<r} binom(n-1, k)`` of "How many patterns"
  counts (Cover's count of regions, tight in general position). Faces can add
  patterns beyond it: ``u = 0`` always gives the all-ones mask, which no region
  gives when the rows do not lie in an open half-space.
- Gaussian sampling (:func:`~convexrelu.patterns.sample_two_layer`) draws a region
  with probability one, so sampled patterns are a subset of the enumerated ones.
- Every region has a gate vector strictly inside it, so ``generators`` reproduce
  their masks exactly in floating point.

``include_faces=True`` returns the literal set ``{1[X u >= 0] : u in R^d}`` instead:
the masks of every face (sign vector in {-1, 0, +1}), zeros counted as active. The
generators of face-only patterns lie on the face, so they reproduce the mask only up
to rounding on the rows of the face (``|x_i^T u|`` at the 1e-15 level).

Conventions shared by both functions:

- A zero row ``x_i = 0`` (norm at most ``tol`` times the largest row norm) is always
  active, since ``0 >= 0``.
- Rows that are positive or negative multiples of each other (duplicates included)
  define one hyperplane; their entries of a mask follow from its side.
- The all-zero mask is left out (``TwoLayerPatterns.from_masks`` drops it: it gives
  ``D X = 0``). A region with that mask exists exactly when the rows lie in an open
  half-space (e.g. with an intercept column) and there is no zero row.

Algorithm
---------
``X = U S V^T`` is reduced to its r-dimensional row space, ``Y = X V_r`` (n, r), and
generators are mapped back as ``u = V_r y``. Rows are grouped into m <= n distinct
hyperplanes with unit normals ``h_k``.

- r = 1: the two half-lines. r = 2: an exact angular sweep (sort the 2m angles where
  ``h_k^T u`` changes sign, take the bisector of each arc).
- r >= 3: incremental construction, exact and LP-free. The hyperplanes are added one
  at a time; a cell is either left on one side of ``h_k`` or split in two, and the
  cells that ``h_k`` splits correspond one-to-one to the regions of the arrangement
  of the earlier hyperplanes restricted to ``h_k^perp`` (dimension r - 1), found by
  the same procedure recursively down to the sweep. Every cell carries a point whose
  sign vector is checked numerically. Points with normalised margin
  ``min_k |h_k^T y| / ||y||`` below 1e-6 are re-centred by the LP below.
- Fallback (rounding broke the combinatorics, e.g. nearly coincident restricted
  hyperplanes) and faces: the same incremental construction with one small LP per
  candidate split (:func:`scipy.optimize.linprog`, HiGHS). A cell carries the point of
  largest margin ``min_k sigma_k h_k^T y`` over ``||y||_inf <= 1``; the child on that
  point's side needs no LP, the other child is kept when its LP's point has a true
  margin above ``tol`` (checked on the point itself).

Three layers
------------
See :func:`enumerate_three_layer`: for each set of at most ``hidden`` distinct
(sign, region pattern) pairs the second-layer patterns are the cells of the lifted
arrangement ``[s_1 D_11 X, ..., s_m D_1m X]`` inside the open product of the cones
``K_{D_1j}``, found with the same incremental construction.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.optimize import linprog

from .._validation import check_matrix, check_positive_int
from ._sets import ThreeLayerPatterns, TwoLayerPatterns

__all__ = ["enumerate_two_layer", "enumerate_three_layer"]

logger = logging.getLogger(__name__)

_LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


# ---------------------------------------------------------------------------- helpers
def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not np.isfinite(tol) or not 0 < tol < 1:
        raise ValueError(f"tol: expected a real number in (0, 1), got {tol!r}")
    return float(tol)


@dataclass
class _Arrangement:
    """The hyperplanes of a design matrix in its reduced coordinates.

    Attributes
    ----------
    V : (d, r) orthonormal basis of the row space of X.
    Y : (n, r) reduced rows ``X V``.
    zero : (n,) bool, rows treated as zero (always active).
    H : (m, r) unit normals of the distinct hyperplanes.
    group : (n,) int, hyperplane of each row (-1 for zero rows).
    coef : (n,) float in {-1, 0, +1}, side of each row: ``x_i`` is a positive
        multiple of ``coef_i H[group_i]``.
    """

    V: np.ndarray
    Y: np.ndarray
    zero: np.ndarray
    H: np.ndarray
    group: np.ndarray
    coef: np.ndarray

    @property
    def rank(self) -> int:
        return self.V.shape[1]

    def masks(self, sigma: np.ndarray) -> np.ndarray:
        """Masks (n, P) of hyperplane sign vectors ``sigma`` (P, m) in {-1, 0, +1}."""
        sigma = np.atleast_2d(np.asarray(sigma))
        n = self.Y.shape[0]
        out = np.ones((n, sigma.shape[0]), dtype=bool)
        nz = ~self.zero
        out[nz] = (self.coef[nz, None] * sigma[:, self.group[nz]].T) >= 0
        return out


def _arrangement(X: np.ndarray, tol: float) -> _Arrangement:
    n, d = X.shape
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > tol * s[0])) if s.size and s[0] > 0 else 0
    V = Vt[:r].T
    Y = X @ V
    norms = np.linalg.norm(Y, axis=1)
    scale = norms.max() if n else 0.0
    zero = norms <= tol * scale if scale > 0 else np.ones(n, dtype=bool)
    group = np.full(n, -1, dtype=np.int64)
    coef = np.zeros(n)
    nz = np.flatnonzero(~zero)
    H, group[nz], coef[nz] = _group_rows(Y[nz] / norms[nz, None], tol)
    return _Arrangement(V, Y, zero, H, group, coef)


def _max_margin(strict: np.ndarray, equal: np.ndarray | None, dim: int, tol: float):
    """Point of largest margin of ``{q : strict q > 0, equal q = 0}`` in the unit box.

    Solves ``max t  s.t.  strict q >= t, equal q = 0, -1 <= q <= 1, t <= 1`` (rows of
    ``strict`` of unit norm). Returns ``(q, margin)`` with the margin recomputed on
    ``q`` itself, or ``None`` when it is not above ``tol`` (equalities must hold to
    ``1e-9``).
    """
    p = strict.shape[0]
    c = np.zeros(dim + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-strict, np.ones((p, 1))]) if p else None
    b_ub = np.zeros(p) if p else None
    A_eq = b_eq = None
    if equal is not None and equal.shape[0]:
        A_eq = np.hstack([equal, np.zeros((equal.shape[0], 1))])
        b_eq = np.zeros(equal.shape[0])
    bounds = [(-1.0, 1.0)] * dim + [(None, 1.0)]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs", options=_LP_OPTIONS)
    if res.status != 0 or res.x is None:  # the LP is always feasible and bounded
        raise RuntimeError(f"linprog failed on a margin LP: status {res.status}, {res.message}")
    q = res.x[:dim]
    margin = float(np.min(strict @ q)) if p else 1.0
    if A_eq is not None and np.max(np.abs(equal @ q)) > 1e-9:
        return None
    return (q, margin) if margin > tol else None


def _split_cells(fixed: np.ndarray, rows: np.ndarray, tol: float, witness=None, faces: bool = False):
    """Cells of the arrangement of ``rows`` inside the open cone ``{q : fixed q > 0}``.

    Parameters
    ----------
    fixed : (p, D) unit rows, strict constraints every cell satisfies.
    rows : (m, D) unit rows, the hyperplanes to split by, added in order.
    tol : margin above which a cell counts.
    witness : (D,) point of the open cone in the unit box, or None.
    faces : if True, also faces (sign 0: the point lies on the hyperplane).

    Returns
    -------
    list of ``(sigma (m,) int8, q (D,), margin)``: sign vectors of the non-empty cells
    with a witness point.
    """
    dim = rows.shape[1] if rows.ndim == 2 else fixed.shape[1]
    m = rows.shape[0]
    if witness is None:
        sol = _max_margin(fixed, None, dim, tol)
        if sol is None:
            return []
        witness = sol
    else:
        witness = (witness, float(np.min(fixed @ witness)) if fixed.shape[0] else 1.0)
    cells = [(np.zeros(0, dtype=np.int8), witness[0], witness[1])]
    choices = (1, -1, 0) if faces else (1, -1)
    n_lp = 0
    for k in range(m):
        a = rows[k]
        new = []
        for sigma, q, margin in cells:
            value = float(a @ q)
            for s in choices:
                child = np.append(sigma, np.int8(s))
                if s != 0 and s * value > tol:  # the parent's witness is on this side
                    new.append((child, q, min(margin, s * value)))
                    continue
                act = child != 0
                strict = np.vstack([fixed, child[act, None] * rows[: k + 1][act]])
                equal = rows[: k + 1][~act] if faces else None
                n_lp += 1
                sol = _max_margin(strict, equal, dim, tol)
                if sol is not None:
                    new.append((child, sol[0], sol[1]))
        cells = new
    logger.debug("split %d hyperplanes in dimension %d: %d cells, %d LPs", m, dim, len(cells), n_lp)
    return cells


def _sweep_2d(H: np.ndarray, tol: float):
    """Regions of lines through the origin in R^2 with unit normals ``H`` (m, 2).

    Returns (sigma (P, m) int8, U (P, 2) unit generators on the bisectors).
    """
    alpha = np.arctan2(H[:, 1], H[:, 0])
    crit = np.mod(np.concatenate([alpha + np.pi / 2, alpha - np.pi / 2]), 2 * np.pi)
    crit = np.sort(crit)
    gaps = np.diff(np.append(crit, crit[0] + 2 * np.pi))
    mids = crit + gaps / 2
    keep = gaps > 2 * tol
    U = np.column_stack([np.cos(mids[keep]), np.sin(mids[keep])])
    sigma = np.where(U @ H.T > 0, 1, -1).astype(np.int8)
    return sigma, U


class _Inconsistent(Exception):
    """Rounding broke the combinatorics of the recursive construction (use the LPs)."""


def _regions_recursive(H: np.ndarray, tol: float):
    """Regions of the central arrangement with unit normals ``H`` (m, r), distinct lines.

    Exact and LP-free. r <= 2: angular sweep. r >= 3: add the hyperplanes one at a
    time; the cells that hyperplane ``h_k`` splits are in one-to-one correspondence with
    the regions of the arrangement restricted to ``h_k^perp`` (the earlier hyperplanes
    cut down to r - 1 dimensions), found recursively. A split cell gets the points
    ``p +- eps h_k`` (``p`` the restricted region's point, ``eps`` half its margin); an
    unsplit cell keeps its point and takes its side of ``h_k``. Every sign vector is
    checked against its point.

    Returns
    -------
    sigma : (P, m) int8 in {-1, +1}
    points : (P, r) unit points with ``sign(H @ point) == sigma``
    """
    m, r = H.shape
    if m == 0:
        pts = np.zeros((1, r))
        if r:
            pts[0, 0] = 1.0
        return np.zeros((1, 0), np.int8), pts
    if r == 1:
        pts = np.array([[1.0], [-1.0]])
        return np.where(pts @ H.T > 0, 1, -1).astype(np.int8), pts
    if r == 2:
        return _sweep_2d(H, tol)
    sigma = np.array([[1], [-1]], dtype=np.int8)
    pts = np.vstack([H[0], -H[0]])
    for k in range(1, m):
        h = H[k]
        B = np.linalg.svd(h[None, :])[2][1:].T  # (r, r-1) orthonormal basis of h^perp
        G = H[:k] @ B
        gn = np.linalg.norm(G, axis=1)
        if np.any(gn <= tol):
            raise _Inconsistent("a restricted hyperplane vanished")
        reps, grp, cf = _group_rows(G / gn[:, None], tol)
        sub_sigma, sub_pts = _regions_recursive(reps, tol)
        split = (cf[None, :] * sub_sigma[:, grp]).astype(np.int8)  # (P', k)
        p = sub_pts @ B.T
        vals = p @ H[:k].T
        if np.any(np.where(vals > 0, 1, -1) != split) or np.any(vals == 0):
            raise _Inconsistent("a restricted region's point has the wrong signs")
        eps = np.min(np.abs(vals), axis=1, keepdims=True) / 2
        index = {row.tobytes(): i for i, row in enumerate(sigma)}
        rows = [index.get(row.tobytes()) for row in split]
        if any(i is None for i in rows) or len(set(rows)) != len(rows):
            raise _Inconsistent("a restricted region matches no cell")
        side = pts @ h
        keep = np.ones(len(sigma), dtype=bool)
        keep[rows] = False
        if np.any(side[keep] == 0):
            raise _Inconsistent("a point lies on a hyperplane")
        ones = np.ones((len(split), 1), np.int8)
        sigma = np.vstack([
            np.hstack([sigma[keep], np.where(side[keep, None] > 0, 1, -1).astype(np.int8)]),
            np.hstack([split, ones]),
            np.hstack([split, -ones]),
        ])
        pts = np.vstack([pts[keep], p + eps * h, p - eps * h])
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    if np.any(np.where(pts @ H.T > 0, 1, -1) != sigma) or np.any(pts @ H.T == 0):
        raise _Inconsistent("a final point has the wrong signs")
    return sigma, pts


_CENTRED = 1e-6  # normalised margin below which a region's generator is re-centred by LP


def _two_layer_cells(X: np.ndarray, tol: float, *, faces: bool = False, method: str = "auto"):
    """All cells of the arrangement of ``X``.

    ``method``: "auto" (recursive and exact, the LPs as a fallback), "recursive" or
    "lp" (incremental LP construction; always used for faces).

    Returns (arrangement, sigma (P, m) int8, generators in reduced coordinates (P, r),
    margins (P,)). Regions come first when ``faces``.
    """
    if method not in ("auto", "recursive", "lp"):
        raise ValueError(f"method: expected 'auto', 'recursive' or 'lp', got {method!r}")
    arr = _arrangement(X, tol)
    r, m = arr.rank, arr.H.shape[0]
    if m == 0:  # X = 0: one region, R^d
        return arr, np.zeros((1, 0), np.int8), np.zeros((1, r)), np.ones(1)
    if not faces and method != "lp":
        try:
            sigma, pts = _regions_recursive(arr.H, tol)
        except _Inconsistent as exc:
            if method == "recursive":
                raise
            logger.debug("recursive enumeration failed (%s); using LPs", exc)
        else:
            margins = np.min(np.abs(pts @ arr.H.T), axis=1)
            for i in np.flatnonzero(margins < _CENTRED):
                sol = _max_margin(sigma[i, :, None] * arr.H, None, r, 0.0)
                if sol is not None and sol[1] / np.linalg.norm(sol[0]) > margins[i]:
                    pts[i] = sol[0] / np.linalg.norm(sol[0])
                    margins[i] = sol[1] / np.linalg.norm(sol[0])
            return arr, sigma, pts, margins
    cells = _split_cells(np.zeros((0, r)), arr.H, tol, faces=faces)
    if faces:
        cells.sort(key=lambda cell: int(np.sum(cell[0] == 0)))
    sigma = np.asarray([c[0] for c in cells], dtype=np.int8).reshape(-1, m)
    gens, margins = [], []
    for s, q, margin in cells:
        act = s != 0
        sol = _max_margin(s[act, None] * arr.H[act], arr.H[~act] if faces else None, r, tol)  # re-centre
        if sol is not None:
            q, margin = sol
        if faces and (~act).any():  # project onto the face
            E = arr.H[~act]
            q = q - E.T @ np.linalg.lstsq(E @ E.T, E @ q, rcond=None)[0]
        gens.append(q)
        margins.append(margin)
    return arr, sigma, np.asarray(gens).reshape(-1, r), np.asarray(margins)


# ---------------------------------------------------------------------------- two layers
def enumerate_two_layer(X, *, tol: float = 1e-10, include_faces: bool = False) -> TwoLayerPatterns:
    """Every first-layer activation pattern of the design matrix ``X``.

    The patterns are the masks ``1[X u >= 0]`` of the regions of the arrangement of the
    hyperplanes ``{u : x_i^T u = 0}`` (theory.md, "Notation" and "How many patterns");
    see the module docstring for why regions and not faces, and for the conventions
    on zero rows, parallel rows and the all-zero mask (left out).

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix, intercept column already included by the caller.
    tol : float in (0, 1), default 1e-10
        Relative tolerance: singular values below ``tol * s_max`` are dropped (rank),
        rows of norm at most ``tol`` times the largest are zero rows, unit normals
        closer than ``tol`` are one hyperplane, and a cell is kept when a point of it
        has normalised margin above ``tol``.
    include_faces : bool, default False
        Also the masks of lower-dimensional faces (zeros counted as active): the
        literal set ``{1[X u >= 0] : u in R^d}``. Their generators lie on the face and
        reproduce the mask only up to rounding.

    Returns
    -------
    TwoLayerPatterns
        ``masks`` (n, P) bool and ``generators`` (d, P), unit vectors with
        ``masks[:, i] == (X @ generators[:, i] >= 0)``. For a region the generator lies
        in the row space, strictly inside the region: its normalised margin
        ``min_i |x_i^T u| / (||x_i|| ||u||)`` over the non-zero rows is at least 1e-6, or
        else it is the point of largest margin (an LP), for regions thinner than that.

    Notes
    -----
    With r = rank(X) and m <= n distinct hyperplanes there are
    ``P(m, r) = 2 sum_{k<r} binom(m-1, k) = O(m^{r-1})`` regions at most. r <= 2: a sweep,
    O(m log m). r >= 3: step k costs the enumeration of ``P(k-1, r-1)`` restricted regions
    plus O(P) work on the current cells, so O(m P(m, r)) numpy work overall for r = 3
    and O(m^r) in general: polynomial in n for fixed r, no LP (about 0.7 s for n = 100
    points in the plane with an intercept, 9901 patterns). The LP fallback needs at most
    one LP per (cell, added hyperplane).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.arange(4.0), np.ones(4)])   # 1-D input with intercept
    >>> len(enumerate_two_layer(X))                          # 2n regions, all-zero dropped
    7
    """
    X = check_matrix(X, "X")
    tol = _check_tol(tol)
    arr, sigma, Yg, _ = _two_layer_cells(X, tol, faces=bool(include_faces))
    masks = arr.masks(sigma)
    gens = Yg @ arr.V.T if arr.rank else np.zeros((sigma.shape[0], X.shape[1]))
    if arr.rank == 0:  # X = 0: every u gives the all-ones mask
        gens[:, 0] = 1.0
    norms = np.linalg.norm(gens, axis=1, keepdims=True)
    gens = np.divide(gens, norms, out=np.zeros_like(gens), where=norms > 0)
    result = TwoLayerPatterns.from_masks(masks, gens.T)
    if not include_faces:
        bad = np.any((X @ result.generators >= 0) != result.masks, axis=0)
        if bad.any():
            logger.warning("%d generators do not reproduce their masks (cells thinner than rounding)", int(bad.sum()))
    logger.info("enumerate_two_layer: n=%d, rank %d, %d patterns", X.shape[0], arr.rank, len(result))
    return result


# ---------------------------------------------------------------------------- three layers
def enumerate_three_layer(X, hidden: int, *, max_patterns: int | None = None, tol: float = 1e-10) -> ThreeLayerPatterns:
    """Every three-layer pattern ``(D2; (s_1, D_11), ..., (s_m, D_1m))`` of ``X``, m <= hidden.

    theory.md, "Three-layer parallel networks": for a sub-network with first-layer
    weights ``w_1j``, ``s_j = sign(w_2j)``, ``q_j = |w_2j| w_1j`` in ``K_{D_1j}`` and

        h = sum_j s_j D_1j X q_j,      D2 = 1[h >= 0].

    For each set of at most ``hidden`` distinct pairs (s, D) (D a first-layer pattern of
    :func:`enumerate_two_layer`, s in {-1, +1}), the candidate ``D2`` are the cells of
    the lifted arrangement with rows ``l_i = [s_1 D_11[i] x_i, ..., s_m D_1m[i] x_i]``
    (n rows in R^{m d}) inside the open cone ``{q : q_j in int K_{D_1j}}``:

    - rows ``i`` with ``x_i = 0`` or no active pair have ``h_i = 0``: ``D2_i = 1``;
    - rows whose active pairs share one sign s have ``sign(h_i) = s`` on the whole
      cone (each ``x_i^T q_j > 0`` there): ``D2_i = 1[s > 0]``;
    - the other rows (active pairs of both signs) are split one at a time by the
      incremental LP construction of the module docstring, starting from the
      concatenated first-layer generators as witness. Flipping every sign maps h to
      -h on the same cone, so the pair set with all signs flipped reuses these cells,
      complemented on the split rows (half the LPs).

    Every returned pattern is realised by a sub-network with ``q`` strictly inside
    the cones and ``h_i != 0`` on the split rows (certified by an LP point with margin
    above ``tol``). Conversely every pattern of Gaussian-sampled weights is returned
    (with probability one), and every sub-network's output is reproduced by a
    returned pattern (a point on a boundary is a limit of interior points whose
    pattern agrees on every row where ``h_i != 0``), so (C3) over this set is exact.

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix, intercept column included.
    hidden : int >= 1
        m1, first-layer neurons per sub-network; patterns have 1..hidden pairs.
    max_patterns : int or None
        Raise ``ValueError`` as soon as more patterns than this are found.
    tol : float in (0, 1), default 1e-10
        As in :func:`enumerate_two_layer`.

    Returns
    -------
    ThreeLayerPatterns
        Canonical (``ThreeLayerPatterns.from_lists``): sorted distinct pairs, all-zero
        ``D2`` dropped, no duplicates.

    Notes
    -----
    With P1 first-layer patterns there are ``sum_{k<=hidden} binom(2 P1, k) = O(P1^hidden)``
    pair sets; each needs at most one LP per (cell, split row), at most n split rows
    and ``2 sum_{i < k r} binom(n-1, i)`` cells (theory.md, "How many patterns").
    Polynomial in n for fixed r and hidden, but only practical for tiny problems
    (n <= 8 with a 1-D input and an intercept takes a few seconds for hidden = 2).
    """
    X = check_matrix(X, "X")
    hidden = check_positive_int(hidden, "hidden")
    tol = _check_tol(tol)
    if max_patterns is not None:
        max_patterns = check_positive_int(max_patterns, "max_patterns")
    arr, sigma, Yg, _ = _two_layer_cells(X, tol)
    masks = arr.masks(sigma)
    keep = masks.any(axis=0)
    sigma, Yg, masks = sigma[keep], Yg[keep], masks[:, keep]
    r, m = arr.rank, arr.H.shape[0]
    n = X.shape[0]
    nz = ~arr.zero
    Yn = np.zeros_like(arr.Y)
    Yn[nz] = arr.Y[nz] / np.linalg.norm(arr.Y[nz], axis=1, keepdims=True)
    # witness of each first-layer region, scaled into the unit box
    if Yg.shape[1]:  # (rank 0, X = 0: one region, no coordinates to scale)
        Yg = Yg / np.maximum(np.abs(Yg).max(axis=1, keepdims=True), np.finfo(float).tiny)
    pairs = [(s, p) for p in range(masks.shape[1]) for s in (-1, 1)]
    items: list = []
    n_found = 0
    solved: dict = {}  # free-row cells of pair sets whose sign-flipped twin is still to come
    for k in range(1, min(hidden, len(pairs)) + 1):
        for combo in combinations(pairs, k):
            s = np.array([c[0] for c in combo], dtype=np.int8)
            idx = np.array([c[1] for c in combo])
            D1 = masks[:, idx]  # (n, k)
            D2 = np.ones(n, dtype=bool)
            act = D1 & nz[:, None]
            n_pos = (act & (s > 0)).sum(axis=1)
            n_neg = (act & (s < 0)).sum(axis=1)
            D2[(n_pos == 0) & (n_neg > 0)] = False
            free = np.flatnonzero((n_pos > 0) & (n_neg > 0))
            flipped = frozenset((-a, b) for a, b in combo)
            if free.size == 0:
                cells_d2 = [D2]
            elif flipped in solved:  # all signs flipped: h -> -h, the free rows complement
                cells_d2 = []
                for F in solved.pop(flipped):
                    D = D2.copy()
                    D[free] = ~F
                    cells_d2.append(D)
            else:
                dim = k * r
                # open cone: sigma_{j,g} h_g^T y_j > 0 for every block j and hyperplane g
                fixed = np.zeros((k * m, dim))
                for j in range(k):
                    fixed[j * m : (j + 1) * m, j * r : (j + 1) * r] = sigma[idx[j], :, None] * arr.H
                lifted = (act[free, :, None] * s[None, :, None] * Yn[free, None, :]).reshape(free.size, dim)
                lifted /= np.linalg.norm(lifted, axis=1, keepdims=True)
                reps, lgroup, lcoef = _group_rows(lifted, tol)
                w0 = Yg[idx].reshape(-1)
                cells = _split_cells(fixed, reps, tol, witness=w0)
                cells_d2 = []
                for sig, _, _ in cells:
                    D = D2.copy()
                    D[free] = lcoef * sig[lgroup] > 0
                    cells_d2.append(D)
                solved[frozenset(combo)] = [D[free] for D in cells_d2]
            for D in cells_d2:
                if D.any():
                    n_found += 1
                    if max_patterns is not None and n_found > max_patterns:
                        raise ValueError(
                            f"max_patterns: more than {max_patterns} three-layer patterns "
                            f"(n={n}, rank {r}, hidden={hidden}, {masks.shape[1]} first-layer patterns)"
                        )
                    items.append((D, s, D1))
    if items:
        result = ThreeLayerPatterns.from_lists(items)
    else:
        result = ThreeLayerPatterns(np.zeros((n, 0), bool), np.zeros((n, 0), bool), np.zeros(0, np.int8), np.zeros(0, np.int64))
    logger.info("enumerate_three_layer: n=%d, rank %d, hidden %d: %d patterns", n, r, hidden, len(result))
    return result


def _group_rows(rows: np.ndarray, tol: float):
    """Distinct lines among unit ``rows`` (p, D).

    Returns ``(reps (q, D), group (p,), coef (p,))`` with ``rows[i]`` within ``tol`` of
    ``coef[i] * reps[group[i]]``, coef in {-1, +1}; the first row of a line is its rep.
    """
    p, D = rows.shape
    reps = np.zeros((p, D))
    q = 0
    group = np.zeros(p, dtype=np.int64)
    coef = np.ones(p)
    for i in range(p):
        u = rows[i]
        if q:
            plus = np.linalg.norm(reps[:q] - u, axis=1) <= tol
            if plus.any():
                group[i] = int(np.argmax(plus))
                continue
            minus = np.linalg.norm(reps[:q] + u, axis=1) <= tol
            if minus.any():
                group[i], coef[i] = int(np.argmax(minus)), -1.0
                continue
        reps[q] = u
        group[i] = q
        q += 1
    return reps[:q], group, coef


def _n_pair_sets(p1: int, hidden: int) -> int:
    """Number of sets of 1..hidden distinct pairs out of 2 * p1."""
    return sum(math.comb(2 * p1, k) for k in range(1, hidden + 1))
