"""Exact projection of groups onto their cones (solvers/_projection.py): closed forms,
agreement with CVXPY, and the fallback of the feasibility repair on loose solves."""

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu import ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.solvers import ADMM, ConvergenceWarning
from convexrelu.solvers._projection import project_groups, project_onto_cone
from convexrelu.solvers.auglag import _group_violations, relative_violation, restore_feasibility
from conftest import planted_regression


pytestmark = pytest.mark.usefixtures("one_thread")


def _loose(cls, n, d, P, tol):
    """A program of ``cls`` and ADMM's unrepaired point at ``tol`` (cases where the
    least-squares rounds of the repair fail, found by trying)."""
    X, y = planted_regression(n=n, d=d, seed=0)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, y, P, beta=0.01 * n, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Q = ADMM(tol=tol, repair=False).solve(prog).weights
    return prog, torch.tensor(Q)


LOOSE = [(TwoLayerReLUProgram, 60, 4, 12, 1e-2), (TwoLayerReLUProgram, 60, 4, 12, 1e-3),
         (ThreeLayerReLUProgram, 60, 4, 12, 1e-3), (ThreeLayerReLUProgram, 80, 4, 16, 1e-4)]


# ----------------------------------------------------------------------------- one cone
def test_projection_onto_the_orthant_clips_the_negative_entries():
    u0 = np.array([1.5, -2.0, 0.0, -1e-3, 3.0])
    np.testing.assert_allclose(project_onto_cone(np.eye(5), u0), np.maximum(u0, 0), atol=1e-15)


def test_projection_onto_a_half_space():
    """``{u : a.u >= 0}``: a violating point moves along ``a`` by ``-a.u0 / ||a||^2``; a
    feasible one stays."""
    a = np.array([[1.0, 2.0, -2.0]])
    u0 = np.array([0.5, -1.0, 1.0])  # a.u0 = -3.5
    np.testing.assert_allclose(project_onto_cone(a, u0), u0 + 3.5 / 9 * a[0], atol=1e-15)
    np.testing.assert_array_equal(project_onto_cone(a, -u0), -u0)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_projection_of_a_group_agrees_with_cvxpy(cls):
    """On the constraint matrix of a real group and a violating point, the projection
    is CVXPY's ``min ||u - u0|| s.t. K u >= 0``, and satisfies the optimality
    conditions: ``K u >= 0``, ``u - u0 = K^T lam`` with ``lam >= 0``, ``lam . K u = 0``."""
    prog, Q = _loose(cls, *LOOSE[0 if cls is TwoLayerReLUProgram else 2][1:])
    op = prog.operator
    worst = _group_violations(op, op.constraints(Q))
    g = int(np.argmax(worst))
    assert worst[g] > 0
    blocks = np.flatnonzero((op.group_np == g) & (torch.linalg.vector_norm(Q, dim=0).numpy() > 0))
    K = op.group_constraint_matrix(blocks)
    u0 = Q[:, blocks].T.reshape(-1).numpy()
    u = project_onto_cone(K, u0)
    v = cp.Variable(u0.size)
    cp.Problem(cp.Minimize(cp.sum_squares(v - u0)), [K @ v >= 0]).solve(solver="CLARABEL")
    assert np.linalg.norm(u - v.value) <= 1e-6 * np.linalg.norm(u0)
    Ku = K @ u
    assert Ku.min() >= -1e-13 * np.abs(Ku).max()
    active = Ku <= 1e-9 * np.abs(Ku).max()
    lam_a, *_ = np.linalg.lstsq(K[active].T, u - u0, rcond=None)
    np.testing.assert_allclose(K[active].T @ lam_a, u - u0, atol=1e-10)
    assert lam_a.min() >= -1e-8 * max(1.0, lam_a.max())


# ----------------------------------------------------------------------------- groups
@pytest.mark.parametrize("case", LOOSE, ids=lambda c: c if not isinstance(c, type) else c.__name__)
def test_project_groups_makes_the_listed_groups_feasible_and_nothing_else(case):
    prog, Q = _loose(*case)
    op = prog.operator
    groups = np.arange(0, op.n_groups, 2)
    P, info = project_groups(op, Q, groups)
    changed = np.flatnonzero(torch.any(P != Q, dim=0).numpy())
    assert set(op.group_np[changed].tolist()) <= set(groups.tolist())
    assert torch.all(P[:, torch.linalg.vector_norm(Q, dim=0) == 0] == 0)  # zero blocks stay zero
    for c, cols in zip(op.constraints(P), op.constraint_groups()):
        listed = np.isin(cols, groups)
        assert float(c[:, torch.tensor(listed)].min()) >= -1e-12 * float(c.abs().max())
    assert info["skipped_groups"] == 0 and info["projected_groups"] <= groups.size


def test_project_groups_within_its_budget():
    prog, Q = _loose(ThreeLayerReLUProgram, 60, 4, 12, 1e-3)
    op = prog.operator
    P, info = project_groups(op, Q, np.arange(op.n_groups), max_entries=0)
    assert torch.equal(P, Q) and info["projected_groups"] == 0 and info["skipped_groups"] > 0


def test_project_groups_starts_no_group_that_would_end_past_its_deadline(monkeypatch):
    """With a deadline a group is projected only where the time left covers its
    constraint entries at the assumed (or measured) seconds per entry."""
    import time

    from convexrelu.solvers import _projection

    prog, Q = _loose(ThreeLayerReLUProgram, 60, 4, 12, 1e-3)
    op = prog.operator
    groups = np.arange(op.n_groups)
    monkeypatch.setattr(_projection, "SECONDS_PER_ENTRY", 3600.0)  # each group "takes" hours
    P, info = project_groups(op, Q, groups, deadline=time.perf_counter() + 60.0)
    assert torch.equal(P, Q) and info["projected_groups"] == 0 and info["timed_out"]
    monkeypatch.setattr(_projection, "SECONDS_PER_ENTRY", 0.0)
    P, info = project_groups(op, Q, groups, deadline=time.perf_counter() + 60.0)
    assert info["projected_groups"] > 0 and "timed_out" not in info
    assert torch.equal(P, project_groups(op, Q, groups)[0])


# ----------------------------------------------------------------------------- the repair
@pytest.mark.parametrize("case", LOOSE, ids=lambda c: c if not isinstance(c, type) else c.__name__)
def test_the_repair_projects_where_the_local_rounds_fail(case):
    """On these loose points the least-squares rounds alone leave the violation; with
    the projection the point is feasible to the target, and it moved by about the
    violation."""
    prog, Q = _loose(*case)
    op = prog.operator
    _, alone = restore_feasibility(op, Q, project=False)
    assert alone["violation_after"] > 1e-6
    fixed, info = restore_feasibility(op, Q)
    assert info["projection"]["projected_groups"] >= 1
    assert relative_violation(op, fixed) <= 1e-10 and info["violation_after"] <= 1e-10
    moved = float(torch.linalg.vector_norm(fixed - Q) / torch.linalg.vector_norm(Q))
    assert moved <= 100 * info["violation_before"]


def test_a_loose_admm_solve_returns_a_real_network_and_says_what_the_repair_cost():
    """ADMM at a loose tolerance: the returned point is feasible (status optimal, a
    duality gap), the recovered network reproduces its objective, and a warning gives
    the objective's rise from the unrepaired point."""
    X, y = planted_regression(n=150, d=5, seed=0)
    prog = ThreeLayerReLUProgram(X, y, 30, hidden=2, beta=1.5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="raised its objective by"):
        sol = ADMM(tol=1e-4).solve(prog)
    assert sol.status == "optimal" and sol.converged
    assert prog.violation(sol.weights) <= 1e-10 * float(np.abs(X).max())
    assert sol.lower_bound <= sol.objective < np.inf
    assert sol.objective > sol.info["objective_before_repair"]
    net = prog.recover(sol.weights)
    assert net.objective(X, y, "squared", prog.beta) == pytest.approx(sol.objective, rel=1e-9)
    np.testing.assert_allclose(net.predict(X), prog.predict(sol.weights),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", LOOSE, ids=lambda c: c if not isinstance(c, type) else c.__name__)
def test_the_local_rounds_zero_only_negligible_blocks(case):
    """Step 1 of the local rounds zeroes whole blocks: only blocks whose constraint
    values stay below NEGLIGIBLE of max |K Q| (a loose point's violation is far larger,
    and a hundred times it once dropped real parts of the model)."""
    from convexrelu.solvers.auglag import NEGLIGIBLE, constraint_scale

    prog, Q = _loose(*case)
    op = prog.operator
    fixed, info = restore_feasibility(op, Q, project=False)
    dropped = np.flatnonzero(((torch.linalg.vector_norm(Q, dim=0) > 0) & (torch.linalg.vector_norm(fixed, dim=0) == 0)).numpy())
    scale = constraint_scale(op.constraints(Q))
    for b in dropped:
        alone = torch.zeros_like(Q)
        alone[:, b] = Q[:, b]
        assert constraint_scale(op.constraints(alone)) <= NEGLIGIBLE * scale * (1 + 1e-9)


def test_the_repair_stops_at_its_deadline():
    """Past the deadline nothing is projected and no step is taken: the point comes
    back as it was, with ``timed_out``."""
    import time

    prog, Q = _loose(*LOOSE[2])
    fixed, info = restore_feasibility(prog.operator, Q, deadline=time.perf_counter() - 1)
    assert torch.equal(fixed, Q) and info["timed_out"]
    assert info["projection"]["projected_groups"] == 0 and info["cg_iterations"] == 0
    assert info["violation_after"] == info["violation_before"] > 0


def test_a_group_over_the_budget_keeps_the_projections_of_the_others():
    """The groups are independent: when the worst group is over the budget, the others
    are still projected and kept (their violations vanish, the worst one's stays)."""
    prog, Q = _loose(ThreeLayerReLUProgram, 60, 4, 12, 1e-3)
    op = prog.operator
    before = _group_violations(op, op.constraints(Q))
    worst = int(np.argmax(before))
    nonzero = np.flatnonzero((op.group_np == worst) & (torch.linalg.vector_norm(Q, dim=0).numpy() > 0))
    budget = op.group_constraint_matrix(nonzero).size - 1
    fixed, info = restore_feasibility(op, Q, max_projection_entries=budget, max_rounds=0)
    after = _group_violations(op, op.constraints(fixed))
    others = np.flatnonzero((before > 0) & (np.arange(op.n_groups) != worst))
    assert info["projection"]["skipped_groups"] >= 1 and info["projection"]["projected_groups"] >= 1
    assert after[worst] == before[worst]
    assert np.sum(after[others] <= 1e-14 * float(op.constraints(fixed)[0].abs().max())) >= 1


def test_projected_groups_keep_no_rounding_sized_blocks():
    """A block that the projection sends to zero comes back exactly zero, not as a
    block of norm 1e-17 (a spurious neuron violating its own cone)."""
    for case in LOOSE:
        prog, Q = _loose(*case)
        fixed, info = restore_feasibility(prog.operator, Q)
        norms = torch.linalg.vector_norm(fixed, dim=0)
        live = norms[norms > 0]
        assert float(live.min()) > 1e-10 * float(live.max())


def test_a_past_deadline_projects_nothing():
    prog, Q = _loose(*LOOSE[2])
    op = prog.operator
    K = op.group_constraint_matrix(np.flatnonzero(op.group_np == 0))
    assert project_onto_cone(K, -np.ones(K.shape[1]), deadline=0.0) is None
    P, info = project_groups(op, Q, np.arange(op.n_groups), deadline=0.0)
    assert torch.equal(P, Q) and info["timed_out"] and info["projected_groups"] == 0


def test_the_local_rounds_measure_each_block_by_its_own_values():
    """A block of tiny norm on a feature in large units (|x . q| = 5e-3 of the scale)
    is not negligible: the local rounds keep it."""
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, size=(20, 1)) * 1e4
    prog = TwoLayerReLUProgram(t, rng.standard_normal(20), 6, random_state=0)
    op = prog.operator
    Q = torch.zeros(op.shape, dtype=torch.float64)
    j = int(np.argmax(op.X_np.std(0) < 1e-12))  # the intercept column
    Q[j, 0] = 1e3  # intercept only: violated where block 0's pattern is off
    Q[1 - j, 1] = 5e-4  # tiny norm, |X q_1| up to 5
    fixed, _ = restore_feasibility(op, Q, project=False)
    assert float(torch.linalg.vector_norm(fixed[:, 1])) > 0


def test_a_point_with_nan_is_never_feasible():
    prog, Q = _loose(*LOOSE[0])
    Q[0, 0] = float("nan")
    assert relative_violation(prog.operator, Q) == np.inf
