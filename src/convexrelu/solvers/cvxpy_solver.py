"""Standard solver: the program through CVXPY (Clarabel by default)."""

from __future__ import annotations

import logging
import math
import time
import warnings

import cvxpy as cp
import numpy as np

from .._validation import check_count, check_max_time, check_number, relative_gap
from ..duality import dual_lower_bound
from .auglag import FEASIBLE, relative_violation, repaired
from ._presolve import in_target_units, zero_solution
from .base import LOOSE_GAP, ConvergenceWarning, Solution, Solver, SolverError, init_weights, loose_gap, time_left

__all__ = ["CVXPYSolver", "LIMIT_OPTIONS", "TIME_OPTIONS"]

logger = logging.getLogger(__name__)

#: Option names of ``max_iter`` and of ``tol`` for the CVXPY backends that
#: :class:`CVXPYSolver` translates them for.
LIMIT_OPTIONS = {
    "CLARABEL": ("max_iter", ("tol_gap_abs", "tol_gap_rel", "tol_feas")),
    "SCS": ("max_iters", ("eps_abs", "eps_rel")),
    "ECOS": ("max_iters", ("abstol", "reltol", "feastol")),
    "OSQP": ("max_iter", ("eps_abs", "eps_rel")),
}

#: Option name of ``max_time`` (seconds) for the CVXPY backends that
#: :class:`CVXPYSolver` translates it for.
TIME_OPTIONS = {"CLARABEL": "time_limit", "SCS": "time_limit_secs", "OSQP": "time_limit"}


#: Relative margin within which the zero network counts as good as a backend's point.
ZERO_MARGIN = 1e-8


def at_zero(zero: float, objective: float) -> bool:
    """Whether the zero network's objective ``zero`` is as good as a backend's point's
    ``objective`` (no higher, up to :data:`ZERO_MARGIN` relative): a backend's optimum at
    zero comes back as tiny entries whose cone rows, relative to their own size, fail by
    rounding (a relative violation of 1 at entries of 1e-12), and the zero network is
    exactly feasible."""
    return zero <= objective + ZERO_MARGIN * max(1.0, abs(zero))


def cone_solvers() -> list[str]:
    """The installed CVXPY solvers that take second-order cones (CLARABEL, SCS, MOSEK...;
    not OSQP, SCIPY or HIGHS, which had been accepted by name and failed in the solve)."""
    try:
        from cvxpy.constraints import SOC
        from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC
    except ImportError:  # pragma: no cover - another layout of cvxpy: every installed solver
        return list(cp.installed_solvers())
    return [s for s in cp.installed_solvers() if s in SOLVER_MAP_CONIC and SOC in SOLVER_MAP_CONIC[s].SUPPORTED_CONSTRAINTS]


class CVXPYSolver(Solver):
    """Solve a convex program with a generic conic solver through CVXPY.

    The problem is built from whole-matrix expressions (no loop over patterns):
    ``loss.cvxpy(Z, Y) + beta * regularizer.cvxpy(Q)`` with ``Z, K = operator.cvxpy(Q)``
    and ``K >= 0``.

    Parameters
    ----------
    solver : str, default "CLARABEL"
        Any CVXPY solver installed (``cvxpy.installed_solvers()``): CLARABEL, SCS, MOSEK...
    verbose : bool, default False
    options : dict or None
        Passed to ``Problem.solve`` (solver-specific settings; they take precedence over
        ``max_iter`` and ``tol``). For Clarabel the default tightens its tolerances to
        1e-9 (``DEFAULT_CLARABEL_OPTIONS``): with hundreds of patterns, per-block cone
        violations at the default 1e-8 add up to relative errors of 1e-6 in the
        recovered network, at no extra cost in time. Where Clarabel misses them (status
        "optimal_inaccurate", or a failure such as insufficient progress), it solves
        again at its own defaults.
    max_iter : int or None
        Iteration limit, passed as the backend's own option (:data:`LIMIT_OPTIONS`:
        Clarabel, SCS, ECOS, OSQP); None keeps the backend's default. A solve stopped by
        it returns its last iterate with status "user_limit" and a ConvergenceWarning
        where CVXPY has one, and raises SolverError (naming ``max_iter``) where not.
    tol : float or None
        Tolerance, passed as every tolerance option of the backend in
        :data:`LIMIT_OPTIONS` (for Clarabel: the gaps and feasibility).
    max_time : float or None
        Wall-time limit in seconds of the whole solve. The program is compiled first
        (``Problem.get_problem_data``; not interrupted, it counts against the limit) and the
        backend gets the time left as its own option (:data:`TIME_OPTIONS`: Clarabel, SCS,
        OSQP; a ValueError for the others), which bounds its iterations, not its set-up.
        Both can take seconds: three-layer, n=442, 800 blocks, 2 cores: compilation 5.8 s,
        Clarabel's set-up 2.6 s. A solve stopped by it behaves as one stopped by
        ``max_iter``.
    """

    DEFAULT_CLARABEL_OPTIONS = {"tol_feas": 1e-9, "tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9}

    name = "cvxpy"

    def __init__(self, solver: str = "CLARABEL", verbose: bool = False, options: dict | None = None,
                 max_iter: int | None = None, tol: float | None = None, max_time: float | None = None):
        self.solver = solver
        self.verbose = verbose
        if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) for k in options)):
            raise TypeError(f"options: expected None or a dict of the backend's settings by name, got {options!r}")
        self.options = options
        self.max_iter = check_count(max_iter, "max_iter", none_ok=True)
        self.tol = check_number(tol, "tol", none_ok=True)  # (the backend's own tolerances: absolute ones too)
        self.max_time = check_max_time(max_time)

    def _options(self, solver: str, time_left: float | None = None) -> dict:
        """Keyword arguments of ``Problem.solve`` for the backend ``solver`` (``time_left``:
        the time limit to pass instead of ``max_time``)."""
        opts = {} if self.options is not None else (dict(self.DEFAULT_CLARABEL_OPTIONS) if solver == "CLARABEL" else {})
        if self.max_iter is not None or self.tol is not None:
            if solver not in LIMIT_OPTIONS:
                raise ValueError(
                    f"max_iter, tol: not known for the CVXPY backend {solver} (known: {sorted(LIMIT_OPTIONS)}); "
                    "pass its own settings as options={...}"
                )
            iter_key, tol_keys = LIMIT_OPTIONS[solver]
            if self.max_iter is not None:
                opts[iter_key] = self.max_iter
            if self.tol is not None:
                opts.update({k: self.tol for k in tol_keys})
        if self.max_time is not None:
            if solver not in TIME_OPTIONS:
                raise ValueError(
                    f"max_time: not known for the CVXPY backend {solver} (known: {sorted(TIME_OPTIONS)}); "
                    "pass its own settings as options={...}"
                )
            opts[TIME_OPTIONS[solver]] = self.max_time if time_left is None else time_left
        opts.update(self.options or {})
        return opts

    def _solve_problem(self, problem, solver: str, start: float) -> None:
        """``problem.solve`` by the backend ``solver`` with :meth:`_options`; with
        ``max_time`` compiled first, the backend getting the time left after compilation."""
        if self.max_time is None:
            problem.solve(solver=solver, verbose=self.verbose, **self._options(solver))
            return
        data, chain, inverse = problem.get_problem_data(solver, solver_opts=self._options(solver))
        left = time_left(start + self.max_time)
        solution = chain.solve_via_data(problem, data, False, self.verbose, self._options(solver, left))
        problem.unpack_results(solution, chain, inverse)

    @in_target_units
    def solve(self, program, init=None) -> Solution:
        """Solve ``program``; ``init`` is accepted for interface compatibility and ignored
        (interior-point methods do not warm start). Targets far from unit size are solved
        in their own units (:func:`._presolve.in_target_units`), as by the other solvers."""
        solver = str(self.solver).upper()
        capable = cone_solvers()
        if solver not in capable:
            why = ("cannot solve second-order-cone programs (every program here has one cone per block)"
                   if solver in cp.installed_solvers() else "is not an installed CVXPY solver")
            raise ValueError(f"solver: {self.solver!r} {why}; expected one of {capable}")
        if init is not None:
            init_weights(program, init)  # ignored, but checked as the other solvers check it
        start = time.perf_counter()
        zero = zero_solution(program, self.name, start)
        if zero is not None:
            return zero
        op = program.operator
        Q = cp.Variable(op.shape)
        Z, cons_exprs = op.cvxpy(Q)
        objective = program.loss.cvxpy(Z, program.Y_np)
        if program.beta > 0:
            objective = objective + program.beta * program.regularizer.cvxpy(Q)
        constraints = [expr >= 0 for expr in cons_exprs]
        problem = cp.Problem(cp.Minimize(objective), constraints)
        # with no setting of the user's, Clarabel runs at tightened tolerances first; where
        # they are out of reach (an inaccurate status, or a failure such as insufficient
        # progress) it solves again at its own defaults
        fallback = solver == "CLARABEL" and (
            self.options is None and self.tol is None and self.max_iter is None and self.max_time is None)
        try:
            with warnings.catch_warnings():  # our own ConvergenceWarning below says it better
                warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
                try:
                    self._solve_problem(problem, solver, start)
                    missed = f"status {problem.status}" if fallback and problem.status == cp.OPTIMAL_INACCURATE else ""
                except TypeError as exc:  # (a backend's refusal of a setting: its name or its type)
                    if not self.options:
                        raise
                    raise ValueError(f"options: the CVXPY backend {solver} refused the settings "
                                     f"{sorted(self.options)} ({exc})") from exc
                except cp.error.SolverError as exc:
                    if not fallback:
                        raise
                    missed = str(exc)
                if missed:
                    logger.info("Clarabel missed the tightened tolerances (%s); re-solving with its defaults", missed)
                    problem.solve(solver=solver, verbose=self.verbose)
        except cp.error.SolverError as exc:
            raise SolverError(f"CVXPY solver {solver} failed: {exc}") from exc
        status = problem.status
        if status == cp.USER_LIMIT and Q.value is None:
            raise SolverError(
                f"CVXPY solver {solver} stopped at a limit (status 'user_limit', max_iter={self.max_iter}, "
                f"max_time={self.max_time}) without a point to return; raise the limit"
            )
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) or Q.value is None:
            raise SolverError(f"CVXPY solver {solver} returned status {status!r}; no solution")
        weights = np.asarray(Q.value, dtype=np.float64)
        multipliers = tuple(np.maximum(np.asarray(c.dual_value, dtype=np.float64), 0.0) for c in constraints)
        info = {"cvxpy_objective": float(problem.value), "solve_time": getattr(problem.solver_stats, "solve_time", None)}
        obj = program.objective(weights)
        zero = program.objective(np.zeros_like(weights))
        violation = 0.0
        if at_zero(zero, obj):
            weights, obj = np.zeros_like(weights), zero  # exactly feasible, where tiny entries' rounding was not
            info["zeroed"] = True
        elif program.has_constraints:
            violation = relative_violation(program.operator, program.as_tensor(weights))
            if status != cp.OPTIMAL or violation > FEASIBLE:
                # a point stopped early, or solved to a loose tolerance, may lie outside the cones,
                # where its objective is not the network's: repaired as the other solvers' points are
                info["violation_before_repair"] = violation
                Qt = repaired(program, program.as_tensor(weights), info, self.max_time)
                weights = Qt.cpu().numpy().astype(np.float64)
                obj = program.objective(weights)
                violation = relative_violation(program.operator, Qt)
        elapsed = time.perf_counter() - start
        lower, _ = dual_lower_bound(program, weights, multipliers)
        if violation > FEASIBLE:  # its objective bounds nothing: no gap claimed
            info["dual_bound"], lower = lower, -math.inf
        limit = max(LOOSE_GAP, 100 * (self.tol or 0.0))
        if status == cp.OPTIMAL and lower > -math.inf and loose_gap(program, obj, lower, limit):
            # the backend's tolerances are absolute in part: on data far from unit size its
            # "optimal" can be far from the optimum (features times 1e-6: 15 % above it)
            status = cp.OPTIMAL_INACCURATE
            info["backend_status"] = cp.OPTIMAL
            sizes = np.sqrt(np.mean(np.square(program.operator.X_np), axis=0))
            warnings.warn(
                f"CVXPY solver {solver} returned status 'optimal', but the duality gap certified at its point is "
                f"{obj - lower:.3e} (relative {relative_gap(obj, lower):.1e}, more than {limit:.0e}): "
                f"reported as {status!r}. Its tolerances are partly absolute: features far from unit size (root mean "
                f"squares of the design's columns from {float(np.min(sizes)):.2g} to {float(np.max(sizes)):.2g}) are a "
                "likely cause; standardise them, or use solver='ipm'", ConvergenceWarning, stacklevel=3)
        if status != cp.OPTIMAL and "backend_status" not in info:
            limits = (f" (a limit stopped it: max_iter={self.max_iter}, max_time={self.max_time})"
                      if status == cp.USER_LIMIT else "")
            gap = (f"duality gap {obj - lower:.3e} (relative {relative_gap(obj, lower):.1e})"
                   if lower > -math.inf else "no duality gap (the point is not feasible)")
            warnings.warn(f"CVXPY solver {solver} returned status {status!r}{limits}; objective {obj:.10g}, {gap}, "
                          f"relative cone violation {violation:.1e}", ConvergenceWarning,
                          stacklevel=3)  # (the caller of the units wrapper, in_target_units)
        logger.info("CVXPY %s: status %s, objective %.8g, %.2fs", solver, status, obj, elapsed)
        stats = problem.solver_stats
        return Solution(
            weights=weights,
            objective=obj,
            converged=status == cp.OPTIMAL,
            status=status,
            iterations=int(getattr(stats, "num_iters", 0) or 0),
            time=elapsed,
            history=(obj,),
            constraint_violation=program.violation(weights),
            multipliers=multipliers,
            lower_bound=min(lower, obj),
            solver=f"cvxpy-{solver.lower()}",
            info=info,
        )
