"""Many samples, few patterns: the interior point against the augmented Lagrangian (CPU).

    python benchmarks/bench_many_samples.py            # n = 5,000, 20,000, 40,000 (about 10 minutes)
    python benchmarks/bench_many_samples.py --quick    # n = 2,000 and 5,000

Tabular data: many samples, few features, few patterns (the estimators' defaults:
50 patterns, two first-layer neurons per sub-network). The three-layer program
(planted teacher, squared loss, beta = 1e-3 n, d = 10 plus an intercept, float64) is
solved, each size and solver in its own process (:func:`bench_solvers.scale`), by

- the interior point at its default tolerance: with more samples than unknowns
  (``n > B (d + 1)``) it factors the Newton matrix itself, whose loss part ``U U^T`` it
  forms once (:func:`convexrelu.solvers.ipm._lowrank_gram`);
- the augmented Lagrangian (tol 1e-4, feas_tol 1e-6) under a time limit: what
  ``solver="auto"`` chose for these sizes before (its rule then: ``n C`` at most 4,000).

Printed side by side: wall time, iterations, peak memory, status, certified relative gap,
and the augmented Lagrangian's objective relative to the interior point's. Writes the
section ``## Many samples, few patterns`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_solvers as bs  # noqa: E402
from _data import machine  # noqa: E402
from run_all import write_section  # noqa: E402

from convexrelu.solvers.auto import ipm_fits  # noqa: E402

HEADING = "## Many samples, few patterns"


def _old_rule(n: int, blocks: int, features: int) -> bool:
    """``solver="auto"``'s interior-point rule before this benchmark: ``n C <= 4000`` and
    ``n C B (d + 1) <= 3e7``."""
    return n <= 4000 and n * blocks * (features + 1) <= 30_000_000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000 and 5,000, the augmented Lagrangian for 30 s")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 5000,20000,40000)")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--patterns", type=int, default=50)
    parser.add_argument("--m1", type=int, default=2)
    parser.add_argument("--al-max-time", type=float, default=None,
                        help="time limit of the augmented Lagrangian (default 120 s; 30 s with --quick)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    sizes = args.sizes or ("2000,5000" if args.quick else "5000,20000,40000")
    al_time = args.al_max_time or (30.0 if args.quick else 120.0)
    info = machine()
    printed = []

    def say(line):
        print(line, flush=True)
        printed.append(line)

    say(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, python {info['python']}, "
        f"load average {info['load_average']}, {info['date']}")
    rows = []
    for n in (int(v) for v in sizes.split(",")):
        ipm = bs.scale(n, args.d, args.patterns, args.m1, dtype="float64", solver="ipm", max_time=600.0)
        for line in ipm["lines"]:
            say(line)
        al = bs.scale(n, args.d, args.patterns, args.m1, dtype="float64", solver="auglag", max_time=al_time)
        for line in al["lines"]:
            say(line)
        row = {"n": n, "ipm": ipm, "al": al}
        if "solve_time" in ipm and "solve_time" in al:
            features = args.d + 1  # the intercept column
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
         f"Three-layer program, planted teacher, squared loss, beta = 1e-3 n, d = {args.d} (+ intercept), m1 = {args.m1}, "
         f"{args.patterns} patterns, float64; each solve in its own process (wall time includes building the program). "
         f"Interior point at its default tolerance; augmented Lagrangian at tol 1e-4, feas_tol 1e-6, max_time {al_time:g} s. "
         "'AL objective' is relative to the interior point's; 'auto' is what `solver=\"auto\"` picks now and what it "
         "picked before (`n C <= 4000`).", "",
         "| n | blocks | auto (now / before) | IPM wall s | IPM iterations | IPM peak GB | IPM gap | AL wall s "
         "| AL status | AL objective | AL peak GB | AL / IPM time |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ipm, al = r["ipm"], r["al"]
        if "ratio" not in r:
            L.append(f"| {r['n']} | {' '.join(ipm.get('lines', []) + al.get('lines', []))[:300]} | | | | | | | | | | |")
            continue
        L.append(f"| {r['n']} | {ipm['blocks']} | {r['auto_now']} / {r['auto_before']} | {ipm['wall_time']:.1f} "
                 f"| {ipm['iterations']} | {ipm['peak_rss_gb']:.2f} | {ipm['relative_gap']:.1e} | {al['wall_time']:.1f} "
                 f"| {al['status']} | {r['al_excess']:+.1e} | {al['peak_rss_gb']:.2f} | "
                 f"{'>= ' if al['status'] != 'optimal' else ''}{r['ratio']:.2f}x |")
    L += ["", "```"] + printed + ["```", ""]
    write_section(args.output, "\n".join(L), heading=HEADING)
    print(f"wrote the section '{HEADING}' of {args.output}")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
