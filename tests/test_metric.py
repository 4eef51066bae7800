"""The low-rank metric of FISTA's preconditioner (convexrelu.solvers._metric): its algebra
in closed form, its proximal map against CVXPY, its eigen-estimate against a dense
eigendecomposition, and the preconditioned solvers against CVXPY and against the
unpreconditioned ones."""

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram
from convexrelu.solvers import FISTA, ConvergenceWarning, CVXPYSolver
from convexrelu.regularizers import group_soft_threshold
from convexrelu.solvers._metric import (AUTO_MIN_ENTRIES, AUTO_SAMPLES_PER_RANK, LowRankMetric,
                                        check_preconditioner, default_rank, wants_metric)
from convexrelu.solvers.fista import LossPart, fista_minimize
from conftest import dense_model, small_program

pytestmark = pytest.mark.usefixtures("one_thread")


def _metric(d=3, B=5, k=2, seed=0, scale=5.0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d * B, k)))
    c = scale * rng.random(k)
    return LowRankMetric(torch.tensor(U), torch.tensor(c), (d, B)), U, c


def _dense_V(U, c):
    return np.eye(U.shape[0]) + U @ np.diag(c) @ U.T


def test_inverse_and_squared_norms_are_those_of_the_dense_metric():
    m, U, c = _metric()
    V = _dense_V(U, c)
    D = np.random.default_rng(1).standard_normal((3, 5))
    Dt = torch.tensor(D)
    np.testing.assert_allclose(m.inverse(Dt).numpy().reshape(-1), np.linalg.solve(V, D.reshape(-1)), rtol=1e-12)
    v, vd = m.sqnorms(Dt)
    assert v == pytest.approx(D.reshape(-1) @ V @ D.reshape(-1), rel=1e-12)
    assert vd == pytest.approx(np.sum((V @ D.reshape(-1)) ** 2), rel=1e-12)


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")  # Clarabel at tolerances of 1e-12
@pytest.mark.parametrize("tau", [0.05, 0.5, 1.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_prox_is_the_minimiser_of_its_definition(tau, seed):
    """``argmin tau sum_b ||z_b|| + 1/2 (z - x)^T V (z - x)`` by CVXPY, to 1e-6."""
    d, B = 3, 5
    m, U, c = _metric(d, B, k=2, seed=seed, scale=20.0)
    x = np.random.default_rng(10 + seed).standard_normal((d, B))
    Z = m.prox(torch.tensor(x), tau).numpy()
    z = cp.Variable(d * B)
    V = _dense_V(U, c)
    L = np.linalg.cholesky(V)
    zz = cp.reshape(z, (d, B), order="C")
    obj = tau * sum(cp.norm(zz[:, b]) for b in range(B)) + 0.5 * cp.sum_squares(L.T @ (z - x.reshape(-1)))
    cp.Problem(cp.Minimize(obj)).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    ref = z.value.reshape(d, B)
    np.testing.assert_allclose(Z, ref, atol=1e-6)

    def value(w):
        return tau * np.linalg.norm(w, axis=0).sum() + 0.5 * (w - x).reshape(-1) @ V @ (w - x).reshape(-1)

    assert value(Z) <= value(ref) + 1e-9


def test_prox_without_weights_is_group_soft_thresholding():
    m, U, c = _metric()
    m0 = LowRankMetric(m.U, torch.zeros_like(m.c), m.shape)
    x = torch.tensor(np.random.default_rng(2).standard_normal((3, 5)))
    np.testing.assert_allclose(m0.prox(x, 0.7).numpy(), group_soft_threshold(x, 0.7).numpy(), rtol=1e-14)


@pytest.mark.parametrize("cls", [GatedReLUProgram, ThreeLayerReLUProgram])
def test_from_operator_finds_the_top_eigenvectors_of_the_gram_map(cls):
    """On all samples (``sample_rows`` above n) the estimate's eigenvalues are those of
    ``A^T A``, ``a`` is the next one, and ``a V`` majorises ``A^T A`` up to the power
    iteration's underestimate of ``a`` (FISTA's line search takes that up)."""
    prog = small_program(cls, "squared")
    op = prog.operator
    A = dense_model(op).numpy()
    lam = np.sort(np.linalg.eigvalsh(A.T @ A))[::-1]
    k = 4
    metric, a = LowRankMetric.from_operator(op, k, sample_rows=10**6, n_iter=30, oversample=10)
    U = metric.U.numpy()
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-10)
    top = a * (1 + metric.c.numpy())
    np.testing.assert_allclose(np.sort(top)[::-1], lam[:k], rtol=1e-6)
    assert a == pytest.approx(lam[k], rel=1e-3)
    V = a * _dense_V(U, metric.c.numpy())
    assert np.linalg.eigvalsh(V - A.T @ A).min() >= -1e-3 * a


def test_from_operator_is_reproducible_and_checks_its_rank():
    op = small_program(ThreeLayerReLUProgram, "squared").operator
    m1, a1 = LowRankMetric.from_operator(op, 3, sample_rows=10, random_state=4)
    m2, a2 = LowRankMetric.from_operator(op, 3, sample_rows=10, random_state=4)
    assert a1 == a2
    np.testing.assert_array_equal(m1.U.numpy(), m2.U.numpy())
    with pytest.raises(ValueError, match="rank"):
        LowRankMetric.from_operator(op, 0)


def test_fista_minimize_with_the_identity_metric_is_plain_fista():
    prog = small_program(GatedReLUProgram, "squared")
    d, B = prog.shape
    ident = LowRankMetric(torch.zeros(d * B, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), (d, B))
    Q0 = torch.zeros(d, B, dtype=torch.float64)
    runs = [fista_minimize(LossPart(prog), Q0, prog.beta, step=1e-3, max_iter=50, tol=1e-30, scale=1.0, metric=m)
            for m in (None, ident)]
    np.testing.assert_allclose(runs[1].Q.numpy(), runs[0].Q.numpy(), rtol=1e-12, atol=1e-14)
    assert runs[1].iterations == runs[0].iterations == 50


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_preconditioned_fista_agrees_with_cvxpy(loss):
    prog = small_program(GatedReLUProgram, loss)
    ref = CVXPYSolver().solve(prog)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = FISTA(preconditioner="lowrank", rank=4).solve(prog)
    assert sol.converged and sol.info["metric_rank"] == 4
    assert abs(sol.objective - ref.objective) <= 1e-5 * abs(ref.objective)
    assert sol.relative_gap <= 1e-4


def test_preconditioned_fista_is_reproducible():
    prog = small_program(GatedReLUProgram, "squared")
    a = FISTA(preconditioner="lowrank", rank=3, random_state=7).solve(prog)
    b = FISTA(preconditioner="lowrank", rank=3, random_state=7).solve(prog)
    np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize("kw, match", [
    ({"preconditioner": "diagonal"}, "preconditioner"),
    ({"preconditioner": "lowrank", "rank": 0}, "rank"),
    ({"preconditioner": "lowrank", "rank": 2.5}, "rank"),
    ({"random_state": "seed"}, "random_state"),
])
def test_bad_preconditioner_settings_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        FISTA(**kw)
    with pytest.raises(ValueError, match=match):
        check_preconditioner(kw.get("preconditioner"), kw.get("rank"), kw.get("random_state", 0))


class _Shape:
    """The sizes :func:`wants_metric` reads of an operator."""

    def __init__(self, n, d, B, C=1):
        self.n_samples, self.n_features, self.n_blocks, self.n_outputs = n, d, B, C
        self.shape = (d, B)


def test_auto_takes_the_metric_on_large_programs_only():
    assert default_rank(_Shape(100, 51, 500, C=3)) == 3 * 51 + 10
    k = 51 + 10
    n = AUTO_SAMPLES_PER_RANK * k
    B = -(-AUTO_MIN_ENTRIES // n)
    assert wants_metric("auto", _Shape(n, 51, B), None)
    assert not wants_metric("auto", _Shape(n - 1, 51, B), None)  # too few samples for the rank
    assert not wants_metric("auto", _Shape(n, 51, B - 1), None)  # too small a model
    assert not wants_metric("auto", _Shape(n, 51, B, C=3), None)  # three outputs: three times the rank
    assert wants_metric("auto", _Shape(n, 51, B, C=3), k)  # unless the rank is given
    assert wants_metric("lowrank", _Shape(10, 3, 2), None) and not wants_metric(None, _Shape(10**6, 51, 500), None)
    assert not wants_metric("lowrank", _Shape(10, 3, 0), None)  # no blocks: nothing to precondition


def test_fista_auto_leaves_small_programs_plain():
    sol = FISTA().solve(small_program(GatedReLUProgram, "squared"))
    assert sol.info["preconditioner"] is None and sol.info["metric_rank"] is None


def test_from_operator_past_its_deadline_is_rougher_but_fista_still_converges():
    prog = small_program(GatedReLUProgram, "squared")
    metric, a = LowRankMetric.from_operator(prog.operator, 3, deadline=0.0)  # long past
    assert metric.rank == 3 and a > 0 and bool(torch.all(metric.c >= 0))
    ref = CVXPYSolver().solve(prog)
    res = fista_minimize(LossPart(prog), torch.zeros(prog.shape, dtype=torch.float64), prog.beta, step=1 / a,
                         max_iter=20000, tol=1e-9, scale=1.0, metric=metric)
    assert res.converged
    assert prog.objective(res.Q) == pytest.approx(ref.objective, rel=1e-5)
