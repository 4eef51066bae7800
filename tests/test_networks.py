"""Networks: forward pass and objective by hand, torch export equals numpy."""

import numpy as np
import pytest
import torch

from convexrelu import ThreeLayerNetwork, TwoLayerNetwork


def test_two_layer_by_hand():
    net = TwoLayerNetwork(W1=[[1.0, -1.0], [0.0, 1.0]], W2=[[2.0], [1.0]])  # intercept is the 2nd row
    X = np.array([[1.0], [-3.0]])
    # x=1: relu(1)=1, relu(-1+1)=0 -> 2 ; x=-3: relu(-3)=0, relu(3+1)=4 -> 4
    np.testing.assert_allclose(net.predict(X)[:, 0], [2.0, 4.0])
    penalty = 0.5 * (1 + 1 + 1 + 4 + 1)
    assert net.objective(X, [2.0, 5.0], "squared", beta=0.1) == pytest.approx(0.5 + 0.1 * penalty)


def test_objective_refuses_targets_of_another_shape():
    """A ``y`` of another length or width had been broadcast into a wrong objective."""
    net = TwoLayerNetwork(W1=[[1.0, -1.0], [0.0, 1.0]], W2=[[2.0], [1.0]])
    X = np.array([[1.0], [2.0], [-1.0]])
    assert net.objective(X, net.predict(X)) == 0.0
    for y in (np.zeros(2), np.zeros((3, 2))):
        with pytest.raises(ValueError, match=r"y: expected 3 targets in 1 column\(s\), as the model's outputs "
                                             r"\(encoded for the squared loss\), got shape \("):
            net.objective(X, y)


def test_networks_refuse_non_finite_weights():
    """A network (or a model file) with NaN or infinite weights had predicted NaN."""
    with pytest.raises(ValueError, match="W1: expected finite weights, got 2 NaN or infinite entries"):
        TwoLayerNetwork(W1=[[np.nan, 1.0], [0.0, np.inf]], W2=[[2.0], [1.0]])
    with pytest.raises(ValueError, match="gates: expected finite weights"):
        TwoLayerNetwork(W1=[[1.0]], W2=[[1.0]], gates=[[np.nan]], fit_intercept=False)
    with pytest.raises(ValueError, match="w3: expected finite weights, got 1 NaN"):
        ThreeLayerNetwork(np.ones((1, 2, 1)), w2=[[1.0]], w3=[[np.inf]])
    with pytest.raises(TypeError, match="fit_intercept: expected True or False"):
        ThreeLayerNetwork(np.ones((1, 2, 1)), w2=[[1.0]], w3=[[1.0]], fit_intercept="no")


def test_gated_by_hand():
    net = TwoLayerNetwork(W1=[[2.0]], W2=[[1.0]], gates=[[-1.0]], fit_intercept=False)
    np.testing.assert_allclose(net.predict(np.array([[1.0], [-1.0]]))[:, 0], [0.0, -2.0])


def test_three_layer_by_hand_and_constraint():
    W1 = np.array([[[0.6, 0.0], [0.0, 0.8]]])  # K=1, d=2 (x, intercept), m1=2
    net = ThreeLayerNetwork(W1, w2=[[1.0, -1.0]], w3=[[2.0]])
    # x = 2: relu(1.2)=1.2, relu(0.8)=0.8 -> relu(1.2 - 0.8) = 0.4 -> 0.8
    np.testing.assert_allclose(net.predict(np.array([[2.0]]))[:, 0], [0.8])
    assert net.objective(np.array([[2.0]]), [0.0], "squared", beta=1.0) == pytest.approx(0.32 + 0.5 * (2 + 4))
    too_big = ThreeLayerNetwork(2 * W1, w2=[[1.0, -1.0]], w3=[[2.0]])
    assert too_big.objective(np.array([[2.0]]), [0.0]) == float("inf")


@pytest.mark.parametrize("gated", [False, True])
def test_scaled_two_layer_by_hand(gated):
    """``scaled(4)``: both layers times 2 (gates as they are), outputs and penalty times 4,
    the squared-loss objective of targets and beta times 4 times 16."""
    net = TwoLayerNetwork(W1=[[1.0, -1.0], [0.0, 1.0]], W2=[[2.0], [1.0]], gates=[[1.0, 1.0], [0.5, 0.0]] if gated else None)
    big = net.scaled(4.0)
    np.testing.assert_array_equal(big.W1, 2 * net.W1)
    np.testing.assert_array_equal(big.W2, 2 * net.W2)
    assert big.gates is net.gates
    X = np.array([[1.0], [-3.0]])
    np.testing.assert_allclose(big.predict(X), 4 * net.predict(X))
    assert big.penalty() == pytest.approx(4 * net.penalty())
    assert big.objective(X, [8.0, 20.0], "squared", beta=0.4) == pytest.approx(16 * net.objective(X, [2.0, 5.0], "squared", beta=0.1))
    with pytest.raises(ValueError, match="scale: expected a finite number > 0, got -1"):
        net.scaled(-1)


def test_scaled_three_layer_by_hand():
    """``scaled(9)``: ``w2`` and ``w3`` times 3, the unit-norm first layer as it is."""
    W1 = np.array([[[0.6, 0.0], [0.0, 0.8]]])
    net = ThreeLayerNetwork(W1, w2=[[1.0, -1.0]], w3=[[2.0]])
    big = net.scaled(9.0)
    np.testing.assert_array_equal(big.W1, W1)
    np.testing.assert_array_equal(big.w2, 3 * net.w2)
    np.testing.assert_array_equal(big.w3, 3 * net.w3)
    np.testing.assert_allclose(big.predict(np.array([[2.0]]))[:, 0], [7.2])  # 9 x 0.8
    assert big.objective(np.array([[2.0]]), [0.0], "squared", beta=9.0) == pytest.approx(81 * (0.32 + 0.5 * (2 + 4)))


@pytest.mark.parametrize("gated", [False, True])
def test_torch_export_two_layer(gated):
    r = np.random.default_rng(0)
    net = TwoLayerNetwork(r.standard_normal((4, 5)), r.standard_normal((5, 2)),
                          gates=r.standard_normal((4, 5)) if gated else None)
    X = r.standard_normal((9, 3))
    out = net.to_torch()(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(out, net.predict(X), atol=1e-12)


def test_torch_export_three_layer():
    r = np.random.default_rng(1)
    net = ThreeLayerNetwork(r.standard_normal((3, 4, 2)), r.standard_normal((3, 2)), r.standard_normal((3, 1)))
    X = r.standard_normal((9, 3))
    np.testing.assert_allclose(net.to_torch()(torch.tensor(X)).detach().numpy(), net.predict(X), atol=1e-12)


def test_wrong_feature_count():
    net = TwoLayerNetwork(np.ones((3, 2)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="X: expected 2 features, got 3"):
        net.predict(np.ones((4, 3)))


def test_weights_of_mismatched_shapes_are_named():
    with pytest.raises(ValueError, match=r"W2: expected shape \(2, C\) to match W1, got \(5, 1\)"):
        TwoLayerNetwork(np.ones((3, 2)), np.ones((5, 1)))
    with pytest.raises(ValueError, match=r"W1: expected shape \(d, m\), got \(3,\)"):
        TwoLayerNetwork(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"w2: expected shape \(2, 3\) to match W1, got \(2, 2\)"):
        ThreeLayerNetwork(np.ones((2, 4, 3)), np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"w3: expected shape \(2, C\) to match W1, got \(3,\)"):
        ThreeLayerNetwork(np.ones((2, 4, 3)), np.ones((2, 3)), np.ones(3))
    # the shapes that are accepted: 1-D second layer, and no neuron at all
    assert TwoLayerNetwork(np.ones((3, 2)), np.ones(2)).W2.shape == (2, 1)
    assert TwoLayerNetwork(np.zeros((3, 0)), np.zeros((0, 2))).predict(np.ones((4, 2))).shape == (4, 2)
    empty = ThreeLayerNetwork(np.zeros((0, 3, 2)), np.zeros((0, 2)), np.zeros((0, 1)))  # beta above the threshold
    assert empty.predict(np.ones((4, 2))).shape == (4, 1)
    with pytest.raises(ValueError, match="X: expected 2 features, got 3"):
        empty.predict(np.ones((4, 3)))
