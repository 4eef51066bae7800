"""The interior point on many samples at a small beta: its barrier on the likely facets or on every row.

    python benchmarks/bench_ipm_small_beta.py             # n = 5,000, 20,000, 40,000 (about 10 minutes)
    python benchmarks/bench_ipm_small_beta.py --quick     # n = 2,000 and 5,000

Friedman's regression problem #1 (``sklearn.datasets.make_friedman1``: 10 features,
noise 1.0, targets standardised, features as drawn), the three-layer program (squared
loss, m1 = 2, 50 sampled patterns, ``random_state=0``, float64) at two betas: ``1e-3 n``
(as in ``bench_many_samples.py``) and ``1`` (the estimators' default, small against
``n``). The interior point runs at its default tolerance (1e-7), each solve in its own
process, twice:

- ``every row``: ``InteriorPoint(row_fraction=None)``, the barrier on every cone row (what
  the solver did before where ``n`` exceeded four times the unknowns);
- ``selected``: the default, the barrier on the likely facets of the cones
  (``row_fraction=0.5``, :mod:`convexrelu.solvers._facets`), with the time the selection
  took.

Printed side by side: solve time, Newton iterations, status, objective, certified
relative gap (``Solution.relative_gap``), the fraction of cone rows kept. Writes the
section ``## Interior point: many samples at a small beta`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _data import (  # noqa: E402
    OUTPUT_HELP, friedman, machine, machine_line, markdown_table, recorder, results_path, run_json_child,
)
from run_all import write_report  # noqa: E402

HEADING = "## Interior point: many samples at a small beta"


def _child(n: int, beta: str, mode: str) -> None:
    """One solve; prints one JSON line."""
    import convexrelu.solvers.ipm as ipm
    from convexrelu import ThreeLayerReLUProgram
    from convexrelu.solvers import InteriorPoint

    selection = {"time": 0.0}
    likely = ipm.likely_facets

    def timed(*args, **kwargs):
        t = time.perf_counter()
        rows = likely(*args, **kwargs)
        selection["time"] = time.perf_counter() - t
        return rows

    ipm.likely_facets = timed
    X, y = friedman(n)
    value = 1e-3 * n if beta == "1e-3 n" else float(beta)
    prog = ThreeLayerReLUProgram(X, y, 50, hidden=2, beta=value, random_state=0)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status says it
        sol = InteriorPoint(**({"row_fraction": None} if mode == "every row" else {})).solve(prog)
    print(json.dumps({
        "n": n, "beta": beta, "mode": mode, "solve_time": time.perf_counter() - t, "selection": selection["time"],
        "iterations": sol.iterations, "status": sol.status, "objective": sol.objective,
        "relative_gap": sol.relative_gap, "kept_rows": sol.info["kept_rows"], "blocks": prog.shape[1],
    }))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000 and 5,000")
    parser.add_argument("--sizes", default=None, help="comma-separated n (default 5000,20000,40000)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, args.quick)
    sizes = [int(v) for v in (args.sizes or ("2000,5000" if args.quick else "5000,20000,40000")).split(",")]
    info = machine()
    say, printed = recorder()
    say(machine_line(info))
    table = []
    for n in sizes:
        for beta in ("1e-3 n", "1"):
            runs = {}
            for mode in ("every row", "selected"):
                out = run_json_child([sys.executable, os.path.abspath(__file__), "--child", str(n), beta, mode])
                if "error" in out:
                    say(f"n={n} beta={beta} {mode}: child failed: {out['error']}")
                    continue
                runs[mode] = out
                say(f"three-layer n={n} beta={beta} blocks={out['blocks']} {mode:9s}: solve {out['solve_time']:.1f}s "
                    f"(selection {out['selection']:.1f}s), {out['iterations']} iterations, status {out['status']}, "
                    f"objective {out['objective']:.10g}, certified gap {out['relative_gap']:.1e}, "
                    f"rows kept {out['kept_rows']:.3f}")
            if len(runs) == 2:
                a, b = runs["every row"], runs["selected"]
                ratio = b["solve_time"] / a["solve_time"]
                say(f"    n={n} beta={beta}: selected / every row solve time {ratio:.2f}")
                table.append([n, beta, f"{a['solve_time']:.1f}", a["iterations"], a["status"],
                              f"{a['relative_gap']:.1e}", f"{b['solve_time']:.1f}", f"{b['selection']:.1f}",
                              b["iterations"], b["status"], f"{b['relative_gap']:.1e}", f"{ratio:.2f}"])
    lines = [
        HEADING, "",
        f"Produced by `python benchmarks/bench_ipm_small_beta.py{' --quick' if args.quick else ''}` on "
        f"{info['date']}.",
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}; load "
        f"average at the start {info['load_average']} (the machine is shared).",
        "Data: `make_friedman1(n, 10 features, noise 1.0, random_state=0)`, targets standardised. Three-layer "
        "program, squared loss, m1 = 2, 50 sampled patterns, float64, the interior point at its default tolerance "
        "(1e-7), each solve in its own process. 'every row': `InteriorPoint(row_fraction=None)`, the barrier on "
        "every cone row (what it did before where `n` exceeded four times the unknowns); 'selected': the default, "
        "the barrier on the likely facets of the cones.",
        "",
    ] + markdown_table(["n", "beta", "every row s", "iterations", "status", "gap", "selected s", "selection s",
                        "iterations", "status", "gap", "selected / every row"], table)
    write_report(args.output, lines, printed, HEADING)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
