"""The interior point at the scale of issue 4's item 3 (three-layer, d=50, m1=3, 500 patterns).

    python benchmarks/bench_scale_ipm.py --device cuda                 # n = 5,000 and 20,000
    python benchmarks/bench_scale_ipm.py --sizes 1000,2000 --patterns 100   # what 2 cores can do

Each size is solved in a child process (:func:`bench_solvers.scale`, ``solver="ipm"``,
float64, the interior point's default tolerance): wall time, iterations, peak memory of
the process and, on a CUDA device, of the device; the certificate's relative gap. Writes
the section ``## Scale: interior point (device: ...)`` of RESULTS.md.

Its cost per Newton iteration is the Woodbury matrix, an ``n x n`` product over about
``B d / 2`` rows (``B`` live blocks), ``n^2 B d / 2`` multiply-adds: 2.7e13 at n=20,000
with 2,622 live blocks - minutes per iteration on 2 cores, about a second on a GPU -
and its memory the ``n x B (d + 1)`` model matrix in float64 (21 GB at that size).
Not run by ``run_all.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_solvers as bs  # noqa: E402
from _data import OUTPUT_HELP, machine, recorder, results_path  # noqa: E402
from run_all import write_report  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="5000,20000", help="comma-separated n (default 5000,20000)")
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--patterns", type=int, default=500)
    parser.add_argument("--max-time", type=float, default=300.0, help="max_time of each solve (default 300 s)")
    parser.add_argument("--max-iter", type=int, default=300, help="max_iter of each solve (default 300)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    info = machine()
    name = bs.device_name(args.device)
    heading = f"## Scale: interior point (device: {torch.device(args.device).type})"
    say, printed = recorder()
    say(f"host: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, python {info['python']}, {info['date']}; "
        f"solves on {name} ({args.device})")
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        # bytes per entry of the n x B mask: about 730 measured at n=2000, d=50 on the CPU (the
        # model matrix in float64 and its copies), plus the n x n Woodbury matrix twice;
        # halved because bench_solvers.scale doubles its estimate for float64
        estimate = (750.0 + 16.0 * n / (2 * 3 * args.patterns)) / 2
        s = bs.scale(n, args.d, args.patterns, 3, dtype="float64", max_time=args.max_time, device=args.device,
                     solver="ipm", bytes_per_entry_estimate=estimate, max_iter=args.max_iter)
        rows.append(s)
        for line in s["lines"]:
            say(line)
    L = [heading, "", f"Produced by `python benchmarks/bench_scale_ipm.py --device {args.device} --sizes {args.sizes} "
         f"--patterns {args.patterns} --max-time {args.max_time:g} --max-iter {args.max_iter}` on {info['date']}.",
         f"Solves on **{name}**; host: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}.",
         "Three-layer program (planted teacher, squared loss, beta = 1e-3 n, m1=3), float64, interior point at its "
         "default tolerance (max_iter as in the command), each size in its own process. Wall time includes the program's construction.", "",
         "| n | d | patterns | blocks | wall s | solve s | iterations | ms / iteration | peak host GB | peak device GB "
         "| status | relative gap | violation |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in rows:
        if "solve_time" not in s:
            L.append(f"| {s['n']} | {s.get('skipped') or 'child failed: ' + s.get('error', '')[-200:]} "
                     "| | | | | | | | | | | |")
            continue
        dev_gb = "n/a" if s.get("device_peak_gb") is None else f"{s['device_peak_gb']:.2f}"
        L.append(f"| {s['n']} | {s['d']} | {s['patterns']} | {s['blocks']} | {s['wall_time']:.1f} | {s['solve_time']:.1f} "
                 f"| {s['iterations']} | {1e3 * s['solve_time'] / max(s['iterations'], 1):.0f} | {s['peak_rss_gb']:.2f} "
                 f"| {dev_gb} | {s['status']} | {s['relative_gap']:.1e} | {s['violation']:.1e} |")
    write_report(args.output, L, printed, heading)


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t:.0f}s")
