"""Restricted Boltzmann Machines with a scikit-learn interface.

``BernoulliRBM`` is a superset of :class:`sklearn.neural_network.BernoulliRBM`: the same
parameters, defaults, fitted attributes and methods, plus CD-k / PCD-k, momentum, weight decay,
a sparsity target, ``n_jobs``, ``reconstruct``, ``free_energy`` and ``sample``.
``GaussianBernoulliRBM`` has the same interface for real-valued inputs.

Every minibatch loop and Gibbs chain runs in the compiled core with the GIL released; this
module validates, allocates state and keeps it on the estimator.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _core
from .io import checkpoint_path, data_fingerprint, load_checkpoint
from ._validation import (
    check_bool,
    check_finite,
    check_training_params,
    check_float,
    check_int,
    check_memory,
    check_random_state,
    check_unit_interval,
    random_integers,
    resolve_n_jobs,
    seed_from_random_state,
    validate_samples,
)

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM"]

_STREAMS = dict(_core.STREAMS)


class _BaseRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared machinery of the Bernoulli and Gaussian RBMs (not public)."""

    _gaussian = False

    def __init__(
        self,
        n_components=256,
        *,
        learning_rate=0.1,
        batch_size=10,
        n_iter=10,
        verbose=0,
        random_state=None,
        k=1,
        persistent=True,
        momentum=0.0,
        weight_decay=0.0,
        sparsity_target=0.1,
        sparsity_cost=0.0,
        sparsity_damping=0.9,
        shuffle=True,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.k = k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.sparsity_damping = sparsity_damping
        self.shuffle = shuffle
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        check_int("n_components", self.n_components, low=1, high=2**31 - 1)
        check_float("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_training_params(self)
        check_float("sparsity_damping", self.sparsity_damping, low=0.0, high=1.0, high_open=True)
        check_bool("shuffle", self.shuffle)
        return resolve_n_jobs(self.n_jobs)

    def _validate_X(self, X, *, reset, training):
        """Validated, dense, C-contiguous float32/float64 copy-or-view of X (sparse accepted)."""
        X = validate_samples(self, X, reset=reset)
        if training:
            self._check_training_values(X)
        return X

    def _check_training_values(self, X):
        check_unit_interval("X", X, type(self).__name__)

    def _to_model_dtype(self, X):
        return np.ascontiguousarray(X, dtype=self.components_.dtype)

    # ------------------------------------------------------------------ fitting
    def _initialize(self, X, seed):
        dtype = X.dtype
        n_features = X.shape[1]
        # Weights, their velocity and the float64 draw behind them.
        check_memory(self.n_components * n_features * (2 * dtype.itemsize + 8),
                     f"An RBM with n_components={self.n_components} and {n_features} features")
        rng = np.random.default_rng(seed)
        self.components_ = rng.normal(0.0, 0.01, (self.n_components, n_features)).astype(dtype)
        self.intercept_hidden_ = np.zeros(self.n_components, dtype=dtype)
        self.intercept_visible_ = np.zeros(n_features, dtype=dtype)
        self.h_samples_ = np.zeros((self.batch_size, self.n_components), dtype=dtype)
        self._weight_velocity = np.zeros_like(self.components_)
        self._hidden_bias_velocity = np.zeros_like(self.intercept_hidden_)
        self._visible_bias_velocity = np.zeros_like(self.intercept_visible_)
        self._hidden_activity = np.full(self.n_components, self.sparsity_target, dtype=dtype)
        self.random_seed_ = int(seed)
        self.n_batches_seen_ = 0
        self.n_epochs_ = 0

    def _ensure_training_state(self):
        """Recreate optimiser state missing from models loaded from disk or built by hand."""
        dtype = self.components_.dtype
        if getattr(self, "_weight_velocity", None) is None or self._weight_velocity.shape != self.components_.shape:
            self._weight_velocity = np.zeros_like(self.components_)
            self._hidden_bias_velocity = np.zeros_like(self.intercept_hidden_)
            self._visible_bias_velocity = np.zeros_like(self.intercept_visible_)
            self._hidden_activity = np.full(self.n_components, self.sparsity_target, dtype=dtype)
        if self.h_samples_.shape[1] != self.n_components or self.h_samples_.dtype != dtype:
            self.h_samples_ = np.zeros((self.batch_size, self.n_components), dtype=dtype)

    def _fit_epochs(self, X, n_epochs, n_threads, checkpoint=None, checkpoint_every=1):
        progress = np.zeros(1, dtype=np.int64)
        n_batches = -(-X.shape[0] // self.batch_size)
        for epoch in range(n_epochs):
            begin = time.perf_counter()
            saved = self._parameters_copy()
            if self.shuffle:
                order = np.random.default_rng([self.random_seed_, self.n_epochs_]).permutation(X.shape[0])
            else:
                order = np.arange(X.shape[0])
            try:
                _core.train_epoch(
                    self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian,
                    self._weight_velocity, self._hidden_bias_velocity, self._visible_bias_velocity,
                    self.h_samples_, self._hidden_activity, X, order.astype(np.int64), self.batch_size,
                    float(self.learning_rate), float(self.momentum), float(self.weight_decay),
                    float(self.sparsity_target), float(self.sparsity_cost), float(self.sparsity_damping),
                    int(self.k), bool(self.persistent), self.random_seed_, self.n_batches_seen_,
                    n_threads, progress,
                )
            finally:
                # Even when interrupted, the parameters hold every completed minibatch.
                self.n_batches_seen_ += int(progress[0])
            if not (np.isfinite(self.components_).all() and np.isfinite(self.intercept_hidden_).all()
                    and np.isfinite(self.intercept_visible_).all()):
                self._restore_parameters(saved)
                raise ValueError(
                    f"training diverged in epoch {self.n_epochs_ + 1}: the parameters became infinite or NaN "
                    f"with learning_rate={self.learning_rate!r}, momentum={self.momentum!r}, "
                    f"weight_decay={self.weight_decay!r}, sparsity_cost={self.sparsity_cost!r}; lower them. "
                    "The model keeps its parameters from before that epoch."
                )
            self.n_epochs_ += 1
            if checkpoint is not None and (self.n_epochs_ % checkpoint_every == 0 or epoch == n_epochs - 1):
                from .io import save

                save(self, checkpoint)
            if self.verbose:
                elapsed = time.perf_counter() - begin
                score = self.score_samples(X[: min(len(X), 1000)]).mean()
                print(
                    f"[{type(self).__name__}] Iteration {epoch + 1}, pseudo-likelihood = {score:.2f}, "
                    f"time = {elapsed:.2f}s ({n_batches} minibatches)"
                )

    _TRAINING_STATE = ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_", "_weight_velocity",
                       "_hidden_bias_velocity", "_visible_bias_velocity", "_hidden_activity", "n_batches_seen_")

    def _parameters_copy(self):
        return {name: np.copy(getattr(self, name)) for name in self._TRAINING_STATE}

    def _restore_parameters(self, saved):
        for name, value in saved.items():
            current = getattr(self, name)
            if isinstance(current, np.ndarray):
                current[...] = value  # in place: callers may hold views
            else:
                setattr(self, name, type(current)(value))

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every=1):
        """Fit the model to X with n_iter epochs of CD-k (persistent=False) or PCD-k.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (float32 is kept as float32; anything else becomes float64).
        y : Ignored
        checkpoint : str or os.PathLike, optional
            A ``.npz`` file that receives the whole training state every ``checkpoint_every``
            epochs and at the end, written atomically (temporary file, then rename). When the
            file already exists, training resumes from it: the result is bit-identical to an
            uninterrupted run with the same parameters, seed and data. A checkpoint written by
            a model with other parameters or for other data raises ``ValueError``.
        checkpoint_every : int, default=1
            Epochs between checkpoints.

        Returns
        -------
        self : the fitted estimator.

        Notes
        -----
        Ctrl-C stops training within about 50 ms; the estimator then holds every minibatch
        completed so far and stays usable.
        """
        n_threads = self._check_params()
        checkpoint, checkpoint_every = checkpoint_path(checkpoint, checkpoint_every)
        X = self._validate_X(X, reset=True, training=True)
        X = self._prepare_training_data(X, reset=True)
        self.random_state_ = check_random_state(self.random_state)
        seed = seed_from_random_state(self.random_state_)
        fingerprint = data_fingerprint(X) if checkpoint is not None else None
        if not (checkpoint is not None and self._resume(checkpoint, fingerprint)):
            self._initialize(X, seed)
            self._checkpoint_fingerprint = fingerprint
        self._fit_epochs(X, max(0, self.n_iter - self.n_epochs_), n_threads, checkpoint, checkpoint_every)
        return self

    # Parameters that do not change the training state up to a given epoch.
    _RESUMABLE_PARAMS = ("verbose", "n_jobs", "n_iter")

    def _resume(self, path, fingerprint):
        """Load the training state of checkpoint ``path`` into self; False when there is none."""
        saved = load_checkpoint(self, path, fingerprint, self._RESUMABLE_PARAMS)
        if saved is None:
            return False
        mine = self.get_params(deep=False)
        for name, value in vars(saved).items():
            if name not in mine:
                setattr(self, name, value)
        return True

    def partial_fit(self, X, y=None):
        """Fit the model to one chunk of data: one epoch of minibatches of ``batch_size``.

        With ``len(X) <= batch_size`` this is one minibatch update, as in scikit-learn.
        """
        n_threads = self._check_params()
        first_call = not hasattr(self, "components_")
        X = self._validate_X(X, reset=first_call, training=True)
        if first_call:
            X = self._prepare_training_data(X, reset=True)
            self.random_state_ = check_random_state(self.random_state)
            self._initialize(X, seed_from_random_state(self.random_state_))
        else:
            X = np.ascontiguousarray(X, dtype=self.components_.dtype)
            X = self._prepare_training_data(X, reset=False)
            self._ensure_training_state()
        self._fit_epochs(X, 1, n_threads)
        return self

    def _prepare_training_data(self, X, reset):
        return X

    # ------------------------------------------------------------------ inference
    def _kernel_input(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, training=False)
        return self._to_model_dtype(X)

    def _model_args(self):
        return (self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian)

    def _n_threads(self):
        return resolve_n_jobs(self.n_jobs)

    def _hidden_means(self, V):
        means = np.empty((V.shape[0], self.n_components), dtype=V.dtype)
        _core.hidden_pass(*self._model_args(), V, means, n_threads=self._n_threads())
        return means

    def _visible_means(self, H):
        H = np.ascontiguousarray(H, dtype=self.components_.dtype)
        means = np.empty((H.shape[0], self.components_.shape[1]), dtype=H.dtype)
        _core.visible_pass(*self._model_args(), H, means, n_threads=self._n_threads())
        return means

    def _draw_seed(self):
        if not hasattr(self, "random_state_"):
            self.random_state_ = check_random_state(self.random_state)
        return seed_from_random_state(self.random_state_)

    def transform(self, X):
        """Compute the hidden layer activation probabilities, P(h=1|v=X).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        h : ndarray of shape (n_samples, n_components), the dtype of the model.
        """
        return self._hidden_means(self._kernel_input(X))

    def inverse_transform(self, H):
        """Visible means given hidden activations H (n_samples, n_components), in the input's scale."""
        check_is_fitted(self)
        H = self._check_hidden(H)
        return self._visible_output(self._visible_means(H))

    def _check_hidden(self, H):
        H = np.asarray(H)
        if H.ndim != 2 or H.shape[1] != self.n_components:
            raise ValueError(f"H must have shape (n_samples, {self.n_components}), got {H.shape}")
        if H.dtype.kind not in "fiub":
            raise TypeError(f"H must be numeric, got dtype {H.dtype}")
        H = np.ascontiguousarray(H, dtype=self.components_.dtype)
        check_finite("H", H)
        return H

    def _visible_output(self, V):
        return V

    def reconstruct(self, X):
        """Mean-field reconstruction: up to P(h|v), back down to E[v|h], in the input's scale.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
        """
        V = self._kernel_input(X)
        return self._visible_output(self._visible_means(self._hidden_means(V)))

    def free_energy(self, X):
        """Free energy F(v) of each row (lower is more probable), accumulated in double.

        Returns
        -------
        F : ndarray of shape (n_samples,), the dtype of the model.
        """
        V = self._kernel_input(X)
        return self._free_energy(V)

    def _free_energy(self, V):
        out = np.empty(V.shape[0], dtype=V.dtype)
        _core.free_energy(*self._model_args(), V, out, n_threads=self._n_threads())
        return out

    def gibbs(self, v):
        """Perform one Gibbs sampling step v → h → v'.

        Parameters
        ----------
        v : ndarray of shape (n_samples, n_features)

        Returns
        -------
        v_new : ndarray of shape (n_samples, n_features), a sample of the visible layer.
        """
        V = np.array(self._kernel_input(v), copy=True)
        seed = self._draw_seed()
        _core.gibbs_chain(*self._model_args(), V, 1, seed, _STREAMS["user_visible"], 0,
                          n_threads=self._n_threads())
        return self._visible_output(V)

    def sample(self, n_samples, n_steps=1000, random_state=None, return_means=False):
        """Draw ``n_samples`` fantasies by running Gibbs chains for ``n_steps`` steps.

        Chains start from visible noise drawn around the visible biases.

        Parameters
        ----------
        n_samples : int
        n_steps : int, default=1000
        random_state : None, int, RandomState or Generator
            Seed of the chains (None: drawn from the estimator's random state).
        return_means : bool, default=False
            Return E[v | h] of the last step instead of the sampled visible units.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        n_samples = check_int("n_samples", n_samples, low=1)
        n_steps = check_int("n_steps", n_steps, low=0)
        check_memory(3 * n_samples * self.components_.shape[1] * self.components_.dtype.itemsize,
                     f"sample(n_samples={n_samples})")
        seed = self._draw_seed() if random_state is None else seed_from_random_state(random_state)
        V = self._initial_visible(n_samples, seed)
        means = np.empty_like(V)
        progress = np.zeros(1, dtype=np.int64)
        _core.gibbs_chain(*self._model_args(), V, n_steps, seed, _STREAMS["user_visible"], 1,
                          means, n_threads=self._n_threads(), progress=progress)
        return self._visible_output(means if (return_means and n_steps > 0) else V)

    def _initial_visible(self, n_samples, seed):
        dtype = self.components_.dtype
        uniform = np.empty((n_samples, self.components_.shape[1]), dtype=dtype)
        _core.random_uniform(seed, _STREAMS["user_uniform"], 0, uniform)
        probabilities = 1.0 / (1.0 + np.exp(-self.intercept_visible_.astype(np.float64)))
        return (uniform < probabilities).astype(dtype)

    def score_samples(self, X):
        """Pseudo-likelihood of X (as scikit-learn): n_features · log σ(F(ṽ) − F(v)), where ṽ
        flips one random feature of each row.

        Returns
        -------
        pseudo_likelihood : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        V = self._kernel_input(X)
        rng = check_random_state(self.random_state)
        flipped_index = (np.arange(V.shape[0]), random_integers(rng, V.shape[1], V.shape[0]))
        V_flipped = V.copy()
        V_flipped[flipped_index] = 1 - V_flipped[flipped_index]
        fe = self._free_energy(V)
        fe_flipped = self._free_energy(V_flipped)
        with np.errstate(under="ignore"):  # exp(-huge) -> 0 is the right answer here
            return -V.shape[1] * np.logaddexp(0, -(fe_flipped - fe))

    def log_partition(self, method="auto", n_runs=100, betas=None, base_rate=None, random_state=None):
        """log Z, exactly (enumerating the smaller layer) or by AIS; see
        :func:`leafrbm.likelihood.log_partition` for the parameters.

        Returns
        -------
        LogPartition
            ``.log_z`` with ``.lower`` / ``.upper`` (±3 standard errors for AIS);
            ``float(result)`` is the estimate.
        """
        from .likelihood import log_partition

        return log_partition(self, method=method, n_runs=n_runs, betas=betas, base_rate=base_rate,
                             random_state=random_state)

    def log_likelihood(self, X, log_partition=None):
        """log p(x) = -F(x) - log Z for each row; see :func:`leafrbm.likelihood.log_likelihood`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        log_partition : float, LogPartition or None
            log Z (None: computed with ``method="auto"`` and X as the AIS base rate).

        Returns
        -------
        log_likelihood : ndarray of float64, shape (n_samples,)
        """
        from .likelihood import log_likelihood

        return log_likelihood(self, X, log_partition)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class BernoulliRBM(_BaseRBM):
    """Bernoulli Restricted Boltzmann Machine, a fast superset of scikit-learn's.

    Binary visible and hidden units, trained by PCD-k (default, as scikit-learn) or CD-k.
    Inputs must lie in [0, 1] (binary pixels or probabilities).

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    learning_rate : float, default=0.1
        Learning rate of the weight updates.
    batch_size : int, default=10
        Examples per minibatch (and persistent chains for PCD).
    n_iter : int, default=10
        Epochs over the training data.
    verbose : int, default=0
        Print the pseudo-likelihood and time of every epoch.
    random_state : None, int, RandomState or Generator
        One 64-bit seed is drawn from it; every random number derives from that seed, so the
        result is bit-identical at any ``n_jobs``.
    k : int, default=1
        Gibbs steps per update (CD-k / PCD-k).
    persistent : bool, default=True
        PCD (persistent chains, as scikit-learn) or CD.
    momentum : float in [0, 1), default=0.0
    weight_decay : float, default=0.0
        L2 penalty on the weights (not the biases), scaled by the learning rate.
    sparsity_target : float in (0, 1), default=0.1
    sparsity_cost : float, default=0.0
        Strength of the pull of the hidden units' running mean activity towards
        ``sparsity_target`` (applied to the hidden biases; 0 disables it).
    sparsity_damping : float in [0, 1), default=0.9
        Decay of the running mean activity.
    shuffle : bool, default=True
        Visit the rows in a new random order each epoch (scikit-learn does not shuffle).
    n_jobs : int or None, default=None
        Threads: None or -1 for all cores, as in scikit-learn.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    intercept_hidden_ : ndarray of shape (n_components,)
    intercept_visible_ : ndarray of shape (n_features,)
    h_samples_ : ndarray of shape (batch_size, n_components)
        Hidden states of the persistent chains.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has string feature names.
    n_batches_seen_ : int
        Minibatches trained so far (also the RNG's step counter).

    Examples
    --------
    >>> import numpy as np
    >>> from leafrbm import BernoulliRBM
    >>> X = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float32)
    >>> model = BernoulliRBM(n_components=2, random_state=0).fit(X)
    >>> model.transform(X).shape
    (4, 2)
    """


class GaussianBernoulliRBM(_BaseRBM):
    """RBM with Gaussian visible units (unit variance) and binary hidden units.

    For real-valued inputs such as grey images. The input is standardised internally (per
    feature mean ``mean_`` and scale ``scale_``); ``reconstruct``, ``inverse_transform``,
    ``gibbs`` and ``sample`` return values in the input's scale. Same parameters as
    :class:`BernoulliRBM`, but the default learning rate is 0.01 (Gaussian units need a smaller
    one, Hinton's guide §13.2) and the negative phase uses noise-free visible means.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    scale_ : ndarray of shape (n_features,)
        Per-feature standard deviation of the training data (1 where it is 0).
    """

    _gaussian = True

    def __init__(self, n_components=256, *, learning_rate=0.01, batch_size=10, n_iter=10, verbose=0,
                 random_state=None, k=1, persistent=True, momentum=0.0, weight_decay=0.0,
                 sparsity_target=0.1, sparsity_cost=0.0, sparsity_damping=0.9, shuffle=True, n_jobs=None):
        super().__init__(
            n_components, learning_rate=learning_rate, batch_size=batch_size, n_iter=n_iter,
            verbose=verbose, random_state=random_state, k=k, persistent=persistent, momentum=momentum,
            weight_decay=weight_decay, sparsity_target=sparsity_target, sparsity_cost=sparsity_cost,
            sparsity_damping=sparsity_damping, shuffle=shuffle, n_jobs=n_jobs,
        )

    def _check_training_values(self, X):
        check_finite("X", X)

    def _prepare_training_data(self, X, reset):
        if reset:
            self.mean_ = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
            scale = X.std(axis=0, dtype=np.float64)
            scale[scale < 1e-8] = 1.0
            self.scale_ = scale.astype(X.dtype)
        return self._standardize(X)

    def _standardize(self, X):
        return np.ascontiguousarray((X - self.mean_) / self.scale_, dtype=X.dtype)

    def _to_model_dtype(self, X):
        X = np.ascontiguousarray(X, dtype=self.components_.dtype)
        return self._standardize(X)

    def _kernel_input(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, training=False)
        return self._to_model_dtype(X)

    def _visible_output(self, V):
        return (V * self.scale_ + self.mean_).astype(V.dtype, copy=False)

    def _initial_visible(self, n_samples, seed):
        dtype = self.components_.dtype
        noise = np.empty((n_samples, self.components_.shape[1]), dtype=dtype)
        _core.random_normal(seed, _STREAMS["user_normal"], 0, noise)
        return noise + self.intercept_visible_

    def score_samples(self, X):
        """Negative free energy of X in the standardised space (an unnormalised log-density;
        the Bernoulli pseudo-likelihood has no meaning for real-valued units)."""
        return -self.free_energy(X)
