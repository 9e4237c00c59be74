"""NumPy reference implementations of the RBM kernels, sharing the kernels' random numbers."""

from __future__ import annotations

import numpy as np

from leafrbm import _core

STREAMS = dict(_core.STREAMS)


def uniforms(seed, stream, step, rows, cols, dtype=np.float64, row_offset=0):
    out = np.empty((rows, cols), dtype=dtype)
    _core.random_uniform(seed, STREAMS[stream], step, out, row_offset)
    return out


def normals(seed, stream, step, rows, cols, dtype=np.float64):
    out = np.empty((rows, cols), dtype=dtype)
    _core.random_normal(seed, STREAMS[stream], step, out)
    return out


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hidden_means(W, bh, V):
    return sigmoid(V @ W.T + bh)


def visible_means(W, bv, H, gaussian=False):
    activation = H @ W + bv
    return activation if gaussian else sigmoid(activation)


def free_energy(W, bh, bv, V, gaussian=False):
    activation = V @ W.T + bh
    hidden_term = np.logaddexp(0, activation).sum(axis=1)
    if gaussian:
        return 0.5 * ((V - bv) ** 2).sum(axis=1) - hidden_term
    return -V @ bv - hidden_term


def train_epoch(W, bh, bv, X, order, batch_size, *, lr, k=1, persistent=True, chain=None,
                momentum=0.0, weight_decay=0.0, sparsity_target=0.1, sparsity_cost=0.0,
                sparsity_damping=0.9, velocity=None, activity=None, seed=0, first_batch=0,
                gaussian=False, uniform_dtype=np.float64):
    """The update rules of leafrbm's train_epoch (see rbm.hpp), written plainly in NumPy.

    ``uniform_dtype``: the dtype of the kernel being checked (its uniforms differ per dtype).
    """
    W, bh, bv = W.copy(), bh.copy(), bv.copy()
    chain = None if chain is None else chain.copy()
    vW, vbh, vbv = (np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)) if velocity is None else [a.copy() for a in velocity]
    activity = np.full(len(bh), sparsity_target) if activity is None else activity.copy()
    n = len(X)
    for b in range(-(-n // batch_size)):
        rows = order[b * batch_size:(b + 1) * batch_size]
        v_pos = X[rows]
        step = (first_batch + b) << 16
        h_pos = hidden_means(W, bh, v_pos)
        if persistent:
            h = chain
        else:
            h = (uniforms(seed, "hidden_positive", step, *h_pos.shape, uniform_dtype) < h_pos).astype(X.dtype)
        for s in range(k):
            v_mean = visible_means(W, bv, h, gaussian)
            if gaussian:
                v_neg = v_mean
            else:
                v_neg = (uniforms(seed, "visible_chain", step + s, *v_mean.shape, uniform_dtype) < v_mean).astype(X.dtype)
            h_neg = hidden_means(W, bh, v_neg)
            if persistent or s + 1 < k:
                h = (uniforms(seed, "hidden_chain", step + s, *h_neg.shape, uniform_dtype) < h_neg).astype(X.dtype)
        if persistent:
            chain = h
        grad_W = h_pos.T @ v_pos / len(v_pos) - h_neg.T @ v_neg / len(v_neg)
        grad_bh = h_pos.mean(0) - h_neg.mean(0)
        grad_bv = v_pos.mean(0) - v_neg.mean(0)
        grad_bh = lr * grad_bh
        if sparsity_cost > 0:
            activity = sparsity_damping * activity + (1 - sparsity_damping) * h_pos.mean(0)
            grad_bh = grad_bh + lr * sparsity_cost * (sparsity_target - activity)
        if momentum == 0 and weight_decay == 0:
            W += lr * grad_W
            bh += grad_bh
            bv += lr * grad_bv
        else:
            vW = momentum * vW - lr * weight_decay * W + lr * grad_W
            vbh = momentum * vbh + grad_bh
            vbv = momentum * vbv + lr * grad_bv
            W += vW
            bh += vbh
            bv += vbv
    return W, bh, bv, chain, (vW, vbh, vbv), activity


def stack_chain(layers, V, n_steps, seed, stream, first_step=0, mask=None, gaussian=False, keep_every=1):
    """leafrbm's stack chain (inpaint.hpp) in NumPy: up sampling every layer, down, clamp.

    layers: list of (W, bh, bv). Returns (final state, final clamped means, kept frames).
    """
    L = len(layers)
    V = V.copy()
    observed = V.copy()
    frames = []
    visible_mean = None
    for s in range(n_steps):
        base = 2 * L * (first_step + s)
        below = V
        samples = []
        for index, (W, bh, _) in enumerate(layers):
            m = hidden_means(W, bh, below)
            below = (uniforms(seed, stream, base + 2 * index, *m.shape) < m).astype(V.dtype)
            samples.append(below)
        for index in range(L - 1, 0, -1):
            W, _, bv = layers[index]
            m = visible_means(W, bv, samples[index])
            samples[index - 1] = (uniforms(seed, stream, base + 2 * index + 1, *m.shape) < m).astype(V.dtype)
        W, _, bv = layers[0]
        visible_mean = visible_means(W, bv, samples[0], gaussian)
        if gaussian:
            V = visible_mean + normals(seed, stream, base + 1, *visible_mean.shape)
        else:
            V = (uniforms(seed, stream, base + 1, *visible_mean.shape) < visible_mean).astype(V.dtype)
        if mask is not None:
            V = np.where(mask, observed, V)
        if (s + 1) % keep_every == 0:
            frames.append(visible_mean)
    final = visible_mean if mask is None else np.where(mask, observed, visible_mean)
    return V, final, frames


def softplus(x):
    return np.logaddexp(0.0, x)


def ais_log_weights(W, bh, bv, base_bv, betas, n_runs, seed):
    """AIS from a base-rate model as in ais.hpp, sharing its random numbers; returns (log w, log Z_0)."""
    H, V = W.shape
    v = (uniforms(seed, "ais", 0, n_runs, V) < sigmoid(base_bv)).astype(np.float64)
    log_w = np.zeros(n_runs)
    K = len(betas) - 1
    for k in range(1, K + 1):
        beta, previous = betas[k], betas[k - 1]
        a = v @ W.T + bh
        log_w += (beta - previous) * (v @ (bv - base_bv)) + softplus(beta * a).sum(1) - softplus(previous * a).sum(1)
        if k == K:
            break
        h = (uniforms(seed, "ais", 2 * k, n_runs, H) < sigmoid(beta * a)).astype(np.float64)
        x = (1 - beta) * base_bv + beta * (h @ W + bv)
        v = (uniforms(seed, "ais", 2 * k + 1, n_runs, V) < sigmoid(x)).astype(np.float64)
    return log_w, H * np.log(2.0) + softplus(base_bv).sum()


def ais_log_weights_gaussian(W, bh, bv, base_bv, betas, n_runs, seed):
    """AIS of a unit-variance Gaussian-Bernoulli RBM from N(base_bv, I), as in ais.hpp."""
    H, V = W.shape
    v = normals(seed, "ais", 0, n_runs, V) + base_bv
    log_w = np.zeros(n_runs)
    half_norm_difference = 0.5 * (bv @ bv - base_bv @ base_bv)
    K = len(betas) - 1
    for k in range(1, K + 1):
        beta, previous = betas[k], betas[k - 1]
        a = v @ W.T + bh
        # log p*_β(v) = -½(1-β)‖v - b_A‖² - ½β‖v - b_B‖² + Σ softplus(β a)
        log_w += (beta - previous) * (v @ (bv - base_bv) - half_norm_difference) + (
            softplus(beta * a).sum(1) - softplus(previous * a).sum(1))
        if k == K:
            break
        h = (uniforms(seed, "ais", 2 * k, n_runs, H) < sigmoid(beta * a)).astype(np.float64)
        v = normals(seed, "ais", 2 * k + 1, n_runs, V) + (1 - beta) * base_bv + beta * (h @ W + bv)
    return log_w, H * np.log(2.0) + 0.5 * V * np.log(2 * np.pi)


def brute_log_partition(W, bh, bv):
    """log Z of a tiny Bernoulli RBM by enumerating every (v, h) pair."""
    import itertools

    from scipy.special import logsumexp

    H, V = W.shape
    hs = np.array(list(itertools.product([0, 1], repeat=H)), dtype=np.float64)
    vs = np.array(list(itertools.product([0, 1], repeat=V)), dtype=np.float64)
    log_joint = vs @ W.T @ hs.T + (vs @ bv)[:, None] + (hs @ bh)[None, :]
    return logsumexp(log_joint)


# --------------------------------------------------------------------------------------- t-SNE
def tsne_kl_and_gradient(P, Y, dof=1.0, exaggeration=1.0):
    """Exact KL(exaggeration·P ‖ Q) and its gradient for a dense symmetric P (zero diagonal).

    Q_ij ∝ w_ij = (1 + |y_i − y_j|²/dof)^(−(dof+1)/2) over i ≠ j; the gradient is
    (2 (dof+1)/dof) Σ_j (p_ij − q_ij) (1 + d²/dof)^(−1) (y_i − y_j). The KL is summed over the
    non-zeros of P, as scikit-learn reports it.
    """
    P = exaggeration * np.asarray(P, dtype=np.float64)
    diff = Y[:, None, :] - Y[None, :, :]
    d2 = (diff**2).sum(-1)
    u = 1.0 / (1.0 + d2 / dof)
    w = u ** ((dof + 1.0) / 2.0)
    np.fill_diagonal(w, 0.0)
    Q = w / w.sum()
    mask = P > 0
    kl = float((P[mask] * np.log(P[mask] / Q[mask])).sum())
    grad = (2.0 * (dof + 1.0) / dof) * (((P - Q) * u)[:, :, None] * diff).sum(1)
    return kl, grad


def tsne_conditional_p(sqdist, perplexity):
    """scikit-learn's _binary_search_perplexity, vectorised over rows (float64)."""
    sqdist = np.asarray(sqdist, dtype=np.float32).astype(np.float64)
    n = sqdist.shape[0]
    beta = np.ones(n)
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    target = np.log(perplexity)
    done = np.zeros(n, dtype=bool)
    P = np.zeros_like(sqdist)
    for _ in range(100):
        E = np.exp(-sqdist * beta[:, None])
        s = E.sum(1)
        s[s == 0] = 1e-8
        Pn = E / s[:, None]
        H = np.log(s) + beta * (sqdist * Pn).sum(1)
        P[~done] = Pn[~done]
        diff = H - target
        done |= np.abs(diff) <= 1e-5
        up = (diff > 0) & ~done
        down = (diff <= 0) & ~done
        lo[up] = beta[up]
        beta[up] = np.where(np.isinf(hi[up]), beta[up] * 2, (beta[up] + hi[up]) / 2)
        hi[down] = beta[down]
        beta[down] = np.where(np.isinf(lo[down]), beta[down] / 2, (beta[down] + lo[down]) / 2)
        if done.all():
            break
    return P


def random_rbm(n_hidden, n_visible, scale=1.0, seed=0, dtype=np.float64, cls=None, n_jobs=1):
    """A fitted-looking RBM with N(0, scale) parameters, for tests of exact quantities."""
    from leafrbm import BernoulliRBM, GaussianBernoulliRBM

    cls = BernoulliRBM if cls is None else cls
    rng = np.random.default_rng(seed)
    rbm = cls(n_components=n_hidden, random_state=seed, n_jobs=n_jobs)
    rbm.components_ = rng.normal(0, scale, (n_hidden, n_visible)).astype(dtype)
    rbm.intercept_hidden_ = rng.normal(0, scale, n_hidden).astype(dtype)
    rbm.intercept_visible_ = rng.normal(0, scale, n_visible).astype(dtype)
    rbm.n_features_in_ = n_visible
    rbm.h_samples_ = np.zeros((1, n_hidden), dtype=dtype)
    if cls is GaussianBernoulliRBM:
        rbm.mean_ = np.zeros(n_visible, dtype=dtype)
        rbm.scale_ = np.ones(n_visible, dtype=dtype)
    return rbm
