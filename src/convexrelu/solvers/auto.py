"""``solver="auto"``: CVXPY for small programs, the first-order path otherwise.

The choice uses only the program's size and ``program.has_constraints``:

- ``n * B`` at most a threshold (``n`` samples, ``B`` blocks): :class:`.CVXPYSolver`;
- otherwise :class:`.FISTA` for unconstrained programs (gated ReLU) and
  :class:`.AugmentedLagrangian` for cone-constrained ones (two-layer ReLU, C3).

The thresholds are where the first-order path stops being slower, measured on a
2-core machine (``benchmarks/RESULTS.md``, section Solvers): the gated program
(n = 500, 100 patterns, ``n * B = 5e4``) takes about as long with FISTA as with
Clarabel; the cone-constrained programs at ``n * B = 1e5`` (two-layer ReLU, n = 500,
100 patterns) take about as long with the augmented Lagrangian as with Clarabel, and
Clarabel's time grows much faster beyond (three-layer n = 1000, 200 patterns does not
finish in 15 minutes).
"""

from __future__ import annotations

import inspect

from .auglag import AugmentedLagrangian
from .base import Solution, Solver
from .cvxpy_solver import CVXPYSolver
from .fista import FISTA

__all__ = ["AutoSolver"]

#: Largest ``n * B`` solved by CVXPY, unconstrained programs.
CVXPY_MAX_SIZE_UNCONSTRAINED = 50_000
#: Largest ``n * B`` solved by CVXPY, cone-constrained programs.
CVXPY_MAX_SIZE_CONSTRAINED = 100_000


def _accepted(cls, hyperparameters: dict) -> dict:
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in hyperparameters.items() if k in names}


class AutoSolver(Solver):
    """Pick a solver from the program's size and constraints.

    Parameters
    ----------
    cvxpy_max_size : int or None
        Programs with ``n_samples * n_blocks`` at most this go to CVXPY; None uses
        :data:`CVXPY_MAX_SIZE_UNCONSTRAINED` or :data:`CVXPY_MAX_SIZE_CONSTRAINED`.
    **hyperparameters
        Passed to the chosen solver, each to the solvers whose constructor accepts it
        (e.g. ``tol``, ``max_iter``, ``verbose``); others are ignored by that solver.
    """

    name = "auto"

    def __init__(self, cvxpy_max_size: int | None = None, **hyperparameters):
        self.cvxpy_max_size = None if cvxpy_max_size is None else int(cvxpy_max_size)
        self.hyperparameters = dict(hyperparameters)
        unknown = set(self.hyperparameters) - set().union(
            *(set(inspect.signature(c.__init__).parameters) for c in (CVXPYSolver, FISTA, AugmentedLagrangian))
        )
        if unknown:
            raise TypeError(f"AutoSolver: unknown hyperparameters {sorted(unknown)}")

    def choose(self, program) -> Solver:
        """The solver :meth:`solve` uses for ``program``."""
        n, B = program.operator.n_samples, program.operator.n_blocks
        limit = self.cvxpy_max_size
        if limit is None:
            limit = CVXPY_MAX_SIZE_CONSTRAINED if program.has_constraints else CVXPY_MAX_SIZE_UNCONSTRAINED
        if n * B <= limit:
            cls = CVXPYSolver
        elif program.has_constraints:
            cls = AugmentedLagrangian
        else:
            cls = FISTA
        return cls(**_accepted(cls, self.hyperparameters))

    def solve(self, program, init=None) -> Solution:
        return self.choose(program).solve(program, init)
