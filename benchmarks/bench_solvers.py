"""Solver benchmarks (issue 4): first-order solvers against CVXPY and scnn, scale, floor.

Run them all through ``python benchmarks/run_all.py`` (``--quick`` for a smoke run).
Each function returns a dict of numbers and the lines it printed.

- :func:`versus_cvxpy`: time to reach the CVXPY objective within 1e-4 relative (the
  first of a ladder of tolerances, loosest first, whose *returned, feasibility-repaired*
  solution is within 1e-4; each run from scratch), and the default solve (target 1e-6).
- :func:`versus_scnn`: scnn's augmented Lagrangian (ReLU) and R-FISTA (gated) on the same
  data, gates and objective (``unitize_data=False``, ``lambda = beta / n``); its convex
  weights are evaluated by our program (objective on our scale, cone violation).
- :func:`floor`: time per inner iteration / time of ``X @ Q`` plus ``X.T @ T`` of the
  same shapes, in the same process.
- :func:`scale`: wall time and peak memory of a three-layer solve in a child process.

Every function takes ``device``: our solvers then compute on that torch device (the
programs are built on the host and moved with ``program.to(device)``), CVXPY and scnn
stay on the host's CPU, and every timing of device work waits for the device
(:func:`_sync`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _data import run_json_child, three_layer_teacher, two_layer_teacher  # noqa: E402

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram  # noqa: E402
from convexrelu.solvers import (  # noqa: E402
    ADMM, AugmentedLagrangian, ConvergenceWarning, CVXPYSolver, FISTA, InteriorPoint,
)
from convexrelu.solvers._presolve import live_part  # noqa: E402
from convexrelu.solvers.ipm import _gram_lower  # noqa: E402
from convexrelu.solvers.auglag import relative_violation  # noqa: E402
from convexrelu.solvers.fista import ALPart, LossPart, fista_minimize, gradient_scale  # noqa: E402

KINDS = {"three": ThreeLayerReLUProgram, "relu": TwoLayerReLUProgram, "gated": GatedReLUProgram}


def build(kind: str, n: int, d: int, patterns: int, *, m1: int = 3, beta: float | None = None, seed: int = 0,
          dtype=torch.float64, device="cpu"):
    """Program of ``kind`` on planted-teacher data; ``beta`` defaults to ``1e-3 n``
    (scnn's ``lambda = 1e-3``)."""
    beta = 1e-3 * n if beta is None else beta
    if kind == "three":
        X, y = three_layer_teacher(n, d, m1=m1, seed=seed)
        return ThreeLayerReLUProgram(X, y, patterns, hidden=m1, beta=beta, random_state=seed, dtype=dtype,
                                     device=device)
    X, y = two_layer_teacher(n, d, seed=seed)
    return KINDS[kind](X, y, patterns, beta=beta, random_state=seed, dtype=dtype, device=device)


def _sync(device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``), or "cpu"."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def _relative_violation(program, Q) -> float:
    return relative_violation(program.operator, program.as_tensor(Q))


def _solve(solver, program, init=None):
    """``solver.solve(program, init)`` and its wall time (the Solution holds host arrays:
    the solve has waited for the device when it returns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        sol = solver.solve(program, init=init)
        return sol, time.perf_counter() - t


LADDER_AL = [dict(tol=1e-4, feas_tol=1e-6), {}]
LADDER_FISTA = [dict(tol=1e-5), {}]
LADDER_ADMM = [dict(tol=1e-4), dict(tol=1e-5), {}]
LADDER_IPM = [dict(tol=1e-4), dict(tol=1e-5), dict(tol=1e-6), {}]


@contextlib.contextmanager
def _threads(n):
    """Context: torch uses ``n`` threads inside (None: unchanged)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _warm_up(kind: str, solvers, *, m1: int = 3, ipm_threads: int | None = None, device="cpu"):
    """One untimed solve of a tiny program of ``kind`` by each solver class (as timed
    later: the interior point with ``ipm_threads``, ours on ``device``), so that no timed
    run pays a first call's one-off costs (lazy initialisation of the linear algebra,
    memory growth, the device's kernels and context)."""
    tiny = build(kind, 60, 3, 6, m1=min(m1, 2))
    for cls in solvers:
        with _threads(ipm_threads if cls is InteriorPoint else None):
            _solve(cls() if cls is CVXPYSolver else cls(max_time=5.0), tiny if cls is CVXPYSolver else tiny.to(device))


def versus_cvxpy(kind: str, n: int, d: int, patterns: int, *, m1: int = 3, program=None, cvxpy_solution=None,
                 time_cap: float = 300.0, ipm_threads: int | None = None, device="cpu", ladders=None):
    """Our solvers against CVXPY (Clarabel) on one program.

    For each solver (the interior point, ADMM, and the augmented Lagrangian or FISTA),
    a ladder of tolerances, loosest first, each run from scratch and capped at
    ``min(time_cap, max(2 x CVXPY's time, 30))`` seconds (``max_time``); the time to
    1e-4 is that of the first run whose returned (feasibility-repaired) objective is
    within 1e-4 relative of CVXPY's, the time to 1e-6 that of the first run within 1e-6
    with a relative cone violation below 1e-9. The interior point runs with
    ``ipm_threads`` torch threads (its Woodbury product is a large GEMM). Ours compute on
    ``device`` (CVXPY on the host); ``ladders`` maps a solver name to its list of settings
    (default: ``LADDER_IPM``, ``LADDER_ADMM``, ``LADDER_AL`` or ``LADDER_FISTA``)."""
    prog = program or build(kind, n, d, patterns, m1=m1)
    ours = prog.to(device)
    out = {"kind": kind, "n": n, "d": d, "patterns": len(prog.patterns), "blocks": prog.shape[1], "beta": prog.beta}
    other = (AugmentedLagrangian, LADDER_AL) if prog.has_constraints else (FISTA, LADDER_FISTA)
    _warm_up(kind, [CVXPYSolver, InteriorPoint, ADMM, other[0]], m1=m1, ipm_threads=ipm_threads, device=device)
    if cvxpy_solution is None:
        ref, t_ref = _solve(CVXPYSolver(), prog)
    else:
        ref, t_ref = cvxpy_solution
    out.update(cvxpy_time=t_ref, cvxpy_objective=ref.objective)
    cap = min(time_cap, max(2 * t_ref, 30.0))
    out["time_cap"] = cap
    lines = [
        f"{kind:6s} n={n} d={d} patterns={out['patterns']} blocks={out['blocks']} beta={prog.beta:g}: "
        f"CVXPY {t_ref:.2f}s (objective {ref.objective:.10g})" + ("" if ours.device.type == "cpu" else
                                                                   f"; ours on {device_name(device)}"),
    ]
    out["solvers"] = {}
    for cls, ladder in ((InteriorPoint, LADDER_IPM), (ADMM, LADDER_ADMM), other):
        ladder = (ladders or {}).get(cls.name, ladder)
        runs = []
        for kw in ladder:
            with _threads(ipm_threads if cls is InteriorPoint else None):
                sol, t = _solve(cls(**kw, max_time=cap), ours)
            rel = _rel(sol.objective, ref.objective)
            runs.append(dict(settings=kw or "default", time=t, rel=rel, iterations=sol.iterations,
                             violation=_relative_violation(prog, sol.weights), gap=sol.relative_gap,
                             converged=sol.converged, status=sol.status))
            if kw == {} or rel <= 1e-6:
                break
        reach = next((r for r in runs if r["rel"] <= 1e-4), None)
        reach6 = next((r for r in runs if r["rel"] <= 1e-6 and r["violation"] <= 1e-9), None)
        final = runs[-1]
        res = dict(runs=runs, time_to_1e4=None if reach is None else reach["time"],
                   time_to_1e6=None if reach6 is None else reach6["time"],
                   ratio_1e4=None if reach is None else t_ref / reach["time"], final_time=final["time"],
                   final_rel=final["rel"], final_violation=final["violation"], final_gap=final["gap"],
                   ratio_final=t_ref / final["time"])
        out["solvers"][cls.name] = res
        for r in runs:
            lines.append(
                f"    {cls.name:6s} {str(r['settings']):34s} {r['time']:8.2f}s  rel.err {r['rel']:.1e}  "
                f"violation {r['violation']:.1e}  gap {r['gap']:.1e}  iterations {r['iterations']}  {r['status']}"
            )
        lines.append(
            f"    {cls.name}: time to 1e-4: {_fmt(res['time_to_1e4'], 's')}  ratio CVXPY/ours "
            f"{_fmt(res['ratio_1e4'], 'x')}; to 1e-6 with violation <= 1e-9: {_fmt(res['time_to_1e6'], 's')}; "
            f"to {final['rel']:.0e}: ratio {res['ratio_final']:.2f}x"
        )
    best = min((r for r in out["solvers"].values() if r["time_to_1e4"] is not None), key=lambda r: r["time_to_1e4"],
               default=None)
    out.update(time_to_1e4=None if best is None else best["time_to_1e4"],
               ratio_1e4=None if best is None else best["ratio_1e4"])
    out["lines"] = lines
    return out


def _fmt(v, unit):
    return "n/a" if v is None else (f"{v:.2f}{unit}")


# ----------------------------------------------------------------------------- scnn
def versus_scnn(kind: str, n: int, d: int, patterns: int, *, program=None, reference_objective=None):
    """scnn on the same data, gates (our generators) and objective."""
    prog = program or build(kind, n, d, patterns)
    out = {"kind": kind, "n": n}
    try:
        from scnn.metrics import Metrics
        from scnn.models import ConvexGatedReLU, ConvexReLU
        from scnn.optimize import optimize_model
        from scnn.regularizers import NeuronGL1
        from scnn.solvers import AL, RFISTA
    except Exception as exc:  # pragma: no cover - depends on the machine
        out["error"] = f"scnn not importable: {exc!r} (pip install --no-deps pyscnn linalg_backends opt_einsum tqdm)"
        out["lines"] = [f"scnn {kind}: {out['error']}"]
        return out
    X = prog.X_design  # intercept column included: scnn with bias=False sees the same design
    y = prog.Y_np
    G = prog.patterns.generators
    P = G.shape[1]

    def fit(X, y, G, lam):
        model = ConvexReLU(G, c=1, bias=False) if kind == "relu" else ConvexGatedReLU(G, c=1, bias=False)
        solver = AL(model) if kind == "relu" else RFISTA(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            cvx, _ = optimize_model(model, solver, Metrics(), X, y, regularizer=NeuronGL1(lam), return_convex=True,
                                    unitize_data=False, verbose=False, dtype="float64")
            return cvx, time.perf_counter() - t

    try:
        tiny = build(kind, 60, 3, 6)  # untimed warm-up, as for our solvers
        fit(tiny.X_design, tiny.Y_np, tiny.patterns.generators, tiny.beta / 60)
        cvx, elapsed = fit(X, y, G, prog.beta / n)
    except Exception as exc:  # pragma: no cover
        out["error"] = f"scnn failed: {exc!r}"
        out["lines"] = [f"scnn {kind}: {out['error']}"]
        return out
    params = cvx.parameters
    # scnn sorts (and deduplicates) the gates: map its columns back to ours by the gate vectors
    Gs = np.asarray(cvx.G)
    dist = np.linalg.norm(Gs[:, :, None] - G[:, None, :], axis=0)
    index = dist.argmin(axis=1)
    same = bool(np.all(dist[np.arange(len(index)), index] <= 1e-9 * np.abs(G).max()))
    Q = np.zeros(prog.shape)
    Q[:, index] = params[0][0].T
    if kind == "relu":  # our layout: v blocks then w blocks
        Q[:, P + index] = params[1][0].T
    # scnn's gates are 1[X G > 0], ours 1[X G >= 0]: the same for continuous data
    same = same and bool(np.array_equal((X @ Gs) > 0, prog.patterns.masks[:, index]))
    obj = prog.objective(Q)
    out.update(time=elapsed, objective=obj, violation=_relative_violation(prog, Q), same_patterns=same,
               rel=None if reference_objective is None else (obj - reference_objective) / reference_objective)
    out["lines"] = [
        f"scnn {'AL' if kind == 'relu' else 'R-FISTA'} {kind} n={n} gates={P}: {elapsed:.2f}s, objective {obj:.10g} "
        f"(ours/CVXPY scale), rel. to optimum {_fmt_e(out['rel'], sign=True)}, cone violation {out['violation']:.1e}"
        + ("" if same else "  [gate patterns differ from ours!]")
    ]
    return out


def _fmt_e(v, sign: bool = False):
    """``v`` as ``1.2e-03`` (``+1.2e-03`` with ``sign``), or "n/a" for None."""
    return "n/a" if v is None else (f"{v:+.1e}" if sign else f"{v:.1e}")


# ----------------------------------------------------------------------------- floor
def _time(fn, repeat, device="cpu"):
    """Mean wall time of ``fn()`` over ``repeat`` calls after one untimed call, waiting
    for ``device`` before reading each clock."""
    fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / repeat


def gemm_pair_timer(op):
    """``measure(repeat)``: the time of the two GEMMs of an iteration at the shapes of ``op``,
    ``X @ Q`` into an existing array (as the solvers compute it: a new array of that size
    costs as much again in page faults on the CPU, the cheaper baseline) plus ``X.T @ T``,
    each the mean of ``repeat`` calls (:func:`_time`), on random arrays made once."""
    X = op.X
    Q = torch.randn(op.shape, dtype=op.dtype, device=op.device)
    T = torch.randn((op.n_samples, op.n_blocks), dtype=op.dtype, device=op.device)
    P = torch.empty_like(T)

    def measure(repeat: int) -> float:
        return _time(lambda: torch.matmul(X, Q, out=P), repeat, op.device) + _time(lambda: X.T @ T, repeat, op.device)

    return measure


def floor(program, solution=None, *, iterations: int = 200, trials: int = 3):
    """Time per inner FISTA iteration over time of the two GEMMs ``X @ Q``, ``X.T @ T``,
    on the live part of the program (what the solvers iterate on: their presolve). Each
    of the two times is the median of ``trials`` measurements, taken alternately (one
    slow measurement on this shared machine once put the two GEMMs at 101 ms instead of
    28 ms).

    Where the augmented Lagrangian evaluates by row blocks with the compiled kernels
    (:mod:`convexrelu._kernels`, numba installed), the same iterations with the torch
    operations instead are timed in the same trials, alternately: ``per_iteration_torch``
    and ``ratio_torch`` (None otherwise)."""
    program, solution, _ = live_part(program, solution)
    op = program.operator
    Q0 = op.zeros() if solution is None else program.as_tensor(np.array(solution.weights))
    if program.has_constraints:
        lam = tuple(torch.zeros(s, dtype=op.dtype, device=op.device) for s in op.constraint_shapes)
        if solution is not None and solution.multipliers:
            lam = tuple(torch.as_tensor(m, dtype=op.dtype, device=op.device) for m in solution.multipliers)
        part = ALPart(program, lam, rho=10.0)
    else:
        part = LossPart(program)
    plain = ALPart(program, lam, rho=10.0, kernels=False) if getattr(part, "kernels", None) is not None else None
    scale = gradient_scale(program)
    # warm-up, which also finds the step the line search settles on: the timed iterations
    # start from it (from a guess they would spend their first ones backtracking)
    step = fista_minimize(part, Q0, program.beta, step=1e-6, max_iter=10, tol=0.0, scale=scale).step
    gemm_pair = gemm_pair_timer(op)
    iters, gemms, iters_plain = [], [], []
    for _ in range(trials):
        if plain is not None:
            t = time.perf_counter()
            res = fista_minimize(plain, Q0, program.beta, step=step, max_iter=iterations, tol=0.0, scale=scale)
            iters_plain.append((time.perf_counter() - t) / res.iterations)
        _sync(op.device)
        t = time.perf_counter()
        res = fista_minimize(part, Q0, program.beta, step=step, max_iter=iterations, tol=0.0, scale=scale)
        _sync(op.device)
        iters.append((time.perf_counter() - t) / res.iterations)
        repeat = max(3, min(200, int(0.5 / max(iters[-1], 1e-6))))
        gemms.append(gemm_pair(repeat))
    per_iter, gemm = float(np.median(iters)), float(np.median(gemms))
    per_plain = float(np.median(iters_plain)) if iters_plain else None
    n, d = op.X.shape
    return {"n": n, "d": d, "blocks": op.n_blocks, "dtype": str(op.dtype).replace("torch.", ""),
            "per_iteration": per_iter, "two_gemms": gemm, "ratio": per_iter / gemm,
            "per_iteration_torch": per_plain, "ratio_torch": None if per_plain is None else per_plain / gemm,
            "backtracks_per_iteration": res.backtracks / res.iterations}


def ipm_floor(program, *, iterations: int = 12, threads: int | None = None):
    """Interior point: time per Newton iteration over the time of its one unavoidable
    dense product, the Woodbury matrix ``V^T V`` (``V`` of shape (K m d, n C): ``K``
    classes of groups sharing their model part up to sign, ``m`` blocks per group) computed
    as the solver does (on and below the diagonal, by block columns), measured in the same
    process. The time per iteration is that of ``iterations + 4`` iterations less that of 4,
    over ``iterations`` (the median of three such pairs, run alternately): the one-off costs of a solve (presolve, the selection of the cone
    rows, the factor ``A^T``, the final repair) cancel; ``setup`` is what they took."""
    op = program.operator
    with _threads(threads):
        _solve(InteriorPoint(max_iter=2), program)  # warm-up
        pairs = []
        for _ in range(3):  # alternate, median: one slow solve (a device's allocator, the load) skews one pair
            short, t_short = _solve(InteriorPoint(max_iter=4, tol=1e-14), program)
            long, t_long = _solve(InteriorPoint(max_iter=iterations + 4, tol=1e-14), program)
            pairs.append(((t_long - t_short) / max(long.iterations - short.iterations, 1), t_short))
        per_iter, t_short = sorted(pairs)[1]
        part = live_part(program)[0].operator  # what the solver iterates on (its presolve)
        rows = len(part.coefficient_classes()[2]) * part.padded_groups().shape[1] * part.n_features
        V = torch.randn((rows, op.n_samples * op.n_outputs), dtype=torch.float64, device=op.device)
        repeat = max(3, min(50, int(0.5 / max(per_iter, 1e-6))))
        gemm = _time(lambda: _gram_lower(V), repeat, op.device)
    n, d = op.X.shape
    return {"n": n, "d": d, "blocks": part.n_blocks, "rows": rows, "dtype": "float64", "per_iteration": per_iter,
            "setup": max(t_short - short.iterations * per_iter, 0.0), "woodbury_gemm": gemm,
            "ratio": per_iter / gemm, "threads": threads or torch.get_num_threads()}


# ----------------------------------------------------------------------------- scale
def _scale_child(n, d, patterns, m1, dtype, max_time, threads, device="cpu", solver="auglag", max_iter=0):
    """Runs in a child process; prints one JSON line."""
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    prog = build("three", n, d, patterns, m1=m1, beta=1e-3 * n, dtype=getattr(torch, dtype), device=device)
    _sync(device)
    setup = time.perf_counter() - t0
    if solver == "ipm":
        solver = InteriorPoint(max_time=max_time, **({"max_iter": max_iter} if max_iter else {}))
    else:
        solver = AugmentedLagrangian(tol=1e-4, feas_tol=1e-6, max_time=max_time)
    sol, elapsed = _solve(solver, prog)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cuda = torch.device(device).type == "cuda"
    info = dict(sol.info)
    print(json.dumps({
        "device": device_name(device),
        "device_peak_gb": torch.cuda.max_memory_allocated(device) / 1024**3 if cuda else None,
        "n": n, "d": d, "patterns": len(prog.patterns), "blocks": prog.shape[1], "dtype": dtype, "solver": solver.name,
        "setup_time": setup, "solve_time": elapsed, "iterations": sol.iterations, "status": sol.status,
        "objective": sol.objective, "stationarity": info.get("stationarity"),
        "violation_before_repair": info.get("violation_before_repair"),
        "violation": _relative_violation(prog, sol.weights), "relative_gap": sol.relative_gap,
        "dual_bound": info.get("dual_bound"),
        "peak_rss_gb": rss_kb / 1024**2, "threads": torch.get_num_threads(),
    }))


def _mem_available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return math.inf


def scale(n: int, d: int = 50, patterns: int = 500, m1: int = 3, *, dtype: str = "float32", max_time: float = 110.0,
          threads: int | None = None, bytes_per_entry_estimate: float = 56.0, device="cpu", solver: str = "auglag",
          max_iter: int | None = None):
    """Three-layer solve in a child process: wall time (setup + solve) and peak memory
    (the process's resident memory; on a CUDA device also the device's peak allocation).

    ``solver``: "auglag" (the augmented Lagrangian at tol 1e-4, feas_tol 1e-6) or "ipm"
    (the interior point at its default tolerance; give it ``dtype="float64"`` and a
    matching ``bytes_per_entry_estimate``: it holds the n x B (d + 1) model matrix);
    ``max_iter`` (interior point only) replaces its default.

    Skipped (with the reason) when the estimated memory, about ``bytes_per_entry_estimate``
    bytes per entry of the n x B constraint matrix in float32, exceeds 80 % of the available
    memory (of the device where the solve runs on one). The augmented Lagrangian's peak was
    55.8 bytes per entry at n=20,000 and 51.7 at n=50,000 (3.12 and 7.22 GB, 3,000 blocks).
    """
    blocks_est = 2 * patterns * m1
    need = n * blocks_est * bytes_per_entry_estimate * (2 if dtype == "float64" else 1) / 1024**3
    cuda = torch.device(device).type == "cuda"
    avail = torch.cuda.mem_get_info(device)[0] / 1024**3 if cuda else _mem_available_gb()
    if need > 0.8 * avail:
        return {"n": n, "skipped": f"needs about {need:.1f} GB, {avail:.1f} GB available",
                "lines": [f"scale three-layer n={n}: skipped (needs about {need:.1f} GB, {avail:.1f} GB available)"]}
    cmd = [sys.executable, os.path.abspath(__file__), "--scale-child", str(n), str(d), str(patterns), str(m1), dtype,
           str(max_time), str(threads or 0), str(device), solver, str(max_iter or 0)]
    out = run_json_child(cmd)
    if "error" in out:
        return {"n": n, "error": out["error"], "lines": [f"scale n={n}: child failed: {out['error']}"]}
    wall = out["wall_time"]
    out["lines"] = [
        f"scale three-layer n={n} d={d} m1={m1} patterns={out['patterns']} blocks={out['blocks']} {dtype} "
        f"{out['solver']}: "
        f"wall {wall:.1f}s (setup {out['setup_time']:.1f}s, solve {out['solve_time']:.1f}s, "
        f"{out['iterations']} iterations, {1e3 * out['solve_time'] / max(out['iterations'], 1):.0f} ms/iteration), "
        f"peak memory {out['peak_rss_gb']:.2f} GB"
        + ("" if out["device_peak_gb"] is None else f" (host), {out['device_peak_gb']:.2f} GB on {out['device']}")
        + f"; status {out['status']}, stationarity {_fmt_e(out['stationarity'])}, "
        f"violation {out['violation']:.1e} (before repair {_fmt_e(out['violation_before_repair'])}), "
        f"relative gap {out['relative_gap']:.1e}"
        + ("" if out.get("dual_bound") is None else
           f", objective {out['objective']:.8g}, dual bound {out['dual_bound']:.8g}")
    ]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--scale-child":
        n, d, P, m1 = (int(a) for a in sys.argv[2:6])
        _scale_child(n, d, P, m1, sys.argv[6], float(sys.argv[7]), int(sys.argv[8]), sys.argv[9], sys.argv[10], int(sys.argv[11]))
    else:
        print("run the benchmarks with: python benchmarks/run_all.py [--quick]")
