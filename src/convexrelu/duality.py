"""Dual points and lower bounds (theory.md, "Duality and certificates").

The programs are ``min_Q l(A Q) + beta sum_b ||q_b||  s.t.  K Q >= 0``. Their Lagrange
dual is

    max_{v, Lambda >= 0}  -l*(v)   s.t.   ||(A^T v - K^T Lambda)_b|| <= beta  for every b.

From any primal point the gradient ``v = grad l(A Q)`` (the residual for the squared
loss) and any multipliers ``Lambda >= 0`` give a feasible dual point after scaling by
``a = min(1, beta / max_b ||(A^T v - K^T Lambda)_b||)``; ``-l*(a v)`` is then a lower
bound on the optimum over the program's patterns. Without multipliers (``Lambda = 0``)
the bound is the one of theory.md for the unconstrained relaxation: valid, but looser.

The multipliers a solver returns are those of its own iterate, not the best ones for
``v``. For a fixed ``v`` the best multipliers of one group ``g`` (its blocks ``b`` and
cone ``C_g = {u : K_g u >= 0}``) solve ``min_{lam >= 0} ||-G_g + K_g^T lam||`` with
``G = A^T v - K^T Lambda``: a non-negative least-squares problem, whose solution is the
Euclidean projection ``P_g`` of ``-G_g`` onto ``C_g`` (Moreau). Any ``lam >= 0`` keeps the
dual point feasible, and ``max_b ||(P_g)_b||`` replaces the group's ``max_b ||G_b||``
where it is smaller; for a two-layer program (one block per group) it is exactly the
largest value of an atom of the group, ``sup {-v^T A_b q : q in C_b, ||q|| <= 1}``, so the
bound at an optimal ``v`` is the optimum. ``project_entries`` turns this on
(:func:`_tightened_dual_norm`): the groups are taken from the largest ``max_b ||G_b||``
down, while it can still lower the maximum over the groups.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

__all__ = ["dual_lower_bound"]


def dual_lower_bound(program, Q, multipliers=(), Z=None, *, project_entries: float = 0.0,
                     deadline: float | None = None) -> tuple[float, float]:
    """Lower bound on the optimal value of ``program`` from the dual point at ``Q``.

    Parameters
    ----------
    program : ConvexProgram
    Q : array (d, B)
    multipliers : tuple of arrays (shapes ``operator.constraint_shapes``) or empty
        Multipliers of ``K Q >= 0``; negative entries are clipped to 0.
    Z : tensor (n, C) or None
        The model output ``A Q``, where the caller has it.
    project_entries : float, default 0
        Budget of the tightening by the best multipliers of each group (module text):
        the entries of the groups' constraint matrices it may build. 0: no tightening.
    deadline : float or None
        A ``time.perf_counter()`` value after which the tightening takes no new group.

    Returns
    -------
    lower_bound : float
    scale : float
        The factor ``a`` in (0, 1] applied to the dual point.
    """
    if not project_entries >= 0:  # (also NaN)
        raise ValueError(f"project_entries: expected a number >= 0, got {project_entries}")
    op = program.operator
    Q = program.as_tensor(Q)
    # the dual point and its value in float64 whatever the program's dtype: in float32 the
    # rows of a softmax dual point ``v + Y`` sum to 1 only to ~1e-7, outside the
    # conjugate's domain test, and the bound would collapse towards 0
    f64 = dict(dtype=torch.float64, device=op.device)
    Y = torch.as_tensor(program.Y_np, **f64)
    v = program.loss.grad((op.matvec(Q) if Z is None else Z).to(torch.float64), Y)
    lams = tuple(_nonnegative(m, op) for m in multipliers)
    if lams and len(lams) != len(op.constraint_shapes):
        lams = ()
    # A^T v - K^T Lambda = -(A^T (-v) + K^T Lambda): the multipliers enter as they are
    G = op.adjoint(torch.neg(v.to(op.dtype)), lams).neg_()
    worst = float(program.regularizer.dual_norm(G))
    beta = program.beta
    if worst > beta and project_entries > 0 and op.has_constraints:
        worst = _tightened_dual_norm(op, G, program.regularizer.block_norms(G), beta, project_entries, deadline)
    if worst <= beta:
        a = 1.0
    elif beta == 0:
        a = 0.0
    else:
        a = beta / worst
    a, value = _best_scale(lambda t: -float(program.loss.conjugate(t * v, Y)), a)
    return value, a


def _tightened_dual_norm(op, G: torch.Tensor, norms: torch.Tensor, beta: float, max_entries: float,
                         deadline: float | None) -> float:
    """``max_g min(h_g, max_b ||(P_g)_b||)``, ``h_g = max_{b in g} ||G_b||`` and ``P_g`` the
    projection of ``-G_g`` onto the group's cone (module text), or an upper bound on it.

    The groups are taken by decreasing ``h_g`` and the loop ends as soon as the next
    ``h_g`` is at most the maximum found so far or ``beta`` (the value then decides
    nothing), or when the budget ``max_entries`` (entries of the constraint matrices),
    the ``deadline`` or a projection that does not finish stops it: the next ``h_g``
    then counts as it is."""
    from .solvers._projection import constraint_matrix_entries, project_onto_cone  # (the solvers import this module)

    gidx = op.padded_groups().cpu().numpy()  # (G, m), padded with the index B
    h = np.append(norms.detach().to(torch.float64).cpu().numpy(), 0.0)[gidx].max(axis=1)
    Gn = None
    found = spent = 0.0
    for g in np.argsort(-h, kind="stable"):
        if h[g] <= max(found, beta) or (deadline is not None and time.perf_counter() > deadline):
            return max(found, h[g])
        blocks = gidx[g][gidx[g] < op.n_blocks]
        spent += constraint_matrix_entries(op, blocks.size)
        if spent > max_entries:  # (counted before the matrix is built)
            return max(found, h[g])
        K = op.group_constraint_matrix(blocks)
        K = K[np.any(K != 0, axis=1)]
        if Gn is None:
            Gn = G.detach().to(torch.float64).cpu().numpy()
        try:
            u = project_onto_cone(K, -Gn[:, blocks].T.reshape(-1), deadline=deadline)
        except RuntimeError:  # (non-negative least squares at its iteration limit)
            u = None
        if u is None:
            return max(found, h[g])
        found = max(found, min(h[g], float(np.linalg.norm(u.reshape(blocks.size, -1), axis=1).max())))
    return found


def _nonnegative(m, op) -> torch.Tensor:
    """``max(m, 0)`` as a tensor of the operator's dtype and device: ``m`` itself where it
    already is one with no negative entry (at scale the multipliers are large arrays, and
    a solver's are non-negative by construction), else a clipped copy."""
    kw = dict(dtype=op.dtype, device=op.device)
    # (an array, e.g. a Solution's read-only one, is copied: torch does not take read-only memory)
    t = torch.as_tensor(m, **kw) if isinstance(m, torch.Tensor) else torch.tensor(np.asarray(m), **kw)
    if t.numel() and float(torch.min(t)) < 0:
        t = torch.clamp(t, min=0)
    return t


def _best_scale(dual_value, a_max: float, n_iter: int = 60) -> tuple[float, float]:
    """Maximise the concave ``dual_value(t)`` over ``t`` in [0, a_max] (golden section).

    Every ``t`` in that interval gives a feasible dual point, so the best one gives the
    tightest bound; ``t = a_max`` is kept if nothing better is found.
    """
    best_t, best = a_max, dual_value(a_max)
    lo, hi = 0.0, a_max
    ratio = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = dual_value(x1), dual_value(x2)
    for _ in range(n_iter):
        if f1 >= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = dual_value(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = dual_value(x2)
    for t, f in ((x1, f1), (x2, f2), (0.0, dual_value(0.0))):
        if f > best:
            best_t, best = t, f
    if not math.isfinite(best):
        best = -math.inf
    return best_t, best
