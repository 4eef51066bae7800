"""Pattern sets: exact enumeration against brute force, counts, sampling, canonical form."""

from itertools import product
from math import comb

import numpy as np
import pytest
from scipy.optimize import linprog

import convexrelu
from convexrelu.patterns import (
    ThreeLayerPatterns,
    TwoLayerPatterns,
    enumerate_three_layer,
    enumerate_two_layer,
    pattern_counts,
    sample_three_layer,
    sample_two_layer,
    three_layer_pattern_bound,
    three_layer_patterns_of,
    two_layer_pattern_bound,
)
from convexrelu.patterns.exact import _two_layer_cells

LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


# ---------------------------------------------------------------------------- helpers
def _margin_lp(strict, equal_or_nonneg, dim, nonneg=False):
    """max t s.t. strict u >= t, (equal u = 0 | nonneg u >= 0), |u| <= 1, t <= 1."""
    c = np.zeros(dim + 1)
    c[-1] = -1
    A_ub = [np.hstack([-strict, np.ones((len(strict), 1))])] if len(strict) else []
    A_eq = None
    if len(equal_or_nonneg):
        if nonneg:
            A_ub.append(np.hstack([-equal_or_nonneg, np.zeros((len(equal_or_nonneg), 1))]))
        else:
            A_eq = np.hstack([equal_or_nonneg, np.zeros((len(equal_or_nonneg), 1))])
    A_ub = np.vstack(A_ub) if A_ub else None
    res = linprog(
        c, A_ub=A_ub, b_ub=None if A_ub is None else np.zeros(len(A_ub)), A_eq=A_eq,
        b_eq=None if A_eq is None else np.zeros(len(A_eq)),
        bounds=[(-1, 1)] * dim + [(None, 1)], method="highs", options=LP_OPTIONS,
    )
    assert res.status == 0
    return -res.fun, res.x[:dim]


def brute_force_regions(X):
    """Masks S with some u: x_i^T u > 0 on S, < 0 off S (zero rows always in S); all 2^n S."""
    n, d = X.shape
    norms = np.linalg.norm(X, axis=1)
    zero = norms <= 1e-12 * max(norms.max(), 1e-300)
    U = X[~zero] / norms[~zero, None]
    found = set()
    for bits in product([False, True], repeat=n):
        S = np.array(bits)
        if not S[zero].all() or not S.any():
            continue
        t, _ = _margin_lp((2.0 * S[~zero] - 1)[:, None] * U, np.zeros((0, d)), d)
        if t > 1e-8:
            found.add(S.tobytes())
    return found


def brute_force_regions_2d(X):
    """Rank-2 data in R^2 without LP: the strict system ``sigma_i x_i^T u > 0`` is feasible
    iff the signed points ``sigma_i x_i`` lie in an open half-plane, i.e. iff the largest
    angular gap between them exceeds pi (Gordan). All 2^n subsets at once."""
    n = X.shape[0]
    assert X.shape[1] == 2 and np.all(np.linalg.norm(X, axis=1) > 0)
    S = np.array(list(product([False, True], repeat=n)))
    signed = (2.0 * S - 1)[:, :, None] * X[None]
    ang = np.sort(np.arctan2(signed[..., 1], signed[..., 0]), axis=1)
    gaps = np.diff(np.concatenate([ang, ang[:, :1] + 2 * np.pi], axis=1), axis=1)
    feasible = gaps.max(axis=1) > np.pi + 1e-9
    return {row.tobytes() for row in S[feasible & S.any(axis=1)]}


def brute_force_faces(X):
    """Masks S with some u: x_i^T u >= 0 on S, x_i^T u <= -t < 0 off S (the brief's LP)."""
    n, d = X.shape
    norms = np.linalg.norm(X, axis=1)
    U = X / np.maximum(norms, 1e-300)[:, None]
    found = set()
    for bits in product([False, True], repeat=n):
        S = np.array(bits)
        if not S.any():
            continue
        if S.all():  # u = 0
            found.add(S.tobytes())
            continue
        if (norms[~S] == 0).any():
            continue
        t, _ = _margin_lp(-U[~S], U[S], d, nonneg=True)
        if t > 1e-8:
            found.add(S.tobytes())
    return found


def mask_set(P):
    return {P.masks[:, i].tobytes() for i in range(len(P))}


def pattern_key(D2, s, D1):
    return (np.asarray(D2, bool).tobytes(), tuple(sorted((int(a), np.asarray(b, bool).tobytes()) for a, b in zip(s, D1.T))))


def key_set(T):
    return {pattern_key(*item) for item in T.iter_patterns()}


def intercept(x):
    x = np.asarray(x, float).reshape(len(x), -1)
    return np.hstack([x, np.ones((len(x), 1))])


def _data(kind, n, seed):
    r = np.random.default_rng(seed)
    if kind == "rank1_single_feature":
        return r.standard_normal((n, 1))
    if kind == "rank1_collinear":
        return np.outer(r.standard_normal(n), r.standard_normal(3))
    if kind == "rank2_gaussian":
        return r.standard_normal((n, 2))
    if kind == "rank2_intercept":
        return intercept(r.standard_normal(n))
    if kind == "rank3_gaussian":
        return r.standard_normal((n, 3))
    if kind == "rank3_intercept":
        return intercept(r.standard_normal((n, 2)))
    if kind == "rank3_in_5d":
        return r.standard_normal((n, 3)) @ r.standard_normal((3, 5))
    if kind == "duplicates_intercept":  # repeated inputs, 1-D with intercept
        return intercept(r.integers(-2, 3, size=n).astype(float))
    if kind == "duplicates_zero_antiparallel":  # repeated, zero and antiparallel rows, rank 3
        B = r.standard_normal((4, 3))
        rows = [B[0], B[0], 2.5 * B[1], -B[1], B[2], np.zeros(3), B[3], -0.5 * B[0], B[2], B[3]]
        return np.asarray(rows[:n])
    raise ValueError(kind)


# ---------------------------------------------------------------------------- two layers
@pytest.mark.parametrize(
    "kind, n, rank",
    [
        ("rank1_single_feature", 8, 1),
        ("rank1_collinear", 8, 1),
        ("rank2_gaussian", 8, 2),
        ("rank2_intercept", 12, 2),
        ("rank3_gaussian", 10, 3),
        ("rank3_intercept", 8, 3),
        ("rank3_in_5d", 8, 3),
        ("duplicates_intercept", 9, 2),
        ("duplicates_zero_antiparallel", 10, 3),
    ],
)
def test_two_layer_equals_brute_force(kind, n, rank):
    X = _data(kind, n, seed=n + rank)
    assert np.linalg.matrix_rank(X) == rank
    P = enumerate_two_layer(X)
    assert P.masks.shape[0] == n and P.generators.shape == (X.shape[1], len(P))
    if n > 10:  # 2^n LPs would be slow: closed-form half-plane test instead
        assert mask_set(P) == brute_force_regions_2d(X)
    else:
        assert mask_set(P) == brute_force_regions(X)
        if X.shape[1] == 2 and np.all(np.linalg.norm(X, axis=1) > 0):
            assert brute_force_regions_2d(X) == brute_force_regions(X)
    assert len(mask_set(P)) == len(P)  # distinct
    # generators reproduce their masks exactly, strictly inside the region
    np.testing.assert_array_equal(X @ P.generators >= 0, P.masks)
    np.testing.assert_allclose(np.linalg.norm(P.generators, axis=0), 1.0)
    nonzero = np.linalg.norm(X, axis=1) > 0
    assert np.min(np.abs(X[nonzero] @ P.generators)) > 1e-6
    # zero rows are always active
    assert P.masks[~nonzero].all()
    assert TwoLayerPatterns.from_generators(X, P.generators).masks.shape == P.masks.shape


@pytest.mark.parametrize(
    "X",
    [
        _data("rank2_intercept", 11, 3),
        _data("duplicates_intercept", 11, 3),
        _data("rank3_intercept", 11, 3),
        _data("duplicates_zero_antiparallel", 10, 3),
        np.random.default_rng(4).standard_normal((9, 4)),
        intercept(np.random.default_rng(4).integers(-2, 3, size=(9, 3)).astype(float)),  # degenerate
    ],
    ids=["rank2", "rank2_dup", "rank3", "rank3_dup", "rank4", "rank4_grid"],
)
def test_two_layer_recursive_matches_lp(X):
    arr, s1, g1, _ = _two_layer_cells(X, 1e-10, method="recursive")
    _, s2, _, _ = _two_layer_cells(X, 1e-10, method="lp")
    assert {m.tobytes() for m in arr.masks(s1).T} == {m.tobytes() for m in arr.masks(s2).T}
    assert len(s1) <= two_layer_pattern_bound(X.shape[0], arr.rank)
    np.testing.assert_array_equal(g1 @ arr.H.T > 0, s1 > 0)


@pytest.mark.parametrize(
    "X",
    [
        np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-2.0, -2.0], [0.0, 0.0], [1.0, -3.0]]),
        np.random.default_rng(5).standard_normal((7, 3)),
        np.array([[1.0], [-2.0], [3.0], [0.0], [1.0]]),
        intercept(np.random.default_rng(6).standard_normal(7)),
    ],
    ids=["antiparallel", "gaussian3", "rank1", "intercept"],
)
def test_two_layer_with_faces_equals_brute_force(X):
    P = enumerate_two_layer(X, include_faces=True)
    assert mask_set(P) == brute_force_faces(X)
    assert mask_set(enumerate_two_layer(X)) <= mask_set(P)
    # face generators reproduce their masks up to rounding on the rows of the face
    scale = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(P.generators, axis=0)[None, :]
    np.testing.assert_array_equal(X @ P.generators >= -1e-9 * scale, P.masks)


def test_faces_add_the_origin_pattern_without_intercept():
    X = np.random.default_rng(7).standard_normal((9, 2))
    regions = mask_set(enumerate_two_layer(X))
    faces = mask_set(enumerate_two_layer(X, include_faces=True))
    assert np.ones(9, bool).tobytes() in faces - regions  # u = 0 only
    assert len(regions) == two_layer_pattern_bound(9, 2)


def test_two_layer_zero_matrix_and_validation():
    P = enumerate_two_layer(np.zeros((4, 3)))
    assert len(P) == 1 and P.masks.all()
    np.testing.assert_array_equal(np.zeros((4, 3)) @ P.generators >= 0, P.masks)
    with pytest.raises(ValueError, match="X"):
        enumerate_two_layer(np.ones(3))
    with pytest.raises(ValueError, match="X"):
        enumerate_two_layer(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="tol"):
        enumerate_two_layer(np.ones((3, 2)), tol=0.0)


def test_two_layer_contains_sampled():
    X = intercept(np.random.default_rng(8).standard_normal((10, 2)))
    P = enumerate_two_layer(X)
    S = TwoLayerPatterns.from_generators(X, np.random.default_rng(0).standard_normal((3, 20000)))
    assert mask_set(S) <= mask_set(P)
    assert len(S) >= 0.9 * len(P)  # a few regions are too thin to be hit


# ---------------------------------------------------------------------------- counts
@pytest.mark.parametrize("n, d", [(12, 3), (10, 2), (8, 4), (3, 3), (6, 1)])
def test_two_layer_bound_is_tight_in_general_position(n, d):
    X = np.random.default_rng(n * d).standard_normal((n, d))  # rows through the origin
    c = pattern_counts(X)
    bound = 2 * sum(comb(n - 1, k) for k in range(d))
    assert c["two_layer_bound"] == two_layer_pattern_bound(n, d) == bound
    assert c["two_layer_regions"] == bound
    # the all-zero region exists iff the all-ones one does; its mask is dropped
    has_all_ones = enumerate_two_layer(X).masks.all(axis=0).any()
    assert c["two_layer"] == bound - int(has_all_ones)
    if n - 1 >= d:
        assert c["two_layer_bound_loose"] >= bound


def test_two_layer_bound_with_intercept_and_duplicates():
    x = np.random.default_rng(0).standard_normal(9)
    c = pattern_counts(intercept(x))
    assert c["two_layer_regions"] == c["two_layer_bound"] == 2 * 9  # distinct points: 2n regions
    assert c["two_layer"] == 2 * 9 - 1  # the all-zero region is dropped
    c = pattern_counts(intercept(np.repeat(x[:3], 3)))  # 3 distinct inputs, 9 rows
    assert c["two_layer_regions"] == 6 < c["two_layer_bound"]
    for kind in ["rank3_in_5d", "duplicates_zero_antiparallel", "rank1_collinear"]:
        X = _data(kind, 10, seed=1)
        c = pattern_counts(X)
        assert c["two_layer"] <= c["two_layer_regions"] <= c["two_layer_bound"]


def test_bound_values_and_validation():
    assert two_layer_pattern_bound(5, 1) == 2
    assert two_layer_pattern_bound(5, 5) == 2**5
    assert two_layer_pattern_bound(5, 0) == 1
    # three layers: sum_k binom(2 P1, k) * P1(n, min(k r, n))
    p1 = two_layer_pattern_bound(6, 2)
    expected = 2 * p1 * two_layer_pattern_bound(6, 2) + comb(2 * p1, 2) * two_layer_pattern_bound(6, 4)
    assert three_layer_pattern_bound(6, 2, 2) == expected
    assert three_layer_pattern_bound(20, 2, 2, loose=True) >= three_layer_pattern_bound(20, 2, 2)
    for bad in [(0, 2), (-1, 2)]:
        with pytest.raises(ValueError, match="n"):
            two_layer_pattern_bound(*bad)
    with pytest.raises(ValueError, match="r"):
        two_layer_pattern_bound(4, -1)
    with pytest.raises(ValueError, match="hidden"):
        three_layer_pattern_bound(4, 2, 0)


# ---------------------------------------------------------------------------- three layers
def _tiny_problem(n=6):
    x = np.linspace(-1.0, 1.0, n) + 0.05 * np.random.default_rng(0).standard_normal(n)
    return x, intercept(x)


@pytest.fixture(scope="module")
def three_layer_enumerated():
    x, X = _tiny_problem()
    return X, enumerate_three_layer(X, 2)


def test_three_layer_contains_heavy_sampling(three_layer_enumerated):
    X, T = three_layer_enumerated
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((20000, 2, 2))
    w2 = rng.standard_normal((20000, 2))
    S = ThreeLayerPatterns.from_lists(three_layer_patterns_of(X, W1, w2))
    assert key_set(S) <= key_set(T)
    assert len(S) > 0.5 * len(T)
    # hidden = 1: second layer fixed by the pair
    T1 = enumerate_three_layer(X, 1)
    S1 = sample_three_layer(X, 10**6, 1, random_state=0, max_draws=5000)
    assert key_set(S1) <= key_set(T1)
    assert key_set(T1) <= key_set(T)


@pytest.mark.parametrize("hidden", [2])
def test_three_layer_with_zero_and_duplicate_rows_contains_sampling(hidden):
    X = np.array([[0.0, 1], [1, 1], [1, 1], [-1, 1], [2, 1], [0, 0]])  # duplicate and zero rows
    T = enumerate_three_layer(X, hidden)
    rng = np.random.default_rng(hidden)
    S = ThreeLayerPatterns.from_lists(
        three_layer_patterns_of(X, rng.standard_normal((20000, 2, hidden)), rng.standard_normal((20000, hidden)))
    )
    assert key_set(S) <= key_set(T)
    assert T.second[5].all()  # the zero row: h = 0, always active
    assert len(T) <= three_layer_pattern_bound(6, 2, hidden)


def test_three_layer_canonical_and_bounded(three_layer_enumerated):
    X, T = three_layer_enumerated
    assert len(key_set(T)) == len(T)
    assert 1 <= T.max_pairs <= 2
    assert len(T) <= three_layer_pattern_bound(X.shape[0], 2, 2)
    c = pattern_counts(X, hidden=2)
    assert c["three_layer"] == len(T) <= c["three_layer_bound"]
    first = mask_set(enumerate_two_layer(X))
    for D2, s, D1 in T.iter_patterns():
        keys = [(int(a), b.tobytes()) for a, b in zip(s, D1.T)]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert {b.tobytes() for b in D1.T} <= first


def test_three_layer_patterns_are_feasible(three_layer_enumerated):
    """Each pattern passes the LP of the brief (closed cones, margin off D2) and is
    realised exactly by a sub-network built from a strictly interior LP point."""
    X, T = three_layer_enumerated
    n, d = X.shape
    for D2, s, D1 in T.iter_patterns():
        k = len(s)
        # h = L q with L = [s_1 D_11 X, ..., s_k D_1k X]
        L = np.hstack([s[j] * D1[:, j, None] * X for j in range(k)])
        cone = np.zeros((n * k, d * k))
        for j in range(k):
            cone[j * n : (j + 1) * n, j * d : (j + 1) * d] = (2.0 * D1[:, j, None] - 1) * X
        sgn = 2.0 * D2 - 1
        # closed cones, (2 D2 - I) h >= 0, h_i <= -1 (scaled: -t) outside D2
        t, _ = _margin_lp(-L[~D2], np.vstack([cone, sgn[:, None] * L]), d * k, nonneg=True)
        assert (~D2).sum() == 0 or t > 1e-8
        # strict version: every cone row and every non-identically-zero h row has margin
        live = np.abs(L).sum(axis=1) > 0
        assert D2[~live].all()
        t, q = _margin_lp(np.vstack([cone, (sgn[:, None] * L)[live]]), np.zeros((0, d * k)), d * k)
        assert t > 1e-8
        W1 = q.reshape(k, d).T[None]
        pat = three_layer_patterns_of(X, W1, s[None].astype(float))[0]
        assert pattern_key(*pat) == pattern_key(D2, s, D1)


def test_three_layer_max_patterns_and_validation():
    _, X = _tiny_problem(5)
    with pytest.raises(ValueError, match="max_patterns"):
        enumerate_three_layer(X, 2, max_patterns=10)
    with pytest.raises(ValueError, match="hidden"):
        enumerate_three_layer(X, 0)
    with pytest.raises(ValueError, match="max_patterns"):
        enumerate_three_layer(X, 2, max_patterns=0)
    assert len(enumerate_three_layer(X, 1, max_patterns=1000)) > 0


def test_three_layer_program_enumerated_beats_sampled(three_layer_enumerated):
    X, T = three_layer_enumerated
    x = X[:, 0]
    y = np.sin(3 * x) + 0.1 * np.random.default_rng(1).standard_normal(len(x))
    solver = convexrelu.CVXPYSolver()
    full = convexrelu.ThreeLayerReLUProgram(x[:, None], y, patterns=T, hidden=2, beta=0.05)
    sampled = convexrelu.ThreeLayerReLUProgram(x[:, None], y, patterns=200, hidden=2, beta=0.05, random_state=0)
    assert key_set(sampled.patterns) <= key_set(T)
    sol_full = solver.solve(full)
    sol_sampled = solver.solve(sampled)
    assert sol_full.objective <= sol_sampled.objective + 1e-6
    assert full.violation(sol_full.weights) < 1e-6


# ---------------------------------------------------------------------------- sampling and sets
def test_sampling_is_deterministic():
    X = intercept(np.random.default_rng(2).standard_normal((15, 2)))
    a, b = sample_two_layer(X, 30, random_state=4), sample_two_layer(X, 30, random_state=4)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.generators, b.generators)
    c = sample_two_layer(X, 30, random_state=5)
    assert not (a.masks.shape == c.masks.shape and np.array_equal(a.masks, c.masks))
    s, t = sample_three_layer(X, 40, 2, random_state=4), sample_three_layer(X, 40, 2, random_state=4)
    for name in ("second", "first", "signs", "owner"):
        np.testing.assert_array_equal(getattr(s, name), getattr(t, name))
    assert key_set(s) != key_set(sample_three_layer(X, 40, 2, random_state=5))


def test_three_layer_canonical_form():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([0, 1, 1, 0], bool)
    z = np.zeros(4, bool)
    D2 = np.array([1, 0, 1, 1], bool)
    items = [
        (D2, [1, -1, 1], np.column_stack([a, b, a])),  # duplicate pair merges
        (D2, [-1, 1], np.column_stack([b, a])),  # same pattern, other order
        (D2, [1, 1], np.column_stack([a, z])),  # all-zero first-layer mask dropped
        (z, [1], a[:, None]),  # all-zero D2 dropped
        (D2, [1], z[:, None]),  # no pair left: dropped
    ]
    T = ThreeLayerPatterns.from_lists(items)
    assert len(T) == 2 and T.n_pairs == 3
    np.testing.assert_array_equal(T.owner, [0, 0, 1])
    s0, f0 = T.pairs_of(0)
    assert [(int(s), m.tobytes()) for s, m in zip(s0, f0.T)] == sorted((int(s), m.tobytes()) for s, m in zip(s0, f0.T))
    U = T.union(T)
    assert key_set(U) == key_set(T) and len(U) == len(T)
    extra = ThreeLayerPatterns.from_lists([(np.ones(4, bool), [1], b[:, None])])
    V = T.union(extra)
    assert len(V) == 3 and key_set(V) == key_set(T) | key_set(extra)
    assert key_set(V.subset([2])) == key_set(extra)
    assert len(V.subset([0, 0])) == 1  # subset re-canonicalises
    with pytest.raises(ValueError, match="other"):
        T.union(ThreeLayerPatterns.from_lists([(np.ones(3, bool), [1], np.ones((3, 1), bool))]))


def test_two_layer_set_canonical_union_subset():
    X = intercept(np.random.default_rng(3).standard_normal(8))
    P = enumerate_two_layer(X)
    masks = np.hstack([P.masks, P.masks[:, :3], np.zeros((8, 1), bool)])
    gens = np.hstack([P.generators, P.generators[:, :3], np.zeros((2, 1))])
    Q = TwoLayerPatterns.from_masks(masks, gens)
    np.testing.assert_array_equal(Q.masks, P.masks)
    np.testing.assert_array_equal(Q.generators, P.generators)
    assert len(P.union(P)) == len(P)
    S = P.subset([0, 2])
    assert len(S.union(P)) == len(P)
    np.testing.assert_array_equal(S.union(P).masks[:, :2], P.masks[:, [0, 2]])
