"""Closed-form tests of the formulas of the first-order solvers (solvers/_steps.py)."""

import math

import numpy as np
import pytest
import torch

from convexrelu.solvers import _steps


def test_momentum_sequence_closed_form():
    # t_0 = 1, t_1 = (1 + sqrt(5)) / 2, t_2 = (1 + sqrt(1 + 4 t_1^2)) / 2
    t1 = _steps.momentum_next(1.0)
    assert t1 == pytest.approx((1 + math.sqrt(5)) / 2)
    assert _steps.momentum_next(t1) == pytest.approx((1 + math.sqrt(1 + 4 * t1**2)) / 2)
    # the defining identity t+^2 - t+ = t^2, and t_k >= (k + 2) / 2
    t = 1.0
    for k in range(1, 50):
        tn = _steps.momentum_next(t)
        assert tn**2 - tn == pytest.approx(t**2)
        assert tn >= (k + 2) / 2 - 1e-12
        t = tn


def test_extrapolation_coefficient():
    assert _steps.extrapolation_coefficient(1.0, 2.0) == 0.0  # first step: no momentum
    assert _steps.extrapolation_coefficient(3.0, 4.0) == pytest.approx(0.5)
    t = 1.0
    for _ in range(200):
        tn = _steps.momentum_next(t)
        w = _steps.extrapolation_coefficient(t, tn)
        assert 0 <= w < 1
        t = tn
    assert w > 0.98  # tends to 1


def test_sufficient_decrease_on_a_quadratic():
    # f(x) = (L / 2) x^2 from y = 1 with gradient L: a step s passes iff s <= 1 / L
    L = 4.0
    f = lambda x: 0.5 * L * x * x  # noqa: E731
    y, g = 1.0, L * 1.0
    for s, ok in ((0.1, True), (0.25, True), (0.3, False), (1.0, False)):
        x = y - s * g
        assert _steps.sufficient_decrease(f(x), f(y), g * (x - y), (x - y) ** 2, s) is ok
    # slack admits a rounding-level excess
    x = y - 0.3 * g
    excess = f(x) - (f(y) + g * (x - y) + (x - y) ** 2 / 0.6)
    assert _steps.sufficient_decrease(f(x), f(y), g * (x - y), (x - y) ** 2, 0.3, slack=1.01 * excess)


def test_local_curvature_is_exact_on_quadratics():
    L = 3.0
    f = lambda x: 0.5 * L * x * x + 2 * x  # noqa: E731
    y, x = 0.7, -0.4
    g = L * y + 2
    assert _steps.local_curvature(f(x), f(y), g * (x - y), (x - y) ** 2) == pytest.approx(L)
    assert _steps.local_curvature(1.0, 1.0, 0.0, 0.0) == 0.0


def test_curvature_is_resolved_above_four_times_the_slack():
    # quadratic term ||D||^2 / (2 step): 4 / (2 * 0.5) = 4
    assert _steps.curvature_is_resolved(4.0, 0.5, 0.99)
    assert not _steps.curvature_is_resolved(4.0, 0.5, 1.0)
    assert _steps.curvature_is_resolved(1e-30, 1.0, 0.0)
    assert not _steps.curvature_is_resolved(0.0, 1.0, 0.0)


def test_restart_tests():
    y = torch.tensor([1.0, 1.0])
    q_old = torch.tensor([0.0, 0.0])
    q_up = torch.tensor([0.5, 0.5])  # moved towards y then stopped short: <y - q, q - q_old> > 0
    inner = float(torch.dot(y - q_up, q_up - q_old))
    assert inner == pytest.approx(0.5) and _steps.gradient_restart(inner)
    q_far = torch.tensor([2.0, 2.0])
    assert not _steps.gradient_restart(float(torch.dot(y - q_far, q_far - q_old)))
    assert _steps.function_restart(1.0, 0.5) and not _steps.function_restart(0.5, 1.0)


def test_al_penalty_closed_form_and_gradient():
    lam = torch.tensor([0.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    c = torch.tensor([-1.0, 0.2, 3.0, 0.1], dtype=torch.float64)
    rho = 2.0
    # entrywise: lam - rho c > 0 -> -lam c + rho c^2 / 2, otherwise -lam^2 / (2 rho)
    expected = 0.0
    for l, ci in zip(lam.tolist(), c.tolist()):
        expected += -l * ci + rho * ci * ci / 2 if l - rho * ci > 0 else -l * l / (2 * rho)
    assert float(_steps.al_penalty(c, lam, rho)) == pytest.approx(expected)
    # the definition
    direct = (np.sum(np.maximum(lam.numpy() - rho * c.numpy(), 0) ** 2) - np.sum(lam.numpy() ** 2)) / (2 * rho)
    assert float(_steps.al_penalty(c, lam, rho)) == pytest.approx(direct)
    # gradient -(lam - rho c)_+ against central differences
    g = _steps.al_penalty_grad(c, lam, rho)
    assert torch.allclose(g, -torch.clamp(lam - rho * c, min=0))
    h = 1e-6
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = h
        fd = (_steps.al_penalty(c + e, lam, rho) - _steps.al_penalty(c - e, lam, rho)) / (2 * h)
        assert float(fd) == pytest.approx(float(g[i]), abs=1e-6)
    # zero where the constraint is satisfied with margin and its multiplier is zero
    assert float(_steps.al_penalty(torch.tensor([5.0]), torch.tensor([0.0]), 1.0)) == 0.0


def test_multiplier_update():
    lam = torch.tensor([0.0, 1.0, 2.0])
    c = torch.tensor([-1.0, 1.0, 0.5])
    assert torch.equal(_steps.multiplier_update(c, lam, 2.0), torch.tensor([2.0, 0.0, 1.0]))
    # equals minus the gradient of the penalty
    assert torch.equal(_steps.multiplier_update(c, lam, 2.0), -_steps.al_penalty_grad(c, lam, 2.0))
    # into a given array, also into c itself (the solvers' spare arrays)
    buf = torch.full((3,), 7.0)
    assert _steps.multiplier_update(c, lam, 2.0, out=buf) is buf and torch.equal(buf, torch.tensor([2.0, 0.0, 1.0]))
    c2 = c.clone()
    _steps.multiplier_update(c2, lam, 2.0, out=c2)
    assert torch.equal(c2, torch.tensor([2.0, 0.0, 1.0]))


def test_penalty_update_rule():
    assert _steps.penalty_update(1.0, 0.2, 1.0, decrease=0.25, factor=10) == 1.0  # fell enough: keep
    assert _steps.penalty_update(1.0, 0.3, 1.0, decrease=0.25, factor=10) == 10.0  # did not: increase
    assert _steps.penalty_update(5.0, 1.0, 1.0, decrease=0.25, factor=10, rho_max=20.0) == 20.0  # capped
    assert _steps.penalty_update(1.0, 0.1, math.inf) == 1.0  # first outer iteration


def test_prox_gradient_residual():
    y = torch.tensor([[1.0, 2.0], [0.0, 2.0]])
    q = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert _steps.prox_gradient_residual(y, q, 0.5) == pytest.approx(2 * math.sqrt(8))
    assert _steps.prox_gradient_residual(y, y, 0.1) == 0.0


def test_over_relax_closed_form():
    new, old = torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.0])
    assert torch.allclose(_steps.over_relax(new, old, 1.0), new)
    assert torch.allclose(_steps.over_relax(new, old, 1.5), torch.tensor([2.5, 6.0]))


def test_residual_balance():
    assert _steps.residual_balance(1.0, 100.0, 1.0) == 2.0  # primal too large: more penalty
    assert _steps.residual_balance(1.0, 1.0, 100.0) == 0.5  # dual too large: less
    assert _steps.residual_balance(1.0, 5.0, 1.0) == 1.0  # within mu
    assert _steps.residual_balance(3.0, 1.0, 20.0, mu=10, tau=3) == 1.0


def test_clip_ratio():
    assert _steps.clip_ratio(5.0, 2.0, 10.0) == 5.0  # within [0.2, 20]
    assert _steps.clip_ratio(0.01, 2.0, 10.0) == pytest.approx(0.2)
    assert _steps.clip_ratio(1e3, 2.0, 10.0) == pytest.approx(20.0)
    assert _steps.clip_ratio(3.0, 3.0, 1.0) == 3.0


# ----------------------------------------------------------------------------- interior point
def test_max_step_closed_form():
    v = (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5]))
    dv = (torch.tensor([-4.0, 1.0, -1.0]), torch.tensor([-0.1]))
    assert _steps.max_step(v, dv) == pytest.approx(0.25)  # the first entry hits 0 at 1 / 4
    assert _steps.max_step((torch.tensor([1.0]),), (torch.tensor([2.0]),)) == 1.0  # capped at a full step
    assert _steps.max_step((torch.tensor([0.0]),), (torch.tensor([-1.0]),)) == 0.0
    assert _steps.max_step((torch.zeros(0),), (torch.zeros(0),)) == 1.0
    # an entry that is zero and does not move (a multiplier outside the support) limits nothing
    assert _steps.max_step((torch.tensor([0.0, 2.0]),), (torch.tensor([0.0, -4.0]),)) == pytest.approx(0.5)


def test_mehrotra_centering():
    assert _steps.mehrotra_centering(0.1, 1.0) == pytest.approx(1e-3)
    assert _steps.mehrotra_centering(2.0, 1.0) == 1.0  # clipped
    assert _steps.mehrotra_centering(-1.0, 1.0) == 0.0
    assert _steps.mehrotra_centering(0.5, 0.0) == 0.0


def test_balanced_centering():
    assert _steps.balanced_centering(0.01, 1e-8, 1e-6) == 0.01  # dual residual small: Mehrotra's value
    assert _steps.balanced_centering(0.01, 1e-6, 1e-6) == pytest.approx(0.1)  # 0.1 * 1e-6 / 1e-6
    assert _steps.balanced_centering(0.01, 1e-4, 1e-6) == 1.0  # capped: pure centring
    assert _steps.balanced_centering(0.3, 0.0, 0.0) == 0.3
    assert _steps.balanced_centering(0.3, 1e-9, 0.0) == 1.0


def _cone_points(d, B, seed):
    r = np.random.default_rng(seed)
    u1 = torch.tensor(r.standard_normal((d, B)))
    return torch.linalg.vector_norm(u1, dim=0) + torch.tensor(r.random(B)) + 0.1, u1


def test_soc_product_and_divide():
    # (2, 1) o (3, 4) = (2*3 + 1*4, 2*4 + 3*1) = (10, 11)
    p0, p1 = _steps.soc_product(torch.tensor([2.0]), torch.tensor([[1.0]]), torch.tensor([3.0]), torch.tensor([[4.0]]))
    assert float(p0) == 10.0 and float(p1) == 11.0
    l0, l1 = _cone_points(4, 6, 0)
    r = np.random.default_rng(1)
    r0, r1 = torch.tensor(r.standard_normal(6)), torch.tensor(r.standard_normal((4, 6)))
    w0, w1 = _steps.soc_divide(l0, l1, r0, r1)
    q0, q1 = _steps.soc_product(l0, l1, w0, w1)
    assert torch.allclose(q0, r0, atol=1e-12) and torch.allclose(q1, r1, atol=1e-12)
    # the identity e = (1, 0) is the unit of the product
    e0, e1 = torch.ones(6, dtype=torch.float64), torch.zeros((4, 6), dtype=torch.float64)
    q0, q1 = _steps.soc_product(e0, e1, r0, r1)
    assert torch.equal(q0, r0) and torch.equal(q1, r1)


def test_soc_norm_and_max_step():
    assert float(_steps.soc_norm(torch.tensor([5.0]), torch.tensor([[3.0]]))) == pytest.approx(4.0)
    # from (1, 0) towards (-1, 0) ... (x0 + a d0) = |x1 + a d1|: x = (2, 0), d = (-1, 1) -> 2 - a = a -> a = 1
    x0, x1 = torch.tensor([2.0]), torch.tensor([[0.0]])
    assert _steps.soc_max_step(x0, x1, torch.tensor([-1.0]), torch.tensor([[1.0]])) == pytest.approx(1.0)
    assert _steps.soc_max_step(x0, x1, torch.tensor([-2.0]), torch.tensor([[2.0]])) == pytest.approx(0.5)
    assert _steps.soc_max_step(x0, x1, torch.tensor([1.0]), torch.tensor([[0.5]])) == 1.0  # stays inside
    # random: the returned step is on the boundary of the first cone it leaves (or 1)
    X0, X1 = _cone_points(3, 50, 2)
    r = np.random.default_rng(3)
    D0, D1 = torch.tensor(r.standard_normal(50)) * 3, torch.tensor(r.standard_normal((3, 50))) * 3
    a = _steps.soc_max_step(X0, X1, D0, D1)
    margin = (X0 + a * D0) - torch.linalg.vector_norm(X1 + a * D1, dim=0)
    assert float(margin.min()) >= -1e-12
    if a < 1:
        assert float(margin.min()) <= 1e-10
        b = min(1.0, 1.001 * a)
        assert float(((X0 + b * D0) - torch.linalg.vector_norm(X1 + b * D1, dim=0)).min()) < 0


def test_nesterov_todd_scaling():
    """``W z = W^{-1} s`` (the scaled point), ``W W^{-1} = I``, and ``W^{-2}`` as a matrix."""
    s0, s1 = _cone_points(4, 7, 4)
    z0, z1 = _cone_points(4, 7, 5)
    nt = _steps.nt_scaling(s0, s1, z0, z1)
    a0, a1 = _steps.nt_apply(*nt, z0, z1)
    b0, b1 = _steps.nt_apply(*nt, s0, s1, inverse=True)
    assert torch.allclose(a0, b0, atol=1e-12) and torch.allclose(a1, b1, atol=1e-12)
    c0, c1 = _steps.nt_apply(*nt, *_steps.nt_apply(*nt, s0, s1, inverse=True))
    assert torch.allclose(c0, s0, atol=1e-12) and torch.allclose(c1, s1, atol=1e-12)
    W2 = _steps.nt_inverse_square(*nt)
    u = torch.cat([s0[None], s1]).T[:, :, None]
    v0, v1 = _steps.nt_apply(*nt, *_steps.nt_apply(*nt, s0, s1, inverse=True), inverse=True)
    got = (W2 @ u)[:, :, 0].T
    assert torch.allclose(got[0], v0, atol=1e-12) and torch.allclose(got[1:], v1, atol=1e-12)
    # the scaled point lies inside the cone and lambda o lambda = (s^T z, ...)
    assert bool((a0 > torch.linalg.vector_norm(a1, dim=0)).all())
    l0, _ = _steps.soc_product(a0, a1, a0, a1)
    assert torch.allclose(l0, s0 * z0 + torch.sum(s1 * z1, dim=0), rtol=1e-12)
