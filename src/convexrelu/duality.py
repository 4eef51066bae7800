"""Dual points and lower bounds (theory.md, "Duality and certificates").

The programs are ``min_Q l(A Q) + beta sum_b ||q_b||  s.t.  K Q >= 0``. Their Lagrange
dual is

    max_{v, Lambda >= 0}  -l*(v)   s.t.   ||(A^T v - K^T Lambda)_b|| <= beta  for every b.

From any primal point the gradient ``v = grad l(A Q)`` (the residual for the squared
loss) and any multipliers ``Lambda >= 0`` give a feasible dual point after scaling by
``a = min(1, beta / max_b ||(A^T v - K^T Lambda)_b||)``; ``-l*(a v)`` is then a lower
bound on the optimum over the program's patterns. Without multipliers (``Lambda = 0``)
the bound is the one of theory.md for the unconstrained relaxation: valid, but looser.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["dual_lower_bound"]


def dual_lower_bound(program, Q, multipliers=(), Z=None) -> tuple[float, float]:
    """Lower bound on the optimal value of ``program`` from the dual point at ``Q``.

    Parameters
    ----------
    program : ConvexProgram
    Q : array (d, B)
    multipliers : tuple of arrays (shapes ``operator.constraint_shapes``) or empty
        Multipliers of ``K Q >= 0``; negative entries are clipped to 0.
    Z : tensor (n, C) or None
        The model output ``A Q``, where the caller has it.

    Returns
    -------
    lower_bound : float
    scale : float
        The factor ``a`` in (0, 1] applied to the dual point.
    """
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
    if worst <= beta:
        a = 1.0
    elif beta == 0:
        a = 0.0
    else:
        a = beta / worst
    a, value = _best_scale(lambda t: -float(program.loss.conjugate(t * v, Y)), a)
    return value, a


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
