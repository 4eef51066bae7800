"""The ``convexrelu`` command: fit / predict / evaluate / demo through subprocesses, every
failure case (one ``error:`` line, no traceback, non-zero exit), CSV reading with and
without pandas, and the progress display."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from convexrelu import ConvexReLUClassifier, ConvexReLURegressor
from convexrelu._progress import StatusLine, log_to_stream, stream_is_terminal
from convexrelu.cli import CLIError, main, read_table
from convexrelu.io import load_model_file

FAST = ["--n-patterns", "5", "--patterns", "sample", "--no-certificate"]


def run_cli(*args, cwd=None):
    """``python -m convexrelu.cli ARGS`` -> CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "convexrelu.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def run_many(commands, cwd=None, parallel=2):
    """Run independent CLI commands, ``parallel`` at a time; results in order."""
    out = [None] * len(commands)
    running = []
    for i, c in enumerate(list(commands) + [None] * parallel):
        if c is not None:
            running.append((i, subprocess.Popen([sys.executable, "-m", "convexrelu.cli", *map(str, c)],
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)))
        if len(running) >= parallel or c is None:
            if not running:
                continue
            j, p = running.pop(0)
            stdout, stderr = p.communicate(timeout=300)
            out[j] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


def assert_one_line_error(result, match):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert match in lines[0], lines[0]


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = np.random.default_rng(0)
    X = r.standard_normal((30, 2)) * [10.0, 0.1] + [5.0, -1.0]
    y = np.maximum((X[:, 0] - 5) / 10, 0) - 2 * (X[:, 1] + 1) / 0.1 * 0.1
    _write_csv(d / "reg.csv", ["x1", "x2", "y"], np.column_stack([X, y]).tolist())
    label = np.where(X[:, 0] + 30 * X[:, 1] > 5 - 30, "dog", "cat")
    _write_csv(d / "clf.csv", ["id", "x1", "x2", "label"],
               [[f"row{i}", a, b, c] for i, (a, b, c) in enumerate(zip(X[:, 0], X[:, 1], label))])
    _write_csv(d / "clf_features_only.csv", ["x2", "x1"], np.column_stack([X[:, 1], X[:, 0]]).tolist())
    return d


# ---------------------------------------------------------------------- success paths
def test_python_dash_m_convexrelu_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "convexrelu", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: convexrelu" in done.stdout and "fit" in done.stdout


def test_help_everywhere():
    top = run_cli("--help")
    assert top.returncode == 0 and "fit" in top.stdout and "demo" in top.stdout
    for cmd in ("fit", "predict", "evaluate", "demo"):
        assert main([cmd, "--help"]) == 0


def test_fit_predict_evaluate_regression(data):
    model = data / "reg.model"
    fit = run_cli("fit", data / "reg.csv", "--target", "y", "--depth", "2", "--beta", "0.05", *FAST, "-o", model)
    assert fit.returncode == 0, fit.stderr
    for field in ("objective", "lower bound / gap", "active neurons", "patterns", "time", "train R^2", "regression"):
        assert field in fit.stdout
    assert f"model written to {model}" in fit.stdout
    assert "\r" not in fit.stderr  # no live status line when stderr is not a terminal

    mf = load_model_file(model)
    assert isinstance(mf.model, ConvexReLURegressor) and mf.model.depth == 2 and mf.model.beta == 0.05
    assert mf.extra["cli"]["features"] == ["x1", "x2"] and mf.extra["cli"]["targets"] == ["y"]
    raw = np.loadtxt(data / "reg.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(mf.mean, raw[:, :2].mean(axis=0))
    expected = mf.model.predict((raw[:, :2] - mf.mean) / mf.scale)

    out = data / "pred.csv"
    pred, ev = run_many([
        ("predict", model, data / "reg.csv", "-o", out),
        ("evaluate", model, data / "reg.csv", "--target", "y"),
    ])
    assert pred.returncode == 0 and ev.returncode == 0, pred.stderr + ev.stderr
    got = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    with open(out) as fh:
        assert fh.readline().strip() == "prediction"
    r2 = float(next(line for line in ev.stdout.splitlines() if "R^2" in line).split()[-1])
    assert abs(r2 - mf.model.score((raw[:, :2] - mf.mean) / mf.scale, raw[:, 2])) < 1e-3
    assert "RMSE" in ev.stdout and "MAE" in ev.stdout


def test_fit_predict_evaluate_classification(data, capsys):
    """The same commands in process (``main``), for the classification paths."""
    model = data / "clf.model"
    assert main(["fit", str(data / "clf.csv"), "--target", "label", "--ignore", "id", "--depth", "3", "--loss",
                 "softmax", "--beta", "0.1", "--seed", "3", "--n-patterns", "5", "-o", str(model)]) == 0
    fit = capsys.readouterr().out
    assert "classification (2 classes)" in fit and "train accuracy" in fit
    assert "active sub-networks" in fit
    try:
        import convexrelu.certificates  # noqa: F401
    except ImportError:
        pass
    else:  # the certificate row of the summary (the atom search ran: no --no-certificate)
        assert "global lower bound" in fit
    mf = load_model_file(model)
    assert isinstance(mf.model, ConvexReLUClassifier) and list(mf.model.classes_) == ["cat", "dog"]
    assert mf.model.random_state == 3
    out = data / "clf_pred.csv"
    assert main(["predict", str(model), str(data / "clf.csv"), "-o", str(out)]) == 0
    assert main(["evaluate", str(model), str(data / "clf.csv"), "--target", "label"]) == 0
    ev = capsys.readouterr().out
    assert main(["predict", str(model), str(data / "clf_features_only.csv")]) == 0  # columns by name, any order
    reordered = capsys.readouterr().out
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"prediction", "proba_cat", "proba_dog"}
    assert {r["prediction"] for r in rows} <= {"cat", "dog"}
    assert all(abs(float(r["proba_cat"]) + float(r["proba_dog"]) - 1) < 1e-9 for r in rows)
    assert reordered == open(out).read()
    accuracy = float(next(line for line in ev.splitlines() if "accuracy" in line).split()[-1])
    assert accuracy >= 0.8 and "log loss" in ev


def test_csv_is_read_the_same_with_or_without_pandas(data, tmp_path, monkeypatch, capsys):
    """CSV is read by the csv module whether pandas is importable or not: pandas' reader
    had given numbers one unit in the last place off (on another machine), shifted every
    column left on rows ending with a comma, and renamed repeated columns."""
    import convexrelu.cli as cli

    monkeypatch.setattr(cli, "_pandas", lambda: pytest.fail("pandas used to read a CSV"))
    table = read_table(data / "clf.csv")
    assert table.columns == ["id", "x1", "x2", "label"]
    with open(data / "clf.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_array_equal(table.numeric("x1"), [float(r["x1"]) for r in rows])  # correctly rounded
    assert list(table.column("label")) == [r["label"] for r in rows]
    code = main(["fit", str(data / "reg.csv"), "--target", "y", "--depth", "2", "--no-standardize", "--task",
                 "regression", *FAST, "-o", str(tmp_path / "m")])
    assert code == 0
    assert "standardised" not in capsys.readouterr().out
    assert load_model_file(tmp_path / "m").mean is None


@pytest.mark.parametrize("text, match", [
    ("a,b,y\n1,2,3,\n4,5,6,\n", "data row 1, line 2, has 4 fields, the header 3"),  # trailing commas
    ("a,a,y\n1,2,3\n4,5,6\n", "the header names column 'a' more than once"),
    (",a,y\n0,2,3\n1,5,6\n", "column 1 of the header has no name"),  # an index written with the data
])
def test_csv_headers_and_rows_that_would_misplace_columns_are_refused(tmp_path, text, match):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(CLIError, match=match):
        read_table(tmp_path / "d.csv")


def test_csv_encoding_spaces_and_compression(tmp_path):
    import gzip

    (tmp_path / "bom.csv").write_bytes("\ufeffa , b,y\n1,2,3\n4,5,6\n".encode("utf-8"))
    table = read_table(tmp_path / "bom.csv")
    assert table.columns == ["a", "b", "y"]  # no byte-order mark, no spaces
    with gzip.open(tmp_path / "d.csv.gz", "wt") as fh:
        fh.write("a,y\n1.5,2\n3,4\n")
    np.testing.assert_array_equal(read_table(tmp_path / "d.csv.gz").numeric("a"), [1.5, 3.0])
    (tmp_path / "latin.csv").write_bytes("a,y\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(CLIError, match=r"not UTF-8 text \(byte 0xe9 at position 7\); save it as UTF-8"):
        read_table(tmp_path / "latin.csv")


def test_class_labels_are_kept_exactly(tmp_path, capsys):
    """Integer labels beyond 2^53 had been changed (9007199254740993 read as ...992, two
    classes merged into one), beyond int64 turned into -9223372036854775808; booleans,
    and numbers that are not integers, are labels too."""
    from convexrelu.cli import _class_labels

    big = [9007199254740993, 9007199254740992]
    rows = [[i / 10, big[i % 2]] for i in range(12)]
    path = _write_csv(tmp_path / "big.csv", ["a", "k"], rows)
    assert main(["fit", str(path), "-t", "k", "--depth", "2", "--task", "classification", *FAST,
                 "-o", str(tmp_path / "m")]) == 0
    assert load_model_file(tmp_path / "m").model.classes_.tolist() == sorted(big)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(path)]) == 0
    assert set(capsys.readouterr().out.split()[1:]) <= {str(v) for v in big}
    for cells, labels in [
        (["12345678901234567890", "1"], ["12345678901234567890", "1"]),  # beyond int64: text
        (["True", "false", "TRUE"], ["True", "False", "True"]),
        (["0.5", "1.50"], ["0.5", "1.5"]),
        (["1.0", "2"], [1, 2]),
        (["cat", "1"], ["cat", "1"]),
    ]:
        (tmp_path / "c.csv").write_text("k\n" + "\n".join(cells) + "\n")
        assert _class_labels(read_table(tmp_path / "c.csv"), "k").tolist() == labels


def test_booleans_are_features_and_halves_are_classes(tmp_path, capsys):
    rows = [[i / 10, ["True", "False"][i % 2], [0.5, 1.5][i % 3 == 0]] for i in range(12)]
    path = _write_csv(tmp_path / "d.csv", ["a", "flag", "kind"], rows)
    assert main(["fit", str(path), "-t", "kind", "--depth", "2", "--task", "classification", *FAST,
                 "-o", str(tmp_path / "m")]) == 0
    mf = load_model_file(tmp_path / "m")
    assert mf.extra["cli"]["features"] == ["a", "flag"] and mf.model.classes_.tolist() == ["0.5", "1.5"]


def test_errors_name_the_columns_and_options(tmp_path, capsys):
    path = _write_csv(tmp_path / "huge.csv", ["a", "big", "y"], [[i, 1e307 * (i % 2), i] for i in range(8)])
    assert main(["fit", str(path), "-t", "y", "--depth", "2", *FAST, "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "column 'big' holds 1e+307 on line 3" in err and "rescale the column" in err and "warning" not in err
    path = _write_csv(tmp_path / "d.csv", ["a", "y"], [[i, i % 2] for i in range(8)])
    assert main(["fit", str(path), "-t", "y", "--depth", "3", "--gated", *FAST, "-o", str(tmp_path / "m")]) == 1
    assert capsys.readouterr().err.startswith("error: --gated: ")
    assert main(["fit", str(path), "-t", "y", "--task", "regression", "--depth", "2", *FAST,
                 "-o", str(tmp_path / "r")]) == 0
    words = _write_csv(tmp_path / "w.csv", ["a", "y"], [[i, "cat"] for i in range(8)])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), str(words)]) == 1
    err = capsys.readouterr().err
    assert "the model is a regressor: its targets are numbers" in err and "--task" not in err


def test_evaluate_scores_the_stored_targets_in_their_order(tmp_path, capsys):
    path = _write_csv(tmp_path / "d.csv", ["a", "y", "z"], [[i / 10, (i / 10) ** 2, -i / 10] for i in range(12)])
    assert main(["fit", str(path), "-t", "y", "-t", "z", "--depth", "2", *FAST, "-o", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), str(path)]) == 0
    default = capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "m"), str(path), "-t", "y", "-t", "z"]) == 0
    assert capsys.readouterr().out == default
    assert main(["evaluate", str(tmp_path / "m"), str(path), "-t", "z", "-t", "y"]) == 1  # had scored 'z' as 'y'
    assert "--target: the model was fitted on 'y', 'z' (in that order); got 'z', 'y'" in capsys.readouterr().err


def test_predict_into_a_closed_pipe_stops_quietly(data, tmp_path):
    """``convexrelu predict ... | head -1`` had ended with "error: BrokenPipeError"."""
    assert main(["fit", str(data / "reg.csv"), "-t", "y", "--depth", "2", *FAST, "-o", str(tmp_path / "m")]) == 0
    rows = [[float(i % 7), float(i % 5)] for i in range(20000)]
    big = _write_csv(tmp_path / "big.csv", ["x1", "x2"], rows)
    proc = subprocess.Popen([sys.executable, "-m", "convexrelu.cli", "predict", str(tmp_path / "m"), str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"prediction"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and "error" not in err, err


def test_predict_output_is_checked_first(data, bad, tmp_path, capsys):
    assert main(["predict", str(bad / "good.model"), str(data / "clf.csv"), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: -o/--output: ") and "is a directory" in err
    assert main(["predict", str(bad / "good.model"), str(data / "clf.csv"), "-o", str(tmp_path / "no" / "p.csv")]) == 1
    assert "the folder" in capsys.readouterr().err


def test_fit_device_dtype_and_max_time_reach_the_estimator(data, tmp_path, capsys):
    assert main(["fit", str(data / "reg.csv"), "--target", "y", "--depth", "2", "--device", "cpu", "--dtype", "float32",
                 "--max-time", "30", *FAST, "-o", str(tmp_path / "m")]) == 0
    model = load_model_file(tmp_path / "m").model
    assert model.device == "cpu" and model.dtype == "float32" and model.max_time == 30.0
    capsys.readouterr()
    assert main(["fit", str(data / "reg.csv"), "--target", "y", "--device", "nonsense-device", *FAST,
                 "-o", str(tmp_path / "m2")]) != 0
    err = capsys.readouterr().err
    assert "error:" in err and "device" in err and "Traceback" not in err


def test_warnings_are_one_line(data, tmp_path, capsys):
    assert main(["fit", str(data / "reg.csv"), "--target", "y", "--depth", "2", "--solver", "cvxpy", "--max-iter", "2",
                 *FAST, "-o", str(tmp_path / "m")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err and all(line.startswith("warning: ") for line in err), err
    assert any("user_limit" in line for line in err)


def test_multi_target_regression_and_auto_task(data, tmp_path, capsys):
    path = _write_csv(tmp_path / "multi.csv", ["a", "t1", "t2"], [[i / 10, (i / 10) ** 2, -i / 10] for i in range(12)])
    assert main(["fit", str(path), "-t", "t1", "-t", "t2", "--depth", "2", *FAST, "-o", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "prediction_t1,prediction_t2"
    assert main(["evaluate", str(tmp_path / "m"), str(path), "-t", "t1", "-t", "t2"]) == 0
    ints = _write_csv(tmp_path / "ints.csv", ["a", "k"], [[i, i % 2] for i in range(12)])
    assert main(["fit", str(ints), "-t", "k", "--depth", "2", *FAST, "-o", str(tmp_path / "k")]) == 0
    assert "classification (2 classes)" in capsys.readouterr().out
    np.testing.assert_array_equal(load_model_file(tmp_path / "k").model.classes_, [0, 1])


def test_parquet_is_read_or_refused_clearly(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    path = tmp_path / "d.parquet"
    try:
        frame.to_parquet(path)
    except ImportError:
        path.write_bytes(b"PAR1 not really")
        with pytest.raises(CLIError, match="Parquet"):
            read_table(path)
        return
    table = read_table(path)
    np.testing.assert_array_equal(table.numeric("a"), [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------- failure cases
@pytest.fixture(scope="module")
def bad(data, tmp_path_factory):
    """Bad inputs of every kind, and a good model to feed them to."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.csv").write_text("")
    _write_csv(d / "header.csv", ["x", "y"], [])
    _write_csv(d / "nonnum.csv", ["x", "z", "y"], [[1, "a", 1.0], [2, "b", 2.0], [3, "c", 3.0]])
    _write_csv(d / "nan.csv", ["x", "y"], [[1, 1.0], ["", 2.0], [3, 3.0]])
    _write_csv(d / "nan2.csv", ["x", "y"], [[1, 1.0], ["nan", 2.0], [3, 3.0]])
    _write_csv(d / "inf.csv", ["x", "y"], [[1, 1.0], ["inf", 2.0], [3, 3.0]])
    _write_csv(d / "one.csv", ["x", "y"], [[1, "a"], [2, "a"], [3, "a"]])
    _write_csv(d / "cols.csv", ["q"], [[1.0]])
    (d / "ragged.csv").write_text("x,y\n1,2\n3,4,5,6\n")
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00\xff")
    (d / "bad.model").write_text("this is not a model")
    _write_csv(d / "otherlabels.csv", ["x1", "x2", "label"], [[1.0, 2.0, "emu"], [3.0, 4.0, "yak"]])
    assert main(["fit", str(data / "clf.csv"), "-t", "label", "--ignore", "id", "--depth", "2", *FAST,
                 "-o", str(d / "good.model")]) == 0
    return d


def test_failure_cases_through_subprocess(data, bad, tmp_path):
    """The failure cases of the issue, through the real command: one line, no traceback."""
    cases = [
        (("fit", tmp_path / "missing.csv", "-t", "y", "-o", tmp_path / "m"), "no such file", 1),
        (("fit", data / "reg.csv", "-t", "nope", "-o", tmp_path / "m"), "no column 'nope'", 1),
        (("fit", bad / "nonnum.csv", "-t", "y", "-o", tmp_path / "m"), "column 'z' is not numeric", 1),
        (("fit", bad / "nan.csv", "-t", "y", "-o", tmp_path / "m"), "column 'x' has 1 missing or NaN value", 1),
        (("fit", bad / "empty.csv", "-t", "y", "-o", tmp_path / "m"), "file is empty", 1),
        (("predict", bad / "bad.model", data / "clf.csv"), "not a convexrelu model file", 1),
        (("fit", data / "reg.csv", "-o", tmp_path / "m"), "the following arguments are required: --target", 2),
    ]
    for (cmd, match, code), res in zip(cases, run_many([c for c, _, _ in cases], cwd=tmp_path)):
        assert_one_line_error(res, match)
        assert res.returncode == code, (cmd, res.returncode, res.stderr)
    assert not (tmp_path / "m").exists()  # nothing written on failure


@pytest.mark.parametrize(
    "args, match, code",
    [
        (("fit", "{bad}/nan2.csv", "-t", "y"), "missing or NaN", 1),
        (("fit", "{bad}/inf.csv", "-t", "y"), "infinite", 1),
        (("fit", "{bad}/header.csv", "-t", "y"), "no data rows", 1),
        (("fit", "{bad}/ragged.csv", "-t", "y"), "cannot parse CSV", 1),
        (("fit", "{bad}/binary.csv", "-t", "y"), "binary.csv", 1),
        (("fit", "{bad}/one.csv", "-t", "y", "--task", "classification"), "only one class", 1),
        (("fit", "{bad}", "-t", "y"), "is a directory", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "--beta", "-1"), "error: --beta: expected a finite real number >= 0", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "--seed", "-1"), "--seed: expected an integer from 0 to 4294967295, got '-1'", 2),
        (("fit", "{data}/reg.csv", "-t", "y", "--seed", "99999999999999"), "--seed: expected an integer from 0", 2),
        (("fit", "{data}/reg.csv", "-t", "y", "--max-iter", "0"), "error: --max-iter: expected an integer >= 1", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "--max-time", "-1"), "--max-time: expected a positive number of seconds, got '-1'", 2),
        (("fit", "{data}/reg.csv", "-t", "y", "--max-time", "soon"), "--max-time: expected a positive number", 2),
        (("fit", "{data}/reg.csv", "-t", "y", "--gated"), "gated", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "--ignore", "zzz"), "no column 'zzz'", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "-t", "x1", "--task", "classification"), "exactly one target", 1),
        (("fit", "{data}/reg.csv", "-t", "y", "--depth", "4"), "invalid choice", 2),
        (("fit", "{data}/reg.csv", "-t", "y", "--hidden", "two"), "invalid int value", 2),
        (("predict", "{bad}/nomodel", "{data}/clf.csv"), "no such model file", 1),
        (("predict", "{bad}/good.model", "{bad}/cols.csv"), "missing feature column", 1),
        (("predict", "{bad}/good.model", "{bad}/missing.csv"), "no such file", 1),
        (("predict", "{bad}/good.model"), "the following arguments are required: DATA", 2),
        (("evaluate", "{bad}/good.model", "{data}/clf.csv", "-t", "nope"),
         "--target: the model was fitted on 'label' (in that order); got 'nope'", 1),
        (("evaluate", "{bad}/good.model", "{data}/reg.csv"), "no column 'label'", 1),
        (("evaluate", "{bad}/bad.model", "{data}/clf.csv", "-t", "label"), "not a convexrelu model file", 1),
        (("evaluate", "{bad}/good.model", "{bad}/otherlabels.csv"), "shares no value with the model's classes ('cat', 'dog')", 1),
        ((), "the following arguments are required: COMMAND", 2),
        (("frobnicate",), "invalid choice", 2),
    ],
)
def test_failure_cases_in_process(data, bad, tmp_path, capsys, args, match, code):
    args = [a.format(bad=bad, data=data) for a in args]
    if args and args[0] == "fit":
        args += [*FAST, "-o", str(tmp_path / "m")]
    assert main(args) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------- demo
def test_demo_quick(tmp_path):
    res = run_cli("demo", "--quick", "--output-dir", tmp_path / "demo")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    out = res.stdout
    assert "breast cancer" in out and "convex program" in out and "train objective (P3)" in out
    assert (tmp_path / "demo" / "demo_objectives.png").stat().st_size > 1000
    results = json.loads((tmp_path / "demo" / "demo_results.json").read_text())
    c = results["convex"]
    assert abs(c["objective"] - c["program_objective"]) <= 1e-5 * max(1.0, abs(c["objective"]))
    assert 0.8 <= c["test_accuracy"] <= 1.0
    if results["adam"] is not None:
        assert "Adam, best of" in out
        assert results["adam"]["subnetworks"] == c["active_subnetworks"]
        assert results["adam"]["objective"] == min(results["adam"]["objectives"])


# ---------------------------------------------------------------------- progress display
def test_status_line_draws_only_when_enabled():
    import logging

    buf = io.StringIO()
    assert not stream_is_terminal(buf)
    with StatusLine("fitting", stream=buf) as status:  # not a terminal: silent
        status.set("ignored")
        logging.getLogger("convexrelu.test").info("nothing")
    assert buf.getvalue() == ""

    buf = io.StringIO()
    logger = logging.getLogger("convexrelu")
    level = logger.level
    with StatusLine("fitting", stream=buf, enabled=True, interval=0.01) as status:
        logging.getLogger("convexrelu.estimators").info("solving %d patterns", 7)
        assert "solving 7 patterns" in status.render()
        import time

        time.sleep(0.05)
    text = buf.getvalue()
    assert "\r" in text and "fitting" in text and "solving 7 patterns" in text
    assert text.endswith("\r\x1b[K")  # the line is cleared at the end
    assert logger.level == level and not any(type(h).__name__ == "_StatusHandler" for h in logger.handlers)


def test_log_to_stream(capsys):
    import logging

    buf = io.StringIO()
    with log_to_stream(1, stream=buf):
        logging.getLogger("convexrelu.x").info("hello %s", "there")
        logging.getLogger("convexrelu.x").debug("hidden")
    with log_to_stream(0, stream=buf):
        logging.getLogger("convexrelu.x").info("not shown")
    assert buf.getvalue() == "[convexrelu] hello there\n"


def test_output_path_is_checked_before_the_fit(data, tmp_path, capsys):
    for out, match in ((tmp_path / "no-such-folder" / "m.npz", "-o/--output: cannot write"),
                       (tmp_path, "-o/--output: " + repr(str(tmp_path)) + " is a directory")):
        assert main(["fit", str(data / "reg.csv"), "-t", "y", *FAST, "-o", str(out)]) == 1
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
        assert "fitting" not in err.lower()


def test_a_model_fitted_on_named_columns_predicts_without_scikit_learns_warning(data, tmp_path, capsys):
    """A model fitted in Python on a DataFrame keeps ``feature_names_in_``; the CLI matches
    the CSV's columns to them by name and passes numbers, and every prediction had printed
    "warning: X does not have valid feature names"."""
    from convexrelu import save

    rows = np.loadtxt(data / "reg.csv", delimiter=",", skiprows=1)
    est = ConvexReLURegressor(depth=2, n_patterns=5, random_state=0).fit(rows[:, [1, 0]], rows[:, 2])
    expected = est.predict(rows[:, [1, 0]])
    est.feature_names_in_ = np.array(["x2", "x1"], dtype=object)  # (as fitted on a DataFrame of these columns)
    save(est, tmp_path / "named.npz")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "named.npz"), str(data / "reg.csv")]) == 0
    out, err = capsys.readouterr()
    assert "feature names" not in err, err
    got = np.array([float(v) for v in out.split()[1:]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_demo_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    taken = tmp_path / "d.csv"
    taken.write_text("x\n1\n")
    assert main(["demo", "--quick", "--output-dir", str(taken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --output-dir: {str(taken)!r} exists and is not a directory"), err
    assert taken.read_text() == "x\n1\n"


def test_output_never_replaces_an_input(data, tmp_path, capsys):
    """``fit d.csv -o d.csv`` had replaced the data with the model, ``predict m new.csv -o
    m`` the model with the predictions' CSV, both with exit status 0."""
    csv = tmp_path / "reg.csv"
    csv.write_bytes((data / "reg.csv").read_bytes())
    before = csv.read_bytes()
    assert main(["fit", str(csv), "-t", "y", *FAST, "-o", str(csv)]) == 1
    err = capsys.readouterr().err
    assert f"-o/--output: {str(csv)!r} is the data file" in err and csv.read_bytes() == before
    model = tmp_path / "m.npz"
    assert main(["fit", str(csv), "-t", "y", "--depth", "2", *FAST, "-o", str(model)]) == 0
    kept = model.read_bytes()
    capsys.readouterr()
    for out, name in ((model, "model"), (tmp_path / "." / "reg.csv", "data")):
        assert main(["predict", str(model), str(csv), "-o", str(out)]) == 1
        assert f"is the {name} file" in capsys.readouterr().err
    assert model.read_bytes() == kept and csv.read_bytes() == before


def test_non_numeric_regression_target_points_to_classification(data, tmp_path, capsys):
    assert main(["fit", str(data / "clf.csv"), "-t", "label", "--ignore", "id", "--task", "regression", *FAST,
                 "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "column 'label' is not numeric" in err and "use --task classification" in err and "--ignore" not in err


def test_demo_plot_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from convexrelu._demo import DemoSettings, _plot

    before = matplotlib.get_backend()
    settings = DemoSettings(n_train=10, n_patterns=5, patterns="sample", hidden=2, beta=1.0, adam_starts=0,
                            adam_iter=0, adam_lr=1e-3, solver="auto")
    _plot(tmp_path / "p.png", {"convex": {"objective": 1.5, "patterns": 5}, "adam": None, "n_train": 10}, None,
          settings)
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert matplotlib.get_backend() == before
