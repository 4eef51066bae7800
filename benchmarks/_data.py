"""Planted teacher networks with noise: the data of the solver benchmarks; and what the
benchmark scripts share (the machine's description, child processes, printed lines).

Inputs are standard Gaussian; targets come from a random ReLU teacher (two-layer or
three-layer parallel) plus Gaussian noise, scaled to unit variance so that ``beta`` has
the same meaning across sizes.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time

import numpy as np
import torch


def two_layer_teacher(n: int, d: int, *, width: int = 5, noise: float = 0.1, seed: int = 0):
    """``y = sum_j a_j (x . u_j)_+ + noise``, X of shape (n, d)."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    U = r.standard_normal((d, width)) / np.sqrt(d)
    a = r.standard_normal(width)
    y = np.maximum(X @ U, 0) @ a
    y = (y - y.mean()) / (y.std() + 1e-12)
    return X, y + noise * r.standard_normal(n)


def three_layer_teacher(n: int, d: int, *, m1: int = 3, K: int = 3, noise: float = 0.1, seed: int = 0):
    """``y = sum_k w3_k ((X W1_k)_+ w2_k)_+ + noise`` (theory.md, "Three-layer parallel networks")."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    W1 = r.standard_normal((K, d, m1)) / np.sqrt(d)
    w2 = r.standard_normal((K, m1))
    w3 = r.standard_normal(K)
    H = np.maximum(np.einsum("nd,kdm->knm", X, W1), 0)
    y = np.einsum("k,kn->n", w3, np.maximum(np.einsum("knm,km->kn", H, w2), 0))
    y = (y - y.mean()) / (y.std() + 1e-12)
    return X, y + noise * r.standard_normal(n)


def planted_three_layer(n: int, d: int, seed: int = 0):
    """The planted teacher of issues 4 and 5, as they describe it: X (n, d - 1) Gaussian
    (``d`` counts the intercept), y = sum of 3 three-layer sub-networks (m1 = 3) plus
    noise 0.1, not standardised."""
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d - 1))
    W1 = r.standard_normal((3, d - 1, 3)) / np.sqrt(d)
    w2 = r.standard_normal((3, 3))
    w3 = r.standard_normal(3)
    H = np.maximum(np.einsum("nd,kdm->knm", X, W1), 0)
    y = np.einsum("k,kn->n", w3, np.maximum(np.einsum("knm,km->kn", H, w2), 0))
    return X, y + 0.1 * r.standard_normal(n)


def friedman(n: int, d: int = 10):
    """Friedman's regression problem #1 (``sklearn.datasets.make_friedman1``: ``d``
    features, 5 of them used, noise 1.0, ``random_state=0``), targets standardised:
    ``(X, y)``, the tabular data of ``bench_many_samples.py`` and ``bench_ipm_small_beta.py``."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n, n_features=d, noise=1.0, random_state=0)
    return X, (y - y.mean()) / y.std()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, cores, torch threads, torch version, load average, date."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": "%.2f %.2f %.2f" % load,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def machine_line(info: dict, threads: int | None = None) -> str:
    """The first printed line of a benchmark: the machine of :func:`machine` (``threads``:
    the torch threads, when the script sets them)."""
    return (f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}"
            f"{'' if threads is None else f' ({threads} threads)'}, python {info['python']}, "
            f"load average {info['load_average']}, {info['date']}")


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
QUICK_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS-quick.md")
OUTPUT_HELP = ("file whose section this run replaces (default benchmarks/RESULTS.md; with --quick "
               "benchmarks/RESULTS-quick.md, not tracked, so that a smoke run never replaces the recorded figures)")


def results_path(output: str | None, quick: bool = False) -> str:
    """The file a benchmark writes its section into: ``output`` if given, else
    ``RESULTS.md`` beside the scripts, or ``RESULTS-quick.md`` (ignored by git) for a
    ``--quick`` smoke run, whose small sizes must not replace the recorded figures."""
    if output:
        return output
    return QUICK_RESULTS if quick else RESULTS


def recorder():
    """``(say, printed)``: ``say(line)`` prints ``line`` at once and keeps it in the list
    ``printed`` (for the output block of a RESULTS.md section)."""
    printed: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        printed.append(line)

    return say, printed


def run_json_child(cmd: list[str]) -> dict:
    """Run ``cmd``, a child process whose last line of output is one JSON object: that
    object with ``wall_time`` (seconds, the child's whole life) added, or
    ``{"error": the end of its standard error}`` when it failed, on one line and without
    ``|`` (it goes into printed lines and table cells)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"error": " ".join(proc.stderr[-500:].split()).replace("|", "/")}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_time"] = wall
    return out


def solve_summary(out: dict) -> str:
    """``wall ... (solve ..., N iterations, ... ms/iteration), peak memory ... GB; status
    ..., objective ...`` of a child solve's JSON ``out`` (:func:`run_json_child`: keys
    ``wall_time``, ``solve_time``, ``iterations``, ``peak_rss_gb``, ``status``,
    ``objective``), to which it adds ``per_iteration`` (seconds)."""
    out["per_iteration"] = out["solve_time"] / max(out["iterations"], 1)
    return (f"wall {out['wall_time']:.1f}s (solve {out['solve_time']:.1f}s, {out['iterations']} iterations, "
            f"{1e3 * out['per_iteration']:.0f} ms/iteration), peak memory {out['peak_rss_gb']:.2f} GB; status "
            f"{out['status']}, objective {out['objective']:.8g}")


def markdown_table(columns: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: the header, its rule and one line per row of cells. A row with
    fewer cells than columns (a failed run's message) is padded with empty cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for cells in rows:
        cells = [str(c) for c in cells]
        lines.append("| " + " | ".join(cells + [""] * (len(columns) - len(cells))) + " |")
    return lines
