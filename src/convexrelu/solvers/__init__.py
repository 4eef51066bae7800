"""Solvers of the convex programs: CVXPY (standard) and first-order (fast).

:func:`get_solver` maps a name to a solver instance; every solver registers itself in
``SOLVERS`` (name -> class).
"""

from __future__ import annotations

from .base import ConvergenceWarning, Solution, Solver, SolverError
from .cvxpy_solver import CVXPYSolver

SOLVERS: dict[str, type] = {"cvxpy": CVXPYSolver}

__all__ = ["Solution", "Solver", "SolverError", "ConvergenceWarning", "CVXPYSolver", "SOLVERS", "get_solver"]


def get_solver(name: str | Solver = "cvxpy", **hyperparameters) -> Solver:
    """A solver from an instance or a name.

    Names: the keys of ``SOLVERS`` ("cvxpy", ...), or an installed CVXPY backend name
    ("clarabel", "scs", "mosek", ...) which gives ``CVXPYSolver(solver=name)``.
    """
    if isinstance(name, Solver):
        return name
    if not isinstance(name, str):
        raise TypeError(f"solver: expected a solver name or a Solver instance, got {name!r}")
    key = name.lower()
    if key in SOLVERS:
        return SOLVERS[key](**hyperparameters)
    import cvxpy as cp

    if name.upper() in cp.installed_solvers():
        return CVXPYSolver(solver=name.upper(), **hyperparameters)
    raise ValueError(
        f"solver: expected one of {sorted(SOLVERS)} or an installed CVXPY solver {cp.installed_solvers()}, got {name!r}"
    )
