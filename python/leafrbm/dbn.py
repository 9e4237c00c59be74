"""Deep Belief Networks: a stack of RBMs trained greedily, layer by layer.

Layer 1 is a :class:`~leafrbm.BernoulliRBM` (or a :class:`~leafrbm.GaussianBernoulliRBM` with
``visible="gaussian"``) trained on the data; layer ``l + 1`` is a ``BernoulliRBM`` trained on
layer ``l``'s hidden probabilities P(h | v). Every minibatch and every chain runs in the compiled
core; this module only moves arrays between layers.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._validation import (
    check_choice,
    check_float,
    check_int,
    check_random_state,
    check_training_params,
    random_integers,
    resolve_n_jobs,
    seed_from_random_state,
    validate_samples,
)
from .io import checkpoint_path, data_fingerprint, load_checkpoint, save
from .rbm import BernoulliRBM, GaussianBernoulliRBM

__all__ = ["DBN"]


class DBN(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Deep Belief Network: RBMs stacked and trained greedily, layer by layer.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default=(500, 250, 100)
        Hidden units of each layer, bottom to top.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Type of the visible units of the first layer: ``"bernoulli"`` for data in [0, 1]
        (binary pixels, probabilities), ``"gaussian"`` for real values (standardised internally
        by the first layer, a :class:`~leafrbm.GaussianBernoulliRBM`).
    learning_rate : float or sequence of float, default=0.1
        Learning rate of every layer, or one per layer.
    batch_size : int, default=10
    n_iter : int, default=10
        Epochs per layer.
    k : int, default=1
        Gibbs steps per update (CD-k / PCD-k).
    persistent : bool, default=True
        PCD (True) or CD.
    momentum : float in [0, 1), default=0.0
    weight_decay : float, default=0.0
    sparsity_target : float in (0, 1), default=0.1
    sparsity_cost : float, default=0.0
    random_state : None, int, RandomState or Generator
        One seed per layer is drawn from it, in layer order; with an int the whole network is
        reproducible, bit for bit, at any ``n_jobs``.
    n_jobs : int or None, default=None
        Threads (None or -1: all cores).
    verbose : int, default=0
        Show a progress bar (tqdm) over all epochs of all layers.
    callbacks : callable or sequence of callables, default=None
        Each is called as ``callback(layer_index, epoch, dbn)`` after every epoch (``dbn.layers_``
        then holds the layers trained so far, the current one included). A callback returning
        True stops the training of the current layer; greedy training goes on with the next.

    Attributes
    ----------
    layers_ : list of BernoulliRBM / GaussianBernoulliRBM
        The fitted layers, bottom first.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has string feature names.

    Examples
    --------
    >>> import numpy as np
    >>> from leafrbm import DBN
    >>> X = (np.random.default_rng(0).random((50, 16)) > 0.5).astype(np.float32)
    >>> dbn = DBN(hidden_layer_sizes=(8, 4), n_iter=2, random_state=0).fit(X)
    >>> dbn.transform(X).shape, dbn.transform(X, depth=1).shape, dbn.reconstruct(X).shape
    ((50, 4), (50, 8), (50, 16))
    """

    def __init__(
        self,
        hidden_layer_sizes=(500, 250, 100),
        *,
        visible="bernoulli",
        learning_rate=0.1,
        batch_size=10,
        n_iter=10,
        k=1,
        persistent=True,
        momentum=0.0,
        weight_decay=0.0,
        sparsity_target=0.1,
        sparsity_cost=0.0,
        random_state=None,
        n_jobs=None,
        verbose=0,
        callbacks=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.visible = visible
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.callbacks = callbacks

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, (bool, np.bool_)):
            sizes = (sizes,)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) == 0:
            raise ValueError(f"hidden_layer_sizes must be a non-empty sequence of ints, got {self.hidden_layer_sizes!r}")
        sizes = tuple(check_int(f"hidden_layer_sizes[{i}]", s, low=1, high=2**31 - 1) for i, s in enumerate(sizes))
        check_choice("visible", self.visible, {"bernoulli", "gaussian"})
        rates = self.learning_rate
        if isinstance(rates, (numbers.Real, np.floating)) and not isinstance(rates, (bool, np.bool_)):
            rates = (rates,) * len(sizes)
        elif isinstance(rates, (str, bytes)) or not hasattr(rates, "__len__") or len(rates) != len(sizes):
            raise ValueError(
                f"learning_rate must be a float or one float per layer ({len(sizes)}), got {self.learning_rate!r}"
            )
        rates = tuple(check_float(f"learning_rate[{i}]", r, low=0.0, low_open=True) for i, r in enumerate(rates))
        check_training_params(self)
        callbacks = self.callbacks
        if callbacks is None:
            callbacks = ()
        elif callable(callbacks):
            callbacks = (callbacks,)
        else:
            callbacks = tuple(callbacks)
            for i, callback in enumerate(callbacks):
                if not callable(callback):
                    raise TypeError(f"callbacks[{i}] must be callable, got {callback!r}")
        resolve_n_jobs(self.n_jobs)
        return sizes, rates, callbacks

    def _validate_X(self, X, reset):
        return validate_samples(self, X, reset=reset)

    def _check_depth(self, depth):
        n_layers = len(self.layers_)
        if depth is None:
            return n_layers
        return check_int("depth", depth, low=1, high=n_layers)

    # ------------------------------------------------------------------ fitting
    def _make_layer(self, index, size, rate, seed):
        cls = GaussianBernoulliRBM if (index == 0 and self.visible == "gaussian") else BernoulliRBM
        return cls(
            n_components=size, learning_rate=rate, batch_size=self.batch_size, n_iter=self.n_iter, k=self.k,
            persistent=self.persistent, momentum=self.momentum, weight_decay=self.weight_decay,
            sparsity_target=self.sparsity_target, sparsity_cost=self.sparsity_cost, random_state=int(seed),
            n_jobs=self.n_jobs, verbose=0,
        )

    # Parameters that do not change the training state up to a given epoch.
    _RESUMABLE_PARAMS = ("verbose", "n_jobs", "n_iter", "callbacks")

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every=1):
        """Train the layers greedily: each RBM on the hidden probabilities of the one below.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; in [0, 1] for ``visible="bernoulli"``. float32 stays float32.
        y : Ignored
        checkpoint : str or os.PathLike, optional
            A ``.npz`` file that receives the whole network, with every layer's training state,
            every ``checkpoint_every`` epochs of each layer and at the end of each layer, written
            atomically. When it exists, training resumes from it, with the result of an
            uninterrupted run with the same parameters, seed and data. A checkpoint of other
            parameters or data raises ``ValueError``.
        checkpoint_every : int, default=1

        Returns
        -------
        self : the fitted network.
        """
        sizes, rates, callbacks = self._check_params()
        n_threads = resolve_n_jobs(self.n_jobs)
        checkpoint, checkpoint_every = checkpoint_path(checkpoint, checkpoint_every)
        X = self._validate_X(X, reset=True)
        rng = check_random_state(self.random_state)
        seeds = [int(s) for s in random_integers(rng, 2**32, len(sizes))]
        resumed = []
        self._checkpoint_fingerprint = None
        if checkpoint is not None:
            self._checkpoint_fingerprint = data_fingerprint(X)
            saved = load_checkpoint(self, checkpoint, self._checkpoint_fingerprint, self._RESUMABLE_PARAMS)
            resumed = list(saved.layers_) if saved is not None else []
        self.layers_ = []
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(sizes) * self.n_iter, desc="DBN", unit="epoch")
        try:
            data = X
            for index, (size, rate, seed) in enumerate(zip(sizes, rates, seeds)):
                if index < len(resumed):
                    layer = resumed[index]
                    layer.set_params(n_jobs=self.n_jobs, n_iter=self.n_iter)
                    layer._ensure_training_state()
                else:
                    layer = self._make_layer(index, size, rate, seed)
                    layer.set_params(n_iter=0).fit(data)  # validates and initialises
                    layer.set_params(n_iter=self.n_iter)
                prepared = layer._kernel_input(data)  # standardised for Gaussian visibles
                self.layers_.append(layer)
                if bar is not None:
                    bar.update(min(layer.n_epochs_, self.n_iter))
                for epoch in range(layer.n_epochs_, self.n_iter):
                    layer._fit_epochs(prepared, 1, n_threads)
                    if bar is not None:
                        bar.set_postfix(layer=index + 1)
                        bar.update(1)
                    if checkpoint is not None and (layer.n_epochs_ % checkpoint_every == 0
                                                   or layer.n_epochs_ == self.n_iter):
                        save(self, checkpoint)
                    if any([bool(callback(index, epoch, self)) for callback in callbacks]):
                        if bar is not None:
                            bar.update(self.n_iter - epoch - 1)
                        break
                data = layer._hidden_means(prepared)
        finally:
            if bar is not None:
                bar.close()
        return self

    # ------------------------------------------------------------------ inference
    def _up(self, V, depth):
        for layer in self.layers_[:depth]:
            V = layer._hidden_means(V)
        return V

    def _down(self, H, depth):
        for layer in reversed(self.layers_[:depth]):
            H = layer._visible_means(H)
        return self.layers_[0]._visible_output(H)

    def transform(self, X, depth=None):
        """Codes of X at a depth: mean-field P(h | ·) up through the first ``depth`` layers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        depth : int in [1, n_layers] or None, default=None (the top)

        Returns
        -------
        codes : ndarray of shape (n_samples, hidden_layer_sizes[depth - 1]), the model's dtype.
        """
        check_is_fitted(self, "layers_")
        depth = self._check_depth(depth)
        X = self._validate_X(X, reset=False)
        return self._up(self.layers_[0]._to_model_dtype(X), depth)

    def decode(self, H, depth=None):
        """Visible means given codes at a depth: mean-field E[· | h] down through ``depth`` layers.

        Parameters
        ----------
        H : array-like of shape (n_samples, hidden_layer_sizes[depth - 1])
        depth : int in [1, n_layers] or None, default=None (the top)

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), in the input's scale.
        """
        check_is_fitted(self, "layers_")
        depth = self._check_depth(depth)
        H = self.layers_[depth - 1]._check_hidden(H)
        return self._down(H, depth)

    def inverse_transform(self, H, depth=None):
        """Same as :meth:`decode`: visible means of codes at ``depth`` (default: the top)."""
        return self.decode(H, depth)

    def reconstruct(self, X, depth=None):
        """Up ``depth`` layers (P(h | ·)) and back down (E[· | h]), mean-field.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        depth : int in [1, n_layers] or None, default=None (all layers)

        Returns
        -------
        X_reconstructed : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "layers_")
        depth = self._check_depth(depth)
        return self._down(self.transform(X, depth), depth)

    def sample(self, n_samples, n_steps=1000, random_state=None):
        """Fantasies: ``n_steps`` of block Gibbs in the top RBM, then mean-field down.

        The top RBM's chains start from noise around its visible biases (see
        :meth:`BernoulliRBM.sample`); the means E[h_{L-1} | h_L] of the last step are passed down
        through the lower layers as E[· | h].

        Parameters
        ----------
        n_samples : int
        n_steps : int, default=1000
        random_state : None, int, RandomState or Generator
            Seed of the chains (None: drawn from the top layer's random state).

        Returns
        -------
        samples : ndarray of shape (n_samples, n_features), in the input's scale.
        """
        check_is_fitted(self, "layers_")
        n_steps = check_int("n_steps", n_steps, low=1)
        top = self.layers_[-1]
        seed = None if random_state is None else seed_from_random_state(random_state)
        if len(self.layers_) == 1:
            return top.sample(n_samples, n_steps, random_state=seed, return_means=True)
        means = top.sample(n_samples, n_steps, random_state=seed, return_means=True)
        return self._down(np.ascontiguousarray(means, dtype=top.components_.dtype), len(self.layers_) - 1)

    # ------------------------------------------------------------------ likelihood
    def log_likelihood_lower_bound(self, X, log_partition=None, n_samples=10, random_state=None):
        """Variational lower bound on log p(x) per row (Salakhutdinov & Murray 2008, §4).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        log_partition : float, LogPartition or None
            log Z of the top RBM (None: exact when it has at most 25 units in a layer, else AIS
            from the sampled codes' marginals).
        n_samples : int, default=10
            Monte Carlo draws of the hidden layers per row.
        random_state : None, int, RandomState or Generator

        Returns
        -------
        bound : ndarray of float64, shape (n_rows,)

        See :func:`leafrbm.likelihood.dbn_lower_bound` for the formula.
        """
        from .likelihood import dbn_lower_bound

        return dbn_lower_bound(self, X, log_partition=log_partition, n_samples=n_samples,
                               random_state=random_state)

    # ------------------------------------------------------------------ sklearn glue
    @property
    def _n_features_out(self):
        return self.layers_[-1].n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
