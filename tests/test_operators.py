"""BlockOperator: adjoint test, finite-difference gradients, agreement of the torch and
CVXPY forms, and the model against a direct per-pattern computation."""

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from conftest import planted_regression, targets_for

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]
LOSSES = ["squared", "logistic", "softmax"]


def _program(cls, loss="squared", n=15, seed=0, **kw):
    X, y = planted_regression(n=n, d=3, seed=seed)
    extra = {"hidden": 3} if cls is ThreeLayerReLUProgram else {}
    return cls(X, targets_for(loss, y), 8, loss=loss, beta=0.1, random_state=seed, **extra, **kw)


def _random_like(shape, seed):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_adjoint(cls, loss):
    op = _program(cls, loss).operator
    Q = _random_like(op.shape, 1)
    R = _random_like((op.n_samples, op.n_outputs), 2)
    L = tuple(_random_like(s, 3 + i) for i, s in enumerate(op.constraint_shapes))
    Z, C = op.apply(Q)
    lhs = torch.sum(Z * R) + sum(torch.sum(c * l) for c, l in zip(C, L))
    rhs = torch.sum(Q * op.adjoint(R, L))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)
    # each part alone
    assert float(torch.sum(Z * R)) == pytest.approx(float(torch.sum(Q * op.adjoint(R))), rel=1e-12)
    if L:
        lhs_c = sum(torch.sum(c * l) for c, l in zip(C, L))
        assert float(lhs_c) == pytest.approx(float(torch.sum(Q * op.adjoint(None, L))), rel=1e-12)


@pytest.mark.parametrize("cls", PROGRAMS)
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_of_smooth_part_finite_differences(cls, loss):
    prog = _program(cls, loss)
    op = prog.operator
    Q0 = _random_like(op.shape, 4) * 0.3

    def f(Q):
        return prog.loss.value(op.matvec(Q), prog.Y)

    G = op.adjoint(prog.loss.grad(op.matvec(Q0), prog.Y))
    D = _random_like(op.shape, 5)
    eps = 1e-6
    fd = (f(Q0 + eps * D) - f(Q0 - eps * D)) / (2 * eps)
    assert float(fd) == pytest.approx(float(torch.sum(G * D)), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("cls", PROGRAMS)
def test_cvxpy_form_matches_torch(cls):
    op = _program(cls, "softmax").operator
    Q = _random_like(op.shape, 6)
    Z, C = op.apply(Q)
    Zc, Cc = op.cvxpy(cp.Constant(Q.numpy()))
    np.testing.assert_allclose(Zc.value, Z.numpy(), atol=1e-10)
    assert len(Cc) == len(C)
    for a, b in zip(Cc, C):
        np.testing.assert_allclose(a.value, b.numpy(), atol=1e-10)


def test_three_layer_model_by_direct_computation():
    prog = _program(ThreeLayerReLUProgram, "squared")
    pats, op = prog.patterns, prog.operator
    X = prog.X_design
    Q = _random_like(op.shape, 7).numpy()
    B, P = pats.n_pairs, len(pats)
    z = np.zeros(X.shape[0])
    for sign_index, sign in enumerate((1.0, -1.0)):
        for c, (D2, s, D1) in enumerate(pats.iter_patterns()):
            blocks = sign_index * B + np.flatnonzero(pats.owner == c)
            h = sum(s[j] * D1[:, j] * (X @ Q[:, blocks[j]]) for j in range(len(blocks)))
            z += sign * D2 * h
    np.testing.assert_allclose(op.matvec(torch.tensor(Q)).numpy()[:, 0], z, atol=1e-12)
    assert op.n_groups == 2 * P


def test_two_layer_model_and_cone_identity():
    prog = _program(TwoLayerReLUProgram, "squared")
    X, D = prog.X_design, prog.patterns.masks
    P = D.shape[1]
    # a point inside the cones: v_i = w_i = generator u_i (it has pattern D_i by construction)
    U = prog.patterns.generators
    Q = np.hstack([U, 0.5 * U])
    assert prog.violation(Q) == 0.0
    expected = np.maximum(X @ U, 0).sum(axis=1) - 0.5 * np.maximum(X @ U, 0).sum(axis=1)
    np.testing.assert_allclose(prog.predict(Q)[:, 0], expected, atol=1e-12)
    assert prog.operator.n_blocks == 2 * P
    # outside its cone the constraint is violated
    assert prog.violation(-Q) > 0


def test_to_float32_and_back():
    prog = _program(ThreeLayerReLUProgram, "squared")
    Q = _random_like(prog.shape, 8)
    p32 = prog.to(dtype=torch.float32)
    assert p32.operator.X.dtype == torch.float32 and p32.Y.dtype == torch.float32
    assert p32.objective(Q) == pytest.approx(prog.objective(Q), rel=1e-5)
    assert prog.operator.X.dtype == torch.float64  # original untouched


def test_norm_estimate_matches_dense_matrix():
    prog = _program(GatedReLUProgram, "squared", n=10)
    op = prog.operator
    d, B = op.shape
    cols = []
    for k in range(d * B):
        e = torch.zeros(d * B, dtype=torch.float64)
        e[k] = 1
        cols.append(op.matvec(e.reshape(d, B)).reshape(-1))
    A = torch.stack(cols, dim=1)
    assert op.norm_estimate(n_iter=200) == pytest.approx(float(torch.linalg.matrix_norm(A, ord=2)), rel=1e-4)
