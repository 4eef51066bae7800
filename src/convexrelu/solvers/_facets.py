"""The cone rows the interior point keeps: likely facets of each block's cone.

The cone constraints ``K Q >= 0`` (theory.md, "Two-layer networks" and "Three-layer
parallel networks") have a row per sample, block and cone. Most rows are *redundant*,
implied by the others: with n = 500 samples in d = 11 dimensions a two-layer pattern's
cone ``{u : (2 D - I) X u >= 0}`` has 35 to 52 facets among its 500 rows. Dropping the
redundant rows leaves the program unchanged (its feasible set, optimum and certificate:
their multipliers are zero), not the interior point's barrier, whose terms for them bend
its central path. On the benchmark programs of ``benchmarks/bench_solvers.py`` (n = 500,
100 patterns) the interior point took 29 iterations with every row and 18 with the exact
facets (two-layer ReLU), 57 and 41 with the three-layer program's first-layer facets.

Deciding redundancy exactly takes a linear program per row. :func:`leverage_selection`
ranks the rows of each group's cone instead by their leverage at its analytic centre (the
cone cut by a ball, so that it is bounded; :func:`analytic_center`),

    leverage_r = w_r k_r^T H_g^{-1} k_r,   H_g = K_g^T diag(w) K_g,   w_r = 1 / (K_g u_g)_r^2,

which sum to the rank of ``K_g``, and keeps the rows whose leverage is at least
``fraction`` times the mean of the group's rows. A facet bounds the centre's Dikin ellipsoid
in its direction, so it has a large leverage; a row far behind the facets has almost none.
On the two-layer patterns above every facet (by linear programs) was among the top 57
rows of 500 by leverage, the least leverage of a facet 1.1 times the mean, the median row
0.14 times it. :func:`likely_facets` applies this to the cones that hold block by block
(:meth:`BlockOperator.block_cones`: every block's first-layer cone in R^d; a row redundant
among its block's rows is redundant in the program) and keeps every row of a cone that
couples the blocks of a group (a three-layer program's second layer).

The selection is not a proof: the interior point checks every row at its answer, and if a
dropped row is violated it adds the violated rows and iterates again
(:class:`~.ipm.InteriorPoint`, ``row_fraction``). Nothing here knows the architecture: the
centres come from the operator's constraint values, adjoint and
:meth:`BlockOperator.constraint_gram`, and the leverages are the adjoint of
``constraint_gram`` (``<K^T diag(w) K, M> = sum_r w_r k_r^T M k_r``), taken by automatic
differentiation.
"""

from __future__ import annotations

import torch

__all__ = ["analytic_center", "leverage_selection", "likely_facets", "row_leverages"]


def analytic_center(op, support, max_iter: int = 60, tol: float = 0.1, shrink: float = 10.0):
    """Analytic centre of every group's cone cut by the unit ball,

        u_g = argmin_u  -sum_r log (K_g u)_r - N_g log (1 - ||u||^2)

    over the rows in ``support`` (bool tensors, shapes ``op.constraint_shapes``; ``N_g`` the
    group's number of rows, so that the ball balances the rows and the centre keeps away
    from the sphere), by Newton steps from a strictly feasible point, found first (phase
    one) by the barrier method (Boyd and Vandenberghe, *Convex Optimization*, sec. 11.3-11.4)
    on

        min_{u, t}  t   s.t.   K u + t >= 0,   ||u|| < 1

    from ``u = 0``, ``t = 1``: Newton steps on ``t / mu - sum_r log (K u + t)_r - N_g log
    (1 - ||u||^2)``, ``mu`` starting at ``1 / N_g`` and divided by ``shrink`` whenever the
    Newton decrement is below one, until ``t < 0`` (then ``K u > 0``). Every step goes 95 %
    of the way to the boundary at most and is halved until the objective decreases enough
    (Armijo). The groups are independent programs: each has its own ``mu`` and step and
    stops on its own, the centre when its Newton decrement ``lambda^2 <= tol`` (a loose
    centre ranks the rows as well as a tight one).

    Returns
    -------
    (w, centred) : ``w = 1 / (K u)^2`` at the centres (tuple like ``support``, zero outside
        it), and bool tensor (G,): the groups centred (a cone with no interior never gets
        ``t < 0``, nor does a group stopped by ``max_iter``; their ``w`` mean nothing).
    """
    kw = dict(dtype=op.dtype, device=op.device)
    mask = tuple(m.to(op.dtype) for m in support)
    cols = _column_groups(op)
    gidx = op.padded_groups()
    G, md = gidx.shape[0], gidx.shape[1] * op.n_features
    eye = torch.eye(md, **kw)
    U = torch.zeros((G, md), **kw)
    t = torch.ones(G, **kw)
    zero = torch.zeros(G, **kw)
    phase_one = torch.ones(G, dtype=torch.bool, device=op.device)  # looking for K u > 0
    running = torch.ones(G, dtype=torch.bool, device=op.device)
    centred = torch.zeros(G, dtype=torch.bool, device=op.device)
    rows = torch.clamp(_group_total(mask, cols, G), min=1.0)  # the ball's weight
    inv_mu = rows.clone()
    w = slack = None
    for it in range(max_iter + 1):
        if slack is None:
            slack = _slacks(op, U, torch.where(phase_one, t, zero), mask, cols)
        inv = tuple(m / sl for sl, m in zip(slack, mask))
        w = tuple(i * i for i in inv)
        r = 1.0 - torch.sum(U * U, 1)
        H = op.constraint_gram(w) + (2.0 * rows / r)[:, None, None] * eye + (4.0 * rows / (r * r))[:, None, None] * (
            U[:, :, None] * U[:, None, :])
        gu = (2.0 * rows / r)[:, None] * U - op.to_groups(op.adjoint(None, inv))
        L, info = torch.linalg.cholesky_ex(H)
        running &= (info == 0) & torch.isfinite(gu).all(1)
        L = torch.where(running[:, None, None], L, eye)
        du = -torch.cholesky_solve(torch.where(running[:, None], gu, zero[:, None])[:, :, None], L)[:, :, 0]
        dt = zero
        decrement = -torch.sum(gu * du, 1)
        if bool(phase_one.any()):  # the bordered system in (u, t): t couples to every row
            a = op.to_groups(op.adjoint(None, w))  # K^T w
            Hia = torch.cholesky_solve(a[:, :, None], L)[:, :, 0]
            schur = torch.clamp(_group_total(w, cols, G) - torch.sum(a * Hia, 1), min=torch.finfo(op.dtype).tiny)
            gt = inv_mu - _group_total(inv, cols, G)
            dt = torch.where(phase_one & running, (torch.sum(Hia * gu, 1) - gt) / schur, zero)
            du = torch.where(phase_one[:, None], du - Hia * dt[:, None], du)
            decrement = torch.where(phase_one, -torch.sum(gu * du, 1) - gt * dt, decrement)
        centred |= running & ~phase_one & (decrement <= tol)
        running &= ~centred
        if not bool(running.any()) or it == max_iter:
            break
        # step: 95 % of the way to the boundary at most, halved until the objective decreases
        # enough (the slacks are affine along the direction: one product for every trial)
        ds = tuple((c + dt[col][None, :]) * m for c, m, col in zip(op.constraints(op.from_groups(du)), mask, cols))
        step = torch.clamp(0.95 * torch.minimum(_group_max_step(slack, ds, cols, G), _ball_max_step(U, du)),
                           max=1.0)
        step = torch.where(running, step, zero)
        f0 = _objective(slack, U, t * inv_mu * phase_one, rows, cols, G)
        for _half in range(40):
            fn = _objective(tuple(sl + step[col][None, :] * d for sl, d, col in zip(slack, ds, cols)),
                            U + step[:, None] * du, (t + step * dt) * inv_mu * phase_one, rows, cols, G)
            bad = ~(fn <= f0 - 1e-4 * step * decrement) & (step > 0)
            if not bool(bad.any()):
                break
            step = torch.where(bad, 0.5 * step, step)
        step = torch.where(bad, zero, step)
        U = U + step[:, None] * du
        t = t + step * dt
        slack = tuple(sl + step[col][None, :] * d for sl, d, col in zip(slack, ds, cols))
        # phase one: near the path of mu (decrement below one) mu falls
        inv_mu = torch.where(phase_one & (decrement < 1.0), shrink * inv_mu, inv_mu)
        if bool((phase_one & (t < 0)).any()):
            phase_one &= ~(t < 0)
            slack = None  # (the slacks of the groups leaving phase one lose their t)
    return w, centred


def _ball_max_step(U: torch.Tensor, dU: torch.Tensor) -> torch.Tensor:
    """Per group, the ``a`` with ``||u_g + a du_g|| = 1`` (``||u_g|| < 1``; inf where ``du_g = 0``)."""
    r = 1.0 - torch.sum(U * U, 1)
    a2 = torch.sum(dU * dU, 1)
    b = torch.sum(U * dU, 1)
    root = (-b + torch.sqrt(torch.clamp(b * b + a2 * r, min=0.0))) / torch.clamp(a2, min=torch.finfo(U.dtype).tiny)
    return torch.where(a2 > 0, root, torch.inf)


def _objective(slack, U: torch.Tensor, linear: torch.Tensor, ball: torch.Tensor, cols, G: int) -> torch.Tensor:
    """Per group ``linear - sum_r log slack_r - ball log (1 - ||u||^2)`` (inf outside the
    domain; rows outside the support have slack one)."""
    r = 1.0 - torch.sum(U * U, 1)
    val = linear + torch.where(r > 0, -ball * torch.log(torch.clamp(r, min=1e-300)), torch.inf)
    for sl, col in zip(slack, cols):
        logs = torch.where(sl > 0, -torch.log(torch.clamp(sl, min=1e-300)), torch.inf)
        val = val.index_add(0, col, torch.sum(logs, 0))
    return val


def _group_max_step(values, directions, cols, G: int) -> torch.Tensor:
    """Per group, the largest ``a`` (possibly above 1) with ``v + a dv >= 0`` on its rows of
    every array (``v > 0``)."""
    out = torch.full((G,), torch.inf, dtype=values[0].dtype, device=values[0].device)
    for v, dv, col in zip(values, directions, cols):
        ratio = torch.where(dv < 0, -v / torch.where(dv < 0, dv, -1.0), torch.inf)
        out = out.scatter_reduce(0, col, torch.amin(ratio, 0), "amin")
    return out


def _slacks(op, U: torch.Tensor, t: torch.Tensor, mask, cols) -> tuple:
    """``K u + t`` on the supported rows, one elsewhere."""
    return tuple(torch.where(m > 0, c + t[col][None, :], torch.ones_like(c))
                 for c, m, col in zip(op.constraints(op.from_groups(U)), mask, cols))


def _group_total(values, cols, G: int) -> torch.Tensor:
    """Per group, the sum of the entries of ``values`` in its columns."""
    out = torch.zeros(G, dtype=values[0].dtype, device=values[0].device)
    for v, col in zip(values, cols):
        out = out.index_add(0, col, torch.sum(v, 0))
    return out


def row_leverages(op, weights, M: torch.Tensor):
    """``w_r k_r^T M_g k_r`` for every row ``r`` of ``K`` (group ``g``): the adjoint of
    :meth:`BlockOperator.constraint_gram` applied to ``M`` (shape (G, m d, m d)), times the
    weights. Tensors with shapes ``op.constraint_shapes``."""
    probe = tuple(torch.ones_like(w, requires_grad=True) for w in weights)
    with torch.enable_grad():
        total = torch.sum(op.constraint_gram(probe) * M)
        grads = torch.autograd.grad(total, probe)
    return tuple(w * g for w, g in zip(weights, grads))


def likely_facets(op, support, fraction: float = 0.5):
    """The rows of ``K`` (within ``support``) the interior point keeps: bool tensors with
    shapes ``op.constraint_shapes``.

    The rows of the cones that hold block by block (:meth:`BlockOperator.block_cones`: a
    cone per distinct first-layer pattern, in R^d) are kept when their leverage at the
    analytic centre of their block's cone is at least ``fraction`` times the mean
    (:func:`leverage_selection`); a row dropped there is likely redundant among its block's
    rows, hence in the program. The rows of a cone that couples the blocks of a group (the
    second cone of a three-layer program) are all kept."""
    cones = op.block_cones()
    if cones is None:
        return tuple(support)
    sub, columns = cones
    columns = torch.as_tensor(columns, device=op.device)
    kept = leverage_selection(sub, sub.constraint_support(), fraction)[0]
    return (support[0] & kept[:, columns],) + tuple(support[1:])


def leverage_selection(op, support, fraction: float = 0.5):
    """The rows (within ``support``) whose leverage at the analytic centre of their
    group's cone is at least ``fraction`` times the group's mean (module docstring): bool
    tensors with shapes ``op.constraint_shapes``. A group whose centre was not found
    (:func:`analytic_center`) keeps all its rows."""
    cols = _column_groups(op)
    weights, centred = analytic_center(op, support)
    weights = tuple(torch.where(centred[col][None, :], wi, torch.zeros_like(wi)) for wi, col in zip(weights, cols))
    H = op.constraint_gram(weights)
    eye = torch.eye(H.shape[1], dtype=H.dtype, device=H.device)
    H = H + 1e-12 * torch.clamp(H.diagonal(dim1=1, dim2=2).amax(1), min=1.0)[:, None, None] * eye
    lev = row_leverages(op, weights, torch.cholesky_inverse(torch.linalg.cholesky(H)))
    G = op.n_groups
    mean = _group_total(lev, cols, G) / torch.clamp(_group_total(tuple(m.to(op.dtype) for m in support), cols, G),
                                                    min=1.0)
    return tuple(sup & ((lv >= fraction * mean[col][None, :]) | ~centred[col][None, :])
                 for lv, sup, col in zip(lev, support, cols))


def _column_groups(op) -> tuple[torch.Tensor, ...]:
    """The group of every column of every constraint array (:meth:`BlockOperator.constraint_groups`)."""
    return tuple(torch.as_tensor(g, device=op.device) for g in op.constraint_groups())
