"""The interior point's row selection (solvers/_facets.py): the analytic centre in closed
form, the leverages against the explicit constraint matrices, the selection against the
facets found by linear programs, and the interior point's check of the dropped rows."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from convexrelu import ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.operators import BlockOperator
from convexrelu.solvers import ConvergenceWarning, InteriorPoint, _facets
from convexrelu.solvers import ipm as ipm_module
from convexrelu.solvers.auglag import relative_violation
from conftest import planted_regression

pytestmark = pytest.mark.usefixtures("one_thread")


def one_cone(X, pattern):
    """The operator of one two-layer block: rows ``(2 D - 1) x_r``."""
    n = X.shape[0]
    return BlockOperator(X, pattern[:, None], np.ones(1), np.zeros(1, dtype=np.int64), None, np.ones(1),
                         np.zeros(1, dtype=np.int64), 1, cone_first=True, cone_second=False)


def test_analytic_center_of_the_quadrant_in_closed_form():
    """Rows e_1, e_2 (the quadrant of R^2) and the ball weighted by N = 2: the centre
    minimises -log u1 - log u2 - 2 log(1 - |u|^2), at u1 = u2 = 1 / sqrt(6), so w = 6."""
    op = one_cone(np.eye(2), np.array([True, True]))
    w, centred = _facets.analytic_center(op, op.constraint_support(), tol=1e-12)
    assert bool(centred.all())
    np.testing.assert_allclose(w[0][:, 0].numpy(), [6.0, 6.0], rtol=1e-6)


def test_a_cone_without_interior_is_not_centred():
    """Rows e_1 and -e_1 leave only the line u_1 = 0: no strictly feasible point."""
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    op = one_cone(X, np.array([True, False, True]))
    _, centred = _facets.analytic_center(op, op.constraint_support())
    assert not bool(centred.any())
    keep = _facets.leverage_selection(op, op.constraint_support())
    assert bool(keep[0].all())  # every row kept


def test_ball_and_group_max_steps_in_closed_form():
    U = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.2, 0.0]], dtype=torch.float64)
    dU = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(_facets._ball_max_step(U, dU).numpy(), [1.0, 0.5, np.inf])
    v = (torch.tensor([[1.0, 2.0], [4.0, 1.0]], dtype=torch.float64),)
    dv = (torch.tensor([[-2.0, 1.0], [-1.0, 1.0]], dtype=torch.float64),)
    cols = (torch.tensor([0, 1]),)
    np.testing.assert_allclose(_facets._group_max_step(v, dv, cols, 2).numpy(), [0.5, np.inf])


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_row_leverages_against_the_explicit_rows(cls):
    """``w_r k_r^T M_g k_r`` from the adjoint of constraint_gram equals the sum over the
    rows of each group's dense constraint matrix."""
    X, y = planted_regression(n=20, d=3, seed=2)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    op = cls(X, y, 5, beta=0.1, random_state=0, **extra).operator
    r = np.random.default_rng(0)
    weights = tuple(torch.as_tensor(r.random(shape)) for shape in op.constraint_shapes)
    G, m = op.padded_groups().shape
    md = m * op.n_features
    A = r.standard_normal((G, md, md))
    M = torch.as_tensor(A @ A.transpose(0, 2, 1))
    lev = _facets.row_leverages(op, weights, M)
    gidx = op.padded_groups().numpy()
    for g in range(G):
        blocks = [b for b in gidx[g] if b < op.n_blocks]
        K = op.group_constraint_matrix(blocks)  # rows: first cone per block, then second cone
        # the group's rows in the same order, from the arrays
        cols_first = [(0, b) for b in blocks] if op.cone_first else []
        cols_second = [(len(op.constraint_shapes) - 1, g)] if op.cone_second else []
        want = np.einsum("ri,ij,rj->r", K, M[g, :len(blocks) * op.n_features, :len(blocks) * op.n_features].numpy(), K)
        got = np.concatenate([lev[a][:, c].numpy() / weights[a][:, c].numpy() for a, c in cols_first + cols_second])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def exact_facets(K):
    """Rows of K that are not implied by the others (a linear program per row)."""
    out = np.zeros(len(K), bool)
    for i in range(len(K)):
        others = np.delete(K, i, 0)
        res = linprog(K[i], A_ub=-others, b_ub=np.zeros(len(others)), bounds=[(-1, 1)] * K.shape[1],
                      method="highs")
        out[i] = res.fun < -1e-9
    return out


def test_likely_facets_keep_every_facet_and_drop_rows():
    """On a two-layer program (n = 80, d = 4 with the intercept) every facet of every
    block's cone, found by linear programs, is kept, and most rows are dropped."""
    X, y = planted_regression(n=80, d=3, seed=3)
    prog = TwoLayerReLUProgram(X, y, 8, beta=0.1, random_state=0)
    op = prog.operator
    support = op.constraint_support()
    keep = _facets.likely_facets(op, support)[0].numpy()
    assert keep.sum() < 0.6 * support[0].sum()
    for b in range(op.n_blocks):
        K = (2.0 * op.first_np[:, b] - 1.0)[:, None] * op.X_np
        facets = exact_facets(K)
        assert facets.sum() < len(K)
        assert np.all(keep[facets, b]), f"block {b}: a facet was dropped"


def test_block_cones_hold_the_first_cone_rows_by_pattern():
    X, y = planted_regression(n=20, d=3, seed=2)
    op = ThreeLayerReLUProgram(X, y, 5, hidden=2, beta=0.1, random_state=0).operator
    sub, columns = op.block_cones()
    assert not sub.cone_second and sub.trivial_groups and sub.n_blocks <= op.n_blocks
    np.testing.assert_array_equal(sub.first_np[:, columns], op.first_np)
    Q = torch.randn(op.n_features, sub.n_blocks, dtype=torch.float64)
    np.testing.assert_allclose(sub.constraints(Q)[0][:, columns].numpy(),
                               op.constraints(Q[:, columns])[0].numpy())


def test_without_a_first_cone_every_row_is_kept():
    X, y = planted_regression(n=20, d=3, seed=2)
    op = ThreeLayerReLUProgram(X, y, 5, hidden=2, beta=0.1, random_state=0).operator
    second_only = BlockOperator(op.X_np, op.first_np, op.signs_np, op.group_np, op.second_np, op.sigma_np,
                                op.output_np, op.n_outputs, cone_first=False, cone_second=True)
    support = second_only.constraint_support()
    assert second_only.block_cones() is None
    kept = _facets.likely_facets(second_only, support)
    assert all(bool(torch.equal(k, s)) for k, s in zip(kept, support))


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_interior_point_with_and_without_the_selection_agree(cls):
    X, y = planted_regression(n=60, d=3, seed=4)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, y, 8, beta=0.1, random_state=0, **extra)
    every = InteriorPoint(tol=1e-8, row_fraction=None).solve(prog)
    some = InteriorPoint(tol=1e-8).solve(prog)
    assert every.info["kept_rows"] == 1.0 and every.info["row_rounds"] == 1
    assert 0 < some.info["kept_rows"] < 1.0
    assert some.converged and every.converged
    assert abs(some.objective - every.objective) <= 1e-6 * abs(every.objective)
    assert some.constraint_violation <= 1e-9 and some.lower_bound <= some.objective


def one_row_per_block(op, support, fraction):
    """A bad selection: the first row of every block only."""
    first = torch.zeros_like(support[0])
    first[0] = support[0][0]
    return (first,) + tuple(support[1:])


@pytest.mark.parametrize("grow", [True, False])
def test_interior_point_adds_the_violated_rows_of_a_bad_selection(monkeypatch, grow):
    """A selection that keeps one row per block misses facets the optimum touches: the
    rows the iterates violate join on the way (``GROW_GAP``) or, without that, the
    answer violates dropped rows, which join, and the iterations start again; either way
    the result is the optimum with every row."""
    X, y = planted_regression(n=60, d=3, seed=4)
    prog = TwoLayerReLUProgram(X, y, 8, beta=0.01, random_state=0)
    every = InteriorPoint(tol=1e-8, row_fraction=None).solve(prog)

    monkeypatch.setattr(ipm_module, "likely_facets", one_row_per_block)
    if not grow:
        monkeypatch.setattr(ipm_module, "GROW_GAP", 0.0)
    sol = InteriorPoint(tol=1e-8).solve(prog)
    if grow:
        assert sol.info["added_rows"] > 0
    else:
        assert sol.info["row_rounds"] >= 2 and sol.info["added_rows"] == 0
        assert sol.iterations > every.iterations  # the rounds' iterations add up
    assert abs(sol.objective - every.objective) <= 1e-6 * abs(every.objective)
    assert relative_violation(prog.operator, prog.as_tensor(np.asarray(sol.weights))) <= 1e-10


def test_rows_violated_near_the_optimum_join_without_another_round(monkeypatch):
    """Friedman's problem at a small beta: the answer on the selected rows violates a few
    dropped ones. Added on the way (``GROW_GAP``) they cost no second round: one round,
    fewer Newton iterations than the two rounds without it (measured: 36 against 75), the
    same optimum as the barrier on every row."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    prog = ThreeLayerReLUProgram(X, (y - y.mean()) / y.std(), 50, hidden=2, beta=0.1, random_state=0)
    grown = InteriorPoint().solve(prog)
    monkeypatch.setattr(ipm_module, "GROW_GAP", 0.0)
    rounds = InteriorPoint().solve(prog)
    every = InteriorPoint(row_fraction=None).solve(prog)
    assert rounds.info["row_rounds"] >= 2 and rounds.info["added_rows"] == 0
    assert grown.info["row_rounds"] == 1 and grown.info["added_rows"] > 0
    assert grown.iterations < rounds.iterations
    for sol in (grown, rounds):
        assert sol.converged and abs(sol.objective - every.objective) <= 1e-6 * abs(every.objective)
        assert sol.constraint_violation <= 1e-9


def test_row_fraction_is_checked():
    with pytest.raises(ValueError, match="row_fraction"):
        InteriorPoint(row_fraction=-0.1)


def test_the_rounds_share_max_iter(monkeypatch):
    """max_iter bounds the iterations of all the rounds together: cut below what the
    rounds take, the solve stops there with a warning."""
    X, y = planted_regression(n=60, d=3, seed=4)
    prog = TwoLayerReLUProgram(X, y, 8, beta=0.01, random_state=0)
    monkeypatch.setattr(ipm_module, "likely_facets", one_row_per_block)
    monkeypatch.setattr(ipm_module, "GROW_GAP", 0.0)  # (the rows then join by rounds)
    whole = InteriorPoint(tol=1e-8).solve(prog)
    assert whole.info["row_rounds"] >= 2
    cap = whole.iterations - 3
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        sol = InteriorPoint(tol=1e-8, max_iter=cap).solve(prog)
    assert sol.iterations == cap and not sol.converged


def test_with_many_more_samples_than_unknowns_the_facets_are_selected_too():
    """Whatever the samples per unknown (here 6.7 and 1.25: the interior point factors the
    Newton matrix itself), the barrier covers the likely facets only, and the answer is
    that of the barrier on every row (``row_fraction=None``)."""
    X, y = planted_regression(n=200, d=3, seed=4)
    for patterns in (3, 16):
        prog = TwoLayerReLUProgram(X, y, patterns, beta=0.1, random_state=0)
        op = prog.operator
        sol = InteriorPoint().solve(prog)
        every = InteriorPoint(row_fraction=None).solve(prog)
        assert sol.info["system"] == "dense" and sol.converged and every.converged
        assert sol.info["kept_rows"] < 1.0 and every.info["kept_rows"] == 1.0
        assert abs(sol.objective - every.objective) <= 1e-6 * abs(every.objective)
        assert relative_violation(op, prog.as_tensor(np.asarray(sol.weights))) <= 1e-10
