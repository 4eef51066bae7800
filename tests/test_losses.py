"""Losses: values by hand, gradients by finite differences, conjugates by Fenchel-Young
and by direct maximisation, CVXPY forms against torch values, target checks."""

import math

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu.losses import LogisticLoss, SoftmaxLoss, SquaredLoss, get_loss

LOSSES = ["squared", "logistic", "softmax"]


def _data(name, n=7, seed=0):
    r = np.random.default_rng(seed)
    loss = get_loss(name)
    if name == "squared":
        Y = loss.prepare_targets(r.standard_normal((n, 2)))
        Z = r.standard_normal((n, 2))
    elif name == "logistic":
        Y = loss.prepare_targets(np.where(r.random(n) > 0.5, 1.0, -1.0))
        Z = r.standard_normal((n, 1))
    else:
        Y = loss.prepare_targets(r.integers(0, 3, n))
        Z = r.standard_normal((n, Y.shape[1]))
    return loss, torch.tensor(Z), torch.tensor(Y)


def test_values_by_hand():
    Z = torch.tensor([[1.0], [-2.0]])
    assert float(SquaredLoss().value(Z, torch.tensor([[0.0], [1.0]]))) == pytest.approx(0.5 * (1 + 9))
    y = torch.tensor([[1.0], [-1.0]])
    expected = math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))
    assert float(LogisticLoss().value(Z, y)) == pytest.approx(expected)
    Zs = torch.tensor([[0.0, math.log(3.0)]])
    assert float(SoftmaxLoss().value(Zs, torch.tensor([[1.0, 0.0]]))) == pytest.approx(math.log(4.0))


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_autograd_and_finite_differences(name):
    loss, Z, Y = _data(name)
    Z.requires_grad_(True)
    loss.value(Z, Y).backward()
    assert torch.allclose(loss.grad(Z.detach(), Y), Z.grad, atol=1e-12)
    assert torch.autograd.gradcheck(lambda z: loss.value(z, Y), (Z.detach().clone().requires_grad_(True),))


@pytest.mark.parametrize("name", LOSSES)
def test_fenchel_young_equality_at_gradient(name):
    # l(z) + l*(grad l(z)) = <grad l(z), z>, and l(w) + l*(v) >= <v, w> elsewhere
    loss, Z, Y = _data(name)
    V = loss.grad(Z, Y)
    lhs = loss.value(Z, Y) + loss.conjugate(V, Y)
    assert float(lhs) == pytest.approx(float(torch.sum(V * Z)), rel=1e-10, abs=1e-10)
    _, W, _ = _data(name, seed=1)
    assert float(loss.value(W, Y) + loss.conjugate(V, Y)) >= float(torch.sum(V * W)) - 1e-10


def test_conjugate_domains():
    y = torch.tensor([[1.0], [-1.0]])
    assert math.isinf(float(LogisticLoss().conjugate(torch.tensor([[0.5], [0.0]]), y)))  # -y v < 0
    assert float(LogisticLoss().conjugate(torch.tensor([[-1.0], [0.0]]), y)) == pytest.approx(0.0)
    Ys = torch.tensor([[1.0, 0.0]])
    assert math.isinf(float(SoftmaxLoss().conjugate(torch.tensor([[0.5, 0.0]]), Ys)))  # rows not in simplex
    # v + y = (1/2, 1/2): sum p log p = -log 2
    assert float(SoftmaxLoss().conjugate(torch.tensor([[-0.5, 0.5]]), Ys)) == pytest.approx(-math.log(2))


def test_squared_conjugate_closed_form():
    V = torch.tensor([[1.0], [2.0]])
    Y = torch.tensor([[3.0], [-1.0]])
    assert float(SquaredLoss().conjugate(V, Y)) == pytest.approx(0.5 * 5 + (3 - 2))


@pytest.mark.parametrize("name", LOSSES)
def test_cvxpy_expression_matches_torch(name):
    loss, Z, Y = _data(name)
    expr = loss.cvxpy(cp.Constant(Z.numpy()), Y.numpy())
    assert float(expr.value) == pytest.approx(float(loss.value(Z, Y)), rel=1e-10)


@pytest.mark.parametrize("name", LOSSES)
def test_smoothness_bounds_hessian(name):
    loss, Z, Y = _data(name)
    H = torch.autograd.functional.hessian(lambda z: loss.value(z, Y), Z)
    k = Z.numel()
    eig = torch.linalg.eigvalsh(H.reshape(k, k))
    assert float(eig.max()) <= loss.smoothness + 1e-12
    assert float(eig.min()) >= -1e-12  # convex


def test_prepare_targets_errors():
    with pytest.raises(ValueError, match="y: expected labels in"):
        LogisticLoss().prepare_targets([0, 1, 1])
    with pytest.raises(ValueError, match="y: expected integer class labels"):
        SoftmaxLoss().prepare_targets([0.5, 1.0])
    with pytest.raises(ValueError, match="y: expected finite"):
        SquaredLoss().prepare_targets([0.0, np.nan])
    with pytest.raises(ValueError, match="loss: expected one of"):
        get_loss("hinge")
    assert SoftmaxLoss().prepare_targets([0, 2, 1]).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert SquaredLoss().prepare_targets([1.0, 2.0]).shape == (2, 1)


def test_proba():
    P = LogisticLoss.proba(np.array([[0.0], [100.0]]))
    np.testing.assert_allclose(P, [[0.5, 0.5], [0.0, 1.0]], atol=1e-12)
    S = SoftmaxLoss.proba(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(S, [[0.25, 0.75]])


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("t", [1e-3, 0.5, 10.0, 1e4])
def test_prox_optimality_condition(name, t):
    """``Z = prox(V)`` solves ``grad l(Z) + (Z - V) / t = 0``, also for large ``|V|``."""
    loss, Z0, Y = _data(name, n=40, seed=3)
    for scale in (0.1, 5.0, 300.0):
        V = scale * Z0
        Z = loss.prox(V, Y, t)
        residual = loss.grad(Z, Y) + (Z - V) / t
        assert float(torch.max(torch.abs(residual))) * t <= 1e-10 * (1 + scale + t)


@pytest.mark.parametrize("t", [1e-3, 0.5, 10.0, 1e4])
def test_logistic_prox_converges_as_newton_does(t, monkeypatch):
    """The logistic prox (a 1-D root per entry) takes a few safeguarded Newton steps, not
    the bisection-like 72 to 87 it took while a bracket that shrank on one side only
    (Newton converging from that side) forced a bisection every other step."""
    loss, Z0, Y = _data("logistic", n=400, seed=5)
    calls = []
    grad = loss.grad
    monkeypatch.setattr(loss, "grad", lambda Z, Y: calls.append(1) or grad(Z, Y))
    for scale in (0.1, 5.0, 300.0):
        calls.clear()
        loss.prox(scale * Z0, Y, t)
        assert len(calls) <= 30


@pytest.mark.parametrize("name", LOSSES)
def test_prox_minimises_its_objective(name):
    """No random perturbation of the prox point has a lower prox objective."""
    loss, V, Y = _data(name, n=10, seed=4)
    t = 0.7
    Z = loss.prox(V, Y, t)

    def obj(W):
        return float(loss.value(W, Y)) + float(torch.sum((W - V) ** 2)) / (2 * t)

    base = obj(Z)
    r = np.random.default_rng(0)
    for _ in range(20):
        assert obj(Z + 1e-3 * torch.tensor(r.standard_normal(Z.shape))) >= base


def test_squared_prox_closed_form():
    loss = SquaredLoss()
    V, Y = torch.tensor([[1.0], [-2.0]]), torch.tensor([[3.0], [0.0]])
    assert torch.allclose(loss.prox(V, Y, 1.0), torch.tensor([[2.0], [-1.0]]))


@pytest.mark.parametrize("name", LOSSES)
def test_hessian_factor_against_autograd(name):
    """``F F^T`` is the Hessian of the loss row by row (and zero across rows)."""
    loss, Z, Y = _data(name)
    n, C = Z.shape
    H = torch.autograd.functional.hessian(lambda z: loss.value(z, Y), Z).reshape(n, C, n, C)
    F = loss.hessian_factor(Z, Y)
    assert F.shape == (n, C, loss.hessian_rank(C))
    for i in range(n):
        assert torch.allclose(F[i] @ F[i].T, H[i, :, i, :], rtol=1e-10, atol=1e-12)
        H[i, :, i, :] = 0
    assert torch.count_nonzero(H) == 0


def test_hessian_ranks():
    """Columns of the factors: C for the squared loss, 1 for the logistic, C - 1 for softmax."""
    assert [get_loss("squared").hessian_rank(C) for C in (1, 3)] == [1, 3]
    assert get_loss("logistic").hessian_rank(1) == 1
    assert [get_loss("softmax").hessian_rank(C) for C in (1, 2, 3, 5)] == [1, 1, 2, 4]


def test_softmax_hessian_factor_closed_form():
    """Two classes with probabilities (p, 1 - p): Hessian ``p (1 - p) [[1, -1], [-1, 1]]``,
    so the one column is ``+-sqrt(p (1 - p)) (1, -1)``; three equal classes: ``F^T F`` is
    ``I / 3`` (the Hessian ``I/3 - 1 1^T / 9`` has eigenvalue 1/3 twice), ``F^T 1 = 0``."""
    loss = get_loss("softmax")
    p = 0.2
    Z = torch.tensor([[math.log(p), math.log(1 - p)]], dtype=torch.float64)
    F = loss.hessian_factor(Z, torch.tensor([[1.0, 0.0]], dtype=torch.float64))[0]
    assert F.shape == (2, 1)
    assert torch.allclose(torch.abs(F[:, 0]), torch.full((2,), math.sqrt(p * (1 - p)), dtype=torch.float64))
    assert float(F[0, 0] * F[1, 0]) < 0
    F3 = loss.hessian_factor(torch.zeros((1, 3), dtype=torch.float64), torch.tensor([[0.0, 0.0, 1.0]]))[0]
    assert torch.allclose(F3.T @ F3, torch.eye(2, dtype=torch.float64) / 3)
    assert torch.allclose(F3.T @ torch.ones(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), atol=1e-15)


def test_softmax_hessian_factor_for_certain_classes():
    """A row with ``p`` nearly one-hot (on any class, including the last, where the
    reflection vector is largest) keeps ``F F^T = diag(p) - p p^T`` to rounding, relative
    to each entry (the tiny diagonal ``p_k (1 - p_k)`` of a certain class included)."""
    loss = get_loss("softmax")
    Z = torch.tensor([[40.0, 0.0, 0.0], [0.0, 0.0, 40.0], [0.0, -40.0, 0.0]], dtype=torch.float64)
    F = loss.hessian_factor(Z, torch.eye(3, dtype=torch.float64))
    P = torch.softmax(Z, dim=1)
    # the reference without cancellation: H_kk = p_k (sum of the other p_j), H_jk = -p_j p_k
    H = -P[:, :, None] * P[:, None, :]
    H.diagonal(dim1=1, dim2=2).copy_(P * (P.sum(dim=1, keepdim=True) - P))
    assert torch.allclose(F @ F.transpose(1, 2), H, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("dtype, big", [(torch.float64, 1e12), (torch.float32, 1e5)])
def test_logistic_prox_of_an_entry_does_not_depend_on_a_large_other_one(dtype, big):
    """Each entry converges to its own rounding level: beside an entry of 1e12 (1e5 in
    float32) the prox of 0.3 (y = 1, t = 1) was 0.64196 against 0.64428 alone."""
    loss = LogisticLoss()
    alone = loss.prox(torch.tensor([[0.3]], dtype=dtype), torch.tensor([[1.0]], dtype=dtype), 1.0)[0, 0]
    beside = loss.prox(torch.tensor([[big], [0.3]], dtype=dtype), torch.ones((2, 1), dtype=dtype), 1.0)[1, 0]
    exact = loss.prox(torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64), 1.0)[0, 0]
    assert float(beside) == float(alone)
    assert float(beside) == pytest.approx(float(exact), rel=4 * torch.finfo(dtype).eps)


def test_softmax_prox_of_a_row_does_not_depend_on_a_large_other_one():
    """Each row converges to its own rounding level: in float32, t = 1e-3, the row
    (0, 0.5, 0) beside a row holding 1e4 came back unchanged (its whole step, 7.3e-4, lost)."""
    loss = SoftmaxLoss()
    Y = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    V = torch.tensor([[1e4, 0.0, 0.0], [0.0, 0.5, 0.0]])
    got = loss.prox(V, Y, 1e-3)[1].double()
    exact = loss.prox(V[1:].double(), Y[1:].double(), 1e-3)[0]
    assert float(torch.max(torch.abs(got - exact))) <= 1e-7
    assert float(torch.max(torch.abs(exact - V[1].double()))) > 7e-4


def test_softmax_conjugate_is_finite_in_float32_on_its_domain():
    """``V = grad l(Z)`` lies in the conjugate's domain; float32 rounding moves a row's sum
    of ``V + Y`` by about 6e-8, which the float64 test of 1e-8 refused (inf)."""
    loss = SoftmaxLoss()
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((6, 3))
    Y = np.eye(3)[rng.integers(0, 3, 6)]
    values = []
    for dtype in (torch.float64, torch.float32):
        Zt, Yt = torch.tensor(Z, dtype=dtype), torch.tensor(Y, dtype=dtype)
        values.append(float(loss.conjugate(loss.grad(Zt, Yt), Yt)))
    assert math.isfinite(values[1]) and values[1] == pytest.approx(values[0], rel=1e-6)
    Yt = torch.tensor(Y, dtype=torch.float32)
    assert float(loss.conjugate(loss.grad(torch.tensor(Z, dtype=torch.float32), Yt) + 1e-3, Yt)) == math.inf


def test_logistic_probabilities_and_their_logarithms_far_out():
    """At z = 40 and -800 the class of probability exp(-40) = 4.2e-18 was rounded to 0
    (``1 - p``) and its logarithm to -inf; each column is now computed as such."""
    P = LogisticLoss.proba(np.array([40.0, -800.0, 0.0]))
    assert P[0, 0] == pytest.approx(math.exp(-40), rel=1e-12) and P[0, 1] == 1.0
    assert P[1, 1] == 0.0 and P[1, 0] == 1.0 and np.allclose(P[2], 0.5)  # (exp(-800) underflows to 0 as a probability)
    L = LogisticLoss.log_proba(np.array([40.0, -800.0, 0.0]))
    assert L[0, 0] == pytest.approx(-40.0, rel=1e-15) and L[1, 1] == pytest.approx(-800.0, rel=1e-15)
    assert L[0, 1] == pytest.approx(-math.exp(-40), rel=1e-12) and np.allclose(L[2], -math.log(2))


def test_softmax_log_probabilities_are_finite_where_probabilities_underflow():
    Z = np.array([[0.0, 800.0, 1.0], [1.0, 2.0, 3.0]])
    L = SoftmaxLoss.log_proba(Z)
    assert L[0, 0] == pytest.approx(-800.0, rel=1e-12) and np.all(np.isfinite(L))
    np.testing.assert_allclose(np.exp(L[1]), SoftmaxLoss.proba(Z)[1], rtol=1e-14)


def test_softmax_value_in_float32_sums_row_by_row():
    """Logits of about 160, most rows of the right class (a loss small against the sums of
    logits): the difference of the two sums lost 4.6e-6 (relative) of the loss in float32
    here (6.1e-4 on a fitted model's logits); row by row, 7.9e-8."""
    rng = np.random.default_rng(0)
    Z = 160 * rng.standard_normal((100, 3))
    Z[:, 0] *= 0.02
    Y = np.eye(3)[np.argmax(Z, axis=1)]
    Y[:5] = np.eye(3)[(np.argmax(Z[:5], axis=1) + 1) % 3]
    exact = float(SoftmaxLoss().value(torch.tensor(Z), torch.tensor(Y)))
    single = float(SoftmaxLoss().value(torch.tensor(Z, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)))
    assert single == pytest.approx(exact, rel=5e-7)
