"""Parameter and input validation shared by every estimator.

Messages name the parameter and the value, so that a user can fix the call from the message
alone. Checks are cheap and vectorised (no Python loops over samples).
"""

from __future__ import annotations

import numbers
import os

import numpy as np

__all__ = [
    "check_int",
    "check_float",
    "check_bool",
    "check_choice",
    "resolve_n_jobs",
    "seed_from_random_state",
    "check_random_state",
    "random_integers",
    "describe_array",
    "check_memory",
    "available_memory",
    "validate_samples",
    "check_training_params",
    "check_finite",
    "check_unit_interval",
    "as_kernel_array",
]


def _type_name(value):
    return type(value).__name__


def check_int(name, value, *, low=None, high=None, allow_none=False):
    """Return ``value`` as an int, or raise TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({_type_name(value)})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(name, value, *, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """Return ``value`` as a finite float within the bounds, or raise naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({_type_name(value)})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({_type_name(value)})")
    return bool(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def resolve_n_jobs(n_jobs):
    """scikit-learn's meaning: None or -1 → all cores, -2 → all but one, k > 0 → k; 0 is an error."""
    if n_jobs is None:
        return _available_cores()
    n_jobs = check_int("n_jobs", n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None or -1 for all cores, or a positive count")
    if n_jobs < 0:
        return max(1, _available_cores() + 1 + n_jobs)
    return n_jobs


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def seed_from_random_state(random_state):
    """Draw one 64-bit seed from any accepted ``random_state``.

    Accepted: None (fresh entropy from NumPy's global state, as scikit-learn does), an int,
    a ``numpy.random.RandomState`` or a ``numpy.random.Generator``.
    """
    if random_state is None or isinstance(random_state, np.random.RandomState):
        state = np.random.mtrand._rand if random_state is None else random_state
        high, low = state.randint(0, 2**32, size=2, dtype=np.uint64)
        return int((int(high) << 32) | int(low))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**64, dtype=np.uint64))
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"random_state must be None, an int, a numpy RandomState or Generator; got {random_state!r}"
        )
    if random_state < 0 or random_state >= 2**64:
        raise ValueError(f"random_state must be in [0, 2**64), got {random_state}")
    # Mix the user's int so that nearby seeds give unrelated streams.
    return int(np.random.SeedSequence(int(random_state)).generate_state(1, dtype=np.uint64)[0])


def check_random_state(random_state):
    """Like sklearn's check_random_state, but also accepts a ``numpy.random.Generator``.

    None → NumPy's global RandomState; int → a new RandomState; RandomState/Generator → itself.
    """
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"random_state must be None, an int, a numpy RandomState or Generator; got {random_state!r}"
        )
    if random_state < 0 or random_state >= 2**32:
        raise ValueError(f"random_state must be in [0, 2**32), got {random_state}")
    return np.random.RandomState(int(random_state))


def random_integers(rng, high, size):
    """Integers in [0, high) from a RandomState or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size)
    return rng.randint(0, high, size)


def describe_array(value):
    """A short description of an array-like for error messages: shape and dtype, or the type."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"(shape {tuple(shape)}, dtype {dtype})"
    return f"(a {type(value).__name__})"


def validate_samples(estimator, X, *, reset):
    """scikit-learn's validate_data for the estimators: float32/float64 (float32 kept), CSR
    accepted and densified, at least one sample; returns a C-contiguous array. Errors name X."""
    import scipy.sparse as sp
    from sklearn.utils.validation import validate_data

    try:
        X = validate_data(estimator, X, reset=reset, accept_sparse="csr", dtype=(np.float64, np.float32),
                          ensure_min_samples=1)
    except ValueError as error:
        raise ValueError(f"X {describe_array(X)}: {error}") from error
    if sp.issparse(X):
        check_finite("X", X.data)
        X = X.toarray()
    X = np.ascontiguousarray(X)
    if X.shape[1] > 2**31 - 1:
        raise ValueError(f"X has {X.shape[1]} features; at most 2**31 - 1 are supported")
    return X


def check_training_params(estimator):
    """The CD/PCD hyper-parameters shared by the RBMs and the DBN."""
    check_int("batch_size", estimator.batch_size, low=1, high=2**31 - 1)
    check_int("n_iter", estimator.n_iter, low=0)
    check_int("verbose", estimator.verbose, low=0)
    check_int("k", estimator.k, low=1, high=65535)
    check_bool("persistent", estimator.persistent)
    check_float("momentum", estimator.momentum, low=0.0, high=1.0, high_open=True)
    check_float("weight_decay", estimator.weight_decay, low=0.0)
    check_float("sparsity_target", estimator.sparsity_target, low=0.0, high=1.0, low_open=True, high_open=True)
    check_float("sparsity_cost", estimator.sparsity_cost, low=0.0)


def check_finite(name, array):
    """Raise ValueError if ``array`` holds NaN or infinity."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "infinity"
        raise ValueError(f"{name} contains {bad}; leafrbm needs finite values")
    return array


def check_unit_interval(name, array, estimator_name):
    """Raise ValueError unless every value of ``array`` lies in [0, 1]."""
    if array.size:
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"{name} must hold values in [0, 1] for {estimator_name} (probabilities or binary pixels); "
                f"got min={low:g}, max={high:g}. Scale it (e.g. X / 255) or use GaussianBernoulliRBM."
            )
    return array


def as_kernel_array(array, dtype):
    """C-contiguous, aligned, owned-or-readonly-OK array of ``dtype`` for the compiled kernels."""
    return np.ascontiguousarray(array, dtype=dtype)


def available_memory():
    """Bytes of memory this process can still allocate (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2**63


def check_memory(n_bytes, what):
    """Raise MemoryError, before allocating, when ``what`` needs more memory than is available."""
    available = available_memory()
    if n_bytes > available:
        raise MemoryError(
            f"{what} needs {n_bytes / 2**30:.2f} GiB, more than the {available / 2**30:.2f} GiB "
            "of memory available; use fewer components or samples, or float32"
        )
