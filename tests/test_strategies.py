"""Pattern strategies (convexrelu.strategies): the seeded objective is never above the
trained network's, pursuit reaches the exact optimum of tiny enumerable problems, and
weights move between pattern sets without changing the model."""

import logging
import time
import warnings

import numpy as np
import pytest
import torch

from convexrelu import ConvergenceWarning, CVXPYSolver, GatedReLUProgram, Solution, Solver, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.duality import dual_lower_bound
from convexrelu.nonconvex import train_three_layer, train_two_layer
from convexrelu.patterns import enumerate_three_layer, enumerate_two_layer, sample_three_layer
from convexrelu.strategies import (
    StrategyResult,
    embed_solution,
    embed_weights,
    network_objective,
    network_patterns,
    network_weights,
    run_strategy,
    solve_from,
)
from conftest import grown_program, planted_regression, targets_for

TRAIN = dict(max_iter=300)


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(n=6, seed=0):
    r = np.random.default_rng(seed)
    x = np.sort(r.uniform(-2, 2, n))
    return x[:, None], np.sin(2 * x) + 0.1 * r.standard_normal(n)


def _program(depth, loss, n=30, seed=0, n_patterns=5, beta=0.1):
    X, y = planted_regression(n=n, d=3, seed=seed)
    if depth == 3:
        return ThreeLayerReLUProgram(X, targets_for(loss, y), n_patterns, hidden=2, loss=loss, beta=beta,
                                     random_state=seed)
    return TwoLayerReLUProgram(X, targets_for(loss, y), n_patterns, loss=loss, beta=beta, random_state=seed)


# ----------------------------------------------------------------------------- seeded
def test_seeded_with_several_outputs_says_when_its_trained_network_is_better():
    """The convex programs give each hidden unit one output: with the softmax loss on two
    classes the trained seed network (4.598) beat the convex optimum over its patterns
    (5.802), which the fit returned silently. It now warns."""
    rng = np.random.RandomState(7)
    X = rng.randn(30, 2)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    prog = TwoLayerReLUProgram(X, np.eye(2)[y], 10, loss="softmax", beta=0.1, random_state=0)
    with pytest.warns(UserWarning, match=r"seeded: the trained network's objective .* is below the convex optimum "
                                         r"over its patterns \(certified at least .*with 2 outputs.*the squared or "
                                         r"logistic loss") as caught:
        res = run_strategy("seeded", prog, CVXPYSolver(), n_patterns=10, n_starts=2, random_state=0)
    assert res.trained_objective < res.solution.lower_bound <= res.objective
    assert [w.filename for w in caught if issubclass(w.category, UserWarning)] == [__file__]  # (the caller's line)
    # a convex solve stopped early certifies little: no claim about its optimum
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stopped = run_strategy("seeded", prog, CVXPYSolver(max_iter=1), n_patterns=10, n_starts=2, random_state=0)
    assert not stopped.solution.converged
    assert not [w for w in caught if "is below the convex optimum" in str(w.message)]


@pytest.mark.parametrize("depth", [2, 3])
def test_seeded_trains_in_the_targets_units(depth):
    """Targets and beta times 2^-20 (Adam at its step size, on such targets, had thousands
    of times the objective): the seeding network is trained in the targets' units and
    scaled back, so the strategy gives what it gives on the program already in those
    units (the same numbers as targets): the same patterns, the trained and convex
    objectives ``unit^2`` times."""
    X, y = planted_regression(n=30, d=3, seed=0)
    extra = {"hidden": 2} if depth == 3 else {}
    cls = ThreeLayerReLUProgram if depth == 3 else TwoLayerReLUProgram
    tiny = cls(X, y * 2.0**-20, 5, beta=0.1 * 2.0**-20, random_state=0, **extra)
    unit = tiny.target_unit()
    assert unit < 2.0**-17
    same = cls(X, y * 2.0**-20 / unit, 5, beta=0.1 * 2.0**-20 / unit, random_state=0, **extra)
    assert same.target_unit() == 1.0
    kw = dict(n_patterns=6, n_starts=2, random_state=0, train_kwargs=TRAIN)
    res, ref = run_strategy("seeded", tiny, CVXPYSolver(), **kw), run_strategy("seeded", same, CVXPYSolver(), **kw)
    a, b = res.program.patterns, ref.program.patterns
    fields = ("second", "first", "signs", "owner") if depth == 3 else ("masks",)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)
    assert res.trained_objective == pytest.approx(unit**2 * ref.trained_objective, rel=1e-10)
    assert res.objective == pytest.approx(unit**2 * ref.objective, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("depth", [2, 3])
def test_seeded_never_above_trained(depth, loss, seed):
    prog = _program(depth, loss, seed=seed)
    res = run_strategy("seeded", prog, CVXPYSolver(), n_patterns=6, n_starts=2, random_state=seed, train_kwargs=TRAIN)
    assert isinstance(res, StrategyResult)
    assert res.trained_objective is not None
    assert res.objective <= res.trained_objective * (1 + 1e-12)
    assert len(res.program.patterns) > len(prog.patterns)
    # the recovered network reproduces the objective, and is a real network of the architecture
    assert network_objective(res.program, res.network) == pytest.approx(res.objective, rel=1e-5)
    assert [h["stage"] for h in res.history] == ["train", "solve"]


@pytest.mark.parametrize("depth", [2, 3])
def test_trained_network_maps_to_a_feasible_point(depth):
    prog = _program(depth, "squared", seed=4)
    X = prog.X_design
    if depth == 3:
        net = train_three_layer(X, prog.Y_np[:, 0], n_subnetworks=5, hidden=2, beta=prog.beta, fit_intercept=False,
                                max_iter=200, random_state=0).network
    else:
        net = train_two_layer(X, prog.Y_np[:, 0], width=5, beta=prog.beta, fit_intercept=False, max_iter=200,
                              random_state=0).network
    grown = prog.with_patterns(prog.patterns.union(network_patterns(prog, net)))
    Q = network_weights(grown, net)
    assert grown.violation(Q) <= 1e-12
    np.testing.assert_allclose(grown.predict(Q), net.predict(X), atol=1e-10)
    assert grown.objective(Q) <= network_objective(prog, net) + 1e-12
    with pytest.raises(ValueError, match="not in the program"):
        network_weights(prog.with_patterns(prog.patterns.subset([0])), net)


def test_gated_program_seeded_by_relu_network():
    X, y = planted_regression(n=30, d=3, seed=5)
    prog = GatedReLUProgram(X, y, 5, beta=0.1, random_state=0)
    res = run_strategy("seeded", prog, CVXPYSolver(), n_patterns=6, n_starts=2, random_state=0, train_kwargs=TRAIN)
    assert res.objective <= res.trained_objective * (1 + 1e-12)


class _ZeroSolver(Solver):
    """Returns Q = 0 whatever the start: a solver worse than its warm start."""

    name = "zero"

    def solve(self, program, init=None):
        Q = np.zeros(program.shape)
        # a repair account, as the constrained solvers give one, of the point it returns
        info = {"objective_before_repair": 0.5, "violation_before_repair": 1e-3, "repair": {"rounds": 1}}
        return Solution(Q, program.objective(Q), False, "gave up", multipliers=(), info=info)


def test_solve_from_returns_a_better_feasible_start():
    prog = _program(3, "squared", seed=6)
    res = run_strategy("seeded", prog, _ZeroSolver(), n_patterns=5, n_starts=1, random_state=0, train_kwargs=TRAIN)
    assert res.solution.info["returned"] == "init"
    # the solver's repair account described the point not returned: dropped
    assert not {"objective_before_repair", "violation_before_repair", "repair"} & set(res.solution.info)
    assert res.objective <= res.trained_objective * (1 + 1e-12)
    infeasible = -np.ones(prog.shape)  # violates the cones: never returned
    assert solve_from(prog, _ZeroSolver(), infeasible).status == "gave up"


# ----------------------------------------------------------------------------- embedding
def test_embed_weights_across_column_layouts():
    """A slab-layout three-layer program grown by patterns with fewer pairs (the union is
    irregular: consecutive layout) and back: the blocks are found by key."""
    X, y = planted_regression(n=25, d=3, seed=7)
    prog = ThreeLayerReLUProgram(X, y, 6, beta=0.1, random_state=0, hidden=2)
    grown = prog.with_patterns(prog.patterns.union(sample_three_layer(prog.X_design, 5, 1, random_state=1)))
    assert prog.operator.group_layout == "slab" and grown.operator.group_layout != "slab"
    sol = CVXPYSolver().solve(prog)
    Q = embed_weights(prog, grown, sol.weights)
    np.testing.assert_allclose(grown.predict(Q), prog.predict(sol.weights), atol=1e-12)
    assert grown.objective(Q) == pytest.approx(sol.objective, rel=1e-12)
    np.testing.assert_allclose(embed_weights(grown, prog, Q), sol.weights)


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram])
def test_embed_weights_keeps_the_model(cls):
    X, y = planted_regression(n=25, d=3, seed=7)
    Y = np.column_stack([y, -y])  # two outputs: the layouts interleave outputs and signs
    kw = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, Y, 6, beta=0.1, random_state=0, **kw)
    sol = CVXPYSolver().solve(prog)
    grown = grown_program(prog, 7)
    Q = embed_weights(prog, grown, sol.weights)
    assert Q.shape == grown.shape
    np.testing.assert_allclose(grown.predict(Q), prog.predict(sol.weights), atol=1e-12)
    assert grown.objective(Q) == pytest.approx(sol.objective, rel=1e-12)
    assert grown.violation(Q) <= prog.violation(sol.weights) + 1e-12
    # and back: the old blocks are found again
    np.testing.assert_allclose(embed_weights(grown, prog, Q), sol.weights)
    # multipliers follow their blocks and groups; new ones are zero
    warm = embed_solution(prog, grown, sol)
    # a starting point of the grown program, not its solution: no bound, not converged
    assert warm.lower_bound == -np.inf and not warm.converged and warm.status == "embedded"
    assert [m.shape for m in warm.multipliers] == list(grown.operator.constraint_shapes)
    np.testing.assert_allclose(warm.weights, Q)
    for old, new in zip(sol.multipliers, warm.multipliers):
        assert np.sum(new) == pytest.approx(np.sum(old), rel=1e-12)
    with warnings.catch_warnings():  # Clarabel at 1e-9 may say 'optimal_inaccurate': the bound is all we need
        warnings.simplefilter("ignore", ConvergenceWarning)
        optimum = CVXPYSolver().solve(grown).objective
    assert dual_lower_bound(grown, warm.weights, warm.multipliers)[0] <= optimum + 1e-9


# ----------------------------------------------------------------------------- pursuit
@pytest.fixture(scope="module")
def three_layer_exact():
    X, y = _tiny(6, seed=0)
    prog = ThreeLayerReLUProgram(X, y, 3, hidden=2, beta=0.05, random_state=0)
    full = prog.with_patterns(enumerate_three_layer(prog.X_design, 2))
    return prog, CVXPYSolver().solve(full).objective


@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, GatedReLUProgram])
@pytest.mark.parametrize("seed", [0, 1])
def test_pursuit_reaches_exact_optimum_two_layer(cls, seed):
    X, y = _tiny(8, seed)
    prog = cls(X, y, 2, beta=0.05, random_state=seed)
    exact = CVXPYSolver().solve(prog.with_patterns(enumerate_two_layer(prog.X_design))).objective
    res = run_strategy("pursuit", prog, CVXPYSolver(), tol=1e-6, random_state=seed)
    assert res.converged
    assert res.objective == pytest.approx(exact, rel=1e-4)
    assert res.objective >= exact * (1 - 1e-6)  # the restriction is never below the exact optimum


def test_pursuit_reaches_exact_optimum_three_layer(three_layer_exact, caplog):
    prog, exact = three_layer_exact
    with caplog.at_level(logging.INFO, logger="convexrelu.strategies"):
        res = run_strategy("pursuit", prog, CVXPYSolver(), tol=1e-6, random_state=0)
    assert res.converged
    assert res.objective == pytest.approx(exact, rel=1e-4)
    assert any("pursuit round 1" in r.getMessage() for r in caplog.records)
    h = res.history
    assert h[0]["round"] == 0 and h[0]["max_violation"] is None
    assert h[1]["max_violation"] > 1 and h[-1]["max_violation"] <= 1 + 1e-6
    assert all(a["objective"] >= b["objective"] - 1e-9 for a, b in zip(h, h[1:]))  # monotone
    assert [e["n_patterns"] for e in h] == sorted(e["n_patterns"] for e in h)
    assert all({"round", "objective", "n_patterns", "max_violation", "time"} <= set(e) for e in h)


def test_seeded_plus_pursuit_at_most_seeded(three_layer_exact):
    prog, exact = three_layer_exact
    seeded = run_strategy("seeded", prog, CVXPYSolver(), n_patterns=4, n_starts=2, random_state=0, train_kwargs=TRAIN)
    both = run_strategy("seeded+pursuit", prog, CVXPYSolver(), n_patterns=4, n_starts=2, random_state=0,
                        train_kwargs=TRAIN, tol=1e-6)
    assert both.objective <= seeded.objective * (1 + 1e-9)
    assert both.objective == pytest.approx(exact, rel=1e-4)
    assert both.trained_objective == pytest.approx(seeded.trained_objective)


def test_pursuit_budgets():
    X, y = planted_regression(n=40, d=3, seed=8)
    prog = ThreeLayerReLUProgram(X, y, 3, hidden=2, beta=0.01, random_state=0)
    res = run_strategy("pursuit", prog, CVXPYSolver(), n_patterns=4, patterns_per_round=3, random_state=0,
                       search_starts=16, search_iter=30)
    assert len(res.program.patterns) <= len(prog.patterns) + 4
    res = run_strategy("pursuit", prog, CVXPYSolver(), max_rounds=1, patterns_per_round=2, random_state=0,
                       search_starts=16, search_iter=30)
    assert len(res.history) == 2 and len(res.program.patterns) <= len(prog.patterns) + 2
    res = run_strategy("pursuit", prog, CVXPYSolver(), time_budget=0.0, random_state=0)
    assert len(res.history) == 1 and len(res.program.patterns) == len(prog.patterns)


class _TimedSolver(CVXPYSolver):
    """CVXPY, recording the time limit of every solve it runs."""

    limits: list = []

    def solve(self, program, init=None):
        type(self).limits.append(self.max_time)
        return super().solve(program, init)


@pytest.mark.parametrize("name", ["sample", "seeded", "seeded+pursuit"])
def test_max_time_gives_every_solve_the_time_left(name):
    prog = _program(2, "squared", seed=3)
    _TimedSolver.limits = []
    start = time.perf_counter()
    res = run_strategy(name, prog, _TimedSolver(), max_time=60.0, n_patterns=4, n_starts=1, random_state=0,
                       train_kwargs=TRAIN, max_rounds=2, search_starts=8, search_iter=20)
    took = time.perf_counter() - start
    limits = _TimedSolver.limits
    assert len(limits) == len(res.history) - (res.history[-1]["stage"] == "search") - (name != "sample")
    # each solve got what was left of the 60 s when it started: less than 60, and less and less
    assert all(0 < lim < 60.0 for lim in limits) and limits == sorted(limits, reverse=True)
    assert limits[0] > 60.0 - took
    # the solver's own smaller limit wins; the caller's solver is left unchanged
    _TimedSolver.limits = []
    own = _TimedSolver(max_time=5.0)
    run_strategy("sample", prog, own, max_time=60.0)
    assert _TimedSolver.limits == [5.0] and own.max_time == 5.0


def test_max_time_gives_the_training_its_share():
    """The seeded training gets at most SEED_TRAIN_SHARE of the time (its own max_time),
    the convex solve what is left after it; a trainer's own smaller limit is kept."""
    from convexrelu.strategies import SEED_TRAIN_SHARE

    prog = _program(2, "squared", seed=5)
    seen = []

    def trainer(X, y, **kw):
        seen.append(kw["max_time"])
        return train_two_layer(X, y, **kw)

    _TimedSolver.limits = []
    start = time.perf_counter()
    run_strategy("seeded", prog, _TimedSolver(), max_time=40.0, n_patterns=4, n_starts=1, random_state=0,
                 train_kwargs=TRAIN, trainer=trainer)
    assert len(seen) == 1 and SEED_TRAIN_SHARE * 40.0 - (time.perf_counter() - start) < seen[0] <= SEED_TRAIN_SHARE * 40.0
    assert len(_TimedSolver.limits) == 1 and _TimedSolver.limits[0] < 40.0
    seen.clear()
    run_strategy("seeded", prog, _TimedSolver(), max_time=40.0, n_patterns=4, n_starts=1, random_state=0,
                 train_kwargs=dict(TRAIN, max_time=3.0), trainer=trainer)
    assert seen == [3.0]


def test_max_time_spent_keeps_the_seeded_guarantee():
    """With no time left for the convex solve, it stops at once (status "max_time", a
    warning), and the result is still no worse than the trained network."""
    prog = _program(2, "squared", seed=4)
    with pytest.warns(ConvergenceWarning, match="max_time"):
        res = run_strategy("seeded", prog, "auglag", max_time=1e-6, n_patterns=4, n_starts=1, random_state=0,
                           train_kwargs=TRAIN)
    assert res.solution.status == "max_time" and res.solution.iterations <= 1
    assert res.objective <= res.trained_objective * (1 + 1e-12)


def test_max_time_validation():
    prog = _program(2, "squared")
    for bad in (0, -1.0, float("nan"), float("inf"), "10"):
        with pytest.raises(ValueError, match="max_time: expected a positive number of seconds"):
            run_strategy("sample", prog, CVXPYSolver(), max_time=bad)
    with pytest.raises(ValueError, match="max_time: the solver _ZeroSolver has no time limit"):
        run_strategy("seeded", prog, _ZeroSolver(), max_time=10.0)


def test_sample_and_exact():
    X, y = _tiny(8, 0)
    prog = TwoLayerReLUProgram(X, y, 3, beta=0.05, random_state=0)
    sample = run_strategy("sample", prog, CVXPYSolver())
    assert sample.program is prog and sample.objective == pytest.approx(CVXPYSolver().solve(prog).objective)
    exact = run_strategy("exact", prog, CVXPYSolver())
    assert len(exact.program.patterns) == len(enumerate_two_layer(prog.X_design))
    assert exact.objective <= sample.objective * (1 + 1e-8)
    with pytest.raises(ValueError, match="name"):
        run_strategy("random", prog)


def test_a_network_with_hyperplanes_through_samples_maps_to_its_own_patterns():
    """Trained networks put first-layer hyperplanes through samples (pre-activations at
    rounding level, 1e-17): the masks of network_patterns and those network_weights maps
    the blocks to must come from the same sums, or a pattern of the network is missing
    from the program grown with its own patterns (breast cancer, n=200: 3 masks
    differed, and the seeded strategy raised)."""
    from convexrelu.networks import ThreeLayerNetwork

    r = np.random.default_rng(0)
    X = r.standard_normal((60, 31))
    prog = ThreeLayerReLUProgram(X, r.standard_normal(60), 4, hidden=3, beta=1.0, random_state=0)
    Xd = prog.X_design
    K, m1 = 40, 3
    W1 = r.standard_normal((K, Xd.shape[1], m1))
    for k in range(K):  # every neuron's hyperplane through a sample: x_r^T w at rounding level
        for j in range(m1):
            x = Xd[r.integers(60)]
            W1[k, :, j] -= (x @ W1[k, :, j]) / (x @ x) * x
    W1 /= np.linalg.norm(W1, axis=(1, 2), keepdims=True)
    net = ThreeLayerNetwork(W1, r.standard_normal((K, m1)), r.standard_normal((K, 1)), fit_intercept=False)
    grown = prog.with_patterns(prog.patterns.union(network_patterns(prog, net)))
    Q = network_weights(grown, net)  # (raised: a pattern of the network not in the program)
    np.testing.assert_allclose(grown.predict(Q)[:, 0], net.predict(Xd)[:, 0], atol=1e-9)


def test_pursuit_does_not_claim_convergence_after_an_unfinished_solve():
    """A solve stopped at max_iter=2: the search found atoms 412 times beta, all of patterns
    the program had, and pursuit reported converged (the exact optimum is about 0.4, its
    objective 19.24)."""
    from convexrelu.solvers import ADMM

    rng = np.random.default_rng(5)
    X = np.sort(rng.uniform(-2, 2, (12, 1)), axis=0)
    prog = TwoLayerReLUProgram(X, np.sin(3 * X[:, 0]), 20, beta=0.05, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = run_strategy("pursuit", prog, ADMM(max_iter=2), random_state=0)
    assert res.history[-1]["max_violation"] > 10 and not res.converged


@pytest.mark.parametrize("kwargs, match", [
    (dict(tol=float("nan")), "tol"), (dict(search_starts=0), "search_starts"), (dict(n_patterns=-1), "n_patterns"),
    (dict(patterns_per_round=0), "patterns_per_round"), (dict(max_rounds=-1), "max_rounds"),
    (dict(time_budget=-1.0), "time_budget"), (dict(hidden=0), "hidden"), (dict(random_state="x"), "random_state"),
])
def test_run_strategy_checks_its_settings(kwargs, match):
    prog = TwoLayerReLUProgram(*planted_regression(n=12, d=1), 4, beta=0.1, random_state=0)
    with pytest.raises((ValueError, TypeError), match=match):
        run_strategy("pursuit", prog, CVXPYSolver(), **kwargs)
