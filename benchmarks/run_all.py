"""Run every benchmark and write the Solvers section of benchmarks/RESULTS.md.

    python benchmarks/run_all.py            # full run (about 15-30 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # smoke run: the Solvers section in about two minutes,
                                            # then every other script's --quick run (about half an
                                            # hour in all on 2 cores; --solvers-only skips them)
    python benchmarks/run_all.py --device cuda --solvers-only   # ours on a GPU (issue 4, item 5)

Side by side in one process (issue 4, "What must be shown"):

1. three-layer, n=500, d=10, m1=3, 100 patterns: time to the CVXPY objective within 1e-4
   relative, as a ratio to CVXPY's time (target: 20x), for the interior point, ADMM and
   the augmented Lagrangian;
2. two-layer ReLU and gated ReLU at n=500, d=10, 100 patterns: the same ratio, and scnn
   (augmented Lagrangian / R-FISTA) on the same data, gates and objective against our
   time to within 1e-6 of the optimum with cone violations below 1e-9 (target: 20x);
3. scale: three-layer n=20,000, d=50, m1=3, 500 patterns: wall time and peak memory
   (target: under 2 minutes and 4 GB), and n=100,000 to show the growth;
4. floor: time per iteration / time of the two matrix products of the same shapes
   (target: at most 2), for every program at n=500 and at the sizes of (3) (float32,
   the first n of (3)); for the interior point, time per Newton iteration / time of its
   Woodbury product ``V^T V`` (its lower block triangle, as the solver computes it).

With ``--device``, our solvers compute on that torch device (CVXPY and scnn on the
host's CPU, as always) and the section written is ``## Solvers (device: cuda)``.

Only the section headed ``## Solvers`` of RESULTS.md is rewritten. Other benchmark
scripts in this folder (e.g. ``bench_patterns.py``) run afterwards as subprocesses
unless ``--solvers-only``; they write their own sections into the same file. With
``--quick`` that file is ``benchmarks/RESULTS-quick.md`` (not tracked by git), so that a
smoke run never replaces the recorded figures; ``--output`` names another file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_solvers as bs  # noqa: E402
from _data import OUTPUT_HELP, machine, machine_line, markdown_table, results_path  # noqa: E402


def _section(text_lines):
    return "\n".join(text_lines).rstrip() + "\n"


def write_section(path: str, body: str, heading: str = "## Solvers") -> None:
    """Replace (or append) the section starting at ``heading`` up to the next ``## `` heading."""
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    lines = old.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == heading), None)
    if start is None:
        new = old.rstrip() + "\n\n" + body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start]).rstrip() + ("\n\n" if start else "") + body + (
            "\n" + "\n".join(lines[end:]) + "\n" if end < len(lines) else "")
    with open(path, "w") as f:
        f.write(new.rstrip() + "\n")


def write_report(path: str, lines: list, printed: list, heading: str) -> None:
    """Write the section ``heading`` of ``path`` (:func:`write_section`): its ``lines``,
    then the benchmark's output as printed, in a code block; say so."""
    write_section(path, "\n".join(list(lines) + ["", "```"] + list(printed) + ["```", ""]), heading=heading)
    print(f"wrote the section '{heading}' of {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the n=500 benchmarks (default 1: their arrays are small)")
    parser.add_argument("--ipm-threads", type=int, default=os.cpu_count(),
                        help="torch threads for the interior point (default: all cores; its Woodbury product "
                             "is one large GEMM)")
    parser.add_argument("--scale-threads", type=int, default=os.cpu_count(),
                        help="torch threads for the scale benchmark (default: all cores)")
    parser.add_argument("--skip-scnn", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--solvers-only", action="store_true", help="do not run the other bench_*.py scripts")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    parser.add_argument("--device", default="cpu", help="torch device of our solvers (default cpu), e.g. cuda")
    parser.add_argument("--time-cap", type=float, default=300.0,
                        help="each run of a ladder in (1) and (2) stops after min(TIME_CAP, max(2 x CVXPY's "
                             "time, 30)) seconds (default 300)")
    parser.add_argument("--short-ladders", action="store_true",
                        help="ADMM and the augmented Lagrangian/FISTA run their default tolerance only")
    parser.add_argument("--scale-sizes", type=str, default=None,
                        help="comma-separated n of (3) (default 20000,50000,100000)")
    parser.add_argument("--scale-max-time", type=float, default=None,
                        help="max_time of the solves in (3) (default 110 s; 30 s with --quick)")
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    if args.scale_max_time is None:
        args.scale_max_time = 30.0 if args.quick else 110.0
    dev = torch.device(args.device)
    on_device = dev.type != "cpu"
    ladders = {"admm": [{}], "auglag": [{}], "fista": [{}]} if args.short_ladders else None
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    info["device"] = bs.device_name(dev)
    if args.quick:
        n, d, P, scale_ns, scale_d, scale_P = 100, 5, 12, [3000, 6000], 20, 50
    else:
        n, d, P, scale_ns, scale_d, scale_P = 500, 10, 100, [20000, 50000, 100000], 50, 500
    if args.scale_sizes:
        scale_ns = [int(v) for v in args.scale_sizes.split(",")]
    printed: list[str] = []

    def say(*lines):
        for line in lines:
            print(line, flush=True)
            printed.append(line)

    t_start = time.perf_counter()
    say(machine_line(info, info['torch_threads'])
        + (f"; our solvers on {info['device']} ({args.device})" if on_device else ""))
    common = dict(ipm_threads=args.ipm_threads, device=dev, time_cap=args.time_cap, ladders=ladders)

    # (1) three-layer vs CVXPY
    say("", "(1) three-layer vs CVXPY")
    r3 = bs.versus_cvxpy("three", n, d, P, m1=3, **common)
    say(*r3["lines"])
    prog3 = bs.build("three", n, d, P, m1=3)

    # (2) two-layer ReLU and gated vs CVXPY and scnn
    say("", "(2) two-layer ReLU and gated ReLU vs CVXPY and scnn")
    r2, s2, progs2 = {}, {}, {}
    for kind in ("relu", "gated"):
        prog = bs.build(kind, n, d, P)
        progs2[kind] = prog
        r2[kind] = bs.versus_cvxpy(kind, n, d, P, program=prog, **common)
        say(*r2[kind]["lines"])
        if not args.skip_scnn:
            s2[kind] = bs.versus_scnn(kind, n, d, P, program=prog, reference_objective=r2[kind]["cvxpy_objective"])
            say(*s2[kind]["lines"])
            if "time" in s2[kind]:
                a = r2[kind]["solvers"]["admm"]
                say(f"    scnn time / ours (ADMM default, to {a['final_rel']:.0e}): {s2[kind]['time'] / a['final_time']:.2f}x")
                b = r2[kind]["solvers"]["ipm"]
                if b["time_to_1e6"] is not None:
                    say(f"    scnn time / ours (interior point, to 1e-6 with violation <= 1e-9): "
                        f"{s2[kind]['time'] / b['time_to_1e6']:.2f}x")

    # (4) floor
    say("", "(4) floor: time per inner iteration / time of X @ Q (into an existing array) + X.T @ T (same shapes, same process)")
    floors = []
    for label, prog in (("three", prog3), ("relu", progs2["relu"]), ("gated", progs2["gated"])):
        f = bs.floor(prog.to(dev))
        f["label"] = label
        floors.append(f)
        say(f"    {label:6s} n={f['n']} d={f['d']} B={f['blocks']} {f['dtype']}: {1e3 * f['per_iteration']:.3f} ms/iteration, "
            f"two GEMMs {1e3 * f['two_gemms']:.3f} ms, ratio {f['ratio']:.2f} "
            f"({f['backtracks_per_iteration']:.2f} line-search retries per iteration){_torch_only(f)}")

    say("", f"(4) floor of the interior point: time per Newton iteration (one-off costs excluded) / time of V^T V, "
        f"lower block triangle ({args.ipm_threads} threads)")
    ipm_floors = []
    for label, prog in (("three", prog3), ("relu", progs2["relu"]), ("gated", progs2["gated"])):
        f = bs.ipm_floor(prog.to(dev), threads=args.ipm_threads)
        f["label"] = label
        ipm_floors.append(f)
        say(f"    {label:6s} n={f['n']} d={f['d']} B={f['blocks']}: {1e3 * f['per_iteration']:.1f} ms/iteration "
            f"(one-off {1e3 * f['setup']:.0f} ms), V^T V ({f['rows']} x {f['n']}) {1e3 * f['woodbury_gemm']:.1f} ms, "
            f"ratio {f['ratio']:.2f}")

    # (3) scale
    scales = []
    if not args.skip_scale:
        say("", f"(3) scale: three-layer, augmented Lagrangian (tol 1e-4, feas_tol 1e-6, max_time {args.scale_max_time:g} s), "
                "child process")
        for ns in scale_ns:
            s = bs.scale(ns, scale_d, scale_P, 3, dtype="float32", max_time=args.scale_max_time,
                         threads=args.scale_threads, device=args.device)
            scales.append(s)
            say(*s["lines"])
        big = [s for s in scales if "per_iteration" not in s and "iterations" in s]
        if len(big) >= 2:
            a, b = big[0], big[-1]
            say(f"    growth n {a['n']} -> {b['n']} (x{b['n'] / a['n']:.1f}): time per iteration "
                f"x{(b['solve_time'] / b['iterations']) / (a['solve_time'] / a['iterations']):.1f}, "
                f"peak memory x{b['peak_rss_gb'] / a['peak_rss_gb']:.1f}")
        # floor at the scale of (3), in float32, for every program (the unconstrained gated
        # program shows the iteration without the cones' elementwise work)
        if not args.quick:
            torch.set_num_threads(args.scale_threads)
            for kind in ("three", "relu", "gated"):
                progS = bs.build(kind, scale_ns[0], scale_d, scale_P, m1=3, dtype=torch.float32, device=dev)
                f = bs.floor(progS, iterations=10 if kind == "three" else 30)
                f["label"] = f"{kind} (scale)"
                floors.append(f)
                say(f"    floor at scale, {kind}: n={f['n']} d={f['d']} B={f['blocks']} {f['dtype']}: "
                    f"{1e3 * f['per_iteration']:.1f} ms/iteration, two GEMMs {1e3 * f['two_gemms']:.1f} ms, "
                    f"ratio {f['ratio']:.2f}{_torch_only(f)}")
                del progS
    say("", f"total benchmark time {time.perf_counter() - t_start:.0f}s")

    body = render(info, args, r3, r2, s2, floors, scales, printed, ipm_floors)
    write_section(args.output, body, heading=_heading(args))
    print(f"wrote the section '{_heading(args)}' of {args.output}")

    if not args.solvers_only:
        for name in sorted(os.listdir(HERE)):
            if name.startswith("bench_") and name.endswith(".py") and name not in ("bench_solvers.py",):
                path = os.path.join(HERE, name)
                src = open(path).read()
                if name in ("bench_cvxpy_sizes.py", "bench_scale_ipm.py"):
                    continue  # the CVXPY size ladder, the interior point at scale: long, run on their own
                cmd = [sys.executable, path, "--output", args.output] + (
                    ["--quick"] if args.quick and "--quick" in src else [])
                print(f"running {' '.join(cmd)}", flush=True)
                rc = subprocess.run(cmd).returncode
                print(f"{name}: exit status {rc}", flush=True)


def _s(v):
    return "n/a" if v is None else f"{v:.2f}"


def _x(v):
    return "n/a" if v is None else f"{v:.2f}x"


def _g(v):
    return "n/a" if v is None else f"{v:.6g}"


def _heading(args) -> str:
    device = torch.device(args.device).type
    return "## Solvers" if device == "cpu" else f"## Solvers (device: {device})"


def _command(args) -> str:
    """The command line that reproduces the run (the options that change what is measured)."""
    words = ["python benchmarks/run_all.py"]
    if args.quick:
        words.append("--quick")
    if torch.device(args.device).type != "cpu":
        words.append(f"--device {args.device}")
    if args.time_cap != 300.0:
        words.append(f"--time-cap {args.time_cap:g}")
    if args.short_ladders:
        words.append("--short-ladders")
    if args.scale_sizes:
        words.append(f"--scale-sizes {args.scale_sizes}")
    if args.skip_scnn:
        words.append("--skip-scnn")
    if args.skip_scale:
        words.append("--skip-scale")
    if args.scale_max_time != (30.0 if args.quick else 110.0):
        words.append(f"--scale-max-time {args.scale_max_time:g}")
    return " ".join(words)


def _kernels_note(device: str = "cpu") -> str:
    from convexrelu import _kernels

    if torch.device(device).type != "cpu":
        return "the compiled kernels are the CPU's: torch operations on the device"
    if not _kernels.available():
        return "numba not installed: the torch operations everywhere"
    import numba

    return (f"numba {numba.__version__}: the cone programs' row blocks through the compiled kernels, "
            "`torch only` the same iterations without them, timed alternately")


def _torch_only(f) -> str:
    """The floor's torch-only figures, where the compiled kernels ran beside them."""
    if f.get("per_iteration_torch") is None:
        return ""
    return f"; torch only (no compiled kernels) {1e3 * f['per_iteration_torch']:.1f} ms/iteration, ratio {f['ratio_torch']:.2f}"


def render(info, args, r3, r2, s2, floors, scales, printed, ipm_floors=()) -> str:
    L = [_heading(args), ""]
    L.append(f"Produced by `{_command(args)}` on {info['date']}.")
    if torch.device(args.device).type != "cpu":
        L.append(f"Our solvers computed on **{info['device']}** (`{args.device}`); CVXPY (Clarabel) and scnn ran "
                 "on the same machine's CPU, in the same process (their times are the baselines of the ratios). "
                 "Timings of device work wait for the device before reading the clock.")
    if torch.device(args.device).type == "cpu":
        L.append(f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} "
                 f"thread(s) for (1), (2), (4) at n=500 except the interior point: {args.ipm_threads}; "
                 f"{args.scale_threads} for (3) and the floor at scale), "
                 f"Python {info['python']}; load average at the start {info['load_average']} "
                 "(the machine is shared: other processes ran during the measurements, all timings in one run).")
    else:
        L.append(f"Host: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, Python {info['python']}; "
                 f"load average at the start {info['load_average']}; all timings in one run.")
    L.append("Data: planted teachers with noise (`benchmarks/_data.py`), standardised targets, squared loss, "
             "beta = 1e-3 n (scnn's lambda = 1e-3), float64 unless said. Relative errors are against the "
             "CVXPY (Clarabel) objective of the same program; violations are max(0, -min K Q) / max |K Q| "
             "of the returned point.")
    L.append("")
    L.append("### CVXPY vs ours (1, 2)")
    L.append("")
    L.append("Each solver runs a ladder of tolerances from scratch (loosest first); 'to 1e-4' is "
             "the time of the first run whose returned, feasibility-repaired objective is within 1e-4 of CVXPY's, "
             "'to 1e-6' the first within 1e-6 with a relative cone violation <= 1e-9; "
             "'default' is the run at the solver's default tolerance (each capped at twice CVXPY's time, at least 30 s"
             + ("" if args.time_cap == 300.0 else f", and at most {args.time_cap:g} s (`--time-cap`)") + "). "
             "Before the timed runs every solver (CVXPY and scnn included) solves a tiny program of the same kind once, "
             "untimed. The blocks column counts the whole program; our solvers iterate on its live groups (the others "
             "cannot change the model and are fixed at zero), and the floors below are measured on that part."
             + (" With `--short-ladders`, ADMM, the augmented Lagrangian and FISTA run their default tolerance only."
                if args.short_ladders else ""))
    L.append("")
    L.append("'certified gap' is the default run's `Solution.relative_gap`, `(objective - lower_bound) / max(1, "
             "|objective|)` with the lower bound its own dual point certifies (theory.md, \"Duality and "
             "certificates\"), computed without CVXPY's answer.")
    L.append("")
    L.append("| program (solver) | n | patterns | blocks | CVXPY s | ours to 1e-4 s | ratio | ours to 1e-6 s | ours default s | rel. err | certified gap | violation | ratio | target |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, target in ((r3, "20x"), (r2.get("relu"), "-"), (r2.get("gated"), "-")):
        if r is None:
            continue
        for name, q in r["solvers"].items():
            L.append(f"| {r['kind']} ({name}) | {r['n']} | {r['patterns']} | {r['blocks']} | {r['cvxpy_time']:.2f} | "
                     f"{_s(q['time_to_1e4'])} | {_x(q['ratio_1e4'])} | {_s(q.get('time_to_1e6'))} | {q['final_time']:.2f} | "
                     f"{q['final_rel']:.1e} | {q['final_gap']:.1e} | {q['final_violation']:.1e} | {q['ratio_final']:.2f}x | "
                     f"{target} |")
    if s2:
        L += ["", "### scnn on the same data, gates and objective (2)", ""]
        L.append("Ours: the interior point's first run within 1e-6 of the optimum with violation <= 1e-9 "
                 "(target: scnn / ours >= 20x), and ADMM at its default tolerance.")
        L.append("")
        L.append("| program | scnn s | objective rel. to optimum | cone violation | ours (interior point, to 1e-6) s | "
                 "scnn / ours | ours (ADMM default) s | ours rel. err | ours violation | scnn / ours |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for kind, s in s2.items():
            r = r2[kind]["solvers"]["admm"]
            b = r2[kind]["solvers"]["ipm"]
            if "time" in s:
                t6 = b["time_to_1e6"]
                L.append(f"| {kind} | {s['time']:.2f} | {bs._fmt_e(s['rel'], sign=True)} | {s['violation']:.1e} | {_s(t6)} | "
                         f"{_x(None if t6 is None else s['time'] / t6)} | {r['final_time']:.2f} | "
                         f"{r['final_rel']:.1e} | {r['final_violation']:.1e} | {s['time'] / r['final_time']:.2f}x |")
            else:
                L.append(f"| {kind} | {s.get('error', 'failed')} | | | | | | | | |")
    L += _table("Floor (4): time per inner iteration / time of `X @ Q` (into an existing array) + `X.T @ T` (target <= 2; "
                "each the median of 3 alternate measurements; " + _kernels_note(args.device) + ")",
                ["program", "n", "d", "blocks", "dtype", "ms / iteration", "ms two GEMMs", "ratio",
                 "torch only: ms / iteration", "ratio"])
    for f in floors:
        plain = f.get("per_iteration_torch")
        L.append(f"| {f['label']} | {f['n']} | {f['d']} | {f['blocks']} | {f['dtype']} | {1e3 * f['per_iteration']:.3f} | "
                 f"{1e3 * f['two_gemms']:.3f} | {f['ratio']:.2f} | "
                 + ("| |" if plain is None else f"{1e3 * plain:.3f} | {f['ratio_torch']:.2f} |"))
    if ipm_floors:
        L += _table("Floor (4) of the interior point: time per Newton iteration (16 iterations less 4, over 12, "
                    "the median of 3 alternate measurements: the one-off costs of a solve cancel) / time of its Woodbury product `V^T V` (lower block triangle)",
                    ["program", "n", "d", "blocks", "rows of V", "threads", "ms / iteration", "one-off ms",
                     "ms V^T V", "ratio"])
        for f in ipm_floors:
            L.append(f"| {f['label']} | {f['n']} | {f['d']} | {f['blocks']} | {f['rows']} | {f['threads']} | "
                     f"{1e3 * f['per_iteration']:.1f} | {1e3 * f['setup']:.0f} | {1e3 * f['woodbury_gemm']:.1f} | "
                     f"{f['ratio']:.2f} |")
    if scales:
        L += _table(f"Scale (3): three-layer, m1=3, float32, augmented Lagrangian (tol 1e-4, feas_tol 1e-6, "
                    f"max_time {args.scale_max_time:g} s)",
                    ["n", "d", "patterns", "blocks", "wall s", "solve s", "iterations", "ms / iteration", "peak GB",
                     "status", "stationarity", "violation", "objective", "dual bound", "relative gap"]
                    + (["device peak GB"] if any(s.get("device_peak_gb") is not None for s in scales) else []))
        for s in scales:
            if "skipped" in s or "error" in s:
                L.append(f"| {s['n']} | {s.get('skipped') or 'child failed'} | | | | | | | | | | | | | |")
                continue
            L.append(f"| {s['n']} | {s['d']} | {s['patterns']} | {s['blocks']} | {s['wall_time']:.1f} | {s['solve_time']:.1f} | "
                     f"{s['iterations']} | {1e3 * s['solve_time'] / max(s['iterations'], 1):.0f} | {s['peak_rss_gb']:.2f} | "
                     f"{s['status']} | {bs._fmt_e(s['stationarity'])} | {s['violation']:.1e} | {s['objective']:.6g} | "
                     f"{_g(s.get('dual_bound'))} | {s['relative_gap']:.1e} |"
                     + ("" if s.get("device_peak_gb") is None else f" {s['device_peak_gb']:.2f} |"))
    L += ["", "### Output as printed", "", "```"] + printed + ["```", ""]
    return _section(L)


def _table(title: str, columns: list[str]) -> list[str]:
    """The lines opening a Markdown table: a blank line, the ``###`` title, a blank line,
    the header and its rule."""
    return ["", f"### {title}", ""] + markdown_table(columns, [])


if __name__ == "__main__":
    main()
