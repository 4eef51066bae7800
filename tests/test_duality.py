"""Dual lower bounds (theory.md, "Duality and certificates")."""

import numpy as np
import pytest
import torch

from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.duality import _best_scale, dual_lower_bound
from conftest import planted_regression, targets_for

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_any_point_gives_a_valid_lower_bound(cls, loss):
    X, y = planted_regression(n=20, seed=3)
    yy = targets_for(loss, y)
    prog = cls(X, yy, 10, loss=loss, beta=0.2, random_state=0)
    opt = CVXPYSolver().solve(prog).objective
    r = np.random.default_rng(0)
    for scale in (0.0, 0.1, 1.0):
        Q = scale * r.standard_normal(prog.shape)
        lb, a = dual_lower_bound(prog, Q)
        assert 0 <= a <= 1
        assert lb <= opt + 1e-9


def test_zero_point_closed_form_squared():
    X, y = planted_regression(n=12, seed=1)
    prog = GatedReLUProgram(X, y, 6, beta=1.0, random_state=0)
    thr = prog.zero_threshold()
    big = prog.with_beta(2 * thr)
    lb, a = dual_lower_bound(big, np.zeros(prog.shape))
    # v = -y is dual feasible: LB = -l*(-y) = 0.5 ||y||^2 = objective at zero (zero gap)
    assert a == pytest.approx(1.0, abs=1e-6)
    assert lb == pytest.approx(0.5 * np.sum(y**2))
    assert big.objective(np.zeros(prog.shape)) == pytest.approx(lb)


def test_best_scale_maximises_concave_function():
    t, val = _best_scale(lambda s: -(s - 0.3) ** 2, 1.0)
    assert t == pytest.approx(0.3, abs=1e-6) and val == pytest.approx(0.0, abs=1e-10)
    t, val = _best_scale(lambda s: s, 0.5)  # increasing: the end point
    assert t == 0.5 and val == 0.5


def test_multipliers_tighten_the_bound():
    X, y = planted_regression(n=20, seed=2)
    prog = ThreeLayerReLUProgram(X, y, 10, hidden=2, beta=0.1, random_state=0)
    sol = CVXPYSolver().solve(prog)
    without, _ = dual_lower_bound(prog, sol.weights)
    with_mult, _ = dual_lower_bound(prog, sol.weights, sol.multipliers)
    assert without <= with_mult <= sol.objective + 1e-9
    assert with_mult == pytest.approx(sol.objective, rel=1e-6)
    # the model output, given (as the solvers' certificate does), changes nothing; as
    # tensors, the multipliers give the bound of the arrays
    Q = prog.as_tensor(sol.weights)
    Z = prog.operator.matvec(Q)
    lams = tuple(torch.tensor(np.array(m)) for m in sol.multipliers)
    assert dual_lower_bound(prog, sol.weights, lams, Z) == dual_lower_bound(prog, sol.weights, sol.multipliers)
    assert prog.objective(Q, Z) == prog.objective(Q) and dual_lower_bound(prog, Q, (), Z) == dual_lower_bound(prog, Q)
    # a wrong Z is used as given: the bound of another model output
    assert dual_lower_bound(prog, Q, (), 2 * Z)[0] != without


def test_multipliers_are_clipped_and_no_input_is_changed():
    # negative entries count as zero; the solvers' non-negative arrays enter without a
    # copy (they are large at scale), and neither they nor the model output are written
    X, y = planted_regression(n=20, seed=2)
    prog = ThreeLayerReLUProgram(X, y, 10, hidden=2, beta=0.1, random_state=0)
    sol = CVXPYSolver().solve(prog)
    Q = prog.as_tensor(sol.weights)
    Z = prog.operator.matvec(Q)
    r = np.random.default_rng(0)
    signed = tuple(torch.tensor(np.array(m) + 0.1 * r.standard_normal(np.shape(m))) for m in sol.multipliers)
    clipped = tuple(torch.clamp(m, min=0) for m in signed)
    copies = [m.clone() for m in signed + clipped] + [Z.clone()]
    assert any(float(m.min()) < 0 for m in signed)
    assert dual_lower_bound(prog, Q, signed, Z) == dual_lower_bound(prog, Q, clipped, Z)
    assert all(torch.equal(a, b) for a, b in zip(signed + clipped + (Z,), copies))
    assert dual_lower_bound(prog, Q, clipped)[0] <= sol.objective + 1e-9


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_the_best_multipliers_of_each_group_tighten_any_bound(cls, loss):
    # any point, any multipliers: the tightened bound is never below the plain one, never
    # above the optimum; a budget or a deadline that allows no group gives the plain one
    X, y = planted_regression(n=20, seed=4)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, targets_for(loss, y), 10, loss=loss, beta=0.3, random_state=0, **extra)
    sol = CVXPYSolver().solve(prog)
    r = np.random.default_rng(1)
    gains = []
    for scale in (0.0, 0.1, 1.0):
        Q = sol.weights + scale * r.standard_normal(prog.shape)
        for mults in ((), sol.multipliers):
            plain, _ = dual_lower_bound(prog, Q, mults)
            tight, a = dual_lower_bound(prog, Q, mults, project_entries=1e9)
            assert 0 <= a <= 1
            assert plain <= tight + 1e-12 and tight <= sol.objective + 1e-9
            assert dual_lower_bound(prog, Q, mults, project_entries=1)[0] == plain
            assert dual_lower_bound(prog, Q, mults, project_entries=1e9, deadline=0.0)[0] == plain
            gains.append(tight - plain)
    assert max(gains) > 1e-3 * abs(sol.objective)  # (it does tighten somewhere)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="project_entries"):
            dual_lower_bound(prog, Q, project_entries=bad)


def test_at_the_optimum_the_best_multipliers_give_the_optimum():
    # one block per group (two layers): the tightened dual norm of a group is the largest
    # value of its atoms, sup {-v^T A_b q : K_b q >= 0, ||q|| <= 1}, so at the optimal
    # residual, with no multipliers at all, the bound is the optimum; without the
    # tightening it is the (lower) bound of the relaxation without cones
    X, y = planted_regression(n=30, seed=5)
    prog = TwoLayerReLUProgram(X, y, 12, beta=0.5, random_state=0)
    sol = CVXPYSolver().solve(prog)
    plain, _ = dual_lower_bound(prog, sol.weights)
    tight, _ = dual_lower_bound(prog, sol.weights, project_entries=1e9)
    assert plain < sol.objective - 1e-3
    assert tight == pytest.approx(sol.objective, rel=1e-6) and tight <= sol.objective + 1e-9


def test_the_tightened_value_of_a_group_is_its_largest_atom():
    # the group's value against CVXPY's maximum of -v^T A_b q over the cone and the unit ball
    import cvxpy as cp

    from convexrelu.duality import _tightened_dual_norm

    X, y = planted_regression(n=25, seed=6)
    prog = TwoLayerReLUProgram(X, y, 6, beta=1e-3, random_state=0)
    op = prog.operator
    v = torch.as_tensor(np.random.default_rng(2).standard_normal((25, 1)))
    G = op.adjoint(-v).neg_()  # A^T v
    values = []
    for b in range(op.n_blocks):
        K = op.group_constraint_matrix([b])
        q = cp.Variable(op.n_features)
        problem = cp.Problem(cp.Maximize(-G[:, b].numpy() @ q), [K @ q >= 0, cp.norm(q) <= 1])
        problem.solve()
        values.append(problem.value)
    # beta below every value: every group is projected, and the largest counts
    worst = _tightened_dual_norm(op, G, torch.linalg.vector_norm(G, dim=0), 0.0, 1e9, None)
    assert worst == pytest.approx(max(values), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_float32_programs_give_the_float64_bound(loss):
    # the dual point and the conjugate are evaluated in float64: in float32 the rows of a
    # softmax dual point summed to 1 only to ~1e-7, outside the conjugate's domain, and the
    # bound fell to about 1 % of the optimum
    import torch

    X, y = planted_regression(n=16, d=2, seed=1)
    prog = GatedReLUProgram(X, targets_for(loss, y), 6, loss=loss, beta=0.05, random_state=0)
    sol = CVXPYSolver().solve(prog)
    lb64, _ = dual_lower_bound(prog, sol.weights)
    lb32, _ = dual_lower_bound(prog.to(dtype=torch.float32), sol.weights)
    assert lb32 <= sol.objective * (1 + 1e-6)
    assert lb32 == pytest.approx(lb64, rel=1e-5)
    assert lb64 == pytest.approx(sol.objective, rel=1e-4)
