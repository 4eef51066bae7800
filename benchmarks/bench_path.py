"""Warm starts along a regularisation path: each solver cold at every beta against warm
from the solution at the previous (larger) beta.

    python benchmarks/bench_path.py            # n = 500, d = 10, 100 patterns, 6 betas (about 10 minutes)
    python benchmarks/bench_path.py --quick    # n = 200, d = 5, 40 patterns, 4 values

The programs of issue 4's items (1) and (2) (planted teachers, ``benchmarks/_data.py``;
squared loss, float64): three-layer (m1 = 3), two-layer ReLU and gated ReLU, on the
decreasing grid ``beta = 1e-3 n * 8 * ratio^k``, k = 0, 1, ... (``--ratio``, default
0.8), the way a path is taken. Every solver of each program runs at its defaults
(``max_time`` as given) along the grid:

- the first beta is solved once, cold;
- cold: ``solver.solve(program.with_beta(beta))`` at each later beta;
- warm: ``solver.solve(program.with_beta(beta), init=previous)`` at each later beta,
  ``previous`` the solution at the beta before (the first solve's, then the warm run's).

At each later beta the cold and the warm solve run one after the other (the machine's
load drifts; iterations do not depend on it). Printed side by side for each program and
solver: the total time and iterations of each run over the later betas, their ratio
cold / warm, and the largest relative difference between the two runs' objectives at
the same beta (both solves are at the solver's tolerance: the difference says that the
warm start reaches the same optimum). Writes the section ``## Regularisation path: warm
starts`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import bench_solvers as bs  # noqa: E402
from _data import OUTPUT_HELP, machine, machine_line, markdown_table, recorder, results_path  # noqa: E402
from run_all import write_report  # noqa: E402

from convexrelu.solvers import ADMM, AugmentedLagrangian, FISTA, InteriorPoint  # noqa: E402

HEADING = "## Regularisation path: warm starts"
#: Default ratio of consecutive values of beta (a path of 20 values per decade has 0.89).
RATIO = 0.8
#: Solvers run on each program (the three-layer program's first-order solvers take a
#: minute or more per solve at n = 500: ``## Solvers``, item 1).
SOLVERS = {
    "three": (InteriorPoint,),
    "relu": (InteriorPoint, AugmentedLagrangian, ADMM),
    "gated": (InteriorPoint, FISTA),
}


def compare(kind: str, cls, program, betas, max_time: float) -> dict:
    """One solver class on one program along ``betas``: the first beta solved once, then
    each later beta cold and warm (the warm solve from the warm run's previous solution),
    and the summary over the later betas."""
    solver = cls(max_time=max_time)
    first, _ = bs._solve(solver, program.with_beta(betas[0]))
    cold, warm, previous = [], [], first
    for b in betas[1:]:  # (one after the other at each beta: the machine's load drifts)
        cold.append(bs._solve(solver, program.with_beta(b)))
        warm.append(bs._solve(solver, program.with_beta(b), init=previous))
        previous = warm[-1][0]
    out = {"kind": kind, "solver": solver.name, "first_iterations": first.iterations}
    for name, run in (("cold", cold), ("warm", warm)):
        out[name] = {
            "time": sum(t for _, t in run), "iterations": sum(s.iterations for s, _ in run),
            "converged": sum(bool(s.converged) for s, _ in run), "objectives": [s.objective for s, _ in run],
            "gaps": [s.relative_gap for s, _ in run],
        }
    out["difference"] = max(bs._rel(w, c) for w, c in zip(out["warm"]["objectives"], out["cold"]["objectives"]))
    out["ratio_time"] = out["cold"]["time"] / max(out["warm"]["time"], 1e-12)
    out["ratio_iterations"] = out["cold"]["iterations"] / max(out["warm"]["iterations"], 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 200, d = 5, 40 patterns, 4 values of beta")
    parser.add_argument("--betas", type=int, default=None, help="values of beta on the grid (default 6; quick 4)")
    parser.add_argument("--ratio", type=float, default=RATIO,
                        help=f"ratio of consecutive values of beta (default {RATIO})")
    parser.add_argument("--max-time", type=float, default=60.0, help="time limit of every solve (default 60 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    if args.betas is not None and args.betas < 2:
        parser.error(f"--betas: expected at least 2 values (the first is solved once), got {args.betas}")
    if not 0 < args.ratio < 1:
        parser.error(f"--ratio: expected a number in (0, 1) (a decreasing path), got {args.ratio}")
    n, d, P = (200, 5, 40) if args.quick else (500, 10, 100)
    k = args.betas or (4 if args.quick else 6)
    betas = [1e-3 * n * 8 * args.ratio**i for i in range(k)]
    torch.set_num_threads(args.threads)
    info = machine()
    say, printed = recorder()
    say(machine_line(info, args.threads))
    say(f"n={n} d={d} patterns={P}, betas {', '.join(f'{b:g}' for b in betas)}")
    rows = []
    bs._warm_up("three", (InteriorPoint, AugmentedLagrangian, ADMM))  # (first calls' one-off costs)
    bs._warm_up("gated", (FISTA,))
    for kind, classes in SOLVERS.items():
        program = bs.build(kind, n, d, P)
        for cls in classes:
            r = compare(kind, cls, program, betas, args.max_time)
            c, w = r["cold"], r["warm"]
            say(f"{kind} {r['solver']}: first beta {r['first_iterations']} iterations; later betas: cold "
                f"{c['time']:.2f}s "
                f"{c['iterations']} iterations ({c['converged']}/{k - 1} converged), warm {w['time']:.2f}s "
                f"{w['iterations']} iterations ({w['converged']}/{k - 1}); "
                f"cold / warm time {r['ratio_time']:.2f}x, iterations {r['ratio_iterations']:.2f}x; objectives "
                f"differ by at most {r['difference']:.1e} (relative); largest certified gap cold "
                f"{max(c['gaps']):.1e}, warm {max(w['gaps']):.1e}")
            rows.append(r)

    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_path.py{' --quick' if args.quick else ''}"
         f"{f' --betas {args.betas}' if args.betas else ''}"
         f"{f' --ratio {args.ratio:g}' if args.ratio != RATIO else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({args.threads} threads), Python "
         f"{info['python']}; load average at the start {info['load_average']} (the machine is shared).",
         f"Programs of issue 4's items (1) and (2): planted teachers (`benchmarks/_data.py`), n = {n}, d = {d} "
         f"(+ intercept), {P} sampled patterns, squared loss, float64; beta = "
         f"{', '.join(f'{b:g}' for b in betas)} (1e-3 n times 8 and powers of {args.ratio:g}), decreasing. "
         "Each solver at its "
         f"defaults (`max_time={args.max_time:g}`): the first beta solved once, then every later beta cold against "
         "warm from the solution at the beta before. Times and iterations are totals over the later betas; "
         "'objectives differ' is the largest relative difference between the two runs at one beta; 'gap' the "
         "largest certified relative gap (`Solution.relative_gap`) along each run; 'converged' counts the solves "
         "that met their tolerance (the others stopped at `max_iter` or `max_time`, with a warning).", ""]
    L += markdown_table(
        ["program", "solver", "cold s", "cold iterations", "cold converged", "warm s", "warm iterations",
         "warm converged", "cold / warm time", "cold / warm iterations", "objectives differ", "gap cold", "gap warm"],
        [[r["kind"], r["solver"], f"{r['cold']['time']:.2f}", r["cold"]["iterations"],
          f"{r['cold']['converged']}/{k - 1}", f"{r['warm']['time']:.2f}", r["warm"]["iterations"],
          f"{r['warm']['converged']}/{k - 1}", f"{r['ratio_time']:.2f}", f"{r['ratio_iterations']:.2f}",
          f"{r['difference']:.1e}", f"{max(r['cold']['gaps']):.1e}", f"{max(r['warm']['gaps']):.1e}"] for r in rows])
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    main()
