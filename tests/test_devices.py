"""Every solver, operator and estimator on an accelerator (CUDA) against the CPU.

The programs and their solutions live on the host (numpy); the computations run on the
program's torch device: CUDA where there is one, else the CPU (CI has no GPU: there the
same code paths run, host copies included, without a device to copy to). To name the
devices::

    CONVEXRELU_TEST_DEVICES=cuda,cpu python -m pytest tests/test_devices.py

Problems are small (n = 24), as in test_solvers.py: the oracle is CVXPY on the CPU.
"""

import os
import warnings

import numpy as np
import pytest
import torch

from convexrelu import ConvexReLURegressor, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu.solvers import ConvergenceWarning, CVXPYSolver, Solution, get_solver
from conftest import planted_regression, small_program


def _devices() -> list[str]:
    named = os.environ.get("CONVEXRELU_TEST_DEVICES")
    if named:
        return [d.strip() for d in named.split(",") if d.strip()]
    return ["cuda"] if torch.cuda.is_available() else ["cpu"]


DEVICES = _devices()

PROGRAMS = [TwoLayerReLUProgram, GatedReLUProgram, ThreeLayerReLUProgram]
SOLVERS = ["fista", "auglag", "admm", "ipm", "auto"]

_CPU: dict = {}
_REFERENCES: dict = {}


def cpu_program(cls, loss="squared"):
    key = (cls, loss)
    if key not in _CPU:
        _CPU[key] = small_program(cls, loss)
    return _CPU[key]


def reference(cls, loss="squared") -> Solution:
    key = (cls, loss)
    if key not in _REFERENCES:
        _REFERENCES[key] = CVXPYSolver().solve(cpu_program(cls, loss))
    return _REFERENCES[key]


def _relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def _solve(name, prog, **kw):
    if name == "auto":
        kw.update(cvxpy_max_size=0, ipm=False)  # tiny programs: force the first-order path
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return get_solver(name, **kw).solve(prog)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", PROGRAMS)
def test_operator_on_device_matches_the_cpu(device, cls):
    """Model, constraints and adjoint computed on the device equal the CPU's; the adjoint
    identity holds there."""
    cpu = cpu_program(cls).operator
    dev = cpu.to(device)
    assert dev.device.type == torch.device(device).type
    rng = np.random.default_rng(1)
    Q = torch.tensor(rng.standard_normal(cpu.shape))
    R = torch.tensor(rng.standard_normal((cpu.n_samples, cpu.n_outputs)))
    L = tuple(torch.tensor(rng.standard_normal(s)) for s in cpu.constraint_shapes)
    Zc, Cc = cpu.apply(Q)
    Zd, Cd = dev.apply(Q.to(device))
    torch.testing.assert_close(Zd.cpu(), Zc, rtol=1e-12, atol=1e-12)
    for a, b in zip(Cd, Cc):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-12)
    Ad = dev.adjoint(R.to(device), tuple(m.to(device) for m in L))
    torch.testing.assert_close(Ad.cpu(), cpu.adjoint(R, L), rtol=1e-12, atol=1e-12)
    lhs = torch.sum(Zd * R.to(device)) + sum(torch.sum(c * m.to(device)) for c, m in zip(Cd, L))
    assert float(lhs) == pytest.approx(float(torch.sum(Q.to(device) * Ad)), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("cls", PROGRAMS)
def test_solver_on_device_agrees_with_cvxpy(device, name, cls):
    """float64 on the device: within 1e-5 of CVXPY's objective, feasible, a valid bound,
    host arrays in the record, and the recovered network reproduces it."""
    prog = cpu_program(cls).to(device)
    if name == "fista" and prog.has_constraints:
        pytest.skip("FISTA solves unconstrained programs")
    ref = reference(cls)
    sol = _solve(name, prog)
    assert sol.converged
    assert _relative(sol.objective, ref.objective) <= 1e-5
    assert isinstance(sol.weights, np.ndarray) and sol.weights.shape == prog.shape
    assert all(isinstance(m, np.ndarray) for m in sol.multipliers)
    assert sol.objective == pytest.approx(prog.objective(sol.weights), rel=1e-12)
    assert sol.lower_bound <= ref.objective * (1 + 1e-7) + 1e-9
    assert sol.constraint_violation <= 1e-9 * max(1.0, float(np.abs(sol.weights).max()))
    X, y = planted_regression(n=24, d=2, seed=0)
    net = prog.recover(sol.weights)
    assert net.objective(X, y, "squared", prog.beta) == pytest.approx(sol.objective, rel=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_preconditioned_fista_on_device_agrees_with_cvxpy(device):
    """FISTA's low-rank metric (its eigen-estimate and Newton solves) on the device."""
    prog = cpu_program(GatedReLUProgram).to(device)
    sol = _solve("fista", prog, preconditioner="lowrank", rank=4)
    assert sol.converged and sol.info["metric_rank"] == 4
    assert _relative(sol.objective, reference(GatedReLUProgram).objective) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["auglag", "ipm"])
@pytest.mark.parametrize("loss", ["logistic", "softmax"])
def test_classification_losses_on_device(device, name, loss):
    prog = cpu_program(ThreeLayerReLUProgram, loss).to(device)
    sol = _solve(name, prog)
    assert sol.converged
    assert _relative(sol.objective, reference(ThreeLayerReLUProgram, loss).objective) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["auglag", "admm", "ipm"])
def test_warm_start_on_device(device, name):
    """A Solution (host arrays) warm-starts a solve on the device."""
    prog = cpu_program(TwoLayerReLUProgram).to(device)
    cold = _solve(name, prog)
    warm = get_solver(name).solve(prog, init=cold)
    assert warm.converged and warm.iterations <= max(30, cold.iterations // 5)
    assert _relative(warm.objective, reference(TwoLayerReLUProgram).objective) <= 1e-5
    tensor_init = get_solver(name).solve(prog, init=torch.tensor(cold.weights, device=device))
    assert _relative(tensor_init.objective, reference(TwoLayerReLUProgram).objective) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_float32_on_device(device):
    prog = cpu_program(ThreeLayerReLUProgram).to(device, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = get_solver("auglag", tol=1e-4).solve(prog)
    assert _relative(sol.objective, reference(ThreeLayerReLUProgram).objective) <= 1e-3
    assert sol.weights.dtype == np.float64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("depth", [2, 3])
def test_estimator_on_device_matches_the_cpu(device, depth):
    X, y = planted_regression(n=40, d=3, seed=2)
    kw = dict(depth=depth, beta=0.05, n_patterns=8, solver="ipm", random_state=0)
    cpu = ConvexReLURegressor(**kw).fit(X, y)
    dev = ConvexReLURegressor(device=device, **kw).fit(X, y)
    assert dev.objective_ == pytest.approx(cpu.objective_, rel=1e-6)
    np.testing.assert_allclose(dev.predict(X), cpu.predict(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [TwoLayerReLUProgram, ThreeLayerReLUProgram])
def test_repair_on_device_matches_the_cpu(device, cls):
    """The feasibility repair of a loose point (projection of the violated groups, then
    the local rounds) on the device gives the CPU's point, feasible."""
    from convexrelu.solvers import ADMM
    from convexrelu.solvers.auglag import restore_feasibility

    X, y = planted_regression(n=60, d=4, seed=0)
    extra = {"hidden": 2} if cls is ThreeLayerReLUProgram else {}
    prog = cls(X, y, 12, beta=0.6, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Q = ADMM(tol=1e-3, repair=False).solve(prog).weights
    on_cpu, info_cpu = restore_feasibility(prog.operator, torch.tensor(Q))
    dev = prog.to(device=device)
    on_dev, info_dev = restore_feasibility(dev.operator, torch.tensor(Q, device=device))
    assert info_dev["violation_before"] > 1e-6 and info_dev["projection"]["projected_groups"] >= 1
    assert info_dev["violation_after"] <= 1e-10
    np.testing.assert_allclose(on_dev.cpu().numpy(), on_cpu.numpy(), rtol=1e-9, atol=1e-12)
