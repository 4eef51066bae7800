"""A low-rank metric for the proximal gradient step: FISTA's preconditioner.

The Gram map ``A^T A`` of the programs' model (theory.md, "Costs that matter for
speed") has a few outlying eigenvalues: over many blocks of one data matrix ``X``, the
blocks' columns ``D X`` share the directions of ``X``, and about ``d`` directions of the
weights move every block's output together. Measured on the three-layer program of issue
4's scale item (n=5,000, d=51, 3,000 blocks): the 51 largest eigenvalues lie between
1.2e6 and 2.7e6, the 52nd is 1.3e5, and the next 250 fall slowly to 8.3e4. A gradient
step must be short enough for the largest, ``1 / lambda_1``, and the rest of the
spectrum then moves twenty times slower than it could.

The metric

    V = I + U diag(c) U^T,      U (p, k) orthonormal columns, c >= 0,

with ``U`` the top ``k`` eigenvectors of ``A^T A`` and ``c_i = lambda_i / a - 1`` (``a`` the
largest eigenvalue on the complement of ``U``), makes ``a V`` a majorant of ``A^T A``
where ``U`` is an exact invariant subspace; the proximal gradient step in that metric,

    Q+ = argmin_Z  s beta sum_b ||Z_b|| + 1/2 ||Z - (Y - s V^{-1} grad f(Y))||_V^2,

then takes steps ``s = 1 / a`` instead of ``1 / lambda_1``. ``U`` is estimated (on a row
sample), so FISTA's line search (its sufficient-decrease test in the ``V`` norm) keeps
the step honest.

The proximal map in the metric ``I + U C U^T`` of the group l1 norm is the group
soft-thresholding of ``X - U alpha`` at the root ``alpha`` in R^k of

    alpha = C U^T (soft(X - U alpha, tau) - X)

(Becker and Fadili, "A quasi-Newton proximal splitting method", NeurIPS 2012), solved here
by a semismooth Newton method with a backtracking on the residual. Nothing here knows the
architecture: the operator's ``matvec``, ``adjoint`` and ``row_sample`` only.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..regularizers import shrink_factors
from .base import SolverError

__all__ = ["LowRankMetric", "check_preconditioner", "default_rank", "wants_metric"]


#: "auto" takes the metric where the samples are at least this many times its rank (its
#: per-iteration cost, about ``rank d B`` flops, against the iteration's ``n d B``), and
#: the model has at least AUTO_MIN_ENTRIES entries ``n B`` (below, its set-up dominates).
AUTO_SAMPLES_PER_RANK = 50
AUTO_MIN_ENTRIES = 10**6


def default_rank(op) -> int:
    """``d C + 10``: ``d`` the operator's features (intercept included), ``C`` its outputs
    (the outlying eigenvalues of ``A^T A``, one per feature and output, and ten more)."""
    return op.n_features * op.n_outputs + 10


def wants_metric(preconditioner: str | None, op, rank: int | None) -> bool:
    """Whether a solve with ``preconditioner`` ("auto", "lowrank" or None) on ``op`` takes
    the low-rank metric: "auto" where ``n >= AUTO_SAMPLES_PER_RANK * rank`` and ``n B >=
    AUTO_MIN_ENTRIES`` (measured in ``benchmarks/bench_preconditioner.py``)."""
    if preconditioner is None or min(op.shape) == 0:
        return False
    if preconditioner == "lowrank":
        return True
    k = default_rank(op) if rank is None else rank
    return op.n_samples >= AUTO_SAMPLES_PER_RANK * k and op.n_samples * op.n_blocks >= AUTO_MIN_ENTRIES


def check_preconditioner(preconditioner, rank, random_state) -> tuple[str | None, int | None, int]:
    """The solvers' ``preconditioner``, ``rank`` and ``random_state`` settings, checked."""
    if preconditioner not in (None, "none", "lowrank", "auto"):
        raise ValueError(f"preconditioner: expected None, 'auto' or 'lowrank', got {preconditioner!r}")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1):
        raise ValueError(f"rank: expected None or an integer >= 1, got {rank!r}")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state: expected an integer, got {random_state!r}")
    preconditioner = None if preconditioner == "none" else preconditioner
    return preconditioner, (None if rank is None else int(rank)), int(random_state)


class LowRankMetric:
    """The metric ``V = I + U diag(c) U^T`` on arrays of shape (d, B).

    Parameters
    ----------
    U : tensor (d * B, k)
        Orthonormal columns (the flattened (d, B) arrays, row-major).
    c : tensor (k,)
        Non-negative weights.
    shape : (d, B)
    newton_tol : float
        Relative tolerance of the proximal map's Newton iterations.
    """

    def __init__(self, U: torch.Tensor, c: torch.Tensor, shape: tuple[int, int], newton_tol: float = 1e-12):
        if U.ndim != 2 or U.shape[0] != shape[0] * shape[1] or c.shape != (U.shape[1],):
            raise ValueError(f"U: expected shape ({shape[0] * shape[1]}, k) with c of shape (k,), "
                             f"got {tuple(U.shape)} and {tuple(c.shape)}")
        if bool(torch.any(c < 0)):
            raise ValueError("c: expected non-negative weights")
        self.U = U
        self.c = c
        self.shape = tuple(shape)
        self.newton_tol = float(newton_tol)
        self._alpha = None  # the last root: the next one starts from it
        self._jacobian = None  # the last Newton matrix (a chord method: :meth:`prox`)
        self.newton_iterations = 0

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    def _coords(self, D: torch.Tensor) -> torch.Tensor:
        return self.U.T @ D.reshape(-1)

    def _span(self, a: torch.Tensor) -> torch.Tensor:
        return (self.U @ a).reshape(self.shape)

    def inverse(self, G: torch.Tensor) -> torch.Tensor:
        """``V^{-1} G = G - U diag(c / (1 + c)) U^T G``."""
        return G - self._span((self.c / (1 + self.c)) * self._coords(G))

    def sqnorms(self, D: torch.Tensor) -> tuple[float, float]:
        """``(||D||_V^2, ||V D||^2)`` from one product ``u = U^T D``: ``||D||^2 + sum_i c_i
        u_i^2`` and ``||D||^2 + sum_i (2 c_i + c_i^2) u_i^2`` (``U^T U = I``)."""
        u = self._coords(D)
        base = float(torch.sum(D * D))
        cu2 = self.c * u * u
        return base + float(torch.sum(cu2)), base + float(torch.sum(cu2 * (2 + self.c)))

    def prox(self, Xp: torch.Tensor, tau: float) -> torch.Tensor:
        """``argmin_Z tau sum_b ||Z_b|| + 1/2 ||Z - Xp||_V^2`` for ``Xp`` of shape (d, B).

        ``Z = soft(Xp - U alpha, tau)`` at the root of ``G(alpha) = alpha - C U^T (Z - Xp)``
        (module docstring), from the last call's root. Newton steps ``(I + C U^T J U) delta
        = -G``, ``J`` the (generalised) Jacobian of the group soft-thresholding; the matrix
        (``k^2 d B`` flops to form, against ``k d B`` for a step) is kept from step to step
        and from call to call (a chord method) and formed anew after three steps in a row
        that did not halve ``||G||``. Each step is halved (at most 8 times) while
        ``||G||`` does not decrease. Stops at ``||G|| <= tol (||alpha|| + ||C U^T Xp||)``,
        ``tol`` the larger of ``newton_tol`` and 100 machine epsilons."""
        c = self.c
        ux = self._coords(Xp)
        alpha = self._alpha if self._alpha is not None else torch.zeros_like(c)
        tol = max(self.newton_tol, 100 * torch.finfo(Xp.dtype).eps)

        def residual(a):
            W = Xp - self._span(a)
            norms, factor = shrink_factors(W, tau)
            Z = W * factor  # regularizers.group_soft_threshold, with its norms and factors
            return W, Z, norms, factor, a - c * (self._coords(Z) - ux)

        W, Z, norms, factor, G = residual(alpha)
        gnorm = float(torch.linalg.vector_norm(G))
        base = float(torch.linalg.vector_norm(c * ux))
        fresh = False
        slow = 0  # consecutive steps that did not halve ||G||
        for _ in range(100):
            if gnorm <= tol * (base + float(torch.linalg.vector_norm(alpha))):
                break
            if self._jacobian is None:
                self._jacobian = self._newton_matrix(W, norms, factor, tau)
                fresh = True
            self.newton_iterations += 1
            delta = torch.linalg.solve(self._jacobian, -G.double()).to(c.dtype)
            t, accepted = 1.0, False
            for _ in range(9):
                a_try = alpha + t * delta
                W_t, Z_t, n_t, f_t, G_t = residual(a_try)
                g_t = float(torch.linalg.vector_norm(G_t))
                if g_t < gnorm:
                    accepted = True
                    break
                t *= 0.5
            if not accepted:
                if fresh:
                    break  # no decrease along a fresh Newton direction: rounding
                self._jacobian = None  # a stale matrix: form it anew
                continue
            slow = slow + 1 if g_t > 0.5 * gnorm else 0
            alpha, W, Z, norms, factor, G, gnorm = a_try, W_t, Z_t, n_t, f_t, G_t, g_t
            if slow >= 3 or (slow and fresh):
                self._jacobian = None
                slow = 0
            fresh = False
        self._alpha = alpha
        return Z

    def _newton_matrix(self, W: torch.Tensor, norms: torch.Tensor, factor: torch.Tensor, tau: float) -> torch.Tensor:
        """``I + C U^T J U`` (float64, (k, k)) at the point ``W`` before thresholding:
        ``J`` is block diagonal with ``f_b I + (tau / ||w_b||^3) w_b w_b^T`` on the blocks
        kept (``f_b = 1 - tau / ||w_b||``) and 0 on the others."""
        d, B = self.shape
        k = self.rank
        Uv = self.U.reshape(d, B, k)
        kept = factor > 0
        Us = (Uv * torch.sqrt(factor)[None, :, None]).reshape(d * B, k)
        S = Us.T @ Us
        P = torch.einsum("dbk,db->bk", Uv, W)  # (U_b^T w_b) for every block
        curv = torch.where(kept, tau / torch.clamp(norms, min=torch.finfo(W.dtype).tiny) ** 3, torch.zeros_like(norms))
        S = S + (P * curv[:, None]).T @ P
        return torch.eye(k, dtype=torch.float64, device=W.device) + self.c.double()[:, None] * S.double()

    @classmethod
    def from_operator(cls, op, rank: int, *, smoothness: float = 1.0, sample_rows: int = 4000, n_iter: int = 4,
                      oversample: int = 10, random_state: int = 0, newton_tol: float = 1e-12,
                      deadline: float | None = None) -> tuple["LowRankMetric", float]:
        """The metric of ``smoothness * A^T A`` for the operator ``op``, and its scale ``a``.

        ``U`` and the eigenvalues ``lambda_i``: randomized subspace iteration (``n_iter``
        products by the Gram map, ``rank + oversample`` columns, then Rayleigh-Ritz) on at
        most ``sample_rows`` evenly spaced samples (:meth:`BlockOperator.row_sample`: the
        sample's Gram map times ``n`` over its size estimates the whole one); ``a``: power
        iteration on ``(I - U U^T) A^T A (I - U U^T)`` of the whole operator. Returns the
        metric with ``c_i = max(lambda_i / a - 1, 0)`` and ``smoothness * a`` (the inverse of
        the step it allows). Past ``deadline`` (a ``time.perf_counter()`` value) the subspace
        iteration stops after its first product and the power iteration after its second:
        a rougher metric, whose errors the caller's line search takes up."""
        d, B = op.shape
        p = d * B
        if int(rank) < 1 or p < 2:
            raise ValueError(f"rank: expected an integer >= 1 on weights of at least 2 entries, got rank {rank} "
                             f"on d * B = {p}")
        rank = int(min(rank, p - 1))  # (a rank of p leaves no complement to take a step from)
        sub, factor = op.row_sample(sample_rows)
        kw = {"dtype": op.dtype, "device": op.device}
        gen = torch.Generator(device="cpu").manual_seed(int(random_state))

        def gram(o, V):  # o^T o applied to the columns of V (p, m)
            out = torch.empty_like(V)
            for j in range(V.shape[1]):
                out[:, j] = o.adjoint(o.matvec(V[:, j].reshape(d, B))).reshape(-1)
            return out

        m = min(rank + oversample, p)
        V = torch.randn(p, m, generator=gen, dtype=torch.float64).to(**kw)
        for _ in range(max(1, int(n_iter))):
            V, _ = torch.linalg.qr(gram(sub, V))
            if deadline is not None and time.perf_counter() > deadline:
                break
        GV = gram(sub, V)
        T = (V.T @ GV).double()
        lam, E = torch.linalg.eigh(0.5 * (T + T.T))
        order = torch.argsort(lam, descending=True)[:rank]
        U = V @ E[:, order].to(V.dtype)
        U, _ = torch.linalg.qr(U)  # orthonormal in the working precision
        lam = lam[order] * factor
        # the largest eigenvalue of the Gram map off U, on the whole operator
        W = torch.randn(p, generator=gen, dtype=torch.float64).to(**kw)
        W = W - U @ (U.T @ W)
        a = 0.0
        for i in range(12):
            if i >= 2 and deadline is not None and time.perf_counter() > deadline:
                break
            nw = float(torch.linalg.vector_norm(W))
            if nw == 0.0 or not math.isfinite(nw):
                break
            W = op.adjoint(op.matvec((W / nw).reshape(d, B))).reshape(-1)
            W = W - U @ (U.T @ W)
            a = float(torch.linalg.vector_norm(W))
        if not math.isfinite(a):
            raise SolverError(f"low-rank metric: the operator's Gram map gave a non-finite norm ({a})")
        if a <= 0.0:  # A^T A lives on U: any positive scale below its eigenvalues majorises
            a = float(lam.min()) if float(lam.min()) > 0 else 1.0
        c = torch.clamp(lam / a - 1.0, min=0.0).to(U.dtype)
        return cls(U, c, (d, B), newton_tol=newton_tol), smoothness * a
