"""Compiled single-pass kernels for the augmented Lagrangian's evaluations by row blocks.

An inner iteration of :class:`convexrelu.solvers.auglag.AugmentedLagrangian` on the CPU
evaluates, row block by row block (:class:`convexrelu.solvers.fista.ALPart`), a *state*

    XQ = X @ Q,   c1 = (2 D1 - 1) * XQ,   H_g = sum_{b in g} (s_b / 2)(XQ_b + c1_b),
    c2 = (2 D2 - 1) * H,   z = sum_g (sigma_g / 2)(H_g + c2_g)   [second cone]
                           z = sum_g sigma_g H_g                 [no second layer]

with ``sum ||(lam - rho c)_+||^2`` over both cones, and a *gradient*

    P = (lam - rho c)_+,   Tg = (sigma_g / 2)(1 + (2 D2_g - 1)) r + (2 D2_g - 1) P2_g
                                [no second layer: Tg = sigma_g r],
    F_b = (s_b / 2) Tg_{g(b)},   T_b = F_b + (2 D1_b - 1)(F_b + P1_b),   g = X.T @ T

(the formulas of :meth:`convexrelu.operators.BlockOperator.apply` and ``adjoint`` with
the method-of-multipliers update of :func:`convexrelu.solvers._steps.multiplier_update`,
theory.md, "Costs that matter for speed"). Composed from torch operations, each line
is a pass over an (rows, B) array; here each is one loop that reads every input once.
With these kernels an iteration at n=20,000 (three-layer, 2,622 blocks, float32) cost
1.4-1.9 times its two matrix products instead of 2.3-2.8 in six measurements
(``benchmarks/RESULTS.md``, "Floor").

The kernels need numba (the optional extra ``convexrelu[fast]``; imported on first use,
from :mod:`convexrelu._numba_kernels`); without it :func:`available` is False and the
callers keep their torch path. They cover one
output, the first cone, and groups that are single blocks or slabs (block ``j G + g``
is the ``j``-th of group ``g``, :mod:`convexrelu.operators`); the operator decides
(:meth:`convexrelu.operators.BlockOperator.penalty_kernels`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading

import numpy as np
import torch

__all__ = ["available", "PenaltyKernels"]


@functools.cache
def _compiled():
    """The kernels' module (:mod:`convexrelu._numba_kernels`), imported on first use, or
    None where numba is not installed or does not import."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        from . import _numba_kernels
    except ImportError:  # e.g. a numba built for another numpy
        return None
    return _numba_kernels


#: The process that first imported the kernels: numba's OpenMP threading layer is not
#: safe to use in a child forked after it ran, so a forked child takes the torch path.
_OWNER: list = []

#: Kernel calls one at a time: numba's fallback threading layer (workqueue, where no
#: OpenMP or TBB layer loads) aborts on concurrent calls from two Python threads.
_LOCK = threading.Lock()


def available() -> bool:
    """Whether the compiled kernels can run: numba is installed and imports, and this is
    the process that first used them (not a child forked after it)."""
    if _compiled() is None:
        return False
    if not _OWNER:
        _OWNER.append(os.getpid())
    return _OWNER[0] == os.getpid()


@functools.cache
def _launched() -> None:
    """Start numba's threading layer (once per process) leaving torch's number of threads
    as it was: numba's OpenMP layer, as it starts, sets the calling thread's OpenMP thread
    count, which torch reads as its own (a caller's ``torch.set_num_threads(1)`` had
    become the machine's cores after the first kernel call)."""
    import numba

    threads = torch.get_num_threads()
    numba.get_num_threads()  # (starts the layer)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@functools.cache
def _warm(dtype: np.dtype) -> None:
    """Compile both kernels for ``dtype`` on tiny arrays (on first use in a process; numba
    caches the machine code on disk): the compilation, seconds where the cache is cold,
    then happens before a solver times its iterations."""
    _launched()
    rows, B = 2, 2
    f2 = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    s1 = np.ones((rows, B), dtype=np.int8)
    one = dtype.type(1)
    for cone2, G in ((False, B), (True, 1)):
        s2 = f2(rows, G) if cone2 else f2(rows, 0)
        _compiled().state(f2(rows, B), s1, f2(B), f2(rows, B), one, f2(rows, B), cone2, s2, f2(G), f2(*s2.shape),
                          f2(*s2.shape), f2(rows, G), f2(rows), np.zeros(rows))
        for lazy in (False, True):
            _compiled().gradient(f2(rows, B), f2(rows, B), one, lazy, s1, f2(B), f2(rows, B), one, cone2, s2, s2, s2,
                                 f2(G), s2, f2(rows), f2(rows, G), f2(rows, B), True, np.zeros(rows))


def _in(T: torch.Tensor) -> np.ndarray:
    """An input array for the kernels: C-contiguous (another layout would make numba
    compile another version, mid-solve)."""
    return np.ascontiguousarray(T.detach().numpy())


@contextlib.contextmanager
def _threads():
    """The kernels use as many threads as torch while they run (numba's setting is per
    calling thread); the caller's setting is restored after."""
    import numba

    _launched()
    before = numba.get_num_threads()
    wanted = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if wanted == before:  # (the usual case: each setting costs microseconds, at every call)
        yield
        return
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _np(T: torch.Tensor) -> np.ndarray:
    return T.detach().numpy()


class PenaltyKernels:
    """The two evaluations of the module docstring for one operator (one row block of a
    program, :meth:`convexrelu.operators.BlockOperator.row_blocks`), on its own masks.

    Built by :meth:`convexrelu.operators.BlockOperator.penalty_kernels`, which checks that
    the operator is of the covered kind (one output, first cone, single-block or slab
    groups, CPU).

    Parameters
    ----------
    X : tensor (rows, d)
    s1 : int8 tensor (rows, B), ``2 D1 - 1`` (a quarter of the float mask's bytes to read)
    half_signs : tensor (B,), ``s_b / 2``
    s2 : tensor (rows, G) or None, ``2 D2 - 1`` (None: no second layer)
    out_weights : tensor (G,), ``sigma_g / 2`` with the second cone, ``sigma_g`` without
    """

    def __init__(self, X, s1, half_signs, s2, out_weights):
        self.X, self.cone2 = X, s2 is not None
        self.n, self.d = X.shape
        self.B, self.G = s1.shape[1], out_weights.shape[0]
        self._s1, self._hs, self._w = _in(s1), _in(half_signs), _in(out_weights)
        self._dtype = _np(X).dtype
        _warm(self._dtype)
        empty = np.zeros((self.n, 0), dtype=self._dtype)
        self._s2 = _in(s2) if self.cone2 else empty
        self._empty = empty

    def _second(self, arrays, read: bool = True):
        return (_in if read else _np)(arrays[-1]) if self.cone2 else self._empty

    def state(self, Q: torch.Tensor, lam, rho: float, cons, work) -> tuple[torch.Tensor, float]:
        """Model output (rows, 1) and ``sum ||(lam - rho K Q)_+||^2``; the constraint
        values ``K Q`` are written into ``cons`` (arrays of the constraint shapes)."""
        XQ = torch.matmul(self.X, Q, out=work.get("nB", (self.n, self.B), self.X))
        H = work.get("nG", (self.n, self.G), self.X)
        z = np.empty(self.n, dtype=self._dtype)
        sq = np.empty(self.n, dtype=np.float64)
        rho = self._dtype.type(rho)
        with _LOCK, _threads():
            _compiled().state(_np(XQ), self._s1, self._hs, _in(lam[0]), rho, _np(cons[0]), self.cone2, self._s2,
                              self._w, self._second(lam), self._second(cons, read=False), _np(H), z, sq)
        return torch.from_numpy(z)[:, None], float(sq.sum())

    def gradient(self, R: torch.Tensor | None, lam, rho: float, old, new=None, a: float = 1.0,
                 work=None) -> tuple[torch.Tensor | None, float]:
        """``A^T R + K^T P`` with ``P = (lam - rho c)_+`` (None without ``R``) and
        ``sum ||P||^2``, where ``c`` is ``old`` (arrays of the constraint values) or,
        given ``new``, ``old + a (new - old)``."""
        want = R is not None
        T = work.get("nB", (self.n, self.B), self.X)
        Tg = work.get("nG", (self.n, self.G), self.X)
        r = _in(R[:, 0]) if want else np.zeros(self.n, dtype=self._dtype)
        lazy = new is not None
        new = old if new is None else new
        dt = self._dtype.type
        sq = np.empty(self.n, dtype=np.float64)
        with _LOCK, _threads():
            _compiled().gradient(_in(old[0]), _in(new[0]), dt(a if lazy else 0.0), lazy, self._s1, self._hs,
                                 _in(lam[0]), dt(rho), self.cone2, self._second(old), self._second(new), self._s2,
                                 self._w, self._second(lam), r, _np(Tg), _np(T), want, sq)
        return (self.X.T @ T if want else None), float(sq.sum())
