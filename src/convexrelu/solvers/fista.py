"""FISTA with backtracking and adaptive restart for ``min_Q f(Q) + beta R(Q)``.

``R`` is the group l1 norm of :mod:`convexrelu.regularizers` (prox: group
soft-thresholding) and ``f`` is a smooth function of the operator's output only:

- ``f(Q) = l(A Q, Y)`` for the unconstrained programs (gated ReLU), and
- ``f(Q) = l(A Q, Y) + psi(K Q, Lambda, rho)`` for the inner problems of the augmented
  Lagrangian (:mod:`.auglag`), ``psi`` the term of :func:`._steps.al_penalty`.

Cost (theory.md, "Costs that matter for speed"): both ``A Q`` and ``K Q`` come from one
``program.operator.apply(Q)`` (one product ``X @ Q``; without constraints
``program.operator.matvec(Q)``) and the gradient from one
``program.operator.adjoint(R, multipliers)`` (one product ``X.T @ T``; for the gated
program, whose outputs each have no blocks or at least ``d``, both go through the model
coefficients, output by output, with no (n, B) array: :mod:`convexrelu.operators`). The operator
being linear, the model output and the constraint values at the extrapolated point
``Y = Q_{k+1} + w (Q_{k+1} - Q_k)`` are the same combination of those at ``Q_{k+1}``
and ``Q_k``: an iteration costs one ``apply`` (at the new iterate, which also gives the
value the backtracking test needs) and one ``adjoint``, about two GEMMs, plus one more
``apply`` per rejected step. Nothing here knows the architecture.

Preconditioning (:class:`FISTA` ``preconditioner``): the Gram map ``A^T A`` has about
``d`` eigenvalues per output far above the rest (the directions in which every block's
output moves together), and a plain step must be short enough for them. The low-rank
metric of :mod:`._metric` takes those directions apart; the step is then that of the rest
of the spectrum, and the proximal map in the metric costs a semismooth Newton solve in
``rank`` dimensions.
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
from . import _steps
from .base import ConvergenceWarning, Solution, Solver, SolverError, init_weights, warn_loose_gap
from ._metric import LowRankMetric, check_preconditioner, default_rank, wants_metric
from ._presolve import on_live_groups

__all__ = ["FISTA", "fista_minimize", "LossPart", "ALPart"]

logger = logging.getLogger(__name__)

_RESTARTS = (None, "none", "gradient", "function")


# --------------------------------------------------------------------------- smooth parts
class _State:
    """Operator output at one point: ``Z = A Q``, constraints ``c = K Q`` and, once the
    value is computed, ``f`` and the multipliers ``P = (lam - rho c)_+`` (the negated
    constraint cotangents)."""

    __slots__ = ("Z", "cons", "P", "P_stale", "f", "loss", "noise", "lerp")

    def __init__(self, Z, cons):
        self.Z = Z
        self.cons = cons
        self.P = None
        self.P_stale = False  # P holds arrays of an earlier state, to be overwritten
        self.f = None
        self.loss = None  # the loss term of f (ALPart)
        self.noise = None
        self.lerp = None  # (old constraint values, new ones, a) of a state evaluated later (ALPart)


class LossPart:
    """Smooth part ``f(Q) = l(A Q, Y)`` of a program (its constraints ignored).

    It keeps the operator's scratch arrays (:meth:`BlockOperator.workspace`) for the
    states it computes; :meth:`state` and :meth:`extrapolate` take a ``spare`` state (one
    no longer used) whose large arrays they overwrite instead of allocating (the
    augmented Lagrangian's constraint values and multipliers; the model output ``Z``,
    of shape (n, C), is always new)."""

    def __init__(self, program):
        self.program = program
        self.op = program.operator
        self.loss = program.loss
        self.Y = program.Y
        self.work = self.op.workspace()

    #: whether :meth:`extrapolate` writes large arrays (and takes a spare state for them)
    extrapolation_arrays = False

    def state(self, Q: torch.Tensor, spare: _State | None = None) -> _State:
        return _State(self.op.matvec(Q, work=self.work), ())

    def extrapolate(self, old: _State, new: _State, w: float, spare: _State | None = None) -> _State:
        """State at ``Q_new + w (Q_new - Q_old)`` (the operator is linear)."""
        return _State(torch.lerp(old.Z, new.Z, 1.0 + w), ())

    def value(self, s: _State) -> float:
        if s.f is None:
            s.f = float(self.loss.value(s.Z, self.Y))
            s.noise = abs(s.f) + float(torch.sum(torch.abs(s.Z)))
        return s.f

    def grad(self, s: _State) -> torch.Tensor:
        return self.op.adjoint(self.loss.grad(s.Z, self.Y), work=self.work)

    def loss_value(self, s: _State) -> float:
        return self.value(s)

    def noise(self, s: _State) -> float:
        """Size of the terms summed in :meth:`value` (its rounding error is a few eps
        times this): a loss such as the softmax cross-entropy is a difference of sums
        of size ``sum |Z|`` that nearly cancel, and so is the augmented-Lagrangian term."""
        self.value(s)
        return s.noise


class ALPart(LossPart):
    """Smooth part of the augmented Lagrangian, ``l(A Q, Y) + sum_i psi(K_i Q, lam_i, rho)``.

    ``psi`` is :func:`._steps.al_penalty`; its gradient in ``c`` is
    ``L = -(lam - rho c)_+`` (:func:`._steps.al_penalty_grad`), so that the gradient in
    ``Q`` is ``operator.adjoint(grad l, L) = -operator.adjoint(-grad l, P)`` with
    ``P = (lam - rho c)_+``, which a state keeps (:meth:`multipliers`): ``P`` at the last
    iterate is the next multipliers ``lam+`` (:func:`._steps.multiplier_update`).

    On the CPU, where the constraint values are large (:func:`row_block_size`: tens of
    megabytes, or 384 KB with the compiled kernels), a state
    is evaluated by row blocks of the operator (:meth:`BlockOperator.row_blocks`): each
    block's product, constraint values, multipliers and adjoint are computed while its
    arrays are in the cache, and an extrapolated state is not formed at all (its
    constraint values and multipliers are computed block by block by the :meth:`grad`
    that reads it). The values are those of the whole arrays, up to the order of the
    sums.

    Parameters
    ----------
    program : ConvexProgram with constraints
    lam : tuple of tensors >= 0, shapes ``operator.constraint_shapes`` (read, not copied)
    rho : float > 0
    rows : int, None or "auto"
        Samples per row block; None evaluates the whole arrays at once; "auto":
        :func:`row_block_size` (with ``kernels``).
    kernels : bool
        By row blocks, evaluate each block with the operator's compiled single-pass
        kernels where it has them (:meth:`BlockOperator.penalty_kernels`: numba installed,
        one output, ...), in one block holding every row where ``rows`` is at least the
        number of samples; False: always the torch operations (``rows`` at least the
        number of samples: the whole arrays). The values are the same up to rounding.
    """

    def __init__(self, program, lam, rho: float, rows: int | None | str = "auto", kernels: bool = True):
        super().__init__(program)
        self.rho = float(rho)
        self.lam = tuple(lam)
        self.lam_sq = float(sum(_sqnorm(m) for m in self.lam))
        rows = row_block_size(self.op, kernels) if isinstance(rows, str) and rows == "auto" else rows
        self.blocks = self.kernels = None
        if rows is not None and (rows < self.op.n_samples or kernels):
            self.blocks = self.op.row_parts(rows, for_kernels=kernels)
            if kernels:  # every block through the kernels, or none
                found = [op.penalty_kernels() for _, op, _ in self.blocks]
                self.kernels = found if all(k is not None for k in found) else None
            if len(self.blocks) == 1 and self.kernels is None:  # one block by torch: the whole arrays
                self.blocks = None
        self.extrapolation_arrays = self.blocks is None

    # ---------------------------------------------------------------- by row blocks
    def _finish(self, s: _State, sq: float) -> _State:
        """The value of a state whose multipliers ``P`` hold ``sum ||P||^2 = sq``."""
        s.loss = fl = float(self.loss.value(s.Z, self.Y))
        s.f = fl + (sq - self.lam_sq) / (2.0 * self.rho)
        s.noise = abs(fl) + float(torch.sum(torch.abs(s.Z))) + (sq + self.lam_sq) / (2.0 * self.rho)
        return s

    def _blocked_state(self, Q, spare):
        """:meth:`state` with its value, by row blocks: each block's product, constraint
        values and multipliers ``(lam - rho c)_+`` are computed while its arrays are in
        the cache. The constraint values are written to the whole arrays (the next
        extrapolation reads them); the multipliers are not kept (:meth:`multipliers`
        computes them where needed)."""
        cons = spare.cons if spare is not None and spare.cons is not None else tuple(
            torch.empty(s, dtype=self.op.dtype, device=self.op.device) for s in self.op.constraint_shapes)
        Z = torch.empty((self.op.n_samples, self.op.n_outputs), dtype=self.op.dtype, device=self.op.device)
        sq = 0.0
        for k, (sl, op, work) in enumerate(self.blocks):
            if self.kernels is not None:
                Z[sl], sq_b = self.kernels[k].state(Q, self._rows(self.lam, sl), self.rho, self._rows(cons, sl), work)
            else:
                Z[sl], cc = op.apply(Q, out=(None, self._rows(cons, sl)), work=work)
                sq_b = self._block_multipliers(cc, sl, work)[1]
            sq += sq_b
        return self._finish(_State(Z, cons), sq)

    @staticmethod
    def _rows(arrays, sl) -> tuple:
        return tuple(a[sl] for a in arrays)

    def _block_multipliers(self, cc, sl, work, overwrite: bool = False):
        """``(lam - rho c)_+`` on the rows ``sl`` of every constraint (``cc``: their
        constraint values there), in ``work``'s arrays (in those of ``cc`` with
        ``overwrite``), and the sum of their squares."""
        out, sq = [], 0.0
        for i, (m, c) in enumerate(zip(self.lam, cc)):
            p = _steps.multiplier_update(c, m[sl], self.rho, out=c if overwrite else work.get(f"al{i}", c.shape, c))
            sq += _sqnorm(p)
            out.append(p)
        return tuple(out), sq

    def _blocked_sweep(self, s, gradient: bool):
        """The gradient at ``s`` (None without ``gradient``) by row blocks; for an
        extrapolated state (:meth:`extrapolate`) its constraint values and multipliers
        are computed on the way, block by block in the cache, and its value with them."""
        R = self.loss.grad(s.Z, self.Y).neg_() if gradient else None
        lazy = s.cons is None
        old, new, a = s.lerp if lazy else (None, None, None)
        g, sq = None, 0.0
        for k, (sl, op, work) in enumerate(self.blocks):
            if self.kernels is not None:
                part, sq_b = self.kernels[k].gradient(
                    R[sl] if gradient else None, self._rows(self.lam, sl), self.rho,
                    self._rows(old if lazy else s.cons, sl), self._rows(new, sl) if lazy else None, a, work=work)
            else:
                if lazy:
                    cc = tuple(torch.lerp(co[sl], cn[sl], a,
                                          out=work.get(f"c{i}", (sl.stop - sl.start, co.shape[1]), co))
                               for i, (co, cn) in enumerate(zip(old, new)))
                else:
                    cc = self._rows(s.cons, sl)
                P, sq_b = self._block_multipliers(cc, sl, work, overwrite=lazy)
                part = op.adjoint(R[sl], P, work=work) if gradient else None
            sq += sq_b
            if part is not None:
                g = part if g is None else g.add_(part)
        if lazy and s.f is None:
            self._finish(s, sq)
        return None if g is None else g.neg_()

    # ---------------------------------------------------------------- the interface
    def state(self, Q, spare=None):
        if self.blocks is not None:
            return self._blocked_state(Q, spare)
        reuse = spare is not None and spare.cons is not None
        Z, cons = self.op.apply(Q, out=(spare.Z, spare.cons) if reuse else None, work=self.work)
        s = _State(Z, cons)
        if spare is not None:
            s.P, s.P_stale = spare.P, True  # arrays to overwrite (:meth:`multipliers`)
        return s

    def extrapolate(self, old, new, w, spare=None):
        """State at ``Q_new + w (Q_new - Q_old)``: its model output and multipliers ``P``
        (``cons`` is None: the constraint values are interpolated into the arrays of ``P``,
        which FISTA needs alone at that point). By row blocks, its model output only:
        it names the constraint arrays of ``old`` and ``new``, which must not be
        overwritten before its :meth:`grad` and :meth:`value` (FISTA's order)."""
        a = 1.0 + w
        if self.blocks is not None:  # evaluated by :meth:`grad`, the next call on it
            s = _State(torch.lerp(old.Z, new.Z, a), None)
            s.lerp = (old.cons, new.cons, a)
            return s
        bufs = spare.P if spare is not None and spare.P is not None else (None,) * len(new.cons)
        c = tuple(torch.lerp(co, cn, a, out=buf) for co, cn, buf in zip(old.cons, new.cons, bufs))
        s = _State(torch.lerp(old.Z, new.Z, a), None)
        s.P = tuple(_steps.multiplier_update(ci, m, self.rho, out=ci) for m, ci in zip(self.lam, c))
        return s

    def multipliers(self, s: _State):
        """``P = (lam - rho c)_+ = -L`` for every constraint (cached in the state): the
        multipliers of the method of multipliers' update at that point."""
        if s.cons is None and s.lerp is not None:  # extrapolated by row blocks: its values, whole
            old, new, a = s.lerp
            s.cons = tuple(torch.lerp(co, cn, a) for co, cn in zip(old, new))
        if s.P is None or s.P_stale:
            bufs = s.P if s.P is not None else (None,) * len(s.cons)
            s.P = tuple(_steps.multiplier_update(c, m, self.rho, out=buf) for m, c, buf in zip(self.lam, s.cons, bufs))
            s.P_stale = False
        return s.P

    def value(self, s):
        if s.f is None:
            if self.blocks is not None and s.cons is None:
                self._blocked_sweep(s, gradient=False)
            else:
                self._finish(s, sum(_sqnorm(p) for p in self.multipliers(s)))
        return s.f

    def grad(self, s):
        if self.blocks is not None:
            return self._blocked_sweep(s, gradient=True)
        return self.op.adjoint(-self.loss.grad(s.Z, self.Y), self.multipliers(s), work=self.work).neg_()

    def loss_value(self, s):
        self.value(s)
        return s.loss


# --------------------------------------------------------------------------- the method
class FistaResult:
    """What :func:`fista_minimize` returns (mutable, internal)."""

    __slots__ = ("Q", "state", "step", "iterations", "residual", "converged", "history", "restarts", "backtracks",
                 "F", "stalled", "timed_out", "iteration_time")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def _recycle(pool: list, s: _State) -> None:
    """Put the dead state ``s`` in ``pool`` if it holds large arrays a new state can
    overwrite (constraint values or multipliers; a model output is small and always new)."""
    if s.cons or s.P is not None:
        pool.append(s)


def _take(pool: list, full: bool):
    """A dead state from ``pool`` (removed from it) whose arrays a new state overwrites:
    one with constraint arrays (``full``, for a new iterate) or without (for an
    extrapolated point) where there is one, else any; None when the pool is empty."""
    for i in range(len(pool) - 1, -1, -1):
        if (pool[i].cons is not None) == full:
            return pool.pop(i)
    return pool.pop() if pool else None


def _sqnorm(T: torch.Tensor) -> float:
    T = T.reshape(-1)
    return float(torch.dot(T, T))


def _block_norm_sum(Q: torch.Tensor) -> float:
    """``sum_b ||Q[:, b]||`` (the group l1 norm of regularizers.GroupL1, computed without
    the slow strided ``vector_norm(dim=0)``)."""
    return float(torch.sqrt(torch.sum(Q * Q, dim=0)).sum())


def fista_minimize(
    part,
    Q0: torch.Tensor,
    beta: float,
    *,
    step: float,
    max_iter: int,
    tol: float,
    scale: float,
    backtrack: bool = True,
    backtrack_factor: float = 0.5,
    step_increase: float = 1.0,
    restart: str | None = "gradient",
    history: list | None = None,
    min_iter: int = 1,
    name: str = "FISTA",
    verbose: bool = False,
    deadline: float | None = None,
    reserve: float = 0.0,
    metric=None,
) -> FistaResult:
    """Minimise ``part(Q) + beta sum_b ||Q[:, b]||`` by FISTA from ``Q0``.

    - prox: ``program.regularizer.prox`` (group soft-thresholding);
    - momentum and extrapolation: :func:`._steps.momentum_next`,
      :func:`._steps.extrapolation_coefficient`;
    - backtracking: :func:`._steps.sufficient_decrease`, the step times
      ``backtrack_factor`` until it holds; the step grows by ``step_increase`` after an
      iteration whose :func:`._steps.local_curvature` was below half of ``1 / step``
      and, in float32, above the values' rounding (:func:`._steps.curvature_is_resolved`);
    - restart: :func:`._steps.gradient_restart` or :func:`._steps.function_restart`.

    Stops when the prox-gradient residual (:func:`._steps.prox_gradient_residual`,
    measured at the extrapolated point) is at most ``tol * scale``, or after
    ``max_iter`` iterations, or before an iteration that would end less than ``reserve``
    iterations' time before ``deadline`` (a ``time.perf_counter()`` value; the time of an
    iteration is the mean of those so far): :func:`_out_of_time`. The caller keeps that
    time for its own last evaluations (``timed_out`` and ``iteration_time`` in the result).
    ``history`` (if given) receives ``loss + beta R`` at every
    iterate (without the augmented-Lagrangian term).

    ``metric`` (a :class:`._metric.LowRankMetric` ``V``, or None for the identity): the
    step is the proximal gradient step in the norm ``||.||_V / sqrt(step)``,
    ``prox^V(Y - step V^{-1} grad f(Y))``, and the sufficient-decrease test, the curvature
    and the residual ``||V (Q+ - Y)|| / step`` are measured in it.
    """
    step_prox = part.program.regularizer.prox if metric is None else metric.prox
    Q = Q0
    SQ = part.state(Q)
    fQ = part.value(SQ)
    if not math.isfinite(fQ):
        raise SolverError(f"{name}: the objective is not finite at the starting point ({fQ}); check the data and init")
    F_start = fQ + beta * _block_norm_sum(Q)
    FQ = F_start
    Y, SY, fY = Q, SQ, fQ
    # states no longer read, whose arrays the next states overwrite: at scale allocating
    # a large array costs as much as a pass over it (with constraints: two sets of
    # constraint arrays and three of multipliers in all)
    pool: list = []
    t = 1.0
    eps = torch.finfo(Q.dtype).eps
    residual = math.inf
    restarts = backtracks = 0
    converged = False
    k = 0
    step_min = step * 1e-12
    # in float32 the values stop resolving the curvature near the optimum, and a step grown
    # on rounding makes the iterates oscillate: grow only on a resolved measurement. In
    # float64 that happens far below any tolerance, and growing on it still helps (measured:
    # the gate cost the n=500 two-layer benchmark a factor 10 in accuracy at 42 s)
    coarse = eps > 1e-10
    stalled = timed_out = False
    loop_start = time.perf_counter()
    for k in range(1, max_iter + 1):
        g = part.grad(SY)
        fY = part.value(SY)  # after the gradient: a part may compute both in one pass (ALPart)
        noise_Y = part.noise(SY) if backtrack else None  # (cached with fY)
        if SY is not SQ:
            _recycle(pool, SY)  # only its cached values are read from here on
        direction = g if metric is None else metric.inverse(g)  # (the same for every trial step)
        while True:
            Qn = step_prox(torch.add(Y, direction, alpha=-step), step * beta)
            Sn = part.state(Qn, spare=_take(pool, full=True))
            fn = part.value(Sn)
            D = Qn - Y
            # ||D||^2 in the step's norm, and the squared norm of what the residual measures
            sq, sq_res = (_sqnorm(D),) * 2 if metric is None else metric.sqnorms(D)
            inner = float(torch.dot(g.reshape(-1), D.reshape(-1)))
            if not backtrack or not math.isfinite(fn):
                break
            slack = 64 * eps * (part.noise(Sn) + noise_Y)
            if _steps.sufficient_decrease(fn, fY, inner, sq, step, slack):
                break
            if step * backtrack_factor < step_min:
                stalled = True  # the test is lost in rounding: accept the step, stop after it
                break
            step *= backtrack_factor
            backtracks += 1
            _recycle(pool, Sn)
        grow = (step_increase != 1.0 and backtrack and _steps.local_curvature(fn, fY, inner, sq) * step < 0.5
                and (not coarse or _steps.curvature_is_resolved(sq, step, 64 * eps * (part.noise(Sn) + noise_Y))))
        Rn = _block_norm_sum(Qn) if beta else 0.0
        Fn = fn + beta * Rn
        if history is not None:
            history.append(part.loss_value(Sn) + beta * Rn)
        if not math.isfinite(Fn):
            raise SolverError(
                f"{name}: the objective became {Fn} at iteration {k} (step {step:.3g}); "
                "the iterates diverged (lower step_init or enable backtrack)"
            )
        if Fn > F_start + 1e8 * (abs(F_start) + 1.0):
            raise SolverError(
                f"{name}: diverged at iteration {k}: objective {Fn:.6g} from {F_start:.6g} at the start "
                f"(step {step:.3g}); lower step_init or enable backtrack"
            )
        residual = math.sqrt(sq_res) / step  # _steps.prox_gradient_residual(Y, Qn, step) (in V: ||V D|| / step)
        if verbose and (k % 100 == 0 or k == 1):
            logger.info("%s it %d: F %.10g residual %.3e step %.3e", name, k, Fn, residual / scale, step)
        if (residual <= tol * scale and k >= min_iter) or stalled:
            Q, SQ, FQ = Qn, Sn, Fn
            converged = residual <= tol * scale and k >= min_iter  # even where the line search stalled too
            stalled = stalled and not converged
            break
        E = Qn - Q
        if restart == "gradient":
            do_restart = _steps.gradient_restart(-float(torch.dot(D.reshape(-1), E.reshape(-1))))
        elif restart == "function":
            do_restart = _steps.function_restart(Fn, FQ)
        else:
            do_restart = False
        if do_restart:
            restarts += 1
            t = 1.0
            Y, SY, fY = Qn, Sn, fn
        else:
            t_next = _steps.momentum_next(t)
            w = _steps.extrapolation_coefficient(t, t_next)
            t = t_next
            if w == 0.0:
                Y, SY, fY = Qn, Sn, fn
            else:
                Y = torch.add(Qn, E, alpha=w)
                SY = part.extrapolate(SQ, Sn, w, spare=_take(pool, full=False) if part.extrapolation_arrays else None)
        if grow:
            step *= step_increase
        _recycle(pool, SQ)  # (its arrays are not those of SY, Sn or any pooled state)
        Q, SQ, FQ = Qn, Sn, Fn
        if deadline is not None and k < max_iter and _out_of_time(deadline, (time.perf_counter() - loop_start) / k,
                                                                   reserve):
            timed_out = True
            break
    return FistaResult(Q=Q, state=SQ, step=step, iterations=k, residual=residual / scale if scale > 0 else residual,
                       converged=converged, history=history, restarts=restarts, backtracks=backtracks, F=FQ,
                       stalled=stalled, timed_out=timed_out,
                       iteration_time=(time.perf_counter() - loop_start) / max(k, 1))


def _out_of_time(deadline: float, iteration_time: float, reserve: float = 0.0) -> bool:
    """Whether one more iteration of ``iteration_time`` seconds, then ``reserve`` times
    that for what follows the iterations, would end past ``deadline`` (a
    ``time.perf_counter()`` value)."""
    return time.perf_counter() + (1.0 + reserve) * iteration_time > deadline


# --------------------------------------------------------------------------- helpers
#: arrays of the constraint values below this many bytes are evaluated whole (they stay
#: in the cache anyway, and the loop over row blocks would cost more in Python calls)
ROW_BLOCK_MIN_BYTES = 32 * 2**20
#: bytes of one row block's (rows, B + G) constraint values: a few such arrays (the
#: product, the multipliers, the block's masks) stay in a core's share of the cache
ROW_BLOCK_BYTES = 2 * 2**20
#: below this many bytes of constraint values the arrays are evaluated whole by torch
#: operations even where the compiled kernels apply (and numba is not imported)
KERNELS_MIN_BYTES = 384 * 2**10


def row_block_size(op, kernels: bool = False) -> int | None:
    """Rows per block for the augmented Lagrangian's evaluations by row blocks
    (:class:`ALPart`), or None to evaluate the whole arrays at once.

    By blocks on the CPU where the constraint values, ``n (B + G)`` numbers, take at
    least :data:`ROW_BLOCK_MIN_BYTES`: there an elementwise pass over a whole array reads
    and writes main memory, and an iteration made of some twenty such passes costs several
    times its two matrix products (issue 4, item 4). With ``kernels``, where the operator
    has the compiled kernels (:meth:`BlockOperator.covers_penalty_kernels`), by blocks of
    :data:`ROW_BLOCK_BYTES` from :data:`KERNELS_MIN_BYTES` on (one block holding every
    row below :data:`ROW_BLOCK_BYTES`): a block's one kernel call replaces those twenty
    torch passes even where the whole arrays stay in the cache. On an AMD EPYC with 2
    cores (float64, inner iterations timed alternately) that made them 1.5 to 2.5 times
    faster between 2.7 MB (three-layer, n=500, 534 blocks: 4.39 against 2.59 ms) and 27 MB
    (n=5,000: 63.4 against 25.3 ms); in one block, on one thread, 1.14 times faster at
    0.8 MB (two-layer, n=500, 200 blocks: 644 against 733 us, where two blocks had been
    6 % slower) and 1.46 at 1.3 MB (three-layer, n=500, 258 blocks: 799 against
    1168 us), as fast at 0.2 to 0.4 MB and 1.07 to 1.38 times slower at 0.1 MB (the kernel
    calls' fixed cost). By torch operations alone, blocks
    were slower than the whole arrays at 2.7 MB (5.79 against 4.68 ms). A GPU's memory is
    fast and its kernel launches are not: there the arrays are evaluated whole."""
    if op.device.type != "cpu" or not op.has_constraints:
        return None
    width = sum(s[1] for s in op.constraint_shapes) * torch.finfo(op.dtype).bits // 8
    size = op.n_samples * width
    if size < KERNELS_MIN_BYTES or (size < ROW_BLOCK_MIN_BYTES and not (kernels and op.covers_penalty_kernels())):
        return None  # (the first test first: below it, numba is not imported)
    return max(8, ROW_BLOCK_BYTES // width)


def _dtype_tol(tol: float, dtype: torch.dtype, floor: float = 1000.0) -> float:
    """``tol``, floored at what the dtype can resolve: ``floor`` machine epsilons (1000:
    1.2e-4 in float32, for residuals made of sums that nearly cancel; constraint values
    resolve more finely)."""
    return max(float(tol), floor * torch.finfo(dtype).eps)


def _initial_point(program, init):
    """(Q tensor, multipliers tuple of numpy or None, info mapping) from ``init``."""
    if init is None:
        return program.operator.zeros(), None, {}
    Q = init_weights(program, init)
    if isinstance(init, Solution):
        return Q, init.multipliers or None, dict(init.info)
    return Q, None, {}


def gradient_scale(program) -> float:
    """``max_b ||(A^T grad l(0))_b||``, the scale of the gradients (theory.md,
    "Duality and certificates": zero is optimal for beta above it, without constraints);
    ``beta`` if larger, and 1 when both vanish."""
    s = max(float(program.zero_threshold()), program.beta)
    return s if s > 0 else 1.0


def initial_step(program, extra: float = 0.0) -> float:
    """``1 / (smoothness ||A||^2 + extra)`` with ``||A||`` from a short power iteration."""
    norm = program.operator.norm_estimate(n_iter=8)
    L = program.loss.smoothness * norm**2 + extra
    return 1.0 / L if L > 0 else 1.0


class FISTA(Solver):
    """Accelerated proximal gradient (FISTA) for the unconstrained programs.

    Solves ``min_Q l(A Q, Y) + beta sum_b ||Q[:, b]||`` (the gated ReLU program, theory.md
    "Two-layer networks") with the momentum ``t+ = (1 + sqrt(1 + 4 t^2)) / 2``, a
    backtracking line search and adaptive restart (O'Donoghue and Candes). One iteration
    costs one ``operator.apply`` and one ``operator.adjoint`` (two GEMMs) plus one
    ``apply`` per rejected step.

    Parameters
    ----------
    max_iter : int, default 20000
    tol : float in (0, 1), default 1e-7
        Stop when the prox-gradient residual ``||Y - prox(Y - s grad f(Y))|| / s`` is at
        most ``tol`` times :func:`gradient_scale` (floored at 1000 machine epsilons of
        the program's dtype).
    step_init : float or None
        First step ``s``; default ``1 / (smoothness ||A||^2)`` from a power iteration (with
        the low-rank metric, whose norm the step divides, ``1 / (smoothness a)``, ``a`` the
        largest eigenvalue of ``A^T A`` off the metric's directions).
    backtrack : bool, default True
        Backtracking line search (sufficient decrease); without it the step stays fixed.
    restart : "gradient", "function" or None, default "gradient"
    step_increase : float, default 1.05
        Factor applied to the step after every iteration (the line search takes it back
        where needed); 1 keeps the classical non-increasing steps.
    backtrack_factor : float, default 0.5
    max_time : float or None
        Wall-time limit in seconds (status "max_time", with a ConvergenceWarning): no
        iteration starts that would end less than two iterations' time before it (what
        the objective and the dual bound of the returned point take), and the set-up before
        the iterations (the restriction to the live groups, the first step) counts.
    verbose : bool, default False
        Log progress at INFO level (logger ``convexrelu.solvers.fista``).
    preconditioner : "auto", "lowrank" or None, default "auto"
        "lowrank": steps in the metric ``V = I + U diag(c) U^T`` of :mod:`._metric`, ``U``
        the estimated top ``rank`` eigenvectors of ``A^T A`` (the directions every block
        shares), with the step of the rest of its spectrum. Costs a set-up of about
        ``5 (rank + 10)`` Gram products on a sample of 4,000 rows and 12 on the whole, and
        per step about ``rank d B`` flops more (a semismooth Newton solve in ``rank``
        dimensions for the proximal map); under ``max_time`` the set-up cuts its estimates
        short past a quarter of it. "auto" takes it where ``n`` is at least 50 times
        the rank and ``n B`` at least a million (:func:`._metric.wants_metric`); None never.
        Measured in ``benchmarks/bench_preconditioner.py`` (RESULTS.md, "FISTA's low-rank
        preconditioner").
    rank : int or None, default None
        Rank of the ``lowrank`` metric; default ``d C + 10`` (``d`` the operator's features,
        intercept included, ``C`` its outputs: measured on the three-layer program, ``A^T A``
        has ``d`` outlying eigenvalues per output).
    random_state : int, default 0
        Seed of the randomized eigenvector estimate of the ``lowrank`` metric.

    ``solve(program, init)`` takes ``init`` as an array (d, B) or a :class:`Solution`.
    """

    name = "fista"

    def __init__(
        self,
        max_iter: int = 20000,
        tol: float = 1e-7,
        step_init: float | None = None,
        backtrack: bool = True,
        restart: str | None = "gradient",
        verbose: bool = False,
        step_increase: float = 1.05,
        backtrack_factor: float = 0.5,
        max_time: float | None = None,
        preconditioner: str | None = "auto",
        rank: int | None = None,
        random_state: int = 0,
    ):
        if restart not in _RESTARTS:
            raise ValueError(f"restart: expected one of {_RESTARTS}, got {restart!r}")
        self.max_iter = check_count(max_iter, "max_iter")
        self.tol = check_number(tol, "tol", high=1.0)
        self.step_init = check_number(step_init, "step_init", none_ok=True)
        self.backtrack = check_bool(backtrack, "backtrack")
        self.restart = None if restart == "none" else restart
        self.verbose = bool(verbose)
        step_increase = check_number(step_increase, "step_increase", low=1.0, low_open=False)
        self.step_increase = step_increase if backtrack else 1.0
        self.backtrack_factor = check_number(backtrack_factor, "backtrack_factor", high=1.0)
        self.max_time = check_max_time(max_time)
        self.preconditioner, self.rank, self.random_state = check_preconditioner(preconditioner, rank, random_state)

    @on_live_groups
    def solve(self, program, init=None) -> Solution:
        if program.has_constraints:
            raise ValueError(
                "FISTA: the program has cone constraints (the two- and three-layer ReLU programs do, the gated one "
                "does not); FISTA solves unconstrained programs (use AugmentedLagrangian, solver='auglag', which "
                "runs FISTA inside)"
            )
        start = time.perf_counter()
        Q0, _, info0 = _initial_point(program, init)
        tol = _dtype_tol(self.tol, program.dtype)
        scale = gradient_scale(program)
        metric = None
        op = program.operator
        if wants_metric(self.preconditioner, op, self.rank):
            rank = self.rank if self.rank is not None else default_rank(op)
            metric, curvature = LowRankMetric.from_operator(
                op, rank, smoothness=program.loss.smoothness, random_state=self.random_state,
                deadline=None if self.max_time is None else start + 0.25 * self.max_time)
            step = self.step_init or (1.0 / curvature if curvature > 0 else 1.0)
        else:
            step = self.step_init or initial_step(program)
        history: list = []
        res = fista_minimize(
            LossPart(program), Q0, program.beta, step=float(step), max_iter=self.max_iter, tol=tol, scale=scale,
            backtrack=self.backtrack, backtrack_factor=self.backtrack_factor, step_increase=self.step_increase,
            restart=self.restart, history=history, name="FISTA", verbose=self.verbose,
            deadline=None if self.max_time is None else start + self.max_time,
            reserve=2.0,  # the objective and the dual bound at the returned point
            metric=metric,
        )
        weights = res.Q.detach().cpu().numpy().astype(np.float64)
        obj = program.objective(res.Q)
        lower, _ = dual_lower_bound(program, res.Q)
        elapsed = time.perf_counter() - start
        if res.converged:
            status = "optimal"
        elif res.stalled:
            status = "stalled"
        elif res.timed_out:
            status = "max_time"
        else:
            status = "max_iter"
        converged = res.converged
        if converged:  # (stopped on its residual: the gated program at beta = 2e-4 11 % above the optimum)
            if warn_loose_gap(program, "FISTA", f"prox-gradient residual {res.residual:.3e}, tol {tol:.1e}", obj,
                              lower, "lower tol, or use solver='ipm'", stacklevel=3):
                converged, status = False, "optimal_inaccurate"
        else:
            why = ("stalled (the line search is lost in rounding)" if status == "stalled" else
                   f"stopped at max_time={self.max_time:g}" if status == "max_time" else
                   f"stopped at max_iter={self.max_iter}")
            warnings.warn(
                f"FISTA: {why} with prox-gradient residual {res.residual:.3e} "
                f"(tol {tol:.1e}, relative to the gradient scale {scale:.3g}); objective {obj:.10g}, "
                f"duality gap {obj - lower:.3e}",
                ConvergenceWarning,
                stacklevel=3,  # the user's call: solve's decorator (on_live_groups), solve
            )
        return Solution(
            weights=weights,
            objective=obj,
            converged=converged,
            status=status,
            iterations=res.iterations,
            time=elapsed,
            history=tuple(history),
            constraint_violation=0.0,
            multipliers=(),
            lower_bound=min(lower, obj),
            solver="fista",
            info={"residual": res.residual, "tol": tol, "step": res.step, "restarts": res.restarts,
                  "backtracks": res.backtracks, "gradient_scale": scale,
                  "preconditioner": None if metric is None else "lowrank",
                  "metric_rank": None if metric is None else metric.rank,
                  "newton_iterations": 0 if metric is None else metric.newton_iterations},
        )
