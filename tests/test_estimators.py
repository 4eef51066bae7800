"""Estimators: every option, scikit-learn conformance (check_estimator), Pipeline and
GridSearchCV, input validation, recovered network = model."""

import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from convexrelu import ConvexReLUClassifier, ConvexReLURegressor, ThreeLayerNetwork, TwoLayerNetwork
from convexrelu.estimators import PATTERN_STRATEGIES, resolve_solver_name
from convexrelu.solvers import SOLVERS, ConvergenceWarning, CVXPYSolver, Solver
from conftest import needs_scs, planted_regression

SMALL = dict(n_patterns=6, patterns="sample", random_state=0)


def _blobs(n=40, n_classes=2, seed=0, d=2):
    r = np.random.default_rng(seed)
    centers = 3.0 * r.standard_normal((n_classes, d))
    y = np.arange(n) % n_classes
    X = centers[y] + 0.5 * r.standard_normal((n, d))
    return X, y


def _strategies_available():
    try:
        from convexrelu.strategies import run_strategy  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------- sklearn conformance
# solver="cvxpy": the checks fit data of a few hundred samples, where "auto" currently picks
# the first-order augmented Lagrangian (minutes per fit); the checks test the sklearn API.
@pytest.mark.parametrize(
    "estimator",
    [ConvexReLURegressor(n_patterns=4, patterns="sample", solver="cvxpy"),
     ConvexReLUClassifier(n_patterns=4, patterns="sample", solver="cvxpy")],
    ids=["regressor", "classifier"],
)
def test_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(estimator)


def test_check_estimator_softmax_two_layer():
    """predict_proba / decision_function consistency checks run for a probabilistic loss."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(ConvexReLUClassifier(depth=2, loss="softmax", n_patterns=8, patterns="sample", solver="cvxpy"))


def test_default_parameters_are_the_issue_api():
    params = ConvexReLURegressor().get_params()
    assert set(params) == {
        "depth", "hidden", "beta", "n_patterns", "patterns", "gated", "loss", "solver", "fit_intercept",
        "max_iter", "tol", "max_time", "random_state", "verbose", "device", "dtype",
    }
    assert params["depth"] == 3 and params["hidden"] == 2 and params["solver"] == "auto"
    assert params["patterns"] in PATTERN_STRATEGIES
    assert set(ConvexReLUClassifier().get_params()) == set(params)


def test_init_only_stores():
    est = ConvexReLURegressor(depth=7, beta=-1.0, hidden=0)  # invalid, but no error until fit
    assert est.depth == 7 and est.beta == -1.0 and est.hidden == 0
    with pytest.raises(ValueError, match="depth"):
        est.fit(np.zeros((3, 1)), np.zeros(3))


# ---------------------------------------------------------------------- regressor options
@pytest.mark.parametrize(
    "kw",
    [dict(depth=3), dict(depth=3, hidden=3), dict(depth=2), dict(depth=2, gated=True), dict(depth=3, fit_intercept=False),
     dict(depth=2, fit_intercept=False)],
    ids=["three", "three-h3", "two", "gated", "three-noint", "two-noint"],
)
def test_regressor_options_network_is_the_model(kw):
    X, y = planted_regression(n=30, d=3)
    est = ConvexReLURegressor(beta=0.05, **SMALL, **kw).fit(X, y)
    net = est.network_
    assert isinstance(net, ThreeLayerNetwork if kw["depth"] == 3 else TwoLayerNetwork)
    assert net.fit_intercept == kw.get("fit_intercept", True)
    if kw.get("gated"):
        assert net.gates is not None
    # predictions are the recovered network's
    np.testing.assert_allclose(est.predict(X), net.predict(X)[:, 0])
    # and the network's own objective equals the convex objective (theory.md, "Recovery")
    assert abs(est.solver_info_["network_objective"] - est.objective_) <= 1e-5 * max(1.0, abs(est.objective_))
    assert est.n_patterns_ >= 1 and 0 <= est.n_active_ <= 2 * est.n_patterns_
    assert est.n_features_in_ == 3
    assert est.n_iter_ >= 1
    info = est.solver_info_
    for key in ("status", "iterations", "time", "constraint_violation", "lower_bound", "gap", "solver"):
        assert key in info
    assert info["status"] in ("optimal", "optimal_inaccurate", "converged", "max_iter")
    if info["lower_bound"] is not None:
        assert info["lower_bound"] <= est.objective_ + 1e-6 * max(1.0, abs(est.objective_))
    assert est.score(X, y) > 0.5


def test_regressor_multi_output():
    X, y = planted_regression(n=30, d=2)
    Y = np.column_stack([y, -0.5 * y + 1.0])
    est = ConvexReLURegressor(depth=2, beta=0.05, **SMALL).fit(X, Y)
    assert est.predict(X).shape == (30, 2) and est.n_outputs_ == 2
    assert est.score(X, Y) > 0.5
    est1 = ConvexReLURegressor(depth=2, beta=0.05, **SMALL).fit(X, y)
    assert est1.predict(X).shape == (30,)


def test_beta_controls_sparsity_and_objective():
    X, y = planted_regression(n=30, d=2)
    small = ConvexReLURegressor(depth=2, beta=1e-3, **SMALL).fit(X, y)
    large = ConvexReLURegressor(depth=2, beta=100.0, **SMALL).fit(X, y)
    assert large.n_active_ <= small.n_active_
    assert small.score(X, y) > large.score(X, y)


def test_n_patterns_and_random_state():
    X, y = planted_regression(n=30, d=3)
    a = ConvexReLURegressor(depth=2, n_patterns=3, patterns="sample", random_state=1).fit(X, y)
    b = ConvexReLURegressor(depth=2, n_patterns=3, patterns="sample", random_state=1).fit(X, y)
    c = ConvexReLURegressor(depth=2, n_patterns=12, patterns="sample", random_state=1).fit(X, y)
    assert a.n_patterns_ == 3 and c.n_patterns_ == 12
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert np.isfinite(c.objective_)


def test_exact_patterns_reach_the_sampled_optimum_or_better():
    """With every pattern (1-D data + intercept) the program is exact: no sampled set beats it."""
    pytest.importorskip("convexrelu.patterns.exact")
    r = np.random.default_rng(0)
    X = np.sort(r.uniform(-1, 1, 8))[:, None]
    y = np.sin(3 * X[:, 0])
    exact = ConvexReLURegressor(depth=2, beta=0.05, patterns="exact", random_state=0).fit(X, y)
    sampled = ConvexReLURegressor(depth=2, beta=0.05, n_patterns=4, patterns="sample", random_state=0).fit(X, y)
    assert exact.objective_ <= sampled.objective_ + 1e-6
    exact3 = ConvexReLURegressor(depth=3, hidden=1, beta=0.05, patterns="exact", random_state=0).fit(X, y)
    assert np.isfinite(exact3.objective_) and exact3.n_patterns_ >= 1


@pytest.mark.skipif(not _strategies_available(), reason="convexrelu.strategies not available")
@pytest.mark.parametrize("strategy", ["seeded", "pursuit", "seeded+pursuit"])
def test_pattern_strategies(strategy):
    X, y = planted_regression(n=20, d=2)
    est = ConvexReLURegressor(depth=2, beta=0.1, n_patterns=4, patterns=strategy, random_state=0).fit(X, y)
    assert np.isfinite(est.objective_)
    np.testing.assert_allclose(est.predict(X), est.network_.predict(X)[:, 0])
    assert est.solver_info_["patterns"] == strategy


def test_solver_names_and_auto():
    assert resolve_solver_name("auto") == ("auto" if "auto" in SOLVERS else "cvxpy")
    assert resolve_solver_name("cvxpy") == "cvxpy"
    X, y = planted_regression(n=20, d=2)
    for solver in ("auto", "cvxpy", "clarabel", CVXPYSolver()):
        est = ConvexReLURegressor(depth=2, beta=0.1, solver=solver, **SMALL).fit(X, y)
        assert np.isfinite(est.objective_)
    with pytest.raises(ValueError, match="solver"):
        ConvexReLURegressor(solver="no-such-solver", **SMALL).fit(X, y)


def test_max_iter_tol_verbose_reach_the_solver(capsys):
    X, y = planted_regression(n=20, d=2)
    for solver in ("cvxpy", "clarabel", "auto"):  # auto takes CVXPY for beta = 0 (no interior point)
        est = ConvexReLURegressor(depth=2, beta=0.1 if solver != "auto" else 0.0, solver=solver, max_iter=2,
                                  tol=1e-3, verbose=1, **SMALL)
        with pytest.warns(ConvergenceWarning, match="user_limit"):  # Clarabel stopped at 2 iterations
            est.fit(X, y)
        assert est.solver_info_["status"] == "user_limit" and est.solver_info_["iterations"] <= 2
        assert not est.solver_info_["converged"]
    assert "[convexrelu]" in capsys.readouterr().err  # verbose=1 prints progress lines on stderr


@needs_scs
def test_max_iter_reaches_a_named_cvxpy_backend():
    X, y = planted_regression(n=20, d=2)
    est = ConvexReLURegressor(depth=2, beta=0.1, solver="scs", max_iter=5, **SMALL)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert est.solver_info_["iterations"] <= 5


class _TimedSolver(CVXPYSolver):
    """CVXPY, recording the time limit of every solve it runs."""

    limits: list = []

    def solve(self, program, init=None):
        type(self).limits.append(self.max_time)
        return super().solve(program, init)


def test_warnings_point_at_the_line_that_called_fit():
    X, y = planted_regression(n=20, d=2)
    for patterns in ("sample", "seeded"):  # a solver's own warning, and one from inside a strategy
        est = ConvexReLURegressor(depth=2, beta=0.1, solver="cvxpy", max_iter=2, patterns=patterns, n_patterns=6,
                                  random_state=0)
        with pytest.warns(ConvergenceWarning, match="user_limit") as record:
            est.fit(X, y)
        assert {w.filename for w in record if issubclass(w.category, ConvergenceWarning)} == {__file__}
    # the user's filters still apply: as an error, the warning fails the fit, which leaves no fitted state
    est = ConvexReLURegressor(depth=2, beta=0.1, solver="cvxpy", max_iter=2, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="user_limit"):
            est.fit(X, y)
    assert not hasattr(est, "network_")


def test_max_time_bounds_the_fit():
    """``max_time`` stops the solver (status "max_time", a ConvergenceWarning) where it
    would run long, and reaches every solve of a strategy as the time left of it."""
    X, y = planted_regression(n=200, d=5, seed=1)
    est = ConvexReLURegressor(depth=3, n_patterns=40, patterns="sample", solver="auglag", tol=1e-12, max_time=1.0,
                              random_state=0)
    start = time.perf_counter()
    with pytest.warns(ConvergenceWarning, match="max_time"):
        est.fit(X, y)
    took = time.perf_counter() - start
    assert est.solver_info_["status"] == "max_time" and not est.solver_info_["converged"]
    assert took < 20.0  # (1 s and the repair's allowance: far less on any machine; without it, minutes)
    assert np.isfinite(est.predict(X)).all()
    # seeded: the solve after the training gets what is left of the limit
    _TimedSolver.limits = []
    ConvexReLURegressor(depth=2, beta=0.1, n_patterns=6, solver=_TimedSolver(), max_time=60.0, random_state=0).fit(X, y)
    assert len(_TimedSolver.limits) == 1 and 0 < _TimedSolver.limits[0] < 60.0
    # a solver that cannot keep to a limit is refused before any work
    class NoLimit(Solver):
        def solve(self, program, init=None):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="max_time: the solver NoLimit has no time limit"):
        ConvexReLURegressor(depth=2, solver=NoLimit(), max_time=1.0, **SMALL).fit(X, y)


def test_dtype_and_device():
    X, y = planted_regression(n=20, d=2)
    a = ConvexReLURegressor(depth=2, beta=0.1, dtype="float32", device="cpu", **SMALL).fit(X, y)
    b = ConvexReLURegressor(depth=2, beta=0.1, **SMALL).fit(X, y)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dtype"):
        ConvexReLURegressor(dtype="int8", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="device"):
        ConvexReLURegressor(device="nonsense-device", **SMALL).fit(X, y)
    if not torch.cuda.is_available():  # a clear error, not torch's assertion from deep inside
        with pytest.raises(ValueError, match=r"device: 'cuda' requested, but torch.cuda.is_available\(\) is False"):
            ConvexReLURegressor(device="cuda", **SMALL).fit(X, y)


# ---------------------------------------------------------------------- classifier options
@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
@pytest.mark.parametrize("depth", [2, 3])
def test_classifier_binary(loss, depth):
    X, y = _blobs(n=40)
    labels = np.array(["no", "yes"])[y]
    est = ConvexReLUClassifier(depth=depth, loss=loss, beta=0.1, **SMALL).fit(X, labels)
    assert list(est.classes_) == ["no", "yes"]
    assert est.score(X, labels) >= 0.9
    dec = est.decision_function(X)
    assert dec.shape == (40,)
    np.testing.assert_array_equal(est.predict(X), est.classes_[(dec > 0).astype(int)])
    if loss == "squared":
        assert not hasattr(est, "predict_proba")
        with pytest.raises(AttributeError, match="predict_proba"):
            est.predict_proba(X)
    else:
        proba = est.predict_proba(X)
        assert proba.shape == (40, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], est.predict(X))
        np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), proba)


@pytest.mark.parametrize("loss", ["squared", "softmax"])
def test_classifier_multiclass(loss):
    X, y = _blobs(n=45, n_classes=3)
    est = ConvexReLUClassifier(depth=2, loss=loss, beta=0.1, **SMALL).fit(X, y + 10)
    np.testing.assert_array_equal(est.classes_, [10, 11, 12])
    assert est.decision_function(X).shape == (45, 3)
    assert est.score(X, y + 10) >= 0.9
    if loss == "softmax":
        assert est.predict_proba(X).shape == (45, 3)


def test_classifier_logistic_rejects_three_classes():
    X, y = _blobs(n=30, n_classes=3)
    with pytest.raises(ValueError, match="logistic.*3 classes"):
        ConvexReLUClassifier(loss="logistic", **SMALL).fit(X, y)


def test_classifier_rejects_regression_loss_and_regressor_rejects_classification_loss():
    X, y = _blobs(n=20)
    with pytest.raises(ValueError, match="loss"):
        ConvexReLUClassifier(loss="hinge", **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        ConvexReLURegressor(loss="logistic", **SMALL).fit(X, y.astype(float))


def test_pipeline_and_grid_search():
    X, y = _blobs(n=40, seed=1)
    X = X * [100.0, 0.01]  # badly scaled: the scaler matters
    pipe = make_pipeline(StandardScaler(), ConvexReLUClassifier(depth=2, **SMALL))
    search = GridSearchCV(pipe, {"convexreluclassifier__beta": [0.01, 1.0]}, cv=2).fit(X, y)
    assert search.best_params_["convexreluclassifier__beta"] in (0.01, 1.0)
    assert search.score(X, y) >= 0.9
    Xr, yr = planted_regression(n=30, d=2)
    reg = GridSearchCV(make_pipeline(StandardScaler(), ConvexReLURegressor(depth=2, **SMALL)),
                       {"convexreluregressor__beta": [0.01, 0.1]}, cv=2).fit(Xr, yr)
    assert np.isfinite(reg.best_score_)


def test_feature_names_in_from_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = planted_regression(n=20, d=2)
    frame = pd.DataFrame(X, columns=["a", "b"])
    est = ConvexReLURegressor(depth=2, **SMALL).fit(frame, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b"])
    with pytest.warns(UserWarning, match="feature names"):  # sklearn's warning for a bare array
        np.testing.assert_allclose(est.predict(frame), est.predict(X))
    assert not hasattr(ConvexReLURegressor(depth=2, **SMALL).fit(X, y), "feature_names_in_")


def test_certificate_is_lazy_and_bounds_the_objective():
    X, y = planted_regression(n=20, d=2)
    est = ConvexReLURegressor(depth=2, beta=0.1, **SMALL).fit(X, y)
    assert "_certificate" not in vars(est)  # not computed by fit
    cert = est.certificate_
    assert "_certificate" in vars(est) and est.certificate_ is cert
    try:
        import convexrelu.certificates  # noqa: F401
    except ImportError:
        assert cert is None
        return
    tol = 1e-6 * max(1.0, abs(est.objective_))
    assert abs(cert.upper - est.objective_) <= 1e-5 * max(1.0, abs(est.objective_))
    assert cert.lower_sampled <= est.objective_ + tol
    with pytest.raises(AttributeError):
        ConvexReLURegressor().certificate_


def test_certificate_keeps_the_solvers_bound():
    # the certificate's bound over the program's patterns is at least the one the solve
    # certified (an augmented Lagrangian stopped early takes it at its last iterate, before
    # the repair), and no more than the objective
    pytest.importorskip("convexrelu.certificates")
    from convexrelu.solvers import AugmentedLagrangian, ConvergenceWarning

    X, y = planted_regression(n=24, d=2)
    with pytest.warns(ConvergenceWarning):
        est = ConvexReLURegressor(depth=2, beta=0.1, patterns="sample", n_patterns=4, random_state=0,
                                  solver=AugmentedLagrangian(max_iter=1, inner_max_iter=300)).fit(X, y)
    lower = est.solver_info_["lower_bound"]
    assert lower is not None
    cert = est.certificate_
    assert lower <= cert.lower_sampled <= est.objective_ * (1 + 1e-7)


def test_pickling_keeps_the_original_certificate():
    import copy
    import pickle

    X, y = planted_regression(n=20, d=2)
    est = ConvexReLURegressor(depth=2, beta=0.1, **SMALL).fit(X, y)
    clone = pickle.loads(pickle.dumps(est))
    deep = copy.deepcopy(est)
    np.testing.assert_array_equal(clone.predict(X), est.predict(X))
    assert clone.certificate_ is None and deep.certificate_ is None  # the program is not pickled
    assert est.certificate_ is not None  # the original keeps what it needs
    assert pickle.loads(pickle.dumps(est)).certificate_.upper == est.certificate_.upper  # computed: pickled


def test_a_failed_refit_leaves_an_unfitted_estimator():
    from sklearn.exceptions import NotFittedError

    from convexrelu import SolverError
    from convexrelu.solvers import Solver

    class Failing(Solver):
        name = "failing"

        def solve(self, program, init=None):
            raise SolverError("failing: no solution")

    X, y = planted_regression(n=20, d=2)
    labels = np.where(y > np.median(y), 0, 1)
    est = ConvexReLUClassifier(depth=2, beta=0.1, **SMALL).fit(X, labels)
    est.set_params(solver=Failing())
    with pytest.raises(SolverError, match="failing"):  # the old network must not answer for labels a, b, c
        est.fit(X, np.array(["a", "b", "c", "a"] * 5))
    assert not hasattr(est, "classes_") and not hasattr(est, "network_")
    with pytest.raises(NotFittedError):
        est.predict(X)


# ---------------------------------------------------------------------- validation
X_OK, Y_OK = planted_regression(n=12, d=2)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(beta=-1.0), ValueError, "beta"),
        (dict(beta=float("nan")), ValueError, "beta"),
        (dict(beta="big"), TypeError, "beta"),
        (dict(depth=4), ValueError, "depth"),
        (dict(depth=1), ValueError, "depth"),
        (dict(depth=2.0), ValueError, "depth"),
        (dict(hidden=0), ValueError, "hidden"),
        (dict(hidden=1.5), TypeError, "hidden"),
        (dict(n_patterns=0), ValueError, "n_patterns"),
        (dict(patterns="random"), ValueError, "patterns"),
        (dict(gated=True), ValueError, "gated.*depth"),
        (dict(gated="yes", depth=2), TypeError, "gated"),
        (dict(fit_intercept=None), TypeError, "fit_intercept"),
        (dict(max_iter=0), ValueError, "max_iter"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(tol=1e10), ValueError, r"tol: expected a finite number in \(0, 1\) or None, got 10000000000.0"),
        (dict(tol=float("nan")), ValueError, "tol: expected a finite number in"),
        (dict(max_time=0.0), ValueError, "max_time: expected a positive number"),
        (dict(max_time=float("nan")), ValueError, "max_time: expected a positive number"),
        (dict(max_time=float("inf")), ValueError, "max_time: expected a positive number"),
        (dict(max_time="1"), ValueError, "max_time: expected a positive number"),
        (dict(verbose=-1), ValueError, "verbose"),
        (dict(solver=3), TypeError, "solver"),
        (dict(random_state=-1), ValueError, "random_state: expected None, an int"),
        (dict(random_state="abc"), ValueError, "random_state: expected None, an int"),
        (dict(device="meta"), ValueError, "device: expected a device of type 'cpu' or 'cuda' or 'mps', got 'meta'"),
    ],
)
def test_parameter_validation(kw, exc, match):
    with pytest.raises(exc, match=match):
        ConvexReLURegressor(**{**SMALL, **kw}).fit(X_OK, Y_OK)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[np.nan, 1.0]] * 12), Y_OK, "X.*NaN"),
        (np.array([[np.inf, 1.0]] * 12), Y_OK, "X.*infinity"),
        (X_OK, np.r_[np.nan, Y_OK[1:]], "y.*NaN"),
        (np.zeros((0, 2)), np.zeros(0), "X.*0 sample"),
        (np.zeros((12, 0)), Y_OK, "X.*0 feature"),
        (X_OK[:, 0], Y_OK, "X.*2D array"),
        (X_OK, Y_OK[:5], "y.*12"),
        (np.array([["a", "b"]] * 12, dtype=object), Y_OK, "X: expected numeric"),
        (X_OK, np.array(["a"] * 12, dtype=object), "y: expected numeric"),
        (X_OK, np.zeros((12, 2, 2)), "y"),
        (X_OK, None, "requires y"),
    ],
    ids=["X-nan", "X-inf", "y-nan", "empty", "no-features", "X-1d", "y-length", "X-strings", "y-strings", "y-3d",
         "y-none"],
)
def test_data_validation_regressor(X, y, match):
    with pytest.raises(ValueError, match=match):
        ConvexReLURegressor(**SMALL).fit(X, y)


def test_data_validation_classifier():
    X, y = _blobs(n=12)
    with pytest.raises(ValueError, match="y: expected at least 2 classes.*1 class"):
        ConvexReLUClassifier(**SMALL).fit(X, np.zeros(12))
    with pytest.raises(ValueError, match="Unknown label type"):
        ConvexReLUClassifier(**SMALL).fit(X, np.linspace(0, 1, 12))
    with pytest.raises(ValueError, match="y.*12"):
        ConvexReLUClassifier(**SMALL).fit(X, y[:4])


def test_predict_validation():
    est = ConvexReLURegressor(depth=2, **SMALL)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        est.predict(X_OK)
    est.fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="3 features.*expecting 2"):
        est.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        est.predict(np.full((4, 2), np.nan))


def test_default_patterns_are_seeded_and_beat_the_trained_network():
    """The default strategy seeds the program with a trained network's patterns on top of
    the sampled ones: the fitted objective is at most that network's objective (the
    network is a feasible point of the program) and at most the sampled-only optimum
    (a superset of patterns)."""
    assert ConvexReLURegressor().patterns == "seeded"
    X, y = planted_regression(n=40, d=3, seed=2)
    est = ConvexReLURegressor(n_patterns=8, solver="cvxpy", random_state=0).fit(X, y)
    assert est.n_patterns_ > 8
    trained = est.solver_info_["trained_objective"]
    assert est.objective_ <= trained * (1 + 1e-7)
    sampled = ConvexReLURegressor(n_patterns=8, patterns="sample", solver="cvxpy", random_state=0).fit(X, y)
    assert est.objective_ <= sampled.objective_ * (1 + 1e-7)
    # the recovered network reproduces the objective
    assert est.network_.objective(X, y.reshape(-1, 1), "squared", est.beta) == pytest.approx(est.objective_, rel=1e-6)


@pytest.mark.parametrize("depth", [2, 3])
def test_beta_above_the_zero_threshold_gives_the_empty_network(depth):
    """Above ``zero_threshold`` the optimum is Q = 0 exactly (the interior point returns
    it exactly): the recovered network has no neuron and predicts 0."""
    X, y = planted_regression(n=30, d=2)
    model = ConvexReLURegressor(depth=depth, beta=1e4, **SMALL).fit(X, y)
    assert model.n_active_ == 0
    np.testing.assert_array_equal(model.predict(X), np.zeros(len(X)))
    assert model.objective_ == pytest.approx(0.5 * float(np.sum(y**2)), rel=1e-9)


@pytest.mark.parametrize("missing", [None, np.nan, float("nan"), np.float32("nan")])
def test_missing_labels_are_named(missing):
    """None, and the NaN of an object array of labels (a pandas column with a gap), are
    missing labels: the NaN had given "'<' not supported between 'float' and 'str'"."""
    X, _ = planted_regression(n=12, d=2)
    y = np.array(["a", "b"] * 5 + [missing, "a"], dtype=object)
    with pytest.raises(ValueError, match="y: 1 missing labels \\(None, NaN or NA\\), first at row 10"):
        ConvexReLUClassifier(**SMALL).fit(X, y)


def test_exact_two_layer_enumeration_is_refused_beyond_its_cap(monkeypatch):
    """40 samples in 4 dimensions (rank 5 with the intercept) have 184,341 regions: the
    enumeration had run 50 s, ignoring max_time, before a solve with no time left; the
    count is known before enumerating."""
    X = np.random.default_rng(0).standard_normal((40, 4))
    with pytest.raises(ValueError, match=r"patterns: 'exact' would give up to 184341 two-layer patterns for 40 "
                                         r"samples of rank 5 \(more than 20000\)"):
        ConvexReLURegressor(depth=2, patterns="exact", random_state=0).fit(X, X[:, 0])
    import convexrelu.estimators as estimators

    X1 = np.linspace(-1, 1, 6)[:, None]  # rank 2: 2 * 6 - 1 = 11 regions without the all-zero one
    monkeypatch.setattr(estimators, "EXACT_MAX_TWO_LAYER_PATTERNS", 11)
    assert ConvexReLURegressor(depth=2, patterns="exact", random_state=0).fit(X1, X1[:, 0]).n_patterns_ <= 11
    monkeypatch.setattr(estimators, "EXACT_MAX_TWO_LAYER_PATTERNS", 10)
    with pytest.raises(ValueError, match="up to 11 two-layer patterns"):
        ConvexReLURegressor(depth=2, patterns="exact", random_state=0).fit(X1, X1[:, 0])


def test_exact_three_layer_enumeration_is_capped(monkeypatch):
    import convexrelu.estimators as estimators

    monkeypatch.setattr(estimators, "EXACT_MAX_THREE_LAYER_PATTERNS", 3)
    X = np.linspace(-1, 1, 6)[:, None]
    with pytest.raises(ValueError, match="patterns: 'exact' enumeration stopped, more than 3 three-layer patterns"):
        ConvexReLURegressor(depth=3, patterns="exact", random_state=0).fit(X, np.abs(X[:, 0]))
