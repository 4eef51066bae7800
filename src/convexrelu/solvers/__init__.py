"""Solvers of the convex programs: CVXPY (standard) and first-order (fast).

:func:`get_solver` maps a name to a solver instance; every solver registers itself in
``SOLVERS`` (name -> class):

- ``"cvxpy"``: :class:`CVXPYSolver` (interior point through CVXPY, Clarabel by default);
- ``"fista"``: :class:`FISTA`, accelerated proximal gradient for unconstrained programs;
- ``"auglag"``: :class:`AugmentedLagrangian`, method of multipliers with inner FISTA
  for cone-constrained programs;
- ``"admm"``: :class:`ADMM`, splitting with a factored linear system, every program
  (fast on the gated program; on the cone-constrained ones, slower than the interior
  point at n=500: ``benchmarks/RESULTS.md``, section Solvers);
- ``"ipm"``: :class:`InteriorPoint`, primal-dual interior point with structured Newton
  systems, every program (fastest and most accurate for n up to a few thousand);
- ``"auto"``: :class:`AutoSolver`, the interior point where its Newton systems fit, else
  CVXPY for small programs, else the augmented Lagrangian (cone-constrained programs) or
  FISTA (gated ones).
"""

from __future__ import annotations

from .admm import ADMM
from .auglag import AugmentedLagrangian
from .auto import AutoSolver
from .base import ConvergenceWarning, Solution, Solver, SolverError
from .cvxpy_solver import CVXPYSolver
from .fista import FISTA
from .ipm import InteriorPoint

SOLVERS: dict[str, type] = {
    "cvxpy": CVXPYSolver,
    "fista": FISTA,
    "auglag": AugmentedLagrangian,
    "admm": ADMM,
    "ipm": InteriorPoint,
    "auto": AutoSolver,
}

__all__ = [
    "Solution", "Solver", "SolverError", "ConvergenceWarning", "CVXPYSolver", "FISTA", "AugmentedLagrangian",
    "ADMM", "InteriorPoint", "AutoSolver", "SOLVERS", "get_solver",
]


def get_solver(name: str | Solver = "cvxpy", **hyperparameters) -> Solver:
    """A solver from an instance or a name.

    Names: the keys of ``SOLVERS`` ("cvxpy", "fista", "auglag", "admm", "ipm", "auto"), or an installed
    CVXPY backend name ("clarabel", "scs", "mosek", ...) which gives
    ``CVXPYSolver(solver=name)``.
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
