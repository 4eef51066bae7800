"""The standard CVXPY path: any installed backend by name, status handling."""

import numpy as np
import pytest

from convexrelu import CVXPYSolver, ConvergenceWarning, SolverError, ThreeLayerReLUProgram
from convexrelu.solvers import get_solver
from conftest import planted_regression


@pytest.fixture(scope="module")
def program():
    X, y = planted_regression(n=30, seed=4)
    return ThreeLayerReLUProgram(X, y, 10, hidden=2, beta=0.1, random_state=0)


def test_scs_agrees_with_clarabel(program):
    ref = CVXPYSolver().solve(program)
    scs = get_solver("scs", options={"eps_abs": 1e-9, "eps_rel": 1e-9}).solve(program)
    assert scs.solver == "cvxpy-scs"
    assert scs.objective == pytest.approx(ref.objective, rel=1e-6)


def test_unknown_backend(program):
    with pytest.raises(ValueError, match="solver: expected one of the installed CVXPY solvers"):
        CVXPYSolver("NOPE").solve(program)
    with pytest.raises(ValueError, match="solver: expected one of"):
        get_solver("nope")


def test_inaccurate_warns(program):
    with pytest.warns(ConvergenceWarning, match="optimal_inaccurate"):
        sol = CVXPYSolver("SCS", options={"max_iters": 5}).solve(program)
    assert not sol.converged and sol.status == "optimal_inaccurate"


def test_failed_status_raises(program):
    # Clarabel stopped after one iteration returns no usable solution
    with pytest.raises(SolverError, match="CLARABEL"):
        CVXPYSolver(options={"max_iter": 1}).solve(program)


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
