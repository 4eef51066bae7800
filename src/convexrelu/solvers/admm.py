"""ADMM with exact linear solves for every program (cone-constrained or not).

The program ``min_Q l(A Q, Y) + beta sum_b ||Q[:, b]||  s.t.  K Q >= 0`` (theory.md,
"Two-layer networks", "Three-layer parallel networks") is split as

    min  l(z) + beta R(V) + I_{>=0}(c)   s.t.   A Q = z,  K Q = c,  Q = V,

with penalties ``rho_z``, ``rho k`` and ``rho`` on the three equations in the augmented
Lagrangian (scaled duals ``u_z, u_c, u_v``). With ``a = rho_z / rho``, one iteration:

1. ``Q = M^{-1} (a A^T (z - u_z) + k K^T (c - u_c) + V - u_v)`` with
   ``M = a A^T A + k K^T K + I`` (the block-diagonal part ``I + k K^T K`` is factored
   once by the operator, :meth:`convexrelu.operators.BlockOperator.normal_solver`; a
   new ``rho`` refactors one ``n x n`` matrix per output);
2. over-relaxation (:func:`._steps.over_relax`) of ``A Q``, ``K Q``, ``Q``;
3. ``z = prox_{l / rho_z}`` (:meth:`convexrelu.losses.Loss.prox`), ``c = (.)_+``,
   ``V = `` group soft-thresholding at ``beta / rho``;
4. dual updates ``u += (relaxed) - (split variable)``.

``rho_z`` and ``rho`` follow residual balancing (:func:`._steps.residual_balance`) on
the residuals of their splits; the cone
multipliers are ``lam = -rho k u_c`` (>= 0 at convergence), which with the loss gradient
give the dual point of the certificate (theory.md, "Duality and certificates"), taken at
the iterates ``V`` and ``Q`` before the repair as well as at the returned point, the best
of the three bounds kept. The
returned point is ``V`` (exactly group sparse), made feasible by
:func:`.auglag.restore_feasibility`.

Nothing here knows the architecture: the operator supplies ``apply``, ``adjoint`` and
the normal-equations solver. The factorisation costs ``O(n^2)`` memory (a Woodbury
matrix per output): meant for ``n`` up to a few thousand; beyond, use
:class:`.auglag.AugmentedLagrangian`.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from .._validation import check_bool, check_count, check_max_time, check_number
from ..duality import dual_lower_bound
from ..regularizers import group_soft_threshold
from . import _steps
from .auglag import constrained_solution, relative_violation, repaired
from .base import Solution, Solver, SolverError
from ._presolve import on_live_groups
from .fista import _dtype_tol, _initial_point

__all__ = ["ADMM"]

logger = logging.getLogger(__name__)

#: Each penalty stays within this factor of its first value (either way). Residual
#: balancing follows the transient of a start far from the solution: from a random
#: (d, B) array on a two-layer ReLU program (n=60, 8 patterns) the group penalty fell
#: until its updates ran out (to 2.9e-08) and the solve ended at max_iter with a relative
#: error of 15; with this bound 1.5e-04, and on the three-layer program converged (8.5e-06)
#: where it had ended at 12. Cold solves of those programs and of the n=500
#: benchmark programs moved the penalties down to 9.8e-04 times their first values, no further.
PENALTY_RANGE = 1e4

#: After a warm start whose penalties come from the rule (an array, or a solution of
#: another solver: nothing to carry over), the group penalty is not balanced in this many
#: first iterations, while the split variables move away from the start. Measured on the
#: programs above (n=60, 8 patterns, max_iter 20,000), without and with the delay: from
#: two random arrays, two-layer ReLU at max_iter 1.5e-04 and 2.3e-05 above the optimum
#: against converged in 16,280 and 7,100 iterations; three-layer converged in 5,600 and
#: 13,010 against 3,950 and 3,470; the two-layer program from the gated solution (the
#: same weights, FISTA) at max_iter against converged in 7,980 (cold: 2,270).
WARM_BALANCE_DELAY = 100

#: A warm start from an ADMM solution reuses its penalties where its ``beta`` is within
#: this factor of the program's (a path's next step); further off they mislead: from the
#: solution at beta = 0.1, a solve at 1e-4 (two-layer, n=40, 8 patterns, at max_iter)
#: ended at 0.23868 with the carried penalties, at 0.10196398 without them (optimum
#: 0.10196289).
WARM_PENALTY_BETA_RATIO = 2.0


def _carries_penalties(info0, beta: float) -> bool:
    """Whether a warm start's ``info0`` holds ADMM penalties fit for a solve at ``beta``
    (:data:`WARM_PENALTY_BETA_RATIO`)."""
    if "rho" not in info0 or "rho_model" not in info0 or "beta" not in info0:
        return False
    old = float(info0["beta"])
    if old <= 0 or beta <= 0:
        return old == beta
    return 1.0 / WARM_PENALTY_BETA_RATIO <= beta / old <= WARM_PENALTY_BETA_RATIO


def _sq(T: torch.Tensor) -> float:
    T = T.reshape(-1)
    return float(torch.dot(T, T))


#: The residuals' denominators are at least this fraction of the sizes their terms take
#: on the scale of the data (:func:`_residual_floors`).
RESIDUAL_FLOOR = 1e-3


def _residual_floors(loss, Y, zero_model, norm_a: float, k: float, norm_k: float) -> dict:
    """Smallest denominators of the relative residuals: :data:`RESIDUAL_FLOOR` times the
    size each term takes on the scale of the data. The model ``A Q`` and its split ``z``:
    ``||Y||``; the weights ``Q`` (with the weighted cone rows): ``||Y|| / ||A||``, the size
    of weights whose model has the targets' size, times ``sqrt(1 + k ||K||^2)``; the
    gradient ``rho_z u_z``: ``||grad l(0)||`` (``zero_model``: the model of ``Q = 0``); the
    group duals ``rho u_v``: ``||A||`` (``norm_a``) times that. Where the optimum is the zero network
    (``beta`` near ``zero_threshold``) the terms tend to zero together and their ratio
    stays near 1; at ``beta = 0`` ``u_v`` is zero: without the floors neither solve could
    stop."""
    y = math.sqrt(_sq(Y))
    g = math.sqrt(_sq(loss.grad(zero_model, Y)))
    tiny = 1e-300
    return {"model": max(RESIDUAL_FLOOR * y, tiny),
            "weights": max(RESIDUAL_FLOOR * y / max(norm_a, tiny) * math.sqrt(1.0 + k * norm_k**2), tiny),
            "gradient": max(RESIDUAL_FLOOR * g, tiny),
            "groups": max(RESIDUAL_FLOOR * norm_a * g, tiny)}


class ADMM(Solver):
    """Alternating direction method of multipliers with a factored linear system.

    Solves every program (two-layer ReLU and three-layer C3 with their cone constraints,
    gated ReLU without) for every loss with a proximal operator; see the module text for
    the splitting. Iterations are cheap after a one-off factorisation and their number
    barely depends on the conditioning of ``X``.

    Parameters
    ----------
    max_iter : int, default 20000
    tol : float in (0, 1), default 1e-6
        Stop when both the primal residual ``||(A Q - z, K Q - c, Q - V)||`` (weighted,
        relative to the size of its terms) and the dual residual (the change of the split
        variables times ``rho``, relative to ``rho ||u_v||`` or ``beta``) are at most
        ``tol`` (floored at 1000 machine epsilons).
    rho_model : float or None
        Initial penalty ``rho_z`` of the model split ``A Q = z``; default the loss's
        smoothness constant, so that the Q-step sees the loss's own curvature. Adapted
        by residual balancing on that split's residuals (a change costs one ``n x n``
        Cholesky factorisation per output).
    rho_init : float or None
        Initial penalty ``rho`` of the group split ``Q = V`` (and ``rho k`` of the cone
        split ``K Q = c``), adapted by residual balancing; default
        ``rho_scale * rho_z * ||A||^2 / B``.
    rho_scale : float, default 1
    alpha : float, default 1.6
        Over-relaxation in (0, 2).
    balance_every : int, default 10
        Residual check and penalty update period (iterations); ``Solution.history`` holds
        the objective at these checks (one entry per ``balance_every`` iterations).
    mu, tau : float, default 10, 2
        Residual balancing: ``rho`` times/divided by ``tau`` when one residual exceeds
        ``mu`` times the other.
    max_penalty_updates : int, default 30
        Each penalty changes at most this many times (ADMM converges once the penalties
        stop changing; unbounded balancing can oscillate), and stays within
        :data:`PENALTY_RANGE` of its first value. A warm start from an ADMM solution at a
        ``beta`` within :data:`WARM_PENALTY_BETA_RATIO` reuses its penalties; after any
        other warm start the group penalty is held for :data:`WARM_BALANCE_DELAY` iterations.
    weight_constraints : float or None
        The weight ``k`` of the cone split relative to the group split; default
        ``constraint_scale * ||X||^2 / ||K||^2`` (power iterations).
    constraint_scale : float, default 10
        A heavier cone split reaches feasibility sooner (tuned on the benchmarks).
    repair : bool, default True
        Make the returned point feasible (:func:`.auglag.restore_feasibility`).
    repair_tol : float in (0, 1), default 1e-10
    max_time : float or None
        Wall-time limit in seconds (status "max_time", with a ConvergenceWarning).
    verbose : bool, default False
        Log the residuals at every check (INFO, logger ``convexrelu.solvers.admm``).

    ``solve(program, init)``: ``init`` an array (d, B) or a :class:`Solution` (weights
    and multipliers reused: the dual variables are rebuilt from them; the penalties of
    an ADMM solution too).

    ``Solution.info``: ``primal_residual``, ``dual_residual``, ``rho``, ``setup_time``,
    ``violation_before_repair``, ``repair``.
    """

    name = "admm"

    def __init__(
        self,
        max_iter: int = 20000,
        tol: float = 1e-6,
        rho_init: float | None = None,
        rho_scale: float = 1.0,
        alpha: float = 1.6,
        balance_every: int = 10,
        mu: float = 10.0,
        tau: float = 2.0,
        max_penalty_updates: int = 30,
        rho_model: float | None = None,
        weight_constraints: float | None = None,
        constraint_scale: float = 10.0,
        repair: bool = True,
        repair_tol: float = 1e-10,
        max_time: float | None = None,
        verbose: bool = False,
    ):
        self.max_iter = check_count(max_iter, "max_iter")
        self.tol = check_number(tol, "tol", high=1.0)
        self.rho_init = check_number(rho_init, "rho_init", none_ok=True)
        self.rho_scale = check_number(rho_scale, "rho_scale")
        self.alpha = check_number(alpha, "alpha", high=2.0)
        self.balance_every = check_count(balance_every, "balance_every")
        self.mu = check_number(mu, "mu", low=1.0)
        self.tau = check_number(tau, "tau", low=1.0)
        self.max_penalty_updates = check_count(max_penalty_updates, "max_penalty_updates", 0)
        self.rho_model = check_number(rho_model, "rho_model", none_ok=True)
        self.constraint_scale = check_number(constraint_scale, "constraint_scale")
        self.weight_constraints = check_number(weight_constraints, "weight_constraints", none_ok=True)
        self.repair = check_bool(repair, "repair")
        self.repair_tol = check_number(repair_tol, "repair_tol", high=1.0)
        self.max_time = check_max_time(max_time)
        self.verbose = bool(verbose)

    @on_live_groups
    def solve(self, program, init=None) -> Solution:
        start = time.perf_counter()
        op, loss, Y, beta = program.operator, program.loss, program.Y, program.beta
        dtype, device = program.dtype, program.device
        tol = _dtype_tol(self.tol, dtype)
        Q, mults, info0 = _initial_point(program, init)
        k = 0.0
        if op.has_constraints:
            norm_k = op.constraint_norm_estimate(n_iter=15)
            norm_x = float(torch.linalg.matrix_norm(op.X, ord=2))
            k = self.weight_constraints or self.constraint_scale * ((norm_x / norm_k) ** 2 if norm_k > 0 else 1.0)
        solver = op.normal_solver(k)
        # a warm start from an ADMM solution at a nearby beta also reuses its penalties
        carried = _carries_penalties(info0, beta)
        norm_a = op.norm_estimate(n_iter=15)  # (the default penalty and the residuals' floors)
        rho_z = float(self.rho_model or (info0["rho_model"] if carried else None) or loss.smoothness)
        if self.rho_init is not None or carried:
            rho = float(self.rho_init or info0["rho"])
        else:
            rho = self.rho_scale * rho_z * norm_a**2 / max(op.n_blocks, 1)
        rho0, rho_z0 = rho, rho_z
        delay = WARM_BALANCE_DELAY if init is not None and not carried else 0
        setup = time.perf_counter() - start
        # split variables and scaled duals, from the starting point
        z, c = op.apply(Q)
        c = tuple(torch.clamp(ci, min=0) for ci in c)
        floors = _residual_floors(loss, Y, torch.zeros_like(z), norm_a, k, norm_k if op.has_constraints else 0.0)
        V = Q.clone()
        uz = loss.grad(z, Y) / rho_z
        if mults is not None and len(mults) == len(c) and all(m.shape == ci.shape for m, ci in zip(mults, c)):
            lam = tuple(torch.as_tensor(np.maximum(m, 0.0), dtype=dtype, device=device) for m in mults)
        else:
            lam = tuple(torch.zeros_like(ci) for ci in c)
        uc = tuple(-m / (rho * k) for m in lam) if k else ()
        # the Q-step optimality rho_z A^T u_z + rho k K^T u_c + rho u_v = 0 fixes u_v
        uv = -op.adjoint((rho_z / rho) * uz, tuple(k * u for u in uc))
        history: list = []
        converged = False
        timed_out = False
        r_rel = s_rel = math.inf
        it = 0
        deadline = None if self.max_time is None else start + self.max_time
        alpha = self.alpha
        changes = changes_z = 0
        for it in range(1, self.max_iter + 1):
            a = rho_z / rho
            R = op.adjoint(a * (z - uz), tuple(k * (ci - ui) for ci, ui in zip(c, uc))) + (V - uv)
            Q = solver.solve(R, a)
            AQ, KQ = op.apply(Q)
            AQh = _steps.over_relax(AQ, z, alpha)
            KQh = tuple(_steps.over_relax(ki, ci, alpha) for ki, ci in zip(KQ, c))
            Qh = _steps.over_relax(Q, V, alpha)
            z_old, c_old, V_old = z, c, V
            z = loss.prox(AQh + uz, Y, 1.0 / rho_z)
            c = tuple(torch.clamp(ki + ui, min=0) for ki, ui in zip(KQh, uc))
            V = group_soft_threshold(Qh + uv, beta / rho)
            uz = uz + AQh - z
            uc = tuple(ui + ki - ci for ui, ki, ci in zip(uc, KQh, c))
            uv = uv + Qh - V
            if it % self.balance_every and it != self.max_iter:
                continue
            # residuals (Boyd et al. 2011, sec. 3.3), relative; the model split and the
            # (cone, group) splits separately: rho balances the latter
            pz = math.sqrt(_sq(AQ - z)) / max(math.sqrt(max(_sq(AQ), _sq(z))), floors["model"])
            dz = rho_z * math.sqrt(_sq(z - z_old)) / max(rho_z * math.sqrt(_sq(uz)), floors["gradient"])
            pv = math.sqrt(k * sum(_sq(ki - ci) for ki, ci in zip(KQ, c)) + _sq(Q - V))
            pv /= max(math.sqrt(max(k * sum(_sq(ki) for ki in KQ) + _sq(Q), k * sum(_sq(ci) for ci in c) + _sq(V))),
                      floors["weights"])
            dv = rho * math.sqrt(k * sum(_sq(ci - co) for ci, co in zip(c, c_old)) + _sq(V - V_old))
            dv /= max(rho * math.sqrt(_sq(uv)), beta, floors["groups"])
            r_rel, s_rel = max(pz, pv), max(dz, dv)
            F = float(loss.value(z, Y)) + beta * float(program.regularizer.value(V))
            if not math.isfinite(F) or not math.isfinite(r_rel + s_rel):
                raise SolverError(f"ADMM: the iterates became non-finite at iteration {it} (rho {rho:.3g}); check the data")
            history.append(F)
            if self.verbose:
                logger.info("ADMM it %d: objective %.10g, primal %.2e/%.2e, dual %.2e/%.2e, rho %.3g", it, F, pz, pv,
                            dz, dv, rho)
            if r_rel <= tol and s_rel <= tol:
                converged = True
                break
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            # the model penalty moves more slowly (each change refactors the Woodbury matrix)
            rho_z_new = rho_z if (it % (5 * self.balance_every) or changes_z >= self.max_penalty_updates) else \
                _steps.clip_ratio(_steps.residual_balance(rho_z, pz, dz, mu=self.mu, tau=self.tau), rho_z0,
                                  PENALTY_RANGE)
            if rho_z_new != rho_z:
                uz = uz * (rho_z / rho_z_new)
                rho_z = rho_z_new
                changes_z += 1
            rho_new = rho if (changes >= self.max_penalty_updates or it <= delay) else _steps.clip_ratio(
                _steps.residual_balance(rho, pv, dv, mu=self.mu, tau=self.tau), rho0, PENALTY_RANGE)
            if rho_new != rho:
                changes += 1
                f = rho / rho_new
                uv = uv * f
                uc = tuple(u * f for u in uc)
                rho = rho_new
        lam_t = tuple(torch.clamp(-rho * k * u, min=0) for u in uc)
        info = {"primal_residual": r_rel, "dual_residual": s_rel, "tol": tol, "rho": rho, "rho_model": rho_z,
                "beta": beta, "weight_constraints": k, "setup_time": setup}
        Qout = V
        bound = -math.inf
        if op.has_constraints:
            # the dual points of the iterates, before the repair moves the returned point
            # (the bound at a repaired point is often far looser): the better one is kept
            bound = max(dual_lower_bound(program, C, lam_t)[0] for C in (V, Q))
            # V is exactly group sparse, Q nearly satisfies K Q = c >= 0: of V and Q restricted
            # to the support of V, keep the one with the smaller violation, then repair it
            Qs = Q * (torch.sum(V * V, dim=0, keepdim=True) > 0).to(Q.dtype)
            rel = [relative_violation(op, C) for C in (V, Qs)]
            Qout = V if rel[0] <= rel[1] else Qs
            info["violation_before_repair"] = min(rel)
            if self.repair:
                Qout = repaired(program, Qout, info, self.max_time, target=self.repair_tol)
        stop = None if converged else (f"max_time={self.max_time:g}s" if timed_out else f"max_iter={self.max_iter}")
        return constrained_solution(
            program, Qout, lam_t, solver="admm", label="ADMM", knob="tol", converged=converged, stop=stop,
            iterations=it, start=start, history=history, info=info, lower_bound=bound,
            residuals=f"after {it} iterations with primal residual {r_rel:.3e} and dual residual {s_rel:.3e} "
                      f"(tol {tol:.1e})",
        )
