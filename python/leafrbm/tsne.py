"""Barnes-Hut t-SNE with scikit-learn's interface, plus placing new points into a fitted map.

``TSNE`` takes :class:`sklearn.manifold.TSNE`'s parameters, defaults and fitted attributes,
and runs the same algorithm (exact kNN affinities, early exaggeration, gains + momentum,
the same stopping rules) in the compiled core. Beyond scikit-learn: ``transform`` of new
points, ``callbacks``, heavy tails (``dof``) and a progress bar (``verbose``).

Every loop over samples (kNN, perplexity search, symmetrisation, gradient, optimiser) runs in
C++ with the GIL released; this module validates, prepares affinities for metrics other than
Euclidean through scikit-learn, and keeps the state.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from . import _core
from ._validation import (
    check_float,
    check_int,
    check_random_state,
    resolve_n_jobs,
)

__all__ = ["TSNE"]

_EXPLORATION_MAX_ITER = 250
_N_ITER_CHECK = 50


def _valid_metrics():
    from sklearn.metrics.pairwise import _VALID_METRICS

    return set(_VALID_METRICS) | {"precomputed"}


class TSNE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """T-distributed Stochastic Neighbor Embedding (Barnes-Hut, in C++).

    A drop-in for :class:`sklearn.manifold.TSNE`: the same parameters, defaults, algorithm and
    fitted attributes. The Barnes-Hut gradient needs ``n_components=2``; other dimensions use the
    exact O(N²) gradient (scikit-learn's Barnes-Hut also allows 1 and 3).

    Parameters
    ----------
    n_components : int, default=2
        Dimension of the embedded space.
    perplexity : float, default=30.0
        Effective number of neighbours; must be less than the number of samples.
    early_exaggeration : float, default=12.0
        Factor on P during the first 250 iterations.
    learning_rate : float or "auto", default="auto"
        "auto" is max(N / early_exaggeration / 4, 50), as in scikit-learn.
    max_iter : int, default=1000
        Maximum number of iterations (at least 250).
    n_iter_without_progress : int, default=300
        Stop after this many iterations without a lower error (checked every 50).
    min_grad_norm : float, default=1e-7
        Stop when the norm of the (gain-scaled) gradient falls below this (checked every 50).
    metric : str or callable, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or "precomputed" (X is then a
        square distance matrix, dense, or a sparse kNN distance graph for Barnes-Hut).
    metric_params : dict, default=None
        Keyword arguments of the metric.
    init : {"pca", "random"} or ndarray of shape (n_samples, n_components), default="pca"
        Initial embedding. "pca" is scaled so that the first column has standard deviation 1e-4.
    verbose : int, default=0
        Show a progress bar (tqdm) when > 0.
    random_state : int, RandomState, Generator or None, default=None
        Seed of the initialisation.
    method : {"barnes_hut", "exact"}, default="barnes_hut"
        Gradient computation: Barnes-Hut O(N log N) with kNN affinities, or exact O(N²).
    angle : float, default=0.5
        Barnes-Hut trade-off between speed and accuracy, in [0, 1].
    n_jobs : int, default=None
        Threads for the kNN search, the affinities and the gradient (None or -1: all cores).
        The result is the same for every value.
    dof : float, default=1.0
        Degrees of freedom of the Student-t kernel of the embedding; < 1 gives heavier tails.
    callbacks : callable or list of callables, default=None
        Each is called as ``callback(iteration, kl_divergence, embedding)`` every
        ``callbacks_every_iters`` iterations; returning True stops the optimisation.
    callbacks_every_iters : int, default=50
        Interval of the callbacks (and of the progress updates).

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), float32
        The embedding of the training data.
    kl_divergence_ : float
        KL divergence after optimisation (as scikit-learn reports it).
    n_iter_ : int
        Index of the last iteration run (scikit-learn's convention: 999 for 1000 iterations).
    learning_rate_ : float
        The effective learning rate.
    n_features_in_ : int
        Number of features seen in fit.

    Notes
    -----
    ``transform(X)`` places new points into the fitted map: affinities to their nearest training
    points (same perplexity), then each new point alone moves, attracted by its neighbours and
    repelled by the fixed map (Barnes-Hut on its quadtree).
    """

    def __init__(
        self,
        n_components=2,
        *,
        perplexity=30.0,
        early_exaggeration=12.0,
        learning_rate="auto",
        max_iter=1000,
        n_iter_without_progress=300,
        min_grad_norm=1e-7,
        metric="euclidean",
        metric_params=None,
        init="pca",
        verbose=0,
        random_state=None,
        method="barnes_hut",
        angle=0.5,
        n_jobs=None,
        dof=1.0,
        callbacks=None,
        callbacks_every_iters=50,
    ):
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.n_iter_without_progress = n_iter_without_progress
        self.min_grad_norm = min_grad_norm
        self.metric = metric
        self.metric_params = metric_params
        self.init = init
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.angle = angle
        self.n_jobs = n_jobs
        self.dof = dof
        self.callbacks = callbacks
        self.callbacks_every_iters = callbacks_every_iters

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        check_int("n_components", self.n_components, low=1, high=8)
        check_float("perplexity", self.perplexity, low=0.0, low_open=True)
        check_float("early_exaggeration", self.early_exaggeration, low=1.0)
        if isinstance(self.learning_rate, str):
            if self.learning_rate != "auto":
                raise ValueError(f"learning_rate must be 'auto' or a positive float, got {self.learning_rate!r}")
        else:
            check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_int("max_iter", self.max_iter, low=_EXPLORATION_MAX_ITER)
        check_int("n_iter_without_progress", self.n_iter_without_progress, low=-1)
        check_float("min_grad_norm", self.min_grad_norm, low=0.0)
        if not (callable(self.metric) or (isinstance(self.metric, str) and self.metric in _valid_metrics())):
            raise ValueError(f"metric must be a metric name of sklearn.metrics.pairwise_distances, "
                             f"'precomputed' or a callable, got {self.metric!r}")
        if self.metric_params is not None and not isinstance(self.metric_params, dict):
            raise TypeError(f"metric_params must be a dict or None, got {self.metric_params!r}")
        if isinstance(self.init, str):
            if self.init not in ("pca", "random"):
                raise ValueError(f"init must be 'pca', 'random' or an ndarray, got {self.init!r}")
        elif not isinstance(self.init, np.ndarray):
            raise TypeError(f"init must be 'pca', 'random' or an ndarray, got {type(self.init).__name__}")
        check_int("verbose", self.verbose, low=0)
        if self.method not in ("barnes_hut", "exact"):
            raise ValueError(f"method must be 'barnes_hut' or 'exact', got {self.method!r}")
        check_float("angle", self.angle, low=0.0, high=1.0)
        check_float("dof", self.dof, low=0.0, low_open=True)
        check_int("callbacks_every_iters", self.callbacks_every_iters, low=1)
        callbacks = self.callbacks
        if callbacks is None:
            callbacks = []
        elif callable(callbacks):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
            for callback in callbacks:
                if not callable(callback):
                    raise TypeError(f"callbacks must be callables, got {callback!r}")
        if self.method == "barnes_hut" and self.n_components > 3:
            raise ValueError(
                f"n_components={self.n_components}: 'n_components' should be inferior to 4 for the "
                "barnes_hut algorithm as it relies on quad-tree or oct-tree; use method='exact'"
            )
        return resolve_n_jobs(self.n_jobs), callbacks

    def _validate_X(self, X, *, reset):
        accept_sparse = ["csr"] if self.method == "barnes_hut" else ["csr", "csc", "coo"]
        X = validate_data(self, X, reset=reset, accept_sparse=accept_sparse, ensure_min_samples=2 if reset else 1,
                          dtype=[np.float32, np.float64])
        return X

    # ------------------------------------------------------------------ affinities
    @staticmethod
    def _n_neighbors(perplexity, n_candidates):
        return min(n_candidates, int(3.0 * perplexity + 1))

    def _neighbors(self, X, n_threads, query=None):
        """(indices (m, k) int64, squared distances (m, k) float32) of kNN in the training data."""
        reference = X
        n_candidates = reference.shape[0] - (1 if query is None else 0)
        k = self._n_neighbors(self.perplexity, n_candidates)
        if self.metric == "euclidean" and not sp.issparse(reference) and (query is None or not sp.issparse(query)):
            reference = np.ascontiguousarray(reference)
            m = reference.shape[0] if query is None else query.shape[0]
            indices = np.empty((m, k), dtype=np.int64)
            sqdist = np.empty((m, k), dtype=np.float32)
            q = None if query is None else np.ascontiguousarray(query, dtype=reference.dtype)
            _core.tsne_knn(reference, q, k, indices, sqdist, n_threads)
            return indices, sqdist
        from sklearn.neighbors import NearestNeighbors

        knn = NearestNeighbors(n_neighbors=k, metric=self.metric, metric_params=self.metric_params,
                               n_jobs=self.n_jobs)
        knn.fit(reference)
        distances, indices = knn.kneighbors(query)
        return np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(distances ** 2, dtype=np.float32)

    def _conditional_p(self, sqdist, n_threads):
        conditional = np.empty(sqdist.shape, dtype=np.float64)
        _core.tsne_binary_search(np.ascontiguousarray(sqdist, dtype=np.float32), float(self.perplexity),
                                 conditional, n_threads)
        return conditional

    def _joint_p(self, X, n_threads):
        """Symmetric joint P as a CSR matrix (indptr, indices, data)."""
        n = X.shape[0]
        if self.method == "exact":
            if self.metric == "precomputed":
                distances = X.toarray() if sp.issparse(X) else np.array(X, dtype=np.float64)
            elif self.metric == "euclidean":
                from sklearn.metrics import pairwise_distances

                distances = pairwise_distances(X, metric="euclidean", squared=True)
            else:
                from sklearn.metrics import pairwise_distances

                distances = pairwise_distances(X, metric=self.metric, n_jobs=self.n_jobs,
                                               **(self.metric_params or {}))
            if np.any(distances < 0):
                raise ValueError("All distances should be positive, the metric given is not correct")
            if self.metric != "euclidean":
                distances = distances ** 2
            off_diagonal = ~np.eye(n, dtype=bool)
            indices = np.broadcast_to(np.arange(n), (n, n))[off_diagonal].reshape(n, n - 1).astype(np.int64)
            sqdist = distances[off_diagonal].reshape(n, n - 1).astype(np.float32)
        else:
            indices, sqdist = self._neighbors(X, n_threads)
        conditional = self._conditional_p(sqdist, n_threads)
        return _core.tsne_symmetrize(np.ascontiguousarray(indices), conditional)

    # ------------------------------------------------------------------ initialisation
    def _initial_embedding(self, X, random_state):
        n = X.shape[0]
        if isinstance(self.init, np.ndarray):
            init = np.asarray(self.init)
            if init.shape != (n, self.n_components):
                raise ValueError(f"init: expected an array of shape {(n, self.n_components)}, got {init.shape}")
            if not np.all(np.isfinite(init)):
                raise ValueError("init contains NaN or infinity")
            return np.array(init, dtype=np.float64, order="C")
        if self.init == "pca":
            from sklearn.decomposition import PCA

            pca_state = random_state
            if isinstance(random_state, np.random.Generator):
                pca_state = int(random_state.integers(0, 2**31 - 1))
            pca = PCA(n_components=self.n_components, random_state=pca_state)
            pca.set_output(transform="default")
            embedding = pca.fit_transform(X).astype(np.float32, copy=False)
            embedding = embedding / np.std(embedding[:, 0]) * 1e-4
            return np.array(embedding, dtype=np.float64, order="C")
        noise = random_state.standard_normal(size=(n, self.n_components))
        return np.array(1e-4 * noise.astype(np.float32), dtype=np.float64, order="C")

    # ------------------------------------------------------------------ fitting
    def _fit(self, X):
        n_threads, callbacks = self._check_params()
        X = self._validate_X(X, reset=True)
        n = X.shape[0]
        if self.perplexity >= n:
            raise ValueError(f"perplexity ({self.perplexity}) must be less than n_samples ({n})")
        if self.metric == "precomputed":
            if isinstance(self.init, str) and self.init == "pca":
                raise ValueError('The parameter init="pca" cannot be used with metric="precomputed".')
            if X.shape[0] != X.shape[1]:
                raise ValueError(f"X should be a square distance matrix, got shape {X.shape}")
            check_non_negative(X, "TSNE.fit(). With metric='precomputed', X should contain positive distances.")
            if self.method == "exact" and sp.issparse(X):
                raise TypeError('TSNE with method="exact" does not accept sparse precomputed distance matrix. '
                                'Use method="barnes_hut" or provide the dense distance matrix.')
        if self.learning_rate == "auto":
            self.learning_rate_ = float(np.maximum(n / self.early_exaggeration / 4, 50))
        else:
            self.learning_rate_ = float(self.learning_rate)
        random_state = check_random_state(self.random_state)
        indptr, indices, data = self._joint_p(X, n_threads)
        embedding = self._initial_embedding(X, random_state)
        exact = self.method == "exact" or self.n_components != 2
        self._fit_X = None if self.metric == "precomputed" else X
        self._n_train = n
        progress = {"error": np.nan, "last": -1}
        try:
            self._optimize(embedding, (indptr, indices, data), exact, n_threads, callbacks, progress)
        finally:
            # Also on Ctrl-C: the estimator holds the map as far as it got.
            self.embedding_ = embedding.astype(np.float32)
            self.kl_divergence_ = float(progress["error"])
            self.n_iter_ = int(progress["last"])
        return self.embedding_

    def _optimize(self, embedding, P, exact, n_threads, callbacks, progress_state):
        """scikit-learn's two-phase schedule, run in chunks between which callbacks run.

        Updates ``embedding`` in place and progress_state["error"] / ["last"] after every chunk.
        """
        indptr, indices, data = P
        every = int(self.callbacks_every_iters) if callbacks else _N_ITER_CHECK
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=int(self.max_iter), desc="t-SNE", unit="it")
        phases = [
            (0, _EXPLORATION_MAX_ITER, 0.5, float(self.early_exaggeration), _EXPLORATION_MAX_ITER),
            (None, int(self.max_iter), 0.8, 1.0, int(self.n_iter_without_progress)),
        ]
        error = np.nan
        last = -1
        stopped_by_callback = False
        try:
            for first, max_iter, momentum, exaggeration, without_progress in phases:
                if stopped_by_callback:
                    break
                it = first if first is not None else last + 1
                if it >= max_iter:
                    continue
                update = np.zeros_like(embedding)
                gains = np.ones_like(embedding)
                state = np.array([np.finfo(float).max, it], dtype=np.float64)
                while it < max_iter:
                    stop = min(max_iter, (it // every + 1) * every)
                    last_iter, chunk_error, _, reason = _core.tsne_optimize(
                        embedding, update, gains, state, indptr, indices, data, it, stop, max_iter, momentum,
                        self.learning_rate_, exaggeration, float(self.dof), float(self.angle), exact,
                        without_progress, float(self.min_grad_norm), n_threads)
                    if progress is not None:
                        progress.update(last_iter + 1 - it)
                        progress.set_postfix(kl=f"{chunk_error:.4f}")
                    it = last_iter + 1
                    last = last_iter
                    error = chunk_error
                    progress_state["error"], progress_state["last"] = error, last
                    if callbacks:
                        snapshot = embedding.astype(np.float32)
                        if any(bool(cb(it, float(error), snapshot)) for cb in callbacks):
                            stopped_by_callback = True
                            break
                    if reason != 0:
                        break
        finally:
            if progress is not None:
                progress.close()

    def fit_transform(self, X, y=None):
        """Fit X into an embedded space and return that embedding.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_samples)
            Training data, or a square distance matrix (dense, or a sparse kNN distance graph with
            method="barnes_hut") when metric="precomputed".
        y : Ignored

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components), float32
            The embedding of the training data.
        """
        return self._fit(X)

    def fit(self, X, y=None):
        """Fit X into an embedded space (see :meth:`fit_transform`).

        Returns
        -------
        self : the fitted estimator.
        """
        self._fit(X)
        return self

    def transform(self, X, *, max_iter=250, learning_rate=1.0):
        """Place new points into the fitted map; the map itself does not move.

        Each new point gets affinities to its nearest training points (the fit's perplexity),
        starts at the affinity-weighted mean of those points' positions, and moves alone to
        minimise its own KL divergence to the fixed map (attraction to its neighbours, repulsion
        from the whole map by Barnes-Hut). A point's position does not depend on the other new
        points.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_new, n_features) or (n_new, n_train)
            New samples; with metric="precomputed", their distances to the training samples.
        max_iter : int, default=250
            Iterations of the optimiser for the new points. With ``n_components != 2`` the
        repulsion is exact, O(n_new · n_train) per iteration.
        learning_rate : float, default=1.0
            Learning rate of the optimiser for the new points.

        Returns
        -------
        X_new : ndarray of shape (n_new, n_components), float32
        """
        check_is_fitted(self, "embedding_")
        n_threads, _ = self._check_params()
        max_iter = check_int("max_iter", max_iter, low=0)
        learning_rate = check_float("learning_rate", learning_rate, low=0.0, low_open=True)
        if self.metric == "precomputed":
            X = validate_data(self, X, reset=False, accept_sparse=["csr"], dtype=[np.float32, np.float64],
                              ensure_min_samples=1)
            if X.shape[1] != self._n_train:
                raise ValueError(f"X: with metric='precomputed', transform needs distances to the {self._n_train} "
                                 f"training samples, got shape {X.shape}")
            check_non_negative(X, "TSNE.transform(). With metric='precomputed', X should contain positive distances.")
            indices, sqdist = self._precomputed_neighbors(X)
        else:
            X = self._validate_X(X, reset=False)
            indices, sqdist = self._neighbors(self._fit_X, n_threads, query=X)
        m, k = indices.shape
        conditional = self._conditional_p(sqdist, n_threads)
        reference = np.ascontiguousarray(self.embedding_, dtype=np.float64)
        embedding = np.einsum("mk,mkc->mc", conditional, reference[indices])
        embedding = np.ascontiguousarray(embedding)
        indptr = np.arange(0, m * k + 1, k, dtype=np.int64)
        update = np.zeros_like(embedding)
        gains = np.ones_like(embedding)
        _core.tsne_transform(embedding, reference, indptr, np.ascontiguousarray(indices.ravel()),
                             np.ascontiguousarray(conditional.ravel()), float(self.dof), float(self.angle),
                             learning_rate, 0.8, max_iter, update, gains, n_threads)
        return embedding.astype(np.float32)

    def _precomputed_neighbors(self, distances):
        k = self._n_neighbors(self.perplexity, self._n_train)
        distances = distances.toarray() if sp.issparse(distances) else np.asarray(distances)
        indices = np.argpartition(distances, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(distances, indices, axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        indices = np.take_along_axis(indices, order, axis=1).astype(np.int64)
        d = np.take_along_axis(d, order, axis=1)
        return np.ascontiguousarray(indices), np.ascontiguousarray(d.astype(np.float32) ** 2)

    @property
    def _n_features_out(self):
        return self.embedding_.shape[1]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.input_tags.sparse = True
        return tags
