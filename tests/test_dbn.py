"""DBN: greedy training, transform / decode / reconstruct at any depth, sampling, persistence,
reproducibility, bad input and scikit-learn's estimator checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import leafrbm
import reference as ref
from leafrbm import DBN, BernoulliRBM, GaussianBernoulliRBM
from leafrbm._validation import check_random_state, random_integers


@pytest.fixture(scope="module")
def fitted(binary_digits):
    return DBN(hidden_layer_sizes=(20, 12, 6), n_iter=3, learning_rate=0.05, random_state=0, n_jobs=1).fit(
        binary_digits)


def _params(layer):
    return layer.components_, layer.intercept_hidden_, layer.intercept_visible_


def test_greedy_training_is_a_stack_of_rbms(binary_digits):
    """Layer l is exactly the RBM trained on layer l-1's hidden probabilities with the derived seed."""
    dbn = DBN(hidden_layer_sizes=(16, 8), n_iter=2, learning_rate=0.05, batch_size=20, momentum=0.5,
              weight_decay=1e-4, random_state=3, n_jobs=1).fit(binary_digits)
    seeds = random_integers(check_random_state(3), 2**32, 2)
    data = binary_digits
    for index, layer in enumerate(dbn.layers_):
        alone = BernoulliRBM(n_components=[16, 8][index], learning_rate=0.05, batch_size=20, n_iter=2,
                             momentum=0.5, weight_decay=1e-4, random_state=int(seeds[index]), n_jobs=1).fit(data)
        for got, expected in zip(_params(layer), _params(alone)):
            assert np.array_equal(got, expected)
        data = alone.transform(data)
    assert dbn.n_features_in_ == 64 and len(dbn.layers_) == 2


def test_transform_decode_reconstruct_match_numpy_composition(fitted, binary_digits):
    X = binary_digits[:40]
    layers = [tuple(a.astype(np.float64) for a in _params(layer)) for layer in fitted.layers_]
    codes = [X]
    for W, bh, _ in layers:
        codes.append(ref.hidden_means(W, bh, codes[-1]))
    for depth in (1, 2, 3):
        np.testing.assert_allclose(fitted.transform(X, depth=depth), codes[depth], rtol=1e-10, atol=1e-12)
        down = codes[depth]
        for W, _, bv in reversed(layers[:depth]):
            down = ref.visible_means(W, bv, down)
        np.testing.assert_allclose(fitted.decode(codes[depth], depth=depth), down, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fitted.reconstruct(X, depth=depth), down, rtol=1e-10, atol=1e-12)
        assert fitted.transform(X, depth=depth).shape == (40, (20, 12, 6)[depth - 1])
    np.testing.assert_array_equal(fitted.transform(X), fitted.transform(X, depth=3))
    np.testing.assert_array_equal(fitted.inverse_transform(codes[3]), fitted.decode(codes[3]))
    assert fitted.reconstruct(X).shape == X.shape


def test_gaussian_dbn_works_in_the_input_scale(scaled_digits):
    X = scaled_digits * 10.0 + 3.0
    dbn = DBN(hidden_layer_sizes=(12, 5), visible="gaussian", learning_rate=(0.005, 0.05), n_iter=3,
              random_state=0, n_jobs=1).fit(X)
    assert isinstance(dbn.layers_[0], GaussianBernoulliRBM) and isinstance(dbn.layers_[1], BernoulliRBM)
    first = dbn.layers_[0]
    V = (X[:10] - first.mean_) / first.scale_
    h1 = ref.hidden_means(first.components_, first.intercept_hidden_, V)
    np.testing.assert_allclose(dbn.transform(X[:10], depth=1), h1, rtol=1e-10)
    expected = ref.visible_means(first.components_, first.intercept_visible_, h1, gaussian=True)
    np.testing.assert_allclose(dbn.reconstruct(X[:10], depth=1), expected * first.scale_ + first.mean_, rtol=1e-10)
    # Reconstructions live near the data, not near the standardised space.
    assert abs(dbn.reconstruct(X).mean() - X.mean()) < 1.0


def test_float32_is_preserved(binary_digits):
    X = binary_digits.astype(np.float32)
    dbn = DBN(hidden_layer_sizes=(10, 4), n_iter=1, random_state=0).fit(X)
    assert all(layer.components_.dtype == np.float32 for layer in dbn.layers_)
    assert dbn.transform(X).dtype == np.float32
    assert dbn.reconstruct(X, depth=1).dtype == np.float32
    assert dbn.sample(3, n_steps=2, random_state=0).dtype == np.float32


def test_bit_identical_across_n_jobs(binary_digits):
    results = []
    for n_jobs in (1, 2):
        dbn = DBN(hidden_layer_sizes=(150, 130), n_iter=1, batch_size=200, random_state=5, n_jobs=n_jobs)
        dbn.fit(binary_digits)
        results.append([*_params(dbn.layers_[0]), *_params(dbn.layers_[1]), dbn.transform(binary_digits),
                        dbn.sample(4, n_steps=3, random_state=1)])
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_sample_runs_the_top_rbm_then_mean_field_down(fitted):
    samples = fitted.sample(5, n_steps=10, random_state=2)
    assert samples.shape == (5, 64) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(samples, fitted.sample(5, n_steps=10, random_state=2))
    top = fitted.layers_[-1]
    top_means = top.sample(5, 10, random_state=leafrbm._validation.seed_from_random_state(2), return_means=True)
    np.testing.assert_allclose(samples, fitted.decode(top_means, depth=2), rtol=1e-12)


def test_callbacks_and_progress(binary_digits, capsys):
    calls = []

    def record(layer, epoch, dbn):
        calls.append((layer, epoch, len(dbn.layers_)))
        return layer == 0 and epoch == 1  # stop the first layer after two epochs

    dbn = DBN(hidden_layer_sizes=(6, 4), n_iter=4, random_state=0, verbose=1, callbacks=[record]).fit(binary_digits)
    assert calls == [(0, 0, 1), (0, 1, 1), (1, 0, 2), (1, 1, 2), (1, 2, 2), (1, 3, 2)]
    assert dbn.layers_[0].n_epochs_ == 2 and dbn.layers_[1].n_epochs_ == 4
    assert "DBN" in capsys.readouterr().err
    single = DBN(hidden_layer_sizes=(3,), n_iter=2, random_state=0, callbacks=lambda *a: True).fit(binary_digits)
    assert single.layers_[0].n_epochs_ == 1


def test_save_load_and_pickle_round_trip(fitted, binary_digits, tmp_path):
    path = leafrbm.save(fitted, tmp_path / "dbn.npz")
    loaded = leafrbm.load(path)
    assert isinstance(loaded, DBN) and loaded.get_params() == fitted.get_params()
    for a, b in zip(loaded.layers_, fitted.layers_):
        for x, y in zip(_params(a), _params(b)):
            assert np.array_equal(x, y)
    np.testing.assert_array_equal(loaded.transform(binary_digits), fitted.transform(binary_digits))
    np.testing.assert_array_equal(loaded.sample(3, 5, random_state=0), fitted.sample(3, 5, random_state=0))
    unpickled = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(unpickled.reconstruct(binary_digits), fitted.reconstruct(binary_digits))
    gaussian = DBN(hidden_layer_sizes=(4,), visible="gaussian", n_iter=1, random_state=0).fit(binary_digits * 5)
    again = leafrbm.load(leafrbm.save(gaussian, tmp_path / "gaussian"))
    np.testing.assert_array_equal(again.reconstruct(binary_digits * 5), gaussian.reconstruct(binary_digits * 5))


def test_clone_and_unfitted():
    dbn = DBN(hidden_layer_sizes=(3, 2), callbacks=None)
    assert clone(dbn).get_params() == dbn.get_params()
    for method in (dbn.transform, dbn.reconstruct):
        with pytest.raises(NotFittedError):
            method(np.zeros((2, 4)))
    with pytest.raises(NotFittedError):
        dbn.sample(2)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(hidden_layer_sizes=()), ValueError, "hidden_layer_sizes"),
        (dict(hidden_layer_sizes="abc"), ValueError, "hidden_layer_sizes"),
        (dict(hidden_layer_sizes=(4, 0)), ValueError, r"hidden_layer_sizes\[1\]"),
        (dict(hidden_layer_sizes=(4, 2.5)), TypeError, r"hidden_layer_sizes\[1\]"),
        (dict(visible="poisson"), ValueError, "visible"),
        (dict(learning_rate=(0.1,)), ValueError, "learning_rate"),
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(n_iter=-1), ValueError, "n_iter"),
        (dict(k=0), ValueError, "k"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(n_jobs=0), ValueError, "n_jobs"),
        (dict(callbacks=[print, 3]), TypeError, r"callbacks\[1\]"),
        (dict(random_state="seed"), TypeError, "random_state"),
    ],
)
def test_bad_parameters(params, error, match, binary_digits):
    with pytest.raises(error, match=match):
        DBN(**{"hidden_layer_sizes": (4, 2), "n_iter": 1, **params}).fit(binary_digits[:20])


def test_bad_inputs(fitted, binary_digits):
    with pytest.raises(ValueError, match="X must hold values in"):
        DBN(hidden_layer_sizes=(3,), n_iter=1).fit(binary_digits * 2)
    with pytest.raises(ValueError, match="depth"):
        fitted.transform(binary_digits, depth=4)
    with pytest.raises(ValueError, match="depth"):
        fitted.reconstruct(binary_digits, depth=0)
    with pytest.raises(TypeError, match="depth"):
        fitted.decode(np.zeros((2, 6)), depth=1.5)
    with pytest.raises(ValueError, match="H must have shape"):
        fitted.decode(np.zeros((2, 6)), depth=1)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.transform(np.full((2, 64), np.nan))
    with pytest.raises(ValueError, match="n_steps"):
        fitted.sample(2, n_steps=0)
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample(0)


def test_sparse_input(binary_digits):
    import scipy.sparse as sp

    dbn = DBN(hidden_layer_sizes=(5, 3), n_iter=1, random_state=0).fit(sp.csr_matrix(binary_digits))
    np.testing.assert_allclose(dbn.transform(sp.csr_matrix(binary_digits[:5])), dbn.transform(binary_digits[:5]))


# ---------------------------------------------------------------------- scikit-learn checks
# The Bernoulli DBN refuses training data outside [0, 1] (the checks' Gaussian blobs) with a
# ValueError, as BernoulliRBM does; it is checked through a MinMaxScaler below, and the
# Gaussian-visible DBN is checked on the raw data.
@parametrize_with_checks(
    [DBN(hidden_layer_sizes=(4, 3), visible="gaussian", learning_rate=0.01, n_iter=2, random_state=0)]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# A Pipeline fits its steps in place, so these two checks see its `steps` parameter change during
# fit (scikit-learn 1.9 applies them to pipelines; tests/test_sklearn_compat.py's BernoulliRBM
# pipeline fails them the same way). The DBN itself passes both in the Gaussian case above.
_PIPELINE_STEPS_MUTATE = "a Pipeline fits its steps in place, so its `steps` parameter changes during fit"


@parametrize_with_checks(
    [make_pipeline(MinMaxScaler(clip=True), DBN(hidden_layer_sizes=(4, 3), n_iter=2, random_state=0))],
    expected_failed_checks=lambda estimator: {
        "check_estimators_overwrite_params": _PIPELINE_STEPS_MUTATE,
        "check_dont_overwrite_parameters": _PIPELINE_STEPS_MUTATE,
    },
)
def test_sklearn_estimator_checks_on_unit_interval_data(estimator, check):
    check(estimator)
