"""The three-layer trainer's step: its hand-written model against autograd's graph of the formula.

    python benchmarks/bench_trainer.py           # n = 2,000, 5,000 and 20,000 (about 3 minutes on 2 cores)
    python benchmarks/bench_trainer.py --quick   # n = 2,000 (under a minute)

The projected-Adam trainer of :func:`convexrelu.nonconvex.train_three_layer` (the seeded
patterns of the estimators' default, and the non-convex baseline of the experiments)
evaluates ``sum_k ((A W1_k)_+ w2_k)_+ w3_k^T`` and its gradient at every step. Side by
side in one process, alternately, on the same data and weights (float64, K = 50
sub-networks, d = 10 + intercept):

- ``autograd``: the formula as torch operations, differentiated by autograd (a product
  per sub-network ``A @ W1`` with ``W1`` (S, K, d, m1), the sum over ``m1`` by a product,
  ``relu`` twice): what the trainer ran before the twenty-third session;
- ``ours``: ``convexrelu.nonconvex._three_layer_forward`` (one product for every
  sub-network of every start, the activations laid out with the sub-networks innermost,
  a hand-written backward).

Printed: milliseconds per forward and backward pass (the median of 5 alternate
measurements of 30 passes each), and seconds for 300 steps of ``train_three_layer``
(``tol=0``, so every run takes its 300 steps) with each model, with the ratios and the
largest difference of the two trained objectives. Writes the section
``## Three-layer trainer`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _data import OUTPUT_HELP, machine, machine_line, markdown_table, recorder, results_path  # noqa: E402
from run_all import write_report  # noqa: E402

HEADING = "## Three-layer trainer"


def autograd_model(A, W1, w2, w3):
    """The formula as plain torch operations (autograd differentiates it)."""
    import torch

    H = torch.relu(torch.matmul(A, W1))  # (..., K, n, m1)
    S = torch.relu(torch.matmul(H, w2.unsqueeze(-1)).squeeze(-1))  # (..., K, n)
    return torch.matmul(S.transpose(-1, -2), w3)  # (..., n, C)


def _data(n: int, d: int, seed: int = 0):
    import numpy as np

    r = np.random.default_rng(seed)
    X = np.c_[r.standard_normal((n, d)), np.ones(n)]
    y = np.maximum(X @ r.standard_normal(d + 1), 0) - np.maximum(X @ r.standard_normal(d + 1), 0)
    return X, y + 0.1 * r.standard_normal(n)


@contextlib.contextmanager
def trainer_model(model):
    """The trainer runs ``model`` inside the block (``three_layer_objective`` looks its
    model up at each call), the library's own again after it."""
    import convexrelu.nonconvex as nc

    ours = nc._three_layer_forward
    nc._three_layer_forward = model
    try:
        yield
    finally:
        nc._three_layer_forward = ours


def step_times(n: int, d: int, K: int, m1: int, starts: int, trials: int = 5, passes: int = 30) -> dict:
    """Median ms per forward + backward pass of each model, measured alternately."""
    import torch

    from convexrelu.nonconvex import _three_layer_forward, three_layer_objective

    X, y = _data(n, d)
    g = torch.Generator().manual_seed(0)
    A = torch.as_tensor(X)
    Y = torch.as_tensor(y)[:, None]
    kw = dict(dtype=torch.float64, generator=g, requires_grad=True)
    W1 = torch.randn(starts, K, d + 1, m1, **kw)
    w2 = torch.randn(starts, K, m1, **kw)
    w3 = torch.randn(starts, K, 1, **kw)


    def timer(model):
        def run():
            with trainer_model(model):
                t = time.perf_counter()
                for _ in range(passes):
                    f = three_layer_objective(A, Y, W1, w2, w3, beta=1.0)
                    torch.autograd.grad(f.sum(), (W1, w2, w3))
                return (time.perf_counter() - t) / passes
        return run

    runs = {"autograd": timer(autograd_model), "ours": timer(_three_layer_forward)}
    for run in runs.values():
        run()  # warm-up
    times = {k: [] for k in runs}
    for _ in range(trials):
        for k, run in runs.items():
            times[k].append(run())
    return {k: statistics.median(v) for k, v in times.items()}


def training_times(n: int, d: int, K: int, m1: int, starts: int, steps: int = 300) -> dict:
    """Seconds for ``steps`` steps of ``train_three_layer`` with each model, and the
    largest difference of the trained objectives (the same iterations up to rounding)."""
    import convexrelu.nonconvex as nc

    X, y = _data(n, d)
    out = {}
    for name, model in (("autograd", autograd_model), ("ours", nc._three_layer_forward)):
        with trainer_model(model):
            t = time.perf_counter()
            res = nc.train_three_layer(X, y, n_subnetworks=K, hidden=m1, beta=1.0, fit_intercept=False,
                                       n_starts=starts, max_iter=steps, tol=0.0, random_state=0)
            out[name] = (time.perf_counter() - t, res.objectives)
    diff = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(out["autograd"][1], out["ours"][1]))
    return {"autograd": out["autograd"][0], "ours": out["ours"][0], "objective_difference": diff}


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 2,000 only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", default=None, help=OUTPUT_HELP)
    args = parser.parse_args(argv)
    args.output = results_path(args.output, getattr(args, "quick", False))
    torch.set_num_threads(args.threads)
    sizes = [2000] if args.quick else [2000, 5000, 20000]
    settings = [(m1, starts) for m1 in (2, 3) for starts in (1, 2)]
    d, K = 10, 50
    info = machine()
    say, printed = recorder()
    say(machine_line(info, args.threads))
    rows = []
    for n in sizes:
        for m1, starts in settings:
            st = step_times(n, d, K, m1, starts)
            tr = training_times(n, d, K, m1, starts)
            say(f"n={n} K={K} m1={m1} starts={starts}: forward+backward {1e3 * st['autograd']:.2f} ms (autograd) "
                f"against {1e3 * st['ours']:.2f} ms (ours), {st['autograd'] / st['ours']:.2f}x; 300 training steps "
                f"{tr['autograd']:.2f} s against {tr['ours']:.2f} s, {tr['autograd'] / tr['ours']:.2f}x; trained "
                f"objectives differ by {tr['objective_difference']:.1e} (relative)")
            rows.append([n, m1, starts, f"{1e3 * st['autograd']:.2f}", f"{1e3 * st['ours']:.2f}",
                         f"{st['autograd'] / st['ours']:.2f}x", f"{tr['autograd']:.2f}", f"{tr['ours']:.2f}",
                         f"{tr['autograd'] / tr['ours']:.2f}x", f"{tr['objective_difference']:.1e}"])
    L = [HEADING, "",
         f"Produced by `python benchmarks/bench_trainer.py{' --quick' if args.quick else ''}` on {info['date']}.",
         f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({args.threads} threads), Python "
         f"{info['python']}; load average at the start {info['load_average']} (the machine is shared).",
         f"`train_three_layer`'s model and gradient (float64, K = {K} sub-networks, d = {d} + intercept, squared "
         "loss): `autograd` the formula as torch operations differentiated by autograd (what the trainer ran "
         "before), `ours` `convexrelu.nonconvex._three_layer_forward` (one product for every sub-network, "
         "a hand-written backward); each the median of 5 alternate measurements of 30 passes; then 300 steps of "
         "projected Adam (`tol=0`) with each.",
         ""]
    L += markdown_table(["n", "m1", "starts", "autograd ms / pass", "ours ms / pass", "speed-up",
                         "autograd s / 300 steps", "ours s / 300 steps", "speed-up", "objectives differ by"], rows)
    write_report(args.output, L, printed, HEADING)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.0f}s")
