"""Optimality certificates of a solved program (theory.md, "Duality and certificates").

The training problem of every architecture is ``min_Z l(Z, Y) + beta gauge_G(Z)``, ``G``
the atoms (sub-network outputs of unit size, :mod:`convexrelu.search`). Weak duality:
for any ``V`` (n, C) with ``sup_g ||V^T g|| <= beta``, ``-l*(V)`` is a lower bound on
the objective of *every* network of the architecture. From the dual point
``V = grad l(Z)`` of the returned network and ``M >= sup_g ||V^T g||``, every
``t`` in ``[0, min(1, beta / M)]`` makes ``t V`` feasible; the best such ``t`` gives

    LB = max_t  -l*(t V)          (squared loss: -0.5 t^2 ||V||^2 - t <V, Y>).

:func:`certificate` reports four numbers:

- ``upper``: the non-convex objective (P2/P3) of the recovered network;
- ``lower_sampled``: a lower bound on the optimum of the program over its own patterns
  (the solver's dual point with the cone multipliers, those of the worst groups replaced
  by their best, :func:`convexrelu.duality.dual_lower_bound`,
  or the bound the solve certified for this program where the caller gives it, the larger);
  it bounds the best network *with those patterns*, not every network;
- ``lower_global``: the bound above with ``M`` from an exactly enumerated pattern set
  (:func:`convexrelu.search.exact_atom_max`): proven for every network of the
  architecture (any width), or None where the patterns cannot be enumerated;
- ``lower_search``: the bound with ``M`` the largest value the atom search found: what
  the bound would be if the search were exact; *not proven*.

With C > 1 outputs ``M`` combines the per-output maxima as ``||(M_1, ..., M_C)||_2``, an
upper bound on ``sup_g ||V^T g||_2``: the bound then holds for networks whose hidden
units feed several outputs too (``||w3||_2`` penalised), the trainer's architecture.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validation import relative_gap
from .duality import _best_scale, dual_lower_bound
from .search import architecture_of, exact_atom_max, program_hidden, search_program
from .strategies import _design_network, network_objective

__all__ = ["Certificate", "certificate", "dual_bound", "enumerable", "has_constant_column"]

logger = logging.getLogger(__name__)

#: Budget of ``lower_sampled``'s tightening by the best multipliers of the worst groups
#: (:func:`convexrelu.duality.dual_lower_bound`, ``project_entries``: entries of the
#: groups' constraint matrices, in float64).
CERTIFICATE_PROJECTION_ENTRIES = 2e7


@dataclass(frozen=True)
class Certificate:
    """Upper and lower bounds on the training objective (theory.md, "Duality and certificates").

    Attributes
    ----------
    upper : float
        Objective (P2/P3) of the returned (recovered) network.
    lower_sampled : float
        Proven lower bound on the program's optimum over its own patterns.
    lower_global : float or None
        Proven lower bound over all networks of the architecture (exact enumeration),
        or None.
    lower_search : float
        The lower bound that would hold if the atom search were exact (not proven).
    max_violation : float
        Largest ``|v_k^T g| / beta`` the atom search found at the returned network
        (<= 1 up to tolerance: no improving pattern found).
    proven : bool
        Whether ``lower_global`` is available (a proven bound over all networks).
    max_violation_exact : float or None
        ``max_g |v_k^T g| / beta`` over all atoms (an upper bound), where enumerated.
    n_patterns : int
        Patterns of the program.
    n_patterns_exact : int or None
        Patterns enumerated.
    beta : float
    architecture : str
    loss : str
    time : float
        Wall time of the certificate, seconds.
    """

    upper: float
    lower_sampled: float
    lower_global: float | None
    lower_search: float
    max_violation: float
    proven: bool
    max_violation_exact: float | None = None
    n_patterns: int = 0
    n_patterns_exact: int | None = None
    beta: float = 0.0
    architecture: str = ""
    loss: str = ""
    time: float = 0.0
    info: dict = field(default_factory=dict, compare=False)

    @property
    def lower(self) -> float:
        """The best proven lower bound over all networks (``-inf`` when none)."""
        return self.lower_global if self.lower_global is not None else -math.inf

    @property
    def gap(self) -> float | None:
        """``upper - lower_global`` (None when not proven)."""
        return None if self.lower_global is None else self.upper - self.lower_global

    @property
    def relative_gap(self) -> float | None:
        return None if self.gap is None else relative_gap(self.upper, self.lower_global)

    def __str__(self) -> str:
        def num(x):
            return "n/a" if x is None else f"{x:.8g}"

        def rel(x):
            if x is None or not math.isfinite(x):
                return ""
            return f"{relative_gap(self.upper, x):.2e}"

        rows = [
            ("upper: objective of the returned network", num(self.upper), "", "attained"),
            (f"lower: optimum over the program's {self.n_patterns} patterns", num(self.lower_sampled),
             rel(self.lower_sampled), "proven (these patterns only)"),
            (
                "lower: all networks (exact enumeration"
                + (f", {self.n_patterns_exact} patterns)" if self.n_patterns_exact is not None else ")"),
                num(self.lower_global), rel(self.lower_global),
                "PROVEN" if self.proven else "not available",
            ),
            ("lower: all networks if the atom search were exact", num(self.lower_search), rel(self.lower_search),
             "NOT PROVEN"),
        ]
        w = max(len(r[0]) for r in rows)
        lines = [
            f"Certificate ({self.architecture.replace('_', '-')}, {self.loss} loss, beta={self.beta:g})",
            f"  {'bound'.ljust(w)}  {'value':>14}  {'rel. gap':>9}  status",
        ]
        lines += [f"  {a.ljust(w)}  {b:>14}  {c:>9}  {d}" for a, b, c, d in rows]
        lines.append(f"  largest |v^T g| / beta found by atom search: {self.max_violation:.6g}"
                     + ("  (NOT PROVEN: local search)" if not self.proven else ""))
        if self.max_violation_exact is not None:
            lines.append(f"  largest |v^T g| / beta over all atoms (exact): {self.max_violation_exact:.6g}")
        return "\n".join(lines)


def dual_bound(program, V: np.ndarray, atom_max: float) -> float:
    """``max_{t in [0, min(1, beta / atom_max)]} -l*(t V)``: a lower bound on every
    network's objective when ``atom_max >= sup_g ||V^T g||`` (module docstring)."""
    beta = program.beta
    if atom_max <= beta:
        a = 1.0
    elif beta == 0:
        a = 0.0
    else:
        a = beta / atom_max
    Vt = torch.as_tensor(V, dtype=torch.float64)
    Y = torch.as_tensor(program.Y_np, dtype=torch.float64)
    _, value = _best_scale(lambda t: -float(program.loss.conjugate(t * Vt, Y)), a)
    return value


def enumerable(program, *, max_two_layer: int = 2000, max_size: int = 200_000, max_three_n: int = 8) -> bool:
    """Whether :func:`certificate` enumerates the patterns by default: two layers when
    the count bound ``P1`` of theory.md is at most ``max_two_layer`` and ``n P1`` at
    most ``max_size``; three layers for rank <= 2 and ``n <= max_three_n``."""
    from .patterns import two_layer_pattern_bound

    X = program.X_design
    n = X.shape[0]
    r = int(np.linalg.matrix_rank(X))
    if architecture_of(program) == "three_layer":
        return r <= 2 and n <= max_three_n
    P1 = two_layer_pattern_bound(n, r)
    return P1 <= max_two_layer and n * P1 <= max_size


def _exact_program(program, exact, hidden):
    """The program over every pattern, or None (``exact``: None auto, bool, or a pattern set)."""
    if exact is False:
        return None
    if exact is not None and exact is not True:
        return program.with_patterns(exact)
    if exact is None and not enumerable(program):
        return None
    try:
        from .patterns import enumerate_three_layer, enumerate_two_layer
    except ImportError:  # pragma: no cover - enumeration not installed
        return None
    X = program.X_design
    if architecture_of(program) == "three_layer":
        return program.with_patterns(enumerate_three_layer(X, hidden))
    # a gate on a face of the arrangement (u = 0: every unit active) gives a pattern that
    # no region gives where the rows do not lie in an open half-space; with a constant
    # column c every face pattern is a region's (that of u + eps c), and ReLU units lose
    # nothing to faces (:mod:`convexrelu.patterns.exact`)
    faces = architecture_of(program) == "gated" and not has_constant_column(X)
    return program.with_patterns(enumerate_two_layer(X, include_faces=faces))


def has_constant_column(X: np.ndarray) -> bool:
    """Whether a column of ``X`` (n, d) is one non-zero value on every row (an intercept)."""
    X = np.asarray(X)
    return bool(X.shape[0] and np.any(np.all(X == X[0], axis=0) & (X[0] != 0)))


def _combine(per_output: np.ndarray) -> float:
    """``||(M_1, ..., M_C)||_2`` (C > 1) or ``M_1``: an upper bound on ``sup_g ||V^T g||``."""
    return float(np.linalg.norm(per_output))


def certificate(
    program,
    solution,
    *,
    exact=None,
    search_starts: int = 128,
    search_iter: int = 150,
    random_state=None,
    lower_bound: float | None = None,
) -> Certificate:
    """Certificate of ``solution`` (module docstring; theory.md, "Duality and certificates").

    Parameters
    ----------
    program : TwoLayerReLUProgram, GatedReLUProgram or ThreeLayerReLUProgram
    solution : Solution or array (d, B)
        Its ``multipliers`` (if any) tighten ``lower_sampled``.
    exact : None, bool or pattern set
        None: enumerate every pattern when :func:`enumerable` says it is cheap; True:
        always; False: never; a ``TwoLayerPatterns``/``ThreeLayerPatterns`` known to
        contain every pattern: use it.
    search_starts, search_iter : int
        Atom search (:func:`convexrelu.search.search_program`), warm-started from the
        returned network.
    random_state : None, int or numpy Generator
    lower_bound : float or None
        A lower bound already certified for this same ``program``, e.g. the
        ``Solution.lower_bound`` of the solve that returned ``solution``: the cone
        solvers take theirs at their iterates, before the feasibility repair moves the
        returned point, and it is often tighter than the one recomputed here
        (:class:`~convexrelu.solvers.AugmentedLagrangian`). ``lower_sampled`` is the
        larger of the two. Never taken from ``solution`` itself: a Solution of another
        program (another beta, fewer patterns: an embedded warm start) would carry a
        bound that does not hold here.

    Returns
    -------
    Certificate
    """
    start = time.perf_counter()
    weights = np.asarray(getattr(solution, "weights", solution), dtype=np.float64)
    multipliers = tuple(getattr(solution, "multipliers", ()) or ())
    network = program.recover(weights)
    upper = network_objective(program, network)
    Z = _design_network(network).predict(program.X_design)
    V = program.loss.grad(torch.as_tensor(Z, dtype=torch.float64),
                          torch.as_tensor(program.Y_np, dtype=torch.float64)).numpy()
    # recomputed from the weights and multipliers given (and the caller's ``lower_bound``
    # for this program), never taken from ``solution.lower_bound``: see the docstring
    lower_sampled, _ = dual_lower_bound(program, weights, multipliers, project_entries=CERTIFICATE_PROJECTION_ENTRIES)
    if lower_bound is not None and math.isfinite(lower_bound):
        lower_sampled = max(lower_sampled, float(lower_bound))
    arch = architecture_of(program)
    hidden = program_hidden(program) if arch == "three_layer" else None
    found = search_program(program, weights, V=V, n_starts=search_starts, n_iter=search_iter,
                           hidden=hidden, random_state=random_state, max_candidates=1)
    beta = program.beta
    ratio = found.best_value / beta if beta > 0 else (math.inf if found.best_value > 0 else 0.0)
    lower_search = dual_bound(program, V, _combine(found.best_per_output))
    full = _exact_program(program, exact, hidden)
    lower_global = ratio_exact = None
    n_exact = None
    if full is not None:
        ex = exact_atom_max(full, V)
        lower_global = dual_bound(program, V, _combine(ex.per_output))
        if len(program.patterns.union(full.patterns)) == len(program.patterns):
            # the program holds every pattern: its optimum is the global one (theory.md,
            # "Three-layer parallel networks"), so its own bound is global too, and often
            # far tighter than the one from the residual (targets far from zero: 3.7355
            # against 3.9166826 where the network is at 3.9166827)
            lower_global = max(lower_global, float(lower_sampled))
        ratio_exact = ex.best / beta if beta > 0 else (math.inf if ex.best > 0 else 0.0)
        n_exact = len(full.patterns)
    cert = Certificate(
        upper=upper, lower_sampled=float(lower_sampled), lower_global=lower_global, lower_search=float(lower_search),
        max_violation=float(ratio), proven=lower_global is not None, max_violation_exact=ratio_exact,
        n_patterns=len(program.patterns), n_patterns_exact=n_exact, beta=beta, architecture=arch,
        loss=program.loss.name, time=time.perf_counter() - start,
    )
    logger.info("certificate: upper %.8g, lower (sampled) %.8g, lower (global) %s, lower (search) %.8g, %.2fs",
                upper, cert.lower_sampled, "n/a" if lower_global is None else f"{lower_global:.8g}",
                cert.lower_search, cert.time)
    return cert
