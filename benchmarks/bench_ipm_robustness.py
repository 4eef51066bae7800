"""The interior-point solver against CVXPY (Clarabel) on every program x loss x beta.

    python benchmarks/bench_ipm_robustness.py            # n = 300 (about 5 minutes on 2 cores)
    python benchmarks/bench_ipm_robustness.py --quick    # n = 80

For each of the 27 programs (gated, two-layer and three-layer ReLU; squared, logistic
and softmax losses; beta in {0.01, 1, 30}) on one planted-teacher data set, both solvers
run side by side in one process: status, iterations, time, objective relative to
Clarabel's (where Clarabel succeeds), certified relative gap and cone violation of the
interior point. Writes the section "## Interior point: robustness" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _data import OUTPUT_HELP, machine, results_path, two_layer_teacher  # noqa: E402
from run_all import write_section  # noqa: E402

from convexrelu import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram  # noqa: E402
from convexrelu.solvers import CVXPYSolver, InteriorPoint, SolverError  # noqa: E402

PROGRAMS = {"gated": GatedReLUProgram, "relu": TwoLayerReLUProgram, "three": ThreeLayerReLUProgram}
LOSSES = ("squared", "logistic", "softmax")
BETAS = (0.01, 1.0, 30.0)


def targets(loss: str, y: np.ndarray) -> np.ndarray:
    """Regression targets, or two classes split at the median for the classification losses."""
    if loss == "squared":
        return y
    labels = (y > np.median(y)).astype(int)
    return 2.0 * labels - 1.0 if loss == "logistic" else labels


def run(n: int, d: int, patterns: int, three_patterns: int):
    X, y = two_layer_teacher(n, d, seed=1)
    rows = []
    for kind, cls in PROGRAMS.items():
        for loss in LOSSES:
            for beta in BETAS:
                extra = {"hidden": 3} if kind == "three" else {}
                P = three_patterns if kind == "three" else patterns
                prog = cls(X, targets(loss, y), P, loss=loss, beta=beta, random_state=0, **extra)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    t = time.perf_counter()
                    sol = InteriorPoint().solve(prog)
                    t_ipm = time.perf_counter() - t
                t = time.perf_counter()
                try:
                    ref = CVXPYSolver().solve(prog)
                    ref_obj, ref_status = ref.objective, ref.status
                except SolverError:
                    ref_obj, ref_status = None, "failed"
                t_ref = time.perf_counter() - t
                rel = None if ref_obj is None else (sol.objective - ref_obj) / max(abs(ref_obj), 1e-12)
                scale = max(1.0, float(np.max(np.abs(prog.predict(sol.weights)))))
                row = dict(kind=kind, loss=loss, beta=beta, status=sol.status, iterations=sol.iterations, time=t_ipm,
                           rel=rel, gap=sol.relative_gap, violation=sol.constraint_violation / scale,
                           warnings=len(caught), cvxpy_time=t_ref, cvxpy_status=ref_status)
                rows.append(row)
                rel_s = "n/a" if rel is None else f"{rel:+.1e}"
                print(f"{kind:6s} {loss:8s} beta={beta:<5g} ipm {sol.status:8s} {sol.iterations:3d} it {t_ipm:6.2f}s "
                      f"rel {rel_s:>8s} gap {sol.relative_gap:.1e} "
                      f"violation {row['violation']:.1e} | cvxpy {ref_status:8s} {t_ref:6.2f}s "
                      f"ratio {t_ref / t_ipm:5.2f}x", flush=True)
    return rows


def render(rows, info, args, n, patterns, three_patterns) -> str:
    ok = [r for r in rows if r["rel"] is not None]
    ratios = [r["cvxpy_time"] / r["time"] for r in rows]
    L = ["## Interior point: robustness", ""]
    L.append(f"Produced by `python benchmarks/bench_ipm_robustness.py{' --quick' if args.quick else ''}` on "
             f"{info['date']}; {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
             f"({torch.get_num_threads()} threads), Python {info['python']}; load average {info['load_average']}.")
    L.append(f"Data: two-layer planted teacher, n={n}, d=8 (+ intercept); {patterns} sampled patterns (two-layer, "
             f"gated), {three_patterns} (three-layer, m1 = 3); classification targets split at the median; "
             "`InteriorPoint()` at its defaults against `CVXPYSolver()` (Clarabel) in the same process.")
    L.append("")
    L.append(f"Summary: {sum(r['status'] == 'optimal' for r in rows)} of {len(rows)} interior-point solves converged; "
             f"Clarabel failed on {len(rows) - len(ok)}; where it succeeded the largest |relative difference| is "
             f"{max(abs(r['rel']) for r in ok):.1e}; time ratio Clarabel / interior point from "
             f"{min(ratios):.2f}x to {max(ratios):.2f}x (median {float(np.median(ratios)):.2f}x).")
    L.append("")
    L.append("| program | loss | beta | status | iterations | s | rel. to Clarabel | certified gap | violation | Clarabel | Clarabel s | ratio |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rel = "n/a" if r["rel"] is None else f"{r['rel']:+.1e}"
        L.append(f"| {r['kind']} | {r['loss']} | {r['beta']:g} | {r['status']} | {r['iterations']} | {r['time']:.2f} | "
                 f"{rel} | {r['gap']:.1e} | "
                 f"{r['violation']:.1e} | {r['cvxpy_status']} | {r['cvxpy_time']:.2f} | {r['cvxpy_time'] / r['time']:.2f}x |")
    return "\n".join(L).rstrip() + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    torch.set_num_threads(args.threads)
    n, patterns, three_patterns = (80, 20, 10) if args.quick else (300, 60, 30)
    info = machine()
    rows = run(n, 8, patterns, three_patterns)
    if not args.no_write:
        write_section(args.output, render(rows, info, args, n, patterns, three_patterns),
                      heading="## Interior point: robustness")
        print(f"wrote the section '## Interior point: robustness' of {args.output}")


if __name__ == "__main__":
    main()
