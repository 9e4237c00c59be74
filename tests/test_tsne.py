"""t-SNE: kernels against NumPy references and scikit-learn, the estimator, reproducibility,
stopping rules, transform of new points, bad input and scikit-learn's estimator checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from leafrbm import TSNE, _core

from reference import tsne_conditional_p, tsne_kl_and_gradient

# scikit-learn 1.9.1's TSNE(random_state=0, n_jobs=2) on digits (research/baselines.md, C):
# trustworthiness@10 0.9926, reported KL 0.7530.
SKLEARN_DIGITS_TRUST10 = 0.9926
SKLEARN_DIGITS_KL = 0.7530


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def digits_fit(digits):
    X, _ = digits
    return TSNE(random_state=0, n_jobs=2).fit(X)


def _joint_p(X, perplexity=30.0, k=None):
    n = len(X)
    k = k or min(n - 1, int(3 * perplexity + 1))
    indices = np.empty((n, k), dtype=np.int64)
    sqdist = np.empty((n, k), dtype=np.float32)
    _core.tsne_knn(np.ascontiguousarray(X), None, k, indices, sqdist, 2)
    conditional = np.empty((n, k))
    _core.tsne_binary_search(sqdist, perplexity, conditional, 2)
    indptr, cols, data = _core.tsne_symmetrize(indices, conditional)
    return sp.csr_matrix((data, cols, indptr), shape=(n, n)), indices, sqdist


def _gradient(P, Y, *, angle=0.5, exact=False, dof=1.0, exaggeration=1.0, n_threads=2):
    grad = np.empty_like(Y)
    kl = _core.tsne_gradient(np.ascontiguousarray(Y), P.indptr.astype(np.int64), P.indices.astype(np.int64),
                             P.data.astype(np.float64), exaggeration, dof, angle, exact, True, grad, n_threads)
    return kl, grad


# ----------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_knn_matches_brute_force(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 13)).astype(dtype)
    Q = rng.normal(size=(90, 13)).astype(dtype)
    k = 25
    D = ((X.astype(np.float64)[:, None] - X.astype(np.float64)[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    expected = np.argsort(D, axis=1, kind="stable")[:, :k]
    indices = np.empty((700, k), dtype=np.int64)
    sqdist = np.empty((700, k), dtype=np.float32)
    _core.tsne_knn(X, None, k, indices, sqdist, 2)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(sqdist, np.take_along_axis(D, expected, 1), rtol=1e-5)
    # Queries against the reference set (nothing excluded).
    DQ = ((Q.astype(np.float64)[:, None] - X.astype(np.float64)[None]) ** 2).sum(-1)
    indices = np.empty((90, k), dtype=np.int64)
    sqdist = np.empty((90, k), dtype=np.float32)
    _core.tsne_knn(X, Q, k, indices, sqdist, 1)
    np.testing.assert_array_equal(indices, np.argsort(DQ, axis=1, kind="stable")[:, :k])


def test_conditional_p_matches_reference(digits):
    X, _ = digits
    _, indices, sqdist = _joint_p(X[:400], perplexity=20.0)
    conditional = np.empty(sqdist.shape)
    _core.tsne_binary_search(sqdist, 20.0, conditional, 2)
    np.testing.assert_allclose(conditional, tsne_conditional_p(sqdist, 20.0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(conditional.sum(1), 1.0, rtol=1e-12)
    # Entropy is log(perplexity) within the search's tolerance.
    entropy = -(conditional * np.log(np.maximum(conditional, 1e-300))).sum(1)
    np.testing.assert_allclose(entropy, np.log(20.0), atol=1e-5)


def test_joint_p_matches_sklearn(digits):
    from sklearn.manifold._t_sne import _joint_probabilities_nn

    X, _ = digits
    n = 600
    P, indices, sqdist = _joint_p(X[:n])
    k = indices.shape[1]
    distances = sp.csr_matrix((sqdist.ravel(), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    expected = _joint_probabilities_nn(distances, 30.0, 0)
    assert abs(P - expected).max() <= 1e-12 * expected.max()
    np.testing.assert_allclose(P.sum(), 1.0, rtol=1e-12)
    assert abs(P - P.T).max() == 0.0


@pytest.mark.parametrize("dof", [1.0, 0.6, 2.5])
def test_exact_gradient_and_kl_match_numpy(digits, dof):
    X, _ = digits
    P, _, _ = _joint_p(X[:300])
    Y = np.random.default_rng(1).normal(scale=3.0, size=(300, 2))
    kl, grad = _gradient(P, Y, exact=True, dof=dof, exaggeration=4.0)
    kl_ref, grad_ref = tsne_kl_and_gradient(P.toarray(), Y, dof=dof, exaggeration=4.0)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-14)
    assert kl == pytest.approx(kl_ref, rel=1e-10)
    kl_exact = _core.tsne_kl_exact(Y, P.indptr.astype(np.int64), P.indices.astype(np.int64), P.data, dof, 2)
    assert kl_exact == pytest.approx(tsne_kl_and_gradient(P.toarray(), Y, dof=dof)[0], rel=1e-10)


@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
def test_reference_gradient_is_the_derivative_of_kl(dof):
    rng = np.random.default_rng(2)
    P = rng.random((9, 9))
    P = P + P.T
    np.fill_diagonal(P, 0)
    P /= P.sum()
    Y = rng.normal(size=(9, 2))
    _, grad = tsne_kl_and_gradient(P, Y, dof=dof)
    numeric = np.zeros_like(Y)
    h = 1e-6
    for idx in np.ndindex(*Y.shape):
        Yp, Ym = Y.copy(), Y.copy()
        Yp[idx] += h
        Ym[idx] -= h
        numeric[idx] = (tsne_kl_and_gradient(P, Yp, dof=dof)[0] - tsne_kl_and_gradient(P, Ym, dof=dof)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dof", [1.0, 0.5])
def test_barnes_hut_gradient_converges_to_exact(digits, dof):
    X, _ = digits
    P, _, _ = _joint_p(X)
    # A map with clusters, as t-SNE makes them.
    Y = TSNE(init="random", random_state=0, max_iter=300, n_jobs=2).fit_transform(X).astype(np.float64)
    kl_exact, grad_exact = _gradient(P, Y, exact=True, dof=dof)
    errors = []
    for angle in [0.8, 0.5, 0.2, 0.0]:
        kl, grad = _gradient(P, Y, angle=angle, dof=dof)
        errors.append(np.linalg.norm(grad - grad_exact) / np.linalg.norm(grad_exact))
        if angle == 0.0:
            assert kl == pytest.approx(kl_exact, rel=1e-5)
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-5  # angle 0: every interaction direct, float32 positions
    if dof == 1.0:
        # At the default angle, at least as accurate as scikit-learn's Barnes-Hut.
        from sklearn.manifold._t_sne import _kl_divergence_bh

        P32 = P.astype(np.float32)
        _, grad_sklearn = _kl_divergence_bh(Y.astype(np.float32).ravel(), P32, 1, len(Y), 2, angle=0.5,
                                            num_threads=2)
        error_sklearn = np.linalg.norm(grad_sklearn.reshape(-1, 2) - grad_exact) / np.linalg.norm(grad_exact)
        assert errors[1] <= error_sklearn


# ----------------------------------------------------------------------------------- estimator
def test_digits_quality_at_least_sklearn(digits, digits_fit):
    X, _ = digits
    model = digits_fit
    assert model.embedding_.shape == (1797, 2) and model.embedding_.dtype == np.float32
    assert model.n_iter_ == 999
    assert model.learning_rate_ == pytest.approx(max(1797 / 12 / 4, 50))
    assert model.n_features_in_ == 64
    assert trustworthiness(X, model.embedding_, n_neighbors=10) >= SKLEARN_DIGITS_TRUST10 - 1e-3
    assert model.kl_divergence_ <= SKLEARN_DIGITS_KL * 1.01


@pytest.mark.slow
def test_digits_trustworthiness_vs_live_sklearn(digits, digits_fit):
    from sklearn.manifold import TSNE as SklearnTSNE

    X, _ = digits
    reference = SklearnTSNE(random_state=0, n_jobs=2).fit(X)
    ours = trustworthiness(X, digits_fit.embedding_, n_neighbors=10)
    assert ours >= trustworthiness(X, reference.embedding_, n_neighbors=10) - 1e-3
    assert trustworthiness(X, digits_fit.embedding_, n_neighbors=5) >= trustworthiness(
        X, reference.embedding_, n_neighbors=5) - 1e-3


def test_kl_decreases_and_callbacks(digits):
    X, _ = digits
    record = []
    TSNE(random_state=0, n_jobs=2, max_iter=500, callbacks=lambda it, kl, emb: record.append((it, kl, emb.copy())),
         callbacks_every_iters=50).fit(X[:500])
    iterations = [r[0] for r in record]
    assert iterations == list(range(50, 501, 50))
    after = [kl for it, kl, _ in record if it > 300]
    assert all(b <= a + 1e-6 for a, b in zip(after, after[1:]))
    assert after[-1] < after[0]
    assert record[-1][2].shape == (500, 2)


def test_callback_returning_true_stops(digits):
    X, _ = digits
    model = TSNE(random_state=0, callbacks=lambda it, kl, emb: it >= 100, callbacks_every_iters=25).fit(X[:300])
    assert model.n_iter_ == 99


def test_interrupt_leaves_the_map_so_far(digits):
    X, _ = digits

    def interrupt(iteration, kl, embedding):
        if iteration >= 100:
            raise KeyboardInterrupt

    model = TSNE(random_state=0, callbacks=interrupt).set_params(max_iter=500)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X[:300])
    assert model.n_iter_ == 99 and model.embedding_.shape == (300, 2)
    assert np.isfinite(model.kl_divergence_)
    expected = TSNE(random_state=0, callbacks=lambda it, kl, emb: it >= 100).fit(X[:300])
    np.testing.assert_array_equal(model.embedding_, expected.embedding_)


def test_min_grad_norm_stops_as_sklearn(digits):
    from sklearn.manifold import TSNE as SklearnTSNE

    X, _ = digits
    ours = TSNE(random_state=0, min_grad_norm=1e3).fit(X[:100])
    theirs = SklearnTSNE(random_state=0, min_grad_norm=1e3).fit(X[:100])
    assert ours.n_iter_ == theirs.n_iter_ == 99


def test_n_iter_without_progress_rule(digits):
    X, _ = digits
    record = []
    model = TSNE(random_state=0, max_iter=3000, n_iter_without_progress=50, init="random", learning_rate=10.0,
                 callbacks=lambda it, kl, emb: record.append((it - 1, kl))).fit(X[:150])
    # Replay scikit-learn's rule on the errors seen at the checks of the second phase.
    best_error, best_iter, expected = np.finfo(float).max, 250, None
    for it, kl in record:
        if it < 250:
            continue
        if kl < best_error:
            best_error, best_iter = kl, it
        elif it - best_iter > 50:
            expected = it
            break
    assert expected is not None and expected < 2999
    assert model.n_iter_ == expected


def test_bit_identical_across_n_jobs(digits):
    X, _ = digits
    a = TSNE(random_state=3, n_jobs=1, max_iter=300).fit(X[:900])
    b = TSNE(random_state=3, n_jobs=2, max_iter=300).fit(X[:900])
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    assert a.kl_divergence_ == b.kl_divergence_
    c = TSNE(random_state=3, n_jobs=2, max_iter=300, callbacks=lambda *a: False, callbacks_every_iters=7).fit(X[:900])
    np.testing.assert_array_equal(a.embedding_, c.embedding_)


def test_transform_places_points_among_true_neighbours(digits):
    X, y = digits
    perm = np.random.default_rng(0).permutation(len(X))
    train, test = perm[:1500], perm[1500:]
    model = TSNE(random_state=0, n_jobs=2, max_iter=500).fit(X[train])
    placed = model.transform(X[test])
    assert placed.shape == (len(test), 2) and placed.dtype == np.float32
    in_map = KNeighborsClassifier(10).fit(model.embedding_, y[train]).score(placed, y[test])
    in_input = KNeighborsClassifier(10).fit(X[train], y[train]).score(X[test], y[test])
    assert in_map >= in_input - 0.02
    # Map neighbours of a placed point are its input-space neighbours.
    nn_input = NearestNeighbors(n_neighbors=10).fit(X[train]).kneighbors(X[test], return_distance=False)
    nn_map = NearestNeighbors(n_neighbors=10).fit(model.embedding_).kneighbors(placed, return_distance=False)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nn_input, nn_map)])
    assert overlap >= 0.4
    # Each point is placed on its own: a subset gives the same positions.
    np.testing.assert_array_equal(model.transform(X[test[:7]]), placed[:7])


def test_precomputed_dense_and_sparse_match_euclidean():
    from sklearn.metrics import pairwise_distances

    X = np.random.default_rng(0).normal(size=(400, 10))  # continuous: no tied distances
    k = int(3 * 30 + 1)
    P_euclid = TSNE()._joint_p(X, 1)
    D = pairwise_distances(X)
    P_dense = TSNE(metric="precomputed")._joint_p(D, 1)
    # As for scikit-learn's TSNE, the graph holds each point itself (distance 0) and k neighbours.
    graph = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors_graph(X, mode="distance")
    P_sparse = TSNE(metric="precomputed")._joint_p(graph, 1)
    for other in (P_dense, P_sparse):
        np.testing.assert_array_equal(other[0], P_euclid[0])
        np.testing.assert_array_equal(other[1], P_euclid[1])
        np.testing.assert_allclose(other[2], P_euclid[2], rtol=1e-4)
    emb = TSNE(metric="precomputed", init="random", random_state=0, max_iter=250).fit_transform(graph)
    assert emb.shape == (400, 2) and np.isfinite(emb).all()
    placed = TSNE(metric="precomputed", init="random", random_state=0, max_iter=250).fit(D).transform(D[:5])
    assert placed.shape == (5, 2)


def test_other_metrics_and_dimensions(digits):
    X, _ = digits
    X = X[:150]
    cosine = TSNE(metric="cosine", random_state=0, max_iter=250).fit(X)
    assert np.isfinite(cosine.embedding_).all()
    for n_components in (1, 3):
        emb = TSNE(n_components=n_components, random_state=0, max_iter=250, perplexity=10).fit_transform(X)
        assert emb.shape == (150, n_components) and np.isfinite(emb).all()


@pytest.mark.slow
def test_exact_method_reaches_sklearn_kl(digits):
    from sklearn.manifold import TSNE as SklearnTSNE

    X, _ = digits
    X = X[:150]
    ours = TSNE(method="exact", random_state=0).fit(X)
    theirs = SklearnTSNE(method="exact", random_state=0).fit(X)
    # Both reach a local minimum of the same objective; which one depends on rounding.
    assert ours.kl_divergence_ <= theirs.kl_divergence_ * 1.2


def test_optimizer_follows_sklearn_gradient_descent(digits):
    """The exact-gradient optimiser retraces scikit-learn's _gradient_descent (in float64).

    The early-exaggeration dynamics are chaotic (rounding differences of 1e-17 grow to O(1)
    within ~50 iterations), so the paths are compared over 20 iterations.
    """
    from sklearn.manifold._t_sne import _gradient_descent, _kl_divergence
    from scipy.spatial.distance import squareform

    X, _ = digits
    n = 120
    P, _, _ = _joint_p(X[:n], perplexity=10.0, k=n - 1)
    Y0 = np.random.default_rng(0).normal(scale=1e-2, size=(n, 2))
    condensed = squareform(P.toarray(), checks=False) * 12.0
    params, error, it = _gradient_descent(
        _kl_divergence, Y0.ravel().copy(), it=0, max_iter=20, n_iter_check=50, n_iter_without_progress=250,
        momentum=0.5, learning_rate=50.0, min_gain=0.01, min_grad_norm=1e-7, args=[condensed, 1, n, 2])
    Y = Y0.copy()
    update, gains = np.zeros_like(Y), np.ones_like(Y)
    state = np.array([np.finfo(float).max, 0.0])
    last, kl, _, reason = _core.tsne_optimize(Y, update, gains, state, P.indptr.astype(np.int64),
                                              P.indices.astype(np.int64), P.data, 0, 20, 20, 0.5, 50.0, 12.0,
                                              1.0, 0.5, True, 250, 1e-7, 2)
    assert (last, reason) == (it, 1) == (19, 1)
    np.testing.assert_allclose(Y.ravel(), params, rtol=1e-6, atol=1e-8 * np.abs(params).max())
    assert kl == pytest.approx(error, rel=1e-9)


def test_verbose_progress_and_heavy_tails(digits, capsys):
    X, y = digits
    X, y = X[:400], y[:400]
    model = TSNE(random_state=0, max_iter=300, verbose=1, dof=0.5).fit(X)
    assert "t-SNE" in capsys.readouterr().err
    assert np.isfinite(model.kl_divergence_)
    assert KNeighborsClassifier(5).fit(model.embedding_[:300], y[:300]).score(model.embedding_[300:], y[300:]) >= 0.9
    placed = model.transform(X[:20])
    assert KNeighborsClassifier(5).fit(model.embedding_, y).score(placed, y[:20]) >= 0.9


def test_init_options(digits):
    X, _ = digits
    X = X[:200]
    init = np.random.default_rng(0).normal(scale=1e-4, size=(200, 2))
    a = TSNE(init=init, max_iter=250, random_state=0).fit_transform(X)
    b = TSNE(init=init, max_iter=250, random_state=5).fit_transform(X)
    np.testing.assert_array_equal(a, b)  # an array init leaves nothing random
    c = TSNE(init="random", max_iter=250, random_state=np.random.default_rng(0)).fit_transform(X)
    assert np.isfinite(c).all()


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(perplexity=-1.0), ValueError, "perplexity"),
        (dict(perplexity="a"), TypeError, "perplexity"),
        (dict(angle=1.5), ValueError, "angle"),
        (dict(learning_rate="fast"), ValueError, "learning_rate"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(max_iter=100), ValueError, "max_iter"),
        (dict(early_exaggeration=0.5), ValueError, "early_exaggeration"),
        (dict(init="spectral"), ValueError, "init"),
        (dict(init=[[0, 0]]), TypeError, "init"),
        (dict(init=np.zeros((3, 2))), ValueError, "init"),
        (dict(metric="nope"), ValueError, "metric"),
        (dict(method="fft"), ValueError, "method"),
        (dict(dof=0.0), ValueError, "dof"),
        (dict(n_jobs=0), ValueError, "n_jobs"),
        (dict(callbacks_every_iters=0), ValueError, "callbacks_every_iters"),
        (dict(callbacks=[1]), TypeError, "callbacks"),
        (dict(n_components=4), ValueError, "n_components"),
        (dict(perplexity=40.0), ValueError, "perplexity"),
        (dict(metric="precomputed"), ValueError, "init"),
    ],
)
def test_bad_parameters(params, error, match):
    X = np.random.default_rng(0).random((40, 5))
    with pytest.raises(error, match=match):
        TSNE(**params).fit(X)


def test_bad_input():
    rng = np.random.default_rng(0)
    X = rng.random((40, 5))
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TSNE(perplexity=5).fit(X)
    with pytest.raises(ValueError, match="sample"):
        TSNE(perplexity=0.5).fit(rng.random((1, 5)))
    with pytest.raises(ValueError, match="square"):
        TSNE(metric="precomputed", init="random", perplexity=2).fit(rng.random((10, 5)))
    D = rng.random((10, 10))
    D[1, 2] = -1
    with pytest.raises(ValueError, match="positive"):
        TSNE(metric="precomputed", init="random", perplexity=2).fit(D)
    with pytest.raises(TypeError, match="exact"):
        TSNE(metric="precomputed", init="random", perplexity=2, method="exact").fit(sp.csr_matrix(np.abs(D)))
    model = TSNE(perplexity=5, max_iter=250, random_state=0).fit(rng.random((40, 5)))
    with pytest.raises(ValueError, match="features"):
        model.transform(rng.random((3, 4)))


# ----------------------------------------------------------------------------------- sklearn checks
# t-SNE is transductive: fit_transform returns the optimised map of the training data, while
# transform places points into that fixed map. The two legitimately differ.
_TRANSDUCTIVE = "fit_transform (the fitted map) differs from fit().transform (new points placed into it)"
_EXPECTED_FAILURES = {
    "check_transformer_general": _TRANSDUCTIVE,
    "check_transformer_data_not_an_array": _TRANSDUCTIVE,
    "check_transformer_preserve_dtypes": "the embedding is float32 whatever the input, as scikit-learn's TSNE",
}


@parametrize_with_checks([TSNE(perplexity=2, max_iter=250, random_state=0)],
                         expected_failed_checks=lambda est: _EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
