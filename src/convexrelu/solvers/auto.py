"""``solver="auto"``: the interior-point method where it fits, otherwise CVXPY for small
programs and the first-order path for large ones.

The choice uses only the program's sizes, ``beta``, ``program.has_constraints``, the rank
of its loss's Hessian, whether its loss separates over the outputs, and its device:

- ``beta > 0`` and the interior-point Newton systems fit (:func:`ipm_fits`; ``n``
  samples, ``C`` outputs, ``r = loss.hessian_rank(C)`` columns of the loss's Hessian
  factor (``C``; ``C - 1`` for the softmax loss), ``B`` blocks, ``d`` features; with a
  loss separable over several outputs, the squared loss, the solvers run one output at
  a time (:mod:`._presolve`), and ``B`` and ``r`` are those of the largest output, its
  blocks and 1. On the CPU the ``n B (d + 1)`` entries of the low-rank factor of its Newton matrix at most
  :data:`IPM_MAX_ENTRIES`, and their number times the order of the matrix it factors
  every iteration, ``min(n r, B (d + 1))``, at most :data:`IPM_MAX_WORK`; on a CUDA
  device that order at most :data:`IPM_MAX_ROWS_CUDA` and the memory of both within the
  device's free memory): :class:`.InteriorPoint`;
- otherwise ``n * B`` at most a threshold: :class:`.CVXPYSolver`;
- otherwise :class:`.FISTA` for unconstrained programs (gated ReLU; at its default
  ``preconditioner="auto"``, in its low-rank metric where ``n`` is large against the
  metric's rank) and :class:`.AugmentedLagrangian` for cone-constrained ones (two-layer
  ReLU, C3).

Measured on a 2-core machine (``benchmarks/RESULTS.md``, sections Solvers and Interior
point: robustness): the interior-point method reaches the CVXPY (Clarabel) optimum to
1e-7 on every program and loss tried (n = 300 to 500), a median 5.38 times faster than
Clarabel over 27 programs (1.42x to 276.66x; Clarabel failed on 9 of them), 54.64 times
on the two-layer ReLU and 20.20 times on the three-layer n = 500 benchmarks; its cost per
iteration grows as ``n^2 B d`` (one Woodbury matrix, of order ``n r``), hence the
limits. On an NVIDIA H200 (section "Scale: interior point (device: cuda)") it solved the
three-layer program with n = 20,000, d = 50, 500 patterns to a certified relative gap of
1.0e-07 in 112.5 s (137 iterations of 762 ms, 38.74 GB of device memory), while the
augmented Lagrangian had not converged after 45 s at n = 20,000 (section "Solvers
(device: cuda)") - hence the larger device limits. The CVXPY threshold is where the
first-order path stops being slower than Clarabel (the gated program, n = 500, 100 patterns, ``n * B = 5e4``; the
cone-constrained programs at ``n * B = 1e5``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import time
import warnings

import torch

from .auglag import AugmentedLagrangian
from ._presolve import outputs_apart
from .._validation import check_bool, check_count, check_max_time
from .base import (
    MIN_TIME_LIMIT, ConvergenceWarning, Solution, Solver, SolverError, check_program, loose_gap, smaller_limit,
    time_left,
)
from .cvxpy_solver import CVXPYSolver
from .fista import FISTA
from .ipm import InteriorPoint

__all__ = ["AutoSolver", "ipm_fits", "newton_size"]

logger = logging.getLogger(__name__)

#: Largest ``n * B * (d + 1)`` (entries of the low-rank factor ``U`` of the Newton matrix)
#: solved by the interior-point method on the CPU: about 26 bytes each (measured: 1.8 GB
#: over the data at n = 30,000, 188 blocks, d = 11, 6.8e7 entries).
IPM_MAX_ENTRIES = 100_000_000
#: Largest ``n B (d + 1) min(n r, B (d + 1))`` (about the flops of one Newton matrix:
#: the Woodbury matrix, or the Newton matrix itself when it has fewer unknowns than
#: ``n r``) solved by it on the CPU. Measured on 2 cores: 1.1e12 took 9.7 s per iteration
#: (Woodbury, n = 8,000, 396 blocks, d = 41), 5.2e11 2.2 s (dense, n = 8,000, d = 21),
#: 1.7e11 0.64 s (dense, logistic loss, n = 7,500, 400 blocks, d = 11). The solves of
#: RESULTS.md, "Many samples, few patterns", took 51 to 69 iterations, where the augmented
#: Lagrangian had not converged in two minutes.
IPM_MAX_WORK = 5e11
#: Largest ``min(n r, B (d + 1))`` solved by it on a CUDA device.
IPM_MAX_ROWS_CUDA = 20_000
#: Device memory of the interior-point method in bytes per entry of ``n B (d + 1)``
#: (measured on an H200: 12.6 at n = 10,000, 13.7 at n = 20,000; with a margin).
IPM_DEVICE_BYTES_PER_ENTRY = 16.0
#: Device memory in bytes per entry of the matrix factored, ``order^2``: up to four such
#: float64 matrices live at once (the dense path's ``U U^T``, the matrix, its factor and
#: the previous factor).
IPM_DEVICE_BYTES_PER_ORDER2 = 32.0

#: Largest ``n * B`` solved by CVXPY, unconstrained programs.
CVXPY_MAX_SIZE_UNCONSTRAINED = 50_000
#: Largest ``n * B`` solved by CVXPY, cone-constrained programs.
CVXPY_MAX_SIZE_CONSTRAINED = 100_000


def newton_size(samples: int, blocks: int, features: int, rank: int = 1) -> tuple[int, int]:
    """``(entries, order)`` of the interior point's Newton systems for ``samples`` rows of
    ``X``, ``blocks`` blocks, ``features`` columns of ``X`` and a loss whose Hessian factor
    has ``rank`` columns per sample (:meth:`Loss.hessian_rank`): the ``samples * blocks *
    (features + 1)`` entries of the constant part of their low-rank factor (the loss's
    factor mixes it, whatever its rank: :class:`.ipm._NewtonSystem`), and the order of the
    matrix factored every iteration, ``min(samples * rank, blocks * (features + 1))`` (the
    Woodbury matrix, or the Newton matrix itself when it has fewer unknowns)."""
    unknowns = blocks * (features + 1)
    return samples * unknowns, min(samples * rank, unknowns)


def ipm_fits(samples: int, blocks: int, features: int, device="cpu", free_bytes: float | None = None,
             rank: int = 1) -> bool:
    """Whether the interior-point method takes a program with ``samples`` rows of ``X``,
    ``blocks`` blocks, ``features`` columns of ``X`` and a loss Hessian factor of ``rank``
    columns per sample, on ``device``.

    With ``entries, order = newton_size(samples, blocks, features, rank)``, CPU (and any
    device but CUDA): ``entries <= IPM_MAX_ENTRIES`` and ``entries * order <=
    IPM_MAX_WORK``. CUDA: ``order <= IPM_MAX_ROWS_CUDA`` and
    ``IPM_DEVICE_BYTES_PER_ENTRY * entries + IPM_DEVICE_BYTES_PER_ORDER2 * order^2`` at
    most 80 % of ``free_bytes`` (the device's free memory, ``torch.cuda.mem_get_info``,
    when None).
    """
    entries, order = newton_size(samples, blocks, features, rank)
    device = torch.device(device)
    if device.type != "cuda":
        return entries <= IPM_MAX_ENTRIES and entries * order <= IPM_MAX_WORK
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    need = IPM_DEVICE_BYTES_PER_ENTRY * entries + IPM_DEVICE_BYTES_PER_ORDER2 * order**2
    return order <= IPM_MAX_ROWS_CUDA and need <= 0.8 * free_bytes


def _largest_part(program) -> tuple[int, int]:
    """``(blocks, rank)`` of the largest program the solvers run on: with a loss separable
    over several outputs each output is solved apart (:func:`._presolve.outputs_apart`),
    the blocks of the output with the most and one column of the loss's Hessian factor;
    otherwise the whole program's blocks and ``loss.hessian_rank(C)``."""
    op = program.operator
    if outputs_apart(program):
        return int(op.blocks_per_output().max()), program.loss.hessian_rank(1)
    return op.n_blocks, program.loss.hessian_rank(op.n_outputs)


def _accepted(cls, hyperparameters: dict) -> dict:
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in hyperparameters.items() if k in names}


#: The solvers :class:`AutoSolver` chooses from.
_CHOICES = (CVXPYSolver, FISTA, AugmentedLagrangian, InteriorPoint)


class AutoSolver(Solver):
    """Pick a solver from the program's size and constraints.

    Parameters
    ----------
    cvxpy_max_size : int or None
        Programs that the interior-point method does not take, with
        ``n_samples * n_blocks`` at most this, go to CVXPY; None uses
        :data:`CVXPY_MAX_SIZE_UNCONSTRAINED` or :data:`CVXPY_MAX_SIZE_CONSTRAINED`.
    ipm : bool
        Whether the interior-point method may be chosen (False: the previous rule, CVXPY
        or the first-order solvers).
    **hyperparameters
        Passed to the chosen solver, each to the solvers whose constructor accepts it
        (e.g. ``tol``, ``max_iter``, ``verbose``); others are ignored by that solver.
    """

    name = "auto"

    def __init__(self, cvxpy_max_size: int | None = None, ipm: bool = True, **hyperparameters):
        self.cvxpy_max_size = check_count(cvxpy_max_size, "cvxpy_max_size", 0, none_ok=True)
        self.ipm = check_bool(ipm, "ipm")
        self.hyperparameters = dict(hyperparameters)
        if "max_time" in self.hyperparameters:
            self.hyperparameters["max_time"] = check_max_time(self.hyperparameters["max_time"])
        unknown = set(self.hyperparameters) - set().union(
            *(set(inspect.signature(c.__init__).parameters) for c in _CHOICES))
        if unknown:
            raise TypeError(f"AutoSolver: unknown hyperparameters {sorted(unknown)}")
        # checked here, not only once a solver is chosen: every solver it may choose is
        # built once with the settings it accepts (its constructor names a bad one)
        for cls in _CHOICES:
            try:
                cls(**_accepted(cls, self.hyperparameters))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"AutoSolver ({cls.__name__}): {exc}") from exc

    def with_max_time(self, seconds: float) -> "AutoSolver":
        """A copy whose chosen solver gets the wall-time limit ``seconds`` (or the
        ``max_time`` among this one's hyperparameters where that is smaller)."""
        limited = copy.copy(self)
        limited.hyperparameters = {**self.hyperparameters,
                                   "max_time": smaller_limit(self.hyperparameters.get("max_time"), seconds)}
        return limited

    def _cvxpy_fits(self, program) -> bool:
        """Whether ``program`` is small enough for CVXPY (``n_samples * n_blocks`` at most
        ``cvxpy_max_size`` or its default)."""
        limit = self.cvxpy_max_size
        if limit is None:
            limit = CVXPY_MAX_SIZE_CONSTRAINED if program.has_constraints else CVXPY_MAX_SIZE_UNCONSTRAINED
        return program.operator.n_samples * program.operator.n_blocks <= limit

    def choose(self, program) -> Solver:
        """The solver :meth:`solve` uses first for ``program``."""
        op = program.operator
        n = op.n_samples
        B, rank = _largest_part(program)
        if self.ipm and program.beta > 0 and ipm_fits(n, B, op.n_features, op.device, rank=rank):
            cls = InteriorPoint
        elif self._cvxpy_fits(program):
            cls = CVXPYSolver
        elif program.has_constraints:
            cls = AugmentedLagrangian
        else:
            cls = FISTA
        return cls(**_accepted(cls, self.hyperparameters))

    def solve(self, program, init=None) -> Solution:
        check_program(program)
        solver = self.choose(program)
        op = program.operator
        blocks, rank = _largest_part(program)
        entries, order = newton_size(op.n_samples, blocks, op.n_features, rank)
        logger.info("auto: %s for %d samples x %d outputs, %d blocks, %d features (%.1e entries in the interior "
                    "point's Newton systems, order %d%s)%s", type(solver).__name__, op.n_samples, op.n_outputs,
                    op.n_blocks, op.n_features, entries, order,
                    f"; {op.n_outputs} independent outputs, at most {blocks} blocks each" if outputs_apart(program)
                    else "",
                    "; a first-order solve of this size may take long: give max_time to bound it"
                    if isinstance(solver, (AugmentedLagrangian, FISTA)) and getattr(solver, "max_time", None) is None
                    else "")
        if not (isinstance(solver, InteriorPoint) and self._cvxpy_fits(program)):
            return solver.solve(program, init)
        return self._with_fallback(solver, program, init)

    def _with_fallback(self, solver, program, init) -> Solution:
        """The interior point's solve; where it did not converge or certifies a loose gap
        (:func:`.base.loose_gap`: on separable classification data at beta = 1e-4 it
        stalled 77 % above the optimum), CVXPY's too, in the time left: the solution of
        the smaller objective, with the larger of the two certified bounds, and its own
        warnings only (``info["fallback"]`` says what happened; ``time`` and ``iterations``
        are the kept solve's). No fallback after the time limit: CVXPY's set-up cannot be
        interrupted."""
        start = time.perf_counter()
        caught: list = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                first = solver.solve(program, init)
        except Exception:
            _reemit(caught)  # (what the solve said before it failed)
            raise
        budget = self.hyperparameters.get("max_time")
        out_of_time = first.status == "max_time" or (
            budget is not None and time_left(start + budget) <= MIN_TIME_LIMIT)
        if out_of_time or (first.converged and not loose_gap(program, first.objective, first.lower_bound)):
            _reemit(caught)
            return first
        fallback = CVXPYSolver(**_accepted(CVXPYSolver, self.hyperparameters))
        if budget is not None:
            fallback = fallback.with_max_time(time_left(start + budget))
        logger.info("auto: the interior point stopped %s (relative gap %.1e); solving with CVXPY too",
                    first.status, first.relative_gap)
        failed = None
        with warnings.catch_warnings(record=True) as caught_cvxpy:
            warnings.simplefilter("always")
            try:
                second = fallback.solve(program)
            except SolverError as exc:
                failed = exc
        if failed is not None:  # (outside the recording above, or the warnings are lost: a fit had none)
            _reemit(caught)
            warnings.warn(f"auto: the interior point stopped {first.status} at a certified relative gap of "
                          f"{first.relative_gap:.2e}, and CVXPY, tried next, failed ({failed}); the interior "
                          "point's answer is kept", ConvergenceWarning, stacklevel=3)
            return dataclasses.replace(first, info={**first.info, "fallback": f"cvxpy failed: {failed}"})
        best, other, said = (second, first, caught_cvxpy) if second.objective < first.objective else (
            first, second, caught)
        _reemit(said)
        return dataclasses.replace(
            best, lower_bound=min(max(best.lower_bound, other.lower_bound), best.objective),
            info={**best.info, "fallback": f"ipm {first.status} (relative gap {first.relative_gap:.1e}), then cvxpy "
                                          f"{second.status}: kept {best.solver}"})


def _reemit(caught) -> None:
    """Warnings recorded by ``catch_warnings(record=True)``, raised again at the caller of
    :meth:`AutoSolver.solve`."""
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)
