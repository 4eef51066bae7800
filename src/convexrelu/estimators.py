"""scikit-learn estimators on top of the convex programs.

:class:`ConvexReLURegressor` and :class:`ConvexReLUClassifier` build a convex program
of :mod:`convexrelu.programs` from the data and a set of activation patterns, solve it
with a solver of :mod:`convexrelu.solvers` and keep the recovered non-convex network
(``network_``) as the model. They contain no mathematics of their own: every formula
lives in the programs, losses and networks (theory.md, "Two-layer networks" and
"Three-layer parallel networks").

Scale of ``beta``: the loss is *summed* over samples (theory.md, "Notation"), so the
objective is ``l(f(X), y) + beta * penalty`` exactly as in theory.md; a ``beta`` that
suits n samples is about n / n' times the one for n' samples.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import time
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from ._progress import log_to_stream
from ._validation import (
    add_intercept, check_beta, check_bool, check_count, check_device, check_dtype, check_max_time, check_number,
    check_positive_int, make_rng, plain, relative_gap,
)
from .losses import LogisticLoss, SoftmaxLoss
from .patterns import sample_three_layer, sample_two_layer
from .programs import GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from .solvers import SOLVERS, Solver, get_solver
from .solvers.base import time_left

__all__ = ["ConvexReLURegressor", "ConvexReLUClassifier", "PATTERN_STRATEGIES", "resolve_solver_name"]

logger = logging.getLogger(__name__)

#: Values of the ``patterns`` parameter.
PATTERN_STRATEGIES = ("sample", "exact", "seeded", "pursuit", "seeded+pursuit")
#: The strategies run by :func:`convexrelu.strategies.run_strategy`.
_STRATEGY_NAMES = ("seeded", "pursuit", "seeded+pursuit")
#: ``patterns="exact"`` with ``depth=3`` stops with an error beyond this many patterns
#: (the enumeration grows like ``n^(hidden rank)``: theory.md, "How many patterns").
EXACT_MAX_THREE_LAYER_PATTERNS = 5000
#: ``patterns="exact"`` with ``depth=2`` is refused, before enumerating, where the count of
#: regions for data of that size and rank (:func:`~convexrelu.patterns.two_layer_pattern_bound`,
#: which generic data attain) exceeds this (40 samples in 4 dimensions: 184,341 patterns,
#: 50 s of enumeration before a solve that had no time left; 100 samples in 2: 9,901).
EXACT_MAX_TWO_LAYER_PATTERNS = 20000


# ---------------------------------------------------------------------- helpers
def resolve_solver_name(name: str) -> str:
    """Map the solver name ``"auto"`` to a registered solver.

    Until :mod:`convexrelu.solvers.auto` registers ``"auto"`` in ``SOLVERS``, ``"auto"``
    means ``"cvxpy"``. Any other name is returned unchanged.
    """
    if isinstance(name, str) and name.lower() == "auto" and "auto" not in SOLVERS:
        return "cvxpy"
    return name


def _solver_hyperparameters(name: str, max_iter: int | None, tol: float | None, verbose: int) -> dict:
    """Keyword arguments for ``get_solver(name, ...)`` from the estimator's settings.

    ``max_iter``, ``tol`` and ``verbose`` (the solver's own output: ``verbose >= 2``) are
    passed to solvers whose constructor takes them (every solver of ``SOLVERS``;
    :class:`~convexrelu.solvers.CVXPYSolver` translates them into its backend's options,
    and a CVXPY backend name such as "clarabel" gives that solver). ``None`` keeps the
    solver's own default.
    """
    import inspect

    cls = SOLVERS.get(name.lower(), SOLVERS["cvxpy"])  # a CVXPY backend name: CVXPYSolver
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover
        parameters = {}
    takes_any = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in parameters.values())
    hp: dict[str, Any] = {}
    for key, value in (("max_iter", None if max_iter is None else int(max_iter)),
                       ("tol", None if tol is None else float(tol)),
                       ("verbose", True if verbose >= 2 else None)):
        if value is not None and (key in parameters or takes_any):
            hp[key] = value
    return hp


def _name_argument(name: str, exc: Exception) -> str:
    """Prefix an input-validation message with the argument it is about."""
    msg = str(exc)
    if "could not convert" in msg or "argument must be" in msg or "not compatible with arrays of bytes/strings" in msg:
        return f"{name}: expected numeric values, got non-numeric entries ({msg})"
    if re.search(rf"\b{re.escape(name)}\b", msg):
        return msg
    return f"{name}: {msg}"


def _finite_or_none(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _jsonable_info(info) -> dict:
    """Scalars of a solver's ``info`` mapping (for ``solver_info_`` and model files)."""
    out = {}
    for key, value in dict(info).items():
        if isinstance(value, (bool, np.bool_)):
            out[str(key)] = bool(value)
        elif isinstance(value, (numbers.Integral,)):
            out[str(key)] = int(value)
        elif isinstance(value, numbers.Real):
            out[str(key)] = _finite_or_none(value)
        elif isinstance(value, str):
            out[str(key)] = value
    return out


# ---------------------------------------------------------------------- base
class _ConvexReLUBase(BaseEstimator):
    """Shared parameters, validation, program construction and solve."""

    _allowed_losses: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        depth: int = 3,
        hidden: int = 2,
        beta: float = 1.0,
        n_patterns: int = 50,
        patterns: str = "seeded",
        gated: bool = False,
        loss: str = "squared",
        solver: str = "auto",
        fit_intercept: bool = True,
        max_iter: int | None = None,
        tol: float | None = None,
        max_time: float | None = None,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        device: str = "cpu",
        dtype: str = "float64",
    ):
        self.depth = depth
        self.hidden = hidden
        self.beta = beta
        self.n_patterns = n_patterns
        self.patterns = patterns
        self.gated = gated
        self.loss = loss
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.max_time = max_time
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------ validation
    def _check_params(self) -> dict:
        """Validate every hyperparameter; return the cleaned values."""
        p: dict[str, Any] = {}
        if isinstance(self.depth, bool) or not isinstance(self.depth, numbers.Integral) or self.depth not in (2, 3):
            raise ValueError(f"depth: expected 2 or 3, got {self.depth!r}")
        p["depth"] = int(self.depth)
        p["hidden"] = check_positive_int(self.hidden, "hidden")
        p["beta"] = check_beta(self.beta)
        p["n_patterns"] = check_positive_int(self.n_patterns, "n_patterns")
        if not isinstance(self.patterns, str) or self.patterns not in PATTERN_STRATEGIES:
            raise ValueError(f"patterns: expected one of {list(PATTERN_STRATEGIES)}, got {self.patterns!r}")
        p["patterns"] = self.patterns
        p["gated"] = check_bool(self.gated, "gated")
        if p["gated"] and p["depth"] != 2:
            raise ValueError(f"gated: only two-layer networks can be gated (depth=2), got depth={p['depth']}")
        if not isinstance(self.loss, str) or self.loss not in self._allowed_losses:
            raise ValueError(f"loss: expected one of {list(self._allowed_losses)}, got {self.loss!r}")
        p["loss"] = self.loss
        if not isinstance(self.solver, (str, Solver)):
            raise TypeError(f"solver: expected 'auto', a solver name or a Solver instance, got {self.solver!r}")
        p["fit_intercept"] = check_bool(self.fit_intercept, "fit_intercept")
        p["max_iter"] = check_count(self.max_iter, "max_iter", none_ok=True)  # (as every solver takes it)
        p["tol"] = check_number(self.tol, "tol", high=1.0, none_ok=True)
        p["max_time"] = check_max_time(self.max_time)
        if isinstance(self.verbose, bool):
            p["verbose"] = int(self.verbose)
        elif isinstance(self.verbose, numbers.Integral) and self.verbose >= 0:
            p["verbose"] = int(self.verbose)
        else:
            raise ValueError(f"verbose: expected a non-negative integer or bool, got {self.verbose!r}")
        p["dtype"] = check_dtype(self.dtype)
        p["device"] = check_device(self.device)
        make_rng(self.random_state, generator_ok=False)  # (checked; drawn from in _fit_encoded)
        p["solver"] = self._make_solver(p)
        if p["max_time"] is not None:
            p["solver"].with_max_time(p["max_time"])  # a solver without a time limit: a ValueError now
        return p

    def _make_solver(self, p: dict) -> Solver:
        if isinstance(self.solver, Solver):
            return self.solver
        name = resolve_solver_name(self.solver)
        hp = _solver_hyperparameters(name, p["max_iter"], p["tol"], p["verbose"])
        return get_solver(name, **hp)

    def _validate_X(self, X, *, reset: bool) -> np.ndarray:
        try:
            return validate_data(self, X, reset=reset, dtype=np.float64, ensure_min_samples=1, ensure_min_features=1)
        except TypeError as exc:
            raise TypeError(_name_argument("X", exc)) from exc
        except ValueError as exc:
            raise ValueError(_name_argument("X", exc)) from exc

    def _reset_fitted(self) -> None:
        """Forget a previous fit (its fitted attributes and private state), so that a
        fit that fails leaves an unfitted estimator, not a mix of old and new."""
        for key in [k for k in vars(self) if (k.endswith("_") and not k.startswith("__"))
                    or k in ("_certificate", "_certificate_state", "_single_output")]:
            delattr(self, key)

    def _fit_guarded(self, body, X, y):
        """``body(X, y, params)`` after the parameters are checked and any previous fit
        forgotten; if it raises, the estimator is left unfitted. The warnings it gives
        (a solver's ConvergenceWarning, ...) are given again at the line that called
        ``fit``."""
        p = self._check_params()
        self._reset_fitted()
        caught: list = []
        try:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    body(X, y, p)
            finally:  # the solvers' warnings, said at the user's call of fit (not inside the library)
                for w in caught:
                    warnings.warn(w.message, w.category, stacklevel=3)
        except BaseException:  # (a warning the user's filters make an error included)
            self._reset_fitted()
            raise
        return self

    def _check_y_present(self, y) -> None:
        if y is None:
            raise ValueError(f"y: {type(self).__name__} requires y to be passed, but the target y is None")

    # ------------------------------------------------------------ fitting
    def _fit_encoded(self, X: np.ndarray, Y: np.ndarray, p: dict) -> None:
        """Build the program for encoded targets ``Y``, solve it, set fitted attributes."""
        start = time.perf_counter()
        rng = make_rng(self.random_state, generator_ok=False)
        X = np.require(X, dtype=np.float64, requirements=["C", "W"])  # torch wants writable arrays
        Y = np.require(Y, dtype=np.float64, requirements=["C", "W"])
        design = add_intercept(X) if p["fit_intercept"] else X
        deadline = None if p["max_time"] is None else start + p["max_time"]
        pattern_set = self._initial_patterns(design, p, rng)
        program = self._make_program(X, Y, pattern_set, p)
        logger.info(
            "solving the %s program: %d patterns, %d blocks, %d samples (solver %s)",
            "three-layer" if p["depth"] == 3 else ("gated two-layer" if p["gated"] else "two-layer"),
            len(pattern_set), program.shape[1], X.shape[0], getattr(p["solver"], "name", type(p["solver"]).__name__),
        )
        strategy: Any = None
        if p["patterns"] in _STRATEGY_NAMES:
            strategy = self._run_strategy(program, p, rng, deadline)
            program, solution = strategy.program, strategy.solution
        else:
            from .strategies import solve_from

            solution = solve_from(program, p["solver"], deadline=deadline)
        network = program.recover(solution.weights)
        fit_time = time.perf_counter() - start

        self.network_ = network
        self.objective_ = float(solution.objective)
        self.n_iter_ = max(int(solution.iterations), 1)
        self.n_patterns_ = int(len(program.patterns))
        self.n_active_ = int(program.n_active(solution.weights))
        lower = _finite_or_none(getattr(solution, "lower_bound", None))
        info = {
            "solver": str(getattr(solution, "solver", "")),
            "status": str(solution.status),
            "converged": bool(solution.converged),
            "iterations": int(solution.iterations),
            "time": float(solution.time),
            "fit_time": float(fit_time),
            "constraint_violation": _finite_or_none(solution.constraint_violation),
            "lower_bound": lower,
            "gap": None if lower is None else float(solution.objective - lower),
            "relative_gap": None if lower is None else float(relative_gap(solution.objective, lower)),
            "network_objective": float(network.objective(X, program.Y_np, p["loss"], p["beta"])),
            "patterns": p["patterns"],
        }
        info.update({k: v for k, v in _jsonable_info(solution.info).items() if k not in info})
        if strategy is not None:
            history = getattr(strategy, "history", None)
            info["strategy_rounds"] = int(len(history)) if hasattr(history, "__len__") else None
            info["trained_objective"] = _finite_or_none(getattr(strategy, "trained_objective", None))
            converged = getattr(strategy, "converged", None)
            info["pursuit_converged"] = None if converged is None else bool(converged)
        self.solver_info_ = info
        # the certificate costs an atom search (and an enumeration where enumerable):
        # computed on first access of ``certificate_``, not in every fit
        self.__dict__.pop("_certificate", None)
        point = SimpleNamespace(  # what the certificate reads from the Solution, picklable
            weights=solution.weights, multipliers=tuple(solution.multipliers),
        )
        # (the solver's bound for this program: the certificate's lower_sampled is at least it)
        # (patterns="exact": the program holds every pattern, which the certificate need not
        # enumerate again - on three layers with an input of rank above 2 it would not; not
        # for gated networks, whose gates on faces give patterns the regions do not)
        every = p["patterns"] == "exact" and not (p["depth"] == 2 and p["gated"])
        self._certificate_state = (program, point, int(rng.randint(0, 2**31 - 1)), lower,
                                   program.patterns if every else None)
        logger.info(
            "done: objective %.6g, %d active, %d patterns, %.2fs", self.objective_, self.n_active_, self.n_patterns_, fit_time
        )

    def _initial_patterns(self, design: np.ndarray, p: dict, rng):
        if p["patterns"] == "exact":
            from .patterns import enumerate_three_layer, enumerate_two_layer

            logger.info("enumerating all patterns of a %d x %d design matrix", *design.shape)
            if p["depth"] == 2:
                from .patterns import two_layer_pattern_bound

                n, rank = design.shape[0], int(np.linalg.matrix_rank(design))
                bound = two_layer_pattern_bound(n, rank) - 1  # (the all-zero mask is left out)
                if bound > EXACT_MAX_TWO_LAYER_PATTERNS:
                    raise ValueError(
                        f"patterns: 'exact' would give up to {bound} two-layer patterns for {n} samples of rank {rank} "
                        f"(more than {EXACT_MAX_TWO_LAYER_PATTERNS}): too many for a convex program; use "
                        "patterns='seeded' or 'sample' with n_patterns, or fewer samples")
                return enumerate_two_layer(design)
            try:
                return enumerate_three_layer(design, p["hidden"], max_patterns=EXACT_MAX_THREE_LAYER_PATTERNS)
            except ValueError as exc:
                if not str(exc).startswith("max_patterns"):
                    raise
                raise ValueError(
                    f"patterns: 'exact' enumeration stopped, {exc.args[0].split(': ', 1)[1]}: too many for a convex "
                    "program; use patterns='seeded' or 'sample' with n_patterns, or fewer samples"
                ) from exc
        logger.info("sampling %d patterns", p["n_patterns"])
        if p["depth"] == 2:
            found = sample_two_layer(design, p["n_patterns"], rng)
        else:
            found = sample_three_layer(design, p["n_patterns"], p["hidden"], rng)
        if len(found) < p["n_patterns"]:
            logger.info("%d distinct patterns found of the %d asked for (the data have few: n_patterns_ says how "
                        "many the program has)", len(found), p["n_patterns"])
        return found

    def _make_program(self, X: np.ndarray, Y: np.ndarray, pattern_set, p: dict):
        common = dict(
            loss=p["loss"], beta=p["beta"], fit_intercept=p["fit_intercept"], dtype=p["dtype"], device=p["device"]
        )
        if p["depth"] == 3:
            return ThreeLayerReLUProgram(X, Y, pattern_set, hidden=p["hidden"], **common)
        cls = GatedReLUProgram if p["gated"] else TwoLayerReLUProgram
        return cls(X, Y, pattern_set, **common)

    def _run_strategy(self, program, p: dict, rng, deadline: float | None = None):
        from .strategies import run_strategy

        seed = int(rng.randint(0, 2**31 - 1))
        # seeding: a short non-convex run (2 starts, early stopping) is enough to find the
        # patterns that matter; the convex solve then improves on it (benchmarks: Patterns)
        return run_strategy(
            p["patterns"], program, p["solver"], n_patterns=p["n_patterns"], random_state=seed,
            verbose=False,  # (its lines are log records: with verbose, log_to_stream prints them once)
            n_starts=2, seed_starts=1, train_kwargs=dict(max_iter=2000, tol=1e-6),
            max_time=None if deadline is None else time_left(deadline),
        )

    @property
    def certificate_(self):
        """Optimality certificate of the fitted network (theory.md, "Duality and certificates").

        A :class:`convexrelu.certificates.Certificate` (upper bound = the network's
        objective, proven lower bounds over the program's patterns and, for exactly
        enumerable data, over all networks of the architecture), or None where
        :mod:`convexrelu.certificates` is not available, and in a copy made by pickling
        (``pickle``, ``joblib``, ``copy.deepcopy``) before its first access: the program
        it needs holds a copy of the data and is not pickled (the estimator pickled
        keeps its own), and in a model loaded from a file saved before that access (a
        file keeps a certificate computed before ``save``). Computed on first access and
        cached (it runs an atom search, and an enumeration where that is cheap).
        """
        if "_certificate" in self.__dict__:
            return self.__dict__["_certificate"]
        state = self.__dict__.get("_certificate_state")
        if state is None:
            if "network_" in self.__dict__:  # fitted, then copied by pickle without the program
                return None
            raise AttributeError(f"certificate_: this {type(self).__name__} is not fitted yet")
        cert = self._compute_certificate(*state)
        self.__dict__["_certificate"] = cert
        self.__dict__.pop("_certificate_state", None)
        return cert

    @certificate_.setter
    def certificate_(self, value) -> None:
        self.__dict__["_certificate"] = value
        self.__dict__.pop("_certificate_state", None)

    def __getstate__(self):
        # the program kept for the lazy certificate holds a copy of the data: not pickled
        state = dict(super().__getstate__())  # a copy: on Python 3.11 it is ``self.__dict__`` itself
        state.pop("_certificate_state", None)
        return state

    @staticmethod
    def _compute_certificate(program, solution, seed: int, lower_bound: float | None = None, exact=None):
        """``certificates.certificate(program, solution)`` where that module exists, else None
        (``lower_bound``: the solver's certified bound for ``program``, or None; ``exact``:
        the program's patterns where they are every pattern, ``patterns="exact"``)."""
        try:  # depends on convexrelu.certificates.certificate
            from .certificates import certificate
        except ImportError:
            return None
        try:
            return certificate(program, solution, random_state=seed, lower_bound=lower_bound, exact=exact)
        except Exception as exc:  # a certificate is a bonus; never fail over it
            logger.warning("no certificate: %s", exc)
            return None

    def _decision(self, X) -> np.ndarray:
        """Network output on new data, shape (n, C)."""
        check_is_fitted(self, "network_")
        X = self._validate_X(X, reset=False)
        return self.network_.predict(X)

    # ------------------------------------------------------------ model files
    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` (see :func:`convexrelu.io.save`)."""
        from .io import save

        save(self, path)

    @classmethod
    def load(cls, path):
        """Read an estimator of this class written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a convexrelu model file or holds another kind of model.
        """
        from .io import load_model_file, warn_unapplied_standardization

        mf = load_model_file(path)
        warn_unapplied_standardization(mf, path, stacklevel=3)  # (at the caller's line)
        model = mf.model
        if not isinstance(model, cls):
            raise ValueError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


# ---------------------------------------------------------------------- regressor
class ConvexReLURegressor(RegressorMixin, _ConvexReLUBase):
    """ReLU network regression trained to the optimum of its convex program.

    The network is a two-layer ReLU (``depth=2``), gated ReLU (``depth=2, gated=True``)
    or three-layer parallel ReLU network (``depth=3``, theory.md "Three-layer parallel
    networks"), fitted by solving the convex program over a set of activation patterns
    and recovering the network from the solution.

    Parameters
    ----------
    depth : {2, 3}, default 3
        Number of layers.
    hidden : int >= 1, default 2
        ``m1``: first-layer neurons of each three-layer sub-network (ignored for depth 2).
    beta : float >= 0, default 1.0
        Regularisation on the scale of theory.md: summed loss + ``beta`` * penalty.
    n_patterns : int >= 1, default 50
        Number of distinct activation patterns to sample (a budget for the strategies);
        fewer where the data have fewer, or the draws find fewer (``n_patterns_`` is the
        number in the program).
    patterns : {"sample", "exact", "seeded", "pursuit", "seeded+pursuit"}, default "seeded"
        Where the patterns come from (theory.md, "Where patterns come from").
        "seeded" (default) adds to ``n_patterns`` sampled patterns those of a trained
        non-convex network (projected Adam, 2 starts of width ``n_patterns``, early
        stopping, the best start's patterns): with one output (regression on one
        target, two classes with the squared or logistic loss) the convex optimum is then
        never above that network's objective, and it beats the best Adam run in
        ``benchmarks/RESULTS.md`` (section Patterns) on every problem. "sample" uses
        Gaussian-sampled patterns only (fastest, far from optimal on real data).
        "exact" enumerates all of them (small, low-rank data only; with ``depth=3`` an
        error beyond ``EXACT_MAX_THREE_LAYER_PATTERNS`` = 5,000 patterns); with one output
        it gives the global optimum (of gated networks: over the gates off the
        hyperplanes of the samples, all of them with an intercept; without one
        ``certificate_`` also covers the gates on them); with several (softmax, more
        than two classes, several targets) the global optimum over networks whose
        hidden units each feed one output, which can be well above that of networks
        whose units feed every output (README, "Honest limits"). "pursuit" and "seeded+pursuit" add patterns by column generation on
        the dual (:mod:`convexrelu.strategies`).
    gated : bool, default False
        Gated ReLU network (two layers only): the group-lasso relaxation.
    loss : {"squared"}, default "squared"
        ``0.5 ||f(X) - y||^2`` summed over samples.
    solver : str or Solver, default "auto"
        "auto" or a name accepted by :func:`convexrelu.solvers.get_solver`.
    fit_intercept : bool, default True
        Append a ones column to the inputs (an intercept in every first-layer neuron).
        The output has no bias of its own (the networks of theory.md): a target far from
        zero must be made of ReLU units, which few sampled patterns can do poorly (seeded ones
        well); centre such targets, e.g. with
        ``sklearn.compose.TransformedTargetRegressor(regressor, transformer=StandardScaler())``.
    max_iter : int or None, default None
        Iteration limit passed to the solver (None: the solver's default).
    tol : float or None, default None
        Tolerance passed to the solver, in (0, 1): relative in the interior-point and
        first-order solvers, the backend's tolerances for CVXPY (None: the solver's
        default).
    max_time : float or None, default None
        Wall-time limit of the fit in seconds, from its start (None: none). Every solve
        runs with the time left as its limit (:meth:`Solver.with_max_time`: the smaller of
        it and the solver's own ``max_time``), and the pursuit strategies start no round
        that would end after it; the seeded strategies' non-convex training stops at its
        best iterate after half the time left, and the convex solve gets the rest. A solve
        stopped by it returns its point with status "max_time" (the interior-point and
        first-order solvers; "user_limit" for CVXPY) and a ConvergenceWarning giving its
        residuals and duality gap. Not interrupted: the pattern sampling or enumeration,
        CVXPY's compilation of the program and its backend's set-up (seconds on 800
        blocks: :class:`~convexrelu.solvers.CVXPYSolver`), the recovery, and what a solver
        allows itself past its limit (the feasibility repair's share).
        At scale the first-order solvers need it: ``benchmarks/RESULTS.md`` (Solvers,
        item 3) shows how far they get in two minutes. With it the result depends on the
        machine's speed as well as on ``random_state`` (where the training and the solves
        stop).
    random_state : int, RandomState or None, default None
        Seed of the pattern sampling (and of the strategies). None: fresh entropy from the
        operating system (numpy's global generator is never used).
    verbose : int, default 0
        1: print progress messages on stderr; 2: also the solver's own output.
    device : str, default "cpu"
        Torch device of the program's computations.
    dtype : {"float64", "float32"}, default "float64"
        Torch dtype of the program's computations.

    Attributes
    ----------
    network_ : TwoLayerNetwork or ThreeLayerNetwork
        The recovered network; :meth:`predict` is ``network_.predict``.
    objective_ : float
        Optimal value of the convex program (= the network's regularised objective).
    n_patterns_ : int
        Patterns in the solved program.
    n_active_ : int
        Non-zero blocks (neurons, or sub-networks for depth 3) of the solution.
    n_iter_ : int
        Iterations the solver ran (a solve counts as at least one).
    solver_info_ : dict
        status, converged, iterations, time, fit_time, constraint_violation,
        lower_bound, gap, relative_gap, network_objective and solver-specific entries.
    certificate_ : Certificate or None
        Optimality certificate where :mod:`convexrelu.certificates` is available;
        computed on first access (an atom search: seconds on larger data); None in a
        pickled copy made before that access.
    n_outputs_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from convexrelu import ConvexReLURegressor
    >>> X = np.linspace(-1, 1, 20)[:, None]; y = np.abs(X[:, 0])
    >>> model = ConvexReLURegressor(depth=2, n_patterns=10, random_state=0).fit(X, y)
    >>> model.predict(X).shape
    (20,)
    """

    _allowed_losses = ("squared",)

    def fit(self, X, y) -> "ConvexReLURegressor":
        """Fit the network to ``X`` (n, d) and ``y`` (n,) or (n, k).

        Returns
        -------
        self
        """
        return self._fit_guarded(self._fit_body, X, y)

    def _fit_body(self, X, y, p: dict) -> None:
        self._check_y_present(y)
        X = self._validate_X(X, reset=True)
        try:
            y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", ensure_min_samples=1)
        except TypeError as exc:
            raise TypeError(_name_argument("y", exc)) from exc
        except ValueError as exc:
            raise ValueError(_name_argument("y", exc)) from exc
        if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 1):
            raise ValueError(f"y: expected shape (n_samples,) or (n_samples, n_outputs), got {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} targets to match X, got {y.shape[0]}")
        self._single_output = y.ndim == 1
        Y = y[:, None] if y.ndim == 1 else y
        self.n_outputs_ = int(Y.shape[1])
        with log_to_stream(p["verbose"]):
            self._fit_encoded(X, Y, p)

    def predict(self, X) -> np.ndarray:
        """Network output: shape (n,) for one target, (n, k) for k targets."""
        Z = self._decision(X)
        return Z[:, 0] if self._single_output else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


# ---------------------------------------------------------------------- classifier
def _has_proba(estimator) -> bool:
    if estimator.loss not in ("logistic", "softmax"):
        raise AttributeError(
            f"predict_proba is only available for loss='logistic' or 'softmax', not loss={estimator.loss!r}"
        )
    return True


def _is_missing(label) -> bool:
    """Whether a class label is a missing value: None, a float NaN, pandas' NA or NaT."""
    if label is None:
        return True
    if isinstance(label, (float, np.floating)):
        return bool(np.isnan(label))
    return type(label).__name__ in ("NAType", "NaTType")


class ConvexReLUClassifier(ClassifierMixin, _ConvexReLUBase):
    """ReLU network classification trained to the optimum of its convex program.

    Same parameters as :class:`ConvexReLURegressor` except ``loss``:

    Parameters
    ----------
    loss : {"squared", "logistic", "softmax"}, default "squared"
        "squared": as in the paper, on +-1 targets for two classes (one output, the
        sign decides) and on one-hot targets for more (one output per class, the
        largest decides). "logistic": two classes only, +-1 labels, gives
        probabilities. "softmax": cross-entropy on one output per class, gives
        probabilities.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    network_, objective_, n_patterns_, n_active_, n_iter_, solver_info_, certificate_,
    n_features_in_, feature_names_in_ :
        As for :class:`ConvexReLURegressor`.

    Notes
    -----
    :meth:`predict_proba` exists only for the "logistic" and "softmax" losses (an
    ``AttributeError`` otherwise, as ``hasattr`` expects).
    """

    _allowed_losses = ("squared", "logistic", "softmax")

    def fit(self, X, y) -> "ConvexReLUClassifier":
        """Fit the network to ``X`` (n, d) and labels ``y`` (n,).

        Returns
        -------
        self
        """
        return self._fit_guarded(self._fit_body, X, y)

    def _fit_body(self, X, y, p: dict) -> None:
        self._check_y_present(y)
        X = self._validate_X(X, reset=True)
        try:
            y = column_or_1d(y, warn=True)
            missing = np.flatnonzero([_is_missing(v) for v in y]) if y.dtype == object else ()
            if len(missing):
                raise ValueError(f"y: {len(missing)} missing labels (None, NaN or NA), first at row {missing[0]}")
            check_classification_targets(y)
        except TypeError as exc:
            raise TypeError(_name_argument("y", exc)) from exc
        except ValueError as exc:
            raise ValueError(_name_argument("y", exc)) from exc
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected {X.shape[0]} labels to match X, got {y.shape[0]}")
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y: expected at least 2 classes, got 1 class ({plain(classes[0])!r}); a classifier needs more than "
                "one class"
            )
        if p["loss"] == "logistic" and len(classes) > 2:
            raise ValueError(
                f"loss: 'logistic' is for two classes, got {len(classes)} classes; use loss='softmax' or 'squared'"
            )
        self.classes_ = classes
        Y = self._encode(encoded, len(classes), p["loss"])
        with log_to_stream(p["verbose"]):
            self._fit_encoded(X, Y, p)

    @staticmethod
    def _encode(encoded: np.ndarray, n_classes: int, loss: str) -> np.ndarray:
        """Targets in the form the loss expects (theory.md, "Notation")."""
        if loss == "softmax":
            Y = np.zeros((len(encoded), n_classes))
            Y[np.arange(len(encoded)), encoded] = 1.0
            return Y
        if n_classes == 2:  # squared or logistic on +-1
            return np.where(encoded == 1, 1.0, -1.0)[:, None]
        Y = np.zeros((len(encoded), n_classes))  # squared on one-hot
        Y[np.arange(len(encoded)), encoded] = 1.0
        return Y

    def decision_function(self, X) -> np.ndarray:
        """Scores: shape (n,) for two classes (> 0 means ``classes_[1]``), else (n, n_classes)."""
        Z = self._decision(X)
        if len(self.classes_) == 2:
            return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z[:, 0]
        return Z

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, shape (n,)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in the order of ``classes_``."""
        Z = self._decision(X)
        if self.loss == "logistic":
            return LogisticLoss.proba(Z)
        return SoftmaxLoss.proba(Z)

    @available_if(_has_proba)
    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`, computed as such (finite where a
        probability rounds to 0)."""
        Z = self._decision(X)
        if self.loss == "logistic":
            return LogisticLoss.log_proba(Z)
        return SoftmaxLoss.log_proba(Z)
