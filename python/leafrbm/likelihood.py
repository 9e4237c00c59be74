"""Real log-likelihoods: partition functions of RBMs (exact or AIS) and DBN lower bounds.

The methods ``log_partition`` and ``log_likelihood`` of :class:`~leafrbm.BernoulliRBM` and
:class:`~leafrbm.GaussianBernoulliRBM`, and ``DBN.log_likelihood_lower_bound``, call the
functions of this module. The enumeration and the annealing run in the compiled core. AIS
anneals from a base-rate model: independent Bernoulli pixels for binary visibles, N(b_A, I) for
the unit-variance Gaussian visibles of a GaussianBernoulliRBM (geometric averages in between).

References
----------
R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
ICML 2008.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import logsumexp, xlogy

from . import _core
from ._stack import model_layers
from ._validation import check_choice, check_int, check_random_state, seed_from_random_state

__all__ = [
    "LogPartition",
    "ais_betas",
    "log_partition",
    "log_likelihood",
    "dbn_lower_bound",
    "MAX_EXACT_UNITS",
]

#: Largest layer that ``method="auto"`` enumerates exactly (2**25 states).
MAX_EXACT_UNITS = 25
_STREAMS = dict(_core.STREAMS)


@dataclasses.dataclass(frozen=True)
class LogPartition:
    """An estimate of log Z with its bounds.

    Attributes
    ----------
    log_z : float
        The estimate (exact for ``method="exact"``).
    lower, upper : float
        For AIS, log(mean(w) ∓ 3·std(w)/sqrt(n_runs)) + log Z_0, as Salakhutdinov & Murray's
        RBM_AIS.m reports them (``lower`` is -inf when 3 standard errors exceed the mean); for
        the exact method both equal ``log_z``.
    method : {"exact", "ais"}
    log_weights : ndarray of shape (n_runs,) or None
        AIS log importance weights (None for the exact method).
    log_z_base : float or None
        log Z of the AIS base-rate model.
    """

    log_z: float
    lower: float
    upper: float
    method: str
    log_weights: np.ndarray = None
    log_z_base: float = None

    def __float__(self):
        return float(self.log_z)


def ais_betas(n_temperatures=None):
    """Inverse temperatures from 0 to 1 for AIS.

    Parameters
    ----------
    n_temperatures : int or None
        None: Salakhutdinov & Murray's 14,500 transitions (step 1e-3 on [0, 0.5], 1e-4 on
        [0.5, 0.9], 1e-5 on [0.9, 1]). An int n >= 3: n transitions in the same proportions
        (500 : 4000 : 10000).

    Returns
    -------
    betas : ndarray of float64, shape (n_transitions + 1,), from exactly 0 to exactly 1.
    """
    if n_temperatures is None:
        counts = (500, 4000, 10000)
    else:
        n = check_int("betas", n_temperatures, low=3)
        first = max(1, round(n * 500 / 14500))
        second = max(1, round(n * 4000 / 14500))
        counts = (first, second, max(1, n - first - second))
    return np.concatenate([
        np.linspace(0.0, 0.5, counts[0] + 1)[:-1],
        np.linspace(0.5, 0.9, counts[1] + 1)[:-1],
        np.linspace(0.9, 1.0, counts[2] + 1),
    ])


def _check_betas(betas):
    if betas is None or (np.ndim(betas) == 0 and not isinstance(betas, (float, np.floating))):
        return ais_betas(betas)
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size < 2:
        raise ValueError(f"betas must be None, an int or a 1-d array of at least 2 values, got shape {betas.shape}")
    if not np.isfinite(betas).all() or betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) < 0):
        raise ValueError("betas must rise (non-decreasing) from exactly 0 to exactly 1")
    return np.ascontiguousarray(betas)


def _base_visible_bias(rbm, base_rate):
    """Visible biases b_A of the base-rate model from data (rows) or marginals (a vector).

    Bernoulli visibles: the logits of the per-pixel on-probabilities. Gaussian visibles: the means
    of the base model N(b_A, I) in the model's standardised space (data or means are given in the
    input's scale and standardised with the model's ``mean_`` and ``scale_``).
    """
    n_features = rbm.components_.shape[1]
    dtype = rbm.components_.dtype
    if base_rate is None:
        return np.zeros(n_features, dtype=dtype)
    if rbm._gaussian:
        if np.ndim(base_rate) == 2:
            means = rbm._kernel_input(base_rate).mean(axis=0, dtype=np.float64)
        else:
            means = np.asarray(base_rate, dtype=np.float64)
            if means.shape != (n_features,):
                raise ValueError(f"base_rate must be data (n, {n_features}) or means ({n_features},), "
                                 f"got shape {means.shape}")
            if not np.isfinite(means).all():
                raise ValueError("base_rate means must be finite")
            means = (means - rbm.mean_) / rbm.scale_
        return np.ascontiguousarray(means, dtype=dtype)
    base_rate = np.asarray(base_rate, dtype=np.float64)
    if base_rate.ndim == 2:
        if base_rate.shape[1] != n_features:
            raise ValueError(f"base_rate data must have {n_features} columns, got shape {base_rate.shape}")
        n = base_rate.shape[0]
        # Laplace smoothing keeps the biases finite for pixels that are never (or always) on.
        marginals = (base_rate.sum(axis=0) + 1.0) / (n + 2.0)
    elif base_rate.ndim == 1 and base_rate.shape[0] == n_features:
        marginals = base_rate
    else:
        raise ValueError(f"base_rate must be data (n, {n_features}) or marginals ({n_features},), "
                         f"got shape {base_rate.shape}")
    if not np.isfinite(marginals).all() or marginals.min() <= 0 or marginals.max() >= 1:
        raise ValueError("base_rate marginals must lie strictly between 0 and 1")
    return np.ascontiguousarray(np.log(marginals) - np.log1p(-marginals), dtype=dtype)


def log_partition(rbm, method="auto", n_runs=100, betas=None, base_rate=None, random_state=None):
    """log Z of a fitted RBM, exactly or by annealed importance sampling.

    Parameters
    ----------
    rbm : fitted BernoulliRBM or GaussianBernoulliRBM
    method : {"auto", "exact", "ais"}, default="auto"
        "exact" enumerates the smaller layer (at most 30 units; the hidden layer for Gaussian
        visibles), in parallel, accumulating in double with log-sum-exp. "auto" is exact when that
        layer has at most 25 units, else AIS.
    n_runs : int, default=100
        AIS runs (chains).
    betas : None, int or array-like
        AIS schedule: None for Salakhutdinov & Murray's 14,500 temperatures, an int for that many
        in the same proportions, or the inverse temperatures themselves (0 to 1).
    base_rate : None, array of shape (n_samples, n_features) or (n_features,)
        Data (or its per-pixel marginals) from which the base-rate model's visible biases are
        set, as in the paper; None uses a uniform base model (all biases 0). For Gaussian
        visibles the base model is N(b_A, I) in the model's standardised space, b_A the data's
        means (or the given means, in the input's scale); None: N(0, I).
    random_state : None, int, RandomState or Generator
        Seed of the AIS chains (None: drawn from the model's random state).

    Returns
    -------
    LogPartition
        ``float(result)`` is the estimate.
    """
    check_choice("method", method, {"auto", "exact", "ais"})
    from .rbm import _BaseRBM

    if not isinstance(rbm, _BaseRBM):
        raise TypeError(f"rbm must be a fitted BernoulliRBM or GaussianBernoulliRBM, got {type(rbm).__name__}")
    model_layers(rbm, name="rbm")  # raises NotFittedError before fit
    n_hidden, n_visible = rbm.components_.shape
    gaussian = bool(rbm._gaussian)
    enumerable = n_hidden if gaussian else min(n_hidden, n_visible)
    if method == "auto":
        method = "exact" if enumerable <= MAX_EXACT_UNITS else "ais"
    if method == "exact":
        if enumerable > 30:
            raise ValueError(
                f"method='exact' enumerates 2**{enumerable} states; at most 30 units in the "
                f"{'hidden' if gaussian else 'smaller'} layer are supported (use method='ais')"
            )
        enumerate_hidden = gaussian or n_hidden <= n_visible
        value = _core.exact_log_partition(*rbm._model_args(), enumerate_hidden, n_threads=rbm._n_threads())
        return LogPartition(value, value, value, "exact")
    n_runs = check_int("n_runs", n_runs, low=1, high=2**31 - 1)
    betas = _check_betas(betas)
    base = _base_visible_bias(rbm, base_rate)
    seed = rbm._draw_seed() if random_state is None else seed_from_random_state(random_state)
    log_weights = np.empty(n_runs, dtype=np.float64)
    log_z0 = _core.ais_log_weights(*rbm._model_args()[:3], base, betas, n_runs, seed, log_weights,
                                   n_threads=rbm._n_threads(), gaussian=gaussian)
    log_mean = logsumexp(log_weights) - np.log(n_runs)
    shift = log_weights.max()
    # log of 3 standard errors of the weights, scaled by the largest weight to avoid overflow.
    with np.errstate(divide="ignore"):  # identical weights: a standard error of 0, log = -inf
        log_three_se = np.log(3.0) + np.log(np.std(np.exp(log_weights - shift))) + shift - 0.5 * np.log(n_runs)
    upper = np.logaddexp(log_mean, log_three_se)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = log_mean + np.log1p(-np.exp(log_three_se - log_mean)) if log_three_se < log_mean else -np.inf
    return LogPartition(float(log_z0 + log_mean), float(log_z0 + lower), float(log_z0 + upper), "ais",
                        log_weights, float(log_z0))


_compute_log_partition = log_partition


def log_likelihood(rbm, X, log_partition=None):
    """log p(x) = -F(x) - log Z for each row of X.

    Parameters
    ----------
    rbm : fitted BernoulliRBM or GaussianBernoulliRBM
    X : array-like of shape (n_samples, n_features)
    log_partition : float, LogPartition or None
        log Z; None computes it with ``log_partition(rbm, method="auto", base_rate=X)``.

    Returns
    -------
    log_likelihood : ndarray of float64, shape (n_samples,)
        For Gaussian visibles, the density of X in the input's scale (the internal
        standardisation's Jacobian, -Σ log scale_, is included).
    """
    V = rbm._kernel_input(X)
    base_rate = X if rbm._gaussian else V  # (Gaussian base rates are standardised by the model)
    if log_partition is None:
        log_partition = _compute_log_partition(rbm, base_rate=base_rate)
    log_z = float(log_partition)
    energies = rbm._free_energy(V).astype(np.float64)
    out = -energies - log_z
    if rbm._gaussian:
        out -= np.log(rbm.scale_.astype(np.float64)).sum()
    return out


def _log_conditional(layer, lower, upper, gaussian):
    """log p(lower | upper) under a layer's visible conditional, per row (float64)."""
    activation = upper.astype(np.float64) @ layer.components_.astype(np.float64) + layer.intercept_visible_
    lower = lower.astype(np.float64)
    if gaussian:
        diff = lower - activation
        return -0.5 * (diff * diff).sum(axis=1) - 0.5 * lower.shape[1] * np.log(2 * np.pi)
    return (lower * activation - np.logaddexp(0.0, activation)).sum(axis=1)


def _entropy(means):
    q = means.astype(np.float64)
    return -(xlogy(q, q) + xlogy(1.0 - q, 1.0 - q)).sum(axis=1)


def dbn_lower_bound(dbn, X, log_partition=None, n_samples=10, random_state=None):
    """Variational lower bound on log p(x) under a DBN (Salakhutdinov & Murray 2008, §4).

    With the factorial posteriors q(h_l | h_{l-1}) of the lower RBMs, h_0 = x:
        log p(x) >= E_q[ Σ_{l<L} (log p(h_{l-1} | h_l)) − log p*_L(h_{L-1}) ] + Σ_l H(q_l) − log Z_L,
    i.e. for two layers E_{q(h1|x)}[log p(x | h1) − F_2(h1)] + H(q(h1|x)) − log Z_2. The
    expectation is a Monte Carlo average over ``n_samples`` draws of h_1 … h_{L-1} per row (the
    entropies are exact given the draw above). A one-layer DBN gives its RBM's exact-or-AIS
    log-likelihood.

    Parameters
    ----------
    dbn : fitted DBN
    X : array-like of shape (n_samples, n_features)
    log_partition : float, LogPartition or None
        log Z of the top RBM; None: ``log_partition(top, "auto", base_rate=<sampled codes>)``.
    n_samples : int, default=10
    random_state : None, int, RandomState or Generator

    Returns
    -------
    bound : ndarray of float64, shape (n_rows,)
    """
    from .dbn import DBN

    if not isinstance(dbn, DBN):
        raise TypeError(f"dbn must be a fitted DBN, got {type(dbn).__name__}")
    layers = model_layers(dbn, name="dbn")
    n_samples = check_int("n_samples", n_samples, low=1)
    V = layers[0]._to_model_dtype(dbn._validate_X(X, reset=False))
    top = layers[-1]
    if len(layers) == 1:
        return log_likelihood(top, X, log_partition)
    if random_state is None:
        seed = seed_from_random_state(check_random_state(dbn.random_state))
    else:
        seed = seed_from_random_state(random_state)
    draws = []
    for draw in range(n_samples):
        total = np.zeros(V.shape[0])
        below = V
        for index, layer in enumerate(layers[:-1]):
            means = np.empty((below.shape[0], layer.n_components), dtype=below.dtype)
            sample = np.empty_like(means)
            _core.hidden_pass(*layer._model_args(), below, means, sample, seed, _STREAMS["user_hidden"],
                              draw * len(layers) + index, n_threads=layer._n_threads())
            total += _log_conditional(layer, below, sample, layer._gaussian and index == 0) + _entropy(means)
            below = sample
        draws.append((total, below))
    if log_partition is None:
        codes = np.concatenate([codes for _, codes in draws])
        log_partition = _compute_log_partition(top, base_rate=codes, random_state=seed)
    log_z = float(log_partition)
    bound = np.mean([total - top._free_energy(codes).astype(np.float64) for total, codes in draws], axis=0) - log_z
    if layers[0]._gaussian:
        bound -= np.log(layers[0].scale_.astype(np.float64)).sum()
    return bound
