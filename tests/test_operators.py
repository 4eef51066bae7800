"""BlockOperator: adjoint test, finite-difference gradients, agreement of the torch and
CVXPY forms, and the model against a direct per-pattern computation."""

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from conftest import dense_model, planted_regression, targets_for

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]
LOSSES = ["squared", "logistic", "softmax"]


def _program(cls, loss="squared", n=15, seed=0, **kw):
    X, y = planted_regression(n=n, d=3, seed=seed)
    extra = {"hidden": 3} if cls is ThreeLayerReLUProgram else {}
    return cls(X, targets_for(loss, y), 8, loss=loss, beta=0.1, random_state=seed, **extra, **kw)


def _random_like(shape, seed):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_adjoint(cls, loss):
    op = _program(cls, loss).operator
    Q = _random_like(op.shape, 1)
    R = _random_like((op.n_samples, op.n_outputs), 2)
    L = tuple(_random_like(s, 3 + i) for i, s in enumerate(op.constraint_shapes))
    Z, C = op.apply(Q)
    lhs = torch.sum(Z * R) + sum(torch.sum(c * l) for c, l in zip(C, L))
    rhs = torch.sum(Q * op.adjoint(R, L))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)
    # each part alone
    assert float(torch.sum(Z * R)) == pytest.approx(float(torch.sum(Q * op.adjoint(R))), rel=1e-12)
    if L:
        lhs_c = sum(torch.sum(c * l) for c, l in zip(C, L))
        assert float(lhs_c) == pytest.approx(float(torch.sum(Q * op.adjoint(None, L))), rel=1e-12)


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_of_smooth_part_finite_differences(cls, loss):
    prog = _program(cls, loss)
    op = prog.operator
    Q0 = _random_like(op.shape, 4) * 0.3

    def f(Q):
        return prog.loss.value(op.matvec(Q), prog.Y)

    G = op.adjoint(prog.loss.grad(op.matvec(Q0), prog.Y))
    D = _random_like(op.shape, 5)
    eps = 1e-6
    fd = (f(Q0 + eps * D) - f(Q0 - eps * D)) / (2 * eps)
    assert float(fd) == pytest.approx(float(torch.sum(G * D)), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("cls", PROGRAMS)
def test_cvxpy_form_matches_torch(cls):
    op = _program(cls, "softmax").operator
    Q = _random_like(op.shape, 6)
    Z, C = op.apply(Q)
    Zc, Cc = op.cvxpy(cp.Constant(Q.numpy()))
    np.testing.assert_allclose(Zc.value, Z.numpy(), atol=1e-10)
    assert len(Cc) == len(C)
    for a, b in zip(Cc, C):
        np.testing.assert_allclose(a.value, b.numpy(), atol=1e-10)


def test_three_layer_model_by_direct_computation():
    prog = _program(ThreeLayerReLUProgram, "squared")
    pats, op = prog.patterns, prog.operator
    X = prog.X_design
    Q = _random_like(op.shape, 7).numpy()
    B, P = pats.n_pairs, len(pats)
    z = np.zeros(X.shape[0])
    for sign_index, sign in enumerate((1.0, -1.0)):
        for c, (D2, s, D1) in enumerate(pats.iter_patterns()):
            blocks = sign_index * B + np.flatnonzero(pats.owner == c)
            h = sum(s[j] * D1[:, j] * (X @ Q[:, blocks[j]]) for j in range(len(blocks)))
            z += sign * D2 * h
    np.testing.assert_allclose(op.matvec(torch.tensor(Q)).numpy()[:, 0], z, atol=1e-12)
    assert op.n_groups == 2 * P


def test_two_layer_model_and_cone_identity():
    prog = _program(TwoLayerReLUProgram, "squared")
    X, D = prog.X_design, prog.patterns.masks
    P = D.shape[1]
    # a point inside the cones: v_i = w_i = generator u_i (it has pattern D_i by construction)
    U = prog.patterns.generators
    Q = np.hstack([U, 0.5 * U])
    assert prog.violation(Q) == 0.0
    expected = np.maximum(X @ U, 0).sum(axis=1) - 0.5 * np.maximum(X @ U, 0).sum(axis=1)
    np.testing.assert_allclose(prog.predict(Q)[:, 0], expected, atol=1e-12)
    assert prog.operator.n_blocks == 2 * P
    # outside its cone the constraint is violated
    assert prog.violation(-Q) > 0


def test_to_float32_and_back():
    prog = _program(ThreeLayerReLUProgram, "squared")
    Q = _random_like(prog.shape, 8)
    p32 = prog.to(dtype=torch.float32)
    assert p32.operator.X.dtype == torch.float32 and p32.Y.dtype == torch.float32
    assert p32.objective(Q) == pytest.approx(prog.objective(Q), rel=1e-5)
    assert prog.operator.X.dtype == torch.float64  # original untouched


def test_the_kept_transposed_features_follow_the_operator():
    """The gated model reads a kept contiguous ``X^T`` (``features_t``): a copy made by
    ``to`` or ``row_blocks`` builds its own, and the operator does not share the caller's
    array (changed in place, it would have left ``X^T`` behind ``X``)."""
    X, y = planted_regression(n=24, d=3)
    X = np.ascontiguousarray(X, dtype=np.float64)
    prog = GatedReLUProgram(X, y, 8, beta=0.1, random_state=0, fit_intercept=False)
    op = prog.operator
    Q = _random_like(prog.shape, 3)
    direct = (op.X @ Q * op.model_coefficients()[0]).sum(1)  # sum_b coef_b * (X q_b)
    torch.testing.assert_close(op.matvec(Q)[:, 0], direct)
    assert op.features_t().is_contiguous() and torch.equal(op.features_t(), op.X.T)
    X[0, 0] += 1.0  # the caller's array
    torch.testing.assert_close(op.matvec(Q)[:, 0], direct)
    op32 = op.to(dtype=torch.float32)
    assert op32.features_t().dtype == torch.float32
    torch.testing.assert_close(op32.matvec(Q.float())[:, 0], direct.float(), rtol=1e-5, atol=1e-5)
    for sl, part in op.row_blocks(10):
        assert part.features_t().shape == (3, sl.stop - sl.start)
        torch.testing.assert_close(part.matvec(Q)[:, 0], direct[sl])


def test_norm_estimate_matches_dense_matrix():
    prog = _program(GatedReLUProgram, "squared", n=10)
    op = prog.operator
    A = dense_model(op)
    assert op.norm_estimate(n_iter=200) == pytest.approx(float(torch.linalg.matrix_norm(A, ord=2)), rel=1e-4)


def _dense(fn, shape_in, n_out):
    cols = []
    for k in range(int(np.prod(shape_in))):
        e = torch.zeros(int(np.prod(shape_in)), dtype=torch.float64)
        e[k] = 1
        cols.append(fn(e.reshape(shape_in)).reshape(-1))
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", ["squared", "softmax"])
def test_normal_solver_against_the_dense_system(cls, loss):
    """``(a A^T A + k K^T K + I)^{-1} R`` from the factored solver equals a dense solve."""
    op = _program(cls, loss, n=10).operator
    d, B = op.shape
    A = _dense(op.matvec, (d, B), None)
    K = _dense(lambda Q: torch.cat([c.reshape(-1) for c in op.constraints(Q)]) if op.has_constraints
               else torch.zeros(0, dtype=torch.float64), (d, B), None)
    ns = op.normal_solver(0.7)
    R = _random_like((d, B), 5)
    for a in (0.3, 2.0):  # a new a refactors the Woodbury matrix only
        M = a * A.T @ A + 0.7 * K.T @ K + torch.eye(d * B, dtype=torch.float64)
        expected = torch.linalg.solve(M, R.reshape(-1)).reshape(d, B)
        got = ns.solve(R, a)
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-11)
        assert torch.allclose(ns.apply(got, a), R, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("layout", ["contiguous", "slab"])
def test_regular_group_fast_paths_equal_the_general_path(layout):
    """Groups of one size in either regular layout (:meth:`BlockOperator._grid`): the
    reshaping paths of the group sums, expansions, model sums and adjoint give the same
    numbers as the general index path, and ``padded_groups`` lists each group's blocks."""
    from convexrelu.operators import BlockOperator

    full = _program(ThreeLayerReLUProgram, "squared").operator
    # keep the groups of three blocks (some groups of this program have fewer)
    sizes = np.bincount(full.group_np)
    groups = np.flatnonzero(sizes == 3)
    blocks = np.flatnonzero(np.isin(full.group_np, groups))  # contiguous: group g is blocks 3g .. 3g+2
    if layout == "slab":
        blocks = blocks.reshape(-1, 3).T.reshape(-1)  # column j G + g: pair j of group g
    renum = np.searchsorted(groups, full.group_np[blocks])
    op = BlockOperator(full.X_np, full.first_np[:, blocks], full.signs_np[blocks], renum, full.second_np[:, groups],
                       full.sigma_np[groups], full.output_np[groups], 1, cone_first=True, cone_second=True)
    assert op.group_size == 3 and op.group_layout == layout and op.n_groups == len(groups) > 5
    gidx = op.padded_groups().numpy()
    assert gidx.shape == (op.n_groups, 3) and all(np.array_equal(np.sort(gidx[g]), np.flatnonzero(renum == g))
                                                  for g in range(op.n_groups))
    Q = _random_like(op.shape, 6)
    R = _random_like((op.n_samples, 1), 7)
    L = tuple(_random_like(s, 8 + i) for i, s in enumerate(op.constraint_shapes))
    Tg = _random_like((op.n_samples, op.n_groups), 9)

    def run():
        return (op.apply(Q), op.adjoint(R, L), op.adjoint(R), op.matvec(Q), op.constraints(Q),
                op._group_expand(Tg), op._group_sum(op._group_expand(Tg)))

    fast = run()
    op.group_size, op.group_layout = 0, None
    slow = run()
    assert torch.allclose(fast[0][0], slow[0][0], rtol=1e-13)
    assert all(torch.allclose(a, b, rtol=1e-13) for a, b in zip(fast[0][1], slow[0][1]))
    for a, b in zip(fast[1:4] + fast[5:], slow[1:4] + slow[5:]):
        assert torch.allclose(a, b, rtol=1e-13, atol=1e-14)
    assert all(torch.allclose(a, b, rtol=1e-13) for a, b in zip(fast[4], slow[4]))


def test_three_layer_programs_use_the_slab_layout_when_regular():
    """Every pattern with m pairs: column j G + g is pair j of group g, the same variables
    as the consecutive layout up to a permutation of the columns (the same model and
    constraint values); a pattern set with fewer pairs somewhere keeps the consecutive one."""
    from convexrelu.operators import BlockOperator

    X, y = planted_regression(n=24, d=3, seed=0)
    prog = ThreeLayerReLUProgram(X, y, 6, hidden=2, beta=0.1, random_state=0)
    op, pats = prog.operator, prog.patterns
    m = op.group_size
    assert op.group_layout == "slab" and m == 2 and np.all(np.bincount(pats.owner) == m)
    assert np.array_equal(op.group_np, np.tile(np.arange(op.n_groups), m))
    # the consecutive layout of the same program, built by hand (column (2k + sign) B + b)
    P, B = len(pats), pats.n_pairs
    cons = BlockOperator(op.X_np, np.tile(pats.first, (1, 2)), np.tile(pats.signs, 2),
                         np.repeat(np.arange(2), B) * P + np.tile(pats.owner, 2), np.tile(pats.second, (1, 2)),
                         np.repeat([1.0, -1.0], P), np.zeros(2 * P, dtype=int), 1, cone_first=True, cone_second=True)
    assert cons.group_layout == "contiguous"
    perm = np.arange(op.n_blocks).reshape(op.n_groups, m).T.reshape(-1)  # slab column k = consecutive perm[k]
    Q = _random_like(op.shape, 3)
    Qc = torch.empty_like(Q)
    Qc[:, perm] = Q
    (Z, (c1, c2)), (Zc, (c1c, c2c)) = op.apply(Q), cons.apply(Qc)
    assert torch.allclose(Z, Zc, rtol=1e-13) and torch.allclose(c2, c2c, rtol=1e-13)
    assert torch.allclose(c1, c1c[:, perm], rtol=1e-13)
    irregular = _program(ThreeLayerReLUProgram).operator  # some of its patterns have fewer pairs
    assert irregular.group_layout is None


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_constraint_norm_estimate_matches_dense_matrix(cls):
    op = _program(cls, "squared", n=10).operator
    K = _dense(lambda Q: torch.cat([c.reshape(-1) for c in op.constraints(Q)]), op.shape, None)
    assert op.constraint_norm_estimate(n_iter=300) == pytest.approx(float(torch.linalg.matrix_norm(K, ord=2)), rel=1e-4)
    assert _program(GatedReLUProgram, "squared", n=10).operator.constraint_norm_estimate() == 0.0


@pytest.mark.parametrize("cls", PROGRAMS)
def test_norm_estimates_by_row_blocks_are_those_of_the_whole_operator(cls, monkeypatch):
    """``rows``: the power iterations evaluate by row blocks (:meth:`row_parts`, the blocks
    of one length sharing one workspace) and give the whole operator's estimates."""
    from convexrelu.operators import BlockOperator

    op = _program(cls, "squared", n=23).operator
    seen = []  # the samples of every operator whose adjoint the estimates evaluate
    adjoint = BlockOperator.adjoint
    monkeypatch.setattr(BlockOperator, "adjoint", lambda self, *a, **k: seen.append(self.n_samples) or adjoint(self, *a, **k))
    parts = op.row_parts(5)
    assert [(sl.start, sl.stop) for sl, _, _ in parts] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert parts[0][2] is parts[3][2] and parts[4][2] is not parts[0][2]
    assert [(sl, o) for sl, o, _ in op.row_parts(None)] == [(slice(0, 23), op)] == [(sl, o) for sl, o, _ in op.row_parts(23)]
    for rows in (5, 7, 100):
        whole = op.norm_estimate(n_iter=20), op.constraint_norm_estimate(n_iter=20)
        seen.clear()
        assert op.norm_estimate(n_iter=20, rows=rows) == pytest.approx(whole[0], rel=1e-12)
        assert op.constraint_norm_estimate(n_iter=20, rows=rows) == pytest.approx(whole[1], rel=1e-12)
        blocks = -(-23 // rows)  # 20 power iterations, one adjoint per block each (two estimates with cones)
        assert max(seen) == min(rows, 23) and len(seen) == 20 * blocks * (2 if op.has_constraints else 1)


def _dense_constraints(op):
    return _dense(lambda Q: torch.cat([c.reshape(-1) for c in op.constraints(Q)]) if op.has_constraints
                  else torch.zeros(0, dtype=torch.float64), op.shape, None)


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", ["squared", "softmax"])
def test_model_coefficients_reproduce_the_model(cls, loss):
    op = _program(cls, loss, n=10).operator
    coef, out = op.model_coefficients()
    Q = _random_like(op.shape, 3)
    XQ = op.X @ Q  # (n, B): <x_r, q_b>
    Z = torch.zeros((op.n_samples, op.n_outputs), dtype=torch.float64)
    Z.index_add_(1, out, coef * XQ)
    assert torch.allclose(Z, op.matvec(Q), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_to_groups_is_the_layout_of_constraint_gram(cls):
    """``u_g^T (K_g^T diag(w) K_g) u_g`` summed over the groups, with ``u = to_groups(Q)``,
    is ``sum w (K Q)^2``; ``from_groups`` inverts ``to_groups``."""
    op = _program(cls, "squared", n=10).operator
    r = np.random.default_rng(3)
    Q = torch.tensor(r.standard_normal(op.shape))
    w = tuple(torch.tensor(r.random(s)) for s in op.constraint_shapes)
    U = op.to_groups(Q)
    assert U.shape == (op.padded_groups().shape[0], op.padded_groups().shape[1] * op.n_features)
    quad = torch.einsum("gi,gij,gj->", U, op.constraint_gram(w), U)
    want = sum(torch.sum(wi * c * c) for wi, c in zip(w, op.constraints(Q)))
    assert torch.allclose(quad, want, rtol=1e-12)
    assert torch.equal(op.from_groups(U), Q)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_constraint_gram_is_the_weighted_gram_of_the_dense_constraints(cls):
    """Every group's block of ``K^T diag(w) K`` (in the padded layout), with the rest of
    the dense matrix zero: ``K`` is block diagonal over the groups."""
    op = _program(cls, "squared", n=10).operator
    d, B = op.shape
    K = _dense_constraints(op)
    w = tuple(torch.tensor(np.random.default_rng(i).random(s)) for i, s in enumerate(op.constraint_shapes))
    full = K.T @ (torch.cat([x.reshape(-1) for x in w])[:, None] * K)  # variables indexed e * B + b
    gram = op.constraint_gram(w)
    gidx = op.padded_groups()
    G, m = gidx.shape
    assert gram.shape == (G, m * d, m * d)
    seen = torch.zeros_like(full, dtype=torch.bool)
    for g in range(G):
        for j in range(m):
            for k in range(m):
                bj, bk = int(gidx[g, j]), int(gidx[g, k])
                blk = gram[g, j * d:(j + 1) * d, k * d:(k + 1) * d]
                if bj == B or bk == B:  # padding slot
                    assert torch.count_nonzero(blk) == 0
                    continue
                rows, cols = torch.arange(d) * B + bj, torch.arange(d) * B + bk
                assert torch.allclose(blk, full[rows][:, cols], rtol=1e-12, atol=1e-12)
                seen[rows[:, None], cols[None, :]] = True
    assert torch.count_nonzero(full[~seen]) == 0  # nothing outside the groups' blocks
    # computed a few groups at a time (one, two or three per chunk, a last chunk shorter when
    # they do not divide G; the pair signs then not kept): the same blocks
    pairs = m * (m + 1) // 2
    for per_chunk in (1, 2, 3):
        fresh = _program(cls, "squared", n=10).operator
        chunked = fresh.constraint_gram(w, chunk=per_chunk * op.n_samples * pairs)
        torch.testing.assert_close(chunked, gram, rtol=1e-13, atol=1e-13)
        assert fresh._pair_signs is None or not fresh.cone_second


@pytest.mark.parametrize("cls", PROGRAMS)
def test_constraint_support_marks_the_nonzero_rows(cls):
    op = _program(cls, "squared", n=10).operator
    K = _dense_constraints(op)
    support = torch.cat([s.reshape(-1) for s in op.constraint_support()]) if op.has_constraints else \
        torch.zeros(0, dtype=torch.bool)
    assert torch.equal(support, torch.linalg.vector_norm(K, dim=1) > 0)
    if cls is ThreeLayerReLUProgram:
        assert not bool(support.all())  # second-layer rows of inactive samples are empty


def test_padded_groups_list_every_block_once():
    op = _program(ThreeLayerReLUProgram, "squared").operator
    gidx = op.padded_groups()
    real = gidx[gidx < op.n_blocks]
    assert sorted(real.tolist()) == list(range(op.n_blocks))
    for g in range(op.n_groups):
        assert set(gidx[g][gidx[g] < op.n_blocks].tolist()) == set(np.flatnonzero(op.group_np == g).tolist())


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", ["squared", "softmax"])
def test_coefficient_classes_share_the_model_up_to_sign(cls, loss):
    """Every group's coefficients and output are its class representative's times its
    sign, and groups of different classes differ (checked on the dense coefficients)."""
    op = _program(cls, loss, n=10).operator
    coef, out = op.model_coefficients()
    gidx = op.padded_groups()
    G, m = gidx.shape
    per_group = torch.cat([coef, torch.zeros((op.n_samples, 1), dtype=coef.dtype)], 1)[:, gidx]  # (n, G, m)
    classes, sign, reps = op.coefficient_classes()
    assert classes.shape == sign.shape == (G,) and set(sign.tolist()) <= {-1.0, 1.0}
    assert torch.equal(classes[reps], torch.arange(len(reps)))  # a representative is in its class
    assert torch.equal(per_group, per_group[:, reps[classes]] * sign[None, :, None])
    assert np.array_equal(op.output_np, op.output_np[reps[classes].numpy()])
    for a in range(len(reps)):
        for b in range(a):
            ga, gb = per_group[:, reps[a]], per_group[:, reps[b]]
            same_output = op.output_np[int(reps[a])] == op.output_np[int(reps[b])]
            assert not (same_output and (torch.equal(ga, gb) or torch.equal(ga, -gb)))
    if cls is not GatedReLUProgram:  # the two signs of a pattern share it
        assert len(reps) <= G // 2


@pytest.mark.parametrize("cls", PROGRAMS)
def test_live_groups_are_the_groups_with_model_coefficients(cls):
    """A group is live iff some block of it has a non-zero model coefficient (checked on
    the dense coefficients); the three-layer programs here have dead groups."""
    op = _program(cls, seed=2).operator
    coef, _ = op.model_coefficients()
    dense = np.array([bool((coef[:, op.group_np == g] != 0).any()) for g in range(op.n_groups)])
    live = op.live_groups()
    assert live.dtype == bool and np.array_equal(live, dense)
    if cls is ThreeLayerReLUProgram:
        assert not live.all()


def _zero_outside(T, cols) -> bool:
    rest = torch.ones(T.shape[1], dtype=torch.bool)
    rest[torch.as_tensor(cols)] = False
    return bool((T[:, rest] == 0).all())


@pytest.mark.parametrize("cls", PROGRAMS)
def test_restrict_and_extend_are_the_program_on_a_subset_of_groups(cls):
    """The restricted operator is the full one with the other groups at zero: same model,
    the kept blocks' and groups' constraint rows, and an adjoint that is the full adjoint
    of the extended multipliers on the kept blocks."""
    op = _program(cls, seed=2).operator
    groups = np.arange(0, op.n_groups, 2)
    sub, blocks = op.restrict(groups)
    assert sub.n_groups == len(groups) and np.array_equal(blocks, np.flatnonzero(np.isin(op.group_np, groups)))
    Q = _random_like(sub.shape, 1)
    lam = tuple(_random_like(s, 2 + i) for i, s in enumerate(sub.constraint_shapes))
    Qf, lamf = op.extend(Q, lam, groups)
    assert torch.equal(Qf[:, blocks], Q) and _zero_outside(Qf, blocks)
    Zs, cs = sub.apply(Q)
    Zf, cf = op.apply(Qf)
    torch.testing.assert_close(Zs, Zf)
    cols = op.constraint_columns(groups)
    expected = ([blocks] if op.cone_first else []) + ([groups] if op.cone_second else [])
    assert len(cols) == len(expected) and all(np.array_equal(a, b) for a, b in zip(cols, expected))
    for a, b, lf, ls, c in zip(cs, cf, lamf, lam, cols):
        torch.testing.assert_close(a, b[:, c])
        assert torch.equal(lf[:, c], ls) and _zero_outside(lf, c)
    R = _random_like((op.n_samples, op.n_outputs), 9)
    torch.testing.assert_close(sub.adjoint(R, lam), op.adjoint(R, lamf)[:, blocks])
    with pytest.raises(ValueError, match="groups: expected increasing indices"):
        op.restrict([3, 1])


def test_operator_tensors_are_row_major_whatever_the_input_order():
    """Column-major masks (what fancy indexing of columns gives) are copied to row-major,
    so that elementwise results are row-major too."""
    op = _program(ThreeLayerReLUProgram).operator
    sub, _ = op.restrict(np.arange(1, op.n_groups))
    assert sub.first_np.flags.c_contiguous and sub._sd1.is_contiguous() and sub._s1.is_contiguous()
    assert sub.constraints(sub.zeros())[0].is_contiguous()


def _irregular_operator():
    """Groups of sizes 3, 1 and 2, not contiguous, both cones (the general code paths)."""
    from convexrelu.operators import BlockOperator

    r = np.random.default_rng(11)
    n, d, B = 13, 4, 6
    return BlockOperator(r.standard_normal((n, d)), r.random((n, B)) > 0.4, np.array([1, -1, 1, 1, -1, 1.0]),
                         np.array([0, 2, 0, 1, 2, 0]), r.random((n, 3)) > 0.3, np.array([1.0, -1, 1]),
                         np.array([0, 1, 1]), 2, cone_first=True, cone_second=True)


@pytest.mark.parametrize("case", PROGRAMS + ["irregular"])
def test_workspace_and_out_arrays_give_the_same_values(case):
    """apply / matvec / adjoint with scratch arrays (work) and overwritten results (out):
    the values of the allocating calls, twice in a row (no stale scratch), and the
    constraint arrays of ``out`` are the ones returned."""
    op = _irregular_operator() if case == "irregular" else _program(case, "softmax").operator
    work = op.workspace()
    prev = op.apply(_random_like(op.shape, 20), work=work)
    for seed in (21, 22):
        Q = _random_like(op.shape, seed)
        R = _random_like((op.n_samples, op.n_outputs), seed + 10)
        L = tuple(_random_like(s, seed + 20 + i) for i, s in enumerate(op.constraint_shapes))
        Z, C = op.apply(Q)
        Zw, Cw = op.apply(Q, out=prev, work=work)
        assert all(a is b for a, b in zip(Cw, prev[1]))
        torch.testing.assert_close(Zw, Z, rtol=1e-14, atol=1e-14)
        for a, b in zip(Cw, C):
            torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(op.matvec(Q, work=work), op.matvec(Q), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(op.adjoint(R, L, work=work), op.adjoint(R, L), rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(op.adjoint(R, work=work), op.adjoint(R), rtol=1e-14, atol=1e-14)
        if L:
            torch.testing.assert_close(op.adjoint(None, L, work=work), op.adjoint(None, L), rtol=1e-14, atol=1e-14)
        prev = (Zw, Cw)


def test_irregular_groups_adjoint_and_model():
    """The general (index) paths of the group sums: adjoint test, and the model against a
    per-block loop."""
    op = _irregular_operator()
    Q = _random_like(op.shape, 30)
    R = _random_like((op.n_samples, op.n_outputs), 31)
    L = tuple(_random_like(s, 32 + i) for i, s in enumerate(op.constraint_shapes))
    Z, C = op.apply(Q)
    lhs = torch.sum(Z * R) + sum(torch.sum(c * l) for c, l in zip(C, L))
    assert float(lhs) == pytest.approx(float(torch.sum(Q * op.adjoint(R, L))), rel=1e-12)
    expect, H = _direct_model(op, Q)
    np.testing.assert_allclose(Z.numpy(), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C[1].numpy(), (2.0 * op.second_np - 1) * H, rtol=1e-12, atol=1e-12)


def _direct_model(op, Q):
    """The model (n, C) and the group sums H (n, G) by a loop over the blocks and groups
    (module docstring of ``operators``), in numpy."""
    X = op.X_np
    H = np.zeros((op.n_samples, op.n_groups))
    for b in range(op.n_blocks):
        H[:, op.group_np[b]] += op.signs_np[b] * op.first_np[:, b] * (X @ Q[:, b].numpy())
    expect = np.zeros((op.n_samples, op.n_outputs))
    for g in range(op.n_groups):
        second = 1.0 if op.second_np is None else op.second_np[:, g]
        expect[:, op.output_np[g]] += op.sigma_np[g] * second * H[:, g]
    return expect, H


CASES_WITHOUT_CONES = {  # case: (features, output of each group, coefficient products?)
    "second layer": (4, [0, 0, 0], True),
    "second layer, two outputs": (3, [0, 1, 1], True),
    "two outputs, one without blocks": (4, [1, 1, 1], True),
    "fewer blocks than features": (8, [0, 0, 0], False),
    "two outputs, each with fewer blocks than features": (4, [0, 1, 1], False),
    "two outputs, one with fewer blocks than features": (4, [0, 0, 1], False),
}


@pytest.mark.parametrize("case", ["gated", "gated, three classes"] + list(CASES_WITHOUT_CONES))
def test_operators_without_cones_against_a_loop_over_the_blocks(case):
    """Without cone constraints, and with every output fed by no block or by at least as
    many blocks as features, the products go through the model coefficients, output by
    output (``rowsum(X * (coef @ Q^T))``, ``(X * r)^T @ coef``), and build no (n, B)
    mask; otherwise through the masks. Both against the per-block loop: the model, and
    the adjoint entry by entry as ``<R, A(E_kb)>`` with ``E_kb`` the unit matrices."""
    from convexrelu.operators import BlockOperator

    if case.startswith("gated"):
        op = _program(GatedReLUProgram, "softmax" if "three" in case else "squared", n=17).operator
        coefficients = True
    else:
        d, outputs, coefficients = CASES_WITHOUT_CONES[case]
        r = np.random.default_rng(12)
        n, B = 13, 6
        op = BlockOperator(r.standard_normal((n, d)), r.random((n, B)) > 0.4, np.array([1, -1, 1, 1, -1, 1.0]),
                           np.array([0, 2, 0, 1, 2, 0]), r.random((n, 3)) > 0.3, np.array([1.0, -1, 1]),
                           np.array(outputs), 1 + max(outputs), cone_first=False, cone_second=False)
    assert op._coefficient_products == coefficients
    Q = _random_like(op.shape, 40)
    R = _random_like((op.n_samples, op.n_outputs), 41)
    work = op.workspace()
    for w in (None, work, work):
        np.testing.assert_allclose(op.matvec(Q, work=w).numpy(), _direct_model(op, Q)[0], rtol=1e-12, atol=1e-12)
        Z, C = op.apply(Q, work=w)
        assert C == ()
        np.testing.assert_allclose(Z.numpy(), _direct_model(op, Q)[0], rtol=1e-12, atol=1e-12)
    # the adjoint, column q_b by column: <R, A(e_k e_b^T)> from the loop
    expect = np.zeros(op.shape)
    for k in range(op.shape[0]):
        for b in range(op.shape[1]):
            E = torch.zeros(op.shape, dtype=torch.float64)
            E[k, b] = 1.0
            expect[k, b] = np.sum(R.numpy() * _direct_model(op, E)[0])
    for w in (None, work):
        np.testing.assert_allclose(op.adjoint(R, work=w).numpy(), expect, rtol=1e-12, atol=1e-12)
    assert (op._masks is None) == coefficients  # those products need no mask


def test_coefficient_products_after_to_and_on_one_output():
    """The kept coefficients follow ``to`` (float32 after a float64 evaluation), and one
    output of a two-output gated program (the classifiers' squared loss, solved one output
    at a time) takes the coefficient products with the parent's model column; the
    adjoint's cotangent must have the model's shape."""
    op = _program(GatedReLUProgram, n=17).operator
    Q = _random_like(op.shape, 50)
    Z = op.matvec(Q)
    op32 = op.to(dtype=torch.float32)
    assert op32._coefficient_products and op32.model_coefficients()[0].dtype == torch.float32
    torch.testing.assert_close(op32.matvec(Q.float()).double(), Z, rtol=1e-5, atol=1e-5)
    X, y = planted_regression(n=17, d=3, seed=0)
    two = GatedReLUProgram(X, np.stack([y, -2 * y], 1), 8, beta=0.1, random_state=0).operator
    assert two._coefficient_products
    Q2 = _random_like(two.shape, 51)
    for output in (0, 1):
        groups = np.flatnonzero(two.output_np == output)
        sub, blocks = two.restrict(groups, output)
        assert sub._coefficient_products
        np.testing.assert_allclose(sub.matvec(Q2[:, blocks]).numpy()[:, 0], two.matvec(Q2).numpy()[:, output],
                                   rtol=1e-12, atol=1e-12)
        R = _random_like((sub.n_samples, 1), 52 + output)
        full = torch.zeros((two.n_samples, 2), dtype=torch.float64)
        full[:, output] = R[:, 0]
        np.testing.assert_allclose(sub.adjoint(R).numpy(), two.adjoint(full).numpy()[:, blocks], rtol=1e-12,
                                   atol=1e-12)
    with pytest.raises(ValueError, match="R: expected shape"):
        op.adjoint(torch.zeros(op.n_samples, dtype=torch.float64))


@pytest.mark.parametrize("cls", PROGRAMS)
def test_group_constraint_matrix_gives_the_groups_constraint_values(cls):
    """``K_g u`` equals the constraint values of the group's columns (first cone: its
    listed blocks; second cone: the group) when only those blocks are non-zero, for
    every group and every subset of its blocks tried; the matrix has no rows without
    constraints (gated)."""
    op = _program(cls).operator
    rng = np.random.default_rng(7)
    for g in range(op.n_groups):
        blocks = np.flatnonzero(op.group_np == g)
        for subset in (blocks, blocks[rng.permutation(blocks.size)][: max(1, blocks.size - 1)]):
            K = op.group_constraint_matrix(subset)
            assert K.shape == (op.n_samples * (subset.size * op.cone_first + op.cone_second), subset.size * op.n_features)
            U = rng.standard_normal((op.n_features, subset.size))
            Q = torch.zeros(op.shape, dtype=torch.float64)
            Q[:, subset] = torch.tensor(U)
            cons = op.constraints(Q)
            parts = ([cons[0][:, b] for b in subset] if op.cone_first else []) + ([cons[-1][:, g]] if op.cone_second else [])
            expected = torch.cat(parts).numpy() if parts else np.zeros(0)
            np.testing.assert_allclose(K @ U.T.reshape(-1), expected, rtol=1e-12, atol=1e-12)


def test_group_constraint_matrix_rejects_blocks_of_several_groups():
    op = _program(ThreeLayerReLUProgram).operator
    two = [int(np.flatnonzero(op.group_np == 0)[0]), int(np.flatnonzero(op.group_np == 1)[0])]
    with pytest.raises(ValueError, match="blocks: expected blocks of one group"):
        op.group_constraint_matrix(two)
    with pytest.raises(ValueError, match="blocks: expected block indices"):
        op.group_constraint_matrix([op.n_blocks])


@pytest.mark.parametrize("cls", PROGRAMS)
def test_constraint_groups_name_the_group_of_every_constraint_column(cls):
    """Putting a block's group at non-zero values changes only the constraint columns
    that ``constraint_groups`` assigns to that group."""
    op = _program(cls).operator
    groups = op.constraint_groups()
    assert [len(c) for c in groups] == [s[1] for s in op.constraint_shapes]
    for g in (0, op.n_groups - 1):
        Q = torch.zeros(op.shape, dtype=torch.float64)
        Q[:, op.group_np == g] = _random_like((op.n_features, int(np.sum(op.group_np == g))), g)
        for c, cols in zip(op.constraints(Q), groups):
            changed = np.flatnonzero(torch.any(c != 0, dim=0).numpy())
            assert changed.size and set(cols[changed].tolist()) == {g}


def _case_operator(case, loss="squared"):
    """The operator of a test case: a program class (with ``loss``), or one of "irregular"
    (:func:`_irregular_operator`), "second cone only", "slab" (a three-layer program in the
    slab layout), "three-layer, three classes"."""
    if case == "irregular":
        return _irregular_operator()
    if case == "second cone only":
        return _second_cone_only_operator()
    if case == "slab":
        X, y = planted_regression(n=22, d=3, seed=0)
        op = ThreeLayerReLUProgram(X, y, 6, hidden=2, beta=0.1, random_state=0).operator
        assert op.group_layout == "slab"
        return op
    if case == "three-layer, three classes":
        op = _program(ThreeLayerReLUProgram, "softmax").operator
        assert op.n_outputs == 3
        return op
    return _program(case, loss).operator


@pytest.mark.parametrize("case", PROGRAMS + ["irregular", "slab"])
def test_row_blocks_are_the_operator_on_their_samples(case):
    """``row_blocks``: blocks of 4 samples (the last one shorter) whose model outputs and
    constraint values are the rows of the whole operator's, whose adjoints add up to its
    adjoint, and whose arrays are views of its own (nothing copied)."""
    op = _case_operator(case, "softmax")
    blocks = op.row_blocks(4)
    n = op.n_samples
    assert [(sl.start, sl.stop) for sl, _ in blocks] == [(a, min(a + 4, n)) for a in range(0, n, 4)] and n % 4
    Q = _random_like(op.shape, 30)
    R = _random_like((n, op.n_outputs), 31)
    L = tuple(_random_like(s, 32 + i) for i, s in enumerate(op.constraint_shapes))
    Z, C = op.apply(Q)
    total = torch.zeros(op.shape, dtype=op.dtype)
    for sl, blk in blocks:
        assert blk.n_samples == sl.stop - sl.start and blk.shape == op.shape
        assert blk.X.data_ptr() == op.X[sl].data_ptr()
        assert all(a.data_ptr() == b[sl].data_ptr() for a, b in zip(blk._mask_arrays(), op._mask_arrays())
                   if a is not None)
        Zb, Cb = blk.apply(Q, work=blk.workspace())
        torch.testing.assert_close(Zb, Z[sl], rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(blk.matvec(Q), Z[sl], rtol=1e-14, atol=1e-14)
        for a, b, c in zip(Cb, C, blk.constraints(Q)):
            torch.testing.assert_close(a, b[sl], rtol=1e-14, atol=1e-14)
            torch.testing.assert_close(c, b[sl], rtol=1e-14, atol=1e-14)
        total += blk.adjoint(R[sl], tuple(m[sl] for m in L))
    torch.testing.assert_close(total, op.adjoint(R, L), rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="rows: expected a positive integer, got 0"):
        op.row_blocks(0)


def _second_cone_only_operator():
    """Three groups of two blocks, a second layer and only its cone (``cone_first=False``)."""
    from convexrelu.operators import BlockOperator

    r = np.random.default_rng(12)
    n, d, B = 11, 3, 6
    return BlockOperator(r.standard_normal((n, d)), r.random((n, B)) > 0.5, np.array([1, -1, 1, -1, -1, 1.0]),
                         np.repeat(np.arange(3), 2), r.random((n, 3)) > 0.4, np.array([1.0, -1, 1]),
                         np.zeros(3, dtype=int), 1, cone_first=False, cone_second=True)


@pytest.mark.parametrize("case", PROGRAMS + ["three-layer, three classes", "irregular", "slab", "second cone only"])
def test_model_and_constraints_against_a_loop_over_the_blocks(case):
    """The model, ``apply``'s and ``constraints()``'s constraint values (with and without a
    workspace) against the loop over the blocks, and the adjoint identity. A cone's mask
    ``2 D - 1`` is the only mask of its layer the operator keeps: ``s_b D1_b`` and
    ``sigma_g D2_g`` are derived from it (``_mask_arrays``), and equal their definitions."""
    op = _case_operator(case)
    Q = _random_like(op.shape, 40)
    expect, H = _direct_model(op, Q)
    want = []
    if op.cone_first:
        want.append((2.0 * op.first_np - 1) * (op.X_np @ Q.numpy()))
    if op.cone_second:
        want.append((2.0 * op.second_np - 1) * H)
    for work in (None, op.workspace()):
        Z, C = op.apply(Q, work=work)
        np.testing.assert_allclose(Z.numpy(), expect, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.matvec(Q, work).numpy(), expect, rtol=1e-12, atol=1e-12)
        assert len(C) == len(want) == len(op.constraints(Q))
        for c, c2, w in zip(C, op.constraints(Q), want):
            np.testing.assert_allclose(c.numpy(), w, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(c2.numpy(), w, rtol=1e-12, atol=1e-12)
        R = _random_like((op.n_samples, op.n_outputs), 41)
        L = tuple(_random_like(s, 42 + i) for i, s in enumerate(op.constraint_shapes))
        for lams in (L, ()):
            lhs = torch.sum(Z * R) + sum(torch.sum(c * m) for c, m in zip(C, lams))
            assert float(lhs) == pytest.approx(float(torch.sum(Q * op.adjoint(R, lams, work=work))), rel=1e-12)
        if L:
            rhs = sum(torch.sum(c * m) for c, m in zip(C, L))
            assert float(rhs) == pytest.approx(float(torch.sum(Q * op.adjoint(None, L, work=work))), rel=1e-12)
    sd1, s1, d2s, s2 = op._mask_arrays()
    assert (sd1 is None) == op.cone_first and (s1 is not None) == op.cone_first
    assert (d2s is None) == (op.cone_second or op.second_np is None) and (s2 is not None) == op.cone_second
    np.testing.assert_array_equal(op._sd1.numpy(), op.first_np * op.signs_np)
    if op.second_np is not None:
        np.testing.assert_array_equal(op._d2s.numpy(), op.second_np * op.sigma_np)


def test_violation_is_the_largest_negative_constraint_value_and_inf_with_nan():
    """``violation``: ``max(0, -min K Q)`` over every cone; a NaN constraint value (a NaN
    weight) makes it inf, never a silent 0 (:func:`largest_violation`)."""
    from convexrelu.operators import largest_violation

    op = _program(ThreeLayerReLUProgram, "squared").operator
    Q = _random_like(op.shape, 50)
    cons = op.constraints(Q)
    assert op.violation(Q) == max(0.0, -min(float(c.min()) for c in cons)) > 0
    assert op.violation(torch.zeros(op.shape, dtype=op.dtype)) == 0.0
    Q[0, 0] = float("nan")
    assert op.violation(Q) == float("inf")
    assert largest_violation(()) == 0.0 and largest_violation((torch.tensor([[1.0, -2.0]]),)) == 2.0


@pytest.mark.parametrize("cls", PROGRAMS)
def test_row_sample_is_the_operator_on_evenly_spaced_samples(cls):
    """``row_sample(m)``: every ``ceil(n / m)``-th sample, the factor ``n`` over their
    number; its model and constraints are the whole operator's rows, and its Gram map
    times the factor is the whole's where every sample repeats the same rows."""
    op = _program(cls, "squared", n=23).operator
    assert op.row_sample(23) == (op, 1.0) and op.row_sample(100) == (op, 1.0)
    sub, w = op.row_sample(10)  # stride 3: samples 0, 3, ..., 21
    idx = np.arange(0, 23, 3)
    assert sub.n_samples == idx.size == 8 and w == pytest.approx(23 / 8)
    Q = torch.tensor(np.random.default_rng(0).standard_normal(op.shape))
    Z, cons = op.apply(Q)
    Zs, cons_s = sub.apply(Q)
    torch.testing.assert_close(Zs, Z[idx], rtol=1e-12, atol=1e-12)
    for c, cs in zip(cons, cons_s):
        torch.testing.assert_close(cs, c[idx], rtol=1e-12, atol=1e-12)
    # the same 8 samples three times: n / m = 3 and the scaled Gram norm is the whole's
    from convexrelu.operators import BlockOperator

    X3 = np.tile(sub.X_np, (3, 1))
    rep = BlockOperator(X3, np.tile(sub.first_np, (3, 1)), sub.signs_np, sub.group_np,
                        None if sub.second_np is None else np.tile(sub.second_np, (3, 1)), sub.sigma_np, sub.output_np,
                        sub.n_outputs, cone_first=sub.cone_first, cone_second=sub.cone_second)
    part, w3 = rep.row_sample(8)
    assert w3 == 3.0 and part.n_samples == 8
    assert part.norm_estimate(n_iter=50) ** 2 * w3 == pytest.approx(rep.norm_estimate(n_iter=50) ** 2, rel=1e-9)
