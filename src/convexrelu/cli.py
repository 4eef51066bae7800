"""The ``convexrelu`` command-line tool: fit, predict, evaluate, demo.

::

    convexrelu fit DATA.csv --target COL [--task auto|regression|classification]
                   [--depth 2|3] [--hidden M] [--beta B] [--n-patterns P] [--patterns S]
                   [--solver NAME] [--seed S] [--no-standardize] -o MODEL
    convexrelu predict MODEL DATA.csv [-o OUT.csv]
    convexrelu evaluate MODEL DATA.csv [--target COL]
    convexrelu demo [--quick] [--output-dir DIR]

Data files are CSV with a header row, UTF-8, possibly compressed (``.gz``, ``.bz2``,
``.xz``), read by Python's ``csv`` module; or Parquet, when pandas and a Parquet engine
are installed. Booleans count as 1 and 0 in features and as "True"/"False" in class
labels; integer labels are kept exactly. Errors in the input
(missing file or column, non-numeric or missing values, empty file, unreadable model)
end the command with one ``error: ...`` line on stderr and exit status 1; usage errors
exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main", "build_parser", "read_table"]

logger = logging.getLogger(__name__)

#: Largest number of distinct integer target values treated as classes by ``--task auto``.
AUTO_MAX_CLASSES = 20
_MISSING = {"", "na", "nan", "n/a", "null", "none", "<na>"}


class CLIError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------- tables
_TRUE, _FALSE = "true", "false"


def _boolean_label(v):
    """``v`` as a bool when it is one (a boolean cell, or the text true/false in any
    case), else None."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in (_TRUE, _FALSE):
        return v.strip().lower() == _TRUE
    return None


def _number(v) -> float:
    """A cell as a float: numbers, booleans (1/0) and their spellings in text; a
    ValueError or TypeError otherwise (missing cells are handled by the caller)."""
    b = _boolean_label(v)
    return float(v) if b is None else float(b)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (
        isinstance(v, str) and v.strip().lower() in _MISSING)


@dataclass
class Table:
    """Columns of a data file: numeric columns as float arrays, others as object arrays.

    ``raw`` keeps a column's cells as read (the text of a CSV cell; a Parquet file's
    integers and booleans), for class labels that a float would change (integers beyond
    2^53, booleans). ``rows`` says how messages count rows: ``"line"`` (CSV: the header
    is line 1) or ``"row"`` (Parquet: the first row is row 1)."""

    path: str
    columns: list[str]
    data: dict[str, np.ndarray]
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    rows: str = "line"

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def where(self, i: int) -> str:
        """Where data row ``i`` (from 0) is, in the words of the file's kind."""
        return f"line {i + 2}" if self.rows == "line" else f"row {i + 1}"

    def column(self, name: str) -> np.ndarray:
        if name not in self.data:
            shown = ", ".join(repr(c) for c in self.columns[:10]) + (", ..." if len(self.columns) > 10 else "")
            raise CLIError(f"{self.path}: no column {name!r} (columns: {shown})")
        return self.data[name]

    def cells(self, name: str) -> np.ndarray:
        """Column ``name`` as read (see ``raw``)."""
        self.column(name)
        return self.raw.get(name, self.data[name])

    def numeric(self, name: str, hint: str = "encode it as numbers or leave it out with --ignore") -> np.ndarray:
        """Column ``name`` as finite float64 (booleans as 1 and 0), or a :class:`CLIError`
        naming the problem (and ending with ``hint`` for a non-numeric value)."""
        col = self.column(name)
        if col.dtype == object:
            values = np.empty(len(col))
            for i, v in enumerate(col):
                if _is_missing(v):
                    values[i] = np.nan
                    continue
                try:
                    values[i] = _number(v)
                except (TypeError, ValueError):
                    raise CLIError(
                        f"{self.path}: column {name!r} is not numeric (value {v!r} on {self.where(i)}); {hint}"
                    ) from None
            col = values
        col = np.asarray(col, dtype=np.float64)
        bad = np.flatnonzero(np.isnan(col))
        if bad.size:
            raise CLIError(
                f"{self.path}: column {name!r} has {bad.size} missing or NaN value{'s' if bad.size > 1 else ''} "
                f"(first on {self.where(bad[0])}); fill or drop them first"
            )
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            raise CLIError(f"{self.path}: column {name!r} has infinite values (first on {self.where(bad[0])})")
        return col

    def is_numeric(self, name: str) -> bool:
        col = self.column(name)
        if col.dtype != object:
            return True
        for v in col:
            if _is_missing(v):
                continue
            try:
                _number(v)
            except (TypeError, ValueError):
                return False
        return True


def _pandas():
    """pandas if importable, else None (the tool works without it)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def read_table(path: str | os.PathLike, *, use_pandas: bool | None = None) -> Table:
    """Read a CSV (header row required) or Parquet file into a :class:`Table`.

    CSV files (also compressed: ``.gz``, ``.bz2``, ``.xz``) are read by Python's ``csv``
    module, with or without pandas, so that a file means the same everywhere: UTF-8 text
    (a byte-order mark is skipped), comma-separated, names stripped of surrounding
    spaces, every row as long as the header. Parquet needs pandas.

    Parameters
    ----------
    path : str or path-like
    use_pandas : bool or None
        For Parquet. None: use pandas when it is importable.

    Raises
    ------
    CLIError
        Missing, empty or unparsable file; a header with an unnamed or repeated column.
    """
    path_s = str(path)
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{path_s}: no such file")
    if p.is_dir():
        raise CLIError(f"{path_s}: is a directory, not a data file")
    if p.stat().st_size == 0:
        raise CLIError(f"{path_s}: file is empty")
    if p.suffix.lower() in (".parquet", ".pq"):
        pd = _pandas() if use_pandas in (None, True) else None
        if pd is None:
            raise CLIError(f"{path_s}: reading Parquet needs pandas (with pyarrow or fastparquet); use CSV instead")
        try:
            frame = pd.read_parquet(p)
        except ImportError as exc:
            raise CLIError(f"{path_s}: reading Parquet needs pyarrow or fastparquet ({exc}); use CSV instead") from None
        except Exception as exc:
            raise CLIError(f"{path_s}: cannot read Parquet ({_first_line(exc)})") from None
        return _table_from_frame(path_s, frame)
    return _read_csv_plain(path_s)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_header(path: str, header: list[str]) -> None:
    """A CLIError for a column without a name or a name given twice: either would make a
    feature ambiguous (and readers disagree on what to call it)."""
    for j, name in enumerate(header):
        if not name:
            raise CLIError(f"{path}: column {j + 1} of the header has no name (an index written with the data?); "
                           "name it, or remove it")
    seen = set()
    for name in header:
        if name in seen:
            raise CLIError(f"{path}: the header names column {name!r} more than once; rename one of them")
        seen.add(name)


def _table_from_frame(path: str, frame) -> Table:
    columns = [str(c).strip() for c in frame.columns]
    if not columns:
        raise CLIError(f"{path}: file is empty (no columns)")
    _check_header(path, columns)
    if len(frame) == 0:
        raise CLIError(f"{path}: no data rows (only a header)")
    data, raw = {}, {}
    for name, col in zip(columns, frame.columns):
        values = frame[col].to_numpy()
        if values.dtype.kind in "iuf":
            data[name] = values.astype(np.float64)
            if values.dtype.kind in "iu":  # exact integers, for labels beyond 2^53
                raw[name] = np.asarray(values.tolist(), dtype=object)
        elif values.dtype.kind == "b":
            data[name] = np.asarray(values.tolist(), dtype=object)  # Python booleans
        else:
            data[name] = np.asarray(values, dtype=object)
    return Table(path, columns, data, raw, rows="row")


def _open_text(path: str):
    """The text of a CSV file, decompressed by its suffix."""
    import bz2
    import gzip
    import lzma

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(Path(path).suffix.lower())
    if opener is None:
        return open(path, newline="", encoding="utf-8-sig")
    return opener(path, "rt", newline="", encoding="utf-8-sig")


def _read_csv_plain(path: str) -> Table:
    try:
        with _open_text(path) as fh:
            rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
                       "save it as UTF-8") from None
    except csv.Error as exc:
        raise CLIError(f"{path}: cannot parse CSV ({exc})") from None
    except (OSError, EOFError) as exc:  # a damaged compressed file
        raise CLIError(f"{path}: cannot read it ({exc})") from None
    if not rows:
        raise CLIError(f"{path}: file is empty (no header row)")
    header, body = [c.strip() for c in rows[0]], rows[1:]
    _check_header(path, header)
    if not body:
        raise CLIError(f"{path}: no data rows (only a header)")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise CLIError(f"{path}: cannot parse CSV (data row {i + 1}, line {i + 2}, has {len(row)} fields, "
                           f"the header {len(header)})")
    data, raw = {}, {}
    for j, name in enumerate(header):
        cells = [row[j].strip() for row in body]
        raw[name] = np.asarray(cells, dtype=object)
        try:
            data[name] = np.asarray([np.nan if v.lower() in _MISSING else float(v) for v in cells])
        except ValueError:
            data[name] = raw[name]
    return Table(path, header, data, raw)


_INTEGER = re.compile(r"[+-]?\d+")
_INT64 = (-(2**63), 2**63 - 1)


def _integer_label(v):
    """``v`` as a Python int when it is an integer (an integer cell, an integer-valued
    float exactly held), else None."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str):
        text = v.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            v = float(text)
        except ValueError:
            return None
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and v == round(v) and abs(v) <= 2**53:
        return int(v)
    return None


def _number_label(v):
    """``v`` as a finite float when it is a number (not a boolean), else None."""
    if _boolean_label(v) is not None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _class_labels(table: Table, name: str) -> np.ndarray:
    """Target column as class labels, exactly as written: integers (int64; text for
    integers beyond int64) when every label is an integer, else text: numbers as Python
    prints them when every label is a number ("0.50" and "0.5" are one class), booleans
    as "True" and "False", anything else as written (stripped)."""
    cells = table.cells(name)
    for i, v in enumerate(cells):
        if _is_missing(v):
            raise CLIError(f"{table.path}: column {name!r} has missing values (first on {table.where(i)})")
    ints = [_integer_label(v) for v in cells]
    if all(k is not None for k in ints):
        if all(_INT64[0] <= k <= _INT64[1] for k in ints):
            return np.asarray(ints, dtype=np.int64)
        return np.asarray([str(k) for k in ints], dtype=object)
    numbers = [_number_label(v) for v in cells]
    if all(x is not None for x in numbers):
        return np.asarray([repr(x) for x in numbers], dtype=object)
    bools = [_boolean_label(v) for v in cells]
    return np.asarray([str(v).strip() if b is None else str(b) for v, b in zip(cells, bools)], dtype=object)


# ---------------------------------------------------------------------- output
def _print_table(rows: Sequence[tuple[str, str]], out=None) -> None:
    out = sys.stdout if out is None else out
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)


def _fmt(x, digits: int = 6) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def _certificate_rows(cert) -> list[tuple[str, str]]:
    """Summary rows of a certificate (:mod:`convexrelu.certificates`; a dict when loaded)."""
    if cert is None:
        return []

    def get(name):
        return cert.get(name) if isinstance(cert, dict) else getattr(cert, name, None)

    upper = get("upper")
    if upper is None:
        return [("certificate", str(cert))]
    rows = []
    if get("lower_global") is not None:
        gap = upper - get("lower_global")
        rows.append(("global lower bound", f"{_fmt(get('lower_global'), 8)} (proven over all networks of this "
                     f"architecture; gap {_fmt(gap, 3)})"))
    elif get("lower_search") is not None:
        rows.append(("global lower bound", f"not proven; {_fmt(get('lower_search'), 8)} if the atom search were "
                     f"exact (largest violation found {_fmt(get('max_violation'), 4)} x beta)"))
    return rows


def _write_csv(header: list[str], columns: list[np.ndarray], out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in zip(*columns):
        writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])


# ---------------------------------------------------------------------- commands
def _not_an_input(output, **inputs) -> None:
    """A CLIError where the file ``-o/--output`` names is one of ``inputs`` (argument name:
    path; writing it would replace that input: a fit had overwritten its data with the
    model, a prediction the model with its CSV)."""
    out = Path(output)
    for name, path in inputs.items():
        if path is None or str(path) == "-":
            continue
        same = (os.path.samefile(out, path) if out.exists() and Path(path).exists()
                else out.resolve() == Path(path).resolve())
        if same:
            raise CLIError(f"-o/--output: {str(output)!r} is the {name} file; writing it would replace it, "
                           "choose another name")


def _cmd_fit(args) -> int:
    from ._progress import StatusLine
    from ._validation import plain
    from .estimators import ConvexReLUClassifier, ConvexReLURegressor
    from .io import check_output_path, save

    try:  # before the fit, not after it
        check_output_path(args.output)
    except ValueError as exc:
        raise CLIError(f"-o/--output: {str(exc).split(': ', 1)[1]}") from None
    _not_an_input(args.output, data=args.data)
    table = read_table(args.data)
    targets = list(dict.fromkeys(args.target))
    for t in targets:
        table.column(t)
    ignored = set(args.ignore or [])
    for c in ignored:
        table.column(c)
    features = [c for c in table.columns if c not in targets and c not in ignored]
    if not features:
        raise CLIError(f"{args.data}: no feature columns left besides the target")
    X = np.column_stack([_sized(table, c, table.numeric(c)) for c in features])

    task = args.task
    if task == "auto":
        task = _guess_task(table, targets)
        logger.info("task: %s", task)
    if task == "classification":
        if len(targets) != 1:
            raise CLIError("--target: classification takes exactly one target column")
        y = _class_labels(table, targets[0])
        n_classes = len(np.unique(y))
        if n_classes < 2:
            raise CLIError(f"{args.data}: target column {targets[0]!r} has only one class ({plain(y[0])!r}); "
                           "need at least 2")
    else:
        cols = [_sized(table, t, table.numeric(t, hint=_REGRESSION_TARGET_HINT)) for t in targets]
        y = cols[0] if len(cols) == 1 else np.column_stack(cols)

    if args.no_standardize:
        mean = scale = None
        Xs = X
    else:
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
        Xs = (X - mean) / scale

    params = dict(depth=args.depth, hidden=args.hidden, solver=args.solver, random_state=args.seed,
                  verbose=1 if args.verbose else 0)
    for key in _PASSED_IF_GIVEN:
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    if args.gated:
        params["gated"] = True
    cls = ConvexReLUClassifier if task == "classification" else ConvexReLURegressor
    model = cls(**params)
    start = time.perf_counter()
    with StatusLine(f"fitting {cls.__name__}", enabled=None if not args.verbose else False):
        try:
            model.fit(Xs, y)
        except ValueError as exc:  # the estimator names its arguments X and y: name the columns
            name, sep, rest = str(exc).partition(": ")
            if sep and name == "y":
                raise CLIError(f"{args.data}: target column{'s' if len(targets) > 1 else ''} "
                               f"{', '.join(repr(t) for t in targets)}: {rest}") from None
            if sep and name == "X":
                raise CLIError(f"{args.data}: feature columns: {rest}") from None
            raise
    elapsed = time.perf_counter() - start
    cert = None
    cert_time = 0.0
    if not args.no_certificate:
        start = time.perf_counter()
        with StatusLine("certifying (atom search)", enabled=None if not args.verbose else False):
            cert = model.certificate_
        cert_time = time.perf_counter() - start

    info = model.solver_info_
    arch = (
        f"three-layer, {model.hidden} first-layer neurons per sub-network" if model.depth == 3
        else ("gated two-layer" if model.gated else "two-layer")
    )
    rows = [
        ("data", f"{args.data}: {X.shape[0]} samples, {X.shape[1]} features"
                 + ("" if mean is None else ", standardised")),
        ("task", task + (f" ({len(model.classes_)} classes)" if task == "classification" else "")),
        ("network", f"{arch}, loss {model.loss}, beta {_fmt(float(model.beta))}"),
        ("objective", _fmt(model.objective_, 8)),
    ]
    if info.get("lower_bound") is not None:
        rows.append(("lower bound / gap", f"{_fmt(info['lower_bound'], 8)} / {_fmt(info['gap'], 3)}"
                     " (over these patterns)"))
    rows += _certificate_rows(cert)
    sub = "active sub-networks" if model.depth == 3 else "active neurons"
    rows += [
        (sub, str(model.n_active_)),
        ("patterns", f"{model.n_patterns_} ({model.patterns})"),
        ("solver", f"{info.get('solver') or model.solver}, {info.get('status')}, {info.get('iterations')} iterations"),
        ("time", f"{elapsed:.2f} s" + (f" (+ {cert_time:.2f} s certificate)" if cert is not None else "")),
    ]
    if task == "classification":
        rows.append(("train accuracy", f"{model.score(Xs, y):.4f}"))
    else:
        pred = model.predict(Xs)
        rows.append(("train R^2", f"{model.score(Xs, y):.4f}"))
        rows.append(("train RMSE", _fmt(float(np.sqrt(np.mean((pred - y) ** 2))), 6)))
    extra = {"cli": {"features": features, "targets": targets, "task": task, "data": os.path.basename(str(args.data))}}
    save(model, args.output, standardization=None if mean is None else (mean, scale), extra=extra)
    print(f"convexrelu fit: {cls.__name__}")
    _print_table(rows)
    print(f"model written to {args.output}")
    return 0


_REGRESSION_TARGET_HINT = "a regression target must be numeric (for labels use --task classification)"


def _sized(table: Table, name: str, values: np.ndarray) -> np.ndarray:
    """``values`` of column ``name``, or a CLIError where one exceeds what the solvers
    take (:data:`~convexrelu._validation.MAX_ENTRY`; standardising them would overflow)."""
    from ._validation import MAX_ENTRY

    big = float(np.max(np.abs(values))) if values.size else 0.0
    if big > MAX_ENTRY:
        i = int(np.argmax(np.abs(values)))
        raise CLIError(f"{table.path}: column {name!r} holds {values[i]:.3g} on {table.where(i)}; values of "
                       f"magnitude above {MAX_ENTRY:g} are out of range: rescale the column")
    return values


def _guess_task(table: Table, targets: list[str]) -> str:
    if len(targets) > 1:
        return "regression"
    name = targets[0]
    if not table.is_numeric(name):
        return "classification"
    values = table.numeric(name)
    distinct = np.unique(values)
    if np.all(distinct == np.round(distinct)) and len(distinct) <= AUTO_MAX_CLASSES:
        return "classification"
    return "regression"


def _load_cli_model(path):
    from .io import load_model_file

    try:
        mf = load_model_file(path)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such model file") from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not hasattr(mf.model, "network_"):
        raise CLIError(f"{path}: holds a bare network, not an estimator; the CLI needs a model written by 'convexrelu fit' or estimator.save")
    return mf


def _model_features(mf, table: Table, exclude: Sequence[str] = ()) -> list[str]:
    cli = mf.extra.get("cli") or {}
    features = cli.get("features")
    if features is None and hasattr(mf.model, "feature_names_in_"):
        features = [str(f) for f in mf.model.feature_names_in_]
    if features is None:
        features = [c for c in table.columns if c not in exclude and c not in (cli.get("targets") or [])]
        if len(features) != mf.model.n_features_in_:
            raise CLIError(
                f"{table.path}: the model expects {mf.model.n_features_in_} features and stores no column names; "
                f"the file has {len(features)} candidate columns"
            )
        return features
    missing = [f for f in features if f not in table.data]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise CLIError(f"{table.path}: missing feature column(s) {shown} that the model was trained on")
    return list(features)


def _model_inputs(mf, table: Table, exclude: Sequence[str] = ()) -> np.ndarray:
    features = _model_features(mf, table, exclude)
    X = np.column_stack([table.numeric(c) for c in features])
    if mf.mean is not None and mf.mean.shape[0] != X.shape[1]:
        raise CLIError("model file: its standardisation does not match its features")
    return mf.transform(X)


def _cmd_predict(args) -> int:
    if args.output:  # before the work (a device or a pipe is fine here: it is written, not replaced)
        out = Path(args.output)
        if out.is_dir():
            raise CLIError(f"-o/--output: {args.output!r} is a directory; expected a file name such as out.csv")
        folder = out.parent if str(out.parent) else Path(".")
        if not folder.is_dir():
            raise CLIError(f"-o/--output: cannot write {args.output!r}: the folder {str(folder)!r} does not exist")
        _not_an_input(args.output, model=args.model, data=args.data)
    mf = _load_cli_model(args.model)
    table = read_table(args.data)
    X = _model_inputs(mf, table)
    model = mf.model
    pred = model.predict(X)
    header: list[str]
    columns: list[np.ndarray]
    if pred.ndim == 2:
        targets = (mf.extra.get("cli") or {}).get("targets") or [str(k) for k in range(pred.shape[1])]
        header = [f"prediction_{t}" for t in targets]
        columns = [pred[:, k] for k in range(pred.shape[1])]
    else:
        header, columns = ["prediction"], [pred]
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        header += [f"proba_{c}" for c in model.classes_]
        columns += [proba[:, k] for k in range(proba.shape[1])]
    if args.output:
        try:
            with open(args.output, "w", newline="", encoding="utf-8") as fh:
                _write_csv(header, columns, fh)
        except OSError as exc:
            raise CLIError(f"-o/--output: cannot write {args.output!r} ({exc.strerror or exc})") from None
        print(f"{len(pred)} predictions written to {args.output}", file=sys.stderr)
    else:
        _write_csv(header, columns, sys.stdout)
    return 0


def _evaluation_targets(mf, given: Sequence[str] | None) -> list[str]:
    """The target columns ``evaluate`` scores: ``--target``'s, which must be the model's
    own, in its order, where the model file names them (``convexrelu fit`` stores them);
    the stored ones when ``--target`` is not given."""
    stored = (mf.extra.get("cli") or {}).get("targets")
    given = list(dict.fromkeys(given)) if given else None
    if given is None:
        if not stored:
            raise CLIError("--target: required (the model file names no target columns)")
        return list(stored)
    if stored and given != list(stored):
        raise CLIError(f"--target: the model was fitted on {', '.join(repr(t) for t in stored)} (in that order); "
                       f"got {', '.join(repr(t) for t in given)}")
    return given


def _cmd_evaluate(args) -> int:
    from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, r2_score

    from ._validation import plain

    mf = _load_cli_model(args.model)
    table = read_table(args.data)
    targets = _evaluation_targets(mf, args.target)
    for t in targets:
        table.column(t)
    X = _model_inputs(mf, table, exclude=targets)
    model = mf.model
    rows = [("data", f"{args.data}: {X.shape[0]} samples")]
    if hasattr(model, "classes_"):
        if len(targets) != 1:
            raise CLIError("--target: classification takes exactly one target column")
        y = _class_labels(table, targets[0])
        if model.classes_.dtype.kind in "iuf" and y.dtype == object:
            raise CLIError(f"{args.data}: target column {targets[0]!r} is not numeric, but the model's classes are numbers")
        if model.classes_.dtype.kind not in "iufb" and y.dtype != object:
            y = np.asarray([str(v) for v in y], dtype=object)
        known = {str(c) for c in model.classes_}
        if not any(str(v) in known for v in np.unique(y)):
            shown = ", ".join(repr(plain(c)) for c in list(model.classes_)[:5])
            raise CLIError(f"{args.data}: target column {targets[0]!r} shares no value with the model's classes ({shown})")
        pred = model.predict(X)
        rows.append(("accuracy", f"{accuracy_score(y, pred):.4f}"))
        unseen = sorted({str(v) for v in np.unique(y)} - known)
        if unseen:
            rows.append(("unseen classes", ", ".join(unseen[:5])))
        if hasattr(model, "predict_proba") and not unseen:
            rows.append(("log loss", _fmt(log_loss(y, model.predict_proba(X), labels=model.classes_), 6)))
    else:
        cols = [table.numeric(t, hint="the model is a regressor: its targets are numbers") for t in targets]
        y = cols[0] if len(cols) == 1 else np.column_stack(cols)
        pred = model.predict(X)
        if np.shape(pred) != np.shape(y):
            raise CLIError(f"--target: the model predicts {1 if pred.ndim == 1 else pred.shape[1]} target(s), got {len(targets)}")
        rows += [
            ("R^2", f"{r2_score(y, pred):.4f}"),
            ("RMSE", _fmt(float(np.sqrt(mean_squared_error(y, pred))), 6)),
            ("MAE", _fmt(float(mean_absolute_error(y, pred)), 6)),
        ]
    print(f"convexrelu evaluate: {args.model}")
    _print_table(rows)
    return 0


def _cmd_demo(args) -> int:
    from ._demo import run_demo

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():  # (before the work; it had ended in a bare FileExistsError)
        raise CLIError(f"--output-dir: {args.output_dir!r} exists and is not a directory")
    run_demo(quick=args.quick, output_dir=args.output_dir, seed=args.seed)
    return 0


# ---------------------------------------------------------------------- parser
def _seconds(text: str) -> float:
    """``--max-time``'s type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _seed(text: str) -> int:
    """``--seed``'s type: an integer from 0 to 2^32 - 1 (what numpy's seeding takes)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {2**32 - 1}, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``convexrelu`` command."""
    from . import __version__
    from .estimators import PATTERN_STRATEGIES, ConvexReLURegressor

    defaults = ConvexReLURegressor().get_params()

    parser = _Parser(
        prog="convexrelu",
        description="Train ReLU networks to global optimality through their convex programs "
        "(Ergen & Pilanci, ICML 2021).",
    )
    parser.add_argument("--version", action="version", version=f"convexrelu {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors (for bug reports)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = sub.add_parser("fit", help="fit a model to a CSV/Parquet file and write it", description=(
        "Fit a convex ReLU network to DATA (CSV with a header row, or Parquet). Every column except the "
        "target(s) and --ignore'd ones is a feature and must be numeric. Features are standardised "
        "(mean 0, variance 1) unless --no-standardize; the standardisation is stored in the model."))
    fit.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    fit.add_argument("--target", "-t", required=True, action="append", metavar="COL",
                     help="target column (repeat for several regression targets)")
    fit.add_argument("--task", choices=("auto", "regression", "classification"), default="auto",
                     help="auto (default): classification for a non-numeric target or one with at most "
                     f"{AUTO_MAX_CLASSES} distinct integer values, regression otherwise")
    fit.add_argument("--depth", type=int, choices=(2, 3), default=3, help="2 or 3 layers (default 3)")
    fit.add_argument("--hidden", type=int, default=2, help="first-layer neurons per three-layer sub-network (default 2)")
    fit.add_argument("--beta", type=float, default=None, help=f"regularisation on the summed-loss scale (default {defaults['beta']:g})")
    fit.add_argument("--n-patterns", type=int, default=None, dest="n_patterns",
                     help=f"activation patterns to sample (default {defaults['n_patterns']}; the seeded "
                          "strategies add those of their trained network)")
    fit.add_argument("--patterns", choices=PATTERN_STRATEGIES, default=None,
                     help=f"where patterns come from (default {defaults['patterns']})")
    fit.add_argument("--loss", choices=("squared", "logistic", "softmax"), default=None,
                     help="loss (default squared; logistic/softmax for classification only)")
    fit.add_argument("--gated", action="store_true", help="gated ReLU network (with --depth 2)")
    fit.add_argument("--solver", default="auto", help="solver name (default auto)")
    fit.add_argument("--max-iter", type=int, default=None, dest="max_iter", help="solver iteration limit")
    fit.add_argument("--tol", type=float, default=None, help="solver tolerance")
    fit.add_argument("--max-time", type=_seconds, default=None, dest="max_time", metavar="SECONDS",
                     help="wall-time limit of the fit: each solve stops with the time left (default: none; "
                          "the certificate after the fit is not counted: --no-certificate skips it)")
    fit.add_argument("--device", default=None, help="torch device of the solver, e.g. cuda (default cpu)")
    fit.add_argument("--dtype", choices=("float64", "float32"), default=None,
                     help="precision of the solver's computations (default float64)")
    fit.add_argument("--seed", type=_seed, default=0, help="random seed of the pattern sampling and of the seeding network's training (default 0)")
    fit.add_argument("--no-standardize", action="store_true", help="use the features as they are")
    fit.add_argument("--ignore", action="append", metavar="COL", help="a column that is not a feature (repeatable)")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    fit.add_argument("--no-certificate", action="store_true",
                     help="skip the optimality certificate (an atom search after the fit)")
    fit.add_argument("-v", "--verbose", action="store_true", help="print progress messages as lines")
    fit.set_defaults(func=_cmd_fit)

    pred = sub.add_parser("predict", help="predict with a model", description=(
        "Predict for every row of DATA with MODEL; writes a CSV with a 'prediction' column "
        "(and class probabilities for the logistic and softmax losses)."))
    pred.add_argument("model", metavar="MODEL", help="model file written by 'convexrelu fit'")
    pred.add_argument("data", metavar="DATA", help="CSV or Parquet file with the model's feature columns")
    pred.add_argument("-o", "--output", metavar="OUT.csv", help="output CSV (default: standard output)")
    pred.set_defaults(func=_cmd_predict)

    ev = sub.add_parser("evaluate", help="score a model on labelled data", description=(
        "Score MODEL on DATA: accuracy (and log loss) for classifiers, R^2, RMSE and MAE for regressors."))
    ev.add_argument("model", metavar="MODEL")
    ev.add_argument("data", metavar="DATA")
    ev.add_argument("--target", "-t", action="append", metavar="COL",
                    help="target column(s) (default: those the model was fitted on, which it names)")
    ev.set_defaults(func=_cmd_evaluate)

    demo = sub.add_parser("demo", help="convex training vs Adam on the breast cancer data", description=(
        "Fit a three-layer ReLU network to scikit-learn's breast cancer data by its convex program and by "
        "Adam from several random starts; print both training objectives and test accuracies and write a plot."))
    demo.add_argument("--quick", action="store_true", help="a smaller, faster run (seconds)")
    demo.add_argument("--output-dir", default="convexrelu-demo", metavar="DIR",
                      help="where to write the plot and results (default ./convexrelu-demo)")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command: ``warning: <message>`` on stderr."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``convexrelu`` command; return the exit status.

    Parameters
    ----------
    argv : list of str or None
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            if not args.traceback:  # a warning is one line, as an error is (the source line says nothing here)
                warnings.showwarning = _show_warning
            # the commands match the CSV's columns to a model's feature names themselves, then
            # pass numbers: scikit-learn's warning that they came without names is not the user's
            warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
            return int(args.func(args))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (| head): stop quietly, as cat does
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # (Python's flush at exit would fail again)
        except (OSError, ValueError):
            pass
        return 141
    except Exception as exc:
        if args.traceback:
            raise
        message = _as_option(_first_line(exc))
        if isinstance(exc, (CLIError, ValueError, TypeError, FileNotFoundError)):
            print(f"error: {message}", file=sys.stderr)
        else:
            print(f"error: {type(exc).__name__}: {message} (run with --traceback for details)", file=sys.stderr)
        return 1


#: The estimators' parameters that the options of ``fit`` set under another name.
_OPTION_NAMES = {"random_state": "--seed"}
#: Those that ``fit`` passes where its option of the same name (``_`` as ``-``) is given.
_PASSED_IF_GIVEN = ("beta", "n_patterns", "patterns", "loss", "max_iter", "tol", "max_time", "device", "dtype")
_OPTIONS = _PASSED_IF_GIVEN + ("depth", "hidden", "solver", "gated")


def _as_option(message: str) -> str:
    """An error message that names an estimator's parameter (``"max_iter: expected ..."``)
    naming the command's option instead (``"--max-iter: expected ..."``)."""
    name, sep, rest = message.partition(": ")
    if sep and name in _OPTION_NAMES:
        return f"{_OPTION_NAMES[name]}: {rest}"
    if sep and name in _OPTIONS:
        return f"--{name.replace('_', '-')}: {rest}"
    return message


if __name__ == "__main__":
    raise SystemExit(main())
