"""The paper's claim on tiny problems: with every activation pattern, the convex program's
optimum is the global optimum of the non-convex training problem.

theory.md, "Two-layer networks" and "Three-layer parallel networks": over all patterns
(exact enumeration of 1-D data with an intercept) no network trained by (projected) Adam
does better than the convex optimum, good restarts get close to it, the recovered network
attains it, and hand-checkable cases ("Duality and certificates": the zero network is
optimal exactly for beta above a threshold; a one-neuron target is fitted exactly as
beta -> 0) agree with the solver.

Every number compared here is printed (``pytest -s``) so that the gaps can be read off.
"""

from functools import lru_cache

import cvxpy as cp
import numpy as np
import pytest

from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu._validation import add_intercept
from convexrelu.nonconvex import train_three_layer, train_two_layer
from convexrelu.patterns import enumerate_three_layer, enumerate_two_layer

SOLVER_RTOL = 1e-6  # convex optimum vs any network: solver precision
# Clarabel at tighter tolerances than its defaults (1e-8): with ~1000 patterns the default
# cone violations (~5e-9 per block) add up to ~3e-6 relative in the recovered network.
TIGHT = dict(tol_feas=1e-10, tol_gap_abs=1e-10, tol_gap_rel=1e-10)


def solve(program):
    return CVXPYSolver(options=TIGHT).solve(program)

REACH_RTOL = 1e-3  # "some restart gets to the convex optimum"
N_STARTS = 20


# --------------------------------------------------------------------------- data and cache
def dataset(kind: str, n: int):
    """1-D regression problems (raw X of shape (n, 1); the intercept is added by the programs)."""
    rng = np.random.default_rng(n)
    X = np.sort(rng.uniform(-1, 1, n))[:, None]
    x = X[:, 0]
    if kind == "sin":
        y = np.sin(3 * x) + 0.3 * rng.standard_normal(n)
    elif kind == "rand":
        y = rng.standard_normal(n)
    elif kind == "teach":  # a small three-layer teacher plus noise
        y = np.maximum(np.maximum(x - 0.2, 0) - 0.5 * np.maximum(-x - 0.3, 0) + 0.1, 0) + 0.05 * rng.standard_normal(n)
    elif kind == "abs":
        y = np.abs(x) + 0.05 * rng.standard_normal(n)
    else:
        raise ValueError(kind)
    return X, y


@lru_cache(maxsize=None)
def two_layer_patterns(kind, n):
    X, _ = dataset(kind, n)
    return enumerate_two_layer(add_intercept(X))


@lru_cache(maxsize=None)
def three_layer_patterns(kind, n, hidden=2):
    X, _ = dataset(kind, n)
    return enumerate_three_layer(add_intercept(X), hidden)


def rel(a, b):
    return (a - b) / abs(b)


def check_recovery(program, solution, X, y, beta, objective_rtol=1e-6):
    """The recovered network attains the convex objective and predicts ``program.predict``."""
    net = program.recover(solution.weights)
    value = net.objective(X, y, "squared", beta)
    assert abs(rel(value, solution.objective)) <= objective_rtol, (value, solution.objective)
    scale = max(1.0, np.max(np.abs(y)))
    np.testing.assert_allclose(net.predict(X), program.predict(solution.weights), rtol=0, atol=1e-6 * scale)
    return net


# --------------------------------------------------------------------------- three layers
def three_layer_case(kind, n, beta, K=10, max_iter=3000):
    X, y = dataset(kind, n)
    patterns = three_layer_patterns(kind, n)
    program = ThreeLayerReLUProgram(X, y, patterns, hidden=2, beta=beta)
    assert program.X_design.shape == (n, 2)
    solution = solve(program)
    assert solution.converged and solution.constraint_violation <= 1e-7
    res = train_three_layer(X, y, n_subnetworks=K, hidden=2, beta=beta, n_starts=N_STARTS, max_iter=max_iter,
                            tol=1e-9, random_state=0)
    objectives = np.sort(res.objectives)
    n_reach = int(np.sum(objectives <= solution.objective * (1 + REACH_RTOL)))
    print(f"\nthree-layer {kind} n={n} beta={beta:g} K={K}: |C|={len(patterns)}, convex {solution.objective:.8f} "
          f"(lower bound {solution.lower_bound:.8f}), best non-convex {objectives[0]:.8f} "
          f"(rel gap {rel(objectives[0], solution.objective):.2e}, median {np.median(objectives):.6f}), "
          f"{n_reach}/{N_STARTS} restarts within {REACH_RTOL:g}")
    return X, y, program, solution, res, n_reach


# (kind, n, beta, a restart must reach the optimum)
THREE_LAYER_CASES = [
    ("abs", 5, 1e-2, True),
    ("teach", 6, 1e-1, True),
    ("sin", 6, 1e-3, False),
    ("abs", 7, 1e-1, True),
    ("sin", 8, 1e-2, False),
]
THREE_LAYER_GRID = [
    (kind, n, beta) for kind in ("sin", "rand", "teach", "abs") for n in (5, 6, 7, 8) for beta in (1e-3, 1e-2, 1e-1)
]


def _assert_three_layer(kind, n, beta, must_reach, max_iter=3000):
    X, y, program, solution, res, n_reach = three_layer_case(kind, n, beta, max_iter=max_iter)
    # no network does better than the convex optimum over all patterns
    assert solution.objective <= res.objective * (1 + SOLVER_RTOL)
    assert solution.lower_bound <= res.objective
    # every trained network is feasible for P3
    assert np.all(res.network.first_layer_norms() <= 1 + 1e-12)
    check_recovery(program, solution, X, y, beta)
    if must_reach:
        assert n_reach >= 1, f"no restart within {REACH_RTOL} of the convex optimum"


@pytest.mark.parametrize("kind,n,beta,must_reach", THREE_LAYER_CASES)
def test_three_layer_convex_optimum_is_global(kind, n, beta, must_reach):
    # the lower bound holds for any network: only the cases that must reach need long runs
    _assert_three_layer(kind, n, beta, must_reach, max_iter=3000 if must_reach else 1500)


@pytest.mark.slow
@pytest.mark.parametrize("kind,n,beta", THREE_LAYER_GRID)
def test_three_layer_convex_optimum_is_global_grid(kind, n, beta):
    _assert_three_layer(kind, n, beta, must_reach=False)


def test_three_layer_theory_md_check():
    """theory.md's check (n = 6, m1 = 2, beta = 0.05, 20 projected-Adam runs with K = 10
    and K = 3) on our own 1-D data: convex optimum = recovered network <= best runs."""
    beta = 0.05
    X = np.linspace(-1, 1, 6)[:, None]
    y = np.array([0.3, -0.4, 0.5, 0.9, -0.2, 0.6])
    patterns = enumerate_three_layer(add_intercept(X), 2)
    program = ThreeLayerReLUProgram(X, y, patterns, hidden=2, beta=beta)
    solution = solve(program)
    net = check_recovery(program, solution, X, y, beta)
    best = {}
    for K in (10, 3):
        res = train_three_layer(X, y, n_subnetworks=K, hidden=2, beta=beta, n_starts=N_STARTS, max_iter=3000,
                                tol=1e-9, random_state=0)
        best[K] = res.objective
        assert solution.objective <= res.objective * (1 + SOLVER_RTOL)
    print(f"\ntheory.md-style check: |C|={len(patterns)}, convex {solution.objective:.6f}, recovered "
          f"{net.objective(X, y, 'squared', beta):.6f}, best of {N_STARTS} runs {best[10]:.6f} (K=10), "
          f"{best[3]:.6f} (K=3)")


# --------------------------------------------------------------------------- two layers
TWO_LAYER_CASES = [
    ("sin", 5, 1e-1, True),
    ("rand", 5, 1e-2, True),
    ("sin", 8, 1e-1, True),
    ("rand", 12, 1e-1, True),
    ("sin", 8, 1e-3, False),
    ("rand", 8, 1e-2, False),
]


@pytest.mark.parametrize("kind,n,beta,must_reach", TWO_LAYER_CASES)
def test_two_layer_relu_convex_optimum_is_global(kind, n, beta, must_reach):
    X, y = dataset(kind, n)
    patterns = two_layer_patterns(kind, n)
    assert len(patterns) == 2 * n - 1  # 1-D with intercept: 2n regions, all-zero dropped
    program = TwoLayerReLUProgram(X, y, patterns, beta=beta)
    solution = solve(program)
    check_recovery(program, solution, X, y, beta)
    width = n + 1  # >= m* (at most n + 1)
    res = train_two_layer(X, y, width=width, beta=beta, n_starts=N_STARTS, max_iter=3000 if must_reach else 1500,
                          tol=1e-9, random_state=0)
    objectives = np.sort(res.objectives)
    n_reach = int(np.sum(objectives <= solution.objective * (1 + REACH_RTOL)))
    print(f"\ntwo-layer ReLU {kind} n={n} beta={beta:g} width={width}: P={len(patterns)}, convex "
          f"{solution.objective:.8f}, best non-convex {objectives[0]:.8f} (rel gap "
          f"{rel(objectives[0], solution.objective):.2e}), {n_reach}/{N_STARTS} restarts within {REACH_RTOL:g}")
    assert solution.objective <= res.objective * (1 + SOLVER_RTOL)
    assert solution.lower_bound <= res.objective
    if must_reach:
        assert n_reach >= 1


@pytest.mark.parametrize("kind,n,beta", [("sin", 8, 1e-2), ("rand", 5, 1e-1), ("rand", 8, 1e-1)])
def test_gated_relu_with_fixed_gates_reaches_the_convex_optimum(kind, n, beta):
    """With gates = the enumerated generators (one neuron per pattern), the non-convex gated
    network is the group lasso reparametrised (u a with penalty (||u||^2 + a^2)/2): Adam
    reaches the convex optimum of GatedReLUProgram and never goes below it."""
    X, y = dataset(kind, n)
    patterns = two_layer_patterns(kind, n)
    program = GatedReLUProgram(X, y, patterns, beta=beta)
    solution = solve(program)
    check_recovery(program, solution, X, y, beta)
    res = train_two_layer(X, y, width=len(patterns), gates=patterns.generators, beta=beta, n_starts=5,
                          max_iter=3000, lr=0.1, schedule="cosine", tol=1e-11, random_state=0)
    gap = rel(res.objective, solution.objective)
    print(f"\ngated {kind} n={n} beta={beta:g}: convex {solution.objective:.10f}, best non-convex "
          f"{res.objective:.10f} (rel gap {gap:.2e})")
    np.testing.assert_array_equal(res.network.gates, patterns.generators)
    assert solution.objective <= res.objective * (1 + SOLVER_RTOL)
    assert gap <= 1e-4


# --------------------------------------------------------------------------- hand-checkable
def zero_threshold_exact(X_design, y, patterns):
    """beta* = max_i max_{u in K_{D_i}, ||u|| <= 1} |y^T D_i X u| (one small SOCP per pattern
    and sign): the dual constraint of theory.md, "Duality and certificates", at v = -y.

    Returns beta* and the maximising atom g = D_i X u (scaled so that y^T g = beta*).
    """
    best, atom = 0.0, None
    for i in range(len(patterns)):
        D = patterns.masks[:, i]
        DX = X_design * D[:, None]
        S = (2.0 * D - 1.0)[:, None] * X_design
        for sign in (1.0, -1.0):
            u = cp.Variable(X_design.shape[1])
            prob = cp.Problem(cp.Maximize(sign * (y @ DX) @ u), [S @ u >= 0, cp.norm(u, 2) <= 1])
            prob.solve(solver="CLARABEL")
            if prob.value is not None and prob.value > best:
                best, atom = float(prob.value), sign * (DX @ u.value)
    return best, atom


def test_two_layer_zero_network_threshold():
    """Zero is optimal iff |y^T g| <= beta for every atom g (squared loss, v = grad l(0) = -y)."""
    rng = np.random.default_rng(0)
    X = np.sort(rng.uniform(-1, 1, 6))[:, None]
    y = rng.standard_normal(6)
    Xd = add_intercept(X)
    patterns = enumerate_two_layer(Xd)
    beta_star, g = zero_threshold_exact(Xd, y, patterns)
    zero_value = 0.5 * float(y @ y)
    base = TwoLayerReLUProgram(X, y, patterns, beta=beta_star)
    loose = base.zero_threshold()  # max_i ||X^T D_i y||: drops the cone constraints
    assert loose >= 1.2 * beta_star  # here the cones matter

    for beta in (1.02 * beta_star, 0.5 * (beta_star + loose)):  # above the exact threshold: zero
        sol = solve(base.with_beta(beta))
        assert np.max(np.linalg.norm(sol.weights, axis=0)) <= 1e-6
        assert sol.objective == pytest.approx(zero_value, rel=1e-7)
    # the non-convex problem cannot beat the zero network there either
    res = train_two_layer(X, y, width=7, beta=1.02 * beta_star, n_starts=5, max_iter=1000, random_state=0)
    assert res.objective >= zero_value * (1 - 1e-6)

    below = base.with_beta(0.98 * beta_star)
    sol = solve(below)
    # moving along the best atom alone lowers the objective by (y^T g - beta)^2 / (2 ||g||^2)
    decrease = (beta_star - 0.98 * beta_star) ** 2 / (2 * float(g @ g))
    assert sol.objective <= zero_value - decrease + 1e-8
    assert np.max(np.linalg.norm(sol.weights, axis=0)) > 1e-3
    print(f"\nzero threshold: beta* = {beta_star:.8f} (unconstrained bound {loose:.8f}); "
          f"objective above {zero_value:.8f}, below {sol.objective:.8f} (<= {zero_value - decrease:.8f})")


def test_two_layer_one_neuron_target_is_fitted_as_beta_vanishes():
    """y = (X u*)_+: the single neuron costs beta ||u*|| in (C2) / P2, so the optimum is at
    most that and the residual at most sqrt(2 beta ||u*||)."""
    X = np.linspace(-1, 1, 7)[:, None]
    u_star = np.array([1.5, -0.3])
    y = np.maximum(add_intercept(X) @ u_star, 0)
    patterns = enumerate_two_layer(add_intercept(X))
    errors, convex = [], {}
    for beta in (1e-2, 1e-3, 1e-4):
        program = TwoLayerReLUProgram(X, y, patterns, beta=beta)
        sol = solve(program)
        convex[beta] = sol.objective
        bound = beta * np.linalg.norm(u_star)
        assert sol.objective <= bound * (1 + 1e-6) + 1e-10
        net = check_recovery(program, sol, X, y, beta)
        errors.append(np.linalg.norm(net.predict(X)[:, 0] - y))
        assert errors[-1] <= np.sqrt(2 * bound) + 1e-8
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 0.02 * errors[0] and errors[2] < 1e-3
    res = train_two_layer(X, y, width=3, beta=1e-3, n_starts=5, max_iter=3000, random_state=0)
    assert convex[1e-3] <= res.objective * (1 + SOLVER_RTOL) and res.objective <= 1e-3 * np.linalg.norm(u_star) * 1.01
    print(f"\none-neuron two-layer target: residuals {errors}, non-convex objective {res.objective:.6e} "
          f"(convex {convex[1e-3]:.6e}, bound {1e-3 * np.linalg.norm(u_star):.3e})")


def test_three_layer_one_subnetwork_target_is_fitted_as_beta_vanishes():
    """y = ((X W1)_+ w2)_+ with ||W1||_F = 1 (a hat function): P3 costs at most beta ||w2||."""
    X = np.linspace(-1, 1, 7)[:, None]
    W1 = np.array([[1.0, 1.0], [0.3, -0.2]])  # neurons relu(x + 0.3), relu(x - 0.2)
    w2 = np.array([1.0, -2.0])
    scale = np.linalg.norm(W1)
    W1, w2 = W1 / scale, w2 * scale
    y = np.maximum(np.maximum(add_intercept(X) @ W1, 0) @ w2, 0)
    assert y.max() > 0.3 and y[0] == 0 and y[-1] == 0
    patterns = enumerate_three_layer(add_intercept(X), 2)
    errors, convex = [], {}
    for beta in (1e-2, 1e-3, 1e-4):
        program = ThreeLayerReLUProgram(X, y, patterns, hidden=2, beta=beta)
        sol = solve(program)
        convex[beta] = sol.objective
        bound = beta * np.linalg.norm(w2)
        assert sol.objective <= bound * (1 + 1e-6) + 1e-10
        net = check_recovery(program, sol, X, y, beta)
        errors.append(np.linalg.norm(net.predict(X)[:, 0] - y))
        assert errors[-1] <= np.sqrt(2 * bound) + 1e-8
    # the residual shrinks like beta (fixed active set), not just like sqrt(beta)
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 0.02 * errors[0] and errors[2] < 2e-3
    res = train_three_layer(X, y, n_subnetworks=4, hidden=2, beta=1e-3, n_starts=10, max_iter=3000, random_state=0)
    assert convex[1e-3] <= res.objective * (1 + SOLVER_RTOL) and res.objective <= 1e-3 * np.linalg.norm(w2) * 1.05
    print(f"\none-subnetwork three-layer target: residuals {errors}, non-convex objective {res.objective:.6e} "
          f"(convex {convex[1e-3]:.6e}, bound {1e-3 * np.linalg.norm(w2):.3e})")
