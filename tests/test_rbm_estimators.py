"""BernoulliRBM / GaussianBernoulliRBM: the scikit-learn contract, learning quality, reproducibility."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM as SkBernoulliRBM
from sklearn.pipeline import Pipeline

import leafrbm
from leafrbm import BernoulliRBM, GaussianBernoulliRBM


def test_defaults_match_scikit_learn():
    ours = BernoulliRBM().get_params()
    theirs = SkBernoulliRBM().get_params()
    for name, value in theirs.items():
        assert ours[name] == value, name


def test_learning_quality_matches_scikit_learn_setting(binary_digits):
    # scikit-learn's own test: 64 hidden, lr 0.1, batch 10, 7 epochs -> pseudo-likelihood near -21.
    model = BernoulliRBM(n_components=64, learning_rate=0.1, batch_size=10, n_iter=7, random_state=9)
    model.fit(binary_digits)
    ours = model.score_samples(binary_digits).mean()
    theirs = SkBernoulliRBM(n_components=64, learning_rate=0.1, batch_size=10, n_iter=7,
                            random_state=9).fit(binary_digits).score_samples(binary_digits).mean()
    assert ours == pytest.approx(-21.0, abs=3.0)
    assert ours > theirs - 1.0


def test_scikit_learn_fit_test(scaled_digits):
    # The body of sklearn/neural_network/tests/test_rbm.py::test_fit, unchanged but for the import.
    X = scaled_digits.copy()
    rbm = BernoulliRBM(n_components=64, learning_rate=0.1, batch_size=10, n_iter=7, random_state=9)
    rbm.fit(X)
    np.testing.assert_almost_equal(rbm.score_samples(X).mean(), -21.0, decimal=0)
    assert np.array_equal(X, scaled_digits)


def test_scikit_learn_score_samples_test():
    # sklearn's test_score_samples: no clipping, sparse == dense, numerical stability.
    rng = np.random.RandomState(42)
    X = np.vstack([np.zeros(1000), np.ones(1000)])
    rbm1 = BernoulliRBM(n_components=10, batch_size=2, n_iter=10, random_state=rng)
    rbm1.fit(X)
    assert (rbm1.score_samples(X) < -300).all()
    rbm1.random_state = 42
    d_score = rbm1.score_samples(X)
    rbm1.random_state = 42
    s_score = rbm1.score_samples(sp.lil_matrix(X))
    np.testing.assert_almost_equal(d_score, s_score)
    with np.errstate(under="raise"):
        rbm1.score_samples([np.arange(1000) * 100])


def test_fit_gibbs_and_small_data():
    # sklearn's test_fit_gibbs: one binary feature, gibbs samples stay binary and finite.
    rng = np.random.RandomState(42)
    X = np.array([[0.0], [1.0]])
    rbm = BernoulliRBM(n_components=2, batch_size=2, n_iter=42, random_state=rng)
    rbm.fit(X)
    assert rbm.components_.shape == (2, 1)
    assert np.all(np.isin(rbm.gibbs(X), [0.0, 1.0]))


def test_gibbs_advances_random_state(binary_digits):
    model = BernoulliRBM(n_components=16, n_iter=1, random_state=0).fit(binary_digits[:100])
    first, second = model.gibbs(binary_digits[:20]), model.gibbs(binary_digits[:20])
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype, binary_digits):
    X = binary_digits[:200].astype(dtype)
    model = BernoulliRBM(n_components=8, n_iter=2, random_state=0).fit(X)
    for attribute in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        assert getattr(model, attribute).dtype == dtype
    for result in (model.transform(X), model.reconstruct(X), model.gibbs(X), model.free_energy(X),
                   model.sample(3, n_steps=5)):
        assert result.dtype == dtype
    model.partial_fit(X)
    assert model.components_.dtype == dtype


def test_integer_input_becomes_float64():
    X = np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0]])
    assert BernoulliRBM(n_components=2, n_iter=1, random_state=0).fit(X).components_.dtype == np.float64


@pytest.mark.parametrize("model_class", [BernoulliRBM, GaussianBernoulliRBM])
def test_same_seed_bit_identical_across_n_jobs(model_class, binary_digits):
    X = binary_digits[:600].astype(np.float32)
    params = dict(n_components=150, batch_size=40, n_iter=2, random_state=3, momentum=0.5, k=2)
    one = model_class(n_jobs=1, **params).fit(X)
    two = model_class(n_jobs=2, **params).fit(X)
    assert np.array_equal(one.components_, two.components_)
    assert np.array_equal(one.intercept_hidden_, two.intercept_hidden_)
    assert np.array_equal(one.intercept_visible_, two.intercept_visible_)
    assert np.array_equal(one.h_samples_, two.h_samples_)
    assert np.array_equal(one.transform(X), two.transform(X))
    assert np.array_equal(one.sample(4, 20, random_state=1), two.sample(4, 20, random_state=1))


@pytest.mark.parametrize(
    "make_state",
    [lambda: 7, lambda: np.random.RandomState(7), lambda: np.random.default_rng(7), lambda: None],
    ids=["int", "RandomState", "Generator", "None"],
)
def test_every_random_state_type(make_state, binary_digits):
    X = binary_digits[:100]
    a = BernoulliRBM(n_components=5, n_iter=1, random_state=make_state()).fit(X)
    b = BernoulliRBM(n_components=5, n_iter=1, random_state=make_state()).fit(X)
    if make_state() is None:
        assert not np.array_equal(a.components_, b.components_)
    else:
        assert np.array_equal(a.components_, b.components_)


def test_random_state_bad_type():
    with pytest.raises(TypeError, match="random_state"):
        BernoulliRBM(n_components=2, random_state="seven").fit(np.zeros((3, 2)))


def test_partial_fit_equals_minibatch_update_of_fit(binary_digits):
    # partial_fit on one minibatch-sized chunk = one step of fit without shuffling.
    X = binary_digits[:10]
    a = BernoulliRBM(n_components=8, batch_size=10, n_iter=1, random_state=0, shuffle=False).fit(X)
    b = BernoulliRBM(n_components=8, batch_size=10, random_state=0, shuffle=False).partial_fit(X)
    assert np.array_equal(a.components_, b.components_)
    # Streaming chunks continues the same chains and RNG counter.
    b.partial_fit(binary_digits[10:30])
    assert b.n_batches_seen_ == 3


def test_sparse_input_equals_dense(binary_digits):
    X = binary_digits[:150]
    dense = BernoulliRBM(n_components=6, n_iter=2, random_state=0).fit(X)
    sparse = BernoulliRBM(n_components=6, n_iter=2, random_state=0).fit(sp.csr_matrix(X))
    assert np.array_equal(dense.components_, sparse.components_)
    np.testing.assert_allclose(dense.transform(X), sparse.transform(sp.csr_matrix(X)))


def test_reconstruct_and_free_energy_are_consistent(binary_digits):
    X = binary_digits
    model = BernoulliRBM(n_components=64, n_iter=10, random_state=0, learning_rate=0.1).fit(X)
    H = model.transform(X)
    expected = 1 / (1 + np.exp(-(H @ model.components_ + model.intercept_visible_)))
    np.testing.assert_allclose(model.reconstruct(X), expected, rtol=1e-10)
    # Trained: reconstructions beat the mean image, data is lower in free energy than noise.
    assert ((model.reconstruct(X) - X) ** 2).mean() < ((X.mean(0) - X) ** 2).mean()
    noise = (np.random.default_rng(0).random(X.shape) < X.mean()).astype(float)
    assert model.free_energy(X).mean() < model.free_energy(noise).mean()


def test_sample_produces_data_like_fantasies(binary_digits):
    X = binary_digits
    model = BernoulliRBM(n_components=64, n_iter=10, random_state=0, learning_rate=0.05).fit(X)
    samples = model.sample(200, n_steps=200, random_state=0)
    assert samples.shape == (200, 64) and set(np.unique(samples)) <= {0.0, 1.0}
    # Pixel marginals of fantasies follow the data's (digits: blank borders, ink in the middle).
    assert np.corrcoef(samples.mean(0), X.mean(0))[0, 1] > 0.8
    assert np.array_equal(model.sample(5, 10, random_state=3), model.sample(5, 10, random_state=3))


def test_gaussian_rbm_learns_and_reconstructs_in_input_scale():
    rng = np.random.default_rng(0)
    # Two prototypes in a 30-d real space, far from zero mean and unit scale.
    prototypes = rng.normal(0, 1, (2, 30)) * 3 + 50
    labels = rng.integers(0, 2, 400)
    X = prototypes[labels] + rng.normal(0, 0.3, (400, 30))
    model = GaussianBernoulliRBM(n_components=16, n_iter=30, learning_rate=0.01, batch_size=20,
                                 random_state=0, momentum=0.5).fit(X)
    np.testing.assert_allclose(model.mean_, X.mean(0), rtol=1e-10)
    reconstruction = model.reconstruct(X)
    assert reconstruction.shape == X.shape
    error = ((reconstruction - X) ** 2).mean()
    assert error < 0.3 * X.var(axis=0).mean()
    # Fantasies land near the prototypes, in the input's scale.
    samples = model.sample(50, n_steps=100, random_state=0, return_means=True)
    nearest = np.min(((samples[:, None, :] - prototypes[None]) ** 2).mean(-1), axis=1)
    assert np.median(nearest) < X.var(axis=0).mean()


def test_pipeline_with_logistic_regression():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipeline = Pipeline([
        ("rbm", BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)),
        ("logistic", LogisticRegression(C=100.0, max_iter=1000)),
    ])
    pipeline.fit(X_train, y_train)
    assert pipeline.score(X_test, y_test) > 0.85


def test_save_load_round_trip_is_exact(tmp_path, binary_digits):
    X = binary_digits[:100].astype(np.float32)
    for model in (BernoulliRBM(n_components=7, n_iter=2, random_state=1, momentum=0.3),
                  GaussianBernoulliRBM(n_components=5, n_iter=2, random_state=1)):
        model.fit(X)
        path = leafrbm.save(model, tmp_path / f"{type(model).__name__}.npz")
        with np.load(path, allow_pickle=False) as data:
            assert "components_" in data.files
        loaded = leafrbm.load(path)
        assert type(loaded) is type(model)
        assert loaded.get_params() == model.get_params()
        for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
            assert np.array_equal(getattr(loaded, name), getattr(model, name))
            assert getattr(loaded, name).dtype == getattr(model, name).dtype
        assert np.array_equal(loaded.transform(X), model.transform(X))
        # Training continues identically from the loaded state.
        assert np.array_equal(clone(model).fit(X).components_, model.fit(X).components_)
        a = leafrbm.load(path).partial_fit(X)
        b = leafrbm.load(path).partial_fit(X)
        assert np.array_equal(a.components_, b.components_)


def test_pickle_round_trip(binary_digits):
    model = BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(binary_digits[:50])
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.transform(binary_digits[:10]), model.transform(binary_digits[:10]))


def test_interrupt_leaves_usable_model(binary_digits):
    import _thread
    import threading

    X = np.tile(binary_digits, (20, 1)).astype(np.float32)
    model = BernoulliRBM(n_components=200, n_iter=1000, batch_size=10, random_state=0)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X)
    finally:
        timer.cancel()
    assert 0 < model.n_batches_seen_ < 1000 * len(X) // 10
    assert np.isfinite(model.components_).all()
    assert model.transform(X[:5]).shape == (5, 200)
    model.partial_fit(X[:20])  # and training can continue


def test_threadpoolctl_limits_do_not_change_results(binary_digits):
    """threadpoolctl (used inside scikit-learn) reaches our BLAS too; results must not move."""
    from threadpoolctl import threadpool_limits

    X = binary_digits[:300].astype(np.float32)
    params = dict(n_components=40, batch_size=20, n_iter=2, random_state=3)
    reference = BernoulliRBM(**params, n_jobs=1).fit(X).components_
    for limit in (1, 2, 4):
        with threadpool_limits(limits=limit):
            for n_jobs in (1, 2):
                got = BernoulliRBM(**params, n_jobs=n_jobs).fit(X).components_
                np.testing.assert_array_equal(got, reference)
