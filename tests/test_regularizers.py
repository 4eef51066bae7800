"""Group l1: value by hand, prox against its definition, dual norm, CVXPY form."""

import cvxpy as cp
import numpy as np
import pytest
import torch

from convexrelu.regularizers import GroupL1, group_soft_threshold, shrink_factors


def test_value_and_dual_norm_by_hand():
    Q = torch.tensor([[3.0, 0.0, 1.0], [4.0, 0.0, 0.0]])
    reg = GroupL1()
    assert float(reg.value(Q)) == pytest.approx(6.0)
    assert float(reg.dual_norm(Q)) == pytest.approx(5.0)
    assert reg.block_norms(Q).tolist() == [5.0, 0.0, 1.0]
    assert float(reg.cvxpy(cp.Constant(Q.numpy())).value) == pytest.approx(6.0)


def test_soft_threshold_closed_form():
    Q = torch.tensor([[3.0, 0.3, 0.0], [4.0, 0.4, 0.0]])
    out = group_soft_threshold(Q, 1.0)
    # ||(3,4)|| = 5 -> scaled by (1 - 1/5); ||(0.3,0.4)|| = 0.5 <= 1 -> zero; zero stays zero
    assert torch.allclose(out, torch.tensor([[2.4, 0.0, 0.0], [3.2, 0.0, 0.0]]))


@pytest.mark.parametrize("step", [0.1, 0.7, 2.0])
def test_prox_solves_its_definition(step):
    r = np.random.default_rng(1)
    Q0 = r.standard_normal((4, 5))
    P = cp.Variable((4, 5))
    cp.Problem(cp.Minimize(step * cp.sum(cp.norm(P, 2, axis=0)) + 0.5 * cp.sum_squares(P - Q0))).solve()
    ours = GroupL1().prox(torch.tensor(Q0), step).numpy()
    np.testing.assert_allclose(ours, P.value, atol=1e-6)


def test_shrink_factors_closed_form():
    W = torch.tensor([[3.0, 0.3, 0.0], [4.0, 0.4, 0.0]])  # column norms 5, 0.5, 0
    norms, factors = shrink_factors(W, 1.0)
    np.testing.assert_allclose(norms.numpy(), [5.0, 0.5, 0.0])
    np.testing.assert_allclose(factors.numpy(), [0.8, 0.0, 0.0])
    np.testing.assert_allclose(group_soft_threshold(W, 1.0).numpy(), [[2.4, 0.0, 0.0], [3.2, 0.0, 0.0]])
