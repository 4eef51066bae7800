"""Augmented Lagrangian (method of multipliers) for the cone-constrained programs.

The programs ``min_Q l(A Q, Y) + beta R(Q)  s.t.  c = K Q >= 0`` (two-layer ReLU and
three-layer C3 of theory.md) are solved by alternating

1. an inner FISTA solve of ``min_Q l(A Q, Y) + psi(K Q, lam, rho) + beta R(Q)``
   (:class:`.fista.ALPart`, warm-started from the previous ``Q`` and step), and
2. the multiplier update ``lam+ = (lam - rho K Q)_+`` and the penalty rule
   (:func:`._steps.multiplier_update`, :func:`._steps.penalty_update`),

until the prox-gradient residual of the inner problem (which, at the new multipliers,
is the stationarity residual of the Lagrangian) and the constraint violation are both
below tolerance. A last step makes the point feasible to rounding
(:func:`restore_feasibility`), so that the recovered network reproduces the objective.

Everything goes through ``program.operator.apply`` / ``adjoint``: no architecture here.
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import torch

from .._validation import check_bool, check_count, check_max_time, check_number
from ..duality import dual_lower_bound
from ..operators import largest_violation
from . import _steps
from .base import ConvergenceWarning, Solution, Solver, frozen, warn_loose_gap
from ._presolve import on_live_groups
from ._projection import project_groups
from .fista import (_RESTARTS, ALPart, _dtype_tol, _initial_point, _out_of_time, fista_minimize, gradient_scale,
                    row_block_size)

__all__ = ["AugmentedLagrangian", "restore_feasibility", "repaired", "constraint_scale", "relative_violation"]

logger = logging.getLogger(__name__)


def constraint_scale(cons) -> float:
    """``max |K Q|`` over every constraint (the scale of ``X Q``); 1 when all vanish."""
    s = max((max(float(torch.max(c)), -float(torch.min(c))) for c in cons if c.numel()), default=0.0)
    return s if s > 0 else 1.0


#: Relative cone violation above which a converged solve is reported as infeasible
#: (status "infeasible", with a ConvergenceWarning): the repair did not reach it.
FEASIBLE = 1e-6

#: The augmented Lagrangian's default ``feas_tol`` is this times its ``tol``.
FEAS_PER_TOL = 1e-4


#: A converged solve whose repair raised the objective by more than this many times its
#: tolerance (relative) warns that the tolerance was too loose for the network.
REPAIR_COST = 10.0

#: The entries of ``Solution.info`` that account for the repair of the returned point
#: (a caller that returns another point drops them: :func:`convexrelu.strategies.solve_from`).
REPAIR_KEYS = ("objective_before_repair", "violation_before_repair", "repair", "repair_timed_out")

#: With ``max_time``: the share of it kept for the repair of the returned point, and the
#: time, in iterations, kept after the repair for the certificate (the objective, the
#: dual bound and the violation at the returned point, the extension to the dead groups:
#: a few evaluations of the operator, with the copies of the multipliers).
REPAIR_SHARE = 0.1
FINISH_ITERATIONS = 8.0

#: Samples on which the first penalty and step are estimated (:meth:`BlockOperator.row_sample`):
#: at n=100,000 (three-layer, 3,000 blocks, float32, 2 cores) the first inner iteration
#: started 35.7 s into a solve with the estimates on every sample, 9.4 s with them on
#: 20,000 (one timed solve each; the restriction to the live groups included).
NORM_ROWS = 20000

#: Relative size (to ``max |K Q|``) of the constraint values below which the repair may
#: zero a whole block (:func:`restore_feasibility`, step 1).
NEGLIGIBLE = 1e-6


def relative_violation(op, Q) -> float:
    """``max(0, -min K Q) / max |K Q|`` of a point (0 without constraints)."""
    cons = op.constraints(Q)
    return largest_violation(cons) / constraint_scale(cons)


def warn_infeasible(solver: str, violation: float, knob: str) -> None:
    """ConvergenceWarning for a solve that converged but whose repaired point still
    violates the cone constraints by more than :data:`FEASIBLE`."""
    warnings.warn(
        f"{solver}: converged, but the returned point violates the cone constraints by {violation:.3e} "
        f"(relative to max |K Q|) after the repair; lower {knob} for an accurate network",
        ConvergenceWarning,
        stacklevel=5,  # the user's call: solve's decorator, solve, constrained_solution, here
    )


def constrained_solution(program, Q: torch.Tensor, multipliers, *, solver: str, label: str, knob: str,
                         converged: bool, stop: str | None, residuals: str, iterations: int, start: float,
                         history: list, info: dict, lower_bound: float = -math.inf) -> Solution:
    """The :class:`Solution` of a cone-constrained first-order solve at its final
    (repaired) point ``Q``, with the dual bound of the multipliers, the status and the
    warnings (theory.md, "Duality and certificates").

    ``lower_bound``: a bound the solver certified on the way (e.g. before a last
    clean-up of ``Q``); the larger of it and the bound at ``Q`` is reported. When the
    returned point violates the cone constraints by more than :data:`FEASIBLE`
    (relative), its objective bounds nothing (it may lie below the optimum), so no gap is
    claimed: the Solution's ``lower_bound`` is ``-inf`` (its gap ``inf``) and the bound
    goes to ``info["dual_bound"]``.

    ``stop``: why an unconverged solve stopped (e.g. ``"max_iter=200"``); ``residuals``:
    the solver's own account of them, for the warning; ``knob``: the tolerance to lower
    when the repaired point is still infeasible.
    """
    op = program.operator
    Z, cons = op.apply(Q)  # one evaluation for the objective, the dual point and the violation
    obj = program.objective(Q, Z)
    lower = max(dual_lower_bound(program, Q, multipliers, Z)[0], lower_bound)
    status = "optimal" if converged else (
        "max_time" if stop.startswith("max_time") else "stalled" if stop.startswith("stall") else "max_iter")
    violation = largest_violation(cons)
    violation_after = violation / constraint_scale(cons)  # (0 without constraints: no arrays)
    Z = cons = None
    lam_np = tuple(frozen(m.detach().cpu().numpy().astype(np.float64), copy=False) for m in multipliers)
    feasible = violation_after <= FEASIBLE
    rise = (obj - info["objective_before_repair"]) / max(abs(obj), 1e-12) if "objective_before_repair" in info else 0.0
    repair_timed_out = bool(info.get("repair", {}).get("timed_out"))
    if converged and not feasible:
        converged, status = False, "infeasible"
        warn_infeasible(label, violation_after, knob)
    elif converged and rise > REPAIR_COST * info.get("tol", math.inf):
        # the point was far from feasible, and the network pays for it
        warnings.warn(
            f"{label}: converged, but making the point feasible (relative cone violation "
            f"{info.get('violation_before_repair', math.nan):.1e}) raised its objective by {rise:.1e} (relative; "
            f"more than {REPAIR_COST:g} x tol = {REPAIR_COST * info['tol']:.1e}); lower {knob} for an accurate network",
            ConvergenceWarning,
            stacklevel=4,  # the user's call: solve's decorator (on_live_groups), solve, here
        )
    elif converged:
        # the stopping rule is on residuals; a point that meets it can still be far from the
        # optimum where the program is ill-conditioned (float32 at beta = 1e-3: 1.8e-3 above
        # it, with a certified gap of 40 %)
        if warn_loose_gap(program, label, residuals, obj, lower, "lower tol" + (
                "" if solver == "ipm" else " (float32 floors it at 1.2e-04), or use solver='ipm'"), stacklevel=4):
            converged, status = False, "optimal_inaccurate"
    elif not converged:
        warnings.warn(
            f"{label}: stopped at {stop} {residuals}; objective {obj:.10g}, "
            + (f"duality gap {obj - lower:.3e}, " if feasible else
               f"no duality gap (the point is not feasible; dual bound {lower:.10g}), ")
            + f"relative cone violation {violation_after:.1e}"
            + (" (the repair stopped at its time allowance)" if repair_timed_out else ""),
            ConvergenceWarning,
            stacklevel=4,
        )
    info = dict(info, dual_bound=lower)
    if repair_timed_out:
        info["repair_timed_out"] = True  # (flat: the estimators keep only flat entries)
    return Solution(
        weights=Q.detach().cpu().numpy().astype(np.float64), objective=obj, converged=converged, status=status,
        iterations=iterations, time=time.perf_counter() - start, history=tuple(history),
        constraint_violation=violation, multipliers=lam_np,
        lower_bound=min(lower, obj) if feasible else -math.inf, solver=solver, info=info,
    )


def restore_feasibility(op, Q: torch.Tensor, *, target: float = 1e-10, max_rounds: int = 4, cg_iter: int = 100,
                        project: bool = True, max_projection_entries: float = 2e8, deadline: float | None = None,
                        cons=None):
    """A point near ``Q`` with ``K Q >= 0`` up to ``target * max|K Q|``.

    The constraints are homogeneous and linear, and block diagonal over the groups.

    First, with ``project``, every violated group is replaced by its Euclidean projection
    onto its cone (:func:`._projection.project_groups`: exact to rounding, the smallest
    change of the group; worst groups first, within ``max_projection_entries``). Then
    rounds of a cheap local repair (for the groups over that budget, and for float32,
    whose rounding leaves rows slightly below zero) each:

    1. set to zero the blocks so small that all their constraint values lie within a
       hundred times the violation, and within :data:`NEGLIGIBLE` of ``max|K Q|`` (a
       change of the order of the violation);
    2. collect in ``S`` the entries found below a tiny margin ``m`` (excluding exact
       zeros: rows of zero blocks and structurally empty rows), over all rounds so far;
    3. add the correction ``Delta`` (zero on zero blocks), the least-norm least-squares
       solution of ``K_S Delta = m - c_S``, which puts those entries at the margin, by
       conjugate gradients on the normal equations (CGLS): one ``apply`` and one
       ``adjoint`` per step. Other entries move by about the violation.

    Rounds stop once the violation is below the target; a round that does not lower
    the violation is discarded. Past ``deadline`` (a ``time.perf_counter()`` value) no
    conjugate-gradient step is taken (``info["timed_out"]``), and past half the time to
    it no group is projected. The rounds alone fail where many rows of a block are
    violated (a loose solve: the system of step 3 is inconsistent), and their step 1
    would drop real parts of the model there: hence the projection first.

    ``cons``: the constraint values ``K Q`` where the caller has them.

    Returns
    -------
    Q : tensor, the repaired point
    info : dict (rounds, violation before and after relative to ``max|K Q|``, CG steps;
        with a projection, ``projection``: groups projected and skipped)
    """
    cons = op.constraints(Q) if cons is None else cons
    scale = constraint_scale(cons)
    viol = largest_violation(cons)
    info = {"violation_before": viol / scale, "rounds": 0, "cg_iterations": 0, "zeroed_blocks": 0}
    if project and viol > target * scale:
        worst = _group_violations(op, cons)
        order = np.argsort(-worst, kind="stable")
        # half of the time left to the projection, the rest to the rounds (on a GPU they
        # are fast, while the projection runs on the host)
        half = None if deadline is None else time.perf_counter() + 0.5 * (deadline - time.perf_counter())
        Qp, info["projection"] = project_groups(op, Q, order[worst[order] > 0], max_entries=max_projection_entries,
                                                  deadline=half)
        # the groups are independent: keep each projected group that is less violated
        # than before (in float32 the rounding of a projection can exceed a tiny violation)
        cons_p = op.constraints(Qp)
        worse = np.flatnonzero((worst > 0) & (_group_violations(op, cons_p) >= worst))
        if worse.size:
            back = torch.as_tensor(np.flatnonzero(np.isin(op.group_np, worse)), device=Q.device)
            Qp[:, back] = Q[:, back]
            cons_p = op.constraints(Qp)
        Q, cons = Qp, cons_p
        viol, scale = largest_violation(cons), constraint_scale(cons)
    Q, cons, viol, scale = _least_squares_rounds(op, Q, cons, viol, scale, target, max_rounds, cg_iter, info, deadline)
    info["violation_after"] = viol / scale
    return Q, info


def repaired(program, Q: torch.Tensor, info: dict, max_time: float | None = None, **options) -> torch.Tensor:
    """``Q`` made feasible by :func:`restore_feasibility` (``options``); its account goes
    to ``info["repair"]`` and the objective before it to ``info["objective_before_repair"]``
    (:func:`constrained_solution` warns when the repair cost more than the tolerance).

    ``max_time``: the solver's wall-time limit; the repair then gets at most
    ``max(1, max_time / 10)`` seconds more (a solve stopped far from feasible would
    otherwise spend many conjugate-gradient steps on it), unless ``options`` give its
    ``deadline``."""
    if max_time is not None and "deadline" not in options:
        options["deadline"] = time.perf_counter() + max(1.0, REPAIR_SHARE * max_time)
    Z, cons = program.operator.apply(Q)  # one evaluation for the objective and the repair
    info["objective_before_repair"] = program.objective(Q, Z)
    Z = None
    Q, info["repair"] = restore_feasibility(program.operator, Q, cons=cons, **options)
    return Q


def _group_violations(op, cons) -> np.ndarray:
    """``max(0, -min K_g Q)`` of each group g: array (G,) (NaN counts as violated)."""
    worst = np.zeros(op.n_groups)
    for c, groups in zip(cons, op.constraint_groups()):
        low = torch.nan_to_num(torch.amin(c, dim=0), nan=-math.inf)  # no (n, B) temporary
        np.maximum.at(worst, groups, torch.clamp(-low, min=0).cpu().numpy())
    return worst


def _past(deadline: float | None, info: dict) -> bool:
    """Whether ``deadline`` has passed (recorded in ``info["timed_out"]``)."""
    if deadline is not None and time.perf_counter() > deadline:
        info["timed_out"] = True
    return bool(info.get("timed_out"))


def _least_squares_rounds(op, Q, cons, viol, scale, target, max_rounds, cg_iter, info, deadline=None):
    """The rounds of :func:`restore_feasibility` (steps 1-3); counts in ``info``.
    Returns ``(Q, cons, viol, scale)`` of the best point."""
    dtype = Q.dtype
    eps = torch.finfo(dtype).eps
    # the margin must exceed the rounding of K Q in this dtype (d terms of size ~scale)
    margin = max(1e-2 * target, 8 * math.sqrt(op.n_features) * eps) * scale
    active = None
    for _ in range(max_rounds):
        if viol <= target * scale or _past(deadline, info):
            break
        info["rounds"] += 1
        # blocks so small that all their constraint values lie within tau cannot be lifted
        # (n conditions on d unknowns): zero them, a change of the order of the violation.
        # Never blocks whose values reach NEGLIGIBLE of the scale (in float32 ten margins,
        # more): on a loose point (a large violation) that would drop real parts of the
        # model; the projection takes those.
        tau = max(min(100.0 * viol, NEGLIGIBLE * scale), 10.0 * margin)
        norms = torch.sqrt(torch.sum(Q * Q, dim=0))
        if op.cone_first:  # the first-cone values of block b are +-x_r . q_b: its own size
            size = torch.amax(torch.abs(cons[0]), dim=0)
        else:
            size = norms * (scale / float(norms.max()) if float(norms.max()) > 0 else 0.0)
        tiny = (norms > 0) & (size < tau)
        if bool(tiny.any()):
            # kept only if it does not raise the violation (zeroing a block of a group
            # moves the second-layer constraint values of the group)
            Qz = Q * (~tiny).to(dtype)
            cons_z = op.constraints(Qz)
            viol_z = largest_violation(cons_z)
            if viol_z <= viol:
                Q, cons, viol = Qz, cons_z, viol_z
                info["zeroed_blocks"] += int(tiny.sum())
            if viol <= target * scale:
                break
        colmask = (torch.sqrt(torch.sum(Q * Q, dim=0)) > 0).to(dtype)
        # rows to put exactly at the margin: every row found below it so far, except
        # the exact zeros (rows of zero blocks, structurally empty rows)
        below = tuple((c < margin) & (c != 0) for c in cons)
        active = below if active is None else tuple(a | b for a, b in zip(active, below))
        # (boolean masks multiply in place: no float copies of the (n, B) arrays)
        r = tuple(torch.neg(c).add_(margin).mul_(m) for c, m in zip(cons, active))
        # CGLS for min ||M K P D - r||: D = 0, s = r, p = g = P K^T M s
        D = torch.zeros_like(Q)
        g = op.adjoint(None, r) * colmask
        p = g
        gg = float(torch.sum(g * g))
        gg0 = gg
        res = r
        for _ in range(cg_iter):
            if gg <= (100 * eps) ** 2 * gg0 or gg == 0 or _past(deadline, info):
                break
            Kp = tuple(k.mul_(m) for k, m in zip(op.constraints(p), active))
            kk = sum(float(torch.dot(k.reshape(-1), k.reshape(-1))) for k in Kp)
            if not kk > 0:
                break
            alpha = gg / kk
            D = D + alpha * p
            res = tuple(a.add_(b, alpha=-alpha) for a, b in zip(res, Kp))  # (r is not needed again)
            Kp = None
            g = op.adjoint(None, res) * colmask
            gg_new = float(torch.sum(g * g))
            p = g + (gg_new / gg) * p
            gg = gg_new
            info["cg_iterations"] += 1
        Q_new = Q + D
        cons_new = op.constraints(Q_new)
        viol_new = largest_violation(cons_new)
        if not viol_new < viol:
            break
        Q, cons, viol = Q_new, cons_new, viol_new
        scale = constraint_scale(cons)
    return Q, cons, viol, scale


class AugmentedLagrangian(Solver):
    """Method of multipliers with inner FISTA for programs with cone constraints.

    Minimises ``l(A Q, Y) + beta sum_b ||Q[:, b]||`` subject to ``K Q >= 0`` (theory.md,
    "Two-layer networks" and "Three-layer parallel networks") through the augmented
    Lagrangian ``l(A Q) + psi(K Q, lam, rho) + beta R(Q)``,
    ``psi(c, lam, rho) = (||(lam - rho c)_+||^2 - ||lam||^2) / (2 rho)``. Programs without
    constraints are solved by the inner FISTA alone.

    Parameters
    ----------
    max_iter : int, default 500
        Outer iterations (multiplier updates).
    tol : float in (0, 1), default 1e-5
        Stationarity: the prox-gradient residual of the inner problem at the end of an
        inner solve (the stationarity residual of the Lagrangian at the updated
        multipliers), relative to :func:`.fista.gradient_scale`.
    feas_tol : float in (0, 1) or None, default None
        Residual of the method of multipliers ``max |lam+ - lam| / rho`` (it bounds the
        violation ``max(0, -min K Q)`` and the complementarity), relative to ``max |K Q|``.
        The repair moves the objective by about this much, so keep it well below the
        accuracy wanted. None: :data:`FEAS_PER_TOL` times ``tol`` (1e-9 at the default
        ``tol``; a fixed 1e-9 had made ``tol=1e-2`` fail where ``1e-3`` converged: its inner
        solves stop after a few iterations, too early for such a multiplier residual).
        Floored at 100 machine epsilons (1.2e-5 in float32), ``tol`` at 1000.
    inner_max_iter : int, default 1000
    inner_tol : float in (0, 1), default 1e-3
        Tolerance of the first inner solve; divided by ``inner_tol_decrease`` after every
        outer iteration, never below ``tol``.
    inner_tol_decrease : float, default 10
    rho_init : float or None
        Initial penalty; default ``rho_scale * smoothness * ||A||^2 / ||K||^2`` (power
        iterations), which balances the curvature of the penalty term with the loss's.
    rho_scale : float, default 10
    rho_factor : float, default 2
        Penalty increase (:func:`._steps.penalty_update`) when the multiplier residual
        did not fall below ``rho_decrease`` times its previous value ...
    rho_decrease : float, default 0.5
    rho_max : float, default 1e8
    rho_max_ratio : float, default 100
        ... up to ``min(rho_max, rho_max_ratio * rho_init)``: a larger penalty slows the
        inner solves more than it speeds the outer ones.
    step_init, backtrack, restart, step_increase, backtrack_factor : inner FISTA settings
        (see :class:`.fista.FISTA`); the step and the line search carry over between
        inner solves.
    repair : bool, default True
        Make the returned point feasible to ``repair_tol`` (:func:`restore_feasibility`).
    repair_tol : float in (0, 1), default 1e-10
        Violation target of the repair, relative to ``max |K Q|``.
    max_time : float or None
        Wall-time limit in seconds (status "max_time", with a ConvergenceWarning) for the
        whole call: the set-up counts towards it (the restriction to the live groups, the
        first penalty and step, estimated on at most :data:`NORM_ROWS` samples); no
        inner iteration starts that would end less than :data:`REPAIR_SHARE` of it plus
        :data:`FINISH_ITERATIONS` iterations' time before the limit; the repair of the
        point runs until that last reserve (at least ``min(1, max_time / 10)`` seconds),
        projecting no group whose projection would outlast it; the certificate of the
        returned point (the objective, the dual bound, the violation) takes the rest. At
        n=100,000, d=50, 3,000 blocks in float32 on 2 cores a solve with ``max_time=110``
        returned after 109.6 s (``benchmarks/RESULTS.md``; 158.5 s before these rules).
    verbose : bool, default False
        Log every outer iteration at INFO level (logger ``convexrelu.solvers.auglag``).

    ``solve(program, init)``: ``init`` an array (d, B) or a :class:`Solution` whose
    weights and multipliers are reused (the penalty restarts from its rule).

    ``Solution.info`` holds ``stationarity``, ``violation_before_repair``,
    ``multiplier_residual``, ``rho``, ``outer_iterations``, ``repair`` (what the repair did),
    ``dual_bound``.

    The certificate (theory.md, "Duality and certificates"): after every inner solve the
    dual point of its last iterate, ``v = grad l(A Q)`` with the updated multipliers
    ``lam+``, gives a lower bound whether or not ``Q`` is feasible; the best of them and
    of the bound at the returned point is ``Solution.lower_bound``. The repair moves the
    returned point off the iterate, and a dual point taken there is often far looser: on
    the three-layer program at n=2,000 stopped by ``max_time=60``, 289.37 against 88.64
    (objective 300.45, optimum 298.642).
    """

    name = "auglag"

    def __init__(
        self,
        max_iter: int = 500,
        tol: float = 1e-5,
        feas_tol: float | None = None,
        inner_max_iter: int = 1000,
        inner_tol: float = 1e-3,
        inner_tol_decrease: float = 10.0,
        rho_init: float | None = None,
        rho_scale: float = 10.0,
        rho_factor: float = 2.0,
        rho_decrease: float = 0.5,
        rho_max: float = 1e8,
        rho_max_ratio: float = 100.0,
        step_init: float | None = None,
        backtrack: bool = True,
        restart: str | None = "gradient",
        step_increase: float = 1.05,
        backtrack_factor: float = 0.5,
        repair: bool = True,
        repair_tol: float = 1e-10,
        max_time: float | None = None,
        verbose: bool = False,
    ):
        if restart not in _RESTARTS:
            raise ValueError(f"restart: expected one of {_RESTARTS}, got {restart!r}")
        self.max_iter = check_count(max_iter, "max_iter")
        self.tol = check_number(tol, "tol", high=1.0)
        self.feas_tol = check_number(feas_tol, "feas_tol", high=1.0, none_ok=True)
        self.inner_max_iter = check_count(inner_max_iter, "inner_max_iter")
        self.inner_tol = check_number(inner_tol, "inner_tol", high=1.0)
        self.inner_tol_decrease = check_number(inner_tol_decrease, "inner_tol_decrease", low=1.0, low_open=False)
        self.rho_init = check_number(rho_init, "rho_init", none_ok=True)
        self.rho_scale = check_number(rho_scale, "rho_scale")
        self.rho_factor = check_number(rho_factor, "rho_factor", low=1.0, low_open=False)
        self.rho_decrease = check_number(rho_decrease, "rho_decrease", high=1.0, high_open=False)
        self.rho_max = check_number(rho_max, "rho_max")
        self.rho_max_ratio = check_number(rho_max_ratio, "rho_max_ratio", low=1.0, low_open=False)
        self.step_init = check_number(step_init, "step_init", none_ok=True)
        self.backtrack = check_bool(backtrack, "backtrack")
        self.restart = None if restart == "none" else restart
        step_increase = check_number(step_increase, "step_increase", low=1.0, low_open=False)
        self.step_increase = step_increase if backtrack else 1.0
        self.backtrack_factor = check_number(backtrack_factor, "backtrack_factor", high=1.0)
        self.repair = check_bool(repair, "repair")
        self.repair_tol = check_number(repair_tol, "repair_tol", high=1.0)
        self.max_time = check_max_time(max_time)
        self.verbose = bool(verbose)

    # ------------------------------------------------------------------ solve
    @on_live_groups
    def solve(self, program, init=None) -> Solution:
        start = time.perf_counter()
        op = program.operator
        dtype, device = program.dtype, program.device
        Q, mults, info0 = _initial_point(program, init)
        tol = _dtype_tol(self.tol, dtype)
        feas_tol = _dtype_tol(FEAS_PER_TOL * self.tol if self.feas_tol is None else self.feas_tol, dtype, floor=100)
        scale = gradient_scale(program)
        shapes = op.constraint_shapes
        if mults is not None and len(mults) == len(shapes) and all(m.shape == s for m, s in zip(mults, shapes)):
            lam = tuple(torch.as_tensor(np.maximum(m, 0.0), dtype=dtype, device=device).contiguous() for m in mults)
        else:
            lam = tuple(torch.zeros(s, dtype=dtype, device=device) for s in shapes)
        # a warm start reuses weights and multipliers; the penalty restarts from its rule
        # (the last penalty of a previous solve is inflated and would slow the inner solves)
        rho = self.rho_init
        step = self.step_init
        if rho is None or step is None:
            # balance the curvature of the penalty, rho ||K||^2, with the loss's, L ||A||^2,
            # estimated on at most NORM_ROWS samples (scaled: sums over samples; the line
            # search corrects the step, so on every sample without it)
            est, w = op.row_sample(NORM_ROWS) if self.backtrack else (op, 1.0)
            rows = row_block_size(est)  # (by row blocks where the inner solves evaluate so)
            a2 = est.norm_estimate(n_iter=8, rows=rows) ** 2 * w * program.loss.smoothness
            k2 = est.constraint_norm_estimate(rows=rows) ** 2 * w if op.has_constraints else 1.0
            est = None
            if rho is None:
                rho = self.rho_scale * a2 / k2 if a2 > 0 and k2 > 0 else self.rho_scale
            if step is None:
                step = 1.0 / (a2 + rho * k2) if a2 + rho * k2 > 0 else 1.0
        rho, step = float(rho), float(step)
        rho0 = rho
        inner_tol = max(tol, self.inner_tol)
        history: list = []
        total_iter = 0
        prev_viol = math.inf
        converged = False
        viol = stat = feas = math.inf
        bound = -math.inf
        outer = 0
        state = None
        # with max_time the iterations stop early enough for the repair and the certificate
        deadline = None if self.max_time is None else start + self.max_time
        repairs = self.repair and op.has_constraints
        it_deadline = None if deadline is None else deadline - REPAIR_SHARE * self.max_time * repairs
        timed_out = False
        t_iter = 0.0
        for outer in range(1, self.max_iter + 1):
            part = ALPart(program, lam, rho)
            res = fista_minimize(
                part, Q, program.beta, step=step, max_iter=self.inner_max_iter, tol=inner_tol, scale=scale,
                backtrack=self.backtrack, backtrack_factor=self.backtrack_factor, step_increase=self.step_increase,
                restart=self.restart, history=history, name="AugmentedLagrangian (inner FISTA)",
                verbose=self.verbose, deadline=it_deadline, reserve=FINISH_ITERATIONS,
            )
            t_iter, inner_timed_out = res.iteration_time, res.timed_out
            inner_its = res.iterations
            total_iter += inner_its
            Q, state, step = res.Q, res.state, res.step
            cons = state.cons
            c_scale = constraint_scale(cons)
            viol = largest_violation(cons) / c_scale
            stat = res.residual
            lam_new = part.multipliers(state)  # (lam - rho c)_+, the state's own arrays
            # the dual point of this iterate and its multipliers bounds the optimum whether
            # or not the iterate is feasible: the best such bound is kept (the repair moves
            # the returned point, and the bound at it is often far looser)
            bound = max(bound, dual_lower_bound(program, Q, lam_new, state.Z)[0])
            # residual of the method of multipliers, ||lam+ - lam|| / rho = ||min(c, lam / rho)||:
            # the violation and the complementarity of (Q, lam+) at once
            mom = max((float(torch.max(torch.abs(a - b))) for a, b in zip(lam_new, lam) if a.numel()), default=0.0)
            feas = mom / rho / c_scale
            lam = lam_new
            res = state = cons = None  # free the inner solve's arrays before the next one
            if self.verbose:
                logger.info(
                    "AL outer %d: inner its %d, objective %.10g, stationarity %.3e, violation %.3e, "
                    "multiplier residual %.3e, rho %.3g",
                    outer, inner_its, history[-1] if history else float("nan"), stat, viol, feas, rho,
                )
            if stat <= tol and feas <= feas_tol:
                converged = True
                break
            # (the next inner solve evaluates its first state, then at least one iteration)
            if it_deadline is not None and (
                    inner_timed_out or _out_of_time(it_deadline, t_iter, FINISH_ITERATIONS + 1)):
                timed_out = True
                break
            rho_new = _steps.penalty_update(
                rho, feas, prev_viol, decrease=self.rho_decrease, factor=self.rho_factor,
                rho_max=min(self.rho_max, self.rho_max_ratio * rho0),
            )
            rho = rho_new  # the line search shrinks the step where the larger penalty needs it
            prev_viol = feas
            inner_tol = max(tol, inner_tol / self.inner_tol_decrease)
        info = {"stationarity": stat, "violation_before_repair": viol, "multiplier_residual": feas, "tol": tol, "feas_tol": feas_tol,
                "rho": rho, "step": step, "outer_iterations": outer, "gradient_scale": scale}
        part = None  # its arrays: the repair needs the memory
        if repairs:
            # up to the certificate's share of max_time (a converged solve near the limit
            # still gets the repair's allowance of :func:`repaired`)
            limit = None if deadline is None else max(deadline - FINISH_ITERATIONS * t_iter, time.perf_counter()
                                                      + min(1.0, REPAIR_SHARE * self.max_time))
            Q = repaired(program, Q, info, self.max_time, target=self.repair_tol,
                         **({} if limit is None else {"deadline": limit}))
        stop = None if converged else (f"max_time={self.max_time:g}s" if timed_out else f"max_iter={self.max_iter}")
        return constrained_solution(
            program, Q, lam, solver="auglag", label="AugmentedLagrangian", knob="feas_tol", converged=converged,
            stop=stop, iterations=total_iter, start=start, history=history, info=info, lower_bound=bound,
            residuals=f"after {outer} outer iterations ({total_iter} inner) with stationarity residual {stat:.3e} "
                      f"(tol {tol:.1e}) and constraint violation {viol:.3e} (feas_tol {feas_tol:.1e}) before repair",
        )
