"""Many samples, few patterns: the interior point against the augmented Lagrangian (CPU).

    python benchmarks/bench_many_samples.py            # n = 5,000, 20,000, 40,000 (about 10 minutes)
    python benchmarks/bench_many_samples.py --quick    # n = 2,000 and 5,000

Tabular data: many samples, few features, few patterns (the estimators' defaults:
50 patterns, two first-layer neurons per sub-network). Friedman's regression problem #1
(``sklearn.datasets.make_friedman1``: 10 features, 5 of them used, noise 1.0, targets
standardised), the three-layer program with squared loss, ``beta = 1e-3 n``, an
intercept, float64, sampled patterns (``random_state=0``). Each size and solver runs in
its own process:

- the interior point at its default tolerance: with more samples than unknowns
  (``n > B (d + 1)``) it factors the Newton matrix itself, whose loss part ``U U^T`` it
  forms once (:func:`convexrelu.solvers.ipm._lowrank_gram`);
- the augmented Lagrangian (tol 1e-4, feas_tol 1e-6) under a time limit: what
  ``solver="auto"`` chose for these sizes before (its rule then: ``n C`` at most 4,000).

Printed side by side: wall time (building the program included), iterations, peak
memory of the process, status, certified relative gap, and the augmented Lagrangian's
objective relative to the interior point's. Writes the section
``## Many samples, few patterns`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _data import (  # noqa: E402
    OUTPUT_HELP, friedman, machine, machine_line, markdown_table, recorder, results_path, run_json_child,
)
from run_all import write_report  # noqa: E402

from convexrelu.solvers.auto import ipm_fits, newton_size  # noqa: E402

HEADING = "## Many samples, few patterns"


def _child(n: int, d: int, patterns: int, m1: int, solver: str, max_time: float) -> None:
    """One solve; prints one JSON line."""
    import numpy as np

    from convexrelu import ThreeLayerReLUProgram
    from convexrelu.solvers import AugmentedLagrangian, InteriorPoint

    t0 = time.perf_counter()
    X, y = friedman(n, d)
    prog = ThreeLayerReLUProgram(X, y, patterns, hidden=m1, beta=1e-3 * n, random_state=0)
    setup = time.perf_counter() - t0
    if solver == "ipm":
        chosen = InteriorPoint(max_time=max_time)
    else:
        chosen = AugmentedLagrangian(tol=1e-4, feas_tol=1e-6, max_time=max_time)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status says it
        sol = chosen.solve(prog)
    solve = time.perf_counter() - t
    print(json.dumps({
        "n": n, "blocks": prog.shape[1], "features": prog.shape[0], "setup_time": setup, "solve_time": solve,
        "iterations": sol.iterations, "status": sol.status, "objective": sol.objective,
        "relative_gap": sol.relative_gap, "active_blocks": prog.n_active(sol.weights),
        "zero_objective": 0.5 * float(np.sum(y ** 2)),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }))


def _run(n, d, patterns, m1, solver, max_time) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), str(d), str(patterns), str(m1), solver,
           str(max_time)]
    out = run_json_child(cmd)
    if "error" in out:
        return {"n": n, "error": out["error"], "lines": [f"n={n} {solver}: child failed: {out['error']}"]}
    wall = out["wall_time"]
    out["lines"] = [
        f"three-layer n={n} d={out['features']} (with the intercept) m1={m1} patterns={patterns} blocks={out['blocks']} "
        f"{solver}: wall {wall:.1f}s (setup {out['setup_time']:.1f}s, solve {out['solve_time']:.1f}s, "
        f"{out['iterations']} iterations), peak memory {out['peak_rss_gb']:.2f} GB; status {out['status']}, objective "
        f"{out['objective']:.10g} (zero network {out['zero_objective']:.6g}), {out['active_blocks']} active blocks, "
        f"relative gap {out['relative_gap']:.1e}"
    ]
    return out


def _old_rule(n: int, blocks: int, features: int) -> bool:
    """``solver="auto"``'s interior-point rule before this benchmark: ``n C <= 4000`` and
    ``n C B (d + 1) <= 3e7``."""
    entries, _ = newton_size(n, blocks, features)
    return n <= 4000 and entries <= 30_000_000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000 and 5,000, the augmented Lagrangian for 30 s")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 5000,20000,40000)")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--patterns", type=int, default=50)
    parser.add_argument("--m1", type=int, default=2)
    parser.add_argument("--al-max-time", type=float, default=None,
                        help="time limit of the augmented Lagrangian (default 120 s; 30 s with --quick)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    sizes = args.sizes or ("2000,5000" if args.quick else "5000,20000,40000")
    al_time = args.al_max_time or (30.0 if args.quick else 120.0)
    info = machine()
    say, printed = recorder()
    say(machine_line(info))
    rows = []
    for n in (int(v) for v in sizes.split(",")):
        ipm = _run(n, args.d, args.patterns, args.m1, "ipm", 600.0)
        for line in ipm["lines"]:
            say(line)
        al = _run(n, args.d, args.patterns, args.m1, "auglag", al_time)
        for line in al["lines"]:
            say(line)
        row = {"n": n, "ipm": ipm, "al": al}
        if "solve_time" in ipm and "solve_time" in al:
            features = ipm["features"]  # with the intercept column
            row["auto_now"] = "ipm" if ipm_fits(n, ipm["blocks"], features) else "auglag"
            row["auto_before"] = "ipm" if _old_rule(n, ipm["blocks"], features) else "auglag"
            row["al_excess"] = (al["objective"] - ipm["objective"]) / abs(ipm["objective"])
            row["ratio"] = al["wall_time"] / ipm["wall_time"]
            say(f"    n={n}: solver='auto' now {row['auto_now']}, before {row['auto_before']}; augmented Lagrangian "
                f"{al['status']} at {al['wall_time']:.1f}s, objective {row['al_excess']:+.1e} relative to the interior "
                f"point's ({ipm['status']}, {ipm['wall_time']:.1f}s, gap {ipm['relative_gap']:.1e}); wall time ratio "
                f"AL / IPM {row['ratio']:.2f}x" + (" (the AL not converged: a lower bound)" if al["status"] != "optimal" else ""))
        rows.append(row)

    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_many_samples.py{' --quick' if args.quick else ''}"
         f"{' --sizes ' + args.sizes if args.sizes else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}; load average "
         f"at the start {info['load_average']} (the machine is shared).",
         f"Data: `make_friedman1(n, {args.d} features, noise 1.0, random_state=0)`, targets standardised. Three-layer "
         f"program, squared loss, beta = 1e-3 n, intercept, m1 = {args.m1}, {args.patterns} sampled patterns, float64; each "
         "solve in its own process (wall time includes starting it and building the program). "
         f"Interior point at its default tolerance; augmented Lagrangian at tol 1e-4, feas_tol 1e-6, max_time {al_time:g} s. "
         "'AL objective' is relative to the interior point's; 'auto' is what `solver=\"auto\"` picks now and what it "
         "picked before (`n C <= 4000`).", ""]
    cells = []
    for r in rows:
        ipm, al = r["ipm"], r["al"]
        if "ratio" not in r:
            cells.append([r["n"], " ".join(ipm.get("lines", []) + al.get("lines", []))[:300]])
            continue
        cells.append([r["n"], ipm["blocks"], f"{r['auto_now']} / {r['auto_before']}", f"{ipm['wall_time']:.1f}",
                      ipm["iterations"], f"{ipm['peak_rss_gb']:.2f}", f"{ipm['relative_gap']:.1e}",
                      f"{al['wall_time']:.1f}", al["status"], f"{r['al_excess']:+.1e}", f"{al['peak_rss_gb']:.2f}",
                      f"{'>= ' if al['status'] != 'optimal' else ''}{r['ratio']:.2f}x"])
    L += markdown_table(["n", "blocks", "auto (now / before)", "IPM wall s", "IPM iterations", "IPM peak GB", "IPM gap",
                         "AL wall s", "AL status", "AL objective", "AL peak GB", "AL / IPM time"], cells)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*(int(a) for a in sys.argv[2:6]), sys.argv[6], float(sys.argv[7]))
        sys.exit(0)
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
