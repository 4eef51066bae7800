"""Presolve shared by the solvers: dead groups fixed at zero, independent outputs apart.

Where ``beta`` is at least the program's :meth:`ConvexProgram.zero_threshold`, the zero
network is optimal and is returned at once, with its certificate.

A group whose part of the model is identically zero (:meth:`BlockOperator.live_groups`:
a three-layer pattern whose second layer is off wherever its first-layer blocks are on,
an all-zero first-layer pattern) enters the program only through ``beta ||q_g||`` and
its own cone constraints ``K_g q_g >= 0``; ``q_g = 0`` is optimal (the only optimum when
``beta > 0``) whatever the other groups do. :func:`on_live_groups` runs a solver on the
program restricted to the other groups (:meth:`ConvexProgram.restrict`) and returns the
solution of the whole program: the same objective and constraint violation, the
restricted program's lower bound (a bound on the same optimal value), weights and
multipliers extended by zeros (:meth:`BlockOperator.extend`), ``info["dead_groups"]``.

With several outputs and a loss that is a sum over them (:attr:`Loss.separable_outputs`,
the squared loss: the default of the classifiers, one-hot targets), every group feeds
one output, the penalty and the cone constraints are sums over the groups, so the
program is one independent program per output column (:func:`program_parts`). Each
is solved on its own, in turn, and the solutions are put together
(:func:`_assemble`): weights and multipliers side by side, the objective of the whole,
the sum of the parts' lower bounds (plus the constant loss of the outputs without a live
group) as its lower bound. An interior-point iteration then factors ``C`` matrices of
order ``n`` instead of one of order ``n C``.

Where the loss scales with its targets (:attr:`Loss.scales_with_targets`, the squared
loss) and the targets are far from unit size, each part is solved in the targets' units
(:meth:`ConvexProgram.target_unit`, :func:`in_target_units`): targets and ``beta`` divided by a power
of two near the targets' root mean square, the solution multiplied back. The solvers'
tolerances, floors and starting points are set for targets of order one; in other units
they became absolute (targets times 1e-4: the zero network returned as optimal).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings

import numpy as np
import torch

from ..duality import dual_lower_bound
from .base import Solution, SolverError, check_program, frozen, init_weights, time_left

__all__ = ["in_target_units", "live_part", "on_live_groups", "outputs_apart", "program_parts", "zero_solution"]


def on_live_groups(solve):
    """Decorator of a :meth:`Solver.solve`: the solve runs on the live groups of the program
    (every group when all are live or none is), one output at a time where the outputs are
    independent (:func:`program_parts`); a warm start ``init`` (array or
    :class:`Solution` of the whole program) is restricted to each part."""

    @functools.wraps(solve)
    def wrapper(self, program, init=None) -> Solution:
        start = time.perf_counter()
        check_program(program)
        zero = zero_solution(program, self.name, start)
        if zero is not None:
            return zero
        parts = program_parts(program)
        solve_scaled = in_target_units(solve, stacklevel=3)  # (warnings at the line that called this wrapper)
        if parts is None:  # (the solver called from this line: its warnings' stack levels count on it)
            sol = (solve if program.target_unit() == 1.0 else solve_scaled)(self, program, init)
            return dataclasses.replace(sol, info={**sol.info, "dead_groups": 0})
        if parts[0][1] is None:  # one part: the live groups
            groups = parts[0][0]
            part, blocks = program.restrict(groups)
            # (max_time less the time the restriction took)
            sol = (solve if part.target_unit() == 1.0 else solve_scaled)(
                _time_share(self, start, 1), part, _restrict_init(program, init, groups, blocks))
            return _extend(program, sol, groups, time.perf_counter() - start)
        sols = []
        for i, (groups, output) in enumerate(parts):
            part, blocks = program.restrict(groups, output)
            solver = _time_share(self, start, len(parts) - i)
            label = f"output {output} of {program.operator.n_outputs} (solved apart"
            label += ", max_time shared among them)" if solver is not self else ")"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    sols.append(solve_scaled(solver, part, _restrict_init(program, init, groups, blocks, output)))
                except (ValueError, SolverError) as exc:
                    raise type(exc)(f"{label}: {exc}") from exc
            for w in caught:  # each part's warnings, said of its output, at the caller's line
                warnings.warn(f"{label}: {w.message}", w.category, stacklevel=2)
        return _assemble(program, sols, parts, time.perf_counter() - start)

    return wrapper


#: ``info`` entries in the units of the objective (multiplied back by ``s^2``) and of the
#: weights' gradient (by ``s``); the others are relative, counts or settings.
_OBJECTIVE_VALUES = ("dual_bound", "objective_before_repair", "mu")
_GRADIENT_VALUES = ("gradient_scale",)


def in_target_units(solve, stacklevel: int = 2):
    """Decorator of a :meth:`Solver.solve`: ``program`` solved in the units of its targets
    (:meth:`ConvexProgram.target_unit` ``s``; the program as it is where ``s = 1``).

    The solver gets :meth:`ConvexProgram.in_units` ``(s)`` and the warm start divided by
    ``s`` (weights and multipliers); its solution is multiplied back: weights, multipliers,
    the constraint violation and ``info["gradient_scale"]`` by ``s``, the objective, its
    history, the lower bound and the objective values of ``info`` (``dual_bound``,
    ``objective_before_repair``, ``mu``) by ``s^2`` (exact: ``s`` is a power of two), and
    ``info["target_scale"] = s``. Its warnings are passed on with a note of the units their
    figures are in, at ``stacklevel`` from the wrapper (2: its caller's line)."""

    @functools.wraps(solve)
    def wrapper(self, program, init=None) -> Solution:
        check_program(program)
        s = program.target_unit()
        if s == 1.0:
            return solve(self, program, init)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sol = solve(self, program.in_units(s), _scaled_init(program, init, 1.0 / s))
        for w in caught:
            warnings.warn(f"{w.message} (solved with the targets and beta divided by {s:g}: the objective values "
                          f"above are the program's divided by {s * s:g})", w.category, stacklevel=stacklevel)
        factor = {**dict.fromkeys(_OBJECTIVE_VALUES, s * s), **dict.fromkeys(_GRADIENT_VALUES, s)}
        info = {key: value * factor[key] if key in factor and isinstance(value, float) else value
                for key, value in sol.info.items()}
        info["target_scale"] = s
        return dataclasses.replace(
            sol, weights=sol.weights * s, multipliers=tuple(m * s for m in sol.multipliers),
            objective=sol.objective * s * s, history=tuple(h * s * s for h in sol.history),
            lower_bound=sol.lower_bound * s * s, constraint_violation=sol.constraint_violation * s, info=info)

    return wrapper


def _scaled_init(program, init, factor: float):
    """A warm start (None, array (d, B) or :class:`Solution` of ``program``) times ``factor``:
    its weights and multipliers (a Solution keeps its ``info``)."""
    if init is None:
        return None
    W = init_weights(program, init) * factor  # (shape checked)
    if isinstance(init, Solution):
        return dataclasses.replace(init, weights=W.cpu().numpy(), multipliers=tuple(m * factor for m in init.multipliers))
    return W


def zero_solution(program, solver: str, start: float) -> Solution | None:
    """The zero network where ``beta`` is at least the program's
    :meth:`~ConvexProgram.zero_threshold`, where it is optimal (theory.md, "Duality and
    certificates": the dual point ``grad l(0)`` with zero multipliers is feasible and
    certifies ``l(0)``), with that certificate and no iteration; None elsewhere. Every
    solver returns it (beta = 1e200 had overflowed the interior point's arithmetic)."""
    threshold = program.zero_threshold()
    if not program.beta >= threshold:
        return None
    op = program.operator
    Q = op.zeros()
    multipliers = tuple(np.zeros(shape) for shape in op.constraint_shapes)
    objective = program.objective(Q)
    lower, _ = dual_lower_bound(program, Q, multipliers)
    return Solution(weights=np.zeros(op.shape), objective=objective, converged=True, status="optimal",
                    iterations=0, time=time.perf_counter() - start, history=(objective,),
                    constraint_violation=0.0, multipliers=multipliers, lower_bound=min(lower, objective),
                    solver=solver, info={"zero_threshold": threshold, "dead_groups": op.n_groups})


def _time_share(solver, start: float, parts_left: int):
    """``solver``, or with ``max_time`` set, a copy whose ``max_time`` is the time left of
    it (since ``start``) divided among the ``parts_left`` parts still to solve (at least
    1 ms: a part reached after the limit returns at once, with its warning), so the parts
    keep to the solver's limit together, up to what each solver allows itself past its
    own (the feasibility repair's allowance). ``max_iter`` holds for each part."""
    budget = getattr(solver, "max_time", None)
    if budget is None:
        return solver
    return solver.with_max_time(time_left(start + budget) / parts_left)


def outputs_apart(program) -> bool:
    """Whether the solvers solve ``program`` one output at a time: its loss is a sum over
    the outputs (:attr:`Loss.separable_outputs`) and it has several."""
    return bool(program.loss.separable_outputs) and program.operator.n_outputs > 1


def program_parts(program, apart: bool | None = None) -> list[tuple[np.ndarray, int | None]] | None:
    """The independent programs a solver runs on: ``None`` for the whole program, or a
    list of ``(groups, output)``, the live groups (increasing) of one part and, when the
    outputs are solved apart, the output they feed (``None`` otherwise).

    Outputs apart (``apart``; by default :func:`outputs_apart`): a part per output with a
    live group. Otherwise one part, the live groups, unless every group is live or none
    is (``None``)."""
    op = program.operator
    live = op.live_groups()
    if not live.any():
        return None
    if outputs_apart(program) if apart is None else apart:
        parts = [(np.flatnonzero(live & (op.output_np == o)), o) for o in range(op.n_outputs)]
        return [(groups, o) for groups, o in parts if groups.size]
    if live.all():
        return None
    return [(np.flatnonzero(live), None)]


def live_part(program, init=None):
    """``(part, part_init, groups)``: the program restricted to its live groups (all
    outputs together), ``init`` restricted to them, and the live groups (``(program,
    init, None)`` when every group is live, or none is)."""
    parts = program_parts(program, apart=False)
    if parts is None:
        return program, init, None
    groups = parts[0][0]
    part, blocks = program.restrict(groups)
    return part, _restrict_init(program, init, groups, blocks), groups


def _restrict_init(program, init, groups, blocks, output=None):
    """``init`` (None, array (d, B) or Solution of ``program``) on the kept blocks; a
    Solution assembled from output parts gives the part of ``output`` its own ``info``
    (what a solver reads of a warm start, e.g. ADMM's penalty)."""
    if init is None:
        return None
    index = torch.as_tensor(blocks, device=program.device)
    if isinstance(init, Solution):
        if output is not None:
            own = [part["info"] for part in init.info.get("output_parts", ()) if part.get("output") == output]
            if own:
                init = dataclasses.replace(init, info=own[0])
        mults = init.multipliers
        if mults and [m.shape for m in mults] == list(program.operator.constraint_shapes):
            mults = tuple(m[:, cols] for m, cols in zip(mults, program.operator.constraint_columns(groups)))
        else:
            mults = ()
        W = init_weights(program, init)[:, index]  # (shape checked)
        return dataclasses.replace(init, weights=W.cpu().numpy(), multipliers=mults)
    return init_weights(program, init)[:, index]


def _extend(program, sol: Solution, groups, elapsed: float) -> Solution:
    """The solution ``sol`` of the restricted program as one of ``program``."""
    op = program.operator
    W, mults = op.extend(*_tensors(sol), groups)
    info = dict(sol.info)
    info["dead_groups"] = op.n_groups - len(groups)
    # the extended arrays are new and this record's alone: not copied again (at n=100,000 a
    # copy of the multipliers takes gigabytes, and seconds)
    return dataclasses.replace(sol, weights=frozen(W.numpy(), copy=False),
                               multipliers=tuple(frozen(m.numpy(), copy=False) for m in mults), info=info, time=elapsed)


def _tensors(sol: Solution) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The weights and multipliers of ``sol`` as tensors sharing its (read-only) arrays,
    for :meth:`BlockOperator.extend`, which only reads them."""
    with warnings.catch_warnings():  # torch warns that it cannot mark a tensor read-only
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(sol.weights), tuple(torch.from_numpy(m) for m in sol.multipliers)


#: Keys of a part's ``info`` that add up over the parts (counts and bounds; the
#: assembly adds the constant loss of the outputs without a part to the bounds).
_SUMMED = ("zeroed_blocks",)
_BOUNDS = ("dual_bound", "objective_before_repair")


def _assemble(program, sols: list[Solution], parts, elapsed: float) -> Solution:
    """The solution of ``program`` from the solutions ``sols`` of its independent output
    parts ``parts`` (:func:`program_parts`).

    Weights and multipliers: each part's, extended by zeros, summed (the parts' blocks and
    constraint columns are disjoint). Objective: the whole program's at those weights.
    Lower bound: the sum of the parts' bounds plus the loss at zero of the outputs without
    a part (their columns do not depend on the weights). Converged when every part is;
    iterations summed (``max_iter`` holds per part); history: the whole objective with
    every part stopped after iteration ``k`` (a finished part keeps its last value);
    constraint violation: the largest. ``info``: ``output_parts`` (per part: output,
    groups, status, iterations, time, objective, lower bound and its own ``info``),
    ``dead_groups``, and of the numbers every part reports: the sum for counts and
    bounds (:data:`_SUMMED`, :data:`_BOUNDS`), the largest for the others (residuals,
    gaps); a text every part reports alike (e.g. the interior point's ``system``)."""
    op = program.operator
    W = torch.zeros(op.shape, dtype=torch.float64)
    mults = [torch.zeros(shape, dtype=torch.float64) for shape in op.constraint_shapes]
    for sol, (groups, _) in zip(sols, parts):
        Wp, mp = op.extend(*_tensors(sol), groups)
        W += Wp
        if len(mp) == len(mults):
            for total, m in zip(mults, mp):
                total += m
    solved = {output for _, output in parts}
    rest = [o for o in range(op.n_outputs) if o not in solved]
    constant = program.loss.value_numpy(np.zeros((op.n_samples, len(rest))), program.Y_np[:, rest]) if rest else 0.0
    length = max(len(sol.history) for sol in sols)
    history = [constant + sum(sol.history[min(k, len(sol.history) - 1)] if sol.history else sol.objective
                              for sol in sols) for k in range(length)]
    info = {}
    for key in set.intersection(*(set(sol.info) for sol in sols)):
        values = [sol.info[key] for sol in sols]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            info[key] = (sum(values) if key in _SUMMED else constant + sum(values) if key in _BOUNDS
                         else max(values))
        elif all(isinstance(v, str) for v in values) and len(set(values)) == 1:
            info[key] = values[0]
    info["dead_groups"] = op.n_groups - sum(len(groups) for groups, _ in parts)
    info["output_parts"] = tuple(
        dict(output=output, groups=len(groups), status=sol.status, iterations=sol.iterations, time=sol.time,
             objective=sol.objective, lower_bound=sol.lower_bound, info=dict(sol.info))
        for sol, (groups, output) in zip(sols, parts))
    converged = all(sol.converged for sol in sols)
    worst = max(sols, key=lambda sol: sol.relative_gap)
    return Solution(
        weights=frozen(W.numpy(), copy=False),  # (new arrays: not copied again)
        objective=program.objective(W),
        converged=converged,
        status=worst.status if converged else next(sol.status for sol in sols if not sol.converged),
        iterations=sum(sol.iterations for sol in sols),
        time=elapsed,
        history=history,
        constraint_violation=max(sol.constraint_violation for sol in sols),
        multipliers=tuple(frozen(m.numpy(), copy=False) for m in mults) if all(sol.multipliers for sol in sols) else (),
        lower_bound=constant + sum(sol.lower_bound for sol in sols),
        solver=sols[0].solver,
        info=info,
    )
