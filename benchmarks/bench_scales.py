"""Targets far from unit size: every solver on one program with its targets and beta
multiplied by ``c``, against ``c^2`` times the CVXPY optimum of the unit-size program.

    python benchmarks/bench_scales.py            # c = 1e-6, 1e-4, 1, 1e4, 1e6 (about two minutes)
    python benchmarks/bench_scales.py --quick    # c = 1e-4, 1e4

For the squared loss, targets and beta times ``c`` give the solution times ``c`` and the
objective times ``c^2`` (theory.md, "Notation": the loss is homogeneous of degree 2 in
(Z, Y), the penalty of degree 1 in Q). The solvers solve such a program in the units of
its targets (``ConvexProgram.target_unit``, a power of two near their root mean square);
this benchmark checks that every solver then returns the same optimum at every scale:
'rel. error' is ``objective / c^2`` against the unit-size program's CVXPY objective (with
Clarabel's tightened tolerances), 'certified gap' the solve's own
``Solution.relative_gap``, 'warnings' the number it gave. Programs: n = 40 samples of
d = 2 features (+ intercept), ``y = sin(x_1) + 0.1 noise``, 8 sampled patterns (two-layer
ReLU, gated, three-layer with 2 first-layer neurons), beta = ``c``. Writes the section
``## Targets far from unit size`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _data import OUTPUT_HELP, machine, machine_line, markdown_table, recorder, results_path  # noqa: E402
from run_all import write_report  # noqa: E402

from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram  # noqa: E402
from convexrelu.solvers import get_solver  # noqa: E402

HEADING = "## Targets far from unit size"
PROGRAMS = {"relu": TwoLayerReLUProgram, "gated": GatedReLUProgram, "three": ThreeLayerReLUProgram}
SOLVERS = {"relu": ("ipm", "admm", "auglag", "cvxpy"), "gated": ("ipm", "admm", "fista", "cvxpy"),
           "three": ("ipm", "admm", "auglag", "cvxpy")}


def program(kind: str, c: float):
    """The program of ``kind`` with targets and beta times ``c`` (the same patterns)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 2))
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(40)
    extra = {"hidden": 2} if kind == "three" else {}
    return PROGRAMS[kind](X, c * y, 8, beta=c, random_state=0, **extra)


def run(kind: str, name: str, c: float, reference: float) -> dict:
    prog = program(kind, c)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            sol = get_solver(name).solve(prog)
        except Exception as exc:  # (a failure is a result here)
            return {"kind": kind, "solver": name, "c": c, "error": f"{type(exc).__name__}: {str(exc)[:80]}"}
        elapsed = time.perf_counter() - start
    return {"kind": kind, "solver": name, "c": c, "rel": sol.objective / c**2 / reference - 1, "gap": sol.relative_gap,
            "status": sol.status, "warnings": len(caught), "unit": sol.info.get("target_scale", 1.0), "time": elapsed}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="c = 1e-4 and 1e4")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, args.quick)
    scales = (1e-4, 1e4) if args.quick else (1e-6, 1e-4, 1.0, 1e4, 1e6)
    torch.set_num_threads(1)
    info = machine()
    say, printed = recorder()
    say(machine_line(info, 1))
    rows = []
    for kind in PROGRAMS:
        reference = CVXPYSolver().solve(program(kind, 1.0)).objective
        say(f"{kind}: unit-size CVXPY objective {reference:.10g}")
        for c in scales:
            for name in SOLVERS[kind]:
                r = run(kind, name, c, reference)
                rows.append(r)
                if "error" in r:
                    say(f"    c={c:g} {name:6s} {r['error']}")
                else:
                    say(f"    c={c:g} {name:6s} objective / c^2 relative error {r['rel']:+.1e}, certified gap "
                        f"{r['gap']:.1e}, status {r['status']}, {r['warnings']} warning(s), solved in units of "
                        f"{r['unit']:g}, {r['time']:.2f}s")
    worst = max(abs(r["rel"]) for r in rows if "rel" in r)
    say(f"largest relative error over every program, solver and scale: {worst:.1e}; failures "
        f"{sum('error' in r for r in rows)}, warnings {sum(r.get('warnings', 0) for r in rows)}")
    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_scales.py{' --quick' if args.quick else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} (1 thread), Python {info['python']}; "
         f"load average at the start {info['load_average']}.",
         "Each program (n = 40, d = 2 + intercept, 8 sampled patterns, squared loss, float64) with its targets and "
         "beta times `c`, each solver at its defaults; 'rel. error' is `objective / c^2` against the unit-size "
         "program's CVXPY objective, 'gap' the solve's own certified relative gap, 'unit' the power of two the "
         "solver worked in (`ConvexProgram.target_unit`).", ""]
    L += markdown_table(
        ["program", "solver", "c", "rel. error", "gap", "status", "warnings", "unit"],
        [[r["kind"], r["solver"], f"{r['c']:g}", r["error"]] if "error" in r else
         [r["kind"], r["solver"], f"{r['c']:g}", f"{r['rel']:+.1e}", f"{r['gap']:.1e}", r["status"], r["warnings"],
          f"{r['unit']:g}"] for r in rows])
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    main()
