"""Input checks shared by every public entry point.

Each check names the argument, what was expected and what came, so that bad input
never reaches a solver.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


#: Largest magnitude of a data entry: the programs square the data (losses, Gram
#: matrices), and float64 overflows past 1.8e308.
MAX_ENTRY = 1e150


def check_magnitude(arr: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` where an entry of ``arr`` exceeds :data:`MAX_ENTRY` in magnitude."""
    big = float(np.max(np.abs(arr))) if arr.size else 0.0
    if big > MAX_ENTRY:
        raise ValueError(f"{name}: expected entries of magnitude at most {MAX_ENTRY:g} (the programs square them, "
                         f"and float64 overflows), got {big:.3g}; rescale the data")


def check_matrix(X, name: str = "X", *, min_rows: int = 1) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n, d) or raise ``ValueError``."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic containers
        raise TypeError(f"{name}: expected a 2-D numeric array, got {type(X).__name__}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name}: expected numeric values, got dtype {arr.dtype} with non-numeric entries"
            ) from exc
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: expected real numbers, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} sample(s), got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least 1 feature, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or infinite entr{'y' if bad == 1 else 'ies'}")
    check_magnitude(arr, name)
    return arr


def check_vector_or_matrix(y, name: str, n: int) -> np.ndarray:
    """Return ``y`` as finite float64 array of shape (n,) or (n, k)."""
    arr = np.asarray(y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: expected numeric values, got dtype {arr.dtype}") from exc
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape ({n},) or ({n}, k), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows to match X, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got NaN or infinite entries")
    check_magnitude(arr, name)
    return arr


def check_beta(beta) -> float:
    """Regularisation strength: a finite real number >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta: expected a real number >= 0, got {beta!r}")
    beta = float(beta)
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"beta: expected a finite real number >= 0, got {beta}")
    return beta


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    """Words for an interval of the real line: '> 0', '>= 1', 'in (0, 1)', 'in (0, 2]' ('' for all of it)."""
    if low is None and high is None:
        return ""
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(value, name: str, *, low: float | None = 0.0, high: float | None = None, low_open: bool = True,
                 high_open: bool = True, none_ok: bool = False) -> float | None:
    """A solver's real setting: a finite number in the interval from ``low`` to ``high``
    (open or closed at each end; None: unbounded), or None where ``none_ok``. Booleans,
    strings, NaN and infinities are refused: ValueError naming ``name``, what was expected
    and what came."""
    if value is None and none_ok:
        return None
    what = f"a finite number {_interval(low, high, low_open, high_open)}".rstrip() + (" or None" if none_ok else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    v = float(value)
    if (low is not None and (v <= low if low_open else v < low)) or (
            high is not None and (v >= high if high_open else v > high)):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return v


def check_count(value, name: str, minimum: int = 1, *, none_ok: bool = False) -> int | None:
    """A solver's integer setting ``>= minimum`` (an integral float such as ``1e4`` is taken
    as its integer; booleans, strings, fractions, NaN and infinities are refused), or None
    where ``none_ok``: ValueError naming ``name`` otherwise."""
    if value is None and none_ok:
        return None
    what = f"an integer >= {minimum}" + (" or None" if none_ok else "")
    integral = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and np.isfinite(value) and float(value).is_integer())
    if isinstance(value, bool) or not integral or int(value) < minimum:
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def plain(value):
    """A numpy scalar as the Python scalar it holds (for messages: ``1`` not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


def check_max_time(value) -> float | None:
    """A wall-time limit: None, or a finite number of seconds > 0 (ValueError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < np.inf:
        raise ValueError(f"max_time: expected a positive number of seconds or None, got {value!r}")
    return float(value)


def add_intercept(X: np.ndarray) -> np.ndarray:
    """Append a column of ones (the intercept) to ``X`` of shape (n, d) -> (n, d + 1)."""
    return np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)])


#: The dtypes the programs compute in, by name.
DTYPES = {"float64": torch.float64, "float32": torch.float32, "double": torch.float64, "float": torch.float32}


def check_dtype(dtype) -> torch.dtype:
    """``torch.float32`` or ``torch.float64``, or one of their names (:data:`DTYPES`):
    the torch dtype; ValueError naming ``dtype`` otherwise."""
    if isinstance(dtype, torch.dtype) and dtype in (torch.float32, torch.float64):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype: expected 'float64' or 'float32' (or torch.float64, torch.float32), got {dtype!r}")


def check_bool(value, name: str) -> bool:
    """``value`` if it is True or False (numpy's booleans too); a TypeError naming ``name``
    otherwise: a flag read by its truth had taken ``"no"`` and ``"False"`` for True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_device(device, kinds: tuple | None = ("cpu", "cuda", "mps")) -> torch.device:
    """A torch device of one of the types ``kinds`` (None: any torch knows, e.g. "meta"),
    cuda and mps only where this torch can use them (ValueError naming ``device``
    otherwise: a CPU build asked for cuda says so)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if kinds is not None and dev.type not in kinds:
        raise ValueError(f"device: expected a device of type {' or '.join(map(repr, kinds))}, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested, but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}: a CPU build, or no GPU visible)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {device!r} requested, but torch.backends.mps.is_available() is False")
    return dev


def make_rng(random_state, *, generator_ok: bool = True):
    """The random generator of an entry point: a ``np.random.RandomState`` from None
    (fresh entropy from the operating system, never numpy's global generator) or an int
    in [0, 2**32 - 1] (scikit-learn's seeding: the same int, the same draws); a
    ``RandomState``, or a ``np.random.Generator`` where ``generator_ok``, used as it is.
    ValueError naming ``random_state`` otherwise (booleans included)."""
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState) or (
            generator_ok and isinstance(random_state, np.random.Generator)):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) and (
            0 <= random_state < 2**32):
        return np.random.RandomState(int(random_state))
    kinds = "an int in [0, 2**32 - 1], a numpy RandomState" + (" or Generator" if generator_ok else "")
    raise ValueError(f"random_state: expected None, {kinds}, got {random_state!r}")


def relative_gap(objective: float, lower: float, floor: float = 0.0) -> float:
    """``(objective - lower) / max(|objective|, floor)``: 0 where both are equal (the zero
    network of all-zero targets included), ``inf`` where that denominator is 0 and the
    bound below the objective. No floor by default: objectives of tiny targets (1e-16)
    are as relative as any others."""
    gap = objective - lower
    if gap == 0 or math.isnan(gap):
        return 0.0 if gap == 0 else math.nan
    scale = max(abs(objective), floor)
    return gap / scale if scale > 0 else math.inf
