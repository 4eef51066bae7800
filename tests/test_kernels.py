"""The compiled kernels of the augmented Lagrangian (convexrelu._kernels) against the
operator's torch evaluations they replace: the same model output, constraint values,
multipliers' sum of squares and gradient, on every layout they cover."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from convexrelu import _kernels
from convexrelu.solvers import _steps
from conftest import planted_regression, small_program, targets_for

needs_numba = pytest.mark.skipif(not _kernels.available(), reason="numba is not installed (convexrelu[fast])")


def _program(kind, dtype=torch.float64, loss="squared"):
    X, y = planted_regression(n=23, d=3, seed=1)
    y = targets_for(loss, y)
    if kind == "two":
        return TwoLayerReLUProgram(X, y, 7, loss=loss, beta=0.1, random_state=0, dtype=dtype)
    if kind == "gated":
        return GatedReLUProgram(X, y, 7, loss=loss, beta=0.1, random_state=0, dtype=dtype)
    hidden = {"three-slab": 2, "three-single": 1}[kind]
    return ThreeLayerReLUProgram(X, y, 5, hidden=hidden, loss=loss, beta=0.1, random_state=0, dtype=dtype)


def _random(shape, seed, dtype):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _torch_state(op, Q, lam, rho):
    """What the kernels replace: the operator's apply and the multiplier update."""
    Z, cons = op.apply(Q)
    P = [_steps.multiplier_update(c, m, rho) for c, m in zip(cons, lam)]
    return Z, cons, sum(float(torch.sum(p * p)) for p in P)


def _torch_gradient(op, R, lam, rho, cons):
    P = [_steps.multiplier_update(c, m, rho) for c, m in zip(cons, lam)]
    return op.adjoint(R, P), sum(float(torch.sum(p * p)) for p in P)


@needs_numba
@pytest.mark.parametrize("kind", ["two", "three-slab", "three-single"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernels_give_the_operator_values(kind, dtype):
    op = _program(kind, dtype).operator
    kern = op.penalty_kernels()
    assert kern is not None
    assert torch.equal(op._int8_first_signs().to(dtype), op._s1)  # the kernels' mask is the operator's
    if kind == "three-slab":
        assert op.group_layout == "slab" and op.group_size == 2
    if kind == "three-single":
        assert op.trivial_groups and op.cone_second
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    rho = 1.7
    lam = tuple(torch.clamp(_random(s, 10 + i, dtype), min=0) for i, s in enumerate(op.constraint_shapes))
    Q0, Q1 = _random(op.shape, 1, dtype), _random(op.shape, 2, dtype)
    work = op.workspace()

    cons = tuple(torch.empty(s, dtype=dtype) for s in op.constraint_shapes)
    Z, sq = kern.state(Q1, lam, rho, cons, work)
    Z_ref, cons_ref, sq_ref = _torch_state(op, Q1, lam, rho)
    torch.testing.assert_close(Z, Z_ref, **tol)
    for c, c_ref in zip(cons, cons_ref):
        torch.testing.assert_close(c, c_ref, **tol)
    assert sq == pytest.approx(sq_ref, rel=tol["rtol"] * 10)

    # the gradient at a state, and at an extrapolated one (its constraint values formed on the way)
    R = _random((op.n_samples, 1), 3, dtype)
    g, sq_g = kern.gradient(R, lam, rho, cons, work=work)
    g_ref, sq_g_ref = _torch_gradient(op, R, lam, rho, cons_ref)
    torch.testing.assert_close(g, g_ref, **tol)
    assert sq_g == pytest.approx(sq_g_ref, rel=tol["rtol"] * 10)

    old = op.apply(Q0)[1]
    a = 1.6
    g, sq_g = kern.gradient(R, lam, rho, old, cons, a, work=work)
    mid = op.apply(Q0 + a * (Q1 - Q0))[1]
    g_ref, sq_g_ref = _torch_gradient(op, R, lam, rho, mid)
    torch.testing.assert_close(g, g_ref, rtol=tol["rtol"] * 100, atol=tol["atol"] * 100)
    assert sq_g == pytest.approx(sq_g_ref, rel=tol["rtol"] * 100)
    # without a cotangent: the sum of squares alone
    none, sq_only = kern.gradient(None, lam, rho, old, cons, a, work=work)
    assert none is None and sq_only == pytest.approx(sq_g, rel=1e-12)


@needs_numba
def test_kernels_by_hand():
    """One sample, one block of the two-layer program: every number by hand."""
    X = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    s1 = torch.tensor([[-1]], dtype=torch.int8)  # the pattern is off: 2 D - 1 = -1
    kern = _kernels.PenaltyKernels(X, s1, torch.tensor([0.5], dtype=torch.float64), None,
                                   torch.tensor([1.0], dtype=torch.float64))
    Q = torch.tensor([[1.0], [3.0]], dtype=torch.float64)  # X q = -1
    lam = (torch.tensor([[2.0]], dtype=torch.float64),)
    cons = (torch.empty((1, 1), dtype=torch.float64),)
    from convexrelu.operators import Workspace

    Z, sq = kern.state(Q, lam, 0.5, cons, Workspace())
    # c = -1 * -1 = 1; model (1/2)(x + c) = 0 (D = 0); P = (2 - 0.5 * 1)_+ = 1.5
    assert cons[0].item() == 1.0 and Z.item() == 0.0 and sq == 2.25
    g, sq = kern.gradient(torch.tensor([[4.0]], dtype=torch.float64), lam, 0.5, cons, work=Workspace())
    # F = (1/2) 4 = 2; T = F + s1 (F + P) = 2 - (2 + 1.5) = -1.5; g = X^T T
    assert sq == 2.25 and g.flatten().tolist() == [-3.0, 1.5]


@needs_numba
@pytest.mark.parametrize("kind", ["two", "three-slab"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernels_propagate_nan(kind, dtype):
    op = _program(kind, dtype).operator
    kern = op.penalty_kernels()
    Q = _random(op.shape, 1, dtype)
    Q[0, 0] = float("nan")
    lam = tuple(torch.ones(s, dtype=dtype) for s in op.constraint_shapes)
    cons = tuple(torch.empty(s, dtype=dtype) for s in op.constraint_shapes)
    Z, sq = kern.state(Q, lam, 1.0, cons, op.workspace())
    assert np.isnan(sq) and torch.isnan(Z).any()
    g, sq = kern.gradient(torch.ones((op.n_samples, 1), dtype=dtype), lam, 1.0, cons, work=op.workspace())
    assert np.isnan(sq) and torch.isnan(g).any()


@needs_numba
def test_kernels_take_any_layout_of_their_inputs():
    """Multipliers in column-major order (a warm start's, say) give the same values."""
    op = _program("two").operator
    kern = op.penalty_kernels()
    lam = tuple(torch.clamp(_random(s, 5, torch.float64), min=0) for s in op.constraint_shapes)
    lam_f = tuple(torch.from_numpy(np.asfortranarray(m.numpy())) for m in lam)
    assert not lam_f[0].is_contiguous()
    Q = _random(op.shape, 2, torch.float64)
    cons = tuple(torch.empty(s, dtype=torch.float64) for s in op.constraint_shapes)
    Z, sq = kern.state(Q, lam, 0.9, cons, op.workspace())
    Zf, sqf = kern.state(Q, lam_f, 0.9, cons, op.workspace())
    assert torch.equal(Z, Zf) and sq == sqf
    R = _random((op.n_samples, 1), 3, torch.float64)
    g, _ = kern.gradient(R, lam, 0.9, cons, work=op.workspace())
    gf, _ = kern.gradient(R, lam_f, 0.9, cons, work=op.workspace())
    assert torch.equal(g, gf)


def test_a_forked_child_takes_the_torch_path(monkeypatch):
    """The kernels run in the process that first used them only (numba's OpenMP layer is
    not safe after a fork)."""
    if not _kernels.available():
        pytest.skip("numba is not installed")
    import os

    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert not _kernels.available()
    assert _program("two").operator.penalty_kernels() is None


@needs_numba
def test_kernels_cover_what_they_compute():
    """None where the kernels do not apply: no cone (gated), several outputs, a group
    layout other than single blocks or slabs."""
    assert _program("gated").operator.penalty_kernels() is None
    assert _program("three-slab", loss="softmax").operator.penalty_kernels() is None
    irregular = small_program(ThreeLayerReLUProgram, "squared").operator  # groups of one and two pairs
    assert irregular.group_layout is None and not irregular.trivial_groups
    assert irregular.penalty_kernels() is None
    op = _program("two").operator
    assert op.to(device="meta").penalty_kernels() is None


def test_without_numba_the_torch_operations_evaluate(monkeypatch):
    """Where numba is absent (or does not import) no operator offers kernels, and the
    augmented Lagrangian's row blocks go through the torch operations."""
    from convexrelu.solvers.fista import ALPart

    monkeypatch.setattr(_kernels, "_compiled", lambda: None)
    assert not _kernels.available()
    prog = _program("two")
    assert prog.operator.penalty_kernels() is None
    lam = tuple(torch.ones(s, dtype=torch.float64) for s in prog.operator.constraint_shapes)
    part, whole = ALPart(prog, lam, 1.0, rows=5), ALPart(prog, lam, 1.0, rows=None)
    assert part.blocks is not None and part.kernels is None
    Q = _random(prog.shape, 3, torch.float64)
    assert part.value(part.state(Q)) == pytest.approx(whole.value(whole.state(Q)), rel=1e-12)


@needs_numba
def test_kernels_leave_numbas_thread_setting_as_they_found_it():
    """The kernels run on torch's threads and restore numba's setting after (a fit had
    left numba at torch's 2 threads where its caller had set 1)."""
    import numba

    from convexrelu.operators import Workspace

    X = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    kern = _kernels.PenaltyKernels(X, torch.tensor([[-1]], dtype=torch.int8), torch.tensor([0.5], dtype=torch.float64),
                                   None, torch.tensor([1.0], dtype=torch.float64))
    lam, cons = (torch.tensor([[2.0]], dtype=torch.float64),), (torch.empty((1, 1), dtype=torch.float64),)
    before, threads = numba.get_num_threads(), torch.get_num_threads()
    try:
        numba.set_num_threads(1)
        torch.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        kern.state(torch.tensor([[1.0], [3.0]], dtype=torch.float64), lam, 0.5, cons, Workspace())
        kern.gradient(torch.tensor([[4.0]], dtype=torch.float64), lam, 0.5, cons, work=Workspace())
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(threads)


@needs_numba
def test_the_first_kernel_call_leaves_torchs_number_of_threads():
    """numba's OpenMP threading layer, as it starts (once per process: a fresh one here),
    sets the OpenMP thread count that torch reads as its own: a caller's
    ``torch.set_num_threads(1)``, once torch had read it, had become numba's two threads
    after the first kernel call, and every torch operation after it ran on them (the
    benchmarks' "one thread" figures after the first augmented-Lagrangian solve too)."""
    code = textwrap.dedent("""
        import numpy as np
        import torch
        torch.set_num_threads(1)
        from convexrelu import ThreeLayerReLUProgram
        rng = np.random.default_rng(0)
        prog = ThreeLayerReLUProgram(rng.standard_normal((40, 3)), rng.standard_normal(40), 5, hidden=2, beta=0.1,
                                     random_state=0)
        assert torch.get_num_threads() == 1
        assert prog.operator.penalty_kernels() is not None
        import numba
        print(numba.threading_layer(), torch.get_num_threads())
    """)
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    layer, threads = run.stdout.split()[-2:]
    if layer != "omp":  # (only numba's OpenMP layer shares torch's count: nothing to check)
        pytest.skip(f"numba's threading layer here is {layer!r}, not 'omp'")
    assert threads == "1"
