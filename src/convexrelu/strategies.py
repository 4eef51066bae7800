"""Where the patterns of a convex program come from (theory.md, "Where patterns come from").

:func:`run_strategy` solves a program after choosing or growing its pattern set:

- ``"sample"``: the program as given (its patterns are usually Gaussian samples);
- ``"exact"``: every pattern (exact enumeration; low-rank data and small n only);
- ``"seeded"``: train the non-convex network by projected Adam
  (:mod:`convexrelu.nonconvex`), add the patterns of its sub-networks (both layers and
  the signs), and solve warm-started from the trained network itself;
- ``"pursuit"``: column generation on the dual: search atoms with
  ``|v_k^T g| > beta (1 + tol)`` at the current dual point ``V = grad l(A Q)``
  (:mod:`convexrelu.search`), add their patterns, re-solve warm-started, repeat;
- ``"seeded+pursuit"``: pursuit from the seeded solution.

**Seeded guarantee** (theory.md, *Seeded*). A trained network is a feasible point of
the program over its own patterns. Two layers: neuron ``(u, a)`` with output weight
``a_k`` gives block (output k, sign ``sign(a_k)``, pattern ``1[X u >= 0]``) the value
``q = |a_k| u`` (in the cone, and ``D X q sign(a_k) = (X u)_+ a_k``), with penalty
``beta ||u|| |a_k| <= (beta/2)(||u||^2 + a_k^2)``. Three layers: sub-network
``(W1, w2, w3)`` gives, for output k, block (k, ``sign(w3_k)``, pattern, pair j) the
value ``q_j = |w2_j| |w3_k| w1_j`` (pairs with equal (sign, mask) added), feasible for
both cones, with penalty ``beta |w3_k| sum_j |w2_j| ||w1_j|| <= beta |w3_k| ||w2||
||W1||_F <= (beta/2)(||w2||^2 + w3_k^2)`` under ``||W1||_F <= 1``. Summing, the point
:func:`network_weights` builds has a program objective at most the network's P2/P3
objective, so the convex optimum over any superset of the network's patterns is at
most the trained objective. The strategy starts the solver from that point and
returns it if the solver ends above it; so the returned objective is <= the trained
one whatever the solver. With C > 1 outputs the bound needs each hidden unit to feed
one output (``||a||_1`` replaces ``||a||_2`` otherwise): the guarantee is stated for
C = 1, and for C > 1 the returned objective is only <= that of the mapped point.

Block layouts (:mod:`convexrelu.programs`): the keys of :func:`block_keys` identify a
block by (output, output sign, second-layer mask, pair set of its group) and its pair
(sign, first-layer mask), so weights move between programs over different pattern sets
(:func:`embed_weights`) whatever the order of their patterns.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ._validation import check_count, check_max_time, check_number
from .solvers.auglag import REPAIR_KEYS
from .solvers.base import MIN_TIME_LIMIT, time_left
from .patterns import ThreeLayerPatterns, TwoLayerPatterns, three_layer_activations, three_layer_patterns_of
from .search import _mask_keys, architecture_of, dual_point, pattern_keys, program_hidden, search_program

__all__ = [
    "STRATEGIES",
    "StrategyResult",
    "run_strategy",
    "block_keys",
    "embed_weights",
    "embed_solution",
    "network_patterns",
    "network_weights",
    "network_objective",
    "solve_from",
]

logger = logging.getLogger(__name__)

STRATEGIES = ("sample", "exact", "seeded", "pursuit", "seeded+pursuit")


@dataclass(frozen=True, eq=False)
class StrategyResult:
    """Outcome of :func:`run_strategy`.

    Attributes
    ----------
    name : str
        The strategy.
    program : ConvexProgram
        The final program (its pattern set possibly grown).
    solution : Solution
        Its solution (``weights`` in the final program's block layout).
    history : list of dict
        One entry per round: ``round``, ``stage`` ("solve", "train", "search"),
        ``objective``, ``n_patterns``, ``max_violation`` (largest ``|v_k^T g| / beta``
        found by the search at the start of the round, None where none ran), ``added``
        (patterns added), ``time`` (seconds since the start).
    trained_objective : float or None
        Seeded strategies: the best trained network's non-convex objective (P2/P3).
    converged : bool or None
        Pursuit: True when the last search found no atom above ``beta (1 + tol)``.
    time : float
        Wall time, seconds.
    info : dict
    """

    name: str
    program: Any
    solution: Any
    history: list
    trained_objective: float | None = None
    converged: bool | None = None
    time: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def objective(self) -> float:
        return float(self.solution.objective)

    @property
    def network(self):
        """The recovered non-convex network."""
        return self.program.recover(self.solution.weights)


# --------------------------------------------------------------------------- block keys
def _group_keys(op) -> list:
    """Key of every group: (output, output sign, second-layer mask, sorted pair set)."""
    pairs = _pair_keys(op)
    members: list[list] = [[] for _ in range(op.n_groups)]
    for b, g in enumerate(op.group_np):
        members[g].append(pairs[b])
    second = _mask_keys(op.second_np) if op.second_np is not None else [b""] * op.n_groups
    return [
        (int(op.output_np[g]), int(op.sigma_np[g]), second[g], tuple(sorted(members[g])))
        for g in range(op.n_groups)
    ]


def _pair_keys(op) -> list:
    return list(zip((np.sign(op.signs_np).astype(int)).tolist(), _mask_keys(op.first_np)))


def block_keys(program) -> list:
    """Key of every block (column of ``Q``) of a program: ``(group key, pair key)``.

    Two blocks of two programs with equal keys have the same first-layer mask, sign,
    second-layer mask, output and output sign, inside the same pattern: the same
    variable.
    """
    op = program.operator
    groups = _group_keys(op)
    pairs = _pair_keys(op)
    return [(groups[g], pairs[b]) for b, g in enumerate(op.group_np)]


def _as_numpy(Q) -> np.ndarray:
    if isinstance(Q, torch.Tensor):
        return Q.detach().cpu().numpy().astype(np.float64)
    return np.asarray(getattr(Q, "weights", Q), dtype=np.float64)


def embed_weights(old_program, new_program, Q) -> np.ndarray:
    """Map ``Q`` (d, B_old) of ``old_program`` into the block layout of ``new_program``.

    Blocks are matched by :func:`block_keys`; blocks of the new program with no
    counterpart are zero. With ``new = old.with_patterns(old.patterns.union(extra))``
    every block has one (whatever the column layouts of the two programs: a union whose
    patterns all have the same number of pairs takes the slab layout of
    :class:`~convexrelu.programs.ThreeLayerReLUProgram`), so the model output and the
    objective are unchanged. Blocks of the old program
    missing from the new one are dropped (a warning is logged).

    Returns
    -------
    array (d, B_new)
    """
    Q = _as_numpy(Q)
    index = {k: j for j, k in reversed(list(enumerate(block_keys(new_program))))}
    out = np.zeros(new_program.shape)
    lost = 0
    for b, key in enumerate(block_keys(old_program)):
        j = index.get(key)
        if j is None:
            lost += int(np.any(Q[:, b]))
            continue
        out[:, j] += Q[:, b]
    if lost:
        logger.warning("embed_weights: %d non-zero blocks have no counterpart in the new program", lost)
    return out


def _group_index(old_program, new_program) -> np.ndarray:
    """For every group of the new program, its group in the old one (-1 if new)."""
    index = {k: g for g, k in reversed(list(enumerate(_group_keys(old_program.operator))))}
    return np.asarray([index.get(k, -1) for k in _group_keys(new_program.operator)], dtype=np.int64)


def embed_solution(old_program, new_program, solution):
    """A :class:`~convexrelu.solvers.Solution` of ``new_program`` carrying ``solution``'s
    weights (:func:`embed_weights`) *and* cone multipliers, as a warm start.

    Multipliers of the first cone are per block (columns of an (n, B) array), those of
    the second cone per group ((n, G)); both are matched by key, new blocks and groups
    get zeros. ``info`` (e.g. the penalty ``rho`` of the augmented Lagrangian) is kept;
    ``objective`` and ``constraint_violation`` are those of the embedded point. It is a
    starting point, not a solution of ``new_program``: ``status`` is ``"embedded"``,
    ``converged`` False and ``lower_bound`` ``-inf`` (the old program's bound says nothing
    about the new one, whose optimum may be far lower).
    """
    Q = embed_weights(old_program, new_program, solution.weights)
    old_op, new_op = old_program.operator, new_program.operator
    mults = tuple(getattr(solution, "multipliers", ()) or ())
    new_mults = ()
    if mults and tuple(np.shape(m) for m in mults) == old_op.constraint_shapes:
        out = []
        k = 0
        if old_op.cone_first:
            index = {key: b for b, key in enumerate(block_keys(old_program))}
            cols = np.asarray([index.get(key, -1) for key in block_keys(new_program)], dtype=np.int64)
            out.append(_take_columns(np.asarray(mults[k]), cols))
            k += 1
        if old_op.cone_second:
            out.append(_take_columns(np.asarray(mults[k]), _group_index(old_program, new_program)))
        new_mults = tuple(out)
    return dataclasses.replace(
        solution, weights=Q, objective=new_program.objective(Q), constraint_violation=new_program.violation(Q),
        multipliers=new_mults, converged=False, status="embedded", lower_bound=-math.inf,
    )


def _take_columns(M: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Columns ``M[:, cols]`` with zeros where ``cols == -1``."""
    out = np.zeros((M.shape[0], len(cols)))
    ok = cols >= 0
    out[:, ok] = M[:, cols[ok]]
    return out


# --------------------------------------------------------------------------- networks
def _design_network(network):
    """The same network on the design matrix (``fit_intercept=False``)."""
    new = object.__new__(type(network))
    new.__dict__.update(network.__dict__)
    new.fit_intercept = False
    return new


def network_objective(program, network) -> float:
    """Non-convex objective (P2/P3) of ``network`` on the program's data, loss and beta.

    ``network`` may act on raw inputs (``fit_intercept=True``, intercept last) or on the
    design matrix; either way it is evaluated on ``program.X_design``.
    """
    X = program.X_design
    if network.fit_intercept:
        network = _design_network(network)
    return float(network.objective(X, program.Y_np, program.loss, program.beta))


def network_patterns(program, network):
    """Patterns of every neuron / sub-network of ``network`` on the program's data.

    Two layers: ``1[X u >= 0]`` with generator ``u`` (the gate for gated networks);
    three layers: ``(D2; (sign(w2_j), 1[X w1_j >= 0]))`` (theory.md, *Seeded*).
    """
    X = program.X_design
    if architecture_of(program) == "three_layer":
        return ThreeLayerPatterns.from_lists(three_layer_patterns_of(X, network.W1, network.w2))
    G = network.gates if getattr(network, "gates", None) is not None else network.W1
    return TwoLayerPatterns.from_generators(X, G)


def _network_blocks(program, network):
    """Yield ``(block key, q)``: the feasible point of the program that ``network`` maps
    to (module docstring). Keys as :func:`block_keys`."""
    X = program.X_design
    arch = architecture_of(program)
    if arch == "three_layer":
        yield from _three_layer_blocks(X, network)
        return
    gated = arch == "gated"
    if not gated and getattr(network, "gates", None) is not None:
        raise ValueError("network: a gated network is not a feasible point of a ReLU program")
    G = network.gates if getattr(network, "gates", None) is not None else network.W1
    masks = X @ G >= 0
    keys = _mask_keys(masks)
    for j in range(network.W1.shape[1]):
        if not masks[:, j].any():
            continue
        pair = (1, keys[j])
        for k in np.flatnonzero(network.W2[j]):
            a = network.W2[j, k]
            sigma = 1 if gated or a > 0 else -1
            q = network.W1[:, j] * (a if gated else abs(a))
            yield ((int(k), sigma, b"", (pair,)), pair), q


def _three_layer_blocks(X, network):
    # the masks of :func:`network_patterns`, computed the same way (rounding decides them)
    _, D1s, D2s = three_layer_activations(X, network.W1, network.w2)
    for k in range(network.n_subnetworks):
        D2 = D2s[:, k]
        if not D2.any():
            continue
        D1 = D1s[:, :, k]
        keys = _mask_keys(D1)
        qs: dict = {}
        for j in np.flatnonzero(network.w2[k]):
            if not D1[:, j].any():
                continue
            pair = (1 if network.w2[k, j] > 0 else -1, keys[j])
            qs[pair] = qs.get(pair, 0.0) + abs(network.w2[k, j]) * network.W1[k, :, j]
        if not qs:
            continue
        pairset = tuple(sorted(qs))
        d2 = _mask_keys(D2[:, None])[0]
        for c in np.flatnonzero(network.w3[k]):
            w3 = network.w3[k, c]
            group = (int(c), 1 if w3 > 0 else -1, d2, pairset)
            for pair, q in qs.items():
                yield (group, pair), abs(w3) * q


def network_weights(program, network) -> np.ndarray:
    """The point ``Q`` (d, B) of ``program`` that reproduces ``network`` (theory.md,
    *Seeded*; module docstring), its objective at most the network's.

    ``network`` acts on the design matrix (its first layer has ``d`` rows, intercept
    included); every one of its patterns must be in the program
    (:func:`network_patterns`), else ``ValueError``.
    """
    index = {k: j for j, k in reversed(list(enumerate(block_keys(program))))}
    Q = np.zeros(program.shape)
    for key, q in _network_blocks(program, network):
        j = index.get(key)
        if j is None:
            raise ValueError("network: one of its patterns is not in the program; add network_patterns() first")
        Q[:, j] += q
    return Q


# --------------------------------------------------------------------------- solving
def _default_solver():
    from .solvers import SOLVERS, CVXPYSolver, get_solver

    return get_solver("auto") if "auto" in SOLVERS else CVXPYSolver()


def _resolve_solver(solver):
    if solver is None:
        return _default_solver()
    if isinstance(solver, str):
        from .solvers import SOLVERS, get_solver

        if solver.lower() == "auto" and "auto" not in SOLVERS:
            return _default_solver()
        return get_solver(solver)
    return solver


def _feasibility_tolerance(program, Q: np.ndarray) -> float:
    scale = float(np.abs(program.X_design).max(initial=0.0)) * float(np.abs(Q).sum(axis=0).max(initial=0.0))
    return 1e-9 * max(1.0, scale)


def solve_from(program, solver, init=None, *, deadline: float | None = None):
    """``solver.solve(program, init)``, never worse than a feasible ``init``.

    If ``init`` (d, B) satisfies the cone constraints (to ``1e-9`` relative) and has a
    lower objective than the solver's answer, the solution is ``init`` itself (the
    solver's multipliers and lower bound are kept: both stay valid). This makes the
    seeded guarantee hold for any solver.

    ``deadline``: a ``time.perf_counter()`` value; the solver runs with the time left to
    it as its limit (:meth:`Solver.with_max_time`, :func:`~convexrelu.solvers.base.time_left`).
    """
    if deadline is not None:
        solver = solver.with_max_time(time_left(deadline))
    solution = solver.solve(program, init)
    if init is None:
        return solution
    init = _as_numpy(init)
    f0 = program.objective(init)
    viol = program.violation(init)
    if viol <= _feasibility_tolerance(program, init) and f0 < solution.objective:
        logger.info("solver ended at %.10g, above its feasible start %.10g: returning the start", solution.objective, f0)
        # the solver's repair account describes the point not returned
        info = {k: v for k, v in solution.info.items() if k not in REPAIR_KEYS}
        info.update(returned="init", solver_objective=float(solution.objective))
        solution = dataclasses.replace(
            solution, weights=init, objective=f0, constraint_violation=viol, info=info,
            history=tuple(solution.history) + (f0,),
        )
    return solution


# --------------------------------------------------------------------------- strategies
def _targets_for_trainer(program):
    """``program.Y_np`` in the form ``loss.prepare_targets`` takes back."""
    Y = program.Y_np
    name = program.loss.name
    if name == "logistic" or (name == "squared" and Y.shape[1] == 1):
        return Y[:, 0]
    return Y


def _train(program, *, width, n_starts, seed, hidden, train_kwargs, trainer) -> list:
    """Train the non-convex network of the program's architecture on its design matrix:
    the network of every start, best first.

    Targets far from unit size are trained on in their own units (the program's
    :meth:`~convexrelu.programs.ConvexProgram.target_unit` ``s``: targets and ``beta`` divided
    by ``s``, the networks then scaled by ``s``, :meth:`TwoLayerNetwork.scaled`): the
    trainer's step size is set for targets of order one (targets times 1e-4: Adam's
    network had thousands of times the objective of the one trained on unit targets)."""
    s = program.target_unit()
    units = program.in_units(s) if s != 1.0 else program
    arch = architecture_of(program)
    common = dict(loss=program.loss, beta=units.beta, fit_intercept=False, n_starts=n_starts, random_state=seed)
    common.update(train_kwargs)
    X, y = program.X_design, _targets_for_trainer(units)
    if arch == "three_layer":
        if trainer is None:
            from .nonconvex import train_three_layer as trainer
        result = trainer(X, y, n_subnetworks=width, hidden=hidden, **common)
    else:
        if trainer is None:
            from .nonconvex import train_two_layer as trainer
        # gated programs are seeded by a ReLU network: it is a gated network with gates W1
        result = trainer(X, y, width=width, **common)
    networks = list(getattr(result, "networks", None) or [result.network])
    if s != 1.0:
        networks = [net.scaled(s) for net in networks]
    networks.sort(key=lambda net: network_objective(program, net))
    return networks


_TRAIN_DEFAULTS = dict(max_iter=2000, lr=1e-2, tol=1e-6, window=100)

#: With a strategy's ``max_time``, the share of the time left that the seeded strategies'
#: non-convex training may take (its ``max_time``); the convex solve gets the rest.
SEED_TRAIN_SHARE = 0.5


def _seed(program, solver, *, width, n_starts, seed_starts, seed, hidden, train_kwargs, trainer, log, start,
          deadline=None):
    """Seeded strategy: returns (program, solution, trained objective, history)."""
    train_kwargs = {**_TRAIN_DEFAULTS, **(train_kwargs or {})}
    if deadline is not None:  # the training's share of the time left (:data:`SEED_TRAIN_SHARE`)
        share = max(SEED_TRAIN_SHARE * time_left(deadline), MIN_TIME_LIMIT)
        own = train_kwargs.get("max_time")
        train_kwargs["max_time"] = share if own is None else min(float(own), share)
    networks = _train(program, width=width, n_starts=n_starts, seed=seed, hidden=hidden,
                      train_kwargs=train_kwargs, trainer=trainer)
    networks = networks[: seed_starts or len(networks)]
    best = networks[0]
    trained = network_objective(program, best)
    history = [dict(round=0, stage="train", objective=trained, n_patterns=len(program.patterns),
                    max_violation=None, added=0, time=time.perf_counter() - start)]
    log("seeded: trained network objective %.8g (%d start(s), %.2fs)", trained, n_starts, history[0]["time"])
    seeded = network_patterns(program, networks[0])
    for net in networks[1:]:
        seeded = seeded.union(network_patterns(program, net))
    grown = program.with_patterns(program.patterns.union(seeded))
    init = network_weights(grown, _design_network(best) if best.fit_intercept else best)
    solution = solve_from(grown, solver, init, deadline=deadline)
    added = len(grown.patterns) - len(program.patterns)
    history.append(dict(round=1, stage="solve", objective=float(solution.objective), n_patterns=len(grown.patterns),
                        max_violation=None, added=added, time=time.perf_counter() - start))
    log("seeded: +%d patterns, convex objective %.8g (trained %.8g), %.2fs",
        added, solution.objective, trained, history[-1]["time"])
    outputs = program.operator.n_outputs
    if outputs > 1 and trained < solution.lower_bound:  # (certified: below the optimum, not a stopped solve's point)
        warnings.warn(
            f"seeded: the trained network's objective {trained:.8g} is below the convex optimum over its patterns "
            f"(certified at least {float(solution.lower_bound):.8g}): with {outputs} outputs the convex program's "
            "networks give each hidden "
            "unit one output, and a network whose units feed every output can do better (README, 'Honest limits')"
            + ("; with two classes the squared or logistic loss has one output"
               if outputs == 2 and program.loss.name == "softmax" else ""),
            UserWarning, stacklevel=3)  # (the caller of run_strategy)
    return grown, solution, trained, history


def _new_patterns(program, found):
    """The patterns of the search result ``found`` that ``program`` does not have, best first."""
    have = set(pattern_keys(program.patterns))
    keep = [i for i, k in enumerate(pattern_keys(found.patterns)) if k not in have]
    return found.patterns.subset(np.asarray(keep, dtype=np.int64)), keep


def _violation_ratio(value: float, beta: float) -> float:
    if beta > 0:
        return value / beta
    return math.inf if value > 0 else 0.0


def _pursue(program, solution, solver, *, rounds, tol, per_round, budget, time_budget, search, rng, log, start,
            history, first_round, deadline=None):
    """Column generation (theory.md, *Pursuit*). Returns (program, solution, converged)."""
    added_total = 0
    beta = program.beta
    converged = False
    # a round costs about one solve: the last one estimates the next
    last = history[-1]["time"] - (history[-2]["time"] if len(history) > 1 else 0.0)
    for r in range(first_round, first_round + rounds):
        elapsed = time.perf_counter() - start
        if time_budget is not None and elapsed + last > time_budget:
            log("pursuit: time budget %.1fs: %.1fs spent, a round takes about %.1fs", time_budget, elapsed, last)
            break
        round_start = time.perf_counter()
        found = search_program(program, solution.weights, threshold=beta * (1 + tol),
                               random_state=rng, **search)
        ratio = _violation_ratio(found.best_value, beta)
        new, _ = _new_patterns(program, found)
        room = per_round if budget is None else min(per_round, budget - added_total)
        if ratio <= 1 + tol or len(new) == 0 or room <= 0:
            # atoms above beta(1+tol) whose patterns the program has are those of a solve
            # that had not reached its optimum (an optimum's dual point bounds them): the
            # pursuit has not converged then (it had claimed to, 412 times beta above)
            converged = ratio <= 1 + tol or (len(new) == 0 and solution.converged)
            why = ("no new pattern above beta(1+tol)" if converged else "pattern budget spent" if len(new)
                   else "the violating atoms' patterns are in the program, whose solve did not converge")
            history.append(dict(round=r, stage="search", objective=float(solution.objective),
                                n_patterns=len(program.patterns), max_violation=ratio, added=0,
                                time=time.perf_counter() - start))
            log("pursuit round %d: objective %.10g, %d patterns, max violation %.6f: %s", r, solution.objective,
                len(program.patterns), ratio, why)
            break
        new = new.subset(np.arange(min(room, len(new))))
        grown = program.with_patterns(program.patterns.union(new))
        solution = solve_from(grown, solver, embed_solution(program, grown, solution), deadline=deadline)
        added = len(grown.patterns) - len(program.patterns)
        added_total += added
        program = grown
        history.append(dict(round=r, stage="solve", objective=float(solution.objective), n_patterns=len(program.patterns),
                            max_violation=ratio, added=added, time=time.perf_counter() - start))
        last = time.perf_counter() - round_start
        log("pursuit round %d: max violation %.6f, +%d patterns -> %d, objective %.10g, %.2fs", r, ratio, added,
            len(program.patterns), solution.objective, history[-1]["time"])
    return program, solution, converged


def _logger(verbose: bool) -> Callable:
    def log(msg, *args):
        logger.info(msg, *args)
        if verbose:
            print(msg % args, flush=True)

    return log


def _exact_program(program, hidden):
    from .patterns import enumerate_three_layer, enumerate_two_layer

    if architecture_of(program) == "three_layer":
        return program.with_patterns(enumerate_three_layer(program.X_design, hidden))
    return program.with_patterns(enumerate_two_layer(program.X_design))


def run_strategy(
    name: str,
    program,
    solver=None,
    *,
    n_patterns: int | None = None,
    random_state=None,
    max_rounds: int = 20,
    time_budget: float | None = None,
    max_time: float | None = None,
    n_starts: int = 5,
    width: int | None = None,
    seed_starts: int | None = None,
    tol: float = 1e-3,
    patterns_per_round: int = 10,
    search_starts: int = 128,
    search_iter: int = 150,
    hidden: int | None = None,
    train_kwargs: dict | None = None,
    trainer: Callable | None = None,
    init=None,
    verbose: bool = False,
) -> StrategyResult:
    """Choose or grow the program's patterns and solve it (theory.md, "Where patterns come from").

    Parameters
    ----------
    name : {"sample", "exact", "seeded", "pursuit", "seeded+pursuit"}
        See the module docstring.
    program : TwoLayerReLUProgram, GatedReLUProgram or ThreeLayerReLUProgram
        The starting program; its patterns are kept (strategies only add patterns).
    solver : Solver, str or None
        Default: ``get_solver("auto")`` where registered, else :class:`CVXPYSolver`.
        Warm starts are passed as ``solver.solve(program, init)``.
    n_patterns : int or None
        Pattern budget. Seeded: the trained width (K sub-networks or neurons, default
        50). Pursuit: the most patterns added over all rounds (default: no limit).
    random_state : None, int or numpy Generator
        Seeds the trainer and the atom search.
    max_rounds : int
        Pursuit rounds at most.
    time_budget : float or None
        Seconds from the start; pursuit starts no new round that would end after it
        (a round is predicted to take as long as the previous one). Default: ``max_time``.
    max_time : float or None
        Seconds for the whole strategy from its start: every solve runs with the time
        left of it as its limit (:meth:`Solver.with_max_time`; a ValueError for a solver
        without one), and pursuit keeps to it as to ``time_budget``. The non-convex
        training of the seeded strategies stops at its best iterate after
        :data:`SEED_TRAIN_SHARE` of the time (its ``max_time``: a ``trainer`` given must
        take one), and the convex solve gets the rest.
    n_starts : int
        Random starts of the non-convex trainer (seeded).
    width : int or None
        Trained width for seeded strategies (overrides ``n_patterns`` there).
    seed_starts : int or None
        Seed with the networks of the best ``seed_starts`` trainer starts (default: all
        ``n_starts``; each adds up to ``width`` patterns).
    tol : float
        Pursuit stops when no atom has ``|v_k^T g| > beta (1 + tol)``.
    patterns_per_round : int
        Most patterns added per pursuit round (the best candidates first).
    search_starts, search_iter : int
        Starts per (output, sign) and ascent steps of the atom search.
    hidden : int or None
        m1 for three-layer programs (default: the program's).
    train_kwargs : dict or None
        Extra keywords of the trainer (``max_iter``, ``lr``, ``tol``, ...).
    trainer : callable or None
        Replaces :func:`convexrelu.nonconvex.train_two_layer` /
        ``train_three_layer`` (same signature, returns a ``TrainResult``).
    init : array (d, B), Solution or None
        Warm start of the first solve ("sample", "pursuit").
    verbose : bool
        Print the per-round log lines too (they always go to ``logging``).

    Returns
    -------
    StrategyResult
    """
    if name not in STRATEGIES:
        raise ValueError(f"name: expected one of {STRATEGIES}, got {name!r}")
    start = time.perf_counter()
    # the settings, checked here (a NaN tol or no search starts had let pursuit claim
    # convergence at a point 0.91 where the optimum is 0.57)
    n_patterns = check_count(n_patterns, "n_patterns", none_ok=True)
    max_rounds = check_count(max_rounds, "max_rounds", minimum=0)
    time_budget = check_number(time_budget, "time_budget", low_open=False, none_ok=True)
    n_starts = check_count(n_starts, "n_starts")
    width = check_count(width, "width", none_ok=True)
    seed_starts = check_count(seed_starts, "seed_starts", none_ok=True)
    tol = check_number(tol, "tol", low_open=False)
    patterns_per_round = check_count(patterns_per_round, "patterns_per_round")
    search_starts = check_count(search_starts, "search_starts")
    search_iter = check_count(search_iter, "search_iter")
    hidden = check_count(hidden, "hidden", none_ok=True)
    if not (random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator))):
        raise TypeError(f"random_state: expected None, an int or a numpy Generator, got {random_state!r}")
    solver = _resolve_solver(solver)
    deadline = None
    max_time = check_max_time(max_time)
    if max_time is not None:
        solver.with_max_time(max_time)  # (a solver without a time limit: the error now, not after training)
        deadline = start + max_time
        time_budget = max_time if time_budget is None else min(float(time_budget), max_time)
    log = _logger(verbose)
    rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.Generator) else random_state
    hidden = hidden if hidden is not None else (program_hidden(program) if architecture_of(program) == "three_layer" else 1)
    history: list = []
    trained = None
    converged = None
    if name == "exact":
        program = _exact_program(program, hidden)
        log("exact: %d patterns enumerated (%.2fs)", len(program.patterns), time.perf_counter() - start)
    if name in ("seeded", "seeded+pursuit"):
        width = width if width is not None else (n_patterns if n_patterns is not None else 50)
        program, solution, trained, history = _seed(
            program, solver, width=width, n_starts=n_starts, seed_starts=seed_starts,
            seed=int(rng.integers(0, 2**31 - 1)), hidden=hidden,
            train_kwargs=train_kwargs, trainer=trainer, log=log, start=start, deadline=deadline,
        )
    else:
        solution = solve_from(program, solver, init, deadline=deadline)
        history.append(dict(round=0, stage="solve", objective=float(solution.objective),
                            n_patterns=len(program.patterns), max_violation=None, added=0,
                            time=time.perf_counter() - start))
        log("%s: %d patterns, objective %.10g, %.2fs", name, len(program.patterns), solution.objective,
            history[-1]["time"])
    if name in ("pursuit", "seeded+pursuit"):
        budget = n_patterns if name == "pursuit" else None
        program, solution, converged = _pursue(
            program, solution, solver, rounds=max_rounds, tol=tol, per_round=patterns_per_round, budget=budget,
            time_budget=time_budget, search=dict(n_starts=search_starts, n_iter=search_iter, hidden=hidden),
            rng=rng, log=log, start=start, history=history, first_round=len(history), deadline=deadline,
        )
    return StrategyResult(
        name=name, program=program, solution=solution, history=history, trained_objective=trained,
        converged=converged, time=time.perf_counter() - start,
        info={"solver": getattr(solver, "name", type(solver).__name__), "n_patterns": len(program.patterns)},
    )
