"""Exact Euclidean projection of a program's groups onto their cones.

The cone constraints ``K Q >= 0`` of the programs (theory.md, "Two-layer networks" and
"Three-layer parallel networks") are block diagonal over the groups, so a point is
made feasible group by group. For one group with variables ``u0`` (its non-zero blocks,
stacked) and constraint matrix ``K`` (:meth:`convexrelu.operators.BlockOperator.group_constraint_matrix`),
the projection onto the polyhedral cone ``C = {u : K u >= 0}`` is, by Moreau's
decomposition with the polar cone ``C° = {-K^T lam : lam >= 0}``,

    P_C(u0) = u0 + K^T lam*,    lam* = argmin_{lam >= 0} ||K^T lam + u0||,

a non-negative least-squares problem (active-set, :func:`scipy.optimize.nnls`) whose
solution satisfies ``K P_C(u0) >= 0`` up to rounding. It is the smallest change of the
group that makes it feasible. Blocks at zero stay at zero (the cone restricted to them
still contains the origin), so the group sparsity is kept.

This is the first step of :func:`.auglag.restore_feasibility`. Its least-squares rounds
come after: they are cheaper at scale, but fail on points with many violated rows per
block. Nothing here knows the architecture: the operator gives the matrices.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from scipy.optimize import nnls

__all__ = ["constraint_matrix_entries", "project_onto_cone", "project_groups"]

logger = logging.getLogger(__name__)


def project_onto_cone(K: np.ndarray, u0: np.ndarray, *, max_rounds: int = 50,
                      deadline: float | None = None) -> np.ndarray | None:
    """Euclidean projection of ``u0`` onto ``{u : K u >= 0}``.

    The non-negative least-squares problem runs on a working set of rows: first the
    rows ``u0`` violates, then, round by round, the rows the last projection violates.
    The projection onto the cone of the working set (a larger set) that satisfies every
    row is the projection onto the cone itself, so the result is exact; the rows far
    inside the cone, most of them, never enter the solve.

    Parameters
    ----------
    K : array (rows, p)
    u0 : array (p,)
    max_rounds : int
        Rounds of the working set before the solve takes every row.
    deadline : float or None
        A ``time.perf_counter()`` value after which no new round starts.

    Returns
    -------
    u : array (p,), ``argmin_{K u >= 0} ||u - u0||`` (float64), or None when the
        deadline stopped the rounds

    Raises
    ------
    RuntimeError
        When the non-negative least-squares solve stops at its iteration limit.
    """
    K = np.asarray(K, dtype=np.float64)
    u0 = np.asarray(u0, dtype=np.float64)
    values = K @ u0
    work = values < 0
    if not work.any():
        return u0.copy()
    for _ in range(max_rounds):
        if _expired(deadline):
            return None
        u = _project(K[work], u0)
        values = K @ u
        # rows outside the working set below zero beyond rounding
        new = ~work & (values < -1e-14 * max(float(np.max(np.abs(values))), 1e-300))
        if not new.any():
            return u
        work |= new
    return None if _expired(deadline) else _project(K, u0)


def _expired(deadline: float | None) -> bool:
    """Whether the ``time.perf_counter()`` value ``deadline`` has passed."""
    return deadline is not None and time.perf_counter() > deadline


def _project(K: np.ndarray, u0: np.ndarray) -> np.ndarray:
    """``u0 + K^T lam``, ``lam = argmin_{lam >= 0} ||K^T lam + u0||`` (Moreau)."""
    lam, _ = nnls(K.T, -u0, maxiter=max(3 * K.shape[0], 100))
    return u0 + K.T @ lam


#: Seconds per entry of a group's constraint matrix that a projection is assumed to take
#: before any has been timed (with a deadline, a group is projected only where the time
#: left covers its entries at the larger of this and the rate measured so far). At
#: n=100,000 (three-layer, groups of 3 blocks, d=51: 6.1e7 entries per group) the repair
#: of a loose point spent 19.8 s on an AMD EPYC with 2 cores and projected no group (the
#: first one's projection outlasted the deadline): at most 3.2e-7 s per entry.
SECONDS_PER_ENTRY = 2e-7


def constraint_matrix_entries(op, k: int) -> float:
    """Entries of :meth:`~convexrelu.operators.BlockOperator.group_constraint_matrix` of
    ``k`` blocks of one group: ``k d`` columns, ``n`` rows per block (first cone) and ``n``
    for the group (second cone), each where the program has that cone."""
    return float(k * op.n_features) * op.n_samples * (k * int(op.cone_first) + int(op.cone_second))


def project_groups(op, Q: torch.Tensor, groups, *, max_entries: float = 2e8,
                   deadline: float | None = None) -> tuple[torch.Tensor, dict]:
    """``Q`` with the listed groups projected onto their cones (:func:`project_onto_cone`).

    Parameters
    ----------
    op : BlockOperator
    Q : tensor (d, B)
    groups : int array
        The groups to project, most important first.
    max_entries : float
        Budget: groups are projected in the given order while the entries of their
        constraint matrices (the cost of building them and of the products with them)
        add up to at most this; a group over the rest of the budget is left as it is.
    deadline : float or None
        A ``time.perf_counter()`` value after which no group is projected; nor is one
        whose entries would take longer than the time left (:data:`SECONDS_PER_ENTRY`).

    Returns
    -------
    Q : tensor (d, B), a new tensor. A block that the projection sends to zero (up to
        rounding: norm below ``1e3 eps`` times the group's) is exactly zero.
    info : dict with ``projected_groups``, ``skipped_groups`` and, when the deadline
        stopped the projections, ``timed_out``
    """
    Q = Q.clone()
    d = op.n_features
    blocks_of = [[] for _ in range(op.n_groups)]
    norms = torch.linalg.vector_norm(Q, dim=0).cpu().numpy()
    for b in np.flatnonzero(norms > 0):
        blocks_of[op.group_np[b]].append(b)
    info = {"projected_groups": 0, "skipped_groups": 0}
    spent = timed_entries = timed = 0.0
    for g in np.asarray(groups, dtype=np.int64).reshape(-1):
        blocks = np.asarray(blocks_of[g], dtype=np.int64)
        if blocks.size == 0:
            continue
        cost = constraint_matrix_entries(op, blocks.size)
        rate = max(SECONDS_PER_ENTRY, timed / timed_entries if timed_entries else 0.0)
        late = _expired(None if deadline is None else deadline - cost * rate)
        if late:
            info["timed_out"] = True  # (this group would outlast the deadline; a smaller one may not)
        if late or spent + cost > max_entries:
            info["skipped_groups"] += 1
            continue
        spent += cost
        t0 = time.perf_counter()
        K = op.group_constraint_matrix(blocks)
        K = K[np.any(K != 0, axis=1)]
        u0 = Q[:, blocks].T.reshape(-1).cpu().numpy().astype(np.float64)
        try:
            u = project_onto_cone(K, u0, deadline=deadline)
        except RuntimeError as exc:  # nnls at its iteration limit: leave the group
            logger.info("projection of group %d skipped: %s", g, exc)
            u = None
        timed, timed_entries = timed + time.perf_counter() - t0, timed_entries + cost
        if u is None:
            info["skipped_groups"] += 1
            if _expired(deadline):
                info["timed_out"] = True
            continue
        U = u.reshape(blocks.size, d)
        U[np.linalg.norm(U, axis=1) <= 1e3 * np.finfo(np.float64).eps * np.linalg.norm(u0)] = 0.0
        Q[:, torch.as_tensor(blocks, device=Q.device)] = torch.as_tensor(U.T, dtype=Q.dtype, device=Q.device)
        info["projected_groups"] += 1
    return Q, info
