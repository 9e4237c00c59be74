"""The counter-based generator: uniformity, independence, normals, and thread-count invariance."""

import numpy as np
import pytest
from scipy import stats

from leafrbm import _core
from reference import STREAMS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_is_uniform(dtype):
    out = np.empty((200, 500), dtype=dtype)
    _core.random_uniform(12345, STREAMS["user_uniform"], 0, out)
    assert out.min() >= 0.0 and out.max() < 1.0
    # Kolmogorov-Smirnov against U(0, 1) on 100,000 draws.
    assert stats.kstest(out.ravel(), "uniform").pvalue > 1e-4
    # Chi-square over 100 equal bins.
    counts, _ = np.histogram(out, bins=100, range=(0, 1))
    assert stats.chisquare(counts).pvalue > 1e-4


def test_uniform_independence():
    out = np.empty((400, 256), dtype=np.float64)
    _core.random_uniform(7, STREAMS["user_uniform"], 3, out)
    centred = out - 0.5
    # Neighbouring columns, neighbouring rows and the same cell in two streams are uncorrelated.
    n = out.size
    bound = 5 / np.sqrt(n)
    assert abs(np.corrcoef(centred[:, :-1].ravel(), centred[:, 1:].ravel())[0, 1]) < bound
    assert abs(np.corrcoef(centred[:-1].ravel(), centred[1:].ravel())[0, 1]) < bound
    other = np.empty_like(out)
    _core.random_uniform(7, STREAMS["user_hidden"], 3, other)
    assert abs(np.corrcoef(out.ravel(), other.ravel())[0, 1]) < bound
    next_step = np.empty_like(out)
    _core.random_uniform(7, STREAMS["user_uniform"], 4, next_step)
    assert abs(np.corrcoef(out.ravel(), next_step.ravel())[0, 1]) < bound


def test_different_seeds_differ_and_same_seed_repeats():
    a, b, c = (np.empty((10, 10)) for _ in range(3))
    _core.random_uniform(1, 1, 0, a)
    _core.random_uniform(1, 1, 0, b)
    _core.random_uniform(2, 1, 0, c)
    assert np.array_equal(a, b)
    assert not np.any(a == c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_moments(dtype):
    out = np.empty((300, 400), dtype=dtype)
    _core.random_normal(99, STREAMS["user_normal"], 0, out)
    x = out.ravel().astype(np.float64)
    assert abs(x.mean()) < 5 / np.sqrt(x.size)
    assert abs(x.var() - 1) < 0.02
    assert abs(stats.skew(x)) < 0.03
    assert abs(stats.kurtosis(x)) < 0.06
    assert stats.kstest(x, "norm").pvalue > 1e-4


@pytest.mark.parametrize("generator", [_core.random_uniform, _core.random_normal])
def test_same_numbers_at_any_thread_count_and_row_offset(generator):
    one = np.empty((333, 77), dtype=np.float32)
    two = np.empty_like(one)
    generator(5, 2, 11, one, 0, 1)
    generator(5, 2, 11, two, 0, 2)
    assert np.array_equal(one, two)
    # Rows are keyed by absolute index: a slice generated with an offset matches.
    part = np.empty((33, 77), dtype=np.float32)
    generator(5, 2, 11, part, 100, 2)
    assert np.array_equal(part, one[100:133])


def test_output_must_be_writable_contiguous_and_exact_dtype():
    with pytest.raises(TypeError):
        _core.random_uniform(0, 1, 0, np.empty((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.random_uniform(0, 1, 0, np.empty((4, 4))[:, ::2])
    readonly = np.empty((2, 2))
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.random_uniform(0, 1, 0, readonly)
