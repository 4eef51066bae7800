"""The standard CVXPY path: any installed backend by name, status handling."""

import numpy as np
import pytest

from convexrelu import CVXPYSolver, ConvergenceWarning, SolverError, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.solvers import InteriorPoint, get_solver
from conftest import needs_scs, planted_regression


@pytest.fixture(scope="module")
def program():
    X, y = planted_regression(n=30, seed=4)
    return ThreeLayerReLUProgram(X, y, 10, hidden=2, beta=0.1, random_state=0)


@needs_scs
def test_scs_agrees_with_clarabel(program):
    ref = CVXPYSolver().solve(program)
    scs = get_solver("scs", options={"eps_abs": 1e-9, "eps_rel": 1e-9}).solve(program)
    assert scs.solver == "cvxpy-scs"
    assert scs.objective == pytest.approx(ref.objective, rel=1e-6)


def test_unknown_backend(program):
    with pytest.raises(ValueError, match=r"solver: 'NOPE' is not an installed CVXPY solver; expected one of \["):
        CVXPYSolver("NOPE").solve(program)
    with pytest.raises(ValueError, match="solver: expected one of"):
        get_solver("nope")


def test_options_are_a_dict_that_the_backend_accepts(program):
    """A string had ended in 'dictionary update sequence element...', an unknown or
    mistyped setting in the backend's own TypeError."""
    with pytest.raises(TypeError, match="options: expected None or a dict of the backend's settings by name, got 'x'"):
        CVXPYSolver(options="x")
    for backend, opts in (("CLARABEL", {"bogus": 1}), ("CLARABEL", {"max_iter": "x"}), ("SCS", {"bogus": 1})):
        with pytest.raises(ValueError, match=rf"options: the CVXPY backend {backend} refused the settings \["):
            CVXPYSolver(backend, options=opts).solve(program)


def test_backends_without_second_order_cones_are_refused_by_name(program):
    """OSQP, SCIPY and HIGHS are installed with CVXPY but take no second-order cone: they
    had been accepted by name and failed in the solve with CVXPY's error."""
    import cvxpy as cp

    from convexrelu.solvers.cvxpy_solver import cone_solvers

    capable = cone_solvers()
    assert "CLARABEL" in capable and "SCS" in capable
    for name in ("OSQP", "SCIPY", "HIGHS"):
        if name in cp.installed_solvers():
            assert name not in capable
            with pytest.raises(ValueError, match=rf"solver: '{name.lower()}' cannot solve second-order-cone programs"):
                CVXPYSolver(name.lower()).solve(program)


@needs_scs
def test_inaccurate_warns(program):
    with pytest.warns(ConvergenceWarning, match="optimal_inaccurate"):
        sol = CVXPYSolver("SCS", options={"max_iters": 5}).solve(program)
    assert not sol.converged and sol.status == "optimal_inaccurate"


def test_iteration_limit_returns_the_last_iterate_with_a_warning(program):
    # Clarabel stopped after one iteration: status 'user_limit', its iterate returned (as
    # the other solvers return theirs at max_iter), with a valid lower bound
    ref = CVXPYSolver().solve(program)
    for solver in (CVXPYSolver(max_iter=1), CVXPYSolver(options={"max_iter": 1})):
        with pytest.warns(ConvergenceWarning, match="user_limit"):
            sol = solver.solve(program)
        assert sol.status == "user_limit" and not sol.converged and sol.iterations <= 1
        assert sol.objective > ref.objective and sol.lower_bound <= ref.objective * (1 + 1e-9)


def test_max_iter_and_tol_become_the_backend_options():
    clarabel = CVXPYSolver(max_iter=7, tol=1e-5)._options("CLARABEL")
    assert clarabel == {"max_iter": 7, "tol_gap_abs": 1e-5, "tol_gap_rel": 1e-5, "tol_feas": 1e-5}
    assert CVXPYSolver()._options("CLARABEL") == CVXPYSolver.DEFAULT_CLARABEL_OPTIONS
    assert CVXPYSolver(tol=1e-4)._options("SCS") == {"eps_abs": 1e-4, "eps_rel": 1e-4}
    # explicit options win
    assert CVXPYSolver(max_iter=7, options={"max_iters": 3})._options("SCS") == {"max_iters": 3}
    with pytest.raises(ValueError, match="max_iter, tol: not known for the CVXPY backend HIGHS"):
        CVXPYSolver(max_iter=3)._options("HIGHS")
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="max_iter"):
            CVXPYSolver(max_iter=bad)
    for bad in (0, -1e-3, float("nan"), float("inf"), "abc"):
        with pytest.raises(ValueError, match="tol"):
            CVXPYSolver(tol=bad)


def test_max_time_becomes_the_backend_option():
    assert CVXPYSolver(max_time=2.5)._options("CLARABEL") == {**CVXPYSolver.DEFAULT_CLARABEL_OPTIONS, "time_limit": 2.5}
    assert CVXPYSolver(max_time=2)._options("SCS") == {"time_limit_secs": 2.0}
    assert CVXPYSolver(max_time=2, max_iter=9)._options("OSQP") == {"max_iter": 9, "time_limit": 2.0}
    with pytest.raises(ValueError, match="max_time: not known for the CVXPY backend ECOS"):
        CVXPYSolver(max_time=3)._options("ECOS")
    for bad in (0, -1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError, match="max_time: expected a positive number of seconds"):
            CVXPYSolver(max_time=bad)


def test_max_time_compiles_first_and_solves_the_same(program):
    # with max_time the program is compiled, then solved with the time left: the same
    # optimum, multipliers and bound as the one-call solve
    ref = CVXPYSolver().solve(program)
    sol = CVXPYSolver(max_time=120).solve(program)
    assert sol.status == "optimal" and sol.converged
    assert sol.objective == pytest.approx(ref.objective, rel=1e-7)
    assert sol.lower_bound == pytest.approx(ref.lower_bound, rel=1e-6)
    for a, b in zip(sol.multipliers, ref.multipliers):
        np.testing.assert_allclose(a, b, atol=1e-6 * max(1.0, float(np.abs(b).max())))


def test_max_time_stops_clarabel(program):
    # a limit shorter than one iteration: Clarabel stops at its first check (status
    # 'user_limit') and its iterate is returned, with the limits in the warning. The check
    # usually comes before the first iteration; in one full run of the suite (Clarabel
    # 0.11.1) it came after it (iterations == 1)
    with pytest.warns(ConvergenceWarning, match=r"user_limit.*max_time="):
        sol = CVXPYSolver(max_time=1e-9).solve(program)
    assert sol.status == "user_limit" and not sol.converged and sol.iterations <= 1


@needs_scs
def test_scs_stops_at_max_iter(program):
    with pytest.warns(ConvergenceWarning):
        sol = get_solver("scs", max_iter=5).solve(program)
    assert sol.iterations <= 5 and not sol.converged


def test_solution_record_is_immutable(program):
    sol = CVXPYSolver().solve(program)
    with pytest.raises(ValueError):
        sol.weights[0, 0] = 1.0
    with pytest.raises(AttributeError):
        sol.objective = 0.0  # frozen dataclass
    assert len(sol.multipliers) == 2
    assert all(np.all(m >= 0) for m in sol.multipliers)


def test_solution_record_pickles(program):
    import pickle

    sol = CVXPYSolver().solve(program)
    back = pickle.loads(pickle.dumps(sol))
    assert back.objective == sol.objective and np.array_equal(back.weights, sol.weights)
    assert back.info["cvxpy_objective"] == sol.info["cvxpy_objective"]


def _clarabel_failing_at_tightened_tolerances(monkeypatch, effect):
    """Patch ``cvxpy.Problem.solve``: a call with the tightened Clarabel tolerances runs
    ``effect(problem)`` instead of the backend; other calls run as they are. Returns the
    list of the option dicts each call got."""
    import cvxpy as cp

    original = cp.Problem.solve
    calls = []

    def solve(self, *args, **kwargs):
        calls.append(dict(kwargs))
        if all(kwargs.get(k) == v for k, v in CVXPYSolver.DEFAULT_CLARABEL_OPTIONS.items()):
            return effect(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", solve)
    return calls


def _fail(problem):
    import cvxpy as cp

    raise cp.error.SolverError("Solver 'CLARABEL' failed (insufficient progress)")


def test_clarabel_failing_at_tightened_tolerances_solves_again_at_its_defaults(program, monkeypatch):
    ref = CVXPYSolver().solve(program)
    calls = _clarabel_failing_at_tightened_tolerances(monkeypatch, _fail)
    sol = CVXPYSolver().solve(program)
    assert len(calls) == 2 and "tol_feas" not in calls[1]  # the second at Clarabel's defaults
    assert sol.converged and sol.status == "optimal"
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)


def test_clarabel_failing_with_the_users_settings_raises(program, monkeypatch):
    calls = _clarabel_failing_at_tightened_tolerances(monkeypatch, _fail)
    with pytest.raises(SolverError, match="CVXPY solver CLARABEL failed: .*insufficient progress"):
        CVXPYSolver(options=dict(CVXPYSolver.DEFAULT_CLARABEL_OPTIONS)).solve(program)
    assert len(calls) == 1  # no second solve: the settings were the user's


def test_clarabel_inaccurate_at_tightened_tolerances_solves_again_at_its_defaults(program, monkeypatch):
    import cvxpy as cp

    def inaccurate(problem):
        problem._status = cp.OPTIMAL_INACCURATE

    calls = _clarabel_failing_at_tightened_tolerances(monkeypatch, inaccurate)
    sol = CVXPYSolver().solve(program)
    assert len(calls) == 2 and "tol_feas" not in calls[1]
    assert sol.converged and sol.status == "optimal"


def test_an_optimal_status_with_a_large_certified_gap_is_reported_inaccurate():
    """Features times 1e-6: Clarabel said 'optimal' at 2.5127, 15 % above the optimum
    (the interior point's 2.17935), its own certified gap 41 % (above LOOSE_GAP, 1e-2:
    Clarabel's exponential cones alone can leave 1e-4). The solve now says so
    (status 'optimal_inaccurate', not converged, a warning naming the features' scale);
    at unit scale the same program is certified optimal."""
    from convexrelu import TwoLayerReLUProgram
    from convexrelu.solvers import InteriorPoint
    from convexrelu.solvers.base import LOOSE_GAP

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(40)
    tiny = TwoLayerReLUProgram(X * 1e-6, y, 8, beta=1e-6, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"returned status 'optimal', but the duality gap certified at its "
                                                r"point is .*root mean squares of the design's columns from 8\.4e-07"):
        sol = CVXPYSolver().solve(tiny)
    assert sol.status == "optimal_inaccurate" and not sol.converged and sol.info["backend_status"] == "optimal"
    assert sol.relative_gap > LOOSE_GAP
    assert sol.objective > InteriorPoint().solve(tiny).objective * (1 + 1e-2)
    unit = TwoLayerReLUProgram(X, y, 8, beta=1.0, random_state=0)
    sol = CVXPYSolver().solve(unit)
    assert sol.status == "optimal" and sol.converged and sol.relative_gap <= 1e-4


def _sine_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_a_loose_optimal_point_is_made_feasible(cls):
    """With tol=1e-2 Clarabel's "optimal" point lay outside the cones (relative violation
    1.8e-2 and 5.4e-2): its network predicted otherwise than the program and no bound was
    claimed. It is now repaired, as stopped points are: the network reproduces it."""
    X, y = _sine_data(60, 4)
    kw = dict(hidden=2) if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, y, 10, beta=1e-3, random_state=0, **kw)
    sol = CVXPYSolver(tol=1e-2).solve(prog)
    assert sol.status == "optimal" and sol.info["violation_before_repair"] > 1e-6
    assert prog.violation(sol.weights) <= 1e-9 * np.abs(np.concatenate(
        [np.ravel(c) for c in prog.operator.constraints(prog.as_tensor(sol.weights))])).max()
    net = prog.recover(sol.weights)
    np.testing.assert_allclose(net.predict(X), prog.predict(sol.weights), atol=1e-10)
    assert net.objective(X, y, beta=prog.beta) == pytest.approx(sol.objective, rel=1e-10)
    assert -np.inf < sol.lower_bound <= InteriorPoint(tol=1e-9).solve(prog).objective


def test_an_optimum_at_zero_keeps_its_certificate():
    """beta = 10, below zero_threshold (27.4) but where the optimum is the zero network:
    Clarabel's entries of 1e-11 failed their cone rows by 2.7e-12, relative to their own
    size, so the (exact) bound was dropped. The zero network is returned instead."""
    X, y = _sine_data(40, 3)
    prog = ThreeLayerReLUProgram(X, y, 8, beta=10.0, random_state=0, hidden=2)
    assert prog.beta < prog.zero_threshold()
    sol = CVXPYSolver().solve(prog)
    zero = prog.objective(np.zeros(prog.shape))
    assert sol.info["zeroed"] and not np.any(sol.weights) and sol.objective == zero
    assert sol.lower_bound == pytest.approx(zero, rel=1e-8)


def test_init_is_checked_though_ignored(program):
    with pytest.raises(ValueError, match=r"init: expected weights of the program's shape"):
        CVXPYSolver().solve(program, init=np.zeros((2, 3)))
