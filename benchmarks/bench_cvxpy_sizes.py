"""How large a three-layer program the standard (CVXPY + Clarabel) path solves in under a
minute on this machine.

    python benchmarks/bench_cvxpy_sizes.py [--limit SECONDS]

Grows (n, d, m1, patterns) along a ladder on a planted three-layer teacher (squared
loss, beta = 1e-2) and prints the wall time of each solve; stops after the first solve
over the limit (default 60 s). Also times the two-layer ReLU and gated programs.
"""

from __future__ import annotations

import argparse
import platform
import time


from _data import planted_three_layer  # noqa: E402  (the script's folder is on sys.path)
from convexrelu import CVXPYSolver, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram


LADDER_3 = [(100, 5, 2, 20), (200, 10, 3, 50), (300, 10, 3, 50), (300, 10, 3, 100), (500, 10, 3, 100),
            (500, 10, 3, 200), (1000, 10, 3, 100)]
LADDER_2 = [(200, 10, 100), (500, 10, 100), (1000, 10, 200), (2000, 20, 200), (4000, 20, 400)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=60.0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print("three-layer (C3), CVXPY + Clarabel")
    print(f"{'n':>6} {'d':>4} {'m1':>3} {'patterns':>8} {'blocks':>7} {'time s':>8}")
    for n, d, m1, P in LADDER_3:
        X, y = planted_three_layer(n, d)
        prog = ThreeLayerReLUProgram(X, y, P, hidden=m1, beta=1e-2, random_state=0)
        t = time.perf_counter()
        CVXPYSolver().solve(prog)
        el = time.perf_counter() - t
        print(f"{n:>6} {d:>4} {m1:>3} {len(prog.patterns):>8} {prog.shape[1]:>7} {el:>8.1f}", flush=True)
        if el > args.limit:
            break
    for cls in (TwoLayerReLUProgram, GatedReLUProgram):
        print(f"{cls.__name__}, CVXPY + Clarabel")
        print(f"{'n':>6} {'d':>4} {'patterns':>8} {'time s':>8}")
        for n, d, P in LADDER_2:
            X, y = planted_three_layer(n, d)
            prog = cls(X, y, P, beta=1e-2, random_state=0)
            t = time.perf_counter()
            CVXPYSolver().solve(prog)
            el = time.perf_counter() - t
            print(f"{n:>6} {d:>4} {len(prog.patterns):>8} {el:>8.1f}", flush=True)
            if el > args.limit:
                break


if __name__ == "__main__":
    main()
