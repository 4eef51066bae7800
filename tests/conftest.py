"""Shared fixtures: small deterministic data sets."""

import cvxpy as cp
import numpy as np
import pytest

#: SCS comes with CVXPY from PyPI, but an environment can lack it (CVXPY then lists the
#: solvers it has): the tests that name it need it
needs_scs = pytest.mark.skipif("SCS" not in cp.installed_solvers(), reason="the CVXPY solver SCS is not installed")


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread is faster (no OpenMP start-up or contention,
    robust on a loaded machine). Modules use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def planted_regression(n=30, d=3, seed=0, noise=0.1):
    """Targets from a two-neuron ReLU teacher plus noise."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    u1, u2 = r.standard_normal(d), r.standard_normal(d)
    y = np.maximum(X @ u1, 0) - np.maximum(X @ u2, 0) + noise * r.standard_normal(n)
    return X, y


def targets_for(loss, y):
    """Targets of a regression vector ``y`` in the form ``loss`` expects."""
    if loss == "squared":
        return y
    if loss == "logistic":
        return np.where(y >= np.median(y), 1.0, -1.0)
    if loss == "softmax":
        return np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    raise ValueError(loss)


def small_program(cls, loss="squared"):
    """The small program of ``cls`` (n = 24, d = 2, 6 patterns, beta = 0.1; three-layer
    sub-networks with 2 first-layer neurons) for ``loss``, as the solver tests use it."""
    from convexrelu import ThreeLayerReLUProgram

    X, y = planted_regression(n=24, d=2, seed=0)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    return cls(X, targets_for(loss, y), 6, loss=loss, beta=0.1, random_state=0, **extra)


def dense_model(op):
    """The model matrix ``A`` of the operator ``op`` (n C, d B), one column per unit
    weight (row-major over the (d, B) weights), as a torch tensor."""
    import torch

    d, B = op.shape
    cols = []
    for k in range(d * B):
        e = torch.zeros(d * B, dtype=op.dtype)
        e[k] = 1
        cols.append(op.matvec(e.reshape(d, B)).reshape(-1))
    return torch.stack(cols, dim=1)


def grown_program(prog, n_extra: int, random_state=1):
    """``prog`` with up to ``n_extra`` more sampled patterns (its own first-layer width
    for three layers), the old ones first."""
    from convexrelu import ThreeLayerReLUProgram
    from convexrelu.patterns import sample_three_layer, sample_two_layer

    if isinstance(prog, ThreeLayerReLUProgram):
        extra = sample_three_layer(prog.X_design, n_extra, prog.hidden, random_state=random_state)
    else:
        extra = sample_two_layer(prog.X_design, n_extra, random_state=random_state)
    return prog.with_patterns(prog.patterns.union(extra))
