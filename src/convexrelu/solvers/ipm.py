"""Primal-dual interior-point method with structured Newton systems (every program).

The programs (theory.md, "Two-layer networks" and "Three-layer parallel networks") are

    min_Q  l(A Q, Y) + beta sum_b ||q_b||     s.t.  K Q >= 0 .

With one epigraph variable per block they become a smooth convex objective over linear
cones,

    min_{Q, t}  l(A Q, Y) + beta sum_b t_b   s.t.  K Q >= 0,   (t_b, q_b) in SOC_b ,

``SOC = {(t, q) : t >= ||q||}``. The method is the infeasible primal-dual path-following
method for cone programs with a smooth objective (Vandenberghe, *The CVXOPT linear and
quadratic cone program solvers*, 2010; Nocedal and Wright, *Numerical Optimization*,
sec. 14.2 and 16.6): slacks ``s = K Q``, multipliers ``z >= 0`` of the linear cone and
``y = (y0, y1)`` in SOC of each second-order cone, Newton steps on

    A^T grad l(A Q) - K^T z - y1 = 0,   beta - y0 = 0,   K Q - s = 0,
    s * z = sigma mu,   (t, q) o y = sigma mu e      (Jordan product, e = (1, 0)),

linearised in the Nesterov-Todd scaling ``W`` of each cone pair, with Mehrotra's
predictor-corrector (Gondzio centrality correctors on request), the centring held back while
the dual residual lags behind the complementarity gap; a step is damped until the
stationarity residual decreases (for the logistic and softmax losses, whose Newton model
is not exact). Eliminating ``s``, ``z`` and ``y`` leaves one system in ``(Q, t)`` with
matrix

    A^T F F^T A  +  blockdiag_g ( K_g^T diag(z / s) K_g  +  W_g^{-2} ),

``F F^T`` the Hessian of the loss row by row (:meth:`Loss.hessian_factor`). The second
term is block diagonal over the operator's groups (one ``m (d + 1)`` block per group of
``m`` blocks, from :meth:`BlockOperator.constraint_gram`), the first has rank ``n r``
(``r = loss.hessian_rank(C)`` columns of the factor ``F``: ``C`` for the squared loss,
``C - 1`` for the softmax loss, whose Hessian ``diag(p) - p p^T`` has rank ``C - 1``).
Near the optimum the blocks span twenty orders of magnitude, so the system is solved by
conjugate gradients preconditioned with the Woodbury factorisation of slightly shifted
blocks (one batched Cholesky and one ``n r x n r`` Cholesky; a dense Cholesky when
``n r`` exceeds the number of unknowns). Groups whose part of the model is the same up
to sign (:meth:`BlockOperator.coefficient_classes`: the two signs of every pattern)
share one factor of the Woodbury matrix, which halves its product (computed on and
below the diagonal only: :func:`_gram_lower`). The factor ``A^T F`` is kept as its
constant part ``A^T`` (built once per solve, :meth:`InteriorPoint._base_factor`) mixed by
``F`` of the iteration: with ``C`` outputs the Woodbury matrix comes from one ``n x n``
product per output (:func:`_mixed_capacitance`), not one of order ``n r``; the conjugate
gradients apply ``A`` and ``A^T`` as the operator does, from the blocks' model
coefficients and the features (``khatri_rao``), not from the formed factor. Cost per
iteration: ``O(n^2 d B)`` flops for the Woodbury matrix, ``O((n r)^3)`` for its
factorisation and ``O(n d^2 m B)`` for the blocks; memory ``O(n d B)``: meant for ``n r``
up to a few thousand. With more samples than unknowns (``n r > B (d + 1)``, tabular data
with few patterns) the Newton matrix itself is factored instead: its loss part ``U U^T``
costs ``O(n (B d)^2 / 4)`` flops (once for a quadratic loss, whose Hessian is constant:
:func:`_lowrank_gram`), its factorisation ``O((B d)^3)``, so that ``n`` may be tens of
thousands when ``B d`` is a few thousand.
It reaches ``1e-7`` relative accuracy in 10 to 60 iterations on most programs; at a small
``beta`` against many samples it needs more and may stop short of it
(``benchmarks/bench_ipm_small_beta.py``: Friedman's problem, three-layer, 50 patterns,
``beta = 1``: 78 iterations at 5,000 samples, 88 at 20,000, 104 at 40,000, where it
stopped at a certified relative gap of 1.9e-05; with the barrier on every row it had
"stalled" there after 176). Near such an optimum the
Newton matrices are singular to rounding (in one of them, on standardised features at
40,000 samples, 103 of 2,028 directions had eigenvalues below 1e-12 of the diagonally
scaled matrix) and conjugate gradients cannot refine a direction; the solve then warns
with its residuals and certified gap. The returned point is feasible (``K Q >= 0`` to
rounding: the slacks stay positive and the infeasibility ``K Q - s`` vanishes
geometrically, then :func:`~.auglag.restore_feasibility` removes what rounding left).

Presolve (:mod:`._presolve`, as in every first-order solver): the groups whose part of
the model is identically zero are fixed at zero and the iterations run on the others;
with a loss separable over several outputs (squared) each output is solved apart, an
independent program (``info["output_parts"]``, ``max_iter`` per part, ``max_time``
shared).

The barrier covers the likely facets of the cones only (:mod:`._facets`, ``row_fraction``):
most rows of ``K`` are implied by the others (with n = 500 samples in d = 11 dimensions a
two-layer pattern's cone has 35 to 52 facets among its 500 rows), and a barrier term of a
redundant row leaves the program unchanged but bends the central path. Without them the
three-layer benchmark takes 36 iterations instead of 57 and the two-layer ReLU one 19
instead of 29 (``benchmarks/bench_solvers.py``). Near the optimum (relative gap
:data:`GROW_GAP`) the dropped rows an iterate violates join the barrier on the way; every
row is checked at the answer, and violated ones rejoin for another round.

The multipliers ``z`` are the dual variables of the cone constraints: the returned
:class:`~.base.Solution` carries them and the certified lower bound of theory.md,
"Duality and certificates" (:func:`~convexrelu.duality.dual_lower_bound`), which is
also the stopping test. Nothing here knows the architecture: the operator gives the
model coefficients, the group Gram matrices of the constraints and their support.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import torch

from .._validation import check_count, check_max_time, check_number, relative_gap
from . import _steps
from ._presolve import on_live_groups
from .auglag import constrained_solution, constraint_scale, relative_violation, repaired
from ._facets import likely_facets
from ..duality import dual_lower_bound
from ..operators import coefficient_adjoint, coefficient_model
from .base import Solution, Solver, SolverError
from .fista import _dtype_tol, _initial_point

__all__ = ["InteriorPoint"]

logger = logging.getLogger(__name__)

#: Relative residual at which conjugate gradients stop on a Newton system (the outer
#: iteration recomputes every residual exactly, so a direction need not be exact).
_CG_RTOL = 1e-10
#: Relative complementarity gap from which an iteration on part of the cone rows adds the
#: dropped rows its iterate violates (:meth:`InteriorPoint._iterate`, ``grow``); 0: never.
#: Friedman's problem (``benchmarks/_data.friedman``), 50 patterns, ``beta = 0.1``, n = 500
#: to 2,000, where the answer of the selected rows had violated dropped ones: 30 to 48
#: Newton iterations in one round, against 59 to 107 in two or three rounds without it
#: (1e-3: 41 to 68; 1e-2: 36 to 58; 1: 31 to 50); programs of one round unchanged.
GROW_GAP = 0.1

def _cholesky(M: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a (batch of) symmetric positive definite matrices, with a
    growing diagonal shift if rounding made one of them indefinite."""
    L, info = torch.linalg.cholesky_ex(M)
    if not bool((info > 0).any()):
        return L
    diag = torch.diagonal(M, dim1=-2, dim2=-1)
    scale = torch.clamp(diag.abs().amax(dim=-1, keepdim=True), min=torch.finfo(M.dtype).tiny)
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    for k in range(1, 8):
        shift = (10.0 ** (k - 14)) * scale[..., None] * eye
        L, info = torch.linalg.cholesky_ex(M + shift)
        if not bool((info > 0).any()):
            return L
    raise SolverError("InteriorPoint: the Newton matrix is not positive definite (check the data for duplicates "
                      "or a degenerate design)")


def _gram_lower(V: torch.Tensor, parts: int = 4) -> torch.Tensor:
    """``V^T V`` on and below the diagonal (what a Cholesky factorisation reads), by
    block columns: ``parts (parts + 1) / 2`` of the ``parts^2`` blocks of the product.
    Above the diagonal only the diagonal blocks are filled; the rest is zero."""
    k = V.shape[1]
    cuts = [(i * k) // parts for i in range(parts + 1)]
    out = V.new_zeros((k, k))
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b > a:
            out[a:, a:b] = V[:, a:].T @ V[:, a:b]
    return out


class _NewtonSystem:
    """Solver of ``M x = r`` with ``M = H + U U^T``, ``H`` block diagonal.

    ``U`` is split along the ``G`` blocks of ``H``; it is zero on the first ``l`` rows of
    every block, and blocks may share their part of ``U`` up to sign: block ``g``'s part is
    ``sign[g] [0; U_{cls[g]}]`` (e.g. the two groups ``v_i``, ``w_i`` of a two-layer ReLU
    pattern). Near the optimum the blocks of ``H`` alone are nearly singular (the barrier
    terms of an active neuron span twenty orders of magnitude; the loss term ``U U^T``
    supplies the missing curvature), so the Woodbury identity applied to ``H`` itself
    loses all accuracy. Each block is shifted by ``shift`` times its largest diagonal
    entry, and the Woodbury factorisation of ``P = H + delta I + U U^T`` preconditions
    conjugate gradients on ``M`` (which converge in a few steps, the shift being tiny
    against the spectrum of ``M``). Its ``k x k`` matrix ``I + U^T (H + delta I)^{-1} U``
    is ``I + sum_c U_c^T S_c U_c`` with ``S_c`` the sum over the blocks of class ``c`` of
    the last ``p - l`` rows and columns of ``(H_g + delta I)^{-1}``: one product over the
    classes (half the blocks when they come in sign pairs).

    With ``mix = (F, out)`` the factor is a constant part mixed by a loss Hessian factor:
    ``U`` holds the base part ``U_c`` (shape (q, n), ``q = p - l``) of each class ``c``
    feeding output ``out[c]``, and the factor's column ``a n + i`` (``k = n r`` of them) is
    ``U_c[:, i] F[i, out[c], a]``. The Woodbury matrix is then assembled from one
    ``n x n`` product per output, ``M_o = sum_{c: out[c] = o} U_c^T S_c U_c``: its block
    ``(a, b)`` is ``I + sum_o diag(F[:, o, a]) M_o diag(F[:, o, b])``, at ``1 / r^2`` of
    the cost of the ``k x k`` product, and ``U`` is applied at ``1 / r`` of its cost.

    Parameters
    ----------
    H : tensor (G, p, p), symmetric positive semi-definite blocks
    U : tensor (K, p - l, k), the low-rank factor of each class on the last ``p - l`` rows
        (with ``mix``: its base part, shape (K, p - l, n))
    cls : int tensor (G,) or None
        Class of each block (None: block ``g`` is class ``g``, ``K = G``).
    sign : tensor (G,) or None
        ``+1`` or ``-1`` per block (None: all ``+1``).
    shift : float
        Relative shift of the blocks in the preconditioner.
    gram : tensor (G p, G p) or None
        ``U U^T`` from an earlier system with the same ``U``, ``cls``, ``sign`` and ``mix`` (its
        :attr:`gram`; the interior point reuses it while the loss Hessian is constant).
        Used only when ``U`` has more columns than ``M`` has rows (the dense path), which
        factors ``M`` itself; the Woodbury path factors an ``k x k`` matrix instead.
    mix : (F, out) or None
        ``F`` (n, C, r), ``out`` int tensor (K,) in [0, C): the factor is ``U`` mixed by
        ``F`` as above (None: ``U`` is the factor).
    khatri_rao : (coef, X, Xt) or None
        ``U`` (with ``mix``: its base part) in factored form, row ``j d + e`` of class
        ``c`` being ``U_c[j d + e, i] = coef[i, c, j] X[i, e]`` (``coef`` (n, K, m), ``X``
        (n, d), ``Xt`` its transpose, contiguous: the operator's
        :meth:`~convexrelu.operators.BlockOperator.features_t`, kept from one Newton system to
        the next; ``q = m d``): the interior point's factor ``A^T``, each block's model
        coefficients times the features. ``U^T x`` and ``U w`` (every conjugate gradient
        step, every preconditioner solve) are then the operator's model and adjoint
        products, ``colsum(X^T * (x^T @ coef^T))`` and ``(X * w)^T coef``
        (:func:`~convexrelu.operators.coefficient_model`, ``coefficient_adjoint``): ``2 n K m d``
        flops reading ``coef`` (``n K m`` numbers) instead of the ``n K m d`` of ``U``
        (which is still formed, for the Woodbury matrix).
    """

    gram: torch.Tensor | None = None  # U U^T, dense path only

    def __init__(self, H: torch.Tensor, U: torch.Tensor, cls: torch.Tensor | None = None,
                 sign: torch.Tensor | None = None, shift: float = 1e-14, gram: torch.Tensor | None = None,
                 mix: tuple[torch.Tensor, torch.Tensor] | None = None,
                 khatri_rao: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        G, p, _ = H.shape
        K, q, k = U.shape
        if mix is not None:
            k = mix[0].shape[0] * mix[0].shape[2]
        kw = dict(dtype=H.dtype, device=H.device)
        self.G, self.p, self.K, self.lead = G, p, K, p - q
        self.cls = torch.arange(G, device=H.device) if cls is None else cls
        self.sign = torch.ones(G, **kw) if sign is None else sign.to(H.dtype)
        self.H, self.U, self.mix = H, U, mix
        self.Uf = U.reshape(K * q, U.shape[2])
        self.kr = None  # (X, X^T, parts): per part (its output or None, its classes or None, their coef columns)
        if khatri_rao is not None:
            coef, X, Xt = khatri_rao
            if coef.shape[:2] != (U.shape[2], K) or coef.shape[2] * X.shape[1] != q or X.shape[0] != U.shape[2] or (
                    Xt.shape != X.T.shape):
                raise ValueError(f"khatri_rao: expected coef (n, K, m) and X (n, d) with m d = {q}, n = {U.shape[2]}, "
                                 f"K = {K}; got {tuple(coef.shape)} and {tuple(X.shape)}")
            if mix is None:
                parts = [(None, None, coef.reshape(coef.shape[0], -1))]
            else:  # one part per output with classes
                mines = [torch.nonzero(mix[1] == o).reshape(-1) for o in range(mix[0].shape[1])]
                parts = [(o, mine, coef[:, mine].reshape(coef.shape[0], -1))
                         for o, mine in enumerate(mines) if mine.numel()]
            self.kr = (X, Xt, parts)
        diag = torch.diagonal(H, dim1=1, dim2=2)
        delta = shift * torch.clamp(diag.amax(dim=1), min=1.0)
        Hs = H + delta[:, None, None] * torch.eye(p, **kw)
        self.woodbury = k <= G * p
        if self.woodbury:
            # the blocks' inverse Cholesky factors, applied by batched products (this only
            # preconditions); (Hs^{-1}) on the last q rows and columns is (L_qq L_qq^T)^{-1},
            # L_qq^{-1} the last q rows and columns of L^{-1}
            self.Linv = torch.linalg.solve_triangular(_cholesky(Hs), torch.eye(p, **kw).expand(G, p, p), upper=False)
            Linv = self.Linv[:, self.lead:, self.lead:]
            S = torch.zeros((K, q, q), **kw).index_add_(0, self.cls, Linv.mT @ Linv)
            R = _cholesky(S)
            V = R.mT.contiguous() @ U  # V_c^T V_c = U_c^T S_c U_c
            cap = _gram_lower(V.reshape(K * q, V.shape[2])) if mix is None else _mixed_capacitance(V, *mix)
            cap.diagonal().add_(1.0)
            self.Lc = _cholesky(cap)  # I + U^T Hs^{-1} U
        else:
            # the dense matrix: U U^T (kept in ``gram`` for the next system with the same U)
            # plus the shifted blocks on its diagonal
            self.gram = _lowrank_gram(U, self.cls, self.sign, G, p, mix) if gram is None else gram
            dense = self.gram.clone()
            idx = torch.arange(G, device=H.device)
            dense.view(G, p, G, p)[idx, :, idx, :] += Hs
            self.Lf = _cholesky(dense)

    def _lowrank_t(self, x: torch.Tensor) -> torch.Tensor:
        """``U^T x`` for ``x`` of shape (G, p): shape (k,)."""
        agg = torch.zeros((self.K, self.p - self.lead), dtype=x.dtype, device=x.device)
        agg.index_add_(0, self.cls, self.sign[:, None] * x[:, self.lead:])
        if self.kr is not None:
            X, Xt, parts = self.kr
            if self.mix is None:
                return coefficient_model(parts[0][2], Xt, agg.reshape(-1, X.shape[1]).T)
            per_output = agg.new_zeros((self.mix[0].shape[1], X.shape[0]))
            for o, mine, coef in parts:
                per_output[o] = coefficient_model(coef, Xt, agg[mine].reshape(-1, X.shape[1]).T)
        elif self.mix is None:
            return self.Uf.T @ agg.reshape(-1)
        else:
            t = (agg[:, None, :] @ self.U)[:, 0, :]  # (K, n): U_c^T agg_c
            per_output = t.new_zeros((self.mix[0].shape[1], t.shape[1])).index_add_(0, self.mix[1], t)  # (C, n)
        return torch.einsum("on,noa->an", per_output, self.mix[0]).reshape(-1)

    def _lowrank(self, w: torch.Tensor) -> torch.Tensor:
        """``U w`` for ``w`` of shape (k,) or (k, j): shape (G, p) or (G, p, j)."""
        q = self.p - self.lead
        if self.mix is None:
            b = _kr_adjoint(self.kr[2][0][2], self.kr[0], w) if self.kr is not None else self.Uf @ w
        else:
            F, out = self.mix
            n, _, r = F.shape
            per_output = torch.einsum("noa,anj->onj", F, w.reshape(r, n, -1))  # (C, n, j)
            if self.kr is not None:
                b = w.new_empty((self.K, q, per_output.shape[2]))
                for o, mine, coef in self.kr[2]:
                    b[mine] = _kr_adjoint(coef, self.kr[0], per_output[o]).reshape(len(mine), q, -1)
            else:
                b = self.U @ per_output[out]
        b = b.reshape(self.K, q, *w.shape[1:])[self.cls]
        b = b * self.sign.reshape(-1, *([1] * (b.dim() - 1)))
        return torch.cat([b.new_zeros((self.G, self.lead, *b.shape[2:])), b], 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``M x`` for ``x`` of shape (G, p)."""
        return (self.H @ x[:, :, None])[:, :, 0] + self._lowrank(self._lowrank_t(x))

    def solve(self, r: torch.Tensor, max_iter: int = 25, rtol: float = 1e-13) -> torch.Tensor:
        """``x`` of shape (G, p) for ``r`` of shape (G, p): preconditioned conjugate
        gradients from the preconditioner's solution, until ``||M x - r|| <= rtol ||r||``."""
        x = self._precondition(r)
        res = r - self.apply(x)
        bound = rtol * float(torch.linalg.vector_norm(r))
        p, ry_old = None, 0.0
        for _ in range(max_iter):
            if float(torch.linalg.vector_norm(res)) <= bound:
                break
            y = self._precondition(res)
            ry = float(torch.sum(res * y))
            if not ry > 0:
                break
            p = y if p is None else y + (ry / ry_old) * p
            Mp = self.apply(p)
            pMp = float(torch.sum(p * Mp))
            if not pMp > 0:
                break
            a = ry / pMp
            x = x + a * p
            res = res - a * Mp
            ry_old = ry
        return x

    def _precondition(self, r: torch.Tensor) -> torch.Tensor:
        """``P^{-1} r`` by the Woodbury identity (or the dense factor)."""
        if not self.woodbury:
            return torch.cholesky_solve(r.reshape(-1, 1), self.Lf).reshape(self.G, self.p)
        x = self._block_solve(r)
        w = torch.cholesky_solve(self._lowrank_t(x)[:, None], self.Lc)[:, 0]
        return x - self._block_solve(self._lowrank(w))

    def _block_solve(self, r: torch.Tensor) -> torch.Tensor:
        """``(H + delta I)^{-1} r`` for ``r`` of shape (G, p)."""
        return (self.Linv.mT @ (self.Linv @ r[:, :, None]))[:, :, 0]


def _kr_adjoint(coef: torch.Tensor, X: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``U w`` for the factor ``U_c[j d + e, i] = coef[i, c m + j] X[i, e]``
    (:class:`_NewtonSystem`'s ``khatri_rao``; ``coef`` (n, K m), ``X`` (n, d)) and ``w`` of
    shape (n,) or (n, j): :func:`~convexrelu.operators.coefficient_adjoint` per column of
    ``w``, shape (K m, d, j) (row ``c m + j``: rows ``j d + e`` of class ``c`` once reshaped
    to (K, m d, j))."""
    cols = w.reshape(X.shape[0], -1)
    return torch.stack([coefficient_adjoint(coef, X, cols[:, l:l + 1]).T for l in range(cols.shape[1])], -1)


def _mixed_factor(U: torch.Tensor, F: torch.Tensor, out: torch.Tensor, coef: torch.Tensor | None = None):
    """``(U, mix, coef)`` for :class:`_NewtonSystem` from the base part ``U`` (K, q, n) of
    the low-rank factor, the loss's Hessian factor ``F`` (n, C, r), the output of every
    class (K,) and optionally ``U``'s coefficients (``khatri_rao``; (n, K, m)): with one
    output and ``r = 1`` the factor itself, ``U_c diag(F[:, 0, 0])`` (``U`` itself, not a
    copy, when ``F = 1``: the squared loss), its coefficients scaled alike, and no mix;
    otherwise ``U``, ``mix = (F, out)`` and ``coef``."""
    if F.shape[1:] == (1, 1):
        f = F[:, 0, 0]
        if bool(torch.all(f == 1)):
            return U, None, coef
        return U * f, None, (None if coef is None else coef * f[:, None, None])
    return U, (F, out), coef


def _mixed_capacitance(V: torch.Tensor, F: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``sum_c W_c^T W_c`` for the mixed factors ``W_c[:, a n + i] = V_c[:, i] F[i, out[c], a]``
    (:class:`_NewtonSystem`), on and below the diagonal: shape (n r, n r).

    One product ``M_o = sum_{c: out[c] = o} V_c^T V_c`` (n x n, :func:`_gram_lower`, then
    made symmetric) per output ``o``; block ``(a, b)``, ``a >= b``, of the result is
    ``sum_o diag(F[:, o, a]) M_o diag(F[:, o, b])``. The blocks above are left zero."""
    K, q, n = V.shape
    r = F.shape[2]
    cap = V.new_zeros((r, n, r, n))
    for o in range(F.shape[1]):
        mine = torch.nonzero(out == o).reshape(-1)
        if not mine.numel():
            continue
        M = _gram_lower(V[mine].reshape(-1, n))
        below = torch.tril(M, -1)
        M.tril_().add_(below.mT)  # (two n x n arrays at a time)
        del below
        for a in range(r):
            Ma = M * F[:, o, a, None]
            for b in range(a + 1):
                cap[a, :, b, :].addcmul_(Ma, F[None, :, o, b])
    return cap.view(n * r, n * r)


def _lowrank_gram(U: torch.Tensor, cls: torch.Tensor, sign: torch.Tensor, G: int, p: int,
                  mix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``U U^T`` of the Newton system's low-rank term as a dense (G p, G p) matrix.

    ``U`` has shape (K, q, k): the part of class ``c`` on the last ``q`` rows of its
    blocks; block ``g`` holds ``sign[g] U[cls[g]]``. One product of the classes' parts,
    ``(K q)^2 k`` flops (a quarter of the product over the blocks when the blocks come in
    sign pairs), expanded to the blocks with their signs; zero on the first ``p - q``
    rows and columns of every block. With ``mix = (F, out)`` (:class:`_NewtonSystem`)
    ``U`` is the base part (K, q, n) and the product of classes ``c``, ``c'`` is
    ``U_c diag(h) U_c'^T`` with ``h = (F F^T)[:, out[c], out[c']]``, the loss Hessian:
    ``(K q)^2 n`` flops, ``1 / r`` of the product of the mixed factors."""
    K, q, k = U.shape
    if mix is None:
        W = U.reshape(K * q, k)
        S = (W @ W.T).view(K, q, K, q)
    else:
        F, out = mix
        h = F @ F.mT  # (n, C, C)
        S = U.new_empty((K, q, K, q))
        outputs = range(F.shape[1])
        mine = [torch.nonzero(out == o).reshape(-1) for o in outputs]
        for o in outputs:
            for o2 in outputs[o:]:
                if mine[o].numel() and mine[o2].numel():
                    Wa, Wb = U[mine[o]].reshape(-1, k), U[mine[o2]].reshape(-1, k)
                    block = ((Wa * h[:, o, o2]) @ Wb.T).view(len(mine[o]), q, len(mine[o2]), q)
                    S[mine[o][:, None], :, mine[o2][None, :], :] = block.permute(0, 2, 1, 3)
                    S[mine[o2][:, None], :, mine[o][None, :], :] = block.permute(2, 0, 3, 1)
    full = torch.zeros((G, p, G, p), dtype=U.dtype, device=U.device)
    full[:, p - q:, :, p - q:] = S[cls][:, :, cls] * (sign[:, None, None, None] * sign[None, None, :, None])
    return full.view(G * p, G * p)


#: The interior point's gaps are relative to the objective down to this fraction of the
#: loss of the zero network, absolute below: scale-free. (A floor of 1 had made them
#: absolute for objectives below 1: targets times 1e3 with a small beta, solved in their
#: units at objectives of 1e-6, stopped 3 % above the optimum.)
GAP_FLOOR = 1e-10


def _gap_floor(loss_at_zero: float) -> float:
    """:data:`GAP_FLOOR` times the objective of the zero network, ``l(0)`` (at least the
    smallest normal float)."""
    return max(GAP_FLOOR * abs(loss_at_zero), sys.float_info.min)



class InteriorPoint(Solver):
    """Primal-dual interior-point solver (Mehrotra predictor-corrector) of every program.

    Solves ``min_Q l(A Q, Y) + beta sum_b ||q_b||  s.t.  K Q >= 0`` (``beta > 0``) through
    the cone formulation of the module docstring. Stops when the relative complementarity
    gap ``(s^T z + sum_b (t_b y0_b + q_b^T y1_b)) / max(1, |objective|)`` and the relative
    primal residual ``||K Q - s||_inf / max(1, ||K Q||_inf)`` are at most ``tol`` and
    either the relative dual residual or the certified relative duality gap of the
    multipliers (theory.md, "Duality and certificates") is at most ``tol``. The final
    point is then made exactly feasible (``K Q >= 0`` up to ``1e-10`` relative, by
    :func:`~.auglag.restore_feasibility`), blocks of norm below ``tol`` times the largest
    are set to zero when that neither raises the objective by more than ``tol`` nor the
    violation, and the certified lower bound is reported (``Solution.lower_bound``).
    A float32 program is solved in float64 (the Newton systems need it).

    Parameters
    ----------
    tol : float in (0, 1), default 1e-7
        Relative tolerance (floored at ``1000 eps`` of float64).
    max_iter : int, default 300
        Newton iterations at most (each: one factorisation, two or three solves), over
        all the rounds of ``row_fraction``. The count grows with the program: 36 on the
        three-layer benchmark (n=500; 57 with every cone row), and with every row 100 at
        n=4,000 (d=10, 100 patterns), 101 at n=10,000 and 137 at n=20,000 (d=50, 500
        patterns; on a GPU).
    step_fraction : float in (0, 1), default 0.99
        Fraction of the step to the boundary of the cones taken at most.
    correctors : int, default 0
        Gondzio centrality correctors tried per iteration (0: plain Mehrotra).
        Each costs one more solve and step computation; here they save fewer iterations
        than they cost (over the 27 programs of ``benchmarks/bench_ipm_robustness.py``:
        673 iterations in 10.2 s with one, 731 in 9.7 s without).
    max_stall : int, default 5
        Stop (with a ConvergenceWarning, status "stalled") when, with the complementarity
        and primal residuals below ``tol``, the certified gap has not halved in this many
        iterations, or when this many steps in a row are shorter than 1e-3 (rounding near
        the boundary of the cones: the point is kept, with its certified gap).
    max_time : float or None, default None
        Wall-time budget in seconds (the solve stops unconverged, with a warning).
    row_fraction : float or None, default 0.5
        Cone rows the barrier keeps (:mod:`._facets`): in every block's cone the rows whose
        leverage at the cone's analytic centre is at least this fraction of the mean; the
        others are likely redundant (implied by the rest), and a barrier term of a redundant
        row only bends the central path (on the benchmarks of ``benchmarks/bench_solvers.py``
        the three-layer program takes 36 iterations instead of 57, the two-layer ReLU one 19
        instead of 29). Dropped rows that the iterates violate near the optimum join on the
        way (``info["added_rows"]``); at the end every row is checked: if a dropped row is
        violated by more than ``tol`` (relative to ``max |K Q|``), the violated rows join and
        the iterations start again (``info["row_rounds"]``). None: every row. The selection is made
        whatever the samples per unknown (``benchmarks/bench_ipm_small_beta.py``, Friedman's
        problem, three-layer, 50 patterns, the Newton matrix factored itself: at 20,000 and
        40,000 samples, where the barrier had covered every row, 52 and 55 iterations
        instead of 69 and 66 at ``beta = 1e-3 n`` (19.4 s against 20.7 s, 47.3 s against
        46.2 s), 88 and 104 instead of 113 and 176 at ``beta = 1`` (33.4 s against 36.8 s,
        98.8 s against 144.5 s), certified gaps 2.0e-08 to 1.9e-05 against 1.0e-07 to
        4.7e-05; at 5,000 samples 47 and 78 iterations against 51 and 82, where before
        the dropped rows joined on the way, :data:`GROW_GAP`, the rounds took 154 at
        ``beta = 1``).
    verbose : bool, default False
        Log every iteration (``logging.getLogger("convexrelu.solvers.ipm")``).

    Notes
    -----
    ``Solution.info`` holds ``mu`` (the complementarity gap per pair), ``primal_residual``,
    ``dual_residual``, ``gap_residual``, ``certified_gap``, ``system`` ("woodbury" or
    "dense"), ``dead_groups`` (fixed at zero by the presolve), ``repair`` (what the
    feasibility repair did), ``zeroed_blocks``, ``row_rounds`` and ``kept_rows`` (the
    rounds of ``row_fraction`` and the fraction of the cone rows the last one kept). A warm
    start gives the starting ``Q`` (the multipliers restart): interior-point methods gain
    little from one.
    """

    name = "ipm"

    def __init__(self, tol: float = 1e-7, max_iter: int = 300, step_fraction: float = 0.99, correctors: int = 0,
                 max_stall: int = 5, max_time: float | None = None, row_fraction: float | None = 0.5,
                 verbose: bool = False):
        self.tol = check_number(tol, "tol", high=1.0)
        self.max_iter = check_count(max_iter, "max_iter")
        self.step_fraction = check_number(step_fraction, "step_fraction", high=1.0)
        self.max_stall = check_count(max_stall, "max_stall")
        self.correctors = check_count(correctors, "correctors", 0)
        self.max_time = check_max_time(max_time)
        self.row_fraction = check_number(row_fraction, "row_fraction", low_open=False, none_ok=True)
        self.verbose = bool(verbose)

    @on_live_groups
    def solve(self, program, init=None) -> Solution:
        start = time.perf_counter()
        if program.dtype != torch.float64:
            program = program.to(dtype=torch.float64)  # the Newton systems need float64
        if not program.beta > 0:
            raise ValueError(f"InteriorPoint: needs beta > 0 (the penalty keeps the Newton systems definite), got "
                             f"beta={program.beta}; use solver='cvxpy' or 'admm'")
        tol = _dtype_tol(self.tol, program.dtype)
        Q, _, _ = _initial_point(program, init)
        op = program.operator
        Q, z, run = self._rounds(program, Q, tol, start)
        res, it = run["res"], run["iterations"]
        lower = dual_lower_bound(program, Q, z)[0]  # before the clean-up below moves Q slightly
        stall_gap = relative_gap(program.objective(Q), lower, run["gap_floor"]) if run["stalled"] else None
        info = dict(res)
        info["system"] = run["system"]
        info["row_rounds"], info["kept_rows"] = run["row_rounds"], run["kept_rows"]
        info["added_rows"] = run["added_rows"]
        info["tol"] = tol
        if op.has_constraints:
            info["violation_before_repair"] = relative_violation(op, Q)
            Q = repaired(program, Q, info, self.max_time)
        Q, info["zeroed_blocks"] = _drop_negligible_blocks(program, Q, tol)
        stop = None if run["converged"] else (f"max_time={self.max_time:g}s" if run["timed_out"] else (
            f"stall ({run['stall_reason']}: rounding stops the progress near the boundary of the cones; "
            f"certified relative gap at the last point {stall_gap:.2e})"
            if run["stalled"] else f"max_iter={self.max_iter}"))
        return constrained_solution(
            program, Q, z, solver="ipm", label="InteriorPoint", knob="tol", converged=run["converged"], stop=stop,
            iterations=it, start=start, history=run["history"], info=info, lower_bound=lower,
            residuals=f"after {it} iterations with complementarity {res['gap_residual']:.3e}, primal residual "
                      f"{res['primal_residual']:.3e} and dual residual {res['dual_residual']:.3e} (tol {tol:.1e})",
        )

    def _rounds(self, program, Q0: torch.Tensor, tol: float, start: float):
        """The Newton iterations (:meth:`_iterate`) on the likely facets of the cones
        (``row_fraction``), the dropped rows its iterates violate joining on the way
        (``grow``), again from ``Q0`` with the violated rows added while a converged
        round's answer violates a dropped row by more than ``tol`` (at most three rounds,
        the last with every row; ``max_iter`` and ``max_time`` hold for them all).
        ``run`` adds ``row_rounds`` and ``kept_rows`` (the fraction of rows the last round
        kept) and sums the rounds' iterations, histories and ``added_rows``."""
        op = program.operator
        full = tuple(op.constraint_support())
        if self.row_fraction is None or not op.has_constraints:
            Q, z, run = self._iterate(program, Q0, tol, start, full, self.max_iter)
            return Q, z, {**run, "row_rounds": 1, "kept_rows": 1.0}
        rows = likely_facets(op, full, self.row_fraction)
        iterations, history, added = 0, [], 0
        for round_ in range(1, 4):
            Q, z, run = self._iterate(program, Q0, tol, start, rows, self.max_iter - iterations,
                                      grow=full if GROW_GAP > 0 else None)
            rows, added = run["rows"], added + run["added_rows"]
            iterations += run["iterations"]
            history += run["history"]
            cons = op.constraints(Q)
            scale = max(1.0, constraint_scale(cons))  # (as the primal residual)
            missed = tuple((c < -tol * scale) & f & ~r for c, f, r in zip(cons, full, rows))
            if not run["converged"] or iterations >= self.max_iter or not any(bool(m.any()) for m in missed):
                break  # (an unconverged answer is repaired on every row)
            logger.info("IPM: %d dropped cone rows are violated at the answer; again with them",
                        sum(int(m.sum()) for m in missed))
            rows = full if round_ == 2 else tuple(r | (c < 0) & f for r, c, f in zip(rows, cons, full))
        kept = sum(float(r.sum()) for r in rows) / max(1.0, sum(float(f.sum()) for f in full))
        return Q, z, {**run, "iterations": iterations, "history": history, "row_rounds": round_, "kept_rows": kept,
                      "added_rows": added}

    def _iterate(self, program, Q: torch.Tensor, tol: float, start: float, rows, max_iter: int, grow=None):
        """At most ``max_iter`` Newton iterations from ``Q`` with the cone rows ``rows`` (bool
        tensors, shapes ``op.constraint_shapes``): ``(Q, z, run)`` with ``z`` the multipliers
        of the linear cones (zero outside ``rows``) and ``run`` what the solution reports
        (residuals, history, iterations, why it stopped, the rows at the end).

        ``grow`` (bool tensors like ``rows``, or None): once the relative complementarity
        gap is at most :data:`GROW_GAP`, every row of ``grow`` outside the barrier that the
        iterate violates joins it, with slack and multiplier ``sqrt(mu)`` (a centred pair;
        the infeasible method removes the primal residual ``K Q - s`` of the new rows as of
        any other). Near the optimum the violated rows are those the answer would violate:
        the iterations go on instead of a new round from the start (:meth:`_rounds`)."""
        op, loss, Y, beta = program.operator, program.loss, program.Y, program.beta
        dtype, device = program.dtype, program.device
        kw = dict(dtype=dtype, device=device)
        X = op.X
        n, d = X.shape
        B = op.n_blocks
        gidx = op.padded_groups()
        G, m = gidx.shape
        classes = op.coefficient_classes()  # groups sharing their model part up to sign
        U, class_out, coef = self._base_factor(op, gidx, classes)  # A^T without the loss: constant
        factor = gram = None

        def to_groups(RQ, Rt):
            """(d, B) and (B,) -> (G, m (d + 1)): each group's t's, then its blocks."""
            return torch.cat([torch.cat([Rt, torch.zeros(1, **kw)])[gidx], op.to_groups(RQ)], 1)

        def from_groups(V):
            tp = torch.zeros(B + 1, **kw)
            tp[gidx.reshape(-1)] = V[:, :m].reshape(-1)
            return op.from_groups(V[:, m:]), tp[:B]

        # start: (t, q) = (||q|| + 1, q) and its dual (y0, y1) = (beta, 0) for the group-norm
        # cones (y0 = beta at every optimum), slacks and multipliers at one for the linear cones
        t = torch.linalg.vector_norm(Q, dim=0) + 1.0
        y0, y1 = beta * torch.ones(B, **kw), torch.zeros((d, B), **kw)  # dual of t_b >= ||q_b||
        cons = op.constraints(Q)
        # the rows of K in ``rows`` only: never those identically zero (e.g. a second-layer
        # row where no block of the group is active: 0 >= 0 has no interior), and not those
        # :meth:`_rounds` drops as likely redundant; a row left out has z = 0 and no step
        support = tuple(mask.to(dtype) for mask in rows)
        s = tuple(torch.clamp(c, min=1.0) for c in cons)
        z = tuple(mask.clone() for mask in support)
        n_pairs = sum(float(mask.sum()) for mask in support) + B
        Z0 = op.matvec(torch.zeros_like(Q))  # the zero network's output: the scales of the residuals
        g0 = op.adjoint(loss.grad(Z0, Y))
        dual_scale = max(1.0, float(torch.max(torch.abs(g0))), beta)
        gap_floor = _gap_floor(float(loss.value(Z0, Y)))
        tau = self.step_fraction
        history: list = []
        converged = timed_out = False
        res = {"mu": math.inf, "primal_residual": math.inf, "dual_residual": math.inf, "gap_residual": math.inf}
        system = None
        it = 0
        deadline = None if self.max_time is None else start + self.max_time
        stalled, best_cert, short = 0, math.inf, 0
        why = None  # what stopped the progress, for the warning
        added = 0
        for it in range(1, max_iter + 1):
            Z, cons = op.apply(Q)
            if grow is not None and res["gap_residual"] <= GROW_GAP:
                new = tuple((c < 0) & f & (mask == 0) for c, f, mask in zip(cons, grow, support))
                count = sum(int(x.sum()) for x in new)
                if count:
                    v = math.sqrt(res["mu"])  # s = z: centred, s z = mu
                    support = tuple(mask + x.to(dtype) for mask, x in zip(support, new))
                    s = tuple(torch.where(x, v, si) for x, si in zip(new, s))
                    z = tuple(torch.where(x, v, zi) for x, zi in zip(new, z))
                    n_pairs += count
                    added += count
            norms = torch.linalg.vector_norm(Q, dim=0)
            # residuals: stationarity in Q and t, linear feasibility, complementarity
            rQ, rt = _stationarity(op, loss, Z, Y, z, y0, y1, beta)
            rp = tuple((c - si) * mask for c, si, mask in zip(cons, s, support))
            gap = sum(_dot(si, zi) for si, zi in zip(s, z)) + float(torch.sum(t * y0 + torch.sum(Q * y1, 0)))
            mu = gap / n_pairs
            obj = float(loss.value(Z, Y)) + beta * float(torch.sum(norms))
            if not math.isfinite(obj) or not math.isfinite(gap):
                raise SolverError(f"InteriorPoint: the iterates are not finite at iteration {it}; check the data")
            history.append(obj)
            res = {
                "mu": mu,
                "primal_residual": _sup(*rp) / max(1.0, constraint_scale(cons)),
                "dual_residual": _sup(rQ, rt) / dual_scale,
                "gap_residual": gap / max(abs(obj), gap_floor),
            }
            if self.verbose:
                logger.info("IPM it %d: objective %.12g, mu %.2e, primal %.2e, dual %.2e, gap %.2e", it, obj, mu,
                            res["primal_residual"], res["dual_residual"], res["gap_residual"])
            if max(res["primal_residual"], res["gap_residual"]) <= tol:
                # the certified gap of the multipliers (what the solution reports) decides
                lower, _ = dual_lower_bound(program, Q, z)
                res["certified_gap"] = relative_gap(obj, lower, gap_floor)
                if self.verbose:
                    logger.info("IPM it %d: certified relative gap %.2e", it, res["certified_gap"])
                if res["dual_residual"] <= tol or res["certified_gap"] <= tol:
                    converged = True
                    break
                stalled = stalled + 1 if res["certified_gap"] > 0.5 * best_cert else 0
                best_cert = min(best_cert, res["certified_gap"])
                if stalled >= self.max_stall:
                    why = f"the certified gap stopped decreasing for {self.max_stall} iterations"
                    break
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            # Nesterov-Todd scaling of the cones t_b >= ||q_b|| and the scaled point lambda
            nt = _steps.nt_scaling(t, Q, y0, y1)
            lam0, lam1 = _steps.nt_apply(*nt, y0, y1)
            Winv2 = _steps.nt_inverse_square(*nt)
            inv_s = tuple(1.0 / si for si in s)
            zs = tuple(zi * isi for zi, isi in zip(z, inv_s))  # z / s, the barrier weights
            zsrp = tuple(a * b for a, b in zip(zs, rp))
            if factor is None or not loss.quadratic:  # a quadratic loss has a constant Hessian
                factor = _mixed_factor(U, loss.hessian_factor(Z, Y), class_out, coef)
                gram = None  # (U U^T of the dense path: constant along with the factor)
            try:
                system = self._newton_system(op, *factor, Winv2, zs, gidx, classes, gram=gram)
                gram = system.gram
            except SolverError:
                if it == 1:
                    raise
                stalled = self.max_stall  # rounding ended the progress: keep the last point
                why = "the Newton system could not be factored"
                break

            def direction(rc, rc0, rc1):
                """Newton direction for the complementarity residuals ``rc`` (linear cones)
                and ``(rc0, rc1)`` (second-order cones, scaled: lambda o (...) = -rc)."""
                rcs = tuple(rci * isi for rci, isi in zip(rc, inv_s))
                w = tuple(a + b for a, b in zip(rcs, zsrp))  # (rc + z rp) / s
                # second-order cones: W^{-1} (lambda <> rc), with G = -I on (t, q) and s = (t, q)
                e0, e1 = _steps.nt_apply(*nt, *_steps.soc_divide(lam0, lam1, rc0, rc1), inverse=True)
                RQ = -rQ - e1 - (op.adjoint(None, w) if cons else 0.0)
                Rt = -rt - e0
                dQ, dt = from_groups(system.solve(to_groups(RQ, Rt), rtol=_CG_RTOL))
                ds = tuple((k + rpi) * mask for k, rpi, mask in zip(op.constraints(dQ), rp, support))
                dz = tuple(torch.addcmul(a, b, dsi).neg_() for a, b, dsi in zip(rcs, zs, ds))  # -(rc + z ds) / s
                # dy = -W^{-1} (lambda <> rc + W^{-1} dx), applying W^{-1} in product form (more
                # accurate than the dense W^{-2} near the boundary of the cones)
                f0, f1 = _steps.nt_apply(*nt, dt, dQ, inverse=True)
                g0, g1 = _steps.nt_apply(*nt, f0, f1, inverse=True)
                dy0, dy1 = -e0 - g0, -e1 - g1
                return dQ, dt, ds, dz, dy0, dy1

            def steps(dQ, dt, ds, dz, dy0, dy1):
                ap = min(_steps.max_step(s, ds), _steps.soc_max_step(t, Q, dt, dQ))
                ad = min(_steps.max_step(z, dz), _steps.soc_max_step(y0, y1, dy0, dy1))
                return ap, ad

            # predictor (affine scaling), then Mehrotra's centring and corrector
            sz = tuple(si * zi for si, zi in zip(s, z))
            ll0, ll1 = _steps.soc_product(lam0, lam1, lam0, lam1)
            aff = direction(sz, ll0, ll1)
            dQ, dt, ds, dz, dy0, dy1 = aff
            ap, ad = steps(*aff)
            gap_aff = sum(_dot(si, zi) + ad * _dot(si, dzi) + ap * _dot(dsi, zi) + ap * ad * _dot(dsi, dzi)
                          for si, dsi, zi, dzi in zip(s, ds, z, dz))
            gap_aff += float(torch.sum((t + ap * dt) * (y0 + ad * dy0) + torch.sum((Q + ap * dQ) * (y1 + ad * dy1), 0)))
            # Mehrotra's centring, but mu may not outrun the dual residual (with a loss that is
            # not quadratic the iterates would otherwise reach the boundary of the cones first)
            sigma = _steps.balanced_centering(_steps.mehrotra_centering(gap_aff / n_pairs, mu),
                                              res["dual_residual"], res["gap_residual"])
            target = sigma * mu
            rc = tuple(torch.addcmul(a, dsi, dzi).sub_(target * mask) for a, dsi, dzi, mask in zip(sz, ds, dz, support))
            # second-order correction in the scaled space: (W^{-T} ds) o (W dz)
            u0, u1 = _steps.nt_apply(*nt, dt, dQ, inverse=True)
            v0, v1 = _steps.nt_apply(*nt, dy0, dy1)
            c0, c1 = _steps.soc_product(u0, u1, v0, v1)
            rc0, rc1 = ll0 + c0 - target, ll1 + c1
            full = direction(rc, rc0, rc1)
            ap, ad = steps(*full)
            alpha = min(1.0, tau * ap, tau * ad)
            # Gondzio's centrality correctors on the linear cones: push the complementarity
            # products of a longer trial step into [0.1, 10] sigma mu, keep a corrector
            # only if it lengthens the step enough
            for _ in range(self.correctors if cons else 0):
                trial = min(1.0, 1.5 * alpha + 0.1)
                _, _, ds_, dz_, _, _ = full
                v = tuple((si + trial * a) * (zi + trial * b) for si, a, zi, b in zip(s, ds_, z, dz_))
                corr = tuple(((torch.clamp(vi, 0.1 * target, 10.0 * target) - vi).clamp(min=-10.0 * target)) * mask
                             for vi, mask in zip(v, support))
                cand = direction(tuple(a - c for a, c in zip(rc, corr)), rc0, rc1)
                ap_c, ad_c = steps(*cand)
                alpha_c = min(1.0, tau * ap_c, tau * ad_c)
                if alpha_c < alpha + 0.1 * (trial - alpha):
                    break
                full, alpha = cand, alpha_c
                rc = tuple(a - c for a, c in zip(rc, corr))
            dQ, dt, ds, dz, dy0, dy1 = full
            if self.verbose:
                logger.info("IPM step %.3g sigma %.3g (primal %.3g dual %.3g)", alpha, sigma, ap, ad)
            # (ds and dz are finite with dQ: ds = K dQ + rp, dz = -(rc + z ds) / s)
            if not all(bool(torch.isfinite(v).all()) for v in (dQ, dt, dy0, dy1)):
                stalled = self.max_stall  # rounding ended the progress: keep the last point
                why = "the Newton direction was not finite"
                break
            # a loss that is not quadratic (logistic, softmax): Newton steps are damped until
            # the stationarity residual decreases (it is linear in the step for a quadratic one)
            r_now = _sup(rQ, rt)
            floor = 10.0 * tol * dual_scale
            for _ in range(0 if loss.quadratic else 40):
                r_new = _sup(*_stationarity(op, loss, op.matvec(Q + alpha * dQ), Y,
                                            tuple(zi + alpha * dzi for zi, dzi in zip(z, dz)), y0 + alpha * dy0,
                                            y1 + alpha * dy1, beta))
                if r_new <= max((1.0 - 0.01 * alpha) * r_now, floor):
                    break
                alpha *= 0.5
            short = short + 1 if alpha < 1e-3 else 0
            if short >= self.max_stall:
                stalled = self.max_stall
                why = f"{self.max_stall} steps in a row were shorter than 1e-3"
                break
            Q = Q + alpha * dQ
            t = t + alpha * dt
            s = tuple(torch.add(si, dsi, alpha=alpha) for si, dsi in zip(s, ds))
            z = tuple(torch.add(zi, dzi, alpha=alpha) for zi, dzi in zip(z, dz))
            y0 = y0 + alpha * dy0
            y1 = y1 + alpha * dy1
        run = {"res": res, "iterations": it, "history": history, "converged": converged, "timed_out": timed_out,
               "rows": tuple(mask > 0 for mask in support), "added_rows": added,
               "gap_floor": gap_floor,
               "stalled": stalled >= self.max_stall, "stall_reason": why,
               "system": None if system is None else ("woodbury" if system.woodbury else "dense")}
        return Q, z, run

    @staticmethod
    def _newton_system(op, U, mix, coef, Winv2, zs, gidx, classes, gram=None) -> _NewtonSystem:
        """The matrix of the reduced Newton system at the current point (module docstring):
        group blocks ordered ``(t_1, ..., t_m, q_1, ..., q_m)`` (the loss term, ``U`` from
        :meth:`_base_factor` mixed by ``mix = (F, out)`` or formed, :func:`_mixed_factor`, is
        zero on the t rows, which come first so that the Woodbury product skips them;
        ``coef``: its coefficients, applied with the features, ``khatri_rao``).
        ``gram``: ``U U^T`` of an earlier system with this ``U`` and ``mix``."""
        G, m = gidx.shape
        d = op.n_features
        md = m * d
        kw = dict(dtype=Winv2.dtype, device=Winv2.device)
        H = torch.zeros((G, m * (d + 1), m * (d + 1)), **kw)
        if op.has_constraints:
            H[:, m:, m:] = op.constraint_gram(zs)
        # W^{-2} of each cone t_b >= ||q_b|| (padding slots: identity)
        pad = torch.eye(d + 1, **kw)[None]
        Wp = torch.cat([Winv2, pad])[gidx]  # (G, m, d + 1, d + 1)
        idx = torch.arange(m, device=Winv2.device)
        H5 = H[:, m:, m:].view(G, m, d, m, d)
        H5[:, idx, :, idx, :] += Wp[:, :, 1:, 1:].transpose(0, 1)
        cross = torch.diag_embed(Wp[:, :, 1:, 0].transpose(1, 2)).permute(0, 2, 1, 3).reshape(G, md, m)
        H[:, m:, :m] = cross
        H[:, :m, m:] = cross.transpose(1, 2)
        H.diagonal(dim1=1, dim2=2)[:, :m] += Wp[:, :, 0, 0]
        cls, sign, _ = classes
        return _NewtonSystem(H, U, cls, sign, gram=gram, mix=mix,
                             khatri_rao=None if coef is None else (coef, op.X, op.features_t()))

    @staticmethod
    def _base_factor(op, gidx, classes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``A^T`` on the q rows, one part per class of groups (the groups of a class share
        it up to sign), the output of each class and the part's coefficients: shapes
        (K, m d, n), (K,) and (n, K, m), the part of class ``c`` being ``coef[:, c, j] X[:, e]``
        on row ``j d + e``. The low-rank factor of the Newton matrix is this part mixed by
        the loss's Hessian factor (``U F``, :class:`_NewtonSystem`'s ``mix``), so it is built
        once per solve."""
        _, _, reps = classes
        n, d = op.X.shape
        coef, _ = op.model_coefficients()  # (n, B)
        cg = torch.cat([coef, coef.new_zeros((n, 1))], 1)[:, gidx[reps]]  # (n, K, m)
        base = torch.einsum("rgj,re->gjer", cg, op.X).reshape(len(reps), gidx.shape[1] * d, n).contiguous()
        return base, torch.as_tensor(op.output_np, device=reps.device)[reps], cg


def _stationarity(op, loss, Z, Y, z, y0, y1, beta):
    """Gradient of the Lagrangian in ``(Q, t)`` at model output ``Z = A Q``:
    ``(A^T grad l(Z) - K^T z - y1, beta - y0)``, shapes (d, B) and (B,)."""
    return op.adjoint(loss.grad(Z, Y), tuple(-zi for zi in z)) - y1, beta - y0


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sum(a * b)`` in one pass."""
    return float(torch.dot(a.reshape(-1), b.reshape(-1))) if a.numel() else 0.0


def _sup(*arrays) -> float:
    """Largest absolute entry over the tensors (0 for empty ones)."""
    return max((float(torch.max(torch.abs(a))) for a in arrays if a.numel()), default=0.0)


def _drop_negligible_blocks(program, Q: torch.Tensor, tol: float):
    """Zero the blocks whose norm is below ``tol`` times the largest (interior
    points leave them tiny but non-zero), when that neither raises the objective by more
    than ``tol`` relative nor the cone violation; all of them when ``Q = 0`` is at least
    as good (above the zero threshold of beta the optimum is 0, and the interior point
    stops at a tiny ``Q``). Returns ``(Q, number zeroed)``."""
    norms = torch.linalg.vector_norm(Q, dim=0)
    top = float(norms.max()) if norms.numel() else 0.0
    if top == 0:
        return Q, 0
    f0 = program.objective(Q)
    if program.objective(torch.zeros_like(Q)) <= f0:  # never worse: 0 is the optimum there
        return torch.zeros_like(Q), int((norms > 0).sum())
    small = (norms > 0) & (norms <= tol * top)
    if not bool(small.any()):
        return Q, 0
    Qz = Q * (~small).to(Q.dtype)
    f1 = program.objective(Qz)
    op = program.operator
    if f1 <= f0 + tol * abs(f0) and (not op.has_constraints or
                                                relative_violation(op, Qz) <= max(relative_violation(op, Q), 1e-10)):
        return Qz, int(small.sum())
    return Q, 0
