"""Gated ReLU at scale: FISTA with the coefficient products against the mask products (CPU).

    python benchmarks/bench_gated.py            # squared: n = 20,000, 50,000; softmax: 20,000 (about 20 minutes)
    python benchmarks/bench_gated.py --quick    # squared: n = 2,000, 5,000; softmax: 2,000

The gated ReLU program (planted two-layer teacher, ``benchmarks/_data.py``; d = 50, 500
sampled gates, ``beta = 1e-3 n``, float32, the sizes of issue 4's scale item) with the
squared loss, and with the softmax loss on three classes (the teacher's output cut at
its terciles: three outputs, each with its own blocks), solved by :class:`FISTA` at its
defaults but ``preconditioner=None`` (``max_time`` 300 s; ``bench_preconditioner.py``
measures the preconditioner), each solve in its own process, with the operator's two
ways of computing the model and its adjoint:

- coefficients (now): ``A(Q) = rowsum(X * (coef @ Q^T))`` and ``A^T(r) = (X * r)^T @ coef``,
  output by output, products with (n, d) and (d, B) results (``operators`` module
  docstring);
- masks (before): ``X @ Q`` into an (n, B) array, masked and summed, and ``X.T @ T`` with
  ``T`` the mask times the broadcast residual: the same products plus elementwise passes
  over (n, B) arrays. The baseline is the same operator told not to use the coefficients.

Printed side by side: wall time (building the program included), solve time,
iterations, time per iteration, peak memory, status, the objectives relative to each
other, and the ratio baseline / new, with the floor of item 4 of the issue (time per
iteration over the time of ``X @ Q`` into an existing array plus ``X.T @ T``, measured in
the same process). Writes the section ``## Gated ReLU at scale`` of RESULTS.md.
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
    OUTPUT_HELP, machine, machine_line, markdown_table, recorder, results_path, run_json_child,
)
from run_all import write_report  # noqa: E402

HEADING = "## Gated ReLU at scale"
VARIANTS = {"coefficients": "coefficient products (now)", "masks": "mask products (before)"}


def _child(n: int, d: int, patterns: int, variant: str, max_time: float, threads: int, loss: str) -> None:
    """One solve and the floor; prints one JSON line."""
    import numpy as np
    import torch

    import bench_solvers as bs
    from convexrelu.operators import BlockOperator
    from convexrelu.solvers import FISTA

    class MaskProducts(BlockOperator):
        _coefficient_products = False

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    if loss == "squared":
        prog = bs.build("gated", n, d, patterns, dtype=torch.float32)
    else:
        from _data import two_layer_teacher
        from convexrelu import GatedReLUProgram

        X, y = two_layer_teacher(n, d, seed=0)
        classes = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
        prog = GatedReLUProgram(X, classes, patterns, loss="softmax", beta=1e-3 * n, random_state=0,
                                dtype=torch.float32)
    if variant == "masks":
        prog.operator.__class__ = MaskProducts  # its restriction to the live groups stays one
    setup = time.perf_counter() - t0
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status says it
        sol = FISTA(max_time=max_time, preconditioner=None).solve(prog)  # plain: the operators compared
    solve = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    f = bs.floor(prog, iterations=30)
    print(json.dumps({
        "n": n, "loss": loss, "outputs": prog.operator.n_outputs, "d": prog.operator.n_features, "blocks": prog.shape[1], "setup_time": setup, "solve_time": solve,
        "iterations": sol.iterations, "status": sol.status, "objective": sol.objective,
        "residual": sol.info.get("residual"), "peak_rss_gb": peak,
        "floor_iteration": f["per_iteration"], "floor_gemms": f["two_gemms"], "floor": f["ratio"],
    }))


def _bound(new: dict, old: dict) -> str:
    """What the solve-time ratio old / new is when a solve stopped at ``max_time``."""
    stopped = (new["status"] == "max_time", old["status"] == "max_time")
    return {(False, False): "", (False, True): ">= ", (True, False): "<= ", (True, True): "(both at max_time) "}[stopped]


def _run(n, d, patterns, variant, max_time, threads, loss) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), str(d), str(patterns), variant,
           str(max_time), str(threads), loss]
    out = run_json_child(cmd)
    if "error" in out:
        return {"n": n, "error": out["error"], "line": f"{loss} n={n} {variant}: child failed: {out['error']}"}
    out["per_iteration"] = out["solve_time"] / max(out["iterations"], 1)
    out["line"] = (
        f"gated {loss} n={n} d={out['d']} (with the intercept) gates={patterns} outputs={out['outputs']} "
        f"blocks={out['blocks']} float32 "
        f"{variant:12s} ({VARIANTS[variant]}): wall {out['wall_time']:.1f}s (solve {out['solve_time']:.1f}s, "
        f"{out['iterations']} iterations, {1e3 * out['per_iteration']:.1f} ms/iteration), peak memory "
        f"{out['peak_rss_gb']:.2f} GB; status {out['status']}, objective {out['objective']:.8g}; floor "
        f"{1e3 * out['floor_iteration']:.1f} ms/iteration against two GEMMs {1e3 * out['floor_gemms']:.1f} ms, "
        f"ratio {out['floor']:.2f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="squared: n = 2,000 and 5,000; softmax: 2,000")
    parser.add_argument("--sizes", default=None, help="comma-separated n, squared loss (default 20000,50000)")
    parser.add_argument("--softmax-sizes", default=None, help="comma-separated n, softmax loss (default 20000)")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--patterns", type=int, default=500)
    parser.add_argument("--max-time", type=float, default=300.0, help="time limit of every solve (default 300 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    sizes = args.sizes or ("2000,5000" if args.quick else "20000,50000")
    softmax_sizes = args.softmax_sizes or ("2000" if args.quick else "20000")
    runs = [("squared", int(v)) for v in sizes.split(",") if v] + [("softmax", int(v)) for v in softmax_sizes.split(",") if v]
    info = machine()
    say, printed = recorder()
    say(machine_line(info, args.threads))
    rows = []
    for loss, n in runs:
        a = _run(n, args.features, args.patterns, "coefficients", args.max_time, args.threads, loss)
        b = _run(n, args.features, args.patterns, "masks", args.max_time, args.threads, loss)
        say(a["line"])
        say(b["line"])
        row = {"n": n, "loss": loss, "a": a, "b": b}
        if "error" not in a and "error" not in b:
            row["ratio"] = b["solve_time"] / a["solve_time"]
            row["difference"] = (b["objective"] - a["objective"]) / abs(a["objective"])
            row["ratio_iteration"] = b["per_iteration"] / a["per_iteration"]
            say(f"    {loss} n={n}: masks / coefficients solve time {_bound(a, b)}{row['ratio']:.2f}x, "
                f"time per iteration {row['ratio_iteration']:.2f}x; objectives differ by {row['difference']:+.1e} "
                "(relative)")
        rows.append(row)

    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_gated.py{' --quick' if args.quick else ''}"
         f"{' --sizes ' + args.sizes if args.sizes else ''}"
         f"{' --softmax-sizes ' + args.softmax_sizes if args.softmax_sizes else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({args.threads} threads), Python "
         f"{info['python']}; load average at the start {info['load_average']} (the machine is shared).",
         f"Data: planted two-layer teacher (`benchmarks/_data.py`), d = {args.features} (+ intercept), "
         f"{args.patterns} sampled gates, beta = 1e-3 n, float32; the squared loss, and the softmax loss on three classes "
         f"(the teacher's output cut at its terciles: three outputs of {args.patterns} blocks each). "
         f"`FISTA(max_time={args.max_time:g}, preconditioner=None)` "
         "at its other defaults, each solve in its own process (wall time includes starting it and building the program). "
         "The operator's model and adjoint through the model coefficients, `rowsum(X * (coef @ Q^T))` and "
         "`(X * r)^T @ coef` (now), against the same operator with `X @ Q` into an (n, B) array, masks and sums "
         "(before). 'Floor' is item 4 of issue 4: time per FISTA iteration / time of `X @ Q` (into an existing "
         "array) + `X.T @ T`, measured in the same process after the solve. 'ms / iteration' is the solve time "
         "over the iterations (the step-size estimate and the final certificate included). 'Peak GB' is the "
         "whole process's peak resident memory, building the program included. 'Objective' is the baseline's "
         "relative to the new one's.", ""]
    cells = []
    for r in rows:
        a, b = r["a"], r["b"]
        if "ratio" not in r:
            cells.append([r["loss"], r["n"], (a.get("error") or b.get("error"))[:200]])
            continue
        cells.append([r["loss"], r["n"], a["blocks"]]
                     + [v for x in (a, b) for v in (f"{x['solve_time']:.1f}", x["iterations"],
                                                    f"{1e3 * x['per_iteration']:.1f}", f"{x['floor']:.2f}",
                                                    f"{x['peak_rss_gb']:.2f}")]
                     + [f"{r['difference']:+.1e}", f"{_bound(a, b)}{r['ratio']:.2f}x", f"{r['ratio_iteration']:.2f}x"])
    L += markdown_table(["loss", "n", "blocks", "now: solve s", "iterations", "ms / iteration", "floor", "peak GB",
                         "before: solve s", "iterations", "ms / iteration", "floor", "peak GB", "objective",
                         "before / now, solve", "before / now, per iteration"], cells)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6]),
               int(sys.argv[7]), sys.argv[8])
        sys.exit(0)
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
