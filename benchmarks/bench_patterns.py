"""Where the patterns come from: objective against wall time of the pattern strategies
and of projected Adam, three-layer networks (P3 of theory.md, m1 = 3).

    python benchmarks/bench_patterns.py [--quick] [--solver NAME] [--threads N] [--no-write]

Problems (squared loss, summed over samples as in theory.md):

- ``planted``: the planted three-layer teacher of issue 5 (n = 500, d = 10 with the
  intercept, 3 teacher sub-networks of m1 = 3 neurons, noise 0.1, beta = 1e-2);
- ``diabetes``: scikit-learn's diabetes regression (n = 442, d = 11), X and y
  standardised, beta = 1;
- ``breast_cancer``: scikit-learn's breast cancer data (n = 569, d = 31), X standardised,
  targets +-1 with the squared loss, beta = 1.

Methods: projected Adam (best of 5 starts, K in {10, 50, 200}, 5000 full-batch steps,
lr 1e-2, the trainer's early stopping), and :func:`convexrelu.strategies.run_strategy`
with "sample" (100 Gaussian patterns), "seeded" (Adam K = 50, 5 starts, early stopping,
from 10 sampled patterns), "pursuit" (from 10 sampled patterns) and "seeded+pursuit".
Pursuit strategies stop at convergence, after 15 rounds, or once they have used the
time of the whole Adam baseline. Final objectives and times are printed and written to
the ``## Patterns`` section of ``benchmarks/RESULTS.md`` with the machine (``--quick``:
of ``benchmarks/RESULTS-quick.md``; ``--output`` names another file).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from _data import OUTPUT_HELP, cpu_model, planted_three_layer, results_path  # noqa: E402  (the script's folder is on sys.path)
from convexrelu import ThreeLayerReLUProgram
from convexrelu.nonconvex import train_three_layer
from convexrelu.strategies import run_strategy

HIDDEN = 3


# ----------------------------------------------------------------------------- problems


def _standardise(A):
    return (A - A.mean(axis=0)) / A.std(axis=0)


def problems(quick: bool):
    from sklearn.datasets import load_breast_cancer, load_diabetes

    n = 200 if quick else None
    Xd, yd = load_diabetes(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    out = {
        "planted": (*planted_three_layer(n or 500, 10), 1e-2),
        "diabetes": (_standardise(Xd), _standardise(yd[:, None])[:, 0], 1.0),
        "breast_cancer": (_standardise(Xb), np.where(yb == 1, 1.0, -1.0), 1.0),
    }
    if quick:
        out = {k: (X[:n], y[:n], beta) for k, (X, y, beta) in out.items()}
    return out


# ----------------------------------------------------------------------------- methods
def resolve_solver(name):
    from convexrelu.solvers import SOLVERS, get_solver

    if name == "auto":
        for key in ("auto", "auglag"):
            if key in SOLVERS:
                return get_solver(key)
        return get_solver("cvxpy")
    return get_solver(name)


def adam(X, y, beta, K, starts, steps, seed=0):
    res = train_three_layer(X, y, n_subnetworks=K, hidden=HIDDEN, beta=beta, n_starts=starts, max_iter=steps,
                            lr=1e-2, random_state=seed)
    every = 10
    longest = max(len(h) for h in res.histories)
    best = np.minimum.accumulate(np.min([np.pad(np.asarray(h, float), (0, longest - len(h)), constant_values=np.inf)
                                         for h in res.histories], axis=0))
    per_step = res.time / max(max(res.iterations), 1)
    curve = [(i * every * per_step, float(b)) for i, b in enumerate(best)]
    return dict(objective=res.objective, time=res.time, curve=curve, detail=f"K={K}, {starts} starts")


def strategy(name, program, solver, *, seed, budget, cfg):
    res = run_strategy(name, program, solver, random_state=seed, time_budget=budget, **cfg)
    curve = [(h["time"], h["objective"]) for h in res.history if h["stage"] != "train"]
    detail = f"{len(res.program.patterns)} patterns, {len(res.history)} rounds"
    if res.trained_objective is not None:
        detail += f", trained {res.trained_objective:.5g}"
    if res.converged is not None:
        detail += ", converged" if res.converged else ", budget"
    return dict(objective=res.objective, time=res.time, curve=curve, detail=detail)


def run_problem(name, X, y, beta, args, solver):
    Ks = (10, 50) if args.quick else (10, 50, 200)
    starts = 2 if args.quick else 5
    steps = 1500 if args.quick else 5000
    rows = {}
    for K in Ks:
        rows[f"adam K={K}"] = adam(X, y, beta, K, starts, steps)
        print(f"  {name}: adam K={K}: {rows[f'adam K={K}']['objective']:.6g} in {rows[f'adam K={K}']['time']:.1f}s",
              flush=True)
    adam_total = sum(r["time"] for k, r in rows.items() if k.startswith("adam"))
    sampled = ThreeLayerReLUProgram(X, y, 100, hidden=HIDDEN, beta=beta, random_state=0)
    base = ThreeLayerReLUProgram(X, y, 10, hidden=HIDDEN, beta=beta, random_state=0)
    width = min(args.seed_width, max(Ks))
    seed_cfg = dict(n_patterns=width, n_starts=args.seed_train_starts, seed_starts=args.seed_starts,
                    train_kwargs=dict(max_iter=steps, lr=1e-2, tol=1e-6))
    pursuit_cfg = dict(max_rounds=15, patterns_per_round=20, tol=1e-3, search_starts=64, search_iter=100)
    plan = [
        ("sample", sampled, {}),
        ("seeded", base, seed_cfg),
        ("pursuit", base, pursuit_cfg),
        ("seeded+pursuit", base, {**seed_cfg, **pursuit_cfg}),
    ]
    for sname, prog, cfg in plan:
        rows[sname] = strategy(sname, prog, solver, seed=0, budget=2 * adam_total, cfg=cfg)
        print(f"  {name}: {sname}: {rows[sname]['objective']:.6g} in {rows[sname]['time']:.1f}s "
              f"({rows[sname]['detail']})", flush=True)
    return rows, adam_total


# ----------------------------------------------------------------------------- report
def machine() -> str:
    cpu = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
            f"Python {platform.python_version()}, {platform.system()}; load average {load:.1f} at start")


def table(name, rows, adam_total, config) -> list[str]:
    adam_rows = {k: r for k, r in rows.items() if k.startswith("adam")}
    best_adam = min(r["objective"] for r in adam_rows.values())
    lines = [f"### {name}", "", config, "",
             f"Adam baseline total time {adam_total:.1f} s; best Adam objective {best_adam:.6g}.", "",
             "| method | final objective | vs best Adam | time (s) | time / Adam total | curve (time s: objective) | details |",
             "|---|---|---|---|---|---|---|"]
    for k, r in rows.items():
        pts = r["curve"]
        pick = sorted({0, len(pts) // 3, (2 * len(pts)) // 3, len(pts) - 1}) if pts else []
        curve = ", ".join(f"{pts[i][0]:.1f}: {pts[i][1]:.4g}" for i in pick)
        lines.append(f"| {k} | {r['objective']:.6g} | {100 * (r['objective'] / best_adam - 1):+.1f} % | {r['time']:.1f} "
                     f"| {r['time'] / adam_total:.2f} | {curve} | {r['detail']} |")
    return lines + [""]


def _subsections(text: str) -> dict:
    """``### name`` subsections of a section, by problem name (first word of the title)."""
    parts = re.split(r"^(?=### )", text, flags=re.M)
    return {p.split()[1]: p.rstrip() + "\n" for p in parts if p.startswith("### ")}


def write_section(path: str, header: str, subsections: dict) -> None:
    """Replace (or append) the ``## Patterns`` section of the file ``path``, nothing else.

    The problems of this run replace their ``### problem`` subsections; the others
    (from earlier runs, e.g. ``--only``) are kept."""
    results = Path(path)
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Patterns\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(old)
    merged = _subsections(found.group(0)) if found else {}
    merged.update(subsections)
    order = [k for k in ("planted", "diabetes", "breast_cancer") if k in merged] + sorted(
        k for k in merged if k not in ("planted", "diabetes", "breast_cancer"))
    text = header.rstrip() + "\n\n" + "\n".join(merged[k] for k in order)
    if found:
        new = old[: found.start()] + text.rstrip() + "\n\n" + old[found.end():]
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    results.write_text(new.rstrip() + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n <= 200, K in {10, 50}, 2 starts, 1500 steps")
    parser.add_argument("--solver", default="auto", help="solver of the convex programs (default: auto/auglag)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--only", default=None, help="comma-separated problem names")
    parser.add_argument("--seed-width", type=int, default=200, help="trained width K of the seeded strategies")
    parser.add_argument("--seed-train-starts", type=int, default=2, help="trainer starts of the seeded strategies")
    parser.add_argument("--seed-starts", type=int, default=None,
                        help="seed with the best this many trainer starts (default: all; 1 with --solver cvxpy)")
    parser.add_argument("--no-write", action="store_true", help="write no file")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, args.quick)
    torch.set_num_threads(args.threads)
    solver = resolve_solver(args.solver)
    if args.seed_starts is None and getattr(solver, "name", "") == "cvxpy":
        args.seed_starts = 1  # an interior-point solve of 5 x 50 patterns at n = 500 takes minutes
    where = machine()
    print(f"machine: {where}\nsolver: {getattr(solver, 'name', solver)}", flush=True)
    sections = []
    summary = []
    for name, (X, y, beta) in problems(args.quick).items():
        if args.only and name not in args.only.split(","):
            continue
        print(f"{name}: n={X.shape[0]}, d={X.shape[1] + 1} (with intercept), beta={beta:g}", flush=True)
        rows, adam_total = run_problem(name, X, y, beta, args, solver)
        config = (f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, {where}; convex solver "
                  f"`{getattr(solver, 'name', solver)}`; seeded strategies: Adam at K = {args.seed_width}, "
                  f"{args.seed_train_starts} starts, patterns of the best {args.seed_starts or 'all'} start(s).")
        sections += table(f"{name} (n={X.shape[0]}, d={X.shape[1] + 1}, beta={beta:g})", rows, adam_total, config)
        best_adam = min(r["objective"] for k, r in rows.items() if k.startswith("adam"))
        for k, r in rows.items():
            if not k.startswith("adam"):
                summary.append((name, k, r["objective"] / best_adam - 1, r["time"] / adam_total))
    print("\nsummary (objective vs best Adam, time / Adam total):")
    for name, k, rel, t in summary:
        ok = "OK" if rel < 0 and t <= 2 else "--"
        print(f"  {ok} {name:14s} {k:15s} {100 * rel:+7.2f} %  {t:5.2f}x")
    header = "\n".join([
        "## Patterns", "",
        "`python benchmarks/bench_patterns.py [--quick] [--solver S] [--seed-width K] [--only P]`: three-layer P3 "
        "(m1 = 3), squared loss summed over samples. Adam: best of 5 starts (2 with --quick), 5000 steps, lr 1e-2. "
        "'vs best Adam' compares with the lowest objective of all Adam runs; 'time / Adam total' divides by the "
        "time of the whole Adam baseline (all K, all starts), measured in the same process. 'sample': 100 Gaussian "
        "patterns; the other strategies start from 10. Seeded strategies train with early stopping (tol 1e-6); "
        "pursuit adds 20 patterns a round, at most 15 rounds, and starts no round that would end after twice the "
        "Adam total. Each problem's subsection names its run and machine (the cores were shared with other jobs: "
        "times are upper bounds).",
    ])
    if not args.no_write:
        write_section(args.output, header, _subsections("\n".join(sections)))
        print(f"\nwrote the ## Patterns section of {args.output}")


if __name__ == "__main__":
    main()
