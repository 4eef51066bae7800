"""Programs: every program x loss solved by CVXPY, the recovered network reproduces the
convex objective (1e-6 relative) and predictions; validation; restriction property."""

import numpy as np
import pytest
import torch

from convexrelu import (
    CVXPYSolver,
    GatedReLUProgram,
    ThreeLayerNetwork,
    ThreeLayerReLUProgram,
    TwoLayerNetwork,
    TwoLayerReLUProgram,
    sample_three_layer,
)
from conftest import planted_regression, targets_for

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]
LOSSES = ["squared", "logistic", "softmax"]


def _program(cls, loss, n=25, beta=0.1, n_patterns=12, fit_intercept=True, seed=0):
    X, y = planted_regression(n=n, d=3, seed=seed)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, targets_for(loss, y), n_patterns, loss=loss, beta=beta, random_state=seed,
               fit_intercept=fit_intercept, **extra)
    return prog, X, targets_for(loss, y)


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_recovered_network_reproduces_convex_optimum(cls, loss):
    prog, X, y = _program(cls, loss)
    sol = CVXPYSolver().solve(prog)
    assert sol.converged and sol.status == "optimal"
    net = prog.recover(sol.weights)
    assert isinstance(net, ThreeLayerNetwork if cls is ThreeLayerReLUProgram else TwoLayerNetwork)
    assert net.objective(X, y, loss, prog.beta) == pytest.approx(sol.objective, rel=1e-6)
    np.testing.assert_allclose(net.predict(X), prog.predict(sol.weights), atol=1e-6)
    assert sol.constraint_violation <= 1e-7
    assert sol.lower_bound <= sol.objective
    assert sol.relative_gap < (1e-6 if loss == "squared" else 1e-3)  # exp-cone duals are less accurate
    # CVXPY's own objective value agrees with ours
    assert sol.info["cvxpy_objective"] == pytest.approx(sol.objective, rel=1e-6)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_three_layer_recovery_norms(fit_intercept):
    prog, X, y = _program(ThreeLayerReLUProgram, "squared", fit_intercept=fit_intercept, beta=0.05)
    sol = CVXPYSolver().solve(prog)
    net = prog.recover(sol.weights)
    assert net.n_subnetworks == prog.n_active(sol.weights) > 0
    # weight-decay form: ||W1_k||_F = 1 and ||w2_k|| = |w3_k| = sqrt(t_k)
    np.testing.assert_allclose(net.first_layer_norms(), 1.0, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(net.w2, axis=1), np.abs(net.w3[:, 0]), rtol=1e-9)
    assert net.objective(X, y, "squared", prog.beta) == pytest.approx(sol.objective, rel=1e-6)


def test_restriction_more_patterns_never_worse():
    prog, X, y = _program(ThreeLayerReLUProgram, "squared", n_patterns=5)
    bigger = prog.with_patterns(prog.patterns.union(sample_three_layer(prog.X_design, 40, 2, random_state=1)))
    assert len(bigger.patterns) > len(prog.patterns)
    small, large = CVXPYSolver().solve(prog), CVXPYSolver().solve(bigger)
    assert large.objective <= small.objective * (1 + 1e-7)


def test_with_beta_and_zero_threshold_for_gated():
    prog, X, y = _program(GatedReLUProgram, "squared")
    thr = prog.zero_threshold()
    above = CVXPYSolver().solve(prog.with_beta(thr * 1.01))
    below = CVXPYSolver().solve(prog.with_beta(thr * 0.9))
    assert np.abs(above.weights).max() < 1e-6
    assert above.objective == pytest.approx(0.5 * np.sum(y**2), rel=1e-6)
    assert np.abs(below.weights).max() > 1e-3


@pytest.mark.parametrize("rms, unit", [(1e-4, 2.0**-13), (0.3, 1.0), (1.0, 1.0), (3.9, 1.0), (4.2, 4.0),
                                       (300.0, 256.0), (0.0, 1.0)])
def test_target_unit_is_the_power_of_two_nearest_the_targets_size(rms, unit):
    """Targets whose root mean square is outside [1/4, 4]: the nearest power of two
    (log2 1e-4 = -13.3, log2 300 = 8.2); inside it, or all zero, 1."""
    X, _ = planted_regression(n=25, d=3, seed=0)
    y = np.where(np.arange(25) % 2, rms, -rms)  # root mean square: rms
    prog = TwoLayerReLUProgram(X, y, 5, beta=0.1, random_state=0)
    assert prog.target_unit() == unit


def test_target_unit_of_losses_that_do_not_scale_with_their_targets_is_one():
    for loss in ("logistic", "softmax"):
        prog, _, _ = _program(TwoLayerReLUProgram, loss)
        assert not prog.loss.scales_with_targets and prog.target_unit() == 1.0


def test_in_units_divides_targets_and_beta_and_scales_the_objective():
    """``in_units(s)``: targets and beta over ``s``, the same operator; the objective of
    ``s Q`` in the program is ``s^2`` times that of ``Q`` in the new one (squared loss)."""
    prog, _, _ = _program(ThreeLayerReLUProgram, "squared")
    new = prog.in_units(0.25)
    assert new.operator is prog.operator and type(new) is type(prog)
    np.testing.assert_array_equal(new.Y_np, 4 * prog.Y_np)
    assert new.beta == 4 * prog.beta and prog.beta == 0.1
    Q = np.random.default_rng(0).standard_normal(prog.shape)
    assert prog.objective(0.25 * Q) == pytest.approx(0.0625 * new.objective(Q), rel=1e-14)
    with pytest.raises(ValueError, match="scale: expected a finite number > 0"):
        prog.in_units(0)


def test_objective_by_hand_two_layer():
    X = np.array([[1.0], [2.0], [-1.0]])
    y = np.array([1.0, 2.0, 0.0])
    prog = TwoLayerReLUProgram(X, y, 3, beta=0.5, fit_intercept=False, random_state=0)
    # pattern (x >= 0) with v = [1] fits y exactly; objective = beta * ||v|| = 0.5
    masks = prog.patterns.masks
    i = [j for j in range(masks.shape[1]) if masks[:, j].tolist() == [True, True, False]][0]
    Q = np.zeros(prog.shape)
    Q[0, i] = 1.0
    assert prog.objective(Q) == pytest.approx(0.5)
    assert prog.predict(Q)[:, 0].tolist() == [1.0, 2.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.array([[np.nan, 1.0]]), y=[1.0]), "X: expected finite"),
        (dict(X=np.ones(3), y=[1.0, 2, 3]), "X: expected a 2-D array"),
        (dict(X=np.ones((0, 2)), y=[]), "X: expected at least 1 sample"),
        (dict(X=np.ones((3, 2)), y=[1.0, 2.0]), "y: expected 3 targets"),
        (dict(X=np.ones((3, 2)), y=[1.0, 2, 3], beta=-1.0), "beta: expected a finite real number >= 0"),
        (dict(X=np.array([["a", "b"]]), y=[1.0]), "X: expected numeric values"),
        (dict(X=np.ones((3, 2)), y=[1.0, 2, 3], patterns=0), "patterns: expected an integer >= 1"),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ThreeLayerReLUProgram(**kwargs)


def test_patterns_wrong_size_rejected():
    prog, X, y = _program(TwoLayerReLUProgram, "squared")
    with pytest.raises(ValueError, match="patterns: expected patterns on"):
        TwoLayerReLUProgram(X[:10], y[:10], prog.patterns)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, GatedReLUProgram])
def test_patterns_drawn_on_another_design_are_rejected(cls):
    """Gates drawn on the design with its intercept, given to a program without one: the
    gated program had taken them and failed only at recovery ('gates: expected shape')."""
    prog, X, y = _program(cls, "squared")  # (with intercept: generators of 4 rows)
    with pytest.raises(ValueError, match=r"patterns: expected generators with one row per column of the design \(3\), "
                                         r"got 4"):
        cls(X, y, prog.patterns, fit_intercept=False)


@pytest.mark.parametrize("cls", PROGRAMS)
def test_recovery_checks_the_shape_of_the_weights(cls):
    """A wrong-shaped ``Q`` is refused naming it (recovery had taken it and built a
    network of another size, or failed deep in numpy)."""
    prog, _, _ = _program(cls, "squared")
    d, B = prog.shape
    for bad in (np.zeros((d, B + 1)), np.zeros((d + 1, B)), np.zeros(d * B)):
        with pytest.raises(ValueError, match=rf"Q: expected shape \({d}, {B}\), got"):
            prog.recover(bad)
        with pytest.raises(ValueError, match="Q: expected shape"):
            prog.n_active(bad)


def test_float32_program_solves_consistently():
    prog, X, y = _program(ThreeLayerReLUProgram, "squared")
    sol = CVXPYSolver().solve(prog)
    assert prog.to(dtype=torch.float32).objective(sol.weights) == pytest.approx(sol.objective, rel=1e-5)
