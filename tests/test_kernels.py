"""RBM kernels against NumPy references given the same random numbers."""

import numpy as np
import pytest

from leafrbm import _core
import reference as ref

STREAMS = ref.STREAMS


def make_model(n_visible=37, n_hidden=23, dtype=np.float64, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    W = (rng.normal(0, scale, (n_hidden, n_visible))).astype(dtype)
    bh = rng.normal(0, 0.5, n_hidden).astype(dtype)
    bv = rng.normal(0, 0.5, n_visible).astype(dtype)
    return W, bh, bv


# Shapes that exercise row tiling (many rows) and column tiling (few rows, many columns).
SHAPES = [(5, 37, 23), (300, 37, 23), (7, 300, 200), (130, 150, 140)]


@pytest.mark.parametrize("n_rows,n_visible,n_hidden", SHAPES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_hidden_and_visible_means(n_rows, n_visible, n_hidden, dtype, rtol):
    W, bh, bv = make_model(n_visible, n_hidden, dtype)
    rng = np.random.default_rng(1)
    V = rng.random((n_rows, n_visible)).astype(dtype)
    H = rng.random((n_rows, n_hidden)).astype(dtype)
    means = np.empty((n_rows, n_hidden), dtype=dtype)
    _core.hidden_pass(W, bh, bv, False, V, means)
    np.testing.assert_allclose(means, ref.hidden_means(W.astype(float), bh, V.astype(float)), rtol=rtol, atol=rtol)
    vmeans = np.empty((n_rows, n_visible), dtype=dtype)
    _core.visible_pass(W, bh, bv, False, H, vmeans)
    np.testing.assert_allclose(vmeans, ref.visible_means(W.astype(float), bv, H.astype(float)), rtol=rtol, atol=rtol)
    _core.visible_pass(W, bh, bv, True, H, vmeans)
    np.testing.assert_allclose(vmeans, ref.visible_means(W.astype(float), bv, H.astype(float), True),
                               rtol=rtol, atol=10 * rtol)


@pytest.mark.parametrize("n_rows,n_visible,n_hidden", SHAPES)
def test_sampling_uses_keyed_uniforms(n_rows, n_visible, n_hidden):
    W, bh, bv = make_model(n_visible, n_hidden)
    V = (np.random.default_rng(2).random((n_rows, n_visible)) < 0.3).astype(float)
    means = np.empty((n_rows, n_hidden))
    samples = np.empty_like(means)
    _core.hidden_pass(W, bh, bv, False, V, means, samples, seed=42, stream=STREAMS["user_hidden"], step=9)
    u = ref.uniforms(42, "user_hidden", 9, n_rows, n_hidden)
    assert np.array_equal(samples, (u < ref.hidden_means(W, bh, V)).astype(float))
    H = samples
    vmeans = np.empty((n_rows, n_visible))
    vsamples = np.empty_like(vmeans)
    _core.visible_pass(W, bh, bv, False, H, vmeans, vsamples, seed=42, stream=STREAMS["user_visible"], step=3)
    u = ref.uniforms(42, "user_visible", 3, n_rows, n_visible)
    assert np.array_equal(vsamples, (u < ref.visible_means(W, bv, H)).astype(float))
    # Gaussian visible units: mean + N(0, 1) from the keyed normals.
    _core.visible_pass(W, bh, bv, True, H, vmeans, vsamples, seed=42, stream=STREAMS["user_normal"], step=3)
    noise = ref.normals(42, "user_normal", 3, n_rows, n_visible)
    np.testing.assert_allclose(vsamples, ref.visible_means(W, bv, H, True) + noise, rtol=1e-12, atol=1e-12)


def test_bernoulli_sampling_statistics():
    # One unit with p = sigmoid(b) sampled 200,000 times across rows matches p (binomial test).
    W = np.zeros((4, 1))
    bh = np.array([-2.0, -0.5, 0.3, 1.7])
    bv = np.zeros(1)
    V = np.ones((200_000, 1))
    means = np.empty((len(V), 4))
    samples = np.empty_like(means)
    _core.hidden_pass(W, bh, bv, False, V, means, samples, seed=3, stream=1)
    p = ref.sigmoid(bh)
    observed = samples.mean(axis=0)
    assert np.all(np.abs(observed - p) < 5 * np.sqrt(p * (1 - p) / len(V)))


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_free_energy(gaussian, dtype, rtol):
    W, bh, bv = make_model(50, 30, dtype)
    V = np.random.default_rng(4).random((70, 50)).astype(dtype)
    out = np.empty(70, dtype=dtype)
    _core.free_energy(W, bh, bv, gaussian, V, out)
    expected = ref.free_energy(*(a.astype(float) for a in (W, bh, bv, V)), gaussian=gaussian)
    np.testing.assert_allclose(out, expected, rtol=rtol)


def run_epoch(W, bh, bv, X, order, batch_size, *, chain, seed=5, first_batch=0, n_threads=1, gaussian=False, **options):
    W, bh, bv = W.copy(), bh.copy(), bv.copy()
    velocity = [np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)]
    chain = chain.copy()
    defaults = dict(learning_rate=0.1, momentum=0.0, weight_decay=0.0, sparsity_target=0.1,
                    sparsity_cost=0.0, sparsity_damping=0.9, k=1, persistent=True)
    defaults.update(options)
    activity = np.full(len(bh), defaults["sparsity_target"], dtype=W.dtype)
    done = _core.train_epoch(
        W, bh, bv, gaussian, *velocity, chain, activity, X, order, batch_size,
        defaults["learning_rate"], defaults["momentum"], defaults["weight_decay"], defaults["sparsity_target"],
        defaults["sparsity_cost"], defaults["sparsity_damping"], defaults["k"], defaults["persistent"],
        seed, first_batch, n_threads,
    )
    assert done == -(-len(X) // batch_size)
    return W, bh, bv, chain, velocity, activity


OPTIONS = [
    dict(persistent=True, k=1),
    dict(persistent=False, k=1),
    dict(persistent=False, k=3),
    dict(persistent=True, k=2, momentum=0.5, weight_decay=0.01),
    dict(persistent=True, k=1, sparsity_cost=0.5, sparsity_target=0.05),
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("n_visible,n_hidden", [(20, 12), (150, 140)])
def test_train_epoch_matches_reference(options, n_visible, n_hidden):
    W, bh, bv = make_model(n_visible, n_hidden, scale=0.1)
    rng = np.random.default_rng(6)
    X = (rng.random((53, n_visible)) < 0.4).astype(float)
    order = rng.permutation(len(X)).astype(np.int64)
    chain = (rng.random((10, n_hidden)) < 0.5).astype(float)
    got = run_epoch(W, bh, bv, X, order, 10, chain=chain, first_batch=7, **options)
    expected = ref.train_epoch(
        W, bh, bv, X, order, 10, lr=0.1, chain=chain, seed=5, first_batch=7,
        **{key: value for key, value in options.items()},
    )
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-9, atol=1e-12)
    if options["persistent"]:
        assert np.array_equal(got[3], expected[3])


@pytest.mark.parametrize("options", [OPTIONS[0], OPTIONS[3]])
def test_float32_train_epoch_matches_reference(options):
    # float32 minibatches of 10 multiply with weights packed after every update (on CPUs with
    # AVX2/FMA; BLAS elsewhere): the float64 reference with the same random numbers, to float32
    # rounding (the draws are the same: no mean lies within rounding of its uniform here).
    W, bh, bv = make_model(20, 12, scale=0.1)
    rng = np.random.default_rng(6)
    X = (rng.random((53, 20)) < 0.4).astype(float)
    order = rng.permutation(len(X)).astype(np.int64)
    chain = (rng.random((10, 12)) < 0.5).astype(float)
    as32 = [a.astype(np.float32) for a in (W, bh, bv, X)]
    got = run_epoch(*as32[:3], as32[3], order, 10, chain=chain.astype(np.float32), first_batch=7, **options)
    expected = ref.train_epoch(W, bh, bv, X, order, 10, lr=0.1, chain=chain, seed=5, first_batch=7,
                               uniform_dtype=np.float32, **options)
    for a, b in zip(got[:3], expected[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert np.array_equal(got[3], expected[3])


def test_train_epoch_gaussian_matches_reference():
    W, bh, bv = make_model(30, 15, scale=0.1)
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 30))
    order = np.arange(40, dtype=np.int64)
    chain = (rng.random((8, 15)) < 0.5).astype(float)
    got = run_epoch(W, bh, bv, X, order, 8, chain=chain, gaussian=True, learning_rate=0.01, persistent=False, k=2)
    expected = ref.train_epoch(W, bh, bv, X, order, 8, lr=0.01, chain=chain, seed=5, persistent=False, k=2,
                               gaussian=True)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_epoch_bit_identical_across_threads(dtype):
    W, bh, bv = make_model(300, 200, dtype, scale=0.05)
    rng = np.random.default_rng(9)
    X = (rng.random((250, 300)) < 0.3).astype(dtype)
    order = rng.permutation(250).astype(np.int64)
    chain = np.zeros((25, 200), dtype=dtype)
    one = run_epoch(W, bh, bv, X, order, 25, chain=chain, n_threads=1, momentum=0.5)
    two = run_epoch(W, bh, bv, X, order, 25, chain=chain, n_threads=2, momentum=0.5)
    for a, b in zip(one[:4], two[:4]):
        assert np.array_equal(a, b)


def test_gibbs_chain_matches_reference_steps():
    W, bh, bv = make_model(40, 25)
    V = (np.random.default_rng(10).random((6, 40)) < 0.5).astype(float)
    chain = V.copy()
    means = np.empty_like(V)
    assert _core.gibbs_chain(W, bh, bv, False, chain, 3, 77, STREAMS["user_visible"], 4, means) == 3
    v = V
    for step in range(4, 7):
        h = (ref.uniforms(77, "user_visible", 2 * step, 6, 25) < ref.hidden_means(W, bh, v)).astype(float)
        vm = ref.visible_means(W, bv, h)
        v = (ref.uniforms(77, "user_visible", 2 * step + 1, 6, 40) < vm).astype(float)
    assert np.array_equal(chain, v)
    np.testing.assert_allclose(means, vm, rtol=1e-12)
