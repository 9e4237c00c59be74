"""Bad input to the RBM estimators: a clear ValueError/TypeError naming the parameter and value.

Never a crash, a hang or a silent garbage result.
"""

import numpy as np
import pytest

from leafrbm import BernoulliRBM, GaussianBernoulliRBM

ESTIMATORS = [BernoulliRBM, GaussianBernoulliRBM]


@pytest.fixture
def X():
    return (np.random.default_rng(0).random((20, 6)) > 0.5).astype(np.float32)


def fitted(cls, X):
    return cls(n_components=3, n_iter=1, random_state=0).fit(X)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("bad, pattern", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_input_is_rejected(cls, X, bad, pattern):
    X_bad = X.copy()
    X_bad[3, 2] = bad
    with pytest.raises(ValueError, match=rf"(?i)(X|input).*({pattern}|inf)"):
        cls(n_components=3, n_iter=1).fit(X_bad)
    model = fitted(cls, X)
    for method in ("transform", "reconstruct", "free_energy", "score_samples", "gibbs"):
        with pytest.raises(ValueError, match=r"(?i)nan|inf"):
            getattr(model, method)(X_bad)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("shape", [(0, 6), (6,), (2, 3, 6), ()])
def test_wrong_ndim_and_empty_input(cls, shape):
    with pytest.raises(ValueError, match=r"(?i)^X .*(2D array|sample|feature|dim|scalar)"):
        cls(n_components=3, n_iter=1).fit(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_zero_features(cls):
    with pytest.raises(ValueError, match=r"(?i)feature"):
        cls(n_components=3, n_iter=1).fit(np.zeros((5, 0), dtype=np.float32))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_wrong_number_of_features_after_fit(cls, X):
    model = fitted(cls, X)
    with pytest.raises(ValueError, match=r"X has 5 features.*expecting 6"):
        model.transform(X[:, :5])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_non_contiguous_readonly_and_fortran_input_give_the_same_result(cls, X):
    base = fitted(cls, X).transform(X)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
    wide[:, ::2] = X
    readonly = X.copy()
    readonly.flags.writeable = False
    for variant in (wide[:, ::2], readonly, np.asfortranarray(X), X[::-1][::-1]):
        model = fitted(cls, np.ascontiguousarray(variant))
        np.testing.assert_array_equal(model.transform(variant), base)
        model_direct = fitted(cls, variant)
        np.testing.assert_array_equal(model_direct.components_, model.components_)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "X_bad, exc, pattern",
    [
        (np.array([["a", "b"], ["c", "d"]]), ValueError, r"(?i)float|convert|string"),
        (np.zeros((4, 3), dtype=complex), ValueError, r"(?i)complex"),
        ([[object(), 1.0], [1.0, 0.0]], (TypeError, ValueError), r"(?i)float|number|object"),
    ],
)
def test_wrong_dtype(cls, X_bad, exc, pattern):
    with pytest.raises(exc, match=pattern):
        cls(n_components=3, n_iter=1).fit(X_bad)


def test_integer_and_bool_input_is_converted(X):
    a = BernoulliRBM(n_components=3, n_iter=1, random_state=0).fit(X.astype(np.float64))
    for variant in (X.astype(np.int64), X.astype(bool), X.astype(np.uint8)):
        b = BernoulliRBM(n_components=3, n_iter=1, random_state=0).fit(variant)
        assert b.components_.dtype == np.float64
        np.testing.assert_array_equal(a.components_, b.components_)


@pytest.mark.parametrize("value", [1.5, -0.1, 255.0])
def test_bernoulli_rejects_values_outside_unit_interval(X, value):
    X_bad = X.copy()
    X_bad[0, 0] = value
    with pytest.raises(ValueError, match=r"X must hold values in \[0, 1\].*BernoulliRBM"):
        BernoulliRBM(n_components=3, n_iter=1).fit(X_bad)
    # Gaussian visible units take any real value.
    GaussianBernoulliRBM(n_components=3, n_iter=1).fit(X_bad * 10)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "param, value, exc",
    [
        ("n_components", 0, ValueError),
        ("n_components", -3, ValueError),
        ("n_components", 2.5, TypeError),
        ("n_components", "10", TypeError),
        ("learning_rate", 0.0, ValueError),
        ("learning_rate", -1.0, ValueError),
        ("learning_rate", np.nan, ValueError),
        ("learning_rate", "fast", TypeError),
        ("batch_size", 0, ValueError),
        ("batch_size", None, TypeError),
        ("n_iter", -1, ValueError),
        ("k", 0, ValueError),
        ("persistent", "yes", TypeError),
        ("momentum", 1.0, ValueError),
        ("momentum", -0.5, ValueError),
        ("weight_decay", -1e-4, ValueError),
        ("sparsity_target", 0.0, ValueError),
        ("sparsity_target", 1.0, ValueError),
        ("sparsity_cost", -1.0, ValueError),
        ("n_jobs", 0, ValueError),
        ("n_jobs", 1.5, TypeError),
        ("random_state", -1, ValueError),
        ("random_state", "seed", TypeError),
        ("random_state", 1.5, TypeError),
    ],
)
def test_bad_parameters_name_the_parameter_and_value(cls, X, param, value, exc):
    model = cls(n_components=3, n_iter=1).set_params(**{param: value})
    with pytest.raises(exc, match=param) as info:
        model.fit(X)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_failed_fit_leaves_a_fitted_model_untouched(cls, X):
    model = fitted(cls, X)
    before = model.components_.copy()
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        model.partial_fit(X_bad)
    np.testing.assert_array_equal(model.components_, before)
    model.transform(X)  # still usable


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_methods_before_fit_raise_not_fitted(cls, X):
    from sklearn.exceptions import NotFittedError

    model = cls(n_components=3)
    for method in ("transform", "reconstruct", "free_energy", "score_samples", "gibbs"):
        with pytest.raises(NotFittedError):
            getattr(model, method)(X)
    with pytest.raises(NotFittedError):
        model.sample(2)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_sample_arguments(cls, X):
    model = fitted(cls, X)
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)
    with pytest.raises(TypeError, match="n_samples"):
        model.sample(2.5)
    with pytest.raises(ValueError, match="n_steps"):
        model.sample(2, n_steps=-1)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_bad_hidden_codes_for_inverse_transform(cls, X):
    model = fitted(cls, X)
    with pytest.raises(ValueError, match=r"(?i)H.*3"):
        model.inverse_transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"(?i)nan"):
        model.inverse_transform(np.full((2, 3), np.nan))


def test_compiled_kernels_reject_bad_buffers():
    """The bindings are strict on their own: wrong dtype, shape, contiguity, read-only output."""
    from leafrbm import _core

    W = np.zeros((3, 4), np.float32)
    b = np.zeros(3, np.float32)
    c = np.zeros(4, np.float32)
    V = np.zeros((5, 4), np.float32)
    out = np.zeros(5, np.float32)
    _core.free_energy(W, b, c, False, V, out)  # the good call works
    bad_calls = [
        (W, b, c, False, np.zeros((5, 8), np.float32)[:, ::2], out),  # non-contiguous
        (W, b, c, False, V.astype(np.float64), out),  # mixed dtypes
        (W, b, c, False, np.zeros((5, 3), np.float32), out),  # wrong shape
        (W, b, c, False, V, np.zeros(4, np.float32)),  # wrong output length
        (W, b, c, False, V, np.zeros(5, np.float64)),  # wrong output dtype
    ]
    readonly = np.zeros(5, np.float32)
    readonly.flags.writeable = False
    bad_calls.append((W, b, c, False, V, readonly))
    for args in bad_calls:
        with pytest.raises((ValueError, TypeError)):
            _core.free_energy(*args)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_divergent_training_raises_and_keeps_the_last_finite_model(cls, X):
    model = cls(n_components=3, n_iter=1, random_state=0).fit(X)
    before = model.components_.copy()
    model.set_params(learning_rate=8.6e38)
    with pytest.raises(ValueError, match=r"diverged.*learning_rate=8\.6e\+38"):
        model.partial_fit(X)
    np.testing.assert_array_equal(model.components_, before)
    assert np.isfinite(model.transform(X)).all()
    with pytest.raises(ValueError, match="learning_rate"):
        cls(n_components=3, n_iter=2, learning_rate=8.6e38, random_state=0).fit(X)
