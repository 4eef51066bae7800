"""Solver interface and the immutable solution record.

Solvers hold hyperparameters only; data arrives in ``solve(program, init)``
(the program of :mod:`convexrelu.programs`), which returns a :class:`Solution`.
"""

from __future__ import annotations

import abc
import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .._validation import check_max_time, relative_gap

__all__ = ["Solution", "Solver", "SolverError", "ConvergenceWarning", "frozen", "init_weights", "time_left", "LOOSE_GAP",
           "MIN_TIME_LIMIT", "loose_gap", "warn_loose_gap"]

#: Seconds a solve (or a training) gets when its caller's time limit is already spent:
#: it stops at its first check, with its warning.
MIN_TIME_LIMIT = 1e-3


#: A solve that met its stopping rule but certifies a relative duality gap above this
#: warns that its objective may be that far above the optimum. Converged solves usually
#: certify 1e-9 to 2e-3 (the bound of a first-order point is loose to first order in its
#: error; CVXPY's exponential cones are accurate to about 1e-4).
LOOSE_GAP = 1e-2


def loose_gap(program, objective: float, lower: float, limit: float = LOOSE_GAP) -> bool:
    """Whether a point of ``program`` that met a solver's stopping rule certifies a
    relative duality gap above ``limit`` (:data:`LOOSE_GAP`). Never at ``beta = 0``:
    there the dual point of the bound is scaled to zero (no atom is below beta), and the
    bound says nothing of the point's accuracy."""
    return program.beta > 0 and relative_gap(objective, lower) > limit


def warn_loose_gap(program, label: str, residuals: str, objective: float, lower: float, advice: str,
                   stacklevel: int) -> bool:
    """Whether a solve that met its stopping rule (on its residuals, described by
    ``residuals``) certifies a loose gap (:func:`loose_gap`), with a
    :class:`ConvergenceWarning` when it does: its objective may lie that far above the
    optimum, and the caller reports it as ``"optimal_inaccurate"``, not converged (as CVXPY's
    "optimal" with such a gap is). ``stacklevel`` as the caller would give it to
    ``warnings.warn``."""
    if not loose_gap(program, objective, lower):
        return False
    rel = relative_gap(objective, lower)
    warnings.warn(
        f"{label}: met its stopping rule ({residuals}), but the duality gap certified at its point is "
        f"{objective - lower:.3e} (relative {rel:.1e}): the objective {objective:.10g} may lie up to that far above "
        f"the optimum; reported as 'optimal_inaccurate'; {advice}",
        ConvergenceWarning, stacklevel=stacklevel + 1)
    return True


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a ``time.perf_counter()`` value), at least
    :data:`MIN_TIME_LIMIT`: the limit a caller with a deadline gives what it runs."""
    return max(deadline - time.perf_counter(), MIN_TIME_LIMIT)


class SolverError(RuntimeError):
    """A solve failed: infeasible, unbounded, diverged or the backend gave up."""


class ConvergenceWarning(UserWarning):
    """A solve stopped before reaching its tolerance (the message gives its residuals)."""


def frozen(a, copy: bool = True) -> np.ndarray:
    """A read-only float64 array of ``a``: ``a`` itself where it already is one (nothing
    is copied: at scale a solution's multipliers take gigabytes), else a copy.

    An array whose owner made it read-only is taken as final by this convention; a
    writable one is copied, so that changing it later does not change the record. With
    ``copy=False`` the caller hands over a float64 array that nothing else will write
    (e.g. one it has just made), and it is marked read-only in place."""
    if isinstance(a, np.ndarray) and a.dtype == np.float64 and (not a.flags.writeable or not copy):
        a.setflags(write=False)
        return a
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


class ReadOnlyInfo(dict):
    """A dict that refuses changes: :attr:`Solution.info`. It reads, compares, copies
    (``dict(info)`` gives a writable one) and pickles as a dict does. The dicts it holds,
    directly or in tuples and lists (e.g. ``output_parts``), are read-only too (lists
    become tuples)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _read_only(value))

    def _refuse(self, *args, **kwargs):
        raise TypeError("Solution.info is read-only (a record of the solve); copy it with dict(info) to change it")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (type(self), (dict(self),))


def _read_only(value):
    """``value`` with the dicts in it (nested in tuples and lists) as :class:`ReadOnlyInfo`."""
    if isinstance(value, dict):
        return value if isinstance(value, ReadOnlyInfo) else ReadOnlyInfo(value)
    if isinstance(value, (tuple, list)):
        return tuple(_read_only(v) for v in value)
    return value


@dataclass(frozen=True)
class Solution:
    """Result of a convex solve.

    Attributes
    ----------
    weights : array (d, B)
        The variable ``Q`` of the program (one column per block).
    objective : float
        ``l(A(Q), Y) + beta R(Q)`` at ``weights``.
    converged : bool
        Whether the solver met its tolerance.
    status : str
        Solver status ("optimal", "max_iter", ...).
    iterations : int
        Where a solver solved independent outputs apart (:mod:`._presolve`), the sum
        over them (each at most the solver's ``max_iter``).
    time : float
        Wall time of the solve, seconds.
    history : tuple of float
        The objective ``l + beta R`` along the solve: per iteration (FISTA, the augmented
        Lagrangian's inner iterations, the interior point's Newton iterations), per
        residual check (ADMM: every ``balance_every`` iterations), or the final value
        alone (CVXPY); possibly empty.
    constraint_violation : float
        Largest violation of the cone constraints at ``weights``.
    multipliers : tuple of arrays
        Multipliers of the cone constraints (shapes ``operator.constraint_shapes``),
        empty where the solver has none.
    lower_bound : float
        A certified lower bound on the program's optimum (``-inf`` if none).
    solver : str
    info : mapping
        Anything else the solver reports (residuals, backend status, ...), read-only
        (:class:`ReadOnlyInfo`).

    ``weights`` and ``multipliers`` are stored as read-only float64 arrays: copies of the
    arrays given, except those that already are read-only float64 (:func:`frozen`).
    """

    weights: np.ndarray
    objective: float
    converged: bool
    status: str
    iterations: int = 0
    time: float = 0.0
    history: tuple = ()
    constraint_violation: float = 0.0
    multipliers: tuple = ()
    lower_bound: float = -math.inf
    solver: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # read-only float64 arrays (:func:`frozen`: those that already are, kept as they are)
        object.__setattr__(self, "weights", frozen(self.weights))
        object.__setattr__(self, "history", tuple(float(h) for h in self.history))
        object.__setattr__(self, "multipliers", tuple(frozen(m) for m in self.multipliers))
        object.__setattr__(self, "info", ReadOnlyInfo(self.info))  # a read-only copy

    @property
    def gap(self) -> float:
        """``objective - lower_bound`` (>= 0; ``inf`` without a bound)."""
        return self.objective - self.lower_bound

    @property
    def relative_gap(self) -> float:
        """``gap / |objective|`` (:func:`convexrelu._validation.relative_gap`)."""
        return relative_gap(self.objective, self.lower_bound)


class Solver(abc.ABC):
    """A convex solver: hyperparameters in ``__init__``, data in :meth:`solve`."""

    name: str = ""

    @abc.abstractmethod
    def solve(self, program, init=None) -> Solution:
        """Solve ``program`` (a :class:`~convexrelu.programs.ConvexProgram`).

        Parameters
        ----------
        program : ConvexProgram
        init : array (d, B), Solution or None
            Warm start, where the solver can use one.
        """

    def with_max_time(self, seconds: float) -> "Solver":
        """A copy of this solver whose wall-time limit is ``seconds``, or its own
        ``max_time`` where that is smaller; this solver is left as it is.

        It is how a caller with a time budget (an estimator's ``max_time``, a pattern
        strategy, the solve of independent parts in turn) passes the time left to a
        solver it did not make. A solver has a time limit when it has a ``max_time``
        attribute (None: no limit) that :meth:`solve` keeps to.

        Raises
        ------
        ValueError
            When ``seconds`` is not a positive number, or the solver has no ``max_time``
            (a time limit given to it would be silently ignored).
        """
        if not hasattr(self, "max_time"):
            raise ValueError(
                f"max_time: the solver {type(self).__name__} has no time limit (no max_time attribute); "
                "give it one, or leave max_time None"
            )
        limited = copy.copy(self)
        limited.max_time = smaller_limit(self.max_time, seconds)
        return limited


def check_program(program) -> None:
    """A TypeError naming ``program`` unless it is a :class:`~convexrelu.programs.ConvexProgram`
    (every solver's ``solve`` checks it first: another object had failed deep inside with
    an AttributeError), a ValueError where its device holds no data (``"meta"``: the
    operators take any torch device, the solvers need numbers)."""
    from ..programs import ConvexProgram

    if not isinstance(program, ConvexProgram):
        raise TypeError(f"program: expected a ConvexProgram (TwoLayerReLUProgram, GatedReLUProgram, "
                        f"ThreeLayerReLUProgram), got {type(program).__name__}")
    if program.device.type == "meta":
        raise ValueError("program: on the 'meta' device, which holds no data; move it to a device that computes, "
                         "e.g. program.to(device='cpu')")


def init_weights(program, init):
    """The weights of a warm start ``init`` (an array or tensor of shape (d, B), or a
    :class:`Solution` of the same program) as a new tensor of the program's dtype and
    device; ValueError naming ``init`` when it has another shape, is not numeric or has
    NaN or infinite entries."""
    weights = init.weights if isinstance(init, Solution) else init
    try:
        if hasattr(weights, "detach"):  # a tensor: copied, never shared with the caller
            Q = program.as_tensor(weights.detach().clone())
        else:
            Q = program.as_tensor(np.array(weights, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        shape = getattr(weights, "shape", None)
        got = f"shape {tuple(shape)}" if shape is not None else f"a {type(init).__name__}"
        raise ValueError(f"init: expected weights of the program's shape {program.shape} (an array, a tensor or a "
                         f"Solution of the same program), got {got} ({exc})") from exc
    if not bool(Q.isfinite().all()):
        raise ValueError("init: expected finite weights, got NaN or infinite entries")
    return Q


def smaller_limit(own: float | None, seconds: float) -> float:
    """The smaller of a solver's own time limit ``own`` (None: none) and a caller's
    ``seconds`` (a ValueError unless a positive number)."""
    seconds = check_max_time(seconds)
    if seconds is None:
        raise ValueError("max_time: expected a positive number of seconds, got None")
    return seconds if own is None else min(float(own), seconds)
