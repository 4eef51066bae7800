"""Atom search: the pricing step of pattern pursuit and of the certificates
(theory.md, "Where patterns come from", *Pursuit*, and "Duality and certificates").

The programs are ``min_z l(z) + beta gauge_G(z)`` over the atoms ``G`` of one
architecture. Given the design matrix ``X`` (n, d) and a dual point ``V`` (n, C) (the
gradient ``grad l(z)`` at the current model output; the residual ``z - y`` for the
squared loss), a pattern can lower the objective only if one of its atoms has
``|v_k^T g| > beta`` for some output ``k``. The atoms are

- two-layer ReLU: ``g = (X u)_+``, ``||u|| <= 1``;
- gated ReLU: ``g = 1[X h >= 0] X u``, ``||u|| <= 1`` (for a fixed gate the best ``u``
  gives ``||X^T D v||``);
- three-layer (C3): ``g = ((X W1)_+ w2)_+``, ``||W1||_F <= 1``, ``||w2|| <= 1``.

:func:`search_atoms` maximises ``s v_k^T g`` for every output ``k`` and sign ``s`` by
projected Adam ascent from many random and data-driven starts at once (one batched
tensor per parameter, shape ``(targets, starts, ...)``). It is a local search: what it
finds is attained by a real atom (a valid *lower* estimate of the maximum), never a
proof that no larger value exists.

:func:`exact_atom_max` computes a rigorous *upper* bound on the maximum over every atom
of a program's pattern set: for each pattern the maximum of a linear function over the
cone and the unit ball is a small SOCP; its Lagrange multipliers ``Lambda >= 0`` of the
cone constraints give ``max <= max_b ||(A^T V + K^T Lambda)_b||`` for any
``Lambda >= 0`` (weak duality), tight at the SOCP's optimal multipliers. Over an exactly
enumerated pattern set this is the maximum over all atoms of the architecture.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import torch

from .operators import BlockOperator
from .patterns import ThreeLayerPatterns, TwoLayerPatterns, three_layer_patterns_of

__all__ = [
    "AtomSearchResult",
    "ExactAtomMax",
    "architecture_of",
    "dual_point",
    "search_atoms",
    "search_program",
    "exact_atom_max",
    "pattern_keys",
]

ARCHITECTURES = ("two_layer", "gated", "three_layer")


# --------------------------------------------------------------------------- small helpers
def architecture_of(program) -> str:
    """``"two_layer"``, ``"gated"`` or ``"three_layer"`` from a program's type."""
    if hasattr(program, "hidden") and isinstance(getattr(program, "patterns", None), ThreeLayerPatterns):
        return "three_layer"
    if getattr(program, "gated", False):
        return "gated"
    if isinstance(getattr(program, "patterns", None), TwoLayerPatterns):
        return "two_layer"
    raise TypeError(f"program: expected a two-layer, gated or three-layer program, got {type(program).__name__}")


def dual_point(program, Q) -> np.ndarray:
    """``V = grad l(A Q, Y)`` (n, C): the dual point of theory.md, "Duality and certificates"."""
    Qt = program.as_tensor(Q)
    return program.loss.grad(program.operator.matvec(Qt), program.Y).detach().cpu().numpy().astype(np.float64)


def _mask_keys(masks: np.ndarray) -> list[bytes]:
    """One hashable key per column of a boolean (n, P) matrix."""
    packed = np.packbits(np.asarray(masks, dtype=bool), axis=0)
    return [packed[:, i].tobytes() for i in range(packed.shape[1])]


def _three_key(D2, signs, D1):
    """Canonical key of a three-layer pattern, or None if it is empty (theory.md:
    zero first-layer masks dropped, equal pairs merged, pairs sorted, zero D2 dropped)."""
    D2 = np.asarray(D2, dtype=bool)
    if not D2.any():
        return None
    D1 = np.asarray(D1, dtype=bool).reshape(D2.shape[0], -1)
    pairs = set()
    for j, k in enumerate(_mask_keys(D1)):
        if D1[:, j].any():
            pairs.add((1 if signs[j] >= 0 else -1, k))
    if not pairs:
        return None
    return (_mask_keys(D2[:, None])[0], tuple(sorted(pairs)))


def pattern_keys(patterns) -> list:
    """Hashable key of every pattern of a :class:`TwoLayerPatterns` or
    :class:`ThreeLayerPatterns` (equal keys <=> equal canonical patterns)."""
    if isinstance(patterns, TwoLayerPatterns):
        return _mask_keys(patterns.masks)
    return [_three_key(D2, s, D1) for D2, s, D1 in patterns.iter_patterns()]


def _generator(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _targets(V: np.ndarray) -> np.ndarray:
    """(n, C) -> (n, 2C): columns ``v_0, -v_0, v_1, -v_1, ...`` (target ``t``: output
    ``t // 2``, sign ``+1`` if ``t`` is even)."""
    n, C = V.shape
    W = np.empty((n, 2 * C))
    W[:, 0::2] = V
    W[:, 1::2] = -V
    return W


def _unit(A: np.ndarray, axis) -> np.ndarray:
    norms = np.sqrt(np.sum(A**2, axis=axis, keepdims=True))
    return A / np.maximum(norms, 1e-300)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class AtomSearchResult:
    """Best atoms found by :func:`search_atoms`, one per distinct pattern, best first.

    Attributes
    ----------
    patterns : TwoLayerPatterns or ThreeLayerPatterns
        The distinct patterns of the candidates (two-layer ones carry their generators).
    values : array (P,)
        ``|v_k^T g|`` of the best atom found with each pattern (attained: a lower
        estimate of the pattern's maximum).
    outputs : int array (P,)
        The output ``k`` of that atom.
    signs : int array (P,)
        ``sign(v_k^T g)``: the atom lowers the objective with output sign ``-signs``.
    best_value : float
        Largest ``|v_k^T g|`` found over everything (0.0 if nothing positive).
    best_per_output : array (C,)
        The same per output.
    n_starts : int
        Starts per (output, sign).
    time : float
        Wall time, seconds.
    """

    patterns: object
    values: np.ndarray
    outputs: np.ndarray
    signs: np.ndarray
    best_value: float
    best_per_output: np.ndarray
    n_starts: int
    time: float

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, eq=False)
class ExactAtomMax:
    """Rigorous upper bound on ``max_g |v_k^T g|`` over every atom of a pattern set.

    Attributes
    ----------
    per_output : array (C,)
        Upper bound on ``max_g |v_k^T g|`` for each output ``k``.
    attained : array (C,)
        Value attained by the SOCP's primal solution (a lower estimate); the gap to
        ``per_output`` is the SOCP's accuracy.
    group_bounds : array (G,)
        Upper bound per group (pattern, output, sign) of the program.
    best : float
        ``per_output.max()``.
    time : float
    """

    per_output: np.ndarray
    attained: np.ndarray
    group_bounds: np.ndarray
    best: float
    time: float


# --------------------------------------------------------------------------- ascent
def _ascend(params, value_fn, project, n_iter: int, lr: float, betas=(0.9, 0.999), eps=1e-12):
    """Projected Adam ascent on ``value_fn(*params)`` (shape (T, S)); every (t, s) is an
    independent problem. Returns the best iterate of each and its value."""
    params = [p.detach().clone() for p in params]
    with torch.no_grad():
        project(params)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    best = [p.clone() for p in params]
    best_val = None
    for it in range(n_iter + 1):
        for p in params:
            p.requires_grad_(True)
        val = value_fn(*params)
        grads = torch.autograd.grad(val.sum(), params) if it < n_iter else None
        with torch.no_grad():
            v = val.detach()
            params = [p.detach() for p in params]
            if best_val is None:
                best_val = v.clone()
            else:
                better = v > best_val
                best_val = torch.where(better, v, best_val)
                for b, p in zip(best, params):
                    b[better] = p[better]
            if grads is None:
                break
            step = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * it / n_iter)))  # cosine decay
            c1, c2 = 1 - betas[0] ** (it + 1), 1 - betas[1] ** (it + 1)
            for p, g, (m, s) in zip(params, grads, moments):
                m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
                s.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                p.add_(step * (m / c1) / (torch.sqrt(s / c2) + eps))
            project(params)
    return best, best_val


def _project_ball(params):
    """Each vector on the last axis of params[0] into the unit ball."""
    U = params[0]
    U.div_(torch.clamp(torch.linalg.vector_norm(U, dim=-1, keepdim=True), min=1.0))


def _project_three(params):
    """``||W1||_F <= 1`` (last two axes) and ``||w2|| <= 1`` (last axis)."""
    W1, w2 = params
    W1.div_(torch.clamp(torch.sqrt(torch.sum(W1**2, dim=(-2, -1), keepdim=True)), min=1.0))
    w2.div_(torch.clamp(torch.linalg.vector_norm(w2, dim=-1, keepdim=True), min=1.0))


def _relu_value(X, W):
    """Two-layer values ``w_t^T (X u_{t,s})_+`` for U (T, S, d): shape (T, S)."""

    def value(U):
        return torch.sum(torch.relu(U @ X.T) * W.T[:, None, :], dim=-1)

    return value


def _gated_value(X, W, temperature):
    """Smoothed gated values ``||X^T (sigmoid(X h / tau) * w_t)||`` for H (T, S, d)."""

    def value(H):
        gates = torch.sigmoid((H @ X.T) / temperature)
        return torch.linalg.vector_norm((gates * W.T[:, None, :]) @ X, dim=-1)

    return value


def _three_value(X, W):
    """Three-layer values ``w_t^T ((X W1)_+ w2)_+`` for W1 (T, S, d, m1), w2 (T, S, m1)."""

    def value(W1, w2):
        H = torch.relu(X @ W1)  # (T, S, n, m1)
        g = torch.relu((H @ w2.unsqueeze(-1)).squeeze(-1))  # (T, S, n)
        return torch.sum(g * W.T[:, None, :], dim=-1)

    return value


# --------------------------------------------------------------------------- starts
def _boundary_starts(X, w, k, rng, eps=1e-3):
    """``k`` unit directions just off the hyperplanes ``x_i^T u = 0`` of the samples with
    the largest ``|w_i|`` (both sides, both orientations): they reach the narrow cells
    next to one sample that Gaussian draws miss."""
    n, d = X.shape
    order = np.argsort(-np.abs(w))
    rows = order[(np.arange(k) // 4) % n]
    xh = _unit(X[rows], 1)
    z = rng.standard_normal((k, d))
    perp = _unit(z - np.sum(z * xh, axis=1, keepdims=True) * xh, 1)
    side = np.where((np.arange(k) // 2) % 2 == 0, 1.0, -1.0)[:, None]
    off = np.where(np.arange(k) % 2 == 0, eps, -eps)[:, None]
    return _unit(side * perp + off * xh, 1)


def _two_layer_starts(X, W, n_starts, rng, init):
    """Start directions (T, S, d): warm ones, data-driven ones, then Gaussian (a quarter
    of the starts at least)."""
    n, d = X.shape
    T = W.shape[1]
    starts = np.empty((T, n_starts, d))
    for t in range(T):
        cands = []
        if init is not None and init.size:
            cands.append(_unit(np.asarray(init, dtype=np.float64).T, 1)[: n_starts // 4])
        w = W[:, t]
        cands.append(_unit((X.T @ np.maximum(w, 0))[None, :], 1))  # aligned with w_+
        cands.append(_unit((X.T @ w)[None, :], 1))
        rows = np.argsort(-np.abs(w))[: max(1, n_starts // 8)]
        cands.append(_unit(np.sign(w[rows])[:, None] * X[rows], 1))  # directions of data points
        cands.append(_boundary_starts(X, w, max(1, n_starts // 3), rng))
        pool = np.vstack(cands)[: (3 * n_starts) // 4]
        rest = n_starts - len(pool)
        starts[t] = np.vstack([pool, _unit(rng.standard_normal((rest, d)), 1)])
    return starts


def _three_layer_starts(X, W, n_starts, hidden, rng, init, two_layer_dirs):
    """Start weights W1 (T, S, d, m1), w2 (T, S, m1): warm sub-networks (and perturbed
    copies), combinations of good two-layer directions, then Gaussian."""
    n, d = X.shape
    T = W.shape[1]
    W1 = np.empty((T, n_starts, d, hidden))
    w2 = np.empty((T, n_starts, hidden))
    for t in range(T):
        c1, c2 = [], []
        if init is not None:
            iW1, iw2 = init
            if len(iW1):
                iW1 = np.asarray(iW1, dtype=np.float64)[:, :, :hidden]
                iw2 = np.asarray(iw2, dtype=np.float64)[:, :hidden]
                pad = hidden - iW1.shape[2]
                if pad > 0:
                    iW1 = np.concatenate([iW1, 1e-3 * rng.standard_normal(iW1.shape[:2] + (pad,))], axis=2)
                    iw2 = np.concatenate([iw2, 1e-3 * rng.standard_normal((iw2.shape[0], pad))], axis=1)
                k = min(len(iW1), n_starts // 4)
                pick = rng.permutation(len(iW1))[:k]
                c1 += [iW1[pick], iW1[pick] + 0.1 * rng.standard_normal(iW1[pick].shape) / math.sqrt(d * hidden)]
                c2 += [iw2[pick], iw2[pick] + 0.1 * rng.standard_normal(iw2[pick].shape) / math.sqrt(hidden)]
        dirs = two_layer_dirs[t]
        if len(dirs):  # a two-layer atom (X u)_+ is the three-layer atom W1 = [u, 0..], w2 = e_1
            k = min(len(dirs), max(1, n_starts // 8))
            A = 1e-3 * rng.standard_normal((k, d, hidden))
            A[:, :, 0] = dirs[:k]
            s = 1e-3 * rng.standard_normal((k, hidden))
            s[:, 0] = 1.0
            c1.append(A)
            c2.append(s)
            k = n_starts // 4
            idx = rng.integers(0, len(dirs), size=(k, hidden))
            idx[:, 0] = np.arange(k) % len(dirs)
            A = np.transpose(dirs[idx], (0, 2, 1))  # (k, d, m1)
            A[:, :, 1:] *= rng.uniform(0.0, 1.0, size=(k, 1, hidden - 1)) if hidden > 1 else 1.0
            s = np.where(rng.random((k, hidden)) < 0.7, 1.0, -1.0)
            s[:, 0] = 1.0
            c1.append(A)
            c2.append(s * np.linalg.norm(A, axis=1))
        pool1 = np.concatenate(c1)[: (3 * n_starts) // 4] if c1 else np.zeros((0, d, hidden))
        pool2 = np.concatenate(c2)[: len(pool1)] if c2 else np.zeros((0, hidden))
        rest = n_starts - len(pool1)
        W1[t] = np.concatenate([pool1, rng.standard_normal((rest, d, hidden))])
        w2[t] = np.concatenate([pool2, rng.standard_normal((rest, hidden))])
    W1 = W1 / np.maximum(np.sqrt(np.sum(W1**2, axis=(2, 3), keepdims=True)), 1e-300)
    w2 = w2 / np.maximum(np.linalg.norm(w2, axis=2, keepdims=True), 1e-300)
    return W1, w2


# --------------------------------------------------------------------------- candidates
def _select(keys, values, threshold, max_candidates):
    """Indices of the best candidate per distinct key, best first, above ``threshold``."""
    best: dict = {}
    for i, (k, v) in enumerate(zip(keys, values)):
        if k is None or not np.isfinite(v) or v <= 0:
            continue
        if k not in best or v > values[best[k]]:
            best[k] = i
    order = sorted(best.values(), key=lambda i: -values[i])
    if threshold is not None:
        order = [i for i in order if values[i] > threshold]
    if max_candidates is not None:
        order = order[:max_candidates]
    return np.asarray(order, dtype=np.int64)


def _result(patterns, values, target, C, n_starts, start, all_values):
    per_output = np.zeros(C)
    for t in range(2 * C):
        per_output[t // 2] = max(per_output[t // 2], float(np.max(all_values[t], initial=0.0)))
    return AtomSearchResult(
        patterns=patterns,
        values=np.asarray(values, dtype=np.float64),
        outputs=np.asarray(target, dtype=np.int64) // 2,
        signs=np.where(np.asarray(target) % 2 == 0, 1, -1).astype(np.int64),
        best_value=float(per_output.max(initial=0.0)),
        best_per_output=per_output,
        n_starts=n_starts,
        time=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- public API
def search_atoms(
    X,
    V,
    *,
    architecture: str = "two_layer",
    hidden: int = 2,
    n_starts: int = 128,
    n_iter: int = 150,
    lr: float = 0.05,
    init=None,
    threshold: float | None = None,
    max_candidates: int | None = None,
    random_state=None,
    dtype: torch.dtype = torch.float64,
) -> AtomSearchResult:
    """Search atoms with large ``|v_k^T g|`` (theory.md, "Where patterns come from", *Pursuit*).

    For every output ``k`` and sign ``s`` maximise ``s v_k^T g`` over the atoms of the
    architecture (module docstring) by projected Adam ascent, ``n_starts`` starts at once.

    Parameters
    ----------
    X : array (n, d)
        Design matrix (intercept column included).
    V : array (n,) or (n, C)
        Dual point, e.g. ``grad l(z)``.
    architecture : {"two_layer", "gated", "three_layer"}
    hidden : int
        m1 (three layers only).
    n_starts : int
        Starts per (output, sign): about half data-driven (``X^T v_+``, data points, the
        warm starts ``init``), the rest Gaussian.
    n_iter : int
        Ascent steps (cosine-decayed learning rate ``lr``).
    lr : float, default 0.05
        Initial learning rate of the projected ascent.
    init : array (d, m) or tuple (W1 (K, d, m1), w2 (K, m1)) or None
        Warm starts: neurons (two layers) or sub-networks (three layers), e.g. those of
        the current solution; rescaled into the feasible set.
    threshold : float or None
        Keep only candidates with ``|v_k^T g| > threshold``.
    max_candidates : int or None
        Keep at most this many (distinct patterns, best first).
    random_state : None, int or numpy Generator
    dtype : torch dtype of the ascent (values are re-evaluated in float64).

    Returns
    -------
    AtomSearchResult
    """
    start = time.perf_counter()
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")
    X = np.asarray(X, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    if V.shape[0] != X.shape[0]:
        raise ValueError(f"V: expected {X.shape[0]} rows to match X, got {V.shape}")
    rng = _generator(random_state)
    C = V.shape[1]
    W = _targets(V)
    Xt, Wt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(W, dtype=dtype)
    two_init = init if architecture != "three_layer" else None
    U0 = _two_layer_starts(X, W, n_starts, rng, two_init)
    if architecture == "gated":
        return _search_gated(X, W, Xt, Wt, U0, n_iter, lr, threshold, max_candidates, C, n_starts, start, dtype)
    best, _ = _ascend([torch.as_tensor(U0, dtype=dtype)], _relu_value(Xt, Wt), _project_ball, n_iter, lr)
    U = best[0].to(torch.float64).numpy()  # (T, S, d)
    vals2 = np.einsum("tsn,nt->ts", np.maximum(np.einsum("nd,tsd->tsn", X, U), 0), W)
    if architecture == "two_layer":
        return _two_layer_result(X, U, vals2, threshold, max_candidates, C, n_starts, start)
    # three layers: seed part of the starts with the best two-layer directions
    dirs = [U[t][np.argsort(-vals2[t])][: max(1, n_starts // 4)] for t in range(W.shape[1])]
    W10, w20 = _three_layer_starts(X, W, n_starts, hidden, rng, init, dirs)
    best, _ = _ascend(
        [torch.as_tensor(W10, dtype=dtype), torch.as_tensor(w20, dtype=dtype)],
        _three_value(Xt, Wt), _project_three, n_iter, lr,
    )
    W1 = best[0].to(torch.float64).numpy()
    w2 = best[1].to(torch.float64).numpy()
    H = np.maximum(np.einsum("nd,tsdm->tsnm", X, W1), 0)
    vals = np.einsum("tsn,nt->ts", np.maximum(np.einsum("tsnm,tsm->tsn", H, w2), 0), W)
    T, S = vals.shape
    items = three_layer_patterns_of(X, W1.reshape(T * S, *W1.shape[2:]), w2.reshape(T * S, -1))
    keys = [_three_key(*it) for it in items]
    flat = vals.reshape(-1)
    sel = _select(keys, flat, threshold, max_candidates)
    patterns = ThreeLayerPatterns.from_lists([items[i] for i in sel])
    return _result(patterns, flat[sel], sel // S, C, n_starts, start, vals)


def _two_layer_result(X, U, vals, threshold, max_candidates, C, n_starts, start):
    T, S, d = U.shape
    flat_U = U.reshape(T * S, d)
    masks = X @ flat_U.T >= 0
    keys = [k if masks[:, i].any() else None for i, k in enumerate(_mask_keys(masks))]
    flat = vals.reshape(-1)
    sel = _select(keys, flat, threshold, max_candidates)
    patterns = TwoLayerPatterns(masks[:, sel], flat_U[sel].T)
    return _result(patterns, flat[sel], sel // S, C, n_starts, start, vals)


def _search_gated(X, W, Xt, Wt, U0, n_iter, lr, threshold, max_candidates, C, n_starts, start, dtype):
    """Gated atoms: anneal a sigmoid relaxation of the gate, then evaluate hard gates
    ``||X^T (1[X h >= 0] w_t)||`` in float64."""
    scale = float(np.median(np.linalg.norm(X, axis=1)))
    H = torch.as_tensor(U0, dtype=dtype)
    for temperature in (0.3, 0.1, 0.03, 0.01):
        best, _ = _ascend([H], _gated_value(Xt, Wt, temperature * scale), _project_ball, max(n_iter // 4, 1), lr)
        H = best[0]
    Hn = torch.cat([H, torch.as_tensor(U0, dtype=dtype)], dim=1).to(torch.float64).numpy()  # keep the starts too
    D = np.einsum("nd,tsd->tsn", X, Hn) >= 0
    vals = np.linalg.norm(np.einsum("tsn,nt,nd->tsd", D, W, X), axis=-1)
    T, S2, d = Hn.shape
    flat_H = Hn.reshape(T * S2, d)
    masks = D.reshape(T * S2, -1).T
    keys = [k if masks[:, i].any() else None for i, k in enumerate(_mask_keys(masks))]
    flat = vals.reshape(-1)
    sel = _select(keys, flat, threshold, max_candidates)
    patterns = TwoLayerPatterns(masks[:, sel], flat_H[sel].T)
    return _result(patterns, flat[sel], sel // S2, C, n_starts, start, vals)


def _warm_init(program, Q):
    """Warm starts from the network of ``Q``: unit neurons (two layers) or unit
    sub-networks ``(W1 / ||W1||_F, w2 / ||w2||)`` (three layers); None if ``Q`` is zero."""
    if Q is None:
        return None
    Q = np.asarray(Q.detach().cpu() if isinstance(Q, torch.Tensor) else Q, dtype=np.float64)
    if not np.any(Q):
        return None
    net = program.recover(Q)
    if architecture_of(program) == "three_layer":
        if net.n_subnetworks == 0:
            return None
        W1 = net.W1 / np.maximum(np.sqrt(np.sum(net.W1**2, axis=(1, 2), keepdims=True)), 1e-300)
        w2 = net.w2 / np.maximum(np.linalg.norm(net.w2, axis=1, keepdims=True), 1e-300)
        return (W1, w2)
    U = net.gates if architecture_of(program) == "gated" and net.gates is not None else net.W1
    return U if U.shape[1] else None


def search_program(
    program,
    Q=None,
    *,
    V=None,
    n_starts: int = 128,
    n_iter: int = 150,
    lr: float = 0.05,
    threshold: float | None = None,
    max_candidates: int | None = None,
    hidden: int | None = None,
    random_state=None,
    dtype: torch.dtype = torch.float64,
) -> AtomSearchResult:
    """:func:`search_atoms` for a program at the point ``Q`` (d, B).

    ``V`` defaults to ``grad l(A Q, Y)`` (:func:`dual_point`); the network of ``Q``
    supplies warm starts. ``hidden`` defaults to the program's m1.
    """
    if V is None:
        if Q is None:
            raise ValueError("search_program: give the point Q or the dual point V")
        V = dual_point(program, Q)
    arch = architecture_of(program)
    if hidden is None:
        hidden = program_hidden(program) if arch == "three_layer" else 1
    return search_atoms(
        program.X_design, V, architecture=arch, hidden=hidden, n_starts=n_starts, n_iter=n_iter, lr=lr,
        init=_warm_init(program, Q), threshold=threshold, max_candidates=max_candidates,
        random_state=random_state, dtype=dtype,
    )


def program_hidden(program) -> int:
    """m1 of a three-layer program: the larger of the requested ``hidden`` and the widest
    pattern (``program.hidden`` is only the latter)."""
    return max(int(getattr(program, "hidden", 1)), int(getattr(program, "_init_args", {}).get("hidden", 1)))


# --------------------------------------------------------------------------- exact maximum
def _group_max_norm(op: BlockOperator, G: torch.Tensor) -> np.ndarray:
    """``max_{b in g} ||G[:, b]||`` for every group g."""
    norms = torch.linalg.vector_norm(G, dim=0).cpu().numpy()
    out = np.zeros(op.n_groups)
    np.maximum.at(out, op.group_np, norms)
    return out


def _group_values(op: BlockOperator, Q: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``sigma_g v_{k(g)}^T D2_g H_g(Q)`` for every group (the value of its atom)."""
    H = (op.first_np * op.signs_np) * (op.X_np @ Q)
    Hg = np.zeros((op.n_samples, op.n_groups))
    np.add.at(Hg.T, op.group_np, H.T)
    D2 = 1.0 if op.second_np is None else op.second_np
    return np.sum(D2 * Hg * V[:, op.output_np], axis=0) * op.sigma_np


def _chunk_bounds(op: BlockOperator, V: np.ndarray, solver: str):
    """Bound and attained value per group of ``op`` by one SOCP (module docstring)."""
    d, B = op.shape
    Q = cp.Variable((d, B))
    Z, cons_exprs = op.cvxpy(Q)
    M = sp.csr_matrix((np.ones(B), (np.arange(B), op.group_np)), shape=(B, op.n_groups))
    cons = [cp.norm(Q, 2, axis=0) @ M <= 1] + [e >= 0 for e in cons_exprs]
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(V, Z))), cons)
    problem.solve(solver=solver)
    if Q.value is None:
        raise RuntimeError(f"exact_atom_max: the SOCP returned status {problem.status!r}")
    Vt = torch.as_tensor(V, dtype=op.dtype)
    bounds = None
    for sign in (1.0, -1.0):  # any Lambda >= 0 gives a valid bound: keep the better
        lams = tuple(
            torch.as_tensor(np.maximum(sign * np.asarray(c.dual_value, dtype=np.float64), 0.0), dtype=op.dtype)
            for c in cons[1:]
        )
        b = _group_max_norm(op, op.adjoint(Vt, lams))
        bounds = b if bounds is None else np.minimum(bounds, b)
    values = _group_values(op, np.asarray(Q.value), V)
    return bounds, values


def exact_atom_max(program, V, *, chunk: int = 1500, solver: str = "CLARABEL") -> ExactAtomMax:
    """Upper bound on ``max |v_k^T g|`` over every atom of ``program``'s patterns.

    Per group (pattern, output k, sign s): ``max s v_k^T D2 sum_j s_j D1_j X q_j`` over
    the cones with ``sum_j ||q_j|| <= 1`` (theory.md, "Duality and certificates"). All
    groups are solved together as one separable SOCP (chunks of ``chunk`` groups); the
    bound ``max_{b in g} ||(A^T V + K^T Lambda)_b||`` with the SOCP's multipliers
    ``Lambda >= 0`` is rigorous for any ``Lambda`` and tight at the optimum. Without
    cone constraints (gated) the bound is the closed form ``max_b ||(A^T V)_b||``.

    Over an exactly enumerated pattern set this bounds the maximum over all atoms of
    the architecture: the certificate of :mod:`convexrelu.certificates`.

    Parameters
    ----------
    program : ConvexProgram (two-layer, gated or three-layer)
    V : array (n, C) or (n,)
    chunk : int, default 1500
        Groups per SOCP solve.
    solver : str, default "CLARABEL"
        CVXPY solver of the SOCPs.

    Returns
    -------
    ExactAtomMax
    """
    start = time.perf_counter()
    op = program.operator.to("cpu", torch.float64)
    V = np.asarray(V, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    C = op.n_outputs
    if not op.has_constraints:
        bounds = _group_max_norm(op, op.adjoint(torch.as_tensor(V, dtype=torch.float64)))
        values = bounds.copy()
    else:
        bounds = np.zeros(op.n_groups)
        values = np.zeros(op.n_groups)
        for lo in range(0, op.n_groups, chunk):
            groups = np.arange(lo, min(lo + chunk, op.n_groups))
            bounds[groups], values[groups] = _chunk_bounds(op.restrict(groups)[0], V, solver)
    per_output = np.zeros(C)
    attained = np.zeros(C)
    np.maximum.at(per_output, op.output_np, bounds)
    np.maximum.at(attained, op.output_np, values)
    return ExactAtomMax(
        per_output=per_output, attained=attained, group_bounds=bounds,
        best=float(per_output.max(initial=0.0)), time=time.perf_counter() - start,
    )
