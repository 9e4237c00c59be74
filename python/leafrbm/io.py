"""Saving and loading models as versioned ``.npz`` files (no pickle needed to read them).

A file holds every constructor parameter (as JSON) and every fitted array, including nested
estimators (the layers of a DBN). It loads with ``allow_pickle=False``; a round trip is exact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

from ._validation import check_int

__all__ = ["save", "load", "FORMAT_VERSION", "checkpoint_path", "load_checkpoint", "data_fingerprint"]

FORMAT_VERSION = 1
_META_KEY = "__leafrbm__"


class _NotLeafrbm(Exception):
    """A readable file that is not (or not yet) a leafrbm model."""


def _registry():
    import leafrbm

    classes = {}
    for name in getattr(leafrbm, "__all__", []):
        obj = getattr(leafrbm, name, None)
        if isinstance(obj, type) and hasattr(obj, "get_params"):
            classes[name] = obj
    return classes


def _is_estimator(value):
    return hasattr(value, "get_params") and hasattr(value, "fit")


def _json_value(value):
    """JSON-able form of a scalar/list parameter or attribute, or raise TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return {"__tuple__": isinstance(value, tuple), "items": [_json_value(v) for v in value]}
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def _from_json(value):
    if isinstance(value, dict) and "items" in value:
        items = [_from_json(v) for v in value["items"]]
        return tuple(items) if value.get("__tuple__") else items
    return value


def _describe(model, prefix, arrays):
    """Metadata dict of ``model``; its arrays go into ``arrays`` under ``prefix``."""
    params = {}
    for name, value in model.get_params(deep=False).items():
        if _is_estimator(value):
            params[name] = {"__estimator__": _describe(value, f"{prefix}{name}/", arrays)}
            continue
        try:
            params[name] = _json_value(value)
        except TypeError:
            # Objects such as RandomState/Generator cannot be stored without pickle.
            params[name] = None
    attributes = {}
    for name, value in vars(model).items():
        if name in params or not (name.endswith("_") or name.startswith("_state_") or name.startswith("_")):
            continue
        if name.startswith("__"):
            continue
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                continue
            key = f"{prefix}{name}"
            arrays[key] = value
            attributes[name] = {"__array__": key}
        elif _is_estimator(value):
            attributes[name] = {"__estimator__": _describe(value, f"{prefix}{name}/", arrays)}
        elif isinstance(value, (list, tuple)) and value and all(_is_estimator(v) for v in value):
            attributes[name] = {
                "__estimators__": [_describe(v, f"{prefix}{name}/{i}/", arrays) for i, v in enumerate(value)],
                "__tuple__": isinstance(value, tuple),
            }
        else:
            try:
                attributes[name] = _json_value(value)
            except TypeError:
                continue  # e.g. random_state_ (a RandomState): re-created on demand
    return {"class": type(model).__name__, "params": params, "attributes": attributes}


def save(model, path):
    """Save a leafrbm estimator to ``path`` (a ``.npz`` file), atomically.

    Parameters
    ----------
    model : leafrbm estimator (fitted or not)
    path : str or os.PathLike
        Destination; written to a temporary file in the same folder, then renamed, so a
        crash never leaves a half-written file.
    """
    if not _is_estimator(model):
        raise TypeError(f"model must be a leafrbm estimator, got {type(model).__name__}")
    arrays = {}
    meta = {"format": "leafrbm", "version": FORMAT_VERSION, "model": _describe(model, "", arrays)}
    import leafrbm

    meta["leafrbm_version"] = leafrbm.__version__
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".leafrbm-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **{_META_KEY: np.array(json.dumps(meta))}, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def _build(description, arrays, path):
    classes = _registry()
    name = description["class"]
    if name not in classes:
        raise ValueError(f"{path}: unknown model class {name!r} (saved by a newer leafrbm?)")
    params = {}
    for key, value in description["params"].items():
        if isinstance(value, dict) and "__estimator__" in value:
            params[key] = _build(value["__estimator__"], arrays, path)
        else:
            params[key] = _from_json(value)
    model = classes[name](**params)
    for key, value in description["attributes"].items():
        if isinstance(value, dict) and "__array__" in value:
            setattr(model, key, arrays[value["__array__"]])
        elif isinstance(value, dict) and "__estimator__" in value:
            setattr(model, key, _build(value["__estimator__"], arrays, path))
        elif isinstance(value, dict) and "__estimators__" in value:
            built = [_build(v, arrays, path) for v in value["__estimators__"]]
            setattr(model, key, tuple(built) if value.get("__tuple__") else built)
        else:
            setattr(model, key, _from_json(value))
    return model


def load(path):
    """Load an estimator saved by :func:`save`.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is truncated, corrupted, not a leafrbm model, or from a newer format;
        the message names the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as stream:  # FileNotFoundError / PermissionError as they are
        try:
            with np.load(stream, allow_pickle=False) as data:
                if _META_KEY not in data.files:
                    raise _NotLeafrbm(f"{path}: not a leafrbm model file (no {_META_KEY} record)")
                meta = json.loads(str(data[_META_KEY][()]))
                if not isinstance(meta, dict) or meta.get("format") != "leafrbm":
                    raise _NotLeafrbm(f"{path}: not a leafrbm model file")
                version = int(meta.get("version", -1))
                if version > FORMAT_VERSION:
                    raise _NotLeafrbm(
                        f"{path}: model file format {version} is newer than this leafrbm supports "
                        f"({FORMAT_VERSION}); upgrade leafrbm (file written by {meta.get('leafrbm_version')})"
                    )
                arrays = {key: data[key] for key in data.files if key != _META_KEY}
        except _NotLeafrbm as error:
            raise ValueError(str(error)) from None
        except Exception as error:  # zip, CRC, header, JSON, decompression: all mean "damaged"
            raise ValueError(
                f"{path}: cannot read leafrbm model file (truncated or corrupted): {type(error).__name__}: {error}"
            ) from error
    try:
        return _build(meta["model"], arrays, path)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path}: corrupted leafrbm model file: {error!r}") from error


# ----------------------------------------------------------------------------- checkpoints
def data_fingerprint(X):
    """A digest of the training data, so a checkpoint resumes only on the same data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((X.shape, X.dtype.str)).encode())
    digest.update(memoryview(np.ascontiguousarray(X)).cast("B"))
    return digest.hexdigest()


def _safe_json(value, to_json):
    try:
        return to_json(value)
    except TypeError:
        return None


def checkpoint_path(checkpoint, checkpoint_every):
    """Validated ``(path, every)`` of a ``fit(..., checkpoint=, checkpoint_every=)`` call."""
    if checkpoint is None:
        return None, checkpoint_every
    path = os.fspath(checkpoint)
    if not path.endswith(".npz"):
        path += ".npz"
    return path, check_int("checkpoint_every", checkpoint_every, low=1)


def load_checkpoint(estimator, path, fingerprint, resumable_params):
    """The model saved in checkpoint ``path`` if it may resume ``estimator``'s fit, else raise.

    None when there is no checkpoint yet. Refuses (ValueError naming the file) a checkpoint of
    another class, with other parameters (except ``resumable_params``) or for other data.
    """
    if not os.path.exists(path):
        return None
    saved = load(path)
    if type(saved) is not type(estimator):
        raise ValueError(
            f"checkpoint {path!r} was written by a {type(saved).__name__}, not a {type(estimator).__name__}; "
            "delete it or choose another checkpoint path"
        )
    mine = estimator.get_params(deep=False)
    theirs = saved.get_params(deep=False)
    different = sorted(
        name for name in mine
        if name not in resumable_params and _from_json(_safe_json(mine[name], _json_value)) != theirs.get(name)
    )
    if different:
        raise ValueError(
            f"checkpoint {path!r} was written by a model with other parameters {different}; "
            "delete it or choose another checkpoint path"
        )
    if getattr(saved, "_checkpoint_fingerprint", None) != fingerprint:
        raise ValueError(
            f"checkpoint {path!r} was written for other training data; delete it or choose another checkpoint path"
        )
    return saved
