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
  ``psi(c, lam, rho) = (1 / (2 rho)) (||(lam - rho c)_+||^2 - ||lam||^2)``.
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
    return -torch.clamp(lam - rho * c, min=0)


def multiplier_update(c: torch.Tensor, lam: torch.Tensor, rho: float) -> torch.Tensor:
    """Method-of-multipliers update ``lam+ = (lam - rho c)_+``."""
    return torch.clamp(lam - rho * c, min=0)


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

