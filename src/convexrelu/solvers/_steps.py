"""The formulas of the first-order solvers, one small pure function each.

Each function is one formula with a closed-form unit test (``tests/test_steps.py``);
the solvers (:mod:`.fista`, :mod:`.auglag`) only combine them. Scalars are Python
floats; arrays are torch tensors (any dtype/device) unless said otherwise.

Notation (theory.md, "Duality and certificates"; the programs are
``min_Q f(Q) + beta R(Q)  s.t.  c = K(Q) >= 0``):

- FISTA (Beck and Teboulle, 2009) with momentum ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``
  and extrapolation ``Y = Q_{k+1} + ((t_k - 1) / t_{k+1}) (Q_{k+1} - Q_k)``;
- adaptive restart (O'Donoghue and Candes, 2015);
- ADMM (Boyd et al. 2011, sec. 3.4.1 and 3.4.3): over-relaxation and the residual-
  balancing penalty rule;
- augmented Lagrangian of ``c >= 0`` with multipliers ``lam >= 0`` and penalty ``rho``
  (Rockafellar's form of the method of multipliers for inequalities):
  ``psi(c, lam, rho) = (1 / (2 rho)) (||(lam - rho c)_+||^2 - ||lam||^2)``;
- interior point (Nocedal and Wright 2006, sec. 14.2): the largest step keeping
  positive variables positive, Mehrotra's centring parameter ``(mu_aff / mu)^3``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "momentum_next",
    "extrapolation_coefficient",
    "sufficient_decrease",
    "local_curvature",
    "gradient_restart",
    "function_restart",
    "al_penalty",
    "al_penalty_grad",
    "multiplier_update",
    "penalty_update",
    "prox_gradient_residual",
    "over_relax",
    "residual_balance",
    "clip_ratio",
    "max_step",
    "mehrotra_centering",
    "balanced_centering",
    "soc_product",
    "soc_divide",
    "soc_max_step",
    "soc_norm",
    "nt_scaling",
    "nt_apply",
    "nt_inverse_square",
]


def momentum_next(t: float) -> float:
    """FISTA momentum ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2`` (``t_0 = 1``)."""
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))


def extrapolation_coefficient(t: float, t_next: float) -> float:
    """Weight of ``Q_{k+1} - Q_k`` in the extrapolated point: ``(t_k - 1) / t_{k+1}``."""
    return (t - 1.0) / t_next


def sufficient_decrease(f_new: float, f_y: float, inner: float, sq_dist: float, step: float, slack: float = 0.0) -> bool:
    """Backtracking test of FISTA: is the quadratic model at ``Y`` an upper bound at ``Q+``?

    ``f(Q+) <= f(Y) + <grad f(Y), Q+ - Y> + ||Q+ - Y||^2 / (2 step) + slack``

    Parameters
    ----------
    f_new, f_y : smooth part at ``Q+`` and at ``Y``
    inner : ``<grad f(Y), Q+ - Y>``
    sq_dist : ``||Q+ - Y||_F^2``
    step : the step ``1 / L`` being tried
    slack : allowance for rounding in the values (>= 0)
    """
    return f_new <= f_y + inner + sq_dist / (2.0 * step) + slack


def local_curvature(f_new: float, f_y: float, inner: float, sq_dist: float) -> float:
    """Curvature of the smooth part along the last step:
    ``2 (f(Q+) - f(Y) - <grad f(Y), Q+ - Y>) / ||Q+ - Y||^2`` (0 for a zero step).

    The sufficient-decrease test holds iff it is at most ``1 / step`` (up to the slack);
    a value far below ``1 / step`` says the step could be longer.
    """
    return 2.0 * (f_new - f_y - inner) / sq_dist if sq_dist > 0 else 0.0


def curvature_is_resolved(sq_dist: float, step: float, slack: float) -> bool:
    """Whether :func:`local_curvature` along a step can be told from rounding: the
    quadratic term ``||Q+ - Y||^2 / (2 step)`` is above four times ``slack`` (the
    rounding allowance of the values). Near the optimum in float32 it is not, and a step
    grown on such a measurement makes FISTA oscillate in its stiffest directions.
    """
    return sq_dist / (2.0 * step) > 4.0 * slack


def gradient_restart(inner: float) -> bool:
    """Gradient restart of O'Donoghue and Candes: restart when
    ``inner = <Y - Q_{k+1}, Q_{k+1} - Q_k>`` is positive.

    ``(Y - Q_{k+1}) / step`` is the prox-gradient mapping at ``Y``; a positive inner
    product with the last move means the momentum points uphill.
    """
    return inner > 0.0


def function_restart(F_new: float, F_old: float) -> bool:
    """Function-value restart of O'Donoghue and Candes: the objective went up."""
    return F_new > F_old


def al_penalty(c: torch.Tensor, lam: torch.Tensor, rho: float) -> torch.Tensor:
    """``psi(c, lam, rho) = (1 / (2 rho)) (||(lam - rho c)_+||^2 - ||lam||^2)`` (0-d tensor).

    The augmented-Lagrangian term of the constraint ``c >= 0``: it equals
    ``-<lam, c> + (rho / 2) ||c||^2`` where ``lam - rho c > 0`` and ``-||lam||^2 / (2 rho)``
    elsewhere; convex and continuously differentiable in ``c``.
    """
    return (torch.sum(torch.clamp(lam - rho * c, min=0) ** 2) - torch.sum(lam**2)) / (2.0 * rho)


def al_penalty_grad(c: torch.Tensor, lam: torch.Tensor, rho: float) -> torch.Tensor:
    """Gradient of :func:`al_penalty` in ``c``: ``-(lam - rho c)_+``."""
    return -multiplier_update(c, lam, rho)


def multiplier_update(c: torch.Tensor, lam: torch.Tensor, rho: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """Method-of-multipliers update ``lam+ = (lam - rho c)_+`` (into ``out`` if given,
    which may be ``c`` itself)."""
    return torch.sub(lam, c, alpha=rho, out=out).clamp_(min=0)


def penalty_update(
    rho: float, violation: float, previous_violation: float, *, decrease: float = 0.25, factor: float = 10.0,
    rho_max: float = math.inf,
) -> float:
    """Penalty rule: ``rho * factor`` (at most ``rho_max``) unless the violation fell enough.

    Keep ``rho`` when ``violation <= decrease * previous_violation`` (the multipliers are
    doing the work), otherwise multiply it by ``factor`` (Bertsekas 1982, sec. 2.2).
    """
    if violation <= decrease * previous_violation:
        return rho
    return min(rho * factor, rho_max)


def prox_gradient_residual(y: torch.Tensor, q_new: torch.Tensor, step: float) -> float:
    """Norm of the prox-gradient mapping ``||Y - prox_{step beta R}(Y - step grad f(Y))|| / step``.

    ``q_new`` is the prox point; the mapping is zero exactly at the minimisers.
    """
    return float(torch.linalg.vector_norm(y - q_new)) / step


def over_relax(new: torch.Tensor, old: torch.Tensor, alpha: float) -> torch.Tensor:
    """ADMM over-relaxation ``alpha new + (1 - alpha) old`` (``alpha`` in (0, 2))."""
    return torch.lerp(old, new, alpha)


def residual_balance(rho: float, primal: float, dual: float, *, mu: float = 10.0, tau: float = 2.0) -> float:
    """ADMM penalty rule: ``rho * tau`` if the primal residual exceeds ``mu`` times the
    dual one, ``rho / tau`` in the opposite case, ``rho`` otherwise (Boyd et al. 2011,
    eq. 3.13). Scaled duals must be divided by the returned factor ``rho+ / rho``."""
    if primal > mu * dual:
        return rho * tau
    if dual > mu * primal:
        return rho / tau
    return rho


def clip_ratio(value: float, reference: float, ratio: float) -> float:
    """``value`` clipped to ``[reference / ratio, reference * ratio]`` (``ratio >= 1``,
    ``reference > 0``): a penalty kept within a factor of its first value."""
    return min(max(value, reference / ratio), reference * ratio)


def max_step(values, directions) -> float:
    """Largest ``a`` in [0, 1] with ``v + a dv >= 0`` for every pair of tensors
    ``(v, dv)`` (``v >= 0``): ``min(1, min_{dv < 0} -v / dv)``."""
    a = 1.0
    for v, dv in zip(values, directions):
        if v.numel():
            # the most negative relative change dv / v (0 / 0 from an entry that is zero and
            # does not move counts as no change; v = 0 with dv < 0 allows no step)
            worst = float(torch.min(torch.nan_to_num(dv / v, nan=0.0, posinf=math.inf, neginf=-math.inf)))
            if worst < 0:
                a = min(a, -1.0 / worst)
    return max(a, 0.0)


def mehrotra_centering(mu_affine: float, mu: float) -> float:
    """Mehrotra's centring parameter ``sigma = (mu_aff / mu)^3``, clipped to [0, 1]:
    the target of the corrector step is ``sigma mu``."""
    if not mu > 0:
        return 0.0
    return min(1.0, max(0.0, mu_affine / mu)) ** 3


def balanced_centering(sigma: float, dual_residual: float, gap_residual: float, ratio: float = 0.1) -> float:
    """Centring parameter raised to ``min(1, ratio * dual_residual / gap_residual)``: the
    complementarity target ``sigma mu`` stops falling while the relative dual residual is
    large against the relative complementarity gap (an interior-point iterate that reaches
    the boundary of the cones before stationarity holds can only take short steps)."""
    if not gap_residual > 0:
        return 1.0 if dual_residual > 0 else sigma
    return max(sigma, min(1.0, ratio * dual_residual / gap_residual))


# ------------------------------------------------------------------ second-order cones
# A vector u = (u0, u1) of the cone {u0 >= ||u1||} is stored as its scalar parts (B,)
# and its vector parts (d, B), one cone per column: the cones of the group norms
# ``t_b >= ||q_b||``.


def soc_product(u0: torch.Tensor, u1: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor):
    """Jordan product ``u o v = (u^T v, u0 v1 + v0 u1)`` of every cone."""
    return u0 * v0 + torch.sum(u1 * v1, dim=0), u0 * v1 + v0 * u1


def soc_divide(l0: torch.Tensor, l1: torch.Tensor, r0: torch.Tensor, r1: torch.Tensor):
    """``w`` with ``l o w = r`` (``l`` inside the cone): ``w0 = (l0 r0 - l1^T r1) /
    (l0^2 - ||l1||^2)``, ``w1 = (r1 - w0 l1) / l0``."""
    w0 = (l0 * r0 - torch.sum(l1 * r1, dim=0)) / (l0 * l0 - torch.sum(l1 * l1, dim=0))
    return w0, (r1 - w0 * l1) / l0


def soc_max_step(x0: torch.Tensor, x1: torch.Tensor, d0: torch.Tensor, d1: torch.Tensor) -> float:
    """Largest ``a`` in [0, 1] with ``x + a d`` in every cone (``x`` inside): the first
    positive root of ``(x0 + a d0)^2 - ||x1 + a d1||^2 = c + 2 b a + a' a^2``."""
    qa = d0 * d0 - torch.sum(d1 * d1, dim=0)
    qb = x0 * d0 - torch.sum(x1 * d1, dim=0)
    qc = x0 * x0 - torch.sum(x1 * x1, dim=0)
    disc = torch.clamp(qb * qb - qa * qc, min=0.0)
    # stable roots q / qa and qc / q with q = -(qb + sign(qb) sqrt(disc))
    q = -(qb + torch.where(qb >= 0, 1.0, -1.0) * torch.sqrt(disc))
    inf = torch.full_like(x0, math.inf)
    r1 = torch.where(qa != 0, q / torch.where(qa != 0, qa, 1.0), inf)
    r2 = torch.where(q != 0, qc / torch.where(q != 0, q, 1.0), inf)
    r1 = torch.where(r1 > 0, r1, inf)
    r2 = torch.where(r2 > 0, r2, inf)
    root = torch.minimum(r1, r2)
    # no real root and an opening parabola: the whole ray stays inside
    root = torch.where((qb * qb - qa * qc < 0) & (qa >= 0), inf, root)
    return max(0.0, min(1.0, float(root.min()))) if root.numel() else 1.0


def soc_norm(u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
    """``sqrt(u0^2 - ||u1||^2)`` of every cone, computed as
    ``sqrt((u0 - ||u1||) (u0 + ||u1||))`` (less cancellation) and kept positive."""
    r = torch.linalg.vector_norm(u1, dim=0)
    return torch.sqrt(torch.clamp((u0 - r) * (u0 + r), min=torch.finfo(u0.dtype).tiny))


def nt_scaling(s0: torch.Tensor, s1: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor):
    """Nesterov-Todd scaling of every pair ``(s, z)`` inside the cone: ``(eta, w0, w1)``
    with ``W = eta [[w0, w1^T], [w1, I + w1 w1^T / (1 + w0)]]`` such that
    ``W z = W^{-1} s`` (Vandenberghe, *The CVXOPT linear and quadratic cone program
    solvers*, 2010, sec. 4): ``s_ = s / sqrt(s^T J s)``, ``z_ = z / sqrt(z^T J z)``,
    ``gamma = sqrt((1 + s_^T z_) / 2)``, ``w = (s_ + J z_) / (2 gamma)``,
    ``eta = (s^T J s / z^T J z)^(1/4)``."""
    sn, zn = soc_norm(s0, s1), soc_norm(z0, z1)
    a0, a1, b0, b1 = s0 / sn, s1 / sn, z0 / zn, z1 / zn
    gamma = torch.sqrt((1.0 + a0 * b0 + torch.sum(a1 * b1, dim=0)) / 2.0)
    return torch.sqrt(sn / zn), (a0 + b0) / (2.0 * gamma), (a1 - b1) / (2.0 * gamma)


def nt_apply(eta, w0, w1, u0, u1, inverse: bool = False):
    """``W u`` (or ``W^{-1} u``, where ``w1`` changes sign and ``eta`` is inverted) for the
    scaling of :func:`nt_scaling`."""
    if inverse:
        eta, w1 = 1.0 / eta, -w1
    wu = torch.sum(w1 * u1, dim=0)
    return eta * (w0 * u0 + wu), eta * (u1 + (u0 + wu / (1.0 + w0)) * w1)


def nt_inverse_square(eta, w0, w1) -> torch.Tensor:
    """``W^{-2}`` of every cone as dense matrices, shape (B, d + 1, d + 1)."""
    d, B = w1.shape
    Wi = torch.zeros((B, d + 1, d + 1), dtype=w1.dtype, device=w1.device)
    Wi[:, 0, 0] = w0
    Wi[:, 0, 1:] = -w1.T
    Wi[:, 1:, 0] = -w1.T
    Wi[:, 1:, 1:] = torch.eye(d, dtype=w1.dtype, device=w1.device) + w1.T[:, :, None] * w1.T[:, None, :] / (
        1.0 + w0)[:, None, None]
    Wi = Wi / eta[:, None, None]
    return Wi @ Wi
