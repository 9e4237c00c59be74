"""Run-time instruction sets: every copy of the kernels gives the same bits.

The elementwise kernels (Philox, sigmoid, Bernoulli draws, softplus sums) are compiled for the
baseline, AVX2 and AVX-512 and chosen at run time; chains, AIS and float32 training multiply by
packed weights with an FMA micro-kernel where AVX2 is available (BLAS on the baseline). These tests switch
between the copies this CPU runs and compare results bit for bit.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import leafrbm
from leafrbm import _core
from leafrbm._config import build_config
from leafrbm.likelihood import ais_betas
from leafrbm.occlusion import inpaint, rectangle
import reference as ref

ORDER = ["baseline", "avx2", "avx512"]
SUPPORTED = ORDER[: ORDER.index(_core.build_config()["simd_kernels_supported"]) + 1]
PACKED = [isa for isa in SUPPORTED if isa != "baseline"]  # copies with packed products


@pytest.fixture
def restore_simd():
    original = _core.simd_kernels()
    yield
    _core.set_simd_kernels(original)


def run_in_each(isas, function):
    results = {}
    for isa in isas:
        _core.set_simd_kernels(isa)
        results[isa] = function()
    return results


def assert_all_identical(results):
    (first, reference), *others = results.items()
    for isa, value in others:
        for a, b in zip(reference, value):
            assert np.array_equal(a, b), f"{isa} differs from {first}"


def test_simd_kernels_reported_and_selectable(restore_simd):
    assert _core.simd_kernels() in ORDER
    assert build_config()["simd_kernels"] == _core.simd_kernels()
    for isa in SUPPORTED:
        _core.set_simd_kernels(isa)
        assert _core.simd_kernels() == isa
    with pytest.raises(ValueError, match="sse9"):
        _core.set_simd_kernels("sse9")
    unsupported = ORDER[len(SUPPORTED):]
    for isa in unsupported:
        with pytest.raises(ValueError, match=isa):
            _core.set_simd_kernels(isa)


def test_environment_variable_caps_the_choice():
    code = "from leafrbm import _core; print(_core.simd_kernels())"
    env = dict(os.environ, LEAFRBM_SIMD="baseline")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "baseline"  # (an editable install may log a rebuild first)


def test_unknown_environment_value_warns_and_is_ignored():
    code = ("import warnings; warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    import leafrbm\n"
            "print(leafrbm._core.simd_kernels()); print(str(seen[0].message) if seen else 'no warning')")
    env = dict(os.environ, LEAFRBM_SIMD="avx9000")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-2] == _core.build_config()["simd_kernels_supported"]
    assert "LEAFRBM_SIMD='avx9000'" in lines[-1] and "ignored" in lines[-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_and_sampling_identical_in_every_copy(restore_simd, dtype):
    # float64 training multiplies with BLAS in every copy: all copies agree bit for bit. float32
    # training multiplies with packed weights where the copy has FMA (AVX2, AVX-512): those agree.
    isas = SUPPORTED if dtype == np.float64 else PACKED
    if len(isas) < 2:
        pytest.skip("this CPU runs fewer than two comparable copies")
    X = (np.random.default_rng(0).random((120, 50)) < 0.3).astype(dtype)

    def fit():
        rbm = leafrbm.BernoulliRBM(n_components=20, n_iter=3, batch_size=16, random_state=1, n_jobs=2)
        rbm.fit(X)
        return rbm.components_, rbm.intercept_hidden_, rbm.transform(X), rbm.gibbs(X[:7])

    assert_all_identical(run_in_each(isas, fit))


def test_chains_and_ais_identical_in_every_packed_copy(restore_simd):
    if len(PACKED) < 2:
        pytest.skip("this CPU runs fewer than two copies with packed products")
    rng = np.random.default_rng(3)
    rbm = ref.random_rbm(40, 150, scale=0.3, seed=2, dtype=np.float32, cls=leafrbm.BernoulliRBM, n_jobs=2)
    X = (rng.random((21, 150)) < 0.4).astype(np.float32)
    X[:, ::3] = 0.0  # zero columns shared by every row: the packed products skip them
    mask = rng.random((21, 150)) < 0.7
    betas = ais_betas(300)

    def chains():
        filled = inpaint(rbm, X, mask, n_steps=30, random_state=4)
        sampled = rbm.sample(9, n_steps=25, random_state=5)
        log_w = np.empty(24)
        _core.ais_log_weights(rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_,
                              np.full(150, -0.5, np.float32), betas, 24, 6, log_w, n_threads=2)
        return filled, sampled, log_w

    assert_all_identical(run_in_each(PACKED, chains))


def test_packed_chain_matches_reference_steps(restore_simd):
    # float32 chain through the packed products against the NumPy reference with the same
    # random numbers: samples equal, means to float32 rounding.
    if not PACKED:
        pytest.skip("this CPU has no AVX2/FMA")
    _core.set_simd_kernels(PACKED[-1])
    rng = np.random.default_rng(7)
    W = rng.normal(0, 0.3, (45, 70)).astype(np.float32)
    bh = rng.normal(0, 0.5, 45).astype(np.float32)
    bv = rng.normal(0, 0.5, 70).astype(np.float32)
    V = (rng.random((11, 70)) < 0.5).astype(np.float32)
    V[:, :20] = 0.0
    chain, means = V.copy(), np.empty_like(V)
    assert _core.gibbs_chain(W, bh, bv, False, chain, 4, 77, ref.STREAMS["user_visible"], 2, means) == 4
    v = V.astype(np.float64)
    for step in range(2, 6):
        h = (ref.uniforms(77, "user_visible", 2 * step, 11, 45, np.float32) < ref.hidden_means(W, bh, v)).astype(float)
        vm = ref.visible_means(W, bv, h)
        v = (ref.uniforms(77, "user_visible", 2 * step + 1, 11, 70, np.float32) < vm).astype(float)
    assert np.array_equal(chain, v)
    np.testing.assert_allclose(means, vm, rtol=2e-5)


def test_packed_and_blas_chains_agree_in_distribution(restore_simd):
    # The baseline multiplies with BLAS, the other copies with packed weights: the last bits of
    # the products may differ, and so the chains, but not in law. Mean fill-in of 400 chains.
    if not PACKED:
        pytest.skip("this CPU has no AVX2/FMA")
    rbm = ref.random_rbm(12, 64, scale=0.4, seed=8, dtype=np.float32, cls=leafrbm.BernoulliRBM, n_jobs=2)
    X = np.tile((np.random.default_rng(9).random(64) < 0.5).astype(np.float32), (400, 1))
    mask = np.zeros((400, 64), dtype=bool)
    mask[:, :32] = True

    def fill():
        return (inpaint(rbm, X, mask, n_steps=40, random_state=10)[:, 32:].mean(0),)

    results = run_in_each(["baseline", PACKED[-1]], fill)
    a, b = results["baseline"][0], results[PACKED[-1]][0]
    # Each pixel's mean over 400 chains has a standard error below 0.025.
    assert np.max(np.abs(a - b)) < 0.11
