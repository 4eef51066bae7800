"""``convexrelu demo``: convex training against Adam on a real dataset.

The breast cancer data shipped with scikit-learn (569 samples, 30 features, two
classes; no download) is split (``random_state`` fixed) and standardised. The same
architecture, K parallel three-layer ReLU sub-networks with ``m1`` first-layer neurons
each, is trained on the same objective (P3 of theory.md, squared loss on +-1 labels as
in the paper, summed over samples, same ``beta``) in two ways:

- convex: :class:`~convexrelu.ConvexReLUClassifier` solves the convex program (C3) over
  its patterns and recovers the network; its objective is the optimum over those
  patterns (the global optimum only with every pattern: theory.md, "Where patterns
  come from");
- non-convex: projected Adam (:func:`convexrelu.nonconvex.train_three_layer`) from
  several random starts, with K = the number of active sub-networks of the convex
  solution.

Both training objectives and test accuracies are printed side by side, and a plot of
the objectives (Adam's curves against the convex value) is written to the output
directory, with the numbers as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["run_demo", "DemoSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run."""

    n_train: int | None  #: training samples used (None: the whole training split)
    n_patterns: int  #: patterns of the convex program
    patterns: str  #: pattern strategy of the convex estimator
    hidden: int  #: m1
    beta: float  #: regularisation, summed-loss scale
    adam_starts: int  #: random starts of Adam
    adam_iter: int  #: Adam steps per start
    adam_lr: float
    solver: str  #: convex solver


_HISTORY_EVERY = 10  #: Adam's objective is recorded every this many steps

#: Full run: under a minute on 2 cores. ``solver="auto"`` picks the interior point at
#: this size (n = 426, 40 three-layer patterns): the CVXPY optimum, several times faster.
FULL = DemoSettings(n_train=None, n_patterns=20, patterns="seeded", hidden=2, beta=1.0,
                    adam_starts=5, adam_iter=2000, adam_lr=1e-2, solver="auto")
#: ``--quick``: a few seconds (for tests and a first look).
QUICK = DemoSettings(n_train=120, n_patterns=8, patterns="seeded", hidden=2, beta=1.0,
                     adam_starts=3, adam_iter=300, adam_lr=1e-2, solver="auto")


def _load_data(settings: DemoSettings, seed: int):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    if settings.n_train is not None and settings.n_train < len(y_train):
        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=settings.n_train, random_state=seed, stratify=y_train
        )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def run_demo(
    *, quick: bool = False, output_dir: str | Path = "convexrelu-demo", seed: int = 0, out: IO[str] | None = None
) -> dict:
    """Run the demo, print the comparison to ``out`` (stdout) and write the plot.

    Parameters
    ----------
    quick : bool
        A smaller run (a subsample of the training split, fewer patterns and Adam steps).
    output_dir : path
        Created if needed; receives ``demo_objectives.png`` and ``demo_results.json``.
    seed : int
        Seeds the pattern sampling and Adam's starts.
    out : text stream or None

    Returns
    -------
    dict
        The numbers printed (also written as ``demo_results.json``).
    """
    from .estimators import ConvexReLUClassifier

    out = sys.stdout if out is None else out
    settings = QUICK if quick else FULL
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    X_train, X_test, y_train, y_test = _load_data(settings, seed)
    y_pm = np.where(y_train == 1, 1.0, -1.0)  # the paper's +-1 targets (1 = benign)
    n, d = X_train.shape

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"convexrelu demo{' (quick)' if quick else ''}: breast cancer data (scikit-learn), "
        f"{n} training / {len(y_test)} test samples, {d} standardised features")
    say(f"architecture: parallel three-layer ReLU sub-networks, m1 = {settings.hidden} neurons each; "
        f"objective P3 = 0.5 * sum (f(x) - y)^2 on y in {{-1, +1}} + beta/2 * sum (||w2||^2 + w3^2), "
        f"beta = {settings.beta:g}")
    say()

    # ---- convex
    clf = ConvexReLUClassifier(
        depth=3, hidden=settings.hidden, beta=settings.beta, n_patterns=settings.n_patterns,
        patterns=settings.patterns, loss="squared", solver=settings.solver, random_state=seed,
    )
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    convex_time = time.perf_counter() - start
    convex_obj = float(clf.network_.objective(X_train, y_pm, "squared", settings.beta))
    convex_acc = float(clf.score(X_test, y_test))
    K = max(int(clf.n_active_), 1)
    results: dict = {
        "quick": quick,
        "n_train": int(n), "n_test": int(len(y_test)), "n_features": int(d),
        "beta": settings.beta, "hidden": settings.hidden,
        "convex": {
            "objective": convex_obj, "program_objective": float(clf.objective_),
            "lower_bound_over_patterns": clf.solver_info_.get("lower_bound"),
            "test_accuracy": convex_acc, "train_accuracy": float(clf.score(X_train, y_train)),
            "active_subnetworks": int(clf.n_active_), "patterns": int(clf.n_patterns_),
            "pattern_strategy": settings.patterns, "solver": clf.solver_info_.get("solver"),
            "time": convex_time,
        },
        "adam": None,
    }

    # ---- Adam
    adam = None
    try:  # depends on convexrelu.nonconvex.train_three_layer
        from .nonconvex import train_three_layer
    except ImportError:
        train_three_layer = None
        say("Adam: skipped (convexrelu.nonconvex is not available in this installation)")
    if train_three_layer is not None:
        start = time.perf_counter()
        adam = train_three_layer(
            X_train, y_pm, n_subnetworks=K, hidden=settings.hidden, loss="squared", beta=settings.beta,
            fit_intercept=True, n_starts=settings.adam_starts, max_iter=settings.adam_iter, lr=settings.adam_lr,
            random_state=seed, history_every=_HISTORY_EVERY,
        )
        adam_time = time.perf_counter() - start
        net = adam.network
        adam_pred = np.where(net.predict(X_test)[:, 0] > 0, 1, 0)
        adam_train_pred = np.where(net.predict(X_train)[:, 0] > 0, 1, 0)
        objectives = [float(o) for o in getattr(adam, "objectives", (adam.objective,))]
        results["adam"] = {
            "objective": float(adam.objective), "objectives": objectives,
            "test_accuracy": float(np.mean(adam_pred == y_test)),
            "train_accuracy": float(np.mean(adam_train_pred == y_train)),
            "subnetworks": K, "starts": settings.adam_starts, "iterations": settings.adam_iter,
            "lr": settings.adam_lr, "time": adam_time,
        }

    # ---- report
    c = results["convex"]
    rows = [(f"convex program ({c['patterns']} {settings.patterns} patterns)", c["objective"], c["test_accuracy"],
             c["time"], f"K = {c['active_subnetworks']} active")]
    if results["adam"] is not None:
        a = results["adam"]
        rows.append((f"Adam, best of {a['starts']} starts", a["objective"], a["test_accuracy"], a["time"],
                     f"K = {K}, {a['iterations']} steps"))
    width = max(len(r[0]) for r in rows)
    say(f"{'':<{width}}  {'train objective (P3)':>20}  {'test accuracy':>13}  {'time':>8}")
    for name, obj, acc, t, note in rows:
        say(f"{name:<{width}}  {obj:>20.6f}  {acc:>13.4f}  {t:>7.1f}s  {note}")
    if results["adam"] is not None:
        a = results["adam"]
        say(f"{'Adam, every start':<{width}}  " + ", ".join(f"{o:.4f}" for o in a["objectives"]))
        diff = a["objective"] - c["objective"]
        if diff >= 0:
            say(f"the convex solution's objective is {diff:.4f} ({diff / abs(a['objective']):.1%}) below Adam's best.")
        else:
            say(f"Adam's best is {-diff:.4f} ({-diff / abs(c['objective']):.1%}) below the convex solution: with "
                "sampled patterns the program is a restriction (theory.md, 'Where patterns come from'); "
                "more patterns, or patterns='seeded' / 'pursuit', close the gap.")
    lb = c["lower_bound_over_patterns"]
    if lb is not None:
        say(f"dual lower bound over the same patterns: {lb:.6f} (gap {c['program_objective'] - lb:.2e})")

    plot_path = output_dir / "demo_objectives.png"
    _plot(plot_path, results, adam, settings)
    results["plot"] = str(plot_path)
    json_path = output_dir / "demo_results.json"
    json_path.write_text(json.dumps(results, indent=2))
    say(f"plot written to {plot_path}; numbers to {json_path}")
    return results


def _plot(path: Path, results: dict, adam, settings: DemoSettings) -> None:
    """Objective curves of Adam's starts against the convex objective (a bare ``Figure``:
    no pyplot, and the user's matplotlib backend is left as it is)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    convex = results["convex"]["objective"]
    histories = getattr(adam, "histories", ()) if adam is not None else ()
    for s, hist in enumerate(histories):
        steps = np.arange(len(hist)) * _HISTORY_EVERY
        ax.plot(steps, hist, lw=1.0, alpha=0.8, label="Adam starts" if s == 0 else None, color="tab:orange")
    ax.axhline(convex, color="tab:blue", lw=2.0,
               label=f"convex program ({results['convex']['patterns']} {settings.patterns} patterns): {convex:.3f}")
    if results.get("adam"):
        ax.axhline(results["adam"]["objective"], color="tab:orange", ls="--", lw=1.0,
                   label=f"best Adam: {results['adam']['objective']:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training objective (P3)")
    ax.set_title(f"Three-layer ReLU network, breast cancer (n = {results['n_train']}, beta = {settings.beta:g})")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
