"""Model files: round trips give identical predictions; corrupt or foreign files give a
clear ValueError; no pickle anywhere."""

import json
import os
import warnings
import zipfile

import numpy as np
import pytest

import convexrelu
from convexrelu import ConvexReLUClassifier, ConvexReLURegressor, ThreeLayerNetwork, TwoLayerNetwork
from convexrelu.io import FORMAT, FORMAT_VERSION, check_output_path, load, load_model_file, save
from conftest import planted_regression

SMALL = dict(n_patterns=5, patterns="sample", random_state=0, beta=0.1)


def _blobs(n=30, n_classes=2, seed=0):
    r = np.random.default_rng(seed)
    centers = 3.0 * r.standard_normal((n_classes, 2))
    y = np.arange(n) % n_classes
    return centers[y] + 0.5 * r.standard_normal((n, 2)), y


@pytest.fixture(scope="module")
def fitted():
    X, y = planted_regression(n=25, d=3)
    Xc, yc = _blobs(n=30, n_classes=3)
    models = {
        "reg3": (ConvexReLURegressor(**SMALL).fit(X, y), X),
        "reg2-multi": (ConvexReLURegressor(depth=2, **SMALL).fit(X, np.column_stack([y, 2 * y])), X),
        "gated": (ConvexReLURegressor(depth=2, gated=True, fit_intercept=False, **SMALL).fit(X, y), X),
        "clf-str": (ConvexReLUClassifier(depth=2, **SMALL).fit(Xc, np.array(["a", "b", "c"], dtype=object)[yc]), Xc),
        "clf-softmax": (ConvexReLUClassifier(loss="softmax", **SMALL).fit(Xc, yc + 5), Xc),
        "clf-logistic-bool": (ConvexReLUClassifier(depth=2, loss="logistic", **SMALL).fit(Xc[yc < 2], yc[yc < 2] == 1),
                              Xc[yc < 2]),
    }
    return models


@pytest.mark.parametrize("name", ["reg3", "reg2-multi", "gated", "clf-str", "clf-softmax", "clf-logistic-bool"])
def test_round_trip_identical_predictions(fitted, name, tmp_path):
    est, X = fitted[name]
    path = tmp_path / "model.crelu"
    est.save(path)
    assert path.exists() and not (tmp_path / "model.crelu.npz").exists()  # written where asked
    back = type(est).load(path)
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.get_params() == est.get_params()
    for attr in ("objective_", "n_patterns_", "n_active_", "n_features_in_", "n_iter_"):
        assert getattr(back, attr) == getattr(est, attr)
    assert back.solver_info_["status"] == est.solver_info_["status"]
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(back.classes_, est.classes_)
        assert back.classes_.dtype == est.classes_.dtype
        np.testing.assert_array_equal(back.decision_function(X), est.decision_function(X))
        if hasattr(est, "predict_proba"):
            np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    # module-level functions do the same
    save(est, tmp_path / "m2")
    np.testing.assert_array_equal(load(tmp_path / "m2").predict(X), est.predict(X))


def test_file_is_plain_arrays_and_json(fitted, tmp_path):
    est, _ = fitted["clf-str"]
    path = tmp_path / "m.npz"
    convexrelu.save(est, path)
    with np.load(path, allow_pickle=False) as archive:  # no object arrays: loads without pickle
        names = set(archive.files)
        meta = json.loads(str(archive["metadata"][()]))
        for name in archive.files:
            assert archive[name].dtype != object
    assert {"metadata", "network.W1", "network.W2", "classes"} <= names
    assert meta["format"] == FORMAT and meta["format_version"] == FORMAT_VERSION == 1
    assert meta["library_version"] == convexrelu.__version__
    assert meta["estimator"] == "ConvexReLUClassifier"
    assert meta["params"]["depth"] == 2 and meta["params"]["beta"] == 0.1


def test_feature_names_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = planted_regression(n=20, d=2)
    frame = pd.DataFrame(X, columns=["left", "right"])
    est = ConvexReLURegressor(depth=2, **SMALL).fit(frame, y)
    est.save(tmp_path / "m")
    back = ConvexReLURegressor.load(tmp_path / "m")
    np.testing.assert_array_equal(back.feature_names_in_, ["left", "right"])
    np.testing.assert_array_equal(back.predict(frame), est.predict(frame))


def test_networks_and_standardization(fitted, tmp_path):
    est, X = fitted["reg3"]
    save(est.network_, tmp_path / "net")
    net = load(tmp_path / "net")
    assert isinstance(net, ThreeLayerNetwork)
    np.testing.assert_array_equal(net.predict(X), est.network_.predict(X))
    two = TwoLayerNetwork(np.ones((3, 2)), np.ones((2, 1)), gates=np.eye(3)[:, :2], fit_intercept=False)
    save(two, tmp_path / "two")
    back = load(tmp_path / "two")
    np.testing.assert_array_equal(back.gates, two.gates)
    mean, scale = np.array([1.0, 2.0, 3.0]), np.array([2.0, 1.0, 0.5])
    save(est, tmp_path / "std", standardization=(mean, scale), extra={"cli": {"features": ["a", "b", "c"]}})
    mf = load_model_file(tmp_path / "std")
    np.testing.assert_array_equal(mf.mean, mean)
    np.testing.assert_array_equal(mf.scale, scale)
    np.testing.assert_allclose(mf.transform(X), (X - mean) / scale)
    assert mf.extra["cli"]["features"] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="standardization"):
        save(est, tmp_path / "bad", standardization=(mean, -scale))
    # one mean and scale per input feature (two for three features had been written, and
    # the file's pipeline failed on its first prediction with numpy's broadcast error)
    for bad in ((mean[:2], scale[:2]), (0.0, 1.0)):
        with pytest.raises(ValueError, match=r"standardization: expected a mean and a scale per input feature of "
                                             r"the model \(3\), got [12]"):
            save(est, tmp_path / "bad", standardization=bad)
    save(est.network_, tmp_path / "net-std", standardization=(mean, scale))  # a network: its inputs
    with pytest.raises(ValueError, match=r"\(3\), got 2"):
        save(est.network_, tmp_path / "bad", standardization=(mean[:2], scale[:2]))


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save(ConvexReLURegressor(), tmp_path / "m")
    for path in (None, 5):  # (pathlib's own TypeError before)
        with pytest.raises(TypeError, match=f"path: expected a file path \\(str or os.PathLike\\), got {path}"):
            load(path)
        with pytest.raises(TypeError, match="path: expected a file path"):
            save(TwoLayerNetwork(np.ones((3, 2)), np.ones((2, 1))), path)
    with pytest.raises(TypeError, match="model"):
        save({"not": "a model"}, tmp_path / "m")
    est = ConvexReLURegressor(depth=2, **SMALL).fit(*planted_regression(n=15, d=2))
    est.save(tmp_path / "m")
    with pytest.raises(ValueError, match="ConvexReLURegressor, not a ConvexReLUClassifier"):
        ConvexReLUClassifier.load(tmp_path / "m")


def _rewrite(path, out, mutate):
    """Copy the archive at ``path`` to ``out`` with its arrays changed by ``mutate(dict)``."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    mutate(arrays)
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)


def test_corrupt_and_foreign_files(fitted, tmp_path):
    est, _ = fitted["reg3"]
    good = tmp_path / "good"
    est.save(good)
    raw = good.read_bytes()

    cases = {}
    (tmp_path / "text").write_text("hello, this is not a model\n")
    cases["text"] = "not a convexrelu model file"
    (tmp_path / "truncated").write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = "not a convexrelu model file"
    (tmp_path / "empty").write_bytes(b"")
    cases["empty"] = "not a convexrelu model file"
    np.save(tmp_path / "single.npy", np.arange(3))
    cases["single.npy"] = "not a convexrelu model file"
    with open(tmp_path / "foreign", "wb") as fh:
        np.savez(fh, weights=np.ones(3))
    cases["foreign"] = "no 'metadata'"
    with zipfile.ZipFile(tmp_path / "zip", "w") as zf:
        zf.writestr("readme.txt", "a zip, not npz")
    cases["zip"] = "not a convexrelu model file"
    pickled = tmp_path / "pickled"
    with open(pickled, "wb") as fh:
        np.savez(fh, metadata=np.array([{"format": FORMAT}], dtype=object))
    cases["pickled"] = "not a convexrelu model file"

    def other_format(a):
        a["metadata"] = np.asarray(json.dumps({"format": "something-else", "format_version": 1}))

    _rewrite(good, tmp_path / "other", other_format)
    cases["other"] = "not a convexrelu model file"

    def newer(a):
        meta = json.loads(str(a["metadata"][()]))
        meta["format_version"] = FORMAT_VERSION + 1
        a["metadata"] = np.asarray(json.dumps(meta))

    _rewrite(good, tmp_path / "newer", newer)
    cases["newer"] = "format version 2.*upgrade"

    def bad_json(a):
        a["metadata"] = np.asarray("{not json")

    _rewrite(good, tmp_path / "badjson", bad_json)
    cases["badjson"] = "metadata is not JSON"

    def missing_weights(a):
        del a["network.w3"]

    _rewrite(good, tmp_path / "noweights", missing_weights)
    cases["noweights"] = "corrupt.*network.w3"

    def wrong_shape(a):
        a["network.w2"] = np.ones((1, 1))

    _rewrite(good, tmp_path / "shape", wrong_shape)
    cases["shape"] = "corrupt.*inconsistent"

    def string_weights(a):
        a["network.W1"] = np.array(["x"])

    _rewrite(good, tmp_path / "strweights", string_weights)
    cases["strweights"] = "corrupt.*dtype"

    for entry in ("network", "params", "fitted"):  # an entry of the metadata of another type
        def retyped(a, entry=entry):
            meta = json.loads(str(a["metadata"][()]))
            meta[entry] = [1]
            a["metadata"] = np.asarray(json.dumps(meta))

        _rewrite(good, tmp_path / f"retyped-{entry}", retyped)
        cases[f"retyped-{entry}"] = "corrupt convexrelu model file"

    for name, match in cases.items():
        with pytest.raises(ValueError, match=match):
            load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "does-not-exist")
    with pytest.raises(ValueError, match="directory"):
        load(tmp_path)


def test_save_checks_the_path_first(tmp_path):
    est = ConvexReLURegressor(depth=2, **SMALL).fit(*planted_regression(n=15, d=2))
    with pytest.raises(ValueError, match="is a directory"):
        save(est, tmp_path)
    with pytest.raises(ValueError, match="the folder .* does not exist"):
        save(est, tmp_path / "missing" / "m.npz")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_object_parameters_are_named_and_loading_warns(tmp_path):
    from convexrelu.solvers import InteriorPoint

    X, y = planted_regression(n=15, d=2)
    est = ConvexReLURegressor(depth=2, **{**SMALL, "random_state": np.random.RandomState(0)},
                              solver=InteriorPoint(tol=1e-6)).fit(X, y)
    save(est, tmp_path / "m")
    with pytest.warns(UserWarning, match=r"not in the file: random_state=RandomState.*solver=<.*InteriorPoint"):
        back = load(tmp_path / "m")
    assert back.solver == "ipm" and back.random_state is None
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    plain = ConvexReLURegressor(depth=2, **SMALL).fit(X, y)
    save(plain, tmp_path / "p")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        load(tmp_path / "p")


def test_the_certificate_comes_back_as_a_certificate(tmp_path):
    from convexrelu.certificates import Certificate

    X, y = planted_regression(n=25, d=3)
    est = ConvexReLURegressor(depth=2, **SMALL).fit(X, y)
    est.save(tmp_path / "before")  # its certificate not computed yet: not in the file
    assert type(est).load(tmp_path / "before").certificate_ is None
    cert = est.certificate_
    est.save(tmp_path / "after")
    back = type(est).load(tmp_path / "after").certificate_
    assert isinstance(back, Certificate)
    assert back.lower == cert.lower and back.upper == cert.upper and back.gap == cert.gap
    assert back.proven == cert.proven and str(back) == str(cert)
    # infinite numbers (beta = 0: no atom is small enough) come back as such
    est0 = ConvexReLURegressor(depth=2, **{**SMALL, "beta": 0.0}).fit(X, y)
    cert0 = est0.certificate_
    est0.save(tmp_path / "beta0")
    back0 = type(est0).load(tmp_path / "beta0").certificate_
    assert not np.isfinite(cert0.max_violation) and back0.max_violation == cert0.max_violation
    assert str(back0) == str(cert0)



def test_a_device_or_pipe_is_not_replaced(tmp_path):
    """``convexrelu fit -o /dev/full`` (as root) had replaced the device with a model file:
    save writes a new file and renames it over the old one."""

    with pytest.raises(ValueError, match="exists and is not a regular file"):
        check_output_path(os.devnull)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        save(ConvexReLURegressor(), fifo)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_folder_that_refuses_files_is_found_before_the_work(tmp_path):
    with pytest.raises(ValueError, match="the folder '/proc' refuses new files"):
        check_output_path("/proc/m.npz")


def test_file_mode_follows_the_umask_or_the_replaced_file(fitted, tmp_path):
    """Model files had been written 0o600 whatever the umask (mkstemp's mode)."""

    est, _ = fitted["reg3"]
    old = os.umask(0o022)
    try:
        est.save(tmp_path / "m")
        assert (tmp_path / "m").stat().st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "m", 0o640)
        est.save(tmp_path / "m")
        assert (tmp_path / "m").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_loading_a_standardised_model_warns(fitted, tmp_path):
    est, X = fitted["reg3"]
    save(est, tmp_path / "std", standardization=(np.zeros(X.shape[1]), np.full(X.shape[1], 2.0)))
    with pytest.warns(UserWarning, match="stores a feature standardisation, which the returned model does not apply"):
        load(tmp_path / "std")
    with pytest.warns(UserWarning, match="load_model_file"):
        ConvexReLURegressor.load(tmp_path / "std")
    save(est, tmp_path / "plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(tmp_path / "plain")


def test_a_corrupt_member_is_named(fitted, tmp_path):
    """A flipped byte inside a compressed member had raised zlib.error, unnamed."""
    est, _ = fitted["reg3"]
    est.save(tmp_path / "m")
    raw = bytearray((tmp_path / "m").read_bytes())
    with zipfile.ZipFile(tmp_path / "m") as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 5, start + min(info.compress_size, 60)):
        raw[k] ^= 0x5A
    (tmp_path / "bad").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a convexrelu model file"):
        load_model_file(tmp_path / "bad")


def test_a_standardised_model_file_as_one_pipeline(fitted, tmp_path):
    import pickle

    est, X = fitted["reg3"]
    mean, scale = np.full(X.shape[1], 0.5), np.full(X.shape[1], 2.0)
    save(est, tmp_path / "std", standardization=(mean, scale))
    pipe = load_model_file(tmp_path / "std").pipeline()
    np.testing.assert_array_equal(pipe.predict(X), est.predict((X - mean) / scale))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pipe)).predict(X), pipe.predict(X))
    save(est, tmp_path / "plain")
    assert isinstance(load_model_file(tmp_path / "plain").pipeline(), ConvexReLURegressor)
