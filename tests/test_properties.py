"""Property-based tests of the public API (hypothesis).

Every call either gives a correct result or raises a clear ValueError/TypeError; never a crash,
a hang or a non-finite result. Estimators added later extend ``CASES``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from leafrbm import BernoulliRBM, GaussianBernoulliRBM

# derandomize: CI runs the same examples every time (explore with --hypothesis-seed=N locally).
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.float16, np.complex64])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)
def elements(dtype):
    width = min(32, np.dtype(dtype).itemsize * 8)
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=width), st.just(0.0), st.just(1.0))


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    if np.dtype(dtype).kind == "f":
        values = draw(hnp.arrays(dtype, shape, elements=elements(dtype)))
    else:
        values = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["C", "F", "strided", "readonly"]))
    if layout == "F":
        values = np.asfortranarray(values)
    elif layout == "strided" and values.ndim >= 1:
        values = np.repeat(values, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        values = values.copy()
        values.flags.writeable = False
    return values


def _expected_valid(X, bernoulli):
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1 or X.dtype.kind == "c":
        return False
    values = X.astype(np.float64)
    if not np.isfinite(values).all():
        return False
    return not bernoulli or (values.min() >= 0 and values.max() <= 1)


@SETTINGS
@given(X=arrays(), gaussian=st.booleans())
def test_fit_gives_a_finite_model_or_a_clear_error(X, gaussian):
    cls = GaussianBernoulliRBM if gaussian else BernoulliRBM
    model = cls(n_components=3, n_iter=2, batch_size=4, random_state=0)
    valid = _expected_valid(X, bernoulli=not gaussian)
    try:
        model.fit(X)
    except (ValueError, TypeError) as error:
        assert not valid, f"valid input refused: {error}"
        assert str(error)
        return
    assert valid, "invalid input accepted"
    assert np.isfinite(model.components_).all()
    codes = model.transform(X)
    assert codes.shape == (X.shape[0], 3) and np.isfinite(codes).all()
    assert ((codes >= 0) & (codes <= 1)).all()
    recon = model.reconstruct(X)
    assert recon.shape == X.shape and np.isfinite(recon).all()


@SETTINGS
@given(scale=st.floats(1e-30, 1e30), gaussian=st.booleans())
def test_huge_and_tiny_values(scale, gaussian):
    rng = np.random.default_rng(0)
    X = rng.random((12, 5))
    if gaussian:
        X = X * scale
    model = (GaussianBernoulliRBM if gaussian else BernoulliRBM)(n_components=2, n_iter=1, random_state=0)
    try:
        model.fit(X)
    except ValueError as error:  # e.g. values whose standardisation overflows
        assert "X" in str(error)
        return
    assert np.isfinite(model.components_).all()
    assert np.isfinite(model.transform(X)).all()
    assert np.isfinite(model.free_energy(X)).all()


@SETTINGS
@given(
    name=st.sampled_from(["n_components", "learning_rate", "batch_size", "n_iter", "k", "momentum",
                          "weight_decay", "sparsity_target", "sparsity_cost", "n_jobs", "persistent"]),
    value=st.one_of(st.none(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=3),
                    st.booleans(), st.lists(st.integers(), max_size=2)),
)
def test_any_parameter_value_is_accepted_or_refused_by_name(name, value):
    X = (np.random.default_rng(0).random((10, 4)) > 0.5).astype(np.float32)
    model = BernoulliRBM(n_components=2, n_iter=1, random_state=0).set_params(**{name: value})
    try:
        model.fit(X)
    except (ValueError, TypeError) as error:
        assert name in str(error)
    else:
        assert np.isfinite(model.components_).all()


@pytest.mark.parametrize("cls", [BernoulliRBM, GaussianBernoulliRBM])
@SETTINGS
@given(n_samples=st.integers(-3, 5), n_steps=st.integers(-2, 4))
def test_sample_arguments(cls, n_samples, n_steps):
    X = (np.random.default_rng(0).random((10, 4)) > 0.5).astype(np.float32)
    model = cls(n_components=2, n_iter=1, random_state=0).fit(X)
    try:
        out = model.sample(n_samples, n_steps=n_steps, random_state=1)
    except ValueError as error:
        assert n_samples < 1 or n_steps < 0
        assert ("n_samples" if n_samples < 1 else "n_steps") in str(error)
    else:
        assert out.shape == (n_samples, 4) and np.isfinite(out).all()


@SETTINGS
@given(X=arrays(), gaussian=st.booleans())
def test_dbn_fit_gives_finite_codes_or_a_clear_error(X, gaussian):
    from leafrbm import DBN

    model = DBN(hidden_layer_sizes=(3, 2), visible="gaussian" if gaussian else "bernoulli", n_iter=1,
                batch_size=4, random_state=0)
    valid = _expected_valid(X, bernoulli=not gaussian)
    try:
        model.fit(X)
    except (ValueError, TypeError) as error:
        assert not valid, f"valid input refused: {error}"
        return
    assert valid, "invalid input accepted"
    for depth in (1, 2):
        codes = model.transform(X, depth=depth)
        assert codes.shape == (X.shape[0], (3, 2)[depth - 1]) and np.isfinite(codes).all()
    assert np.isfinite(model.reconstruct(X)).all()


@SETTINGS
@given(X=arrays(), perplexity=st.floats(0.5, 50), method=st.sampled_from(["barnes_hut", "exact"]))
def test_tsne_gives_a_finite_map_or_a_clear_error(X, perplexity, method):
    from leafrbm import TSNE

    model = TSNE(perplexity=perplexity, method=method, max_iter=250, random_state=0, init="random")
    valid = (X.ndim == 2 and X.shape[0] >= 2 and X.shape[1] >= 1 and X.dtype.kind != "c"
             and np.isfinite(X.astype(np.float64)).all() and perplexity < X.shape[0])
    try:
        embedding = model.fit_transform(X)
    except (ValueError, TypeError) as error:
        assert not valid, f"valid input refused: {error}"
        return
    assert valid, "invalid input accepted"
    assert embedding.shape == (X.shape[0], 2) and np.isfinite(embedding).all()
    assert np.isfinite(model.kl_divergence_)
