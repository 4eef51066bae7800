"""Random pattern sampling (theory.md, "How many patterns": Gaussian ``u`` for two
layers, Gaussian ``(W_1, w_2)`` for three layers; keep the distinct patterns).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_matrix, check_positive_int, make_rng
from ._sets import ThreeLayerPatterns, TwoLayerPatterns, _key, _ThreeLayerBuilder

__all__ = ["sample_two_layer", "sample_three_layer", "three_layer_activations", "three_layer_patterns_of"]


def sample_two_layer(X: np.ndarray, n_patterns: int, random_state=None, *, max_draws: int | None = None) -> TwoLayerPatterns:
    """Up to ``n_patterns`` distinct patterns ``1[X u >= 0]`` with ``u ~ N(0, I_d)``.

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix, intercept column included if any.
    n_patterns : int >= 1
        Number of distinct patterns wanted; fewer are returned if ``max_draws``
        Gaussian draws do not find that many.
    random_state : int, Generator, RandomState or None
        None: fresh entropy (numpy's global generator is never used).
    max_draws : int >= 1 or None, default None
        Gaussian draws at most (None: ``20 * n_patterns``).

    Returns
    -------
    TwoLayerPatterns with generators (d, P).
    """
    X = check_matrix(X, "X")
    n_patterns = check_positive_int(n_patterns, "n_patterns")
    rng = make_rng(random_state)
    max_draws = 20 * n_patterns if max_draws is None else check_positive_int(max_draws, "max_draws")
    d = X.shape[1]
    seen: set[bytes] = set()
    masks, gens = [], []
    drawn = 0
    while len(masks) < n_patterns and drawn < max_draws:
        batch = min(max(n_patterns - len(masks), 16) * 2, max_draws - drawn)
        U = rng.standard_normal((d, batch))
        drawn += batch
        M = X @ U >= 0
        for i in range(batch):
            key = _key(M[:, i])
            if len(masks) < n_patterns and M[:, i].any() and key not in seen:
                seen.add(key)
                masks.append(M[:, i])
                gens.append(U[:, i])
    if not masks:
        return TwoLayerPatterns(np.zeros((X.shape[0], 0), bool), np.zeros((d, 0)))
    return TwoLayerPatterns(np.column_stack(masks), np.column_stack(gens))


def three_layer_activations(X: np.ndarray, W1: np.ndarray, w2: np.ndarray):
    """First-layer values and both layers' patterns of K three-layer sub-networks.

    ``A = X W1_k`` for every k, shape (n, m1, K), by one GEMM; ``D1 = 1[A >= 0]``;
    ``D2 = 1[(A)_+ w2_k >= 0]``, shape (n, K). Every caller that needs patterns of the
    same network takes them from here: values at rounding level near zero decide the
    masks, and another order of the sums could decide them otherwise (the seeded
    strategy once found a pattern of its own network missing from the program).
    """
    K, d, m1 = W1.shape
    A = (X @ W1.transpose(1, 2, 0).reshape(d, m1 * K)).reshape(X.shape[0], m1, K)  # one GEMM: (n, m1, K)
    H = np.zeros((X.shape[0], K))
    for j in range(m1):  # (n, K): a sum of m1 slices (a reduction over a short axis is slow)
        H += np.maximum(A[:, j], 0) * w2[:, j]
    return A, A >= 0, H >= 0


def three_layer_patterns_of(X: np.ndarray, W1: np.ndarray, w2: np.ndarray) -> list:
    """Patterns of three-layer sub-networks.

    Parameters
    ----------
    X : array (n, d)
    W1 : array (K, d, m1)
        First-layer weights of K sub-networks.
    w2 : array (K, m1)
        Second-layer weights.

    Returns
    -------
    list of ``(D2, signs, D1)`` with ``D1 = 1[X W1 >= 0]`` (n, m1), ``signs = sign(w2)``
    and ``D2 = 1[(X W1)_+ w2 >= 0]`` (n,); ready for ``ThreeLayerPatterns.from_lists``.
    Neurons with ``w2_j = 0`` are left out (they do not change the output).
    """
    K = W1.shape[0]
    _, D1, D2 = three_layer_activations(X, W1, w2)
    out = []
    for k in range(K):
        active = w2[k] != 0
        out.append((D2[:, k], np.where(w2[k][active] >= 0, 1, -1), D1[:, :, k][:, active]))
    return out


def sample_three_layer(
    X: np.ndarray, n_patterns: int, hidden: int, random_state=None, *, max_draws: int | None = None
) -> ThreeLayerPatterns:
    """Up to ``n_patterns`` distinct three-layer patterns from Gaussian ``(W_1, w_2)``.

    ``W_1`` in R^{d x hidden} and ``w_2`` in R^{hidden} have i.i.d. standard normal
    entries; each draw gives ``D_1j = 1[X w_1j >= 0]``, ``s_j = sign(w_2j)`` and
    ``D2 = 1[(X W_1)_+ w_2 >= 0]`` (theory.md, "Three-layer parallel networks").

    Parameters
    ----------
    X : array of shape (n, d)
        Design matrix, intercept column included if any.
    n_patterns : int >= 1
        Number of distinct patterns wanted; fewer are returned if ``max_draws`` draws
        do not find that many.
    hidden : int >= 1
        First-layer neurons per sub-network (``m1``).
    random_state : int, Generator, RandomState or None
        None: fresh entropy (numpy's global generator is never used).
    max_draws : int >= 1 or None, default None
        Draws of ``(W_1, w_2)`` at most (None: ``20 * n_patterns``).

    Returns
    -------
    ThreeLayerPatterns in canonical form.
    """
    n_patterns = check_positive_int(n_patterns, "n_patterns")
    hidden = check_positive_int(hidden, "hidden")
    X = check_matrix(X, "X")
    rng = make_rng(random_state)
    max_draws = 20 * n_patterns if max_draws is None else check_positive_int(max_draws, "max_draws")
    d = X.shape[1]
    builder = _ThreeLayerBuilder()
    drawn = 0
    while drawn < max_draws and len(builder) < n_patterns:
        batch = min(max(n_patterns - len(builder), 16) * 2, max_draws - drawn)
        W1 = rng.standard_normal((batch, d, hidden))
        w2 = rng.standard_normal((batch, hidden))
        drawn += batch
        for item in three_layer_patterns_of(X, W1, w2):
            if len(builder) >= n_patterns:
                break
            builder.add(*item)
    return builder.build(X.shape[0])
