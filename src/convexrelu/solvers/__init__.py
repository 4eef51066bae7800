"""Solvers of the convex programs: CVXPY (standard) and first-order (fast)."""

from .base import ConvergenceWarning, Solution, Solver, SolverError
from .cvxpy_solver import CVXPYSolver

__all__ = ["Solution", "Solver", "SolverError", "ConvergenceWarning", "CVXPYSolver"]
