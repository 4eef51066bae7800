"""Non-convex reference trainer (convexrelu.nonconvex): objectives, gradients, projection,
determinism, decrease, agreement with the networks' own objective, input checks."""

import math
import time

import numpy as np
import pytest
import torch

from convexrelu import SquaredLoss, ThreeLayerNetwork, TwoLayerNetwork, get_loss
from convexrelu._validation import add_intercept
from convexrelu.nonconvex import (
    TrainResult,
    project_first_layer,
    three_layer_objective,
    train_three_layer,
    train_two_layer,
    two_layer_objective,
)

from conftest import planted_regression, targets_for

LOSSES = ["squared", "logistic", "softmax"]


def _data(loss, n=12, d=2, seed=0):
    X, y = planted_regression(n=n, d=d, seed=seed)
    return X, targets_for(loss, y)


def _tensors(X, y, loss):
    A = torch.tensor(add_intercept(X), dtype=torch.float64)
    Y = torch.tensor(get_loss(loss).prepare_targets(y), dtype=torch.float64)
    return A, Y


# --------------------------------------------------------------------------- objectives
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_two_layer_gradcheck(loss, gated, batched):
    X, y = _data(loss, n=7)
    A, Y = _tensors(X, y, loss)
    g = torch.Generator().manual_seed(1)
    lead = (3,) if batched else ()
    d, m, C = A.shape[1], 4, Y.shape[1]
    W1 = torch.randn(lead + (d, m), generator=g, dtype=torch.float64, requires_grad=True)
    W2 = torch.randn(lead + (m, C), generator=g, dtype=torch.float64, requires_grad=True)
    G = torch.randn(lead + (d, m), generator=g, dtype=torch.float64) if gated else None
    fn = lambda W1, W2: two_layer_objective(A, Y, W1, W2, loss=loss, beta=0.3, gates=G)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (W1, W2), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("batched", [False, True])
def test_three_layer_gradcheck(loss, batched):
    X, y = _data(loss, n=7)
    A, Y = _tensors(X, y, loss)
    g = torch.Generator().manual_seed(2)
    lead = (2,) if batched else ()
    K, d, m1, C = 3, A.shape[1], 2, Y.shape[1]
    W1 = torch.randn(lead + (K, d, m1), generator=g, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(lead + (K, m1), generator=g, dtype=torch.float64, requires_grad=True)
    w3 = torch.randn(lead + (K, C), generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda W1, w2, w3: three_layer_objective(A, Y, W1, w2, w3, loss=loss, beta=0.2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (W1, w2, w3), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
@pytest.mark.parametrize("m1", [1, 3])
def test_three_layer_model_and_its_backward(lead, m1):
    # the trainer's model (one product for every sub-network, a hand-written backward)
    # against the formula sub-network by sub-network in numpy, and its gradient in every
    # argument (the design matrix's too) against finite differences
    from convexrelu.nonconvex import _three_layer_forward

    g = torch.Generator().manual_seed(4)
    n, d, K, C = 9, 3, 4, 2
    kw = dict(generator=g, dtype=torch.float64, requires_grad=True)
    A = torch.randn(n, d, **kw)
    W1, w2, w3 = (torch.randn(lead + shape, **kw) for shape in ((K, d, m1), (K, m1), (K, C)))
    Z = _three_layer_forward(A, W1, w2, w3)
    assert Z.shape == lead + (n, C)
    a, P1, p2, p3 = (t.detach().numpy().reshape((-1,) + t.shape[len(lead):]) if t is not A else t.detach().numpy()
                     for t in (A, W1, w2, w3))
    want = np.stack([sum(np.outer(np.maximum(np.maximum(a @ P1[s, k], 0) @ p2[s, k], 0), p3[s, k]) for k in range(K))
                     for s in range(P1.shape[0])]).reshape(lead + (n, C))
    np.testing.assert_allclose(Z.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(_three_layer_forward, (A, W1, w2, w3), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
def test_torch_objectives_equal_network_objectives(loss):
    """The torch objectives are P2 / P3 exactly as the networks evaluate them, batched or not."""
    X, y = _data(loss, n=9)
    A, Y = _tensors(X, y, loss)
    r = np.random.default_rng(3)
    C = Y.shape[1]
    W1, W2, G = r.standard_normal((2, 3, 5)), r.standard_normal((2, 5, C)), r.standard_normal((2, 3, 5))
    for gated in (False, True):
        batch = two_layer_objective(A, Y, torch.tensor(W1), torch.tensor(W2), loss=loss, beta=0.7,
                                    gates=torch.tensor(G) if gated else None)
        for s in range(2):
            net = TwoLayerNetwork(W1[s], W2[s], gates=G[s] if gated else None)
            ref = net.objective(X, y, loss, 0.7)
            single = two_layer_objective(A, Y, torch.tensor(W1[s]), torch.tensor(W2[s]), loss=loss, beta=0.7,
                                         gates=torch.tensor(G[s]) if gated else None)
            assert float(batch[s]) == pytest.approx(ref, rel=1e-12)
            assert float(single) == pytest.approx(ref, rel=1e-12)
    V1 = r.standard_normal((2, 4, 3, 2))
    V1 /= np.linalg.norm(V1, axis=(2, 3), keepdims=True)
    v2, v3 = r.standard_normal((2, 4, 2)), r.standard_normal((2, 4, C))
    batch = three_layer_objective(A, Y, torch.tensor(V1), torch.tensor(v2), torch.tensor(v3), loss=loss, beta=0.4)
    for s in range(2):
        ref = ThreeLayerNetwork(V1[s], v2[s], v3[s]).objective(X, y, loss, 0.4)
        assert float(batch[s]) == pytest.approx(ref, rel=1e-12)


class _CustomSquared(SquaredLoss):
    """Not one of the built-in classes: the trainer must go through loss.value."""


class _LoopOnlySquared(SquaredLoss):
    def value(self, Z, Y):
        if Z.dim() != 2:  # pragma: no cover - guards the test
            raise AssertionError("value must see one start at a time")
        return 0.5 * torch.sum((Z - Y) ** 2) + Z.detach().sum().item() * 0.0  # .item(): not vmappable


@pytest.mark.parametrize("loss_cls", [_CustomSquared, _LoopOnlySquared])
def test_custom_loss_uses_its_value(loss_cls):
    X, y = planted_regression(n=10, d=2, seed=16)
    ref = train_two_layer(X, y, width=3, n_starts=2, max_iter=30, random_state=0)
    res = train_two_layer(X, y, width=3, loss=loss_cls(), n_starts=2, max_iter=30, random_state=0)
    np.testing.assert_allclose(res.objectives, ref.objectives, rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    X, y = planted_regression(n=30, d=2, seed=17)
    cpu = train_three_layer(X, y, n_subnetworks=3, hidden=2, n_starts=2, max_iter=50, random_state=0)
    gpu = train_three_layer(X, y, n_subnetworks=3, hidden=2, n_starts=2, max_iter=50, random_state=0, device="cuda")
    np.testing.assert_allclose(gpu.objectives, cpu.objectives, rtol=1e-8)


@pytest.mark.parametrize("optimizer,schedule", [("adam", "constant"), ("adam", "cosine"), ("sgd", "constant")])
def test_update_rule_is_torch_optim(optimizer, schedule):
    """The built-in steps are those of torch.optim.Adam / SGD (+ CosineAnnealingLR)."""
    from convexrelu.nonconvex import _run

    X, y = planted_regression(n=12, d=2, seed=18)
    A, Y = _tensors(X, y, "squared")
    g = torch.Generator().manual_seed(0)
    W1_0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    W2_0 = torch.randn(2, 4, 1, generator=g, dtype=torch.float64)
    W1, W2 = W1_0.clone(), W2_0.clone()
    n_steps, lr = 25, 0.02
    _, hist, _ = _run([W1, W2], lambda: two_layer_objective(A, Y, W1, W2, loss="squared", beta=0.1),
                      project=None, max_iter=n_steps, lr=lr, optimizer=optimizer, schedule=schedule, tol=0.0,
                      window=1000, history_every=1, tag="test")
    R1, R2 = W1_0.clone().requires_grad_(True), W2_0.clone().requires_grad_(True)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([R1, R2], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_steps) if schedule == "cosine" else None
    ref = []
    for _ in range(n_steps + 1):
        obj = two_layer_objective(A, Y, R1, R2, loss="squared", beta=0.1)
        ref.append(obj.detach().numpy())
        opt.zero_grad()
        obj.sum().backward()
        opt.step()
        if sched is not None:
            sched.step()
    np.testing.assert_allclose(np.array(hist).T, np.array(ref), rtol=1e-12)


def test_project_first_layer():
    r = np.random.default_rng(4)
    W = torch.tensor(r.standard_normal((5, 6, 3, 2)))
    W[0, 0] *= 1e-3  # inside the ball: unchanged
    before = W.clone()
    norms_before = torch.sqrt(torch.sum(W**2, dim=(-2, -1), keepdim=True))
    out = project_first_layer(W)
    assert out is W
    norms = torch.sqrt(torch.sum(W**2, dim=(-2, -1)))
    assert torch.all(norms <= 1 + 1e-15)
    assert torch.equal(W[0, 0], before[0, 0])
    assert torch.allclose(W, before / torch.clamp(norms_before, min=1.0), rtol=1e-15, atol=0)
    outside = norms_before.flatten() > 1
    assert outside.sum() > 20
    assert torch.allclose(norms.flatten()[outside], torch.ones(int(outside.sum()), dtype=torch.float64))


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_projection_keeps_first_layers_in_the_ball(dtype):
    X, y = planted_regression(n=15, d=2, seed=5)
    for seed in range(4):
        res = train_three_layer(X, 10 * y, n_subnetworks=4, hidden=3, beta=1e-3, n_starts=2, max_iter=200, lr=0.1,
                                random_state=seed, dtype=dtype)
        norms = np.concatenate([net.first_layer_norms() for net in res.networks])
        assert np.all(norms <= 1 + (1e-12 if dtype == torch.float64 else 1e-6))
        assert np.max(norms) > 0.99  # large targets push against the constraint
        assert math.isfinite(res.objective)


@pytest.mark.parametrize("trainer", ["two", "gated", "three"])
def test_determinism(trainer):
    X, y = planted_regression(n=14, d=2, seed=6)

    def run(seed):
        if trainer == "three":
            return train_three_layer(X, y, n_subnetworks=3, hidden=2, beta=1e-2, n_starts=2, max_iter=150,
                                     random_state=seed)
        return train_two_layer(X, y, width=5, beta=1e-2, gated=trainer == "gated", n_starts=2, max_iter=150,
                               random_state=seed)

    a, b, c = run(7), run(7), run(8)
    assert a.objectives == b.objectives and a.histories == b.histories
    assert np.array_equal(a.network.W1, b.network.W1)
    if trainer == "gated":
        assert np.array_equal(a.network.gates, b.network.gates)
        assert not np.array_equal(a.network.gates, c.network.gates)
    assert a.objectives != c.objectives
    assert not np.array_equal(a.network.W1, c.network.W1)


def test_numpy_generator_seeds_and_global_state_untouched():
    X, y = planted_regression(n=10, d=2, seed=9)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = train_two_layer(X, y, width=3, max_iter=20, random_state=np.random.default_rng(5))
    b = train_two_layer(X, y, width=3, max_iter=20, random_state=np.random.default_rng(5))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.objective == b.objective


def test_starts_are_independent_of_each_other():
    """Start 0 of a multi-start run is the single-start run of the same seed."""
    X, y = planted_regression(n=14, d=2, seed=6)
    one = train_two_layer(X, y, width=4, beta=1e-2, n_starts=1, max_iter=60, random_state=3)
    three = train_two_layer(X, y, width=4, beta=1e-2, n_starts=3, max_iter=60, random_state=3)
    assert three.objectives[0] == pytest.approx(one.objectives[0], rel=1e-9)
    assert three.objective == min(three.objectives) <= one.objective + 1e-12


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-2), ("sgd", 3e-3)])
@pytest.mark.parametrize("trainer", ["two", "three"])
def test_objective_decreases(optimizer, lr, trainer):
    X, y = planted_regression(n=20, d=2, seed=10)
    kw = dict(beta=1e-2, n_starts=3, max_iter=400, lr=lr, optimizer=optimizer, random_state=0, history_every=5)
    if trainer == "two":
        res = train_two_layer(X, y, width=8, **kw)
    else:
        res = train_three_layer(X, y, n_subnetworks=4, hidden=2, **kw)
    for s, hist in enumerate(res.histories):
        assert len(hist) == res.iterations[s] // 5 + 1
        assert hist[-1] < hist[0]
        assert res.objectives[s] <= min(hist) * (1 + 1e-12)
    assert res.objective < 0.8 * res.histories[res.best_start][0]
    assert res.objective == min(res.objectives)
    assert res.objective < 0.5 * np.sum(y**2)  # better than the zero network


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("kind", ["relu", "gated", "three"])
def test_reported_objective_is_the_network_objective(loss, kind):
    X, y = _data(loss, n=16, seed=11)
    C = get_loss(loss).prepare_targets(y).shape[1]
    kw = dict(loss=loss, beta=5e-2, n_starts=3, max_iter=300, random_state=1)
    if kind == "three":
        res = train_three_layer(X, y, n_subnetworks=3, hidden=2, **kw)
        assert isinstance(res.network, ThreeLayerNetwork)
        assert res.network.W1.shape == (3, 3, 2) and res.network.w3.shape == (3, C)
    else:
        res = train_two_layer(X, y, width=6, gated=kind == "gated", **kw)
        assert isinstance(res.network, TwoLayerNetwork)
        assert res.network.W1.shape == (3, 6) and res.network.W2.shape == (6, C)
        assert (res.network.gates is not None) == (kind == "gated")
    assert isinstance(res, TrainResult) and res.n_starts == 3
    assert len(res.networks) == 3 and res.networks[res.best_start] is res.network
    for net, value in zip(res.networks, res.objectives):
        assert value == net.objective(X, y, loss, 5e-2)
    ref = res.network.objective(X, y, loss, 5e-2)
    assert abs(res.objective - ref) <= 1e-10 * abs(ref)
    assert res.objective == min(res.objectives) == res.objectives[res.best_start]
    assert res.network.predict(X).shape == (len(X), C)
    assert res.objective < res.histories[res.best_start][0]
    assert res.time > 0


def test_float32_and_no_intercept():
    X, y = planted_regression(n=12, d=3, seed=12)
    res = train_two_layer(X, y, width=4, fit_intercept=False, max_iter=100, random_state=0, dtype=torch.float32)
    assert res.network.fit_intercept is False and res.network.W1.shape == (3, 4)
    assert res.objective == pytest.approx(res.network.objective(X, y, "squared", 1e-3), rel=1e-12)
    res3 = train_three_layer(X, y, n_subnetworks=2, hidden=2, fit_intercept=False, max_iter=100, random_state=0)
    assert res3.network.fit_intercept is False and res3.network.W1.shape == (2, 3, 2)


def test_fixed_gates_are_kept():
    X, y = planted_regression(n=10, d=1, seed=13)
    gates = np.random.default_rng(0).standard_normal((2, 5))
    res = train_two_layer(X, y, width=5, gates=gates, n_starts=2, max_iter=50, random_state=0)
    np.testing.assert_array_equal(res.network.gates, gates)
    hidden = res.network.hidden(X)
    np.testing.assert_array_equal(hidden == 0, (add_intercept(X) @ gates < 0) | (hidden == 0))


def test_early_stopping():
    X, y = planted_regression(n=10, d=1, seed=14)
    res = train_two_layer(X, y, width=3, max_iter=20000, lr=0.05, tol=1e-3, window=50, n_starts=2, random_state=0)
    assert all(it < 20000 and it % 50 == 0 for it in res.iterations)
    full = train_two_layer(X, y, width=3, max_iter=120, tol=0.0, window=50, random_state=0)
    assert full.iterations[0] <= 120


@pytest.mark.parametrize("trainer", ["two", "three"])
def test_max_time_stops_at_the_best_iterate(trainer):
    """With ``max_time`` no step starts after it; each start keeps its best iterate, which
    is the network returned (its objective the best one seen)."""
    X, y = planted_regression(n=200, d=3, seed=16)
    kw = dict(max_iter=10**7, tol=0.0, n_starts=2, random_state=0, max_time=0.3)
    start = time.perf_counter()
    res = (train_two_layer(X, y, width=20, **kw) if trainer == "two"
           else train_three_layer(X, y, n_subnetworks=10, **kw))
    assert time.perf_counter() - start < 30.0  # (0.3 s of steps; without the limit, hours)
    assert all(0 < it < 10**7 for it in res.iterations)
    assert res.objective <= min(min(h) for h in res.histories) * (1 + 1e-12)
    assert res.objective < res.histories[0][0]


def test_cosine_schedule_runs():
    X, y = planted_regression(n=10, d=1, seed=15)
    res = train_two_layer(X, y, width=3, max_iter=200, lr=0.05, schedule="cosine", random_state=0)
    assert res.objective < res.histories[0][0]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(X=np.array([[np.nan], [1.0], [2.0]])), ValueError, "X"),
        (dict(X=np.ones(3)), ValueError, "X"),
        (dict(y=np.ones(4)), ValueError, "y"),
        (dict(y=np.array([1.0, np.nan, 0.0])), ValueError, "y"),
        (dict(width=0), ValueError, "width"),
        (dict(width=2.5), TypeError, "width"),
        (dict(beta=-1.0), ValueError, "beta"),
        (dict(beta=float("nan")), ValueError, "beta"),
        (dict(n_starts=0), ValueError, "n_starts"),
        (dict(max_iter=-1), ValueError, "max_iter"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(schedule="step"), ValueError, "schedule"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(loss="hinge"), ValueError, "loss"),
        (dict(dtype=torch.int64), ValueError, "dtype"),
        (dict(random_state="seed"), ValueError, "random_state"),
        (dict(gates=np.ones((3, 2))), ValueError, "gates"),
        (dict(max_time=0.0), ValueError, "max_time: expected a positive number of seconds"),
        (dict(max_time="1"), ValueError, "max_time: expected a positive number of seconds"),
    ],
)
def test_two_layer_bad_input(kwargs, exc, match):
    args = dict(X=np.array([[0.0], [1.0], [2.0]]), y=np.array([0.0, 1.0, 0.5]), width=2, max_iter=5)
    args.update(kwargs)
    X, y = args.pop("X"), args.pop("y")
    with pytest.raises(exc, match=match):
        train_two_layer(X, y, **args)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(n_subnetworks=0), ValueError, "n_subnetworks"),
        (dict(hidden=0), ValueError, "hidden"),
        (dict(beta=-0.5), ValueError, "beta"),
        (dict(X=np.array([[np.inf], [1.0], [2.0]])), ValueError, "X"),
        (dict(loss="logistic"), ValueError, "y"),  # targets are not in {-1, +1}
    ],
)
def test_three_layer_bad_input(kwargs, exc, match):
    args = dict(X=np.array([[0.0], [1.0], [2.0]]), y=np.array([0.0, 1.0, 0.5]), n_subnetworks=2, max_iter=5)
    args.update(kwargs)
    X, y = args.pop("X"), args.pop("y")
    with pytest.raises(exc, match=match):
        train_three_layer(X, y, **args)
