"""Certificates (convexrelu.certificates): on tiny exactly enumerable problems
lower_global <= exact optimum <= upper, no non-convex training run ever goes below a
certified lower bound, and the printed table marks what is proven."""

import math

import numpy as np
import pytest
import torch

from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.certificates import Certificate, certificate, enumerable, has_constant_column
from convexrelu.nonconvex import train_three_layer, train_two_layer
from convexrelu.patterns import enumerate_three_layer, enumerate_two_layer
from convexrelu.strategies import run_strategy
from conftest import grown_program, targets_for


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(n, seed=0):
    r = np.random.default_rng(seed)
    x = np.sort(r.uniform(-2, 2, n))
    return x[:, None], np.sin(2 * x) + 0.1 * r.standard_normal(n)


def _case(cls, loss, n, seed=0, beta=0.05):
    X, y = _tiny(n, seed)
    kw = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, targets_for(loss, y), 3, loss=loss, beta=beta, random_state=seed, **kw)
    patterns = enumerate_three_layer(prog.X_design, 2) if kw else enumerate_two_layer(prog.X_design)
    return prog, patterns


@pytest.fixture(scope="module")
def three_layer_tiny():
    return _case(ThreeLayerReLUProgram, "squared", 6)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, GatedReLUProgram])
def test_bounds_sandwich_exact_optimum_two_layer(cls, loss):
    prog, patterns = _case(cls, loss, 8, seed=1)
    exact = CVXPYSolver().solve(prog.with_patterns(patterns)).objective
    for program in (prog, run_strategy("pursuit", prog, CVXPYSolver(), tol=1e-6, random_state=0).program):
        sol = CVXPYSolver().solve(program)
        cert = certificate(program, sol, exact=patterns, random_state=0)
        assert cert.proven
        slack = 1e-6 * abs(exact) if loss == "squared" else 1e-4 * abs(exact)  # exp-cone accuracy
        assert cert.lower_global <= exact + slack
        assert exact <= cert.upper + slack
        assert cert.lower_sampled <= sol.objective + slack
        assert cert.upper == pytest.approx(sol.objective, rel=1e-5)
    # at the pursuit optimum the certificate closes the gap
    assert cert.relative_gap < (1e-5 if loss == "squared" else 1e-3)


def test_bounds_sandwich_exact_optimum_three_layer(three_layer_tiny):
    prog, patterns = three_layer_tiny
    exact = CVXPYSolver().solve(prog.with_patterns(patterns)).objective
    sol = CVXPYSolver().solve(prog)
    cert = certificate(prog, sol, exact=patterns, random_state=0)
    assert cert.lower_global <= exact * (1 + 1e-7) <= cert.upper * (1 + 2e-7)
    assert cert.lower_global <= cert.lower_search * (1 + 1e-9)  # search can only miss atoms
    assert cert.max_violation_exact >= cert.max_violation * (1 - 1e-9)
    res = run_strategy("pursuit", prog, CVXPYSolver(), tol=1e-6, random_state=0)
    cert = certificate(res.program, res.solution, exact=patterns, random_state=0)
    assert cert.lower_global <= exact * (1 + 1e-7)
    # pursuit reaches the optimum over all patterns; the three-layer global bound is looser
    assert res.solution.objective <= exact * (1 + 1e-4)
    assert cert.relative_gap < 1e-3


def test_no_nonconvex_run_below_the_certificate(three_layer_tiny):
    prog, patterns = three_layer_tiny
    cert = certificate(prog, CVXPYSolver().solve(prog), exact=patterns, random_state=0)
    X, y = prog.X_design, prog.Y_np[:, 0]
    for seed, K in [(0, 2), (1, 5), (2, 10)]:
        res = train_three_layer(X, y, n_subnetworks=K, hidden=2, beta=prog.beta, fit_intercept=False, n_starts=2,
                                max_iter=800, lr=2e-2, random_state=seed)
        assert min(res.objectives) >= cert.lower_global - 1e-9
    prog2, patterns2 = _case(TwoLayerReLUProgram, "squared", 8, seed=2)
    cert2 = certificate(prog2, CVXPYSolver().solve(prog2), exact=patterns2, random_state=0)
    for seed, width in [(0, 2), (1, 8), (2, 30)]:
        res = train_two_layer(prog2.X_design, prog2.Y_np[:, 0], width=width, beta=prog2.beta, fit_intercept=False,
                              n_starts=2, max_iter=800, lr=2e-2, random_state=seed)
        assert min(res.objectives) >= cert2.lower_global - 1e-9


def test_multi_output_bound_holds_for_shared_hidden_units():
    """Softmax (C = 3): the trainer's neurons feed every output; the bound combines the
    per-output maxima in the Euclidean norm so it still holds for them."""
    X, y = _tiny(8, seed=3)
    labels = targets_for("softmax", y)
    prog = TwoLayerReLUProgram(X, labels, 4, loss="softmax", beta=0.05, random_state=0)
    cert = certificate(prog, CVXPYSolver().solve(prog), exact=enumerate_two_layer(prog.X_design), random_state=0)
    for seed in range(2):
        res = train_two_layer(prog.X_design, labels, width=10, loss="softmax", beta=prog.beta, fit_intercept=False,
                              n_starts=2, max_iter=800, lr=2e-2, random_state=seed)
        assert min(res.objectives) >= cert.lower_global - 1e-9


def test_table_marks_unproven_numbers():
    X, y = _tiny(8, 4)
    prog = TwoLayerReLUProgram(X, y, 3, beta=0.05, random_state=0)
    sol = CVXPYSolver().solve(prog)
    cert = certificate(prog, sol, exact=False, random_state=0)
    assert isinstance(cert, Certificate)
    assert not cert.proven and cert.lower_global is None and cert.gap is None and cert.lower == -math.inf
    text = str(cert)
    assert "NOT PROVEN" in text and "not available" in text and "upper" in text
    auto = certificate(prog, sol, random_state=0)  # 1-D input with intercept: enumerated by default
    assert enumerable(prog) and auto.proven and "PROVEN" in str(auto)
    assert auto.lower_global <= auto.upper
    with pytest.raises(Exception):
        Certificate.__setattr__(auto, "upper", 0.0)  # frozen


def _noisy_sine_program(cls, n):
    """``cls`` on ``n`` samples of 2 features, ``y = sin(2 x_1)`` plus noise, 4 patterns."""
    r = np.random.default_rng(2)
    X = r.normal(size=(n, 2))
    y = np.sin(2 * X[:, 0]) + 0.1 * r.normal(size=n)
    kw = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    return cls(X, y, 4, beta=0.05, random_state=0, **kw)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_a_solution_of_another_program_certifies_nothing_false(cls):
    # the bound is recomputed from the weights and multipliers, never copied from the
    # Solution: one of a larger beta, or of fewer patterns (embedded into a grown program),
    # carried a lower bound above this program's optimum
    from convexrelu.strategies import embed_solution

    prog = _noisy_sine_program(cls, 14)
    sol = CVXPYSolver().solve(prog)
    grown = grown_program(prog, 6)
    smaller_beta = prog.with_beta(0.01)
    for other, start in ((grown, embed_solution(prog, grown, sol)), (smaller_beta, sol)):
        optimum = CVXPYSolver().solve(other).objective
        assert optimum < sol.lower_bound - 1e-3  # the carried bound would have been false
        cert = certificate(other, start, exact=False, search_starts=4, search_iter=10, random_state=0)
        assert cert.lower_sampled <= optimum * (1 + 1e-7)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_the_solver_bound_given_for_the_same_program_is_kept(cls):
    # an augmented Lagrangian stopped early certifies the bound of its last iterate, tighter
    # than the one recomputed at its repaired point; given as lower_bound (the estimators
    # pass their solve's), lower_sampled is the larger of the two, and still a bound
    from convexrelu.certificates import CERTIFICATE_PROJECTION_ENTRIES
    from convexrelu.duality import dual_lower_bound
    from convexrelu.solvers import AugmentedLagrangian, ConvergenceWarning

    prog = _noisy_sine_program(cls, 24)
    optimum = CVXPYSolver().solve(prog).objective
    with pytest.warns(ConvergenceWarning):
        sol = AugmentedLagrangian(max_iter=1, inner_max_iter=300).solve(prog)
    recomputed = dual_lower_bound(prog, sol.weights, sol.multipliers, project_entries=CERTIFICATE_PROJECTION_ENTRIES)[0]
    assert recomputed < sol.lower_bound <= optimum * (1 + 1e-7)
    options = dict(exact=False, search_starts=4, search_iter=10, random_state=0)
    assert certificate(prog, sol, **options).lower_sampled == pytest.approx(recomputed, rel=1e-12)
    kept = certificate(prog, sol, lower_bound=sol.lower_bound, **options)
    assert kept.lower_sampled == sol.lower_bound
    assert certificate(prog, sol, lower_bound=-math.inf, **options).lower_sampled == pytest.approx(recomputed, rel=1e-12)


def test_weights_alone_are_certified_by_the_best_multipliers():
    # an array has no multipliers: the bound of its dual point alone is the one of the
    # program without cones, far below; the certificate takes the best multipliers of
    # each group instead, which for two layers make the bound at the optimum the optimum
    from convexrelu.duality import dual_lower_bound

    prog = _noisy_sine_program(TwoLayerReLUProgram, 20)
    sol = CVXPYSolver().solve(prog)
    cert = certificate(prog, sol.weights, exact=False, search_starts=4, search_iter=10, random_state=0)
    assert dual_lower_bound(prog, sol.weights)[0] < 0.9 * sol.objective
    assert cert.lower_sampled == pytest.approx(sol.objective, rel=1e-6)
    assert cert.lower_sampled <= sol.objective * (1 + 1e-9)


def test_gated_global_bound_covers_gates_on_faces(monkeypatch):
    """Without an intercept, the gate g = 0 (every unit active) is a pattern of no region
    of four points on a line, and a gated network with it reaches 0.4875 where the best
    over the regions' gates is 0.95: the proven bound must lie below 0.4875 (it was 0.95)."""
    from convexrelu.networks import TwoLayerNetwork

    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = X[:, 0].copy()
    prog = GatedReLUProgram(X, y, enumerate_two_layer(X), beta=0.5, fit_intercept=False)
    cert = certificate(prog, CVXPYSolver().solve(prog), random_state=0)
    net = TwoLayerNetwork([[0.95**0.5]], [[0.95**0.5]], gates=[[0.0]], fit_intercept=False)
    assert net.objective(X, y, "squared", 0.5) == pytest.approx(0.4875)
    assert cert.proven and cert.upper == pytest.approx(0.95)
    assert cert.lower_global <= 0.4875 + 1e-9
    # the faces are enumerated for gated programs without a constant column only (with one,
    # every face's gate is a region's), never for ReLU ones
    import convexrelu.patterns as patterns

    asked = []
    monkeypatch.setattr(patterns, "enumerate_two_layer",
                        lambda X, **kw: asked.append(kw.get("include_faces", False)) or enumerate_two_layer(X, **kw))
    for prog in (GatedReLUProgram(X, y, 3, beta=0.5, random_state=0),
                 GatedReLUProgram(X, y, 3, beta=0.5, random_state=0, fit_intercept=False),
                 TwoLayerReLUProgram(X, y, 3, beta=0.5, random_state=0, fit_intercept=False)):
        certificate(prog, CVXPYSolver().solve(prog), random_state=0, search_starts=4, search_iter=5)
    assert asked == [False, True, False]


def test_has_constant_column():
    assert has_constant_column(np.array([[1.0, 2.0], [3.0, 2.0]]))
    assert not has_constant_column(np.array([[1.0, 0.0], [3.0, 0.0]]))  # zero: no intercept
    assert not has_constant_column(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert not has_constant_column(np.zeros((0, 2)))



def test_a_program_with_every_pattern_gives_its_own_bound_as_the_global_one():
    """patterns="exact" on 1-D data with targets near 1000: the program's bound 3.9166826
    (the network at 3.9166827) was a global bound too, but lower_global said 3.7355413."""
    from convexrelu import ConvexReLURegressor

    rng = np.random.default_rng(11)
    rng.normal(size=(6, 1))
    X = np.sort(rng.uniform(-1, 1, (15, 1)), axis=0)
    y = 1000 + 200 * np.sin(4 * X[:, 0])
    cert = ConvexReLURegressor(depth=2, beta=1e-3, patterns="exact", random_state=0).fit(X, y).certificate_
    assert cert.proven and cert.lower_global == pytest.approx(cert.lower_sampled, rel=1e-12)
    assert (cert.upper - cert.lower_global) / cert.upper < 1e-6


def test_exact_three_layer_patterns_are_proven_beyond_rank_two():
    """A three-layer classifier on 2-D data with an intercept (rank 3) and patterns="exact":
    the program held every pattern, but the certificate re-decided and refused to
    enumerate (rank above 2): not proven."""
    from convexrelu import ConvexReLUClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    y[:2] = [0, 1]
    est = ConvexReLUClassifier(depth=3, hidden=2, loss="logistic", patterns="exact", beta=0.1, random_state=0)
    cert = est.fit(X, y).certificate_
    assert cert.proven and cert.lower_global <= cert.upper + 1e-9


def test_an_input_of_rank_zero_is_enumerated():
    """X = 0 without an intercept: the three-layer enumeration had failed inside numpy."""
    prog = ThreeLayerReLUProgram(np.zeros((5, 1)), np.arange(5.0), 4, hidden=2, beta=0.1, fit_intercept=False,
                                 random_state=0)
    cert = certificate(prog, CVXPYSolver().solve(prog), exact=True, random_state=0)
    assert cert.proven and cert.lower_global == pytest.approx(cert.upper)
