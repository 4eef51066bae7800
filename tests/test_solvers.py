"""Solvers: every solver x every program x every loss against CVXPY, recovery, constraints,
certificates, warm starts, warnings and errors, float32; and the checks the first-order
solvers rely on (finite-difference gradients of the smooth parts, including the
augmented-Lagrangian term; the operator's adjoint test is in test_operators.py).

Problems are small (n = 24) so that the whole file runs in about a minute on 2 cores.
"""

import copy
import importlib.util
import math
import pickle
import re
import sys
import warnings

import numpy as np
import pytest
import torch

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram, sample_two_layer
from convexrelu.solvers import (
    ADMM,
    SOLVERS,
    AugmentedLagrangian,
    AutoSolver,
    ConvergenceWarning,
    CVXPYSolver,
    FISTA,
    InteriorPoint,
    Solution,
    Solver,
    SolverError,
    get_solver,
)
from convexrelu.solvers.auglag import constraint_scale, relative_violation, restore_feasibility
from convexrelu.solvers.base import LOOSE_GAP, frozen
from convexrelu.solvers.fista import ALPart, LossPart
from conftest import planted_regression, small_program, targets_for

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]
LOSSES = ["squared", "logistic", "softmax"]
SOLVER_NAMES = ["cvxpy", "fista", "auglag", "admm", "ipm", "auto"]


pytestmark = pytest.mark.usefixtures("one_thread")


_PROGRAMS: dict = {}
_REFERENCES: dict = {}
_SOLUTIONS: dict = {}


def program(cls, loss):
    key = (cls, loss)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = small_program(cls, loss)
    return _PROGRAMS[key]


def reference(cls, loss) -> Solution:
    key = (cls, loss)
    if key not in _REFERENCES:
        _REFERENCES[key] = CVXPYSolver().solve(program(cls, loss))
    return _REFERENCES[key]


def make_solver(name, **kw):
    if name == "auto":
        # these programs are tiny: force the first-order path (the interior point is tested as "ipm")
        kw.setdefault("cvxpy_max_size", 0)
        kw.setdefault("ipm", False)
    return get_solver(name, **kw)


def solved(name, cls, loss) -> Solution:
    key = (name, cls, loss)
    if key not in _SOLUTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            _SOLUTIONS[key] = make_solver(name).solve(program(cls, loss))
    return _SOLUTIONS[key]


def _random(shape, seed, dtype=torch.float64):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


# ----------------------------------------------------------------------------- operators
# the adjoint identity itself is tested in test_operators.py (test_adjoint)
@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_of_smooth_parts_finite_differences(cls, loss):
    """The gradients FISTA uses: of l(A Q) and of l(A Q) + psi(K Q, lam, rho), the latter
    on the whole arrays and by row blocks of 5 samples (the last one shorter)."""
    prog = program(cls, loss)
    op = prog.operator
    Q0 = 0.3 * _random(op.shape, 4)
    D = _random(op.shape, 5)
    parts = [LossPart(prog)]
    if op.has_constraints:
        lam = tuple(torch.clamp(_random(s, 6 + i), min=0) for i, s in enumerate(op.constraint_shapes))
        parts += [ALPart(prog, lam, rho=0.7, rows=None), ALPart(prog, lam, rho=0.7, rows=5)]
        assert parts[-1].blocks is not None and op.n_samples % 5
    h = 1e-6
    for part in parts:
        g = part.grad(part.state(Q0))
        fd = (part.value(part.state(Q0 + h * D)) - part.value(part.state(Q0 - h * D))) / (2 * h)
        assert fd == pytest.approx(float(torch.sum(g * D)), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("rows", [None, 5])
@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_extrapolated_state_is_the_state_of_the_extrapolated_point(cls, rows):
    prog = program(cls, "squared")
    part = ALPart(prog, tuple(torch.ones(s, dtype=torch.float64) for s in prog.operator.constraint_shapes), 2.0,
                  rows=rows)
    Q0, Q1 = _random(prog.shape, 7), _random(prog.shape, 8)
    w = 0.37
    S = part.extrapolate(part.state(Q0), part.state(Q1), w)
    direct = part.state(Q1 + w * (Q1 - Q0))
    assert torch.allclose(S.Z, direct.Z)
    assert part.value(S) == pytest.approx(part.value(direct), rel=1e-12)
    assert torch.allclose(part.grad(S), part.grad(direct), rtol=1e-11, atol=1e-12)
    assert all(torch.allclose(a, b) for a, b in zip(part.multipliers(S), part.multipliers(direct)))


def _row_block_cases():
    return [(TwoLayerReLUProgram, "squared"), (ThreeLayerReLUProgram, "logistic"), (ThreeLayerReLUProgram, "softmax"),
            ("slab", "squared")]


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("cls, loss", _row_block_cases())
def test_augmented_lagrangian_by_row_blocks_is_the_one_of_the_whole_arrays(cls, loss, kernels):
    """ALPart by row blocks (of 1, 5 and 7 samples) against the whole arrays, float64:
    the values, multipliers and gradients of a state, of an extrapolated state and of a
    state after a restart (read whole), to rounding; FISTA then takes the same steps.
    With ``kernels`` the blocks of the programs they cover (one output, single-block or
    slab groups) go through the compiled kernels (:mod:`convexrelu._kernels`)."""
    from convexrelu import _kernels

    prog = _slab_program(loss)[0] if cls == "slab" else program(cls, loss)
    op = prog.operator
    lam = tuple(torch.clamp(_random(s, 30 + i), min=0) for i, s in enumerate(op.constraint_shapes))
    whole = ALPart(prog, lam, rho=1.3, rows=None)
    Q0, Q1 = 0.5 * _random(op.shape, 40), 0.5 * _random(op.shape, 41)
    ref = [whole.state(Q0), whole.state(Q1)]
    ref.append(whole.extrapolate(ref[0], ref[1], 0.6))
    for rows in (1, 5, 7, op.n_samples):
        part = ALPart(prog, lam, rho=1.3, rows=rows, kernels=kernels)
        covered = kernels and _kernels.available() and (cls == "slab" or cls is TwoLayerReLUProgram)
        if rows == op.n_samples and not covered:  # one block by torch operations: the whole arrays
            assert part.blocks is None and part.extrapolation_arrays
            continue
        assert len(part.blocks) == -(-op.n_samples // rows) and not part.extrapolation_arrays
        assert (part.kernels is not None) == covered
        got = [part.state(Q0), part.state(Q1)]
        got.append(part.extrapolate(got[0], got[1], 0.6))
        for a, b in zip(got, ref):
            assert part.value(a) == pytest.approx(whole.value(b), rel=1e-12)
            assert part.loss_value(a) == pytest.approx(whole.loss_value(b), rel=1e-12)
            torch.testing.assert_close(part.grad(a), whole.grad(b), rtol=1e-11, atol=1e-12)
        for a, b in zip(part.multipliers(got[1]), whole.multipliers(ref[1])):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    # FISTA's iterates: the same steps, restarts and backtracks
    from convexrelu.solvers.fista import fista_minimize

    runs = [fista_minimize(ALPart(prog, lam, rho=1.3, rows=rows, kernels=kernels), op.zeros(), prog.beta, step=0.5,
                           max_iter=60, tol=0.0, scale=1.0, step_increase=1.05) for rows in (None, 5)]
    assert runs[0].iterations == runs[1].iterations == 60 and runs[0].backtracks == runs[1].backtracks > 0
    assert runs[0].restarts == runs[1].restarts
    torch.testing.assert_close(runs[1].Q, runs[0].Q, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["loss", "whole", "blocks"])
def test_fista_holds_a_bounded_number_of_states(kind, monkeypatch):
    """FISTA recycles its dead states' arrays; the states alive at once stay few over a
    long solve with backtracks and restarts (no pool that grows by a state per iteration)."""
    import weakref

    from convexrelu.solvers import fista

    live, most = weakref.WeakSet(), [0]

    class Tracked(fista._State):
        def __init__(self, *args):
            super().__init__(*args)
            live.add(self)
            most[0] = max(most[0], len(live))

    monkeypatch.setattr(fista, "_State", Tracked)
    prog = program(GatedReLUProgram if kind == "loss" else TwoLayerReLUProgram, "squared")
    op = prog.operator
    lam = tuple(torch.zeros(s, dtype=torch.float64) for s in op.constraint_shapes)
    part = LossPart(prog) if kind == "loss" else ALPart(prog, lam, 1.0, rows=None if kind == "whole" else 5)
    res = fista.fista_minimize(part, op.zeros(), prog.beta, step=10.0, max_iter=300, tol=0.0, scale=1.0,
                               step_increase=1.2)
    assert res.iterations == 300 and res.backtracks > 20 and res.restarts > 0
    assert most[0] <= 8, most


def test_row_block_size_picks_blocks_for_large_constraint_arrays_on_the_cpu(monkeypatch):
    from convexrelu.solvers import fista

    two, gated = program(TwoLayerReLUProgram, "squared"), program(GatedReLUProgram, "squared")
    op = two.operator
    n = op.n_samples
    assert fista.row_block_size(op) is None  # 24 x 16 numbers: whole
    assert fista.row_block_size(op, kernels=True) is None  # below KERNELS_MIN_BYTES as well
    width = sum(s[1] for s in op.constraint_shapes) * 8
    monkeypatch.setattr(fista, "KERNELS_MIN_BYTES", 0)
    monkeypatch.setattr(fista, "ROW_BLOCK_MIN_BYTES", n * width // 2)
    monkeypatch.setattr(fista, "ROW_BLOCK_BYTES", 10 * width)
    assert fista.row_block_size(op) == 10
    assert fista.row_block_size(op.to(dtype=torch.float32)) == 20  # half the bytes per row
    assert fista.row_block_size(gated.operator) is None  # no constraint values
    monkeypatch.setattr(fista, "ROW_BLOCK_BYTES", 1)
    assert fista.row_block_size(op) == 8  # at least 8 rows
    monkeypatch.setattr(fista, "ROW_BLOCK_MIN_BYTES", n * width + 1)
    assert fista.row_block_size(op) is None
    # with the compiled kernels, by blocks from KERNELS_MIN_BYTES on, below ROW_BLOCK_MIN_BYTES too
    covers = op.covers_penalty_kernels()
    assert covers == (importlib.util.find_spec("numba") is not None)
    monkeypatch.setattr(fista, "ROW_BLOCK_BYTES", 10 * width)
    assert fista.row_block_size(op, kernels=True) == (10 if covers else None)
    assert fista.row_block_size(op, kernels=False) is None
    lam = tuple(torch.zeros(s, dtype=torch.float64) for s in op.constraint_shapes)
    assert (ALPart(two, lam, 1.0).kernels is not None) == covers  # ALPart's default
    assert ALPart(two, lam, 1.0, kernels=False).blocks is None
    # one block of every row where ROW_BLOCK_BYTES holds them all: the kernels on the whole arrays
    monkeypatch.setattr(fista, "ROW_BLOCK_BYTES", n * width + 1)
    assert fista.row_block_size(op, kernels=True) == (n if covers else None)
    part = ALPart(two, lam, 1.0)
    assert (part.blocks is not None and len(part.blocks) == 1 and part.kernels is not None) if covers else (
        part.blocks is None)
    monkeypatch.setattr(fista, "KERNELS_MIN_BYTES", n * width + 1)
    assert fista.row_block_size(op, kernels=True) is None
    assert ALPart(two, lam, 1.0).blocks is None


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_augmented_lagrangian_solve_by_row_blocks_agrees_with_cvxpy(cls, monkeypatch):
    """The whole solve as at scale: every inner evaluation by row blocks of 8 samples
    (through the compiled kernels where numba is installed), the first penalty and step
    estimated on every third sample (:data:`auglag.NORM_ROWS`): the CVXPY objective to
    1e-5, feasible, and the certificate."""
    from convexrelu.operators import BlockOperator
    from convexrelu.solvers import auglag, fista

    monkeypatch.setattr(auglag, "NORM_ROWS", 10)  # n = 24: samples 0, 3, ..., 21
    sampled = []
    row_sample = BlockOperator.row_sample
    monkeypatch.setattr(BlockOperator, "row_sample", lambda self, m: sampled.append(row_sample(self, m)) or sampled[-1])
    monkeypatch.setattr(fista, "ROW_BLOCK_MIN_BYTES", 0)
    monkeypatch.setattr(fista, "KERNELS_MIN_BYTES", 0)
    monkeypatch.setattr(fista, "ROW_BLOCK_BYTES", 1)  # 8 rows per block (the least)
    sweeps = []  # the evaluations by blocks did run (through the kernels or not)
    blocked_state = fista.ALPart._blocked_state
    monkeypatch.setattr(fista.ALPart, "_blocked_state", lambda self, Q, spare: sweeps.append(
        (len(self.blocks), self.kernels is not None)) or blocked_state(self, Q, spare))
    prog, ref = program(cls, "squared"), reference(cls, "squared")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = AugmentedLagrangian().solve(prog)
    from convexrelu import _kernels

    kernels = _kernels.available() and cls is TwoLayerReLUProgram  # (the small three-layer groups are irregular)
    assert len(sweeps) >= sol.iterations and set(sweeps) == {(3, kernels)}  # n = 24: blocks of 8
    assert [(sub.n_samples, w) for sub, w in sampled] == [(8, 3.0)]
    assert sol.converged and _relative(sol.objective, ref.objective) <= 1e-5
    assert sol.constraint_violation <= 1e-9 * constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert sol.lower_bound <= ref.objective * (1 + 1e-7) + 1e-9 and sol.relative_gap <= 2e-3


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("name", SOLVER_NAMES)
@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_agreement_with_cvxpy_and_recovery(name, cls, loss):
    prog = program(cls, loss)
    if name == "fista" and prog.has_constraints:
        with pytest.raises(ValueError, match="unconstrained"):
            FISTA().solve(prog)
        return
    ref = reference(cls, loss)
    sol = solved(name, cls, loss)
    assert sol.converged
    assert _relative(sol.objective, ref.objective) <= 1e-5
    # the solution record
    assert sol.weights.shape == prog.shape and sol.iterations >= 1 and sol.time > 0 and len(sol.history) >= 1
    assert sol.objective == pytest.approx(prog.objective(sol.weights), rel=1e-12)
    assert [m.shape for m in sol.multipliers] == list(prog.operator.constraint_shapes)
    # cone constraints: feasible to rounding, relative to the scale of X Q
    scale = constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert sol.constraint_violation <= 1e-9 * scale
    # certificate
    assert sol.lower_bound <= sol.objective + 1e-9
    assert sol.lower_bound <= ref.objective * (1 + 1e-7) + 1e-9
    assert sol.relative_gap <= 2e-3
    # the recovered network reproduces objective and predictions
    net = prog.recover(sol.weights)
    X, y = planted_regression(n=24, d=2, seed=0)
    yy = targets_for(loss, y)
    assert net.objective(X, yy, loss, prog.beta) == pytest.approx(sol.objective, rel=1e-6)
    pred = prog.predict(sol.weights)
    np.testing.assert_allclose(net.predict(X), pred, rtol=1e-6, atol=1e-7 * np.abs(pred).max())


@pytest.mark.parametrize("factor", [1.0, 1.01, 1e200])
@pytest.mark.parametrize("name", ["fista", "auglag", "admm", "ipm", "auto", "cvxpy"])
@pytest.mark.parametrize("cls", PROGRAMS)
def test_beta_at_the_zero_threshold_or_above_gives_the_certified_zero_network(name, cls, factor):
    """``beta >= zero_threshold()``: the zero network, at once, certified optimal (lower
    bound = objective = l(0) = ||y||^2 / 2), with zero multipliers of the constraints'
    shapes. At beta = 1e200 the interior point had raised 'Newton matrix is not positive
    definite'."""
    base = program(cls, "squared")
    prog = base.with_beta(factor * base.zero_threshold())
    if name == "fista" and prog.has_constraints:
        return
    sol = make_solver(name).solve(prog)
    assert sol.converged and sol.status == "optimal" and sol.iterations == 0
    assert not np.any(sol.weights)
    assert sol.objective == pytest.approx(0.5 * np.sum(prog.Y_np**2), rel=1e-14)
    assert sol.lower_bound == sol.objective
    assert [m.shape for m in sol.multipliers] == list(prog.operator.constraint_shapes)
    assert sol.info["zero_threshold"] == base.zero_threshold()


def test_beta_just_below_the_zero_threshold_is_solved():
    """Below the threshold of the unconstrained (gated) program the zero network is not
    optimal: the solvers iterate and find a better one."""
    base = program(GatedReLUProgram, "squared")
    prog = base.with_beta(0.99 * base.zero_threshold())
    sol = make_solver("ipm").solve(prog)
    assert sol.iterations >= 1 and np.any(sol.weights)
    assert sol.objective < 0.5 * np.sum(prog.Y_np**2)


def scaled_program(cls, c):
    """:func:`small_program` (squared loss) with targets and beta times ``c``: the same
    patterns, its solution ``c`` times, its objective ``c^2`` times."""
    X, y = planted_regression(n=24, d=2, seed=0)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    return cls(X, c * y, 6, beta=0.1 * c, random_state=0, **extra)


@pytest.mark.parametrize("c", [1e-4, 1e4])
@pytest.mark.parametrize("name", SOLVER_NAMES)
@pytest.mark.parametrize("cls", PROGRAMS)
def test_targets_far_from_unit_size_give_the_scaled_optimum(name, cls, c):
    """Targets and beta times ``c`` (1e-4: the interior point returned the zero network as
    optimal, relative gap 0.72): every solver returns ``c`` times the weights of the
    unit-size program, within the tolerance of the agreement test, at ``c^2`` times its
    CVXPY objective, feasible and certified, solved in the targets' units."""
    prog = scaled_program(cls, c)
    ref = reference(cls, "squared")
    if name == "fista" and prog.has_constraints:
        return  # (refused: tested above)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = make_solver(name).solve(prog)
    assert sol.converged
    assert _relative(sol.objective / c**2, ref.objective) <= 1e-5
    assert sol.objective == pytest.approx(prog.objective(sol.weights), rel=1e-12)
    assert sol.constraint_violation <= 1e-9 * constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert sol.lower_bound <= sol.objective * (1 + 1e-12)
    assert sol.lower_bound <= c**2 * ref.objective * (1 + 1e-7)
    assert sol.relative_gap <= 2e-3
    np.testing.assert_allclose(prog.predict(sol.weights) / c, program(cls, "squared").predict(ref.weights),
                               atol=3e-3 * np.abs(prog.predict(sol.weights) / c).max())
    assert sol.info["target_scale"] == prog.target_unit() == 2.0 ** round(math.log2(np.sqrt(np.mean(prog.Y_np**2))))


@pytest.mark.parametrize("c", [1.0, 1e-4])
@pytest.mark.parametrize("solver", [AugmentedLagrangian(max_iter=1, inner_max_iter=3), ADMM(max_iter=3),
                                    InteriorPoint(max_iter=2), CVXPYSolver(max_iter=2), FISTA(max_iter=3)],
                         ids=["auglag", "admm", "ipm", "cvxpy", "fista"])
def test_a_solve_stopped_early_warns_at_the_callers_line(solver, c):
    """The solvers' warnings name the line that called ``solve`` (not the presolve's or the
    change of units' decorators inside the library)."""
    prog = scaled_program(GatedReLUProgram if isinstance(solver, FISTA) else TwoLayerReLUProgram, c)
    with pytest.warns(ConvergenceWarning) as caught:
        solver.solve(prog)
    assert [w.filename for w in caught] == [__file__] * len(caught)


def _large_targets(cls, beta):
    """Targets of size 1e3 and a small beta: in the targets' units (1024) the objective is
    far below 1 (7.6e-7 at beta = 2e-4)."""
    rng = np.random.RandomState(1)
    X = rng.randn(30, 3)
    rng.randn(3)
    y = np.cos(X @ rng.randn(3)) * 1e3
    return cls(X, y, sample_two_layer(np.hstack([X, np.ones((30, 1))]), 15, random_state=0), beta=beta)


@pytest.mark.parametrize("beta", [2e-2, 2e-3, 2e-4])
def test_the_interior_points_gaps_are_relative_below_an_objective_of_one(beta):
    """Its gaps were relative to max(1, |objective|): in the targets' units, at objectives
    of 1e-4 to 1e-6, they became absolute and it stopped 2.3e-4, 5.8e-3 and 3.2e-2 above
    CVXPY's optimum, saying 'optimal'. Relative to the objective, it certifies 1e-6."""
    prog = _large_targets(TwoLayerReLUProgram, beta)
    assert prog.target_unit() == 1024.0
    ref = CVXPYSolver().solve(prog)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = InteriorPoint().solve(prog)
    assert sol.converged and sol.relative_gap <= 1e-6
    # within 1e-6 above CVXPY's objective, and above CVXPY's certified bound (at beta =
    # 2e-4 the interior point is the more accurate: 1.5e-6 below CVXPY's objective)
    assert ref.lower_bound <= sol.objective <= ref.objective * (1 + 1e-6)


def test_fista_stopped_on_its_residual_with_a_loose_certificate_says_so():
    """The gated program at beta = 2e-4 with targets of size 1e3: FISTA met its residual
    test 11 % above the optimum, certifying a gap of 75 %, and said nothing (and then
    reported 'optimal', converged, with that warning)."""
    prog = _large_targets(GatedReLUProgram, 2e-4)
    with pytest.warns(ConvergenceWarning, match=r"FISTA: met its stopping rule \(prox-gradient residual .*\), but the "
                                                r"duality gap certified at its point is .* may lie up to that far above "
                                                r"the optimum; reported as 'optimal_inaccurate'"):
        sol = FISTA().solve(prog)
    assert not sol.converged and sol.status == "optimal_inaccurate" and sol.relative_gap > LOOSE_GAP
    assert sol.objective > CVXPYSolver().solve(prog).objective * (1 + 1e-2)


def test_auto_falls_back_to_cvxpy_where_the_interior_point_stalls():
    """Separable classes, logistic loss, beta = 1e-4: the interior point stalled 77 % above
    the optimum (with a warning) and ``auto`` returned that. It now solves with CVXPY too
    and keeps the better answer, without the first solve's warning; where the interior
    point converges, nothing changes."""
    rng = np.random.RandomState(2)
    X = rng.randn(60, 2)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    prog = TwoLayerReLUProgram(X, y, 10, loss="logistic", beta=1e-4, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stalled = InteriorPoint().solve(prog)
    assert not stalled.converged and caught
    ref = CVXPYSolver().solve(prog)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = AutoSolver().solve(prog)
    assert sol.info["fallback"].startswith("ipm stalled") and sol.solver == ref.solver
    assert sol.objective == pytest.approx(ref.objective, rel=1e-9) and sol.objective < 0.7 * stalled.objective
    assert sol.lower_bound >= ref.lower_bound and sol.converged
    easy = AutoSolver().solve(prog.with_beta(1e-2))
    assert easy.solver == "ipm" and "fallback" not in easy.info


def test_auto_warns_where_the_interior_point_stalls_and_cvxpy_fails(monkeypatch):
    """Where the interior point stops short and CVXPY, tried next, fails, the answer kept is
    the interior point's, with its warning and one saying that the fallback failed (the
    warning was recorded inside the fallback's own recording and lost: a fit on a raw
    timestamp column returned R^2 = 0 without any)."""
    rng = np.random.RandomState(2)
    X = rng.randn(60, 2)
    prog = TwoLayerReLUProgram(X, np.where(X[:, 0] > 0, 1.0, -1.0), 10, loss="logistic", beta=1e-4, random_state=0)

    def failing(self, program, init=None):
        raise SolverError("CVXPY solver CLARABEL failed")

    monkeypatch.setattr(CVXPYSolver, "solve", failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = AutoSolver().solve(prog)
    said = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert sol.solver == "ipm" and not sol.converged and sol.info["fallback"].startswith("cvxpy failed")
    assert any(m.startswith("InteriorPoint: stopped") for m in said), said
    assert any("CVXPY, tried next, failed (CVXPY solver CLARABEL failed)" in m for m in said), said


def test_auto_does_not_fall_back_after_its_time_limit_and_keeps_the_warnings_of_a_failure(monkeypatch):
    """An interior point stopped by ``max_time`` is returned as it is (CVXPY's set-up
    cannot be interrupted: a fallback had taken the fit from 1.03 s to 1.78 s with
    ``max_time=1``); a failing interior point's warnings reach the caller with its error."""
    rng = np.random.RandomState(2)
    X = rng.randn(60, 2)
    prog = TwoLayerReLUProgram(X, np.where(X[:, 0] > 0, 1.0, -1.0), 10, loss="logistic", beta=1e-4, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_time"):
        sol = AutoSolver(max_time=1e-3).solve(prog)
    assert sol.status == "max_time" and sol.solver == "ipm" and "fallback" not in sol.info

    def failing(self, program, init=None):
        warnings.warn("said before failing", ConvergenceWarning)
        raise SolverError("the Newton matrix is not positive definite")

    monkeypatch.setattr(InteriorPoint, "solve", failing)
    with pytest.warns(ConvergenceWarning, match="said before failing"), pytest.raises(SolverError, match="Newton"):
        AutoSolver().solve(prog)


def test_warnings_of_a_solve_in_the_targets_units_say_so():
    """A solve stopped early in the targets' units warns with its own figures and says
    in which units they are."""
    prog = scaled_program(GatedReLUProgram, 1e-4)
    assert prog.target_unit() == 2.0**-12  # (the targets' root mean square: 1.99e-4)
    with pytest.warns(ConvergenceWarning, match=r"divided by 0\.000244141: the objective values above are the "
                                                r"program's divided by 5\.96046e-08") as caught:
        sol = FISTA(max_iter=2).solve(prog)
    assert caught[0].filename == __file__  # (said at the caller's line)
    assert not sol.converged and sol.info["target_scale"] == 2.0**-12


@pytest.mark.parametrize("loss", LOSSES)
def test_fista_certificate_is_tight_for_the_gated_program(loss):
    sol = solved("fista", GatedReLUProgram, loss)
    assert sol.relative_gap <= 1e-4



# ----------------------------------------------------------------------------- outputs apart
def _one_hot_program(cls):
    """The small program of ``cls`` with the squared loss on one-hot targets of three
    classes (the classifiers' default): three outputs, one independent program each."""
    X, y = planted_regression(n=24, d=2, seed=0)
    Y = np.eye(3)[targets_for("softmax", y)]
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    return cls(X, Y, 6, beta=0.1, random_state=0, **extra), X, Y


@pytest.mark.parametrize("name, cls", [(name, cls) for cls in PROGRAMS for name in ("ipm", "admm", "auglag", "fista")
                                       if name != "fista" or cls is GatedReLUProgram])
def test_outputs_apart_agree_with_cvxpy_and_recovery(name, cls):
    """Squared loss, three outputs: every solver solves one program per output
    (``info["output_parts"]``), and together they reach the CVXPY optimum of the whole;
    weights, multipliers, violation, certificate (the sum of the parts' bounds) and the
    recovered network are the whole program's."""
    prog, X, Y = _one_hot_program(cls)
    if ("one-hot", cls) not in _REFERENCES:
        _REFERENCES["one-hot", cls] = CVXPYSolver().solve(prog)
    ref = _REFERENCES["one-hot", cls]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = make_solver(name).solve(prog)
    parts = sol.info["output_parts"]
    assert [part["output"] for part in parts] == [0, 1, 2]
    assert sum(part["groups"] for part in parts) + sol.info["dead_groups"] == prog.operator.n_groups
    assert sol.iterations == sum(part["iterations"] for part in parts)
    assert len(sol.history) >= 1
    assert sol.converged and _relative(sol.objective, ref.objective) <= 1e-5
    assert sol.objective == pytest.approx(prog.objective(sol.weights), rel=1e-12)
    assert sol.objective == pytest.approx(sum(part["objective"] for part in parts), rel=1e-9)
    assert [m.shape for m in sol.multipliers] == list(prog.operator.constraint_shapes)
    scale = constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert sol.constraint_violation <= 1e-9 * scale
    assert sol.lower_bound == pytest.approx(sum(part["lower_bound"] for part in parts), rel=1e-12)
    assert sol.lower_bound <= ref.objective * (1 + 1e-7) + 1e-9 and sol.relative_gap <= 2e-3
    net = prog.recover(sol.weights)
    assert net.objective(X, Y, "squared", prog.beta) == pytest.approx(sol.objective, rel=1e-6)
    pred = prog.predict(sol.weights)
    np.testing.assert_allclose(net.predict(X), pred, rtol=1e-6, atol=1e-7 * np.abs(pred).max())


def test_restrict_to_one_output_is_that_column_of_the_program():
    """``restrict(groups, output)``: one output column, targets ``Y[:, [output]]``; the
    objectives of the three outputs' programs add up to the whole one (squared loss);
    groups feeding another output are refused."""
    prog, _, _ = _one_hot_program(ThreeLayerReLUProgram)
    op = prog.operator
    Q = np.random.default_rng(0).standard_normal(prog.shape)
    total = 0.0
    for o in range(3):
        groups = np.flatnonzero(op.output_np == o)
        part, blocks = prog.restrict(groups, o)
        assert part.operator.n_outputs == 1 and part.Y_np.shape == (24, 1)
        np.testing.assert_array_equal(part.Y_np[:, 0], prog.Y_np[:, o])
        np.testing.assert_allclose(part.predict(Q[:, blocks])[:, 0], prog.predict(Q * np.isin(
            np.arange(op.n_blocks), blocks))[:, o], rtol=1e-12, atol=1e-12)
        total += part.objective(Q[:, blocks])
    assert total == pytest.approx(prog.objective(Q), rel=1e-12)
    with pytest.raises(ValueError, match="output: expected the output column of every group"):
        prog.restrict(np.flatnonzero(op.output_np != 1), 1)


def test_outputs_apart_count_the_outputs_without_groups_in_the_bound():
    """An operator with no group for output 1 (of 3): the parts are outputs 0 and 2, and
    the whole program's objective and lower bound add output 1's constant loss at zero,
    so the interior point's certified bound still holds against CVXPY."""
    from convexrelu.losses import SquaredLoss
    from convexrelu.operators import BlockOperator
    from convexrelu.programs import ConvexProgram
    from convexrelu.solvers._presolve import program_parts

    r = np.random.default_rng(3)
    n, d = 20, 3
    X = np.column_stack([r.standard_normal((n, d - 1)), np.ones(n)])
    U = r.standard_normal((d, 4))
    first = X @ U >= 0
    op = BlockOperator(X, np.concatenate([first, first], 1), np.ones(8), np.arange(8), None, np.ones(8),
                       np.array([0, 0, 0, 0, 2, 2, 2, 2]), 3, cone_first=True, cone_second=False)
    Y = r.standard_normal((n, 3))
    prog = ConvexProgram(op, SquaredLoss(), Y, 0.5)
    assert [o for _, o in program_parts(prog)] == [0, 2]
    sol = InteriorPoint().solve(prog)
    ref = CVXPYSolver().solve(prog)
    assert _relative(sol.objective, ref.objective) <= 1e-6
    constant = 0.5 * float(np.sum(Y[:, 1] ** 2))
    parts = sol.info["output_parts"]
    assert sol.lower_bound == pytest.approx(constant + sum(part["lower_bound"] for part in parts), rel=1e-12)
    assert sol.lower_bound <= ref.objective * (1 + 1e-9) and sol.relative_gap <= 1e-6


def test_outputs_apart_report_the_whole_program():
    """The assembled ``info``: bounds and counts summed over the parts (the interior
    point's ``dual_bound`` is the lower bound), residuals the largest, the system kept
    when every part used the same; each part's own ``info`` under ``output_parts``, and a
    warm start from the assembled solution gives every part its own (ADMM's penalty)."""
    prog, _, _ = _one_hot_program(ThreeLayerReLUProgram)
    sol = InteriorPoint().solve(prog)
    parts = sol.info["output_parts"]
    assert sol.info["dual_bound"] == pytest.approx(sum(p["info"]["dual_bound"] for p in parts), rel=1e-12)
    assert sol.info["dual_bound"] == pytest.approx(sol.lower_bound, rel=1e-12)
    assert sol.info["zeroed_blocks"] == sum(p["info"]["zeroed_blocks"] for p in parts)
    assert sol.info["primal_residual"] == max(p["info"]["primal_residual"] for p in parts)
    assert sol.info["system"] == parts[0]["info"]["system"]
    from convexrelu.solvers._presolve import _restrict_init

    admm = ADMM().solve(prog)
    for o, part in enumerate(admm.info["output_parts"]):
        groups = np.flatnonzero(prog.operator.output_np == o)
        _, blocks = prog.restrict(groups, o)
        init = _restrict_init(prog, admm, groups, blocks, output=o)
        assert init.info == part["info"] and "rho" in init.info
        np.testing.assert_array_equal(init.weights, admm.weights[:, blocks])


def test_outputs_apart_say_which_output_a_warning_or_an_error_is_about():
    """A part's warning or error names its output (the caller's line for warnings)."""
    prog, _, _ = _one_hot_program(TwoLayerReLUProgram)
    with pytest.warns(ConvergenceWarning) as record:
        InteriorPoint(max_iter=2).solve(prog)
    messages = sorted(str(w.message) for w in record if w.category is ConvergenceWarning)
    assert [m[:38] for m in messages] == [f"output {o} of 3 (solved apart): Interior" for o in range(3)]
    assert all(w.filename == __file__ for w in record)
    with pytest.raises(ValueError, match=r"^output 0 of 3 \(solved apart\): FISTA: the program has cone constraints"):
        FISTA().solve(prog)


def test_outputs_apart_share_the_time_limit():
    """With ``max_time`` each part gets the time left divided among the parts still to
    solve (a copy of the solver: the caller's keeps its limit); without, the solver
    itself. ``max_iter`` holds per part."""
    from convexrelu.solvers._presolve import on_live_groups

    seen = []

    class Recorder(Solver):
        name = "recorder"

        def __init__(self, max_time=None):
            self.max_time = max_time

        @on_live_groups
        def solve(self, program, init=None):
            seen.append((self, self.max_time, program.operator.n_outputs))
            Q = np.zeros(program.shape)
            return Solution(weights=Q, objective=program.objective(Q), converged=True, status="optimal",
                            iterations=2, history=(2.0, 1.0))

    prog, _, _ = _one_hot_program(TwoLayerReLUProgram)
    solver = Recorder(max_time=30.0)
    sol = solver.solve(prog)
    assert [c for _, _, c in seen] == [1, 1, 1] and all(s is not solver for s, _, _ in seen)
    shares = [t for _, t, _ in seen]
    assert shares[0] == pytest.approx(10.0, rel=1e-2) and shares[1] == pytest.approx(15.0, rel=1e-2)
    assert shares[2] == pytest.approx(30.0, rel=1e-2) and solver.max_time == 30.0
    assert sol.iterations == 6 and sol.history == (6.0, 3.0)
    seen.clear()
    Recorder().solve(prog)
    assert [t for _, t, _ in seen] == [None] * 3
    # one output with dead groups: the solve on the live ones gets what the restriction left
    three = program(ThreeLayerReLUProgram, "squared")
    assert not three.operator.live_groups().all()
    seen.clear()
    solver = Recorder(max_time=30.0)
    solver.solve(three)
    assert len(seen) == 1 and seen[0][0] is not solver and solver.max_time == 30.0
    assert 29.0 < seen[0][1] < 30.0


def test_out_of_time_closed_form(monkeypatch):
    """One more iteration of ``t`` seconds plus ``reserve`` times ``t`` against the time
    left, with the clock fixed."""
    from convexrelu.solvers import fista

    monkeypatch.setattr(fista.time, "perf_counter", lambda: 100.0)
    assert not fista._out_of_time(110.0, 1.0)  # 101 <= 110
    assert not fista._out_of_time(110.0, 1.0, reserve=8.5)  # 109.5
    assert fista._out_of_time(110.0, 1.0, reserve=9.5)  # 110.5
    assert fista._out_of_time(100.5, 1.0)


@pytest.mark.parametrize("name", ["fista", "auglag"])
def test_max_time_stops_the_first_order_solvers_in_time(name):
    """A limit far below one iteration: status max_time after one iteration (FISTA) or
    one outer iteration (the augmented Lagrangian), a warning, and the call returns in
    well under a second on these small programs."""
    cls = GatedReLUProgram if name == "fista" else TwoLayerReLUProgram
    prog = program(cls, "squared")
    solver = FISTA(max_time=1e-6) if name == "fista" else AugmentedLagrangian(max_time=1e-6)
    with pytest.warns(ConvergenceWarning, match="max_time"):
        sol = solver.solve(prog)
    assert sol.status == "max_time" and not sol.converged and sol.time < 1.0
    if name == "fista":
        assert sol.iterations == 1
    # and max_iter reached within the limit says max_iter, not max_time
    solver = FISTA(max_iter=3, max_time=60.0) if name == "fista" else AugmentedLagrangian(max_iter=1, max_time=60.0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        assert solver.solve(prog).status == "max_iter"

def _slab_program(loss):
    """A three-layer program whose patterns all have two pairs: the operator's slab layout
    (that of the benchmark and larger programs; the small programs above, whose patterns
    have one or two pairs, take the operator's general path)."""
    X, y = planted_regression(n=24, d=3, seed=0)
    prog = ThreeLayerReLUProgram(X, targets_for(loss, y), 6, loss=loss, beta=0.1, random_state=0, hidden=2)
    assert prog.operator.group_layout == "slab"
    return prog, X, targets_for(loss, y)


@pytest.mark.parametrize("name", ["auglag", "admm", "ipm"])
@pytest.mark.parametrize("loss", ["squared", "softmax"])
def test_agreement_with_cvxpy_and_recovery_on_the_slab_layout(name, loss):
    prog, X, yy = _slab_program(loss)
    if ("slab", loss) not in _REFERENCES:  # (the cache of :func:`reference`)
        _REFERENCES["slab", loss] = CVXPYSolver().solve(prog)
    ref = _REFERENCES["slab", loss]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = make_solver(name).solve(prog)
    assert sol.converged and _relative(sol.objective, ref.objective) <= 1e-5
    scale = constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert sol.constraint_violation <= 1e-9 * scale
    assert sol.lower_bound <= ref.objective * (1 + 1e-7) + 1e-9 and sol.relative_gap <= 2e-3
    net = prog.recover(sol.weights)
    assert net.objective(X, yy, loss, prog.beta) == pytest.approx(sol.objective, rel=1e-6)
    pred = prog.predict(sol.weights)
    np.testing.assert_allclose(net.predict(X), pred, rtol=1e-6, atol=1e-7 * np.abs(pred).max())


def test_gradient_of_the_augmented_lagrangian_on_the_slab_layout():
    prog, _, _ = _slab_program("squared")
    op = prog.operator
    lam = tuple(torch.clamp(_random(s, 6 + i), min=0) for i, s in enumerate(op.constraint_shapes))
    part = ALPart(prog, lam, rho=0.7)
    Q0, D, h = 0.3 * _random(op.shape, 4), _random(op.shape, 5), 1e-6
    g = part.grad(part.state(Q0))
    fd = (part.value(part.state(Q0 + h * D)) - part.value(part.state(Q0 - h * D))) / (2 * h)
    assert fd == pytest.approx(float(torch.sum(g * D)), rel=1e-6, abs=1e-7)


# ----------------------------------------------------------------------------- warm starts
@pytest.mark.parametrize("name", ["fista", "auglag", "admm", "ipm"])
@pytest.mark.parametrize("cls", PROGRAMS)
def test_warm_start_from_the_solution_converges_in_few_iterations(name, cls):
    prog = program(cls, "squared")
    if name == "fista" and prog.has_constraints:
        pytest.skip("FISTA solves unconstrained programs")
    cold = solved(name, cls, "squared")
    solver = make_solver(name)
    warm = solver.solve(prog, init=cold)
    assert warm.converged
    assert warm.iterations <= max(30, cold.iterations // 5)
    # as close to the optimum as the cold solve (its tolerance bounds residuals, not this)
    ref = reference(cls, "squared").objective
    assert _relative(warm.objective, ref) <= max(_relative(cold.objective, ref), 1e-6)
    # an array init works too (weights only)
    again = solver.solve(prog, init=cold.weights)
    assert _relative(again.objective, reference(cls, "squared").objective) <= 1e-5


def test_warm_start_along_decreasing_beta():
    prog = program(TwoLayerReLUProgram, "squared")
    sol = solved("auglag", TwoLayerReLUProgram, "squared")
    smaller = prog.with_beta(0.5 * prog.beta)
    warm = AugmentedLagrangian().solve(smaller, init=sol)
    ref = CVXPYSolver().solve(smaller)
    assert _relative(warm.objective, ref.objective) <= 1e-5


# ----------------------------------------------------------------------------- warnings, errors
def test_a_converged_cone_solve_with_a_loose_certificate_says_so():
    """Float32 at beta = 1e-3: the augmented Lagrangian met its stopping rule 1.8e-3 above
    CVXPY's optimum, certifying a gap of 40 %, and said nothing. It now warns that its
    objective may lie that far above the optimum, and reports 'optimal_inaccurate', not
    converged, as CVXPY's 'optimal' with such a gap is (a review found code that checks the
    status taking 6.5 times the optimum for 'optimal')."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    prog = TwoLayerReLUProgram(X, X[:, 0] ** 2, 5, beta=1e-3, random_state=0, dtype=torch.float32)
    with pytest.warns(ConvergenceWarning, match=r"AugmentedLagrangian: met its stopping rule \(.*\), but the duality "
                                                r"gap certified at its point is .* \(relative [0-9.]+e-01\): the "
                                                r"objective .* may lie"):
        sol = AugmentedLagrangian().solve(prog)
    assert not sol.converged and sol.status == "optimal_inaccurate" and sol.relative_gap > LOOSE_GAP
    ref = CVXPYSolver().solve(prog.to(dtype=torch.float64))
    assert sol.objective > ref.objective * (1 + 1e-3)


def test_an_infeasible_stopping_point_claims_no_gap():
    """A constrained solve that stops at a point violating the cones (here a random Q)
    reports no certificate (its objective may lie below the optimum): lower_bound -inf,
    gap inf; the dual bound of its multipliers, still a valid bound, is in info."""
    import time

    from convexrelu.solvers.auglag import constrained_solution

    prog = program(ThreeLayerReLUProgram, "squared")
    Q = _random(prog.shape, 11)
    assert constraint_scale(prog.operator.constraints(Q)) > 0 and prog.violation(Q.numpy()) > 0
    lam = tuple(torch.zeros(s, dtype=torch.float64) for s in prog.operator.constraint_shapes)
    with pytest.warns(ConvergenceWarning, match="no duality gap .the point is not feasible"):
        sol = constrained_solution(prog, Q, lam, solver="auglag", label="AugmentedLagrangian", knob="feas_tol",
                                   converged=False, stop="max_iter=1", residuals="", iterations=1,
                                   start=time.perf_counter(), history=[], info={})
    assert sol.lower_bound == -math.inf and sol.gap == math.inf
    assert sol.info["dual_bound"] <= reference(ThreeLayerReLUProgram, "squared").objective + 1e-9
    # a feasible point keeps its gap
    ref = reference(ThreeLayerReLUProgram, "squared")
    with pytest.warns(ConvergenceWarning, match="duality gap"):
        ok = constrained_solution(prog, torch.tensor(ref.weights), tuple(torch.tensor(m) for m in ref.multipliers),
                                  solver="auglag", label="AugmentedLagrangian", knob="feas_tol", converged=False,
                                  stop="max_iter=1", residuals="", iterations=1, start=time.perf_counter(),
                                  history=[], info={})
    assert ok.lower_bound <= ok.objective and ok.relative_gap <= 1e-5


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
@pytest.mark.parametrize("solver", [AugmentedLagrangian(max_iter=1, inner_max_iter=300), ADMM(max_iter=100)],
                         ids=["auglag", "admm"])
def test_an_early_stop_certifies_the_bound_of_its_last_iterate(cls, solver):
    """The dual point of the last iterate and its multipliers bounds the optimum, feasible
    or not; the repair then moves the returned point, where the same multipliers give a
    far looser bound. The solve reports the better one (here, measured: 0.381 against
    0.299 for the two-layer program stopped after one outer iteration, optimum 0.4475;
    0.930 against 0.472 for the three-layer one, optimum 1.0142)."""
    from convexrelu.duality import dual_lower_bound

    prog = program(cls, "squared")
    with pytest.warns(ConvergenceWarning):
        sol = solver.solve(prog)
    opt = reference(cls, "squared").objective
    at_returned = dual_lower_bound(prog, sol.weights, sol.multipliers)[0]
    bound = sol.info["dual_bound"]
    assert bound <= opt + 1e-9
    assert bound >= at_returned + 0.25 * (opt - at_returned)
    if math.isfinite(sol.lower_bound):
        assert sol.lower_bound == min(bound, sol.objective)


def test_fista_max_iter_warns_with_its_residual():
    prog = program(GatedReLUProgram, "squared")
    with pytest.warns(ConvergenceWarning, match="max_iter=3.*residual"):
        sol = FISTA(max_iter=3).solve(prog)
    assert not sol.converged and sol.status == "max_iter" and sol.iterations == 3


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_auglag_max_iter_warns_with_its_residuals(cls):
    with pytest.warns(ConvergenceWarning, match="max_iter=1 .*stationarity.*violation"):
        sol = AugmentedLagrangian(max_iter=1, inner_max_iter=5).solve(program(cls, "squared"))
    assert not sol.converged and sol.status == "max_iter"
    # even then the returned point satisfies the cone constraints (repair)
    assert "repair" in sol.info


def test_divergence_raises_solver_error():
    prog = program(GatedReLUProgram, "squared")
    with pytest.raises(SolverError, match="diverged"):
        FISTA(step_init=1e3, backtrack=False, max_iter=1000).solve(prog)


def test_non_finite_values_raise_solver_error():
    """A start whose objective overflows (finite weights of 1e200; NaN weights are refused
    as ``init`` before: test_a_non_finite_warm_start...) ends in a SolverError that says so."""
    prog = program(GatedReLUProgram, "squared")
    with pytest.raises(SolverError, match="objective is not finite at the starting point"):
        FISTA().solve(prog, init=np.full(prog.shape, 1e200))
    relu = program(TwoLayerReLUProgram, "squared")
    with pytest.raises(SolverError, match="objective is not finite at the starting point"):
        AugmentedLagrangian().solve(relu, init=np.full(relu.shape, 1e200))
    with pytest.raises(SolverError, match="non-finite"):
        ADMM().solve(relu, init=np.full(relu.shape, 1e200))
    with pytest.raises(SolverError, match="not finite"):
        InteriorPoint().solve(relu, init=np.full(relu.shape, 1e200))


@pytest.mark.parametrize("cls", PROGRAMS)
def test_admm_max_iter_warns_with_its_residuals(cls):
    with pytest.warns(ConvergenceWarning, match=r"ADMM: stopped at max_iter=3 .*primal residual .*dual residual"):
        sol = ADMM(max_iter=3).solve(program(cls, "squared"))
    assert not sol.converged and sol.status == "max_iter" and sol.iterations == 3
    assert sol.lower_bound <= sol.objective


def test_admm_hyperparameters_are_checked():
    for kw, name in ((dict(tol=0), "tol"), (dict(alpha=2.0), "alpha"), (dict(max_iter=0), "max_iter"),
                     (dict(rho_init=-1.0), "rho_init"), (dict(mu=1.0), "mu"), (dict(rho_model=0.0), "rho_model")):
        with pytest.raises(ValueError, match=name):
            ADMM(**kw)


BAD_SETTINGS = [  # (solver class, settings, the argument its error must name)
    (cls, kw, name)
    for cls in (FISTA, AugmentedLagrangian, ADMM, InteriorPoint)
    for kw, name in [(dict(tol=math.inf), "tol"), (dict(tol=math.nan), "tol"), (dict(tol=1e10), "tol"),
                     (dict(tol="1e-6"), "tol"), (dict(max_iter=math.nan), "max_iter"),
                     (dict(max_iter=math.inf), "max_iter"), (dict(max_iter=2.7), "max_iter"),
                     (dict(max_iter="10"), "max_iter"), (dict(max_iter=True), "max_iter")]
] + [
    (FISTA, dict(step_init=-1.0), "step_init"), (FISTA, dict(step_init=0.0), "step_init"),
    (FISTA, dict(backtrack_factor=math.nan), "backtrack_factor"), (FISTA, dict(step_increase=0.5), "step_increase"),
    (AugmentedLagrangian, dict(step_init=-1.0), "step_init"), (AugmentedLagrangian, dict(feas_tol=-1.0), "feas_tol"),
    (AugmentedLagrangian, dict(feas_tol=math.nan), "feas_tol"), (AugmentedLagrangian, dict(repair_tol=math.nan), "repair_tol"),
    (AugmentedLagrangian, dict(rho_decrease=-3.0), "rho_decrease"),
    (AugmentedLagrangian, dict(rho_max_ratio=-1.0), "rho_max_ratio"),
    (AugmentedLagrangian, dict(inner_tol_decrease=0.0), "inner_tol_decrease"),
    (AugmentedLagrangian, dict(backtrack_factor=math.nan), "backtrack_factor"),
    (AugmentedLagrangian, dict(step_increase=math.nan), "step_increase"),
    (AugmentedLagrangian, dict(inner_max_iter=0), "inner_max_iter"),
    (ADMM, dict(repair_tol=math.nan), "repair_tol"), (ADMM, dict(max_penalty_updates=-1), "max_penalty_updates"),
    (ADMM, dict(tau=math.inf), "tau"), (ADMM, dict(weight_constraints=-2.0), "weight_constraints"),
    (InteriorPoint, dict(row_fraction=math.nan), "row_fraction"), (InteriorPoint, dict(correctors=1.5), "correctors"),
    (AutoSolver, dict(tol=-1.0), "tol"), (AutoSolver, dict(max_iter=0), "max_iter"),
    (AutoSolver, dict(cvxpy_max_size=-1), "cvxpy_max_size"), (AutoSolver, dict(step_init=-1.0), "step_init"),
]


@pytest.mark.parametrize("cls, kw, name", BAD_SETTINGS,
                         ids=[f"{c.__name__}-{next(iter(k))}={next(iter(k.values()))!r}" for c, k, _ in BAD_SETTINGS])
def test_bad_settings_are_refused_at_construction_naming_them(cls, kw, name):
    """A NaN, infinite, non-numeric, fractional-count or out-of-range setting is refused
    when the solver is built, the message naming it and what came (a negative
    ``step_init`` used to give a wrong answer with status "optimal")."""
    with pytest.raises(ValueError, match=rf"{name}: expected .*, got {re.escape(repr(next(iter(kw.values()))))}"):
        cls(**kw)


def test_integral_float_counts_are_taken():
    assert FISTA(max_iter=1e4).max_iter == 10000 and InteriorPoint(max_iter=50.0).max_iter == 50
    assert CVXPYSolver(max_iter=1e4).max_iter == 10000 and AutoSolver(max_iter=1e4).hyperparameters["max_iter"] == 1e4
    assert AugmentedLagrangian(step_init=None).step_init is None and FISTA(step_init=2).step_init == 2.0


@pytest.mark.parametrize("name", ["fista", "auglag", "admm", "ipm", "auto"])
def test_a_warm_start_of_another_shape_is_refused_naming_init(name):
    prog = program(GatedReLUProgram if name == "fista" else TwoLayerReLUProgram, "squared")
    for init in (np.zeros((2, 2)), torch.zeros(prog.shape[0], prog.shape[1] + 1), "weights"):
        with pytest.raises(ValueError, match=rf"init: expected weights of the program's shape \({prog.shape[0]}, "):
            make_solver(name).solve(prog, init=init)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_a_non_finite_warm_start_a_non_program_and_the_meta_device_are_refused_by_name(name):
    """A NaN or infinite ``init`` is a ValueError naming it (it had been a SolverError, a
    RuntimeError, and CVXPY had taken one silently); anything but a program is a TypeError
    naming ``program`` (it had been an AttributeError from deep inside)."""
    prog = program(GatedReLUProgram if name == "fista" else TwoLayerReLUProgram, "squared")
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="init: expected finite weights, got NaN or infinite entries"):
            make_solver(name).solve(prog, init=np.full(prog.shape, bad))
    for other in (prog.X_design, None):
        with pytest.raises(TypeError, match=r"program: expected a ConvexProgram \(TwoLayerReLUProgram, .*got "):
            make_solver(name).solve(other)
    with pytest.raises(ValueError, match="program: on the 'meta' device, which holds no data"):
        make_solver(name).solve(prog.to(device="meta"))


def test_admm_warm_start_from_a_far_array_converges():
    """From a random array (far outside the cones) residual balancing used to halve the
    group penalty during the transient until its updates ran out, and end at max_iter
    with a relative error of 10; the penalty is now held at first and kept within a range
    of its start."""
    r = np.random.default_rng(0)
    X = r.standard_normal((60, 2))
    prog = ThreeLayerReLUProgram(X, np.sin(X[:, 0]), 8, beta=0.1, random_state=0)
    best = CVXPYSolver().solve(prog).objective
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = ADMM().solve(prog, init=np.random.default_rng(2).standard_normal(prog.shape))
    assert sol.converged and abs(sol.objective - best) <= 1e-4 * best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold = ADMM().solve(prog)
    assert sol.info["rho"] >= cold.info["rho"] / 10  # not collapsed (it fell to 1e-6 of it)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_cvxpy_stopped_early_returns_a_feasible_point_and_says_how_far(cls):
    """A CVXPY solve stopped by max_iter used to return its iterate outside the cones
    (relative violation 0.25), whose objective is not its network's; it is repaired as
    the other solvers' points are, and the warning gives its gap and violation."""
    prog = program(cls, "squared")
    with pytest.warns(ConvergenceWarning, match=r"user_limit.*; objective .*duality gap .*relative cone violation"):
        sol = CVXPYSolver(max_iter=2).solve(prog)
    assert sol.status == "user_limit" and not sol.converged
    assert relative_violation(prog.operator, torch.tensor(sol.weights)) <= 1e-6
    assert sol.info["violation_before_repair"] > 1e-3  # (there was something to repair)
    # the network is the point's: it reproduces the objective and the predictions
    net = prog.recover(sol.weights)
    X, y = planted_regression(n=24, d=2, seed=0)
    assert net.objective(X, y, "squared", prog.beta) == pytest.approx(sol.objective, rel=1e-6)
    pred = prog.predict(sol.weights)
    np.testing.assert_allclose(net.predict(X), pred, rtol=1e-6, atol=1e-7 * np.abs(pred).max())
    assert -math.inf < sol.lower_bound <= reference(cls, "squared").objective + 1e-9


def test_bad_init_shape_and_hyperparameters():
    prog = program(GatedReLUProgram, "squared")
    with pytest.raises(ValueError, match="shape"):
        FISTA().solve(prog, init=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="restart"):
        FISTA(restart="sometimes")
    with pytest.raises(ValueError, match="tol"):
        AugmentedLagrangian(tol=0)
    with pytest.raises(TypeError, match="unknown"):
        AutoSolver(not_a_setting=1)


@pytest.mark.parametrize("cls", PROGRAMS)
def test_ipm_max_iter_warns_with_its_residuals(cls):
    with pytest.warns(ConvergenceWarning, match=r"InteriorPoint: stopped at max_iter=3 .*complementarity .*primal "
                                                r"residual .*dual residual"):
        sol = InteriorPoint(max_iter=3).solve(program(cls, "squared"))
    assert not sol.converged and sol.status == "max_iter" and sol.iterations == 3
    assert sol.lower_bound <= sol.objective
    assert sol.constraint_violation <= 1e-9 * max(1.0, constraint_scale(
        program(cls, "squared").operator.constraints(torch.tensor(sol.weights))))


def test_ipm_certificate_and_feasibility():
    """The interior-point solution is feasible to rounding and its certified gap meets
    the tolerance: the bound of its multipliers is within tol of the objective."""
    for cls in PROGRAMS:
        sol = solved("ipm", cls, "squared")
        assert sol.relative_gap <= 1e-6
        assert sol.info["certified_gap"] <= 1e-7 or sol.info["dual_residual"] <= 1e-7


def test_ipm_needs_beta_and_checks_its_hyperparameters():
    with pytest.raises(ValueError, match="beta > 0"):
        InteriorPoint().solve(program(TwoLayerReLUProgram, "squared").with_beta(0.0))
    for kw, name in ((dict(tol=0), "tol"), (dict(max_iter=0), "max_iter"), (dict(step_fraction=1.0), "step_fraction"),
                     (dict(correctors=-1), "correctors"), (dict(max_stall=0), "max_stall"),
                     (dict(max_time=0), "max_time")):
        with pytest.raises(ValueError, match=name):
            InteriorPoint(**kw)


def test_ipm_float32_program_is_solved_in_float64():
    prog = program(ThreeLayerReLUProgram, "squared")
    sol = InteriorPoint().solve(prog.to(dtype=torch.float32))
    assert sol.converged and _relative(sol.objective, reference(ThreeLayerReLUProgram, "squared").objective) <= 1e-5


def _spread_blocks(r, G, p):
    """``G`` random symmetric positive definite ``p x p`` blocks with eigenvalues spread
    over 14 orders of magnitude (as near an interior-point optimum)."""
    blocks = []
    for _ in range(G):
        Qm = np.linalg.qr(r.standard_normal((p, p)))[0]
        blocks.append(Qm @ np.diag(10.0 ** r.uniform(-6, 8, p)) @ Qm.T)
    return torch.tensor(np.stack(blocks))


@pytest.mark.parametrize("woodbury", [True, False])
def test_ipm_newton_system_against_a_dense_solve(woodbury):
    """``(H + U U^T) x = r`` by the preconditioned solver, H block diagonal with blocks
    of very different scales (as near an optimum), against a dense solve."""
    from convexrelu.solvers.ipm import _NewtonSystem

    r = np.random.default_rng(0)
    G, p = 6, 4
    k = 5 if woodbury else 40
    H = _spread_blocks(r, G, p)
    U = torch.tensor(r.standard_normal((G, p, k)))
    rhs = torch.tensor(r.standard_normal((G, p)))
    system = _NewtonSystem(H, U)
    assert system.woodbury is woodbury
    M = torch.block_diag(*H) + U.reshape(G * p, k) @ U.reshape(G * p, k).T
    expected = torch.linalg.solve(M, rhs.reshape(-1)).reshape(G, p)
    got = system.solve(rhs)
    # backward stable: the residual is at rounding level of ||M|| ||x||
    scale = float(torch.linalg.matrix_norm(M, ord=2)) * float(torch.linalg.vector_norm(got))
    assert float(torch.linalg.vector_norm(system.apply(got) - rhs)) <= 1e-13 * scale
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-9 * float(expected.abs().max()))


@pytest.mark.parametrize("k,parts", [(7, 4), (3, 4), (12, 1), (10, 3)])
def test_ipm_gram_lower_is_the_lower_triangle_of_the_product(k, parts):
    """The Woodbury matrix's product by block columns: V^T V on and below the diagonal
    (whatever k and the number of parts), hence the same Cholesky factor."""
    from convexrelu.solvers.ipm import _gram_lower

    V = _random((9, k), 4)
    out = _gram_lower(V, parts)
    full = V.T @ V
    torch.testing.assert_close(out.tril(), full.tril(), rtol=1e-14, atol=1e-13)
    eye = torch.eye(k, dtype=V.dtype)
    torch.testing.assert_close(torch.linalg.cholesky(out + eye), torch.linalg.cholesky(full + eye))


@pytest.mark.parametrize("woodbury", [True, False])
def test_ipm_newton_system_with_shared_signed_parts_and_leading_zero_rows(woodbury):
    """Blocks sharing their part of ``U`` up to sign (classes), ``U`` zero on the first
    row of every block: the preconditioned solve and ``M x`` against the dense matrix."""
    from convexrelu.solvers.ipm import _NewtonSystem

    r = np.random.default_rng(1)
    G, p, lead, K = 6, 5, 1, 3
    k = 4 if woodbury else 40
    H = _spread_blocks(r, G, p)
    U = torch.tensor(r.standard_normal((K, p - lead, k)))
    classes = torch.tensor([0, 1, 0, 2, 1, 0])
    sign = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    system = _NewtonSystem(H, U, classes, sign)
    assert system.woodbury is woodbury
    Ug = torch.zeros((G, p, k), dtype=torch.float64)
    Ug[:, lead:] = U[classes] * sign[:, None, None]
    M = torch.block_diag(*H) + Ug.reshape(G * p, k) @ Ug.reshape(G * p, k).T
    rhs = torch.tensor(r.standard_normal((G, p)))
    assert torch.allclose(system.apply(rhs).reshape(-1), M @ rhs.reshape(-1), rtol=1e-12, atol=1e-12 * float(M.abs().max()))
    got = system.solve(rhs)
    scale = float(torch.linalg.matrix_norm(M, ord=2)) * float(torch.linalg.vector_norm(got))
    assert float(torch.linalg.vector_norm(system.apply(got) - rhs)) <= 1e-13 * scale
    # forward error within what the conditioning allows a backward-stable solve
    expected = torch.linalg.solve(M, rhs.reshape(-1)).reshape(G, p)
    bound = 1e-14 * float(torch.linalg.cond(M)) * float(torch.linalg.vector_norm(expected))
    assert float(torch.linalg.vector_norm(got - expected)) <= bound


def test_ipm_lowrank_gram_is_u_u_transpose_over_the_blocks():
    """The dense path's ``U U^T`` from the classes' parts equals the product of the
    blocks' parts, signs and zero leading rows included; a system given it (as the
    interior point passes it on while ``U`` is constant) solves as one computing it."""
    from convexrelu.solvers.ipm import _lowrank_gram, _NewtonSystem

    r = np.random.default_rng(2)
    G, p, lead, K, k = 5, 4, 2, 3, 30
    U = torch.tensor(r.standard_normal((K, p - lead, k)))
    classes = torch.tensor([2, 0, 1, 0, 2])
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    Ug = torch.zeros((G, p, k), dtype=torch.float64)
    Ug[:, lead:] = U[classes] * sign[:, None, None]
    expected = Ug.reshape(G * p, k) @ Ug.reshape(G * p, k).T
    torch.testing.assert_close(_lowrank_gram(U, classes, sign, G, p), expected, rtol=1e-13, atol=1e-12)
    H = _spread_blocks(r, G, p)
    first = _NewtonSystem(H, U, classes, sign)
    assert not first.woodbury
    H2 = _spread_blocks(r, G, p)  # the next iteration: new blocks, the same U
    again = _NewtonSystem(H2, U, classes, sign, gram=first.gram)
    assert again.gram is first.gram
    rhs = torch.tensor(r.standard_normal((G, p)))
    torch.testing.assert_close(again.solve(rhs), _NewtonSystem(H2, U, classes, sign).solve(rhs), rtol=1e-9, atol=0.0)



def _mixed_problem(seed, woodbury):
    """A Newton system whose low-rank factor is a base part per class mixed by a loss
    Hessian factor ``F`` (n, C, r), and the same factor formed explicitly: column
    ``a n + i`` of class ``c`` is ``U_c[:, i] F[i, out[c], a]``."""
    r = np.random.default_rng(seed)
    G, p, lead, K, C, rank = 6, 4, 1, 4, 3, 2
    n = 2 if woodbury else 13  # k = n r columns: 4 <= G p = 24 (Woodbury), or 26 (dense)
    U = torch.tensor(r.standard_normal((K, p - lead, n)))
    F = torch.tensor(r.standard_normal((n, C, rank)))
    out = torch.tensor([2, 0, 2, 1])
    classes = torch.tensor([0, 1, 3, 0, 2, 3])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, 1.0], dtype=torch.float64)
    full = torch.einsum("kqi,ika->kqai", U, F[:, out, :]).reshape(K, p - lead, rank * n)
    return _spread_blocks(r, G, p), U, (F, out), full, classes, sign


@pytest.mark.parametrize("woodbury", [True, False])
def test_ipm_newton_system_with_a_mixed_factor_solves_as_the_formed_one(woodbury):
    """The mixed factor (base part per class, the loss Hessian factor per output) gives
    the same ``M x``, Woodbury matrix or dense ``U U^T``, and solution as the factor
    formed explicitly."""
    from convexrelu.solvers.ipm import _NewtonSystem

    H, U, mix, full, classes, sign = _mixed_problem(4, woodbury)
    mixed = _NewtonSystem(H, U, classes, sign, mix=mix)
    formed = _NewtonSystem(H, full, classes, sign)
    assert mixed.woodbury is formed.woodbury is woodbury
    rhs = torch.tensor(np.random.default_rng(5).standard_normal(tuple(H.shape[:2])))
    torch.testing.assert_close(mixed.apply(rhs), formed.apply(rhs), rtol=1e-12, atol=1e-12)
    if woodbury:
        # (the blocks' scales spread over ten orders of magnitude: rounding of S^{-1} shows)
        torch.testing.assert_close(torch.tril(mixed.Lc), torch.tril(formed.Lc), rtol=1e-9, atol=1e-12)
    else:
        torch.testing.assert_close(mixed.gram, formed.gram, rtol=1e-12, atol=1e-12)
    # both solve M x = rhs within what its conditioning allows (the blocks span ten orders)
    Ug = torch.zeros((H.shape[0], H.shape[1], full.shape[2]), dtype=torch.float64)
    Ug[:, H.shape[1] - full.shape[1]:] = full[classes] * sign[:, None, None]
    Ug = Ug.reshape(-1, full.shape[2])
    M = torch.block_diag(*H) + Ug @ Ug.T
    expected = torch.linalg.solve(M, rhs.reshape(-1)).reshape(rhs.shape)
    bound = 1e-14 * float(torch.linalg.cond(M)) * float(torch.linalg.vector_norm(expected))
    for system in (mixed, formed):
        assert float(torch.linalg.vector_norm(system.solve(rhs) - expected)) <= bound


def test_ipm_mixed_factor_forms_the_factor_for_one_output():
    """One output and one column (squared, logistic): the factor ``U_c diag(f)`` itself
    and its coefficients scaled alike, ``U`` untouched (no copy) when ``f = 1``; several
    outputs: ``U``, the mix and the coefficients as given."""
    from convexrelu.solvers.ipm import _mixed_factor

    U = torch.arange(12.0, dtype=torch.float64).reshape(2, 2, 3)
    out = torch.tensor([0, 0])
    coef = torch.arange(6.0, dtype=torch.float64).reshape(3, 2, 1)
    same, mix, c = _mixed_factor(U, torch.ones((3, 1, 1), dtype=torch.float64), out, coef)
    assert same is U and mix is None and c is coef
    f = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    formed, mix, c = _mixed_factor(U, f[:, None, None], out, coef)
    assert mix is None and torch.equal(formed, U * f) and torch.equal(U, torch.arange(12.0).reshape(2, 2, 3).double())
    assert torch.equal(c, coef * f[:, None, None])  # the coefficients scaled as the factor's columns
    assert _mixed_factor(U, f[:, None, None], out)[2] is None
    F = torch.ones((3, 3, 2), dtype=torch.float64)
    base, mix, c = _mixed_factor(U, F, out, coef)
    assert base is U and mix[0] is F and mix[1] is out and c is coef


def test_ipm_mixed_capacitance_is_the_lower_triangle_of_the_formed_product():
    """``_mixed_capacitance``: one ``n x n`` product per output gives the lower triangle
    of ``sum_c W_c^T W_c`` of the formed factors, blocks of outputs without classes
    included (class outputs 2, 0, 2, 1 of three; and a subset with output 1 missing)."""
    from convexrelu.solvers.ipm import _mixed_capacitance

    _, V, (F, out), full, _, _ = _mixed_problem(6, woodbury=True)
    for keep in (torch.arange(4), torch.tensor([0, 1, 2])):
        W = full[keep].reshape(-1, full.shape[2])
        expected = torch.tril(W.T @ W)
        got = _mixed_capacitance(V[keep], F, out[keep])
        torch.testing.assert_close(torch.tril(got), expected, rtol=1e-12, atol=1e-12)
        assert torch.count_nonzero(torch.triu(got, diagonal=V.shape[2] + 1)) == 0  # blocks above: zero


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_ipm_base_factor_is_its_coefficients_times_the_features(cls):
    """The interior point's constant factor ``A^T`` per class and the coefficients it passes
    as ``khatri_rao``: ``U_c[j d + e, i] = coef[i, c, j] X[i, e]``, and ``U_c^T`` applied to
    a class's blocks gives the model of those blocks."""
    from convexrelu.solvers.ipm import InteriorPoint

    r = np.random.default_rng(9)
    X = r.standard_normal((12, 3))
    y = r.standard_normal(12)
    op = (cls(X, y, 4, hidden=2, beta=0.1, random_state=0) if cls is ThreeLayerReLUProgram
          else cls(X, y, 4, beta=0.1, random_state=0)).operator
    gidx, classes = op.padded_groups(), op.coefficient_classes()
    U, out, coef = InteriorPoint._base_factor(op, gidx, classes)
    K, q, n = U.shape
    m, d = gidx.shape[1], op.n_features
    assert coef.shape == (n, K, m) and q == m * d
    torch.testing.assert_close(U, torch.einsum("ikj,ie->kjei", coef, op.X).reshape(K, q, n), rtol=0, atol=0)
    # class c's part applied to a weight on its representative group's blocks is that group's model
    reps = classes[2]
    for c in range(K):
        Q = torch.zeros(op.shape, dtype=torch.float64)
        qc = torch.zeros((m, d), dtype=torch.float64)
        for j, b in enumerate(int(b) for b in gidx[reps[c]]):
            if b < op.n_blocks:  # (b = B: a padding slot)
                Q[:, b] = qc[j] = torch.tensor(r.standard_normal(d))
        torch.testing.assert_close(U[c].T @ qc.reshape(-1), op.matvec(Q)[:, int(out[c])], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mixed", [False, True])
def test_ipm_newton_system_with_a_khatri_rao_factor_applies_as_the_formed_one(mixed):
    """A factor given by its coefficients and features (``U_c[j d + e, i] = coef[i, c, j]
    X[i, e]``): ``U^T x``, ``U w``, ``M x`` and the solve as with ``U`` alone, with one
    output or mixed by a Hessian factor over three outputs (one of them without classes)."""
    from convexrelu.solvers.ipm import _NewtonSystem

    r = np.random.default_rng(7)
    G, m, d, n, K, lead = 6, 2, 3, 5, 4, 2
    p = lead + m * d
    coef = torch.tensor(r.standard_normal((n, K, m)))
    X = torch.tensor(r.standard_normal((n, d)))
    U = torch.einsum("ikj,ie->kjei", coef, X).reshape(K, m * d, n)
    assert torch.allclose(U[2, 1 * d + 2], coef[:, 2, 1] * X[:, 2])  # row j d + e of class c
    classes = torch.tensor([0, 1, 3, 0, 2, 3])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, 1.0], dtype=torch.float64)
    mix = (torch.tensor(r.standard_normal((n, 3, 2))), torch.tensor([2, 0, 2, 0])) if mixed else None
    H = _spread_blocks(r, G, p)
    plain = _NewtonSystem(H, U, classes, sign, mix=mix)
    kr = _NewtonSystem(H, U, classes, sign, mix=mix, khatri_rao=(coef, X, X.T.contiguous()))
    x = torch.tensor(r.standard_normal((G, p)))
    torch.testing.assert_close(kr._lowrank_t(x), plain._lowrank_t(x), rtol=1e-12, atol=1e-12)
    w = torch.tensor(r.standard_normal(plain._lowrank_t(x).shape[0]))
    torch.testing.assert_close(kr._lowrank(w), plain._lowrank(w), rtol=1e-12, atol=1e-12)
    W = torch.tensor(r.standard_normal((w.shape[0], 3)))
    torch.testing.assert_close(kr._lowrank(W), plain._lowrank(W), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kr.apply(x), plain.apply(x), rtol=1e-12, atol=1e-10)
    # the solve: backward stable, as the plain one (the blocks span fourteen orders of magnitude)
    scale = float(torch.linalg.vector_norm(plain.apply(x))) / float(torch.linalg.vector_norm(x))
    for system in (plain, kr):
        residual = float(torch.linalg.vector_norm(plain.apply(system.solve(x)) - x))
        assert residual <= 1e-12 * float(torch.linalg.vector_norm(x)) * max(1.0, scale)
    with pytest.raises(ValueError, match="khatri_rao"):
        _NewtonSystem(H, U, classes, sign, mix=mix, khatri_rao=(coef[:, :, :1], X, X.T.contiguous()))


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
@pytest.mark.parametrize("cls", PROGRAMS)
def test_ipm_dense_path_with_many_samples_matches_cvxpy(cls, loss, monkeypatch):
    """More samples than unknowns (n r > B (d + 1), r = C - 1 = 2 for softmax with three
    classes): the interior point factors the Newton matrix itself (for the squared loss
    its low-rank part once, reused every iteration; for the others once per iteration)
    and reaches the CVXPY optimum."""
    from convexrelu.solvers import ipm as ipm_module

    calls = []
    original = ipm_module._lowrank_gram
    monkeypatch.setattr(ipm_module, "_lowrank_gram", lambda *a: calls.append(1) or original(*a))
    X, y = planted_regression(n=120, d=2, seed=3)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, targets_for(loss, y), 3, loss=loss, beta=0.5, random_state=0, **extra)
    d = prog.shape[0]
    assert prog.shape[1] * (d + 1) < 120 * prog.loss.hessian_rank(prog.operator.n_outputs)
    sol = InteriorPoint().solve(prog)
    ref = CVXPYSolver().solve(prog)
    assert sol.info["system"] == "dense" and sol.converged
    assert sol.iterations > 3 and (len(calls) == 1 if loss == "squared" else len(calls) >= sol.iterations - 2)
    assert abs(sol.objective - ref.objective) <= 1e-6 * abs(ref.objective)
    assert sol.constraint_violation <= 1e-9 * max(1.0, float(np.abs(prog.predict(sol.weights)).max()))


# ----------------------------------------------------------------------------- registry, auto
def test_registry_and_get_solver():
    assert {"cvxpy", "fista", "auglag", "auto"} <= set(SOLVERS)
    assert isinstance(get_solver("fista", tol=1e-5), FISTA) and get_solver("fista", tol=1e-5).tol == 1e-5
    assert isinstance(get_solver("auglag", max_iter=3), AugmentedLagrangian)
    assert isinstance(get_solver("AUTO"), AutoSolver)
    s = FISTA()
    assert get_solver(s) is s


def test_auto_picks_by_size_and_constraints():
    from convexrelu.solvers import auto as auto_module

    auto = AutoSolver(tol=1e-4, max_iter=7)
    ipm = auto.choose(program(ThreeLayerReLUProgram, "squared"))
    assert isinstance(ipm, InteriorPoint) and ipm.tol == 1e-4 and ipm.max_iter == 7
    # beta = 0 or a Newton system too large: CVXPY for small programs
    assert isinstance(auto.choose(program(TwoLayerReLUProgram, "squared").with_beta(0.0)), CVXPYSolver)
    old = auto_module.IPM_MAX_WORK
    try:
        auto_module.IPM_MAX_WORK = 10
        assert isinstance(auto.choose(program(ThreeLayerReLUProgram, "squared")), CVXPYSolver)
    finally:
        auto_module.IPM_MAX_WORK = old
    auto = AutoSolver(ipm=False, tol=1e-4, max_iter=7)
    cvx = auto.choose(program(ThreeLayerReLUProgram, "squared"))  # tiny
    assert isinstance(cvx, CVXPYSolver) and cvx.tol == 1e-4 and cvx.max_iter == 7  # as Clarabel options
    forced = AutoSolver(cvxpy_max_size=0, ipm=False, tol=1e-4, max_iter=7)
    fista = forced.choose(program(GatedReLUProgram, "squared"))
    al = forced.choose(program(TwoLayerReLUProgram, "squared"))
    assert isinstance(fista, FISTA) and fista.tol == 1e-4 and fista.max_iter == 7
    assert isinstance(al, AugmentedLagrangian) and al.tol == 1e-4
    with pytest.warns(ConvergenceWarning, match="user_limit"):  # max_iter=7 reaches Clarabel
        sol = auto.solve(program(GatedReLUProgram, "logistic"))
    assert sol.solver.startswith("cvxpy") and sol.iterations <= 7


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_with_max_time_is_a_limited_copy(name):
    """Every registered solver takes a time limit from a caller: a copy with the smaller of
    the two limits, the solver itself unchanged; the limit reaches the solver it runs."""
    solver = get_solver(name)

    def limit(s):
        return s.hyperparameters.get("max_time") if isinstance(s, AutoSolver) else s.max_time

    assert limit(solver) is None
    limited = solver.with_max_time(5)
    assert type(limited) is type(solver) and limited is not solver
    assert limit(limited) == 5.0 and limit(solver) is None
    assert limit(limited.with_max_time(2.5)) == 2.5 and limit(limited.with_max_time(7)) == 5.0
    if isinstance(limited, AutoSolver):  # the chosen solver gets it
        prog = program(GatedReLUProgram, "squared")
        assert limited.choose(prog).max_time == 5.0
        assert AutoSolver(ipm=False, cvxpy_max_size=0).with_max_time(3).choose(prog).max_time == 3.0
    for bad in (0, -1.0, float("nan"), float("inf"), "5", True):
        with pytest.raises(ValueError, match="max_time: expected a positive number of seconds"):
            solver.with_max_time(bad)
        with pytest.raises(ValueError, match="max_time: expected a positive number of seconds"):
            get_solver(name, max_time=bad)


def test_with_max_time_refuses_a_solver_without_a_limit():
    class NoLimit(Solver):
        def solve(self, program, init=None):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="max_time: the solver NoLimit has no time limit"):
        NoLimit().with_max_time(1.0)


def test_auto_logs_its_choice_and_the_missing_time_limit(caplog):
    """The choice is logged at INFO with the sizes; a first-order choice without
    ``max_time`` says how to bound it."""
    import logging

    prog = program(GatedReLUProgram, "squared")
    with caplog.at_level(logging.INFO, logger="convexrelu.solvers.auto"), pytest.warns(ConvergenceWarning):
        AutoSolver(cvxpy_max_size=0, ipm=False, max_iter=5).solve(prog)
    (record,) = [r for r in caplog.records if r.name == "convexrelu.solvers.auto"]
    assert record.getMessage().startswith(f"auto: FISTA for {prog.operator.n_samples} samples")
    assert "give max_time" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convexrelu.solvers.auto"), pytest.warns(ConvergenceWarning):
        AutoSolver(cvxpy_max_size=0, ipm=False, max_iter=5, max_time=10.0).solve(prog)
    with caplog.at_level(logging.INFO, logger="convexrelu.solvers.auto"):
        AutoSolver().solve(prog)
    messages = [r.getMessage() for r in caplog.records if r.name == "convexrelu.solvers.auto"]
    assert len(messages) == 2 and messages[1].startswith("auto: InteriorPoint")
    assert not any("give max_time" in m for m in messages)


def test_auto_interior_point_limits_by_device():
    """CPU: the limits on the entries n B (d + 1) and on the entries times the order of
    the matrix factored, min(n r, B (d + 1)) (r columns of the loss's Hessian factor per
    sample); CUDA: the order limit and the device's free memory at
    IPM_DEVICE_BYTES_PER_ENTRY bytes per entry."""
    from convexrelu.solvers.auto import IPM_MAX_ENTRIES, IPM_MAX_ROWS_CUDA, IPM_MAX_WORK, ipm_fits, newton_size

    assert newton_size(7_500, 400, 11) == (7_500 * 4_800, 4_800)  # the Newton matrix itself
    assert newton_size(300, 400, 11) == (300 * 4_800, 300)  # the Woodbury matrix
    assert newton_size(300, 400, 11, rank=2) == (300 * 4_800, 600)  # softmax, three classes
    assert newton_size(3_000, 400, 11, rank=2) == (3_000 * 4_800, 4_800)
    assert ipm_fits(500, 600, 10) and ipm_fits(4000, 1, 0)
    # many samples, few unknowns: the Newton matrix itself is factored (order B (d + 1))
    assert ipm_fits(40_000, 190, 11) and ipm_fits(7_500, 400, 11)
    # the work limit: order^3 <= entries * order
    side = int(round(IPM_MAX_WORK ** (1 / 3)))
    assert ipm_fits(side - 5, side - 5, 0) and not ipm_fits(side + 5, side + 5, 0)
    assert not ipm_fits(40_000, 190, 100)  # order 19,190: too much work
    assert not ipm_fits(IPM_MAX_ENTRIES // 100 + 1, 100, 0)  # order 100, too many entries
    assert ipm_fits(IPM_MAX_ENTRIES // 100, 100, 0)
    # n = 20,000, 3,000 blocks, 51 columns: 3.12e9 entries, 49.9 GB at 16 bytes each, and
    # the 20,000 x 20,000 Woodbury matrix at 32 bytes per entry
    entries = 20_000 * 3_000 * 52
    need = 16 * entries + 32 * 20_000**2
    assert not ipm_fits(20_000, 3_000, 51, "cpu")
    assert ipm_fits(20_000, 3_000, 51, "cuda", free_bytes=1.001 * need / 0.8)
    assert not ipm_fits(20_000, 3_000, 51, "cuda", free_bytes=0.999 * need / 0.8)
    assert not ipm_fits(IPM_MAX_ROWS_CUDA + 1, IPM_MAX_ROWS_CUDA + 1, 0, "cuda", free_bytes=1e15)
    assert ipm_fits(IPM_MAX_ROWS_CUDA + 1, IPM_MAX_ROWS_CUDA, 0, "cuda", free_bytes=1e15)
    assert not ipm_fits(IPM_MAX_ENTRIES // 100 + 1, 100, 0, "cpu")



def test_auto_sizes_the_newton_systems_by_the_rank_of_the_loss_hessian(caplog, monkeypatch):
    """Softmax with C classes: the Hessian of a row has rank C - 1, so the matrix the
    interior point factors has order ``n (C - 1)`` (logged with the ``n B (d + 1)``
    entries of the constant factor), and a program whose order ``n C`` would exceed the
    work limit but whose ``n (C - 1)`` does not goes to the interior point."""
    import logging

    import convexrelu.solvers.auto as auto

    prog = program(TwoLayerReLUProgram, "softmax")
    op = prog.operator
    n, C, B, d = op.n_samples, op.n_outputs, op.n_blocks, op.n_features
    assert C == 3 and prog.loss.hessian_rank(C) == 2 and n * C < B * (d + 1)  # the Woodbury order
    assert auto.newton_size(n, B, d, rank=2) == (n * B * (d + 1), 2 * n)
    with caplog.at_level(logging.INFO, logger="convexrelu.solvers.auto"):
        AutoSolver().solve(prog)
    (record,) = [r for r in caplog.records if r.name == "convexrelu.solvers.auto"]
    assert f"({n * B * (d + 1):.1e} entries in the interior point's Newton systems, order {2 * n})" in (
        record.getMessage())
    # a work limit between entries * n (C - 1) and entries * n C
    monkeypatch.setattr(auto, "IPM_MAX_WORK", n * B * (d + 1) * n * (C - 0.5))
    assert not auto.ipm_fits(n, B, d, rank=C) and auto.ipm_fits(n, B, d, rank=C - 1)
    assert isinstance(AutoSolver().choose(prog), InteriorPoint)


def test_auto_sizes_independent_outputs_by_the_largest_one(caplog):
    """Squared loss with three outputs: the solvers run one output at a time, so ``auto``
    sizes the Newton systems by the blocks of one output and one column per sample (and
    says so)."""
    import logging

    from convexrelu.solvers.auto import _largest_part

    prog, _, _ = _one_hot_program(ThreeLayerReLUProgram)
    op = prog.operator
    assert _largest_part(prog) == (op.n_blocks // 3, 1)
    assert _largest_part(program(ThreeLayerReLUProgram, "softmax")) == (
        program(ThreeLayerReLUProgram, "softmax").operator.n_blocks, 2)
    with caplog.at_level(logging.INFO, logger="convexrelu.solvers.auto"):
        AutoSolver().solve(prog)
    (record,) = [r for r in caplog.records if r.name == "convexrelu.solvers.auto"]
    message = record.getMessage()
    assert message.startswith("auto: InteriorPoint") and f"3 independent outputs, at most {op.n_blocks // 3}" in message
    assert f"order {min(op.n_samples, op.n_blocks // 3 * (op.n_features + 1))}" in message

# ----------------------------------------------------------------------------- float32
@pytest.mark.parametrize("cls", PROGRAMS)
def test_float32(cls):
    prog = program(cls, "squared")
    p32 = prog.to(dtype=torch.float32)
    solver = FISTA() if not prog.has_constraints else AugmentedLagrangian()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solver.solve(p32)
    ref = reference(cls, "squared")
    assert _relative(sol.objective, ref.objective) <= 1e-3
    # feasible when checked in float64 too, to float32 rounding
    scale = constraint_scale(prog.operator.constraints(torch.tensor(sol.weights)))
    assert prog.violation(sol.weights) <= 1e-6 * scale
    assert prog.recover(sol.weights).objective(*_data("squared"), "squared", prog.beta) == pytest.approx(
        prog.objective(sol.weights), rel=1e-5
    )


def _data(loss):
    X, y = planted_regression(n=24, d=2, seed=0)
    return X, targets_for(loss, y)


# ----------------------------------------------------------------------------- repair
@pytest.mark.parametrize("project", [True, False], ids=["projection", "local rounds"])
@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_restore_feasibility_fixes_a_small_violation(cls, project):
    """Either path of the repair (the exact projection of the violated groups, or the
    local least-squares rounds alone) removes a small violation with a small move."""
    prog = program(cls, "squared")
    op = prog.operator
    Q = torch.tensor(reference(cls, "squared").weights)
    scale = constraint_scale(op.constraints(Q))
    bad = Q + 1e-6 * scale / math.sqrt(op.n_samples) * _random(Q.shape, 9) * (Q.abs().sum(0) > 0)
    assert op.violation(bad) > 1e-9 * scale
    fixed, info = restore_feasibility(op, bad, project=project)
    assert op.violation(fixed) <= 1e-9 * scale
    assert info["violation_after"] <= 1e-9
    assert info["projection"]["projected_groups"] >= 1 if project else (info["rounds"] >= 1 and "projection" not in info)
    assert float(torch.linalg.vector_norm(fixed - bad)) <= 1e-3 * float(torch.linalg.vector_norm(Q))
    # zero blocks stay zero
    assert torch.all(fixed[:, Q.abs().sum(0) == 0] == 0)


@pytest.mark.parametrize("name", ["admm", "auglag"])
def test_a_converged_but_infeasible_point_is_reported(name):
    """Without the repair and at a loose tolerance the point violates the cones: the
    solve says so (status "infeasible", a warning with the violation), never "optimal"."""
    prog = program(ThreeLayerReLUProgram, "squared")
    kw = dict(tol=1e-2, repair=False) if name == "admm" else dict(tol=1e-2, feas_tol=1e-2, repair=False)
    with pytest.warns(ConvergenceWarning, match="violates the cone constraints"):
        sol = make_solver(name, **kw).solve(prog)
    assert sol.status == "infeasible" and not sol.converged
    assert sol.constraint_violation > 0


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-4])
def test_restore_feasibility_never_raises_the_violation(tol):
    """Loose ADMM points (many tiny blocks, violations in both cones): the repair returns
    a point whose violation is at most the one it was given."""
    prog = program(ThreeLayerReLUProgram, "squared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Q = ADMM(tol=tol, repair=False).solve(prog).weights
    before = prog.violation(Q)
    repaired, info = restore_feasibility(prog.operator, torch.tensor(Q))
    assert prog.violation(repaired.numpy()) <= before * (1 + 1e-12) + 1e-300
    assert info["violation_after"] <= info["violation_before"] * (1 + 1e-12) + 1e-300


def test_a_stalled_solve_is_reported_with_its_certificate():
    """The finisher shared by the constrained solvers maps a stall to status "stalled",
    warns with the duality gap, and keeps a bound certified before the last clean-up."""
    import time as _time

    from convexrelu.solvers.auglag import constrained_solution

    prog = program(TwoLayerReLUProgram, "squared")
    ref = reference(TwoLayerReLUProgram, "squared")
    Q = torch.tensor(ref.weights)
    mults = tuple(torch.tensor(m) for m in ref.multipliers)
    with pytest.warns(ConvergenceWarning, match=r"stopped at stall .*duality gap"):
        sol = constrained_solution(prog, Q, mults, solver="ipm", label="InteriorPoint", knob="tol", converged=False,
                                   stop="stall (rounding)", residuals="(test)", iterations=3,
                                   start=_time.perf_counter(), history=[1.0], info={},
                                   lower_bound=ref.objective - 1e-12)
    assert sol.status == "stalled" and not sol.converged
    assert sol.lower_bound == pytest.approx(ref.objective - 1e-12, abs=1e-9)  # the larger of the two bounds


@pytest.mark.parametrize("name", ["ipm", "admm", "auglag"])
def test_presolve_fixes_dead_groups_at_zero(name):
    """Groups that cannot change the model (BlockOperator.live_groups) are zero in every
    solver's solution, which still matches CVXPY and certifies its gap on the whole
    program (the three-layer program here has such groups); multipliers come in the
    whole program's shapes."""
    prog = program(ThreeLayerReLUProgram, "squared")
    live = prog.operator.live_groups()
    assert not live.all()
    sol = solved(name, ThreeLayerReLUProgram, "squared")
    assert sol.info["dead_groups"] == int((~live).sum())
    dead_blocks = ~live[prog.operator.group_np]
    assert np.all(np.asarray(sol.weights)[:, dead_blocks] == 0)
    assert [m.shape for m in sol.multipliers] == list(prog.operator.constraint_shapes)
    for m, cols in zip(sol.multipliers, prog.operator.constraint_columns(np.flatnonzero(~live))):
        assert np.all(m[:, cols] == 0)
    assert all(a.dtype == np.float64 and not a.flags.writeable for a in (sol.weights, *sol.multipliers))
    ref = reference(ThreeLayerReLUProgram, "squared")
    assert sol.objective == pytest.approx(prog.objective(sol.weights), rel=1e-12)
    assert sol.constraint_violation == prog.violation(sol.weights)
    assert sol.lower_bound <= ref.objective + 1e-9 * max(1.0, abs(ref.objective))
    assert _relative(sol.objective, ref.objective) <= (1e-6 if name == "ipm" else 1e-4)


def test_solution_copies_writable_arrays_and_keeps_read_only_ones():
    """The record stores read-only float64 arrays: a writable array is copied (changing
    it afterwards does not change the record), one that already is read-only float64 is
    kept as it is (at scale the multipliers take gigabytes: the presolve's extension and
    the certificate hand theirs over); ``frozen(copy=False)`` marks a new array in place."""
    w = np.arange(6.0).reshape(2, 3)
    kept = np.ones((4, 3))
    kept.setflags(write=False)
    single = np.ones((4, 3), dtype=np.float32)
    single.setflags(write=False)
    sol = Solution(weights=w, objective=1.0, converged=True, status="optimal", multipliers=(kept, single))
    w[0, 0] = 99.0
    assert sol.weights[0, 0] == 0.0 and not sol.weights.flags.writeable
    assert sol.multipliers[0] is kept
    assert sol.multipliers[1] is not single and sol.multipliers[1].dtype == np.float64
    assert not sol.multipliers[1].flags.writeable and np.array_equal(sol.multipliers[1], single)
    with pytest.raises(ValueError):
        sol.multipliers[1][0, 0] = 2.0
    new = np.zeros(3)
    assert frozen(new, copy=False) is new and not new.flags.writeable
    mine = np.zeros(3)
    assert frozen(mine) is not mine and mine.flags.writeable


def test_solution_info_is_a_read_only_copy_that_pickles():
    """``info`` is copied when the record is made and refuses changes afterwards; it
    pickles and deep-copies back to an equal read-only mapping; ``dict(info)`` is writable."""
    given = {"residual": 1e-7, "parts": [1, 2]}
    sol = Solution(weights=np.zeros((2, 3)), objective=1.0, converged=True, status="optimal", info=given)
    given["residual"] = 5.0
    assert sol.info["residual"] == 1e-7
    for change in (lambda i: i.__setitem__("x", 1), lambda i: i.update(x=1), lambda i: i.pop("residual"),
                   lambda i: i.setdefault("x", 1), lambda i: i.clear(), lambda i: i.popitem(),
                   lambda i: i.__delitem__("residual"), lambda i: i.__ior__({"x": 1})):
        with pytest.raises(TypeError, match="read-only"):
            change(sol.info)
    assert dict(sol.info) == {"residual": 1e-7, "parts": (1, 2)}  # (lists kept as tuples)
    for back in (pickle.loads(pickle.dumps(sol)), copy.deepcopy(sol)):
        assert back.info == sol.info and type(back.info) is type(sol.info)
        with pytest.raises(TypeError):
            back.info["x"] = 1
    writable = dict(sol.info)
    writable["x"] = 1
    assert "x" not in sol.info
    # nested dicts too (a part's info, whose penalty a warm start reads), lists as tuples
    parts = Solution(weights=np.zeros((2, 3)), objective=1.0, converged=True, status="optimal",
                     info={"output_parts": ({"info": {"rho": 2.0}},), "rows": [1, 2]})
    with pytest.raises(TypeError, match="read-only"):
        parts.info["output_parts"][0]["info"]["rho"] = 1e9
    assert parts.info["rows"] == (1, 2) and parts.info["output_parts"][0]["info"]["rho"] == 2.0


def test_presolve_restricts_warm_starts_of_the_whole_program():
    """A warm start given for the whole program (a Solution with multipliers, or an
    array) is restricted to the live groups; the result is the whole program's."""
    prog = program(ThreeLayerReLUProgram, "squared")
    first = solved("admm", ThreeLayerReLUProgram, "squared")
    ref = reference(ThreeLayerReLUProgram, "squared")
    for init in (first, np.array(first.weights), torch.tensor(np.array(first.weights))):
        sol = AugmentedLagrangian().solve(prog, init=init)
        assert sol.weights.shape == prog.shape and sol.info["dead_groups"] > 0
        assert _relative(sol.objective, ref.objective) <= 1e-4
    all_live = program(TwoLayerReLUProgram, "squared")
    assert all_live.operator.live_groups().all()
    assert solved("ipm", TwoLayerReLUProgram, "squared").info["dead_groups"] == 0


@pytest.mark.parametrize("cls", [GatedReLUProgram, TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_states_on_spare_arrays_are_the_states_of_their_points(cls):
    """FISTA recycles the arrays of dead states: a state (and an extrapolated state)
    written into a spare one has the value, constraints and gradient of a fresh one,
    and overwrites the spare's arrays."""
    prog = program(cls, "squared")
    op = prog.operator
    if op.has_constraints:
        part = ALPart(prog, tuple(torch.ones(s, dtype=torch.float64) for s in op.constraint_shapes), 2.0)
    else:
        part = LossPart(prog)
    Q0, Q1, Q2 = _random(prog.shape, 7), _random(prog.shape, 8), _random(prog.shape, 9)
    spare = part.state(Q2)
    part.value(spare)  # its multipliers exist
    arrays = [t.data_ptr() for t in spare.cons + (spare.P or ())]
    # the extrapolated state of an augmented Lagrangian keeps multipliers only
    # (no constraint arrays): a new state on such a spare gets new constraint arrays
    S = part.state(Q1, spare=spare)
    fresh = part.state(Q1)
    assert part.value(S) == pytest.approx(part.value(fresh), rel=1e-13)
    torch.testing.assert_close(part.grad(S), part.grad(fresh), rtol=1e-12, atol=1e-12)
    assert [t.data_ptr() for t in S.cons + (S.P or ())] == arrays
    old = part.state(Q0)
    spare2 = part.state(Q2)
    part.value(spare2)
    E = part.extrapolate(old, fresh, 0.37, spare=spare2)
    direct = part.state(Q1 + 0.37 * (Q1 - Q0))
    assert part.value(E) == pytest.approx(part.value(direct), rel=1e-12)
    torch.testing.assert_close(part.grad(E), part.grad(direct), rtol=1e-10, atol=1e-10)
    if op.has_constraints:
        assert [t.data_ptr() for t in E.P] == [t.data_ptr() for t in spare2.P]
        S2 = part.state(Q2, spare=E)  # an extrapolated state as the spare of a new iterate
        fresh2 = part.state(Q2)
        assert part.value(S2) == pytest.approx(part.value(fresh2), rel=1e-13)
        torch.testing.assert_close(part.grad(S2), part.grad(fresh2), rtol=1e-12, atol=1e-12)


def test_float32_first_order_solves_converge():
    # the step grows only on a curvature measured above the rounding of the values: in
    # float32 a step grown on noise made the inner FISTA oscillate (stationarity stuck at
    # ~2e-2 while the objective stood still) and the augmented Lagrangian never stopped
    import torch

    r = np.random.default_rng(1)
    X = r.normal(size=(16, 2))
    y = np.sin(2 * X[:, 0]) + 0.1 * r.normal(size=16)
    for cls, solver in ((TwoLayerReLUProgram, AugmentedLagrangian()), (GatedReLUProgram, FISTA())):
        prog = cls(X, y, 6, beta=0.05, random_state=0)
        ref = CVXPYSolver().solve(prog)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            sol = solver.solve(prog.to(dtype=torch.float32))
        assert sol.converged and sol.status == "optimal"
        assert sol.objective == pytest.approx(ref.objective, rel=1e-3)
        assert sol.lower_bound <= ref.objective * (1 + 1e-6)


def test_interior_point_stall_names_its_cause(monkeypatch):
    # a Newton system that cannot be factored after the first iteration: the last point is
    # returned, and the warning says why and how far it is certified
    prog = program(TwoLayerReLUProgram, "squared")
    original = InteriorPoint._newton_system
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise SolverError("factorisation failed (test)")
        return original(*args, **kwargs)

    monkeypatch.setattr(InteriorPoint, "_newton_system", staticmethod(failing))
    with pytest.warns(ConvergenceWarning, match=r"stall \(the Newton system could not be factored: .*certified "
                                                r"relative gap at the last point [0-9.e+-]+\)"):
        sol = InteriorPoint().solve(prog)
    assert sol.status == "stalled" and not sol.converged and sol.iterations == 3
    assert sol.lower_bound <= CVXPYSolver().solve(prog).objective * (1 + 1e-9)


def test_interior_point_relative_gap_closed_form():
    """Relative to the objective down to the floor (GAP_FLOOR times the zero network's
    objective), absolute below it; an objective below 1 is no longer a floor."""
    from convexrelu._validation import relative_gap
    from convexrelu.solvers.ipm import GAP_FLOOR, _gap_floor

    assert relative_gap(10.0, 9.0, 1e-9) == pytest.approx(0.1)
    assert relative_gap(0.5, 0.25, 1e-9) == pytest.approx(0.5)  # (the floor of 1 had given 0.25)
    assert relative_gap(-4.0, -6.0, 1e-9) == pytest.approx(0.5)
    assert relative_gap(1e-12, 0.0, 1e-9) == pytest.approx(1e-3)  # below the floor: gap / floor
    prog = program(TwoLayerReLUProgram, "squared")
    assert _gap_floor(prog.objective(np.zeros(prog.shape))) == pytest.approx(GAP_FLOOR * 0.5 * np.sum(prog.Y_np**2),
                                                                             rel=1e-14)
    assert _gap_floor(0.0) == sys.float_info.min > 0


def test_the_interior_point_keeps_an_optimum_of_small_objective():
    """The clean-up that returns Q = 0 when 0 is as good compares relative to the
    objective: the optimum of a problem in small units (y and beta scaled by s, optimum
    s Q*, objective s^2 f*) is kept, not replaced by 0 (160 times the optimum)."""
    from convexrelu.solvers.ipm import _drop_negligible_blocks

    X, y = planted_regression(n=40, d=3, seed=0)
    y = y / np.linalg.norm(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = InteriorPoint().solve(TwoLayerReLUProgram(X, y, 10, beta=1e-3, random_state=0))
    assert "tol" in sol.info  # the repair-cost warning compares with it
    s = 4e-4
    small = TwoLayerReLUProgram(X, s * y, 10, beta=1e-3 * s, random_state=0)
    Qs = s * torch.tensor(sol.weights)
    kept, zeroed = _drop_negligible_blocks(small, Qs, 1e-7)
    assert small.objective(kept) <= small.objective(Qs) * (1 + 1e-7)
    assert small.objective(kept) < 0.5 * small.objective(torch.zeros_like(Qs))


def test_the_interior_point_keeps_a_model_that_beats_zero_by_less_than_tol():
    """At a loose tolerance a weak model may beat Q = 0 by less than tol: the clean-up
    keeps it (zero is taken only when it is at least as good)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 2))
    y = 0.3 * np.maximum(X[:, 0], 0) + rng.standard_normal(100)
    y -= y.mean()
    prog = TwoLayerReLUProgram(X, y, 20, beta=5.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = InteriorPoint(tol=1e-2).solve(prog)
    f0 = prog.objective(np.zeros(prog.shape))
    assert sol.objective < f0  # a model better than none ...
    assert sol.objective > f0 * (1 - 1e-2)  # ... by less than tol: the case of the test
    assert np.any(sol.weights != 0)


def test_the_infeasible_warning_points_at_the_callers_line():
    with pytest.warns(ConvergenceWarning, match="violates the cone constraints") as record:
        ADMM(tol=1e-2, repair=False).solve(program(ThreeLayerReLUProgram, "squared"))
    assert {w.filename for w in record} == {__file__}


def _sine_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)


def test_admm_stops_at_an_optimum_at_zero():
    """beta = 10, below zero_threshold (27.4), where the optimum is the zero network: ADMM
    reached it exactly but its relative primal residual ||Q - V|| / max(||Q||, ||V||) stayed
    near 1 (both tend to zero), so it ran its 20,000 iterations and reported max_iter."""
    X, y = _sine_data(40, 3)
    prog = ThreeLayerReLUProgram(X, y, 8, beta=10.0, random_state=0, hidden=2)
    zero = prog.objective(np.zeros(prog.shape))
    sol = ADMM().solve(prog)
    assert sol.converged and sol.iterations < 1000
    assert sol.objective == pytest.approx(zero, rel=1e-8)


def test_admm_stops_at_beta_zero():
    """At beta = 0 the group dual is zero: the dual residual had been divided by 1e-300
    (2.2e287 after 2,000 iterations), so no solve could stop; on the gated program it now
    stops in hundreds of iterations, and on the cone program its residual is a number that
    measures something (it converges slowly there: max_iter, with a warning)."""
    X, y = _sine_data(40, 3)
    prog = GatedReLUProgram(X, y, 8, beta=0.0, random_state=0)
    sol = ADMM(max_iter=5000).solve(prog)
    assert sol.converged
    assert sol.objective == pytest.approx(CVXPYSolver().solve(prog).objective, rel=1e-5)
    prog = TwoLayerReLUProgram(X, y, 8, beta=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        sol = ADMM(max_iter=2000).solve(prog)
    assert sol.info["dual_residual"] < 1e-2
    assert sol.objective == pytest.approx(CVXPYSolver().solve(prog).objective, rel=1e-2)


def test_admm_carries_its_penalties_to_a_nearby_beta_only():
    """From an ADMM solution at beta = 0.1, a solve at 1e-4 with the carried penalties
    had ended at 0.23868 where the optimum is 0.10196 (both at max_iter)."""
    from convexrelu.solvers.admm import WARM_PENALTY_BETA_RATIO, _carries_penalties

    info = {"rho": 2.0, "rho_model": 1.0, "beta": 0.1}
    assert _carries_penalties(info, 0.1) and _carries_penalties(info, 0.08)
    assert _carries_penalties(info, 0.1 * WARM_PENALTY_BETA_RATIO)
    assert not _carries_penalties(info, 0.1 * WARM_PENALTY_BETA_RATIO * 1.01)
    assert not _carries_penalties(info, 1e-4) and not _carries_penalties(info, 0.0)
    assert not _carries_penalties({"rho": 2.0, "rho_model": 1.0}, 0.1)  # no beta: not an ADMM solution of now
    assert _carries_penalties(dict(info, beta=0.0), 0.0)
    prog = small_program(TwoLayerReLUProgram)
    with pytest.warns(ConvergenceWarning):
        assert ADMM(max_iter=20).solve(prog).info["beta"] == prog.beta


def test_a_looser_augmented_lagrangian_tolerance_still_stops():
    """tol=1e-2 had run 500 outer iterations to max_iter where tol=1e-3 stopped: its inner
    solves end after a few iterations, too early for the fixed feas_tol of 1e-9. The
    default feas_tol now follows tol (FEAS_PER_TOL)."""
    from convexrelu.solvers.auglag import FEAS_PER_TOL

    X, y = _sine_data(60, 4)
    prog = TwoLayerReLUProgram(X, y, 10, beta=1e-3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (its certificate is loose: optimal_inaccurate)
        sol = AugmentedLagrangian(tol=1e-2).solve(prog)
    assert sol.status in ("optimal", "optimal_inaccurate") and sol.info["outer_iterations"] < 100
    assert sol.info["feas_tol"] == pytest.approx(FEAS_PER_TOL * 1e-2)
    assert AugmentedLagrangian().solve(small_program(TwoLayerReLUProgram)).info["feas_tol"] == pytest.approx(1e-9)
