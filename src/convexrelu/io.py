"""Model files: fitted estimators and networks as ``.npz`` archives that run no code.

Format (``format: "convexrelu-model"``, ``format_version: 1``): a NumPy ``.npz`` (zip)
archive of plain numeric/string arrays, read back with ``np.load(allow_pickle=False)``,
so that loading a file can never execute code (unlike pickle). Entries:

- ``metadata``: a 0-d unicode array holding one JSON object:
  ``format``, ``format_version``, ``library_version``, ``kind`` ("estimator" or
  "network"), ``estimator`` (class name), ``params`` (the estimator's parameters),
  ``params_not_stored`` (the repr of those that were objects: a Solver instance is
  stored by its name, a RandomState as None; loading warns about them),
  ``network`` (its class, ``fit_intercept``), ``fitted`` (scalar fitted attributes:
  ``objective_``, ``n_patterns_``, ``n_active_``, ``n_iter_``, ``n_outputs_``,
  ``solver_info_``, ...), ``classes_dtype``, ``preprocessing`` (whether a
  standardisation is stored) and ``extra`` (free JSON, e.g. the CLI's column names).
- ``network.W1``, ``network.W2``, ``network.gates`` (two-layer) or ``network.W1``,
  ``network.w2``, ``network.w3`` (three-layer): the weights.
- ``classes``, ``feature_names_in``: the classifier's labels and the feature names.
- ``preprocessing.mean``, ``preprocessing.scale``: the standardisation applied to the
  raw features before the model (``(x - mean) / scale``), used by the CLI.

Non-finite floats in the metadata are written as ``null``.
"""

from __future__ import annotations

import io as _io
import json
import math
import numbers
import os
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .networks import ThreeLayerNetwork, TwoLayerNetwork

__all__ = ["save", "load", "load_model_file", "check_output_path", "ModelFile", "FORMAT", "FORMAT_VERSION"]

FORMAT = "convexrelu-model"
FORMAT_VERSION = 1

#: Scalar fitted attributes stored in the metadata.
_SCALAR_FITTED = ("objective_", "n_patterns_", "n_active_", "n_iter_", "n_outputs_", "n_features_in_")


@dataclass
class ModelFile:
    """The content of a model file.

    Attributes
    ----------
    model : ConvexReLURegressor, ConvexReLUClassifier, TwoLayerNetwork or ThreeLayerNetwork
    metadata : dict
        The JSON metadata as written.
    mean, scale : ndarray or None
        The stored standardisation (``(x - mean) / scale``), if any.
    """

    model: Any
    metadata: dict = field(default_factory=dict)
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def extra(self) -> dict:
        """The free-form ``extra`` metadata given to :func:`save`."""
        return dict(self.metadata.get("extra") or {})

    def transform(self, X) -> np.ndarray:
        """Apply the stored standardisation to raw features (identity if none)."""
        X = np.asarray(X, dtype=np.float64)
        if self.mean is None:
            return X
        return _standardize(X, self.mean, self.scale)

    def pipeline(self):
        """The model as one scikit-learn estimator on raw features: a ``Pipeline`` of the
        stored standardisation (a ``FunctionTransformer``) and the model, or the model
        itself where the file stores none. ``load_model_file(path).pipeline().predict(X)``
        predicts as ``convexrelu predict`` does."""
        if self.mean is None:
            return self.model
        from functools import partial

        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        scaler = FunctionTransformer(partial(_standardize, mean=self.mean, scale=self.scale))
        return make_pipeline(scaler.fit(np.zeros((1, self.mean.shape[0]))), self.model)


def _standardize(X, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale`` in float64 (module level: a pipeline holding it pickles)."""
    return (np.asarray(X, dtype=np.float64) - mean) / scale


# ---------------------------------------------------------------------- helpers
def _jsonable(value):
    """A JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return _jsonable(value.tolist())
    return str(value)


def _param_for_json(name: str, value) -> tuple[Any, bool]:
    """An estimator parameter for the metadata, and whether it is stored exactly: JSON
    values and a torch dtype or device (by its name) are; a Solver instance (stored by its
    name) and anything else, e.g. a RandomState (stored as None), are not (listed in
    ``params_not_stored``, so that loading warns instead of pretending otherwise)."""
    if value is None or isinstance(value, (bool, str, numbers.Integral, numbers.Real)):
        return _jsonable(value), True
    import torch

    if isinstance(value, (torch.dtype, torch.device)):
        return str(value).replace("torch.", ""), True
    if name == "solver":
        return getattr(value, "name", None) or type(value).__name__, False
    return None, False


def _string_array(values) -> np.ndarray:
    """An array without object dtype: numbers stay numbers, anything else becomes str."""
    arr = np.asarray(values)
    if arr.dtype != object:
        return arr
    items = arr.tolist()
    if items and all(isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_)) for v in items):
        return np.asarray(items)
    return np.asarray([str(v) for v in items], dtype=str)


def _network_inputs(network) -> int:
    """The number of input features of a network (its first layer's rows, less the
    intercept's)."""
    rows = network.W1.shape[-2] if isinstance(network, ThreeLayerNetwork) else network.W1.shape[0]
    return int(rows) - (1 if network.fit_intercept else 0)


def _network_arrays(network) -> tuple[dict, dict]:
    if isinstance(network, ThreeLayerNetwork):
        arrays = {"network.W1": network.W1, "network.w2": network.w2, "network.w3": network.w3}
        meta = {"class": "ThreeLayerNetwork", "fit_intercept": network.fit_intercept}
    elif isinstance(network, TwoLayerNetwork):
        arrays = {"network.W1": network.W1, "network.W2": network.W2}
        if network.gates is not None:
            arrays["network.gates"] = network.gates
        meta = {"class": "TwoLayerNetwork", "fit_intercept": network.fit_intercept, "gated": network.gates is not None}
    else:
        raise TypeError(
            f"model: expected a fitted ConvexReLURegressor/ConvexReLUClassifier or a TwoLayerNetwork/"
            f"ThreeLayerNetwork, got {type(network).__name__}"
        )
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, meta


def _network_from(arrays: dict, meta: dict):
    cls = meta.get("class")
    fit_intercept = bool(meta.get("fit_intercept", True))
    if cls == "ThreeLayerNetwork":
        W1, w2, w3 = (arrays[k] for k in ("network.W1", "network.w2", "network.w3"))
        if W1.ndim != 3 or w2.shape != (W1.shape[0], W1.shape[2]) or w3.ndim != 2 or w3.shape[0] != W1.shape[0]:
            raise ValueError(f"inconsistent three-layer weights: W1 {W1.shape}, w2 {w2.shape}, w3 {w3.shape}")
        return ThreeLayerNetwork(W1, w2, w3, fit_intercept=fit_intercept)
    if cls == "TwoLayerNetwork":
        W1, W2 = arrays["network.W1"], arrays["network.W2"]
        if W1.ndim != 2 or W2.ndim != 2 or W2.shape[0] != W1.shape[1]:
            raise ValueError(f"inconsistent two-layer weights: W1 {W1.shape}, W2 {W2.shape}")
        gates = arrays.get("network.gates")
        if bool(meta.get("gated")) and gates is None:
            raise ValueError("a gated network without its gates")
        return TwoLayerNetwork(W1, W2, gates=gates, fit_intercept=fit_intercept)
    raise ValueError(f"unknown network class {cls!r}")


def _estimator_classes() -> dict:
    from .estimators import ConvexReLUClassifier, ConvexReLURegressor

    return {"ConvexReLURegressor": ConvexReLURegressor, "ConvexReLUClassifier": ConvexReLUClassifier}


def _library_version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------------- save
def _as_path(path) -> Path:
    """``path`` as a Path; a TypeError naming it when it is not a file path (None had
    ended in pathlib's own TypeError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got {path!r}")
    return Path(path)


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a ValueError naming it when no file can be written there (a
    directory, something other than a regular file such as a device, a folder that does
    not exist or cannot be written in); checked before any work is done."""
    path = _as_path(path)
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory; expected a file name such as model.npz")
    if path.exists() and not path.is_file():
        # save() replaces the file atomically: a device or pipe would be replaced by a file
        raise ValueError(f"path: {str(path)!r} exists and is not a regular file (a device or a pipe?); "
                         "expected a file name such as model.npz")
    directory = path.parent  # (Path('.') for a bare name)
    if not directory.is_dir():
        raise ValueError(f"path: cannot write {str(path)!r}: the folder {str(directory)!r} does not exist")
    try:  # the folder may exist and refuse files (permissions, a read-only or virtual file system)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
    except OSError as exc:
        raise ValueError(f"path: cannot write {str(path)!r}: the folder {str(directory)!r} refuses new files "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _file_mode(path: Path) -> int:
    """The permission bits a file written at ``path`` gets: those of the file it replaces,
    else what ``open`` would give a new file (0o666 less the process's umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0)  # read the umask (the only portable way), then put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def save(
    model,
    path: str | os.PathLike,
    *,
    standardization: tuple[np.ndarray, np.ndarray] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a fitted estimator or a network to ``path`` (an ``.npz`` archive, no pickle).

    Parameters
    ----------
    model : fitted ConvexReLURegressor / ConvexReLUClassifier, or a network
    path : str or path-like
        Written as given (no extension is added); replaced atomically.
    standardization : (mean, scale) or None
        Feature standardisation ``(x - mean) / scale`` applied before the model.
    extra : dict or None
        Additional JSON-serialisable metadata (e.g. column names).

    Returns
    -------
    Path of the written file.
    """
    path = check_output_path(path)
    estimators = _estimator_classes()
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": _library_version(),
    }
    if isinstance(model, tuple(estimators.values())):
        if not hasattr(model, "network_"):
            raise ValueError(f"model: this {type(model).__name__} is not fitted yet; call fit before save")
        net_arrays, net_meta = _network_arrays(model.network_)
        meta["kind"] = "estimator"
        meta["estimator"] = type(model).__name__
        params = {k: (v, *_param_for_json(k, v)) for k, v in model.get_params(deep=False).items()}
        meta["params"] = {k: stored for k, (_, stored, _) in params.items()}
        meta["params_not_stored"] = {k: repr(v) for k, (v, _, exact) in params.items() if not exact}
        fitted = {k: getattr(model, k) for k in _SCALAR_FITTED if hasattr(model, k)}
        fitted["solver_info_"] = dict(getattr(model, "solver_info_", {}) or {})
        fitted["_single_output"] = getattr(model, "_single_output", None)
        cert = model.__dict__.get("_certificate")  # only if already computed (it is lazy)
        if cert is not None:
            fitted["certificate_"] = _certificate_dict(cert)
        meta["fitted"] = _jsonable(fitted)
        if hasattr(model, "classes_"):
            classes = np.asarray(model.classes_)
            meta["classes_dtype"] = "object" if classes.dtype == object else classes.dtype.str
            arrays["classes"] = _string_array(classes)
        if hasattr(model, "feature_names_in_"):
            arrays["feature_names_in"] = _string_array(model.feature_names_in_)
    else:
        net_arrays, net_meta = _network_arrays(model)
        meta["kind"] = "network"
    arrays.update(net_arrays)
    meta["network"] = net_meta
    if standardization is not None:
        mean, scale = (np.asarray(a, dtype=np.float64).reshape(-1) for a in standardization)
        if mean.shape != scale.shape:
            raise ValueError(f"standardization: mean and scale differ in shape, {mean.shape} and {scale.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError("standardization: expected finite means and positive finite scales")
        n_in = _network_inputs(getattr(model, "network_", model))
        if mean.shape != (n_in,):
            raise ValueError(f"standardization: expected a mean and a scale per input feature of the model "
                             f"({n_in}), got {mean.size}")
        arrays["preprocessing.mean"], arrays["preprocessing.scale"] = mean, scale
        meta["preprocessing"] = "standardize"
    else:
        meta["preprocessing"] = None
    meta["extra"] = _jsonable(extra or {})
    arrays["metadata"] = np.asarray(json.dumps(meta, allow_nan=False, sort_keys=True))

    buffer = _io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    directory = path.parent  # (Path('.') for a bare name)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        os.chmod(tmp, mode)  # mkstemp creates 0o600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _certificate_dict(cert) -> dict:
    import dataclasses

    if dataclasses.is_dataclass(cert) and not isinstance(cert, type):
        raw = {f.name: getattr(cert, f.name) for f in dataclasses.fields(cert)}
    elif hasattr(cert, "__dict__"):
        raw = dict(vars(cert))
    else:
        return {"repr": repr(cert)}
    # (infinities and NaN as the strings 'inf', '-inf', 'nan': JSON has none, and a bound of
    # -inf or a max_violation of inf, beta = 0, must come back as such)
    return {k: repr(float(v)) if isinstance(v, float) and not math.isfinite(v) else _jsonable(v)
            for k, v in raw.items() if isinstance(v, (str, bool, numbers.Number, type(None)))}


def _certificate_from(stored):
    """The :class:`~convexrelu.certificates.Certificate` of a file's stored numbers (None
    when none was stored: a certificate is computed on first access, and one never
    accessed before ``save`` is not in the file)."""
    if stored is None:
        return None
    import dataclasses

    from .certificates import Certificate

    if not isinstance(stored, dict):
        raise ValueError(f"certificate_: expected the stored numbers of a certificate, got {type(stored).__name__}")
    names = {f.name for f in dataclasses.fields(Certificate)} - {"info"}
    numbers_back = {k: float(v) if v in ("inf", "-inf", "nan") else v for k, v in stored.items() if k in names}
    try:
        return Certificate(**numbers_back)
    except TypeError as exc:
        raise ValueError(f"certificate_: the stored certificate misses numbers ({exc})") from exc


# ---------------------------------------------------------------------- load
def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file written by :func:`save`: the model, its metadata and standardisation.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a convexrelu model file (corrupt, foreign, or written by a
        newer format version).
    TypeError
        If ``path`` is not a file path.
    """
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a model file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":
        raise ValueError(f"{path}: not a convexrelu model file (not an .npz archive)")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error) as exc:
        raise ValueError(f"{path}: not a convexrelu model file (cannot read it as an .npz archive: {exc})") from exc
    if "metadata" not in arrays:
        raise ValueError(f"{path}: not a convexrelu model file (no 'metadata' entry)")
    try:
        meta = json.loads(str(arrays["metadata"][()]))
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{path}: not a convexrelu model file (metadata is not JSON: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a convexrelu model file (format is {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: corrupt convexrelu model file (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in model format version {version} by convexrelu {meta.get('library_version')}; "
            f"this convexrelu {_library_version()} reads version {FORMAT_VERSION} at most: upgrade convexrelu"
        )
    try:
        model = _build_model(meta, arrays)
        mean = scale = None
        if meta.get("preprocessing") == "standardize":
            mean = np.asarray(arrays["preprocessing.mean"], dtype=np.float64)
            scale = np.asarray(arrays["preprocessing.scale"], dtype=np.float64)
            n_in = _network_inputs(getattr(model, "network_", model))
            if mean.shape != scale.shape or mean.shape != (n_in,):
                raise ValueError(f"standardisation of shapes {mean.shape} and {scale.shape} for {n_in} features")
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:  # (an entry of another type)
        missing = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{path}: corrupt convexrelu model file ({missing})") from exc
    return ModelFile(model=model, metadata=meta, mean=mean, scale=scale)


def _build_model(meta: dict, arrays: dict):
    for key, value in arrays.items():
        if key.startswith("network.") and value.dtype.kind not in "fiu":
            raise ValueError(f"{key} has dtype {value.dtype}, expected numbers")
    network = _network_from({k: np.asarray(v, dtype=np.float64) if k.startswith("network.") else v
                             for k, v in arrays.items()}, meta.get("network") or {})
    if meta.get("kind") == "network":
        return network
    if meta.get("kind") != "estimator":
        raise ValueError(f"unknown kind {meta.get('kind')!r}")
    classes = _estimator_classes()
    name = meta.get("estimator")
    if name not in classes:
        raise ValueError(f"unknown estimator {name!r}")
    estimator = classes[name]()
    valid = estimator.get_params(deep=False)
    params = {k: v for k, v in (meta.get("params") or {}).items() if k in valid and v is not None}
    estimator.set_params(**params)
    lost = meta.get("params_not_stored") or {}
    if lost:
        warnings.warn(
            "parameters that were objects are not in the file: "
            + ", ".join(f"{k}={v}" for k, v in sorted(lost.items()))
            + f"; the loaded {name} has "
            + ", ".join(f"{k}={getattr(estimator, k)!r}" for k in sorted(lost) if k in valid)
            + " (set_params before refitting); its network and predictions are unaffected",
            UserWarning,
            stacklevel=2,
        )
    fitted = dict(meta.get("fitted") or {})
    for key in _SCALAR_FITTED:
        if fitted.get(key) is not None:
            setattr(estimator, key, fitted[key])
    estimator.solver_info_ = dict(fitted.get("solver_info_") or {})
    estimator.certificate_ = _certificate_from(fitted.get("certificate_"))
    if fitted.get("_single_output") is not None:
        estimator._single_output = bool(fitted["_single_output"])
    estimator.network_ = network
    if "classes" in arrays:
        dtype = meta.get("classes_dtype") or arrays["classes"].dtype.str
        labels = arrays["classes"]
        estimator.classes_ = labels.astype(object) if dtype == "object" else labels.astype(np.dtype(dtype))
    elif name == "ConvexReLUClassifier":
        raise ValueError("a classifier without its classes")
    if "feature_names_in" in arrays:
        estimator.feature_names_in_ = arrays["feature_names_in"].astype(object)
    n_in = _network_inputs(network)
    if getattr(estimator, "n_features_in_", n_in) != n_in:
        raise ValueError(f"n_features_in_ = {estimator.n_features_in_} does not match weights for {n_in} features")
    estimator.n_features_in_ = int(n_in)
    return estimator


def load(path: str | os.PathLike):
    """Read an estimator or network written by :func:`save` (no code is executed).

    Returns
    -------
    ConvexReLURegressor, ConvexReLUClassifier, TwoLayerNetwork or ThreeLayerNetwork

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`load_model_file`.

    Warns
    -----
    UserWarning
        When the file stores a feature standardisation (``convexrelu fit`` writes one
        unless ``--no-standardize``): the returned model takes standardised features, and
        only :func:`load_model_file` returns the standardisation
        (``ModelFile.transform``, ``ModelFile.pipeline``).
    """
    mf = load_model_file(path)
    warn_unapplied_standardization(mf, path, stacklevel=3)
    return mf.model


def warn_unapplied_standardization(mf: ModelFile, path, stacklevel: int) -> None:
    """The UserWarning of :func:`load` where the file ``mf`` stores a standardisation that
    the model returned alone does not apply (``stacklevel`` as ``warnings.warn`` takes it,
    counted from this function)."""
    if mf.mean is not None:
        warnings.warn(
            f"{path}: the file stores a feature standardisation, which the returned model does not apply: it "
            "expects standardised features; convexrelu.io.load_model_file(path).pipeline() applies it, or "
            "load_model_file(path).transform(X) before predict", UserWarning, stacklevel=stacklevel)
