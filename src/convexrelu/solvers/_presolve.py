"""Presolve shared by the solvers: the groups that cannot change the model are fixed at zero.

A group whose part of the model is identically zero (:meth:`BlockOperator.live_groups`:
a three-layer pattern whose second layer is off wherever its first-layer blocks are on,
an all-zero first-layer pattern) enters the program only through ``beta ||q_g||`` and
its own cone constraints ``K_g q_g >= 0``; ``q_g = 0`` is optimal (the only optimum when
``beta > 0``) whatever the other groups do. :func:`on_live_groups` runs a solver on the
program restricted to the other groups (:meth:`ConvexProgram.restrict`) and returns the
solution of the whole program: the same objective and constraint violation, the
restricted program's lower bound (a bound on the same optimal value), weights and
multipliers extended by zeros (:meth:`BlockOperator.extend`), ``info["dead_groups"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import torch

from .base import Solution

__all__ = ["live_part", "on_live_groups"]


def on_live_groups(solve):
    """Decorator of a :meth:`Solver.solve`: the solve runs on the live groups of the program
    (every group when all are live or none is); a warm start ``init`` (array or
    :class:`Solution` of the whole program) is restricted to them."""

    @functools.wraps(solve)
    def wrapper(self, program, init=None) -> Solution:
        start = time.perf_counter()
        part, part_init, groups = live_part(program, init)
        sol = solve(self, part, part_init)
        if groups is None:
            return dataclasses.replace(sol, info={**sol.info, "dead_groups": 0})
        return _extend(program, sol, groups, time.perf_counter() - start)

    return wrapper


def live_part(program, init=None):
    """``(part, part_init, groups)``: the program restricted to its live groups, ``init``
    restricted to them, and the live groups (``(program, init, None)`` when every group
    is live, or none is)."""
    live = program.operator.live_groups()
    if live.all() or not live.any():
        return program, init, None
    groups = np.flatnonzero(live)
    part, blocks = program.restrict(groups)
    return part, _restrict_init(program, init, groups, blocks), groups


def _restrict_init(program, init, groups, blocks):
    """``init`` (None, array (d, B) or Solution of ``program``) on the kept blocks."""
    if init is None:
        return None
    index = torch.as_tensor(blocks, device=program.device)
    if isinstance(init, Solution):
        mults = init.multipliers
        if mults and [m.shape for m in mults] == list(program.operator.constraint_shapes):
            mults = tuple(m[:, cols] for m, cols in zip(mults, program.operator.constraint_columns(groups)))
        else:
            mults = ()
        W = program.as_tensor(np.array(init.weights))[:, index]  # (shape checked)
        return dataclasses.replace(init, weights=W.cpu().numpy(), multipliers=mults)
    Q = init.detach() if isinstance(init, torch.Tensor) else np.array(init, dtype=np.float64)
    return program.as_tensor(Q)[:, index]  # indexing copies: the caller's init is not shared


def _extend(program, sol: Solution, groups, elapsed: float) -> Solution:
    """The solution ``sol`` of the restricted program as one of ``program``."""
    op = program.operator
    W, mults = op.extend(torch.tensor(sol.weights), tuple(torch.tensor(m) for m in sol.multipliers), groups)
    info = dict(sol.info)
    info["dead_groups"] = op.n_groups - len(groups)
    return dataclasses.replace(sol, weights=W.numpy(), multipliers=tuple(m.numpy() for m in mults), info=info,
                               time=elapsed)
