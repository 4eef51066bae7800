"""The shared input checks (_validation.py): closed-form cases of the solvers' number and
count checks."""

import math

import numpy as np
import pytest

from convexrelu._validation import check_bool, check_count, check_number


@pytest.mark.parametrize("value, kwargs, expected", [
    (0.5, {}, 0.5),  # default: > 0
    (np.float32(2.0), {}, 2.0),
    (3, {}, 3.0),
    (1.0, dict(low=1.0, low_open=False), 1.0),
    (0.0, dict(low_open=False), 0.0),
    (None, dict(none_ok=True), None),
    (0.999, dict(high=1.0), 0.999),
    (1.0, dict(high=1.0, high_open=False), 1.0),
    (-5.0, dict(low=None), -5.0),
])
def test_check_number_accepts(value, kwargs, expected):
    assert check_number(value, "x", **kwargs) == expected


@pytest.mark.parametrize("value, kwargs, words", [
    (0.0, {}, "a finite number > 0"),
    (-1.0, {}, "a finite number > 0"),
    (math.nan, {}, "a finite number > 0"),
    (math.inf, {}, "a finite number > 0"),
    (True, {}, "a finite number > 0"),
    ("1e-6", {}, "a finite number > 0"),
    (None, {}, "a finite number > 0"),
    (1.0, dict(high=1.0), "a finite number in (0, 1)"),
    (0.5, dict(low=1.0, low_open=False), "a finite number >= 1"),
    (2.0, dict(high=1.0, high_open=False, none_ok=True), "a finite number in (0, 1] or None"),
    (5.0, dict(low=None, high=3.0), "a finite number < 3"),
    (math.nan, dict(low=None), "a finite number"),
])
def test_check_number_refuses_with_the_name_and_what_came(value, kwargs, words):
    with pytest.raises(ValueError) as info:
        check_number(value, "step_init", **kwargs)
    assert str(info.value) == f"step_init: expected {words}, got {value!r}"


@pytest.mark.parametrize("value, minimum, expected", [
    (5, 1, 5), (np.int64(3), 1, 3), (1e4, 1, 10000), (10.0, 1, 10), (0, 0, 0),
])
def test_check_count_accepts(value, minimum, expected):
    result = check_count(value, "max_iter", minimum)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [0, -3, 2.7, math.nan, math.inf, True, "10", None, 1e-3])
def test_check_count_refuses(value):
    with pytest.raises(ValueError, match=r"^max_iter: expected an integer >= 1, got "):
        check_count(value, "max_iter")
    assert check_count(None, "max_iter", none_ok=True) is None


def test_flags_are_true_or_false_not_truthy():
    """Programs and solvers had read their flags by truth: ``fit_intercept="no"`` and
    ``repair="False"`` were True."""
    from convexrelu import TwoLayerReLUProgram
    from convexrelu.solvers import ADMM, AugmentedLagrangian, AutoSolver, FISTA

    assert check_bool(True, "f") is True and check_bool(np.bool_(False), "f") is False
    for value in ("no", "False", 1, 0, None):
        with pytest.raises(TypeError, match=f"flag: expected True or False, got {value!r}"):
            check_bool(value, "flag")
    X = np.random.default_rng(0).standard_normal((10, 2))
    for make, name in ((lambda v: TwoLayerReLUProgram(X, X[:, 0], 3, fit_intercept=v), "fit_intercept"),
                       (lambda v: AugmentedLagrangian(backtrack=v), "backtrack"),
                       (lambda v: AugmentedLagrangian(repair=v), "repair"), (lambda v: ADMM(repair=v), "repair"),
                       (lambda v: FISTA(backtrack=v), "backtrack"), (lambda v: AutoSolver(ipm=v), "ipm")):
        with pytest.raises(TypeError, match=f"{name}: expected True or False, got 'no'"):
            make("no")
        make(False)


def test_data_whose_squares_overflow_is_refused_naming_it():
    """Entries above 1e150 in magnitude: a clear error naming the argument (features times
    1e160 had ended in a bare LinAlgError inside the interior point)."""
    from convexrelu import ConvexReLURegressor, TwoLayerReLUProgram
    from convexrelu._validation import check_matrix, check_vector_or_matrix

    X = np.random.default_rng(0).standard_normal((20, 2))
    assert check_matrix(X * 1e150 / np.abs(X).max()).shape == (20, 2)
    with pytest.raises(ValueError, match=r"X: expected entries of magnitude at most 1e\+150 .* got 2\.33e\+160; rescale the data"):
        check_matrix(X * 1e160)
    with pytest.raises(ValueError, match=r"y: expected entries of magnitude at most 1e\+150"):
        check_vector_or_matrix(np.full(20, -1e151), "y", 20)
    with pytest.raises(ValueError, match="X: expected entries of magnitude"):
        TwoLayerReLUProgram(X * 1e160, X[:, 0], 4)
    with pytest.raises(ValueError, match="y: expected entries of magnitude"):
        ConvexReLURegressor().fit(X, X[:, 0] * 1e200)


@pytest.mark.parametrize("given, expected", [("float32", "float32"), ("float", "float32"), ("double", "float64"),
                                             ("float64", "float64")])
def test_check_dtype_takes_names_and_torch_dtypes(given, expected):
    import torch

    from convexrelu._validation import check_dtype

    assert check_dtype(given) is getattr(torch, expected) and check_dtype(getattr(torch, expected)) is getattr(torch, expected)


def test_programs_check_their_dtype_and_device_naming_them():
    """The programs (and their operators) check dtype and device as the estimators do: a
    float16 or integer dtype, or cuda on a CPU build, had failed deep inside torch or a
    solver (or CVXPY returned a half-precision objective)."""
    import torch

    from convexrelu import TwoLayerReLUProgram
    from convexrelu._validation import check_device, check_dtype

    X = np.random.default_rng(0).standard_normal((20, 2))
    for bad in (torch.float16, torch.int64, "float16", None):
        with pytest.raises(ValueError, match=r"dtype: expected 'float64' or 'float32'"):
            check_dtype(bad)
    with pytest.raises(ValueError, match=r"dtype: expected .* got torch\.float16"):
        TwoLayerReLUProgram(X, X[:, 0], 4, dtype=torch.float16)
    assert TwoLayerReLUProgram(X, X[:, 0], 4, dtype="float32").dtype is torch.float32
    prog = TwoLayerReLUProgram(X, X[:, 0], 4)
    with pytest.raises(ValueError, match=r"dtype: expected"):
        prog.to(dtype=torch.int64)
    with pytest.raises(ValueError, match=r"device: expected a device of type 'cpu' or 'cuda' or 'mps', got 'meta'"):
        check_device("meta")
    assert prog.to(device="meta").device.type == "meta"  # (the operators take any torch device)
    with pytest.raises(ValueError, match=r"device: expected a torch device such as 'cpu' or 'cuda', got 'gpu'"):
        prog.to(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device: 'cuda' requested, but torch\.cuda\.is_available\(\) is False"):
            TwoLayerReLUProgram(X, X[:, 0], 4, device="cuda")
    assert check_device("cpu") == torch.device("cpu")


def test_make_rng_seeds_as_scikit_learn_and_never_touches_numpys_global_generator():
    """An int gives ``RandomState(int)``'s draws; a RandomState or Generator is used as it
    is; None draws fresh entropy without advancing numpy's global generator (it had:
    two unseeded fits after ``np.random.seed(123)`` were identical); bools, negative or
    too large ints and other objects are refused naming ``random_state``."""
    from convexrelu import ConvexReLURegressor, sample_two_layer
    from convexrelu._validation import make_rng

    assert make_rng(7).standard_normal(3).tolist() == np.random.RandomState(7).standard_normal(3).tolist()
    rs, gen = np.random.RandomState(1), np.random.default_rng(1)
    assert make_rng(rs) is rs and make_rng(gen) is gen
    np.random.standard_normal(3)  # (the generator's position off its 624-word boundary: a draw shows in it)
    state = np.random.get_state()
    X = np.random.default_rng(0).standard_normal((30, 2))
    first = make_rng(None).standard_normal(4)
    assert not np.array_equal(first, make_rng(None).standard_normal(4))
    sample_two_layer(X, 5)
    ConvexReLURegressor(depth=2, n_patterns=4, patterns="sample").fit(X, X[:, 0])
    after = np.random.get_state()
    assert np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    for bad in (True, -1, 2**32, "abc", 1.5):
        with pytest.raises(ValueError, match=r"random_state: expected None, an int in \[0, 2\*\*32 - 1\], a numpy "
                                             r"RandomState or Generator, got"):
            make_rng(bad)
    with pytest.raises(ValueError, match=r"a numpy RandomState, got Generator"):
        make_rng(gen, generator_ok=False)
    with pytest.raises(ValueError, match=r"random_state: expected None, an int .* a numpy RandomState, got True"):
        ConvexReLURegressor(random_state=True).fit(X, X[:, 0])


def test_sampling_takes_a_numpy_generator_as_documented():
    """``random_state`` of the sampling functions (and of the programs that sample) may be
    a numpy Generator, as their docstrings say (scikit-learn's check had refused it)."""
    from convexrelu import TwoLayerReLUProgram, sample_three_layer, sample_two_layer

    X = np.random.default_rng(0).standard_normal((30, 3))
    a = sample_two_layer(X, 5, np.random.default_rng(3))
    b = sample_two_layer(X, 5, np.random.default_rng(3))
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.generators, b.generators)
    assert len(sample_three_layer(X, 5, 2, np.random.default_rng(3))) >= 1
    assert len(TwoLayerReLUProgram(X, X[:, 0], 5, random_state=np.random.default_rng(3)).patterns) == len(a)


@pytest.mark.parametrize("objective, lower, expected", [(4.0, 3.0, 0.25), (-4.0, -5.0, 0.25), (2e-16, 1e-16, 0.5),
                                                        (0.0, 0.0, 0.0), (0.0, -1.0, math.inf), (3.0, -math.inf, math.inf),
                                                        (1.0, 1.0, 0.0)])
def test_relative_gap_has_no_floor(objective, lower, expected):
    """``(objective - lower) / |objective|``: tiny objectives (targets of size 1e-8) are as
    relative as others (a floor of 1e-12 had printed 1e-4 for a gap of half the objective)."""
    from convexrelu import Solution
    from convexrelu._validation import relative_gap

    assert relative_gap(objective, lower) == expected
    sol = Solution(weights=np.zeros((1, 1)), objective=objective, converged=True, status="optimal", lower_bound=lower)
    assert sol.relative_gap == expected
