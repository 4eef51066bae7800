"""How large a program the standard (CVXPY + Clarabel) path solves in under a minute on
this machine.

    python benchmarks/bench_cvxpy_sizes.py [--limit SECONDS] [--quick] [--output FILE]

Grows (n, d, m1, patterns) along a ladder on a planted three-layer teacher (squared
loss, beta = 1e-2) and prints the wall time of each solve; each ladder stops after the
first solve over the limit (default 60 s). Also times the two-layer ReLU and gated
programs. Writes the section "## CVXPY sizes" of ``benchmarks/RESULTS.md`` (``--output``).
"""

from __future__ import annotations

import argparse
import time

import torch

from _data import (OUTPUT_HELP, machine, machine_line, markdown_table, planted_three_layer,  # noqa: E402
                   recorder, results_path)
from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from run_all import write_report  # noqa: E402

HEADING = "## CVXPY sizes"
LADDER_3 = [(100, 5, 2, 20), (200, 10, 3, 50), (300, 10, 3, 50), (300, 10, 3, 100), (500, 10, 3, 100),
            (500, 10, 3, 200), (1000, 10, 3, 100)]
LADDER_2 = [(200, 10, 100), (500, 10, 100), (1000, 10, 200), (2000, 20, 200), (4000, 20, 400)]
QUICK_3, QUICK_2 = LADDER_3[:2], LADDER_2[:1]


def _timed(prog) -> tuple[float, str]:
    start = time.perf_counter()
    sol = CVXPYSolver().solve(prog)
    return time.perf_counter() - start, sol.status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=60.0, help="stop a ladder after its first solve over this (s)")
    parser.add_argument("--quick", action="store_true", help="the first rungs only, a smoke run")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, args.quick)
    ladder3, ladder2 = (QUICK_3, QUICK_2) if args.quick else (LADDER_3, LADDER_2)
    info = machine()
    say, printed = recorder()
    say(machine_line(info, torch.get_num_threads()))
    rows3, rows2 = [], []
    say("three-layer (C3), CVXPY + Clarabel")
    for n, d, m1, P in ladder3:
        X, y = planted_three_layer(n, d)
        prog = ThreeLayerReLUProgram(X, y, P, hidden=m1, beta=1e-2, random_state=0)
        el, status = _timed(prog)
        rows3.append([n, d, m1, len(prog.patterns), prog.shape[1], f"{el:.1f}", status])
        say(f"    n={n} d={d} m1={m1} patterns={len(prog.patterns)} blocks={prog.shape[1]}: {el:.1f}s, {status}")
        if el > args.limit:
            break
    for cls, label in ((TwoLayerReLUProgram, "two-layer ReLU"), (GatedReLUProgram, "gated ReLU")):
        say(f"{label}, CVXPY + Clarabel")
        for n, d, P in ladder2:
            X, y = planted_three_layer(n, d)
            prog = cls(X, y, P, beta=1e-2, random_state=0)
            el, status = _timed(prog)
            rows2.append([label, n, d, len(prog.patterns), prog.shape[1], f"{el:.1f}", status])
            say(f"    n={n} d={d} patterns={len(prog.patterns)} blocks={prog.shape[1]}: {el:.1f}s, {status}")
            if el > args.limit:
                break
    command = "python benchmarks/bench_cvxpy_sizes.py" + (" --quick" if args.quick else "") + (
        f" --limit {args.limit:g}" if args.limit != 60.0 else "")
    L = [HEADING, "",
         f"Produced by `{command}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}; load "
         f"average at the start {info['load_average']}.",
         "The standard path, `CVXPYSolver()` (Clarabel at its default tolerances), on a planted three-layer teacher "
         "(`benchmarks/_data.py`), squared loss, beta = 1e-2, float64; each ladder stops after its first solve "
         f"over {args.limit:g} s. Times are wall times of the solve (CVXPY's compilation included).", "",
         "three-layer (C3):", ""]
    L += markdown_table(["n", "d", "m1", "patterns", "blocks", "time s", "status"], rows3)
    L += ["", "two-layer ReLU and gated ReLU:", ""]
    L += markdown_table(["program", "n", "d", "patterns", "blocks", "time s", "status"], rows2)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    main()
