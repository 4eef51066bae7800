"""Several classes: the interior point on three-class programs, before and after (CPU).

    python benchmarks/bench_classes.py            # n = 1,500 and 3,000 (about 15 minutes)
    python benchmarks/bench_classes.py --quick    # n = 600 and 1,500

Classification data (``sklearn.datasets.make_classification``: 10 features, 6
informative, 3 classes, ``random_state=0``), the three-layer program with two
first-layer neurons per sub-network, 100 sampled patterns, ``beta = 1``, an intercept,
float64 (the classifier's defaults, with its seeded patterns replaced by as many sampled
ones). Both losses of a multi-class classifier, each solved by the interior point two
ways in its own process:

- squared loss on one-hot targets (the classifier's default): one program per output,
  solved one after the other (``_presolve.program_parts``: the loss is a sum over the
  outputs), against the whole program at once (the same program with a squared loss that
  does not say it separates: what every solver did before);
- softmax loss: the loss Hessian's factor with ``C - 1`` columns (``Loss.hessian_rank``),
  against one with ``C`` columns (``diag(sqrt p) - p sqrt(p)^T``, the factor before).

Both baselines run today's interior point, whose Woodbury matrix is assembled from one
``n x n`` product per output (:func:`ipm._mixed_capacitance`): they are already faster
than the code before these changes, and the ratios understate them.

Printed side by side: wall time (building the program included), iterations, peak
memory, status, certified relative gap, the objectives relative to each other, and
the ratio baseline / new. Writes the section ``## Several classes`` of RESULTS.md.
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

HEADING = "## Several classes"
VARIANTS = {  # name: (loss, the baseline's description)
    "squared/apart": ("squared", "one program per output"),
    "squared/joint": ("squared", "all outputs at once (before)"),
    "softmax/rank C-1": ("softmax", "Hessian factor with C - 1 columns"),
    "softmax/rank C": ("softmax", "Hessian factor with C columns (before)"),
}


def _baseline_losses():
    """The losses of the baselines: a squared loss that does not separate over the
    outputs, and a softmax loss with the ``C``-column Hessian factor."""
    import torch

    from convexrelu.losses import SoftmaxLoss, SquaredLoss

    class JointSquared(SquaredLoss):
        separable_outputs = False

    class FullRankSoftmax(SoftmaxLoss):
        def hessian_factor(self, Z, Y):
            P = torch.softmax(Z, dim=1)
            r = torch.sqrt(P)
            return torch.diag_embed(r) - P[:, :, None] * r[:, None, :]

        def hessian_rank(self, n_outputs):
            return int(n_outputs)

    return {"squared/joint": JointSquared(), "softmax/rank C": FullRankSoftmax()}


def _child(n: int, patterns: int, variant: str, max_time: float) -> None:
    """One solve; prints one JSON line."""
    import numpy as np
    from sklearn.datasets import make_classification

    from convexrelu import ThreeLayerReLUProgram
    from convexrelu.solvers import InteriorPoint

    t0 = time.perf_counter()
    X, y = make_classification(n_samples=n, n_features=10, n_informative=6, n_classes=3, random_state=0)
    loss = VARIANTS[variant][0]
    prog = ThreeLayerReLUProgram(X, np.eye(3)[y] if loss == "squared" else y, patterns, hidden=2, beta=1.0,
                                 loss=loss, random_state=0)
    baseline = _baseline_losses().get(variant)
    if baseline is not None:
        prog.loss = baseline
    setup = time.perf_counter() - t0
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status says it
        sol = InteriorPoint(max_time=max_time).solve(prog)
    print(json.dumps({
        "n": n, "blocks": prog.shape[1], "setup_time": setup, "solve_time": time.perf_counter() - t,
        "iterations": sol.iterations, "status": sol.status, "objective": sol.objective,
        "relative_gap": sol.relative_gap, "parts": len(sol.info.get("output_parts", ())) or 1,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }))


def _run(n, patterns, variant, max_time) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), str(patterns), variant, str(max_time)]
    out = run_json_child(cmd)
    if "error" in out:
        return {"n": n, "error": out["error"], "line": f"n={n} {variant}: child failed: {out['error']}"}
    out["line"] = (
        f"three-layer n={n} classes=3 patterns={patterns} blocks={out['blocks']} {variant:17s} "
        f"({VARIANTS[variant][1]}): wall {out['wall_time']:.1f}s (solve {out['solve_time']:.1f}s, "
        f"{out['iterations']} iterations over {out['parts']} program(s)), peak memory {out['peak_rss_gb']:.2f} GB; "
        f"status {out['status']}, objective {out['objective']:.10g}, relative gap {out['relative_gap']:.1e}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 600 and 1,500")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 1500,3000)")
    parser.add_argument("--patterns", type=int, default=100)
    parser.add_argument("--max-time", type=float, default=300.0, help="time limit of every solve (default 300 s)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    sizes = args.sizes or ("600,1500" if args.quick else "1500,3000")
    info = machine()
    say, printed = recorder()
    say(machine_line(info))
    rows = []
    for n in (int(v) for v in sizes.split(",")):
        for new, old in (("squared/apart", "squared/joint"), ("softmax/rank C-1", "softmax/rank C")):
            a, b = _run(n, args.patterns, new, args.max_time), _run(n, args.patterns, old, args.max_time)
            say(a["line"])
            say(b["line"])
            row = {"n": n, "new": new, "old": old, "a": a, "b": b}
            if "error" not in a and "error" not in b:
                row["ratio"] = b["wall_time"] / a["wall_time"]
                row["difference"] = (b["objective"] - a["objective"]) / abs(a["objective"])
                say(f"    n={n} {new.split('/')[0]}: {old} / {new} wall time {row['ratio']:.2f}x"
                    f"{' (the baseline stopped at max_time: a lower bound)' if b['status'] == 'max_time' else ''}; "
                    f"objectives differ by {row['difference']:+.1e} (relative)")
            rows.append(row)

    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_classes.py{' --quick' if args.quick else ''}"
         f"{' --sizes ' + args.sizes if args.sizes else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}; load average "
         f"at the start {info['load_average']} (the machine is shared).",
         "Data: `make_classification(n, 10 features, 6 informative, 3 classes, random_state=0)`. Three-layer program, "
         f"m1 = 2, {args.patterns} sampled patterns, beta = 1, intercept, float64; the interior point at its default "
         f"tolerance (max_time {args.max_time:g} s), each solve in its own process (wall time includes starting it and "
         "building the program). Squared loss on one-hot targets: one program per output (now) against all outputs at "
         "once (before). Softmax loss: the Hessian factor with C - 1 columns (now) against C columns (before). "
         "Both baselines run today's interior point, whose Woodbury matrix is assembled from one n x n product per "
         "output: faster than the code before these changes, so the ratios understate them. "
         "'Objective' is the baseline's relative to the new one's.", ""]
    cells = []
    for r in rows:
        a, b = r["a"], r["b"]
        if "ratio" not in r:
            cells.append([r["n"], r["new"], (a.get("error") or b.get("error"))[:200]])
            continue
        cells.append([r["n"], r["new"].split("/")[0], a["blocks"], f"{a['wall_time']:.1f}", a["iterations"],
                      f"{a['peak_rss_gb']:.2f}", f"{a['relative_gap']:.1e}", f"{b['wall_time']:.1f}", b["iterations"],
                      b["status"], f"{b['peak_rss_gb']:.2f}", f"{r['difference']:+.1e}",
                      f"{'>= ' if b['status'] == 'max_time' else ''}{r['ratio']:.2f}x"])
    L += markdown_table(["n", "loss", "blocks", "new: wall s", "iterations", "peak GB", "gap", "baseline: wall s",
                         "iterations", "status", "peak GB", "objective", "baseline / new"], cells)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
        sys.exit(0)
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
