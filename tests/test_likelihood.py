"""Partition functions (exact, AIS), log-likelihoods and the DBN lower bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp, xlogy

import reference as ref
from leafrbm import DBN, BernoulliRBM, GaussianBernoulliRBM, _core
from leafrbm.likelihood import ais_betas, log_partition




# ---------------------------------------------------------------------- exact log Z
@pytest.mark.parametrize("n_hidden, n_visible", [(5, 9), (9, 5), (7, 7), (1, 3)])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_exact_log_partition_matches_brute_force(n_hidden, n_visible, dtype, tol):
    rbm = ref.random_rbm(n_hidden, n_visible, scale=1.5, dtype=dtype)
    expected = ref.brute_log_partition(*(a.astype(np.float64) for a in rbm._model_args()[:3]))
    for enumerate_hidden in (True, False):
        got = _core.exact_log_partition(*rbm._model_args(), enumerate_hidden, n_threads=2)
        assert got == pytest.approx(expected, rel=tol, abs=tol)
    result = rbm.log_partition()
    assert result.method == "exact" and result.lower == result.upper == result.log_z
    assert float(result) == pytest.approx(expected, rel=tol, abs=tol)


def test_exact_log_partition_many_blocks_and_threads():
    """2**16 hidden states: many parallel blocks, merged in order: identical at any thread count."""
    rbm = ref.random_rbm(16, 40, scale=0.3, seed=3)
    W, bh, bv = rbm._model_args()[:3]
    one = _core.exact_log_partition(W, bh, bv, False, True, n_threads=1)
    two = _core.exact_log_partition(W, bh, bv, False, True, n_threads=2)
    assert one == two
    hs = np.array(list(itertools.product([0, 1], repeat=16)), dtype=np.float64)
    expected = logsumexp(hs @ bh + ref.softplus(hs @ W + bv).sum(1))
    assert one == pytest.approx(expected, rel=1e-12)


def test_bernoulli_log_likelihood_is_normalised():
    rbm = ref.random_rbm(4, 8, scale=1.0, seed=1)
    vs = np.array(list(itertools.product([0, 1], repeat=8)), dtype=np.float64)
    log_p = rbm.log_likelihood(vs)
    assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-10)
    # With a given log Z, -F(v) - log Z.
    np.testing.assert_allclose(rbm.log_likelihood(vs, log_partition=2.5),
                               -ref.free_energy(*rbm._model_args()[:3], vs) - 2.5, rtol=1e-12)


def test_gaussian_log_partition_and_density_integrate_to_one():
    """One Gaussian visible unit: the density in the input's scale integrates to 1 numerically."""
    rbm = ref.random_rbm(3, 1, scale=0.8, seed=2, cls=GaussianBernoulliRBM)
    rbm.mean_ = np.array([0.7])
    rbm.scale_ = np.array([2.0])
    grid = np.linspace(-40, 40, 200001)[:, None]
    density = np.exp(rbm.log_likelihood(grid))
    assert np.trapezoid(density[:, 0] if density.ndim == 2 else density, grid[:, 0]) == pytest.approx(1.0, abs=1e-8)
    # Exact log Z against the direct sum over h of the Gaussian integral.
    W, bh, bv = rbm._model_args()[:3]
    hs = np.array(list(itertools.product([0, 1], repeat=3)), dtype=np.float64)
    mean = bv + hs @ W
    expected = logsumexp(hs @ bh + 0.5 * (mean ** 2).sum(1) - 0.5 * (bv ** 2).sum()) + 0.5 * np.log(2 * np.pi)
    assert float(rbm.log_partition()) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------- AIS
def test_ais_betas_schedule():
    betas = ais_betas()
    assert len(betas) == 14501 and betas[0] == 0.0 and betas[-1] == 1.0
    steps = np.diff(betas)
    assert np.allclose(steps[:500], 1e-3) and np.allclose(steps[500:4500], 1e-4) and np.allclose(steps[4500:], 1e-5)
    small = ais_betas(145)
    assert len(small) == 146 and small[0] == 0 and small[-1] == 1 and np.all(np.diff(small) > 0)


def test_ais_kernel_matches_numpy_reference():
    rbm = ref.random_rbm(12, 20, scale=0.5, seed=4)
    W, bh, bv = rbm._model_args()[:3]
    base = np.random.default_rng(0).normal(0, 0.5, 20)
    betas = ais_betas(300)
    log_w = np.empty(30)
    log_z0 = _core.ais_log_weights(W, bh, bv, base, betas, 30, 1234, log_w, n_threads=2)
    expected_w, expected_z0 = ref.ais_log_weights(W, bh, bv, base, betas, 30, 1234)
    assert log_z0 == pytest.approx(expected_z0, rel=1e-12)
    np.testing.assert_allclose(log_w, expected_w, rtol=1e-9, atol=1e-9)


def test_gaussian_ais_kernel_matches_numpy_reference():
    rbm = ref.random_rbm(12, 20, scale=0.3, seed=4, cls=GaussianBernoulliRBM)
    W, bh, bv = rbm._model_args()[:3]
    base = np.random.default_rng(1).normal(0, 0.5, 20)
    betas = ais_betas(300)
    log_w = np.empty(30)
    log_z0 = _core.ais_log_weights(W, bh, bv, base, betas, 30, 1234, log_w, n_threads=2, gaussian=True)
    expected_w, expected_z0 = ref.ais_log_weights_gaussian(W, bh, bv, base, betas, 30, 1234)
    assert log_z0 == pytest.approx(expected_z0, rel=1e-12)
    np.testing.assert_allclose(log_w, expected_w, rtol=1e-9, atol=1e-9)


def test_gaussian_ais_within_0_2_nats_of_exact():
    # A Gaussian-Bernoulli RBM trained on digits (standardised internally): exact log Z by
    # enumerating its 14 hidden units, AIS from N(data means, I) with 2,000 temperatures.
    from sklearn.datasets import load_digits

    X = load_digits().data[:600]
    rbm = GaussianBernoulliRBM(n_components=14, learning_rate=0.005, n_iter=10, batch_size=20, random_state=0,
                               n_jobs=2).fit(X)
    exact = rbm.log_partition("exact")
    ais = rbm.log_partition("ais", n_runs=100, betas=2000, base_rate=X, random_state=3)
    assert ais.method == "ais" and np.isfinite(ais.log_z)
    assert abs(ais.log_z - exact.log_z) < 0.2, (ais.log_z, exact.log_z)
    assert ais.lower <= ais.log_z <= ais.upper
    # The log-likelihood defaults to AIS past 25 hidden units; here both estimates agree.
    ll_exact = rbm.log_likelihood(X[:100], log_partition=exact).mean()
    ll_ais = rbm.log_likelihood(X[:100], log_partition=ais).mean()
    assert abs(ll_exact - ll_ais) < 0.2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ais_bit_identical_across_threads(dtype):
    rbm = ref.random_rbm(150, 140, scale=0.05, seed=5, dtype=dtype)  # several column tiles
    args = rbm._model_args()[:3]
    base = np.zeros(140, dtype=dtype)
    out = []
    for threads in (1, 2):
        log_w = np.empty(130)
        _core.ais_log_weights(*args, base, ais_betas(50), 130, 9, log_w, n_threads=threads)
        out.append(log_w)
    assert np.array_equal(out[0], out[1])


@pytest.fixture(scope="module")
def digits_rbm(binary_digits):
    """A 64-20 RBM trained on binarised digits (exact log Z is cheap, AIS is not trivial)."""
    return BernoulliRBM(n_components=20, learning_rate=0.05, batch_size=20, n_iter=20, random_state=0,
                        n_jobs=2).fit(binary_digits)


def test_ais_within_0_2_nats_of_exact_with_paper_schedule(digits_rbm, binary_digits):
    exact = float(digits_rbm.log_partition("exact"))
    ais = digits_rbm.log_partition("ais", n_runs=100, base_rate=binary_digits, random_state=0)
    assert ais.method == "ais" and len(ais.log_weights) == 100
    assert abs(ais.log_z - exact) < 0.2
    assert ais.lower <= ais.log_z <= ais.upper
    # Test log-likelihood from AIS close to the exact one.
    exact_ll = digits_rbm.log_likelihood(binary_digits[:200], log_partition=exact).mean()
    ais_ll = digits_rbm.log_likelihood(binary_digits[:200], log_partition=ais).mean()
    assert abs(exact_ll - ais_ll) < 0.2


def test_ais_on_random_20_hidden_model():
    rbm = ref.random_rbm(20, 60, scale=0.3, seed=7)
    exact = float(rbm.log_partition("exact"))
    ais = rbm.log_partition("ais", betas=1500, n_runs=50, random_state=1)
    assert abs(ais.log_z - exact) < 0.2
    # Reproducible with the same seed, different with another.
    assert rbm.log_partition("ais", betas=20, n_runs=5, random_state=1).log_z == \
        rbm.log_partition("ais", betas=20, n_runs=5, random_state=1).log_z
    assert rbm.log_partition("ais", betas=20, n_runs=5, random_state=1).log_z != \
        rbm.log_partition("ais", betas=20, n_runs=5, random_state=2).log_z


def test_ais_is_exact_for_an_rbm_equal_to_its_base_model():
    """W = 0, c = 0 and b_A = b_B: every importance weight is 1, so AIS returns log Z exactly."""
    rbm = ref.random_rbm(3, 5)
    rbm.components_[:] = 0.0
    rbm.intercept_hidden_[:] = 0.0
    marginals = 1.0 / (1.0 + np.exp(-rbm.intercept_visible_))
    ais = rbm.log_partition("ais", betas=10, n_runs=4, base_rate=marginals, random_state=0)
    np.testing.assert_allclose(ais.log_weights, 0.0, atol=1e-12)
    assert ais.log_z == pytest.approx(float(rbm.log_partition("exact")), abs=1e-10)
    assert ais.lower == ais.upper == pytest.approx(ais.log_z)


def test_auto_method_choice(digits_rbm):
    assert digits_rbm.log_partition().method == "exact"
    big = ref.random_rbm(30, 40, scale=0.01)
    assert big.log_partition(betas=20, n_runs=5, random_state=0).method == "ais"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(method="magic"), ValueError, "method"),
        (dict(method="ais", n_runs=0), ValueError, "n_runs"),
        (dict(method="ais", betas=[0.0, 0.5]), ValueError, "betas"),
        (dict(method="ais", betas=[0.0, 0.7, 0.5, 1.0]), ValueError, "betas"),
        (dict(method="ais", betas=2), ValueError, "betas"),
        (dict(method="ais", betas=np.zeros((2, 2))), ValueError, "betas"),
        (dict(method="ais", base_rate=np.ones(7)), ValueError, "base_rate"),
        (dict(method="ais", base_rate=np.full(6, 1.5)), ValueError, "base_rate"),
        (dict(method="ais", n_runs=2.5), TypeError, "n_runs"),
    ],
)
def test_log_partition_bad_input(kwargs, error, match):
    rbm = ref.random_rbm(4, 6)
    with pytest.raises(error, match=match):
        rbm.log_partition(**kwargs)


def test_log_partition_refusals():
    with pytest.raises(ValueError, match="at most 30"):
        ref.random_rbm(31, 40, scale=0.01).log_partition("exact")
    gaussian = ref.random_rbm(4, 6, cls=GaussianBernoulliRBM)
    with pytest.raises(ValueError, match="base_rate"):
        gaussian.log_partition("ais", base_rate=np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        gaussian.log_partition("ais", base_rate=np.full(6, np.nan))
    with pytest.raises(TypeError, match="rbm"):
        log_partition(DBN())
    with pytest.raises(TypeError, match="rbm"):
        log_partition("not a model")


# ---------------------------------------------------------------------- DBN lower bound
def _tiny_dbn(seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((300, 6)) < np.linspace(0.2, 0.8, 6)).astype(np.float64)
    return DBN(hidden_layer_sizes=(4, 3), n_iter=30, learning_rate=0.1, random_state=seed, n_jobs=1).fit(X), X


def _exact_bound_and_likelihood(dbn, v):
    """E_q[log p(v|h1) - F2(h1)] + H(q) - log Z2, and log p(v) = log Σ_h1 p(v|h1) p2(h1), exactly."""
    first, top = dbn.layers_
    W1, bh1, bv1 = first._model_args()[:3]
    hs = np.array(list(itertools.product([0, 1], repeat=first.n_components)), dtype=np.float64)
    a = hs @ W1 + bv1
    log_conditional = v @ a.T - ref.softplus(a).sum(1)  # (n, 16)
    log_z2 = ref.brute_log_partition(*top._model_args()[:3])
    log_p2 = -ref.free_energy(*top._model_args()[:3], hs) - log_z2
    q = ref.hidden_means(W1, bh1, v)
    log_q = hs @ np.log(q).T + (1 - hs) @ np.log1p(-q).T  # (16, n)
    entropy = -(xlogy(q, q) + xlogy(1 - q, 1 - q)).sum(1)
    bound = (np.exp(log_q).T * (log_conditional + log_p2)).sum(1) + entropy
    return bound, logsumexp(log_conditional + log_p2, axis=1)


def test_dbn_lower_bound_estimates_the_exact_bound():
    dbn, X = _tiny_dbn()
    v = np.array(list(itertools.product([0, 1], repeat=6)), dtype=np.float64)
    exact_bound, exact_ll = _exact_bound_and_likelihood(dbn, v)
    assert np.all(exact_bound <= exact_ll + 1e-12)
    estimate = dbn.log_likelihood_lower_bound(v, n_samples=400, random_state=0)
    # Monte Carlo over 400 draws per row: well within a tenth of a nat for these tiny layers.
    np.testing.assert_allclose(estimate, exact_bound, atol=0.1)
    # The exact log-likelihood of a DBN is normalised over all 2**6 images.
    assert logsumexp(exact_ll) == pytest.approx(0.0, abs=1e-10)


def test_one_layer_dbn_bound_is_the_rbm_likelihood(binary_digits):
    dbn = DBN(hidden_layer_sizes=(8,), n_iter=2, random_state=0, n_jobs=1).fit(binary_digits)
    np.testing.assert_allclose(dbn.log_likelihood_lower_bound(binary_digits[:50]),
                               dbn.layers_[0].log_likelihood(binary_digits[:50]))


# ---------------------------------------------------------------------- published anchor (slow)
@pytest.mark.slow
def test_mnist_784_16_pcd_reaches_published_log_likelihood(shared_data):
    """PyDeep's 784-16 RBM (not centred): PCD-1, lr 0.01, batch 100, 50 epochs on MNIST
    thresholded at 0.5 reaches a test log-likelihood of -149.05 with exact log Z."""
    path = shared_data / "mnist" / "mnist.npz"
    if not path.exists():
        pytest.skip("MNIST is not in ../shared/data")
    with np.load(path) as data:
        train = (data["x_train"].reshape(-1, 784) / 255.0 > 0.5).astype(np.float64)
        test = (data["x_test"].reshape(-1, 784) / 255.0 > 0.5).astype(np.float64)
    rbm = BernoulliRBM(n_components=16, learning_rate=0.01, batch_size=100, n_iter=0, random_state=0, n_jobs=1)
    rbm.fit(train)
    # PyDeep's 'AUTO' initial visible bias: the logit of the data's pixel means.
    mean = np.clip(train.mean(0), 1e-3, 1 - 1e-3)
    rbm.intercept_visible_ = np.log(mean) - np.log1p(-mean)
    for _ in range(50):
        rbm.partial_fit(train)
    log_z = rbm.log_partition("exact")
    test_ll = rbm.log_likelihood(test, log_partition=log_z).mean()
    assert abs(test_ll - (-149.05)) < 3.0, (test_ll, float(log_z))
