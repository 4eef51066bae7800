"""Atom search (convexrelu.search): the local search finds the exact maximum of
|v^T g| on exactly enumerable problems, the exact bound is a valid upper bound, and the
candidates it returns are real atoms with the values it reports."""

import numpy as np
import pytest
import torch

from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.patterns import enumerate_three_layer, enumerate_two_layer
from convexrelu.search import (
    dual_point,
    exact_atom_max,
    pattern_keys,
    search_atoms,
    search_program,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n, seed=0):
    r = np.random.default_rng(seed)
    x = np.sort(r.uniform(-2, 2, n))
    return x[:, None], np.sin(2 * x) + 0.1 * r.standard_normal(n)


@pytest.fixture(scope="module")
def three_layer_case():
    X, y = _data(6, seed=3)
    prog = ThreeLayerReLUProgram(X, y, 3, hidden=2, beta=0.05, random_state=0)
    return prog, prog.with_patterns(enumerate_three_layer(prog.X_design, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, GatedReLUProgram])
def test_two_layer_search_finds_exact_max(cls, seed):
    X, y = _data(8, seed)
    prog = cls(X, y, 3, beta=0.05, random_state=seed)
    V = dual_point(prog, CVXPYSolver().solve(prog).weights)
    full = prog.with_patterns(enumerate_two_layer(prog.X_design))
    exact = exact_atom_max(full, V)
    found = search_program(prog, V=V, random_state=seed)
    assert exact.per_output[0] >= exact.attained[0] * (1 - 1e-9)
    assert found.best_value <= exact.best * (1 + 1e-8)  # search values are attained
    assert found.best_value == pytest.approx(exact.best, rel=1e-5)


def test_three_layer_search_finds_exact_max(three_layer_case):
    prog, full = three_layer_case
    for seed in range(2):
        sol = CVXPYSolver().solve(prog.with_beta(0.05 * (1 + seed)))
        V = dual_point(prog, sol.weights)
        exact = exact_atom_max(full, V)
        found = search_program(prog, sol.weights, V=V, random_state=seed)
        assert exact.best >= exact.attained.max() * (1 - 1e-9)
        assert exact.best == pytest.approx(exact.attained.max(), rel=1e-6)  # multipliers make the bound tight
        assert found.best_value <= exact.best * (1 + 1e-8)
        assert found.best_value == pytest.approx(exact.best, rel=1e-4)


def test_exact_bound_dominates_random_atoms(three_layer_case):
    prog, full = three_layer_case
    r = np.random.default_rng(0)
    V = r.standard_normal((prog.X_design.shape[0], 1))
    bound = exact_atom_max(full, V).best
    W1 = r.standard_normal((20000, 2, 2))
    W1 /= np.linalg.norm(W1, axis=(1, 2), keepdims=True)
    w2 = r.standard_normal((20000, 2))
    w2 /= np.linalg.norm(w2, axis=1, keepdims=True)
    H = np.maximum(np.einsum("nd,kdm->knm", prog.X_design, W1), 0)
    g = np.maximum(np.einsum("knm,km->kn", H, w2), 0)
    assert np.abs(g @ V[:, 0]).max() <= bound * (1 + 1e-9)


@pytest.mark.parametrize("architecture", ["two_layer", "gated", "three_layer"])
def test_candidates_are_real_atoms(architecture):
    r = np.random.default_rng(1)
    X = np.column_stack([r.standard_normal((40, 3)), np.ones(40)])
    V = r.standard_normal((40, 2))
    found = search_atoms(X, V, architecture=architecture, hidden=2, n_starts=32, n_iter=60, random_state=0)
    assert len(found) > 0
    assert np.all(np.diff(found.values) <= 0)  # best first
    assert found.best_value == pytest.approx(found.values[0])
    assert found.best_value == pytest.approx(found.best_per_output.max())
    assert set(found.outputs) <= {0, 1} and set(found.signs) <= {-1, 1}
    keys = pattern_keys(found.patterns)
    assert len(set(keys)) == len(keys)  # distinct patterns
    if architecture == "three_layer":
        return
    P = found.patterns
    np.testing.assert_array_equal(X @ P.generators >= 0, P.masks)
    for i in range(len(P)):
        v = V[:, found.outputs[i]] * found.signs[i]
        u = P.generators[:, i] / np.linalg.norm(P.generators[:, i])
        value = np.linalg.norm(X.T @ (P.masks[:, i] * v)) if architecture == "gated" else v @ np.maximum(X @ u, 0)
        assert value == pytest.approx(found.values[i], rel=1e-9)


def test_threshold_and_max_candidates():
    r = np.random.default_rng(2)
    X = np.column_stack([r.standard_normal((30, 2)), np.ones(30)])
    V = r.standard_normal(30)
    all_ = search_atoms(X, V, n_starts=32, n_iter=40, random_state=0)
    thr = float(np.median(all_.values))
    some = search_atoms(X, V, n_starts=32, n_iter=40, random_state=0, threshold=thr, max_candidates=3)
    assert 0 < len(some) <= 3 and np.all(some.values > thr)
    assert some.best_value == pytest.approx(all_.best_value)


def test_search_validates_input():
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match="architecture"):
        search_atoms(X, np.ones(5), architecture="four_layer")
    with pytest.raises(ValueError, match="rows"):
        search_atoms(X, np.ones(4))
