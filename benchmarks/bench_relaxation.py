"""Scale (issue 4, item 3): what a first-order method needs there, from the program without its cones.

    python benchmarks/bench_relaxation.py            # n = 20,000 (about 11 minutes on 2 cores)
    python benchmarks/bench_relaxation.py --quick    # n = 2,000 (about a minute)

The three-layer program of item 3 (planted three-layer teacher, ``benchmarks/_data.py``;
d = 50, m1 = 3, 500 sampled patterns, ``beta = 1e-3 n``, float32, as in
``run_all.py``'s scale item) is solved, each in its own process, side by side:

- **with its cones** (the program of item 3): :class:`AugmentedLagrangian` at tol 1e-4,
  feas_tol 1e-6 and ``max_time`` (``--cone-time``, 110 s as in ``run_all.py``);
- **without them** (its relaxation): the same operator, loss, targets and ``beta`` with
  ``K Q >= 0`` dropped, an unconstrained group lasso over the same model ``A``, solved
  by plain :class:`FISTA` (``preconditioner=None``; ``bench_preconditioner.py`` runs it
  with and without its low-rank metric) at the same tol 1e-4 (``--relaxed-time``, 600 s).

In the relaxation's process the time of the two matrix products of an iteration at the
shapes of the live part (``X @ Q`` into an existing array and ``X.T @ T``, the median of 3;
item 4's denominator) is measured. Printed: each solve's status, iterations, time per
iteration, peak memory; and the relaxation's iterations times that product time (what its
iterations take at item 4's floor of 1) against item 3's two minutes. The relaxation's optimum is another one (without the cones the model
fits the data), so its iterations indicate, and do not bound, what the program with cones
needs. Writes the section
``## Scale: the program without its cones`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _data import (  # noqa: E402
    OUTPUT_HELP, machine, machine_line, markdown_table, recorder, results_path, run_json_child,
    solve_summary,
)
from run_all import write_report  # noqa: E402

HEADING = "## Scale: the program without its cones"
#: Item 3's time target, seconds.
TARGET = 120.0


def relaxation(program):
    """``program`` with its cone constraints dropped: the same operator (model, blocks,
    groups), loss, targets and ``beta``, as a plain :class:`ConvexProgram`."""
    from convexrelu.operators import BlockOperator
    from convexrelu.programs import ConvexProgram
    op = program.operator
    free = BlockOperator(op.X_np, op.first_np, op.signs_np, op.group_np, op.second_np, op.sigma_np, op.output_np,
                         op.n_outputs, cone_first=False, cone_second=False, dtype=op.dtype, device=op.device)
    return ConvexProgram(free, program.loss, program.Y_np, program.beta)


def _two_gemms(program) -> float:
    """Median of 3 timings of the two GEMMs (:func:`bench_solvers.gemm_pair_timer`) at the
    shapes of the live part of ``program`` (what the solvers iterate on)."""
    import numpy as np
    import bench_solvers as bs
    from convexrelu.solvers._presolve import live_part
    measure = bs.gemm_pair_timer(live_part(program)[0].operator)
    return float(np.median([measure(5) for _ in range(3)]))


def _child(n: int, d: int, patterns: int, variant: str, max_time: float, threads: int) -> None:
    """One solve (``variant``: "cones" or "relaxed") and the two products; prints one JSON line."""
    import torch
    import bench_solvers as bs
    from convexrelu.solvers import AugmentedLagrangian, FISTA
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    prog = bs.build("three", n, d, patterns, m1=3, beta=1e-3 * n, dtype=torch.float32)
    if variant == "relaxed":
        prog = relaxation(prog)
        solver = FISTA(tol=1e-4, max_time=max_time, preconditioner=None)  # plain: bench_preconditioner has both
    else:
        solver = AugmentedLagrangian(tol=1e-4, feas_tol=1e-6, max_time=max_time)
    setup = time.perf_counter() - t0
    sol, solve = bs._solve(solver, prog)  # (its ConvergenceWarning ignored: the status says it)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({
        "n": n, "d": prog.operator.n_features, "blocks": prog.shape[1],
        "setup_time": setup, "solve_time": solve, "iterations": sol.iterations, "status": sol.status,
        "objective": sol.objective, "relative_gap": sol.relative_gap,
        "stationarity": sol.info.get("stationarity", sol.info.get("residual")),
        "peak_rss_gb": peak, "two_gemms": _two_gemms(prog),
    }))


def _run(n, d, patterns, variant, max_time, threads) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), str(d), str(patterns), variant,
           str(max_time), str(threads)]
    out = run_json_child(cmd)
    if "error" in out:
        return {"n": n, "error": out["error"], "line": f"n={n} {variant}: child failed: {out['error']}"}
    what = "with cones, AugmentedLagrangian" if variant == "cones" else "without cones, FISTA"
    stat = "n/a" if out["stationarity"] is None else f"{out['stationarity']:.1e}"
    out["line"] = (
        f"three-layer n={n} d={out['d']} m1=3 patterns={patterns} blocks={out['blocks']} float32 {what} "
        f"(tol 1e-4, max_time {max_time:g} s): {solve_summary(out)}, stationarity {stat}, "
        f"relative gap {out['relative_gap']:.1e}; two GEMMs {1e3 * out['two_gemms']:.0f} ms")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 20000)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--patterns", type=int, default=500)
    parser.add_argument("--cone-time", type=float, default=110.0, help="max_time of the solve with cones (110 s)")
    parser.add_argument("--relaxed-time", type=float, default=600.0, help="max_time of the relaxation (600 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    sizes = [int(v) for v in (args.sizes or ("2000" if args.quick else "20000")).split(",") if v]
    info = machine()
    say, printed = recorder()
    say(machine_line(info, args.threads))
    cells = []
    for n in sizes:
        cones = _run(n, args.features, args.patterns, "cones", args.cone_time, args.threads)
        say(cones["line"])
        free = _run(n, args.features, args.patterns, "relaxed", args.relaxed_time, args.threads)
        say(free["line"])
        if "error" in cones or "error" in free:
            cells.append([n, (cones.get("error") or free.get("error"))[:200]])
            continue
        need = free["iterations"] * free["two_gemms"]
        done = free["status"] == "optimal"
        say(f"    n={n}: the relaxation {'converged after' if done else 'had not converged after'} "
            f"{free['iterations']} iterations; at two GEMMs ({1e3 * free['two_gemms']:.0f} ms) each they take "
            f"{'' if done else 'more than '}{need:.0f} s, {need / TARGET:.1f} times item 3's {TARGET:.0f} s; "
            f"the augmented Lagrangian with cones ran {cones['iterations']} iterations in {cones['solve_time']:.0f} s "
            f"(status {cones['status']})")
        cells.append([n, cones["blocks"]]
                     + [v for x in (cones, free) for v in (x["status"], x["iterations"], f"{x['solve_time']:.1f}",
                                                           f"{1e3 * x['per_iteration']:.0f}", f"{x['peak_rss_gb']:.2f}")]
                     + [f"{1e3 * free['two_gemms']:.0f}", f"{'' if done else '> '}{need:.0f}"])
    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_relaxation.py{' --quick' if args.quick else ''}"
         f"{' --sizes ' + args.sizes if args.sizes else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({args.threads} threads), Python "
         f"{info['python']}; load average at the start {info['load_average']} (the machine is shared).",
         f"The three-layer program of issue 4's item 3 (planted three-layer teacher, d = {args.features} "
         f"(+ intercept), m1 = 3, {args.patterns} sampled patterns, beta = 1e-3 n, float32), each solve in its own "
         f"process: with its cones by `AugmentedLagrangian(tol=1e-4, feas_tol=1e-6, max_time={args.cone_time:g})`, "
         f"and without them (the same model, loss and beta, `K Q >= 0` dropped: a group lasso) by "
         f"`FISTA(tol=1e-4, max_time={args.relaxed_time:g}, preconditioner=None)`. 'Two GEMMs' is the time of `X @ Q` (into an existing "
         "array) + `X.T @ T` at the shapes of the live part, item 4's denominator, measured in the relaxation's "
         "process; 'needs s' is the relaxation's iterations times it, what they take at item 4's floor of 1, "
         f"against item 3's target of {TARGET:.0f} s.", ""]
    L += markdown_table(["n", "blocks", "with cones: status", "iterations", "solve s", "ms / iteration", "peak GB",
                         "without: status", "iterations", "solve s", "ms / iteration", "peak GB", "two GEMMs ms",
                         "needs s"], cells)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6]),
               int(sys.argv[7]))
        sys.exit(0)
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
