"""FISTA's low-rank preconditioner against plain FISTA, at the scale of issue 4's item 3.

    python benchmarks/bench_preconditioner.py           # n = 20,000 (about 20 minutes on 2 cores)
    python benchmarks/bench_preconditioner.py --quick   # n = 2,000 and 5,000 (about 2 minutes)

The unconstrained programs FISTA solves, float32, d = 50 (+ intercept), beta = 1e-3 n,
each solve in its own process, :class:`FISTA` with ``tol=1e-4`` and ``max_time``
(``--max-time``, 600 s), with ``preconditioner=None`` (plain FISTA) and with
``preconditioner="lowrank"`` (the metric of :mod:`convexrelu.solvers._metric`, rank d C + 10
for C outputs),
side by side on the same program:

- ``gated``: the gated ReLU program, planted two-layer teacher, 500 sampled gates, squared
  loss;
- ``gated-softmax``: the same with the softmax loss on three classes (the teacher's output
  cut at its terciles: three outputs of 500 blocks each);
- ``relaxation``: the three-layer program of item 3 (planted three-layer teacher, m1 = 3,
  500 sampled patterns) without its cone constraints (``bench_relaxation.relaxation``:
  the same operator, loss, targets and beta).

Printed: each solve's wall time (building the program included), solve time (the
preconditioner's set-up included), iterations, time per iteration, peak memory, status,
objective, and plain / preconditioned time and iterations, with the objectives' relative
difference. Writes the section ``## FISTA's low-rank preconditioner`` of RESULTS.md.
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

HEADING = "## FISTA's low-rank preconditioner"
PROGRAMS = ("gated", "gated-softmax", "relaxation")
TOL = 1e-4


def _program(kind: str, n: int, d: int, patterns: int):
    import numpy as np
    import torch

    import bench_solvers as bs
    from bench_relaxation import relaxation

    if kind == "gated":
        return bs.build("gated", n, d, patterns, dtype=torch.float32)
    if kind == "gated-softmax":
        from _data import two_layer_teacher
        from convexrelu import GatedReLUProgram

        X, y = two_layer_teacher(n, d, seed=0)
        classes = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
        return GatedReLUProgram(X, classes, patterns, loss="softmax", beta=1e-3 * n, random_state=0,
                                dtype=torch.float32)
    return relaxation(bs.build("three", n, d, patterns, m1=3, beta=1e-3 * n, dtype=torch.float32))


def _child(kind: str, n: int, d: int, patterns: int, preconditioner: str, max_time: float, threads: int) -> None:
    """One solve; prints one JSON line."""
    import torch

    import bench_solvers as bs
    from convexrelu.solvers import FISTA

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    prog = _program(kind, n, d, patterns)
    setup = time.perf_counter() - t0
    solver = FISTA(tol=TOL, max_time=max_time, preconditioner=None if preconditioner == "none" else preconditioner)
    sol, solve = bs._solve(solver, prog)  # (its ConvergenceWarning ignored: the status says it)
    print(json.dumps({
        "kind": kind, "n": n, "d": prog.operator.n_features, "blocks": prog.shape[1], "setup_time": setup,
        "solve_time": solve, "iterations": sol.iterations, "status": sol.status, "objective": sol.objective,
        "relative_gap": sol.relative_gap, "rank": sol.info.get("metric_rank"),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }))


def _run(kind, n, d, patterns, preconditioner, max_time, threads) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, str(n), str(d), str(patterns), preconditioner,
           str(max_time), str(threads)]
    out = run_json_child(cmd)
    if "error" in out:
        return {"error": out["error"], "line": f"{kind} n={n} {preconditioner}: child failed: {out['error']}"}
    rank = "" if out["rank"] is None else f", rank {out['rank']}"
    out["line"] = (
        f"{kind:13s} n={n} d={out['d']} blocks={out['blocks']} float32 FISTA(tol={TOL:g}, "
        f"preconditioner={preconditioner!r}{rank}): {solve_summary(out)}, relative gap {out['relative_gap']:.1e}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000 and 5,000")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 20000)")
    parser.add_argument("--programs", default=",".join(PROGRAMS), help=f"comma-separated, of {PROGRAMS}")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--patterns", type=int, default=500)
    parser.add_argument("--max-time", type=float, default=600.0, help="max_time of every solve (600 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    sizes = [int(v) for v in (args.sizes or ("2000,5000" if args.quick else "20000")).split(",") if v]
    kinds = [k for k in args.programs.split(",") if k]
    for k in kinds:
        if k not in PROGRAMS:
            parser.error(f"--programs: expected names among {PROGRAMS}, got {k!r}")
    info = machine()
    say, printed = recorder()
    say(machine_line(info, args.threads))
    cells = []
    for kind in kinds:
        for n in sizes:
            plain = _run(kind, n, args.features, args.patterns, "none", args.max_time, args.threads)
            say(plain["line"])
            pre = _run(kind, n, args.features, args.patterns, "lowrank", args.max_time, args.threads)
            say(pre["line"])
            if "error" in plain or "error" in pre:
                cells.append([kind, n, (plain.get("error") or pre.get("error"))[:200]])
                continue
            both = plain["status"] == pre["status"] == "optimal"
            ratio = plain["solve_time"] / pre["solve_time"]
            its = plain["iterations"] / max(pre["iterations"], 1)
            diff = (pre["objective"] - plain["objective"]) / abs(plain["objective"])
            say(f"    {kind} n={n}: plain / preconditioned solve time {ratio:.2f}x, iterations {its:.2f}x"
                f"{'' if both else ' (not both optimal: see the statuses)'}; objectives differ by {diff:+.1e} (relative)")
            cells.append([kind, n, pre["blocks"]]
                         + [v for x in (plain, pre) for v in (x["status"], f"{x['solve_time']:.1f}", x["iterations"],
                                                             f"{1e3 * x['per_iteration']:.0f}", f"{x['peak_rss_gb']:.2f}")]
                         + [f"{diff:+.1e}", f"{ratio:.2f}x", f"{its:.2f}x"])
    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_preconditioner.py{' --quick' if args.quick else ''}"
         f"{' --sizes ' + args.sizes if args.sizes else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({args.threads} threads), Python "
         f"{info['python']}; load average at the start {info['load_average']} (the machine is shared).",
         f"Programs (float32, d = {args.features} + intercept, beta = 1e-3 n, {args.patterns} sampled gates or patterns): "
         "`gated` the gated ReLU program (planted two-layer teacher, squared loss); `gated-softmax` the same with the "
         "softmax loss on three classes; `relaxation` the three-layer program of issue 4's item 3 (m1 = 3) without its "
         "cone constraints. Each solve in its own process: "
         f"`FISTA(tol={TOL:g}, max_time={args.max_time:g})` with `preconditioner=None` (plain) and "
         "`preconditioner='lowrank'` (the metric `I + U diag(c) U^T` of `convexrelu.solvers._metric`, rank d C + 10 for C outputs, "
         "its set-up counted in the solve time). 'Objective' is the preconditioned solve's relative to the plain one's.",
         ""]
    L += markdown_table(["program", "n", "blocks", "plain: status", "solve s", "iterations", "ms / iteration",
                         "peak GB", "lowrank: status", "solve s", "iterations", "ms / iteration", "peak GB",
                         "objective", "plain / lowrank, solve", "plain / lowrank, iterations"], cells)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7]),
               int(sys.argv[8]))
        sys.exit(0)
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
