"""t-SNE speed and quality: leafrbm vs scikit-learn vs openTSNE (Barnes-Hut and FFT), 2 threads.

Data: scikit-learn's digits (1,797 × 64) and a 15-cluster Gaussian mixture in 100-D reduced to
50-D by PCA (10,000 and 20,000 points; the generator of ../shared/research/baselines.md). Each
library runs with its defaults, ``n_jobs=2`` and ``random_state=0``; every fit is timed once
(pedantic, 1 round: the fits are long and their quality does not change between rounds).

Quality, recorded in ``extra_info`` for every result:
- ``kl_exact``: KL(P ‖ Q) with one common P for all (openTSNE's exact-kNN perplexity-30
  affinities) and Q exact over all N² pairs;
- ``knn10``: kNN preservation, the mean fraction of each point's 10 input-space neighbours that
  are among its 10 map neighbours;
- ``kl_library``, ``n_iter``: what the library reports.

    pytest benchmarks/bench_tsne.py --benchmark-only --benchmark-columns=min,rounds
    LEAFRBM_BENCH_TSNE_DATA=digits,mix10000 pytest benchmarks/bench_tsne.py --benchmark-only
"""

from __future__ import annotations

import os

import numpy as np
import pytest

N_THREADS = 2
SEED = 0
DATASETS = os.environ.get("LEAFRBM_BENCH_TSNE_DATA", "digits,mix10000,mix20000").split(",")
IMPLEMENTATIONS = ["leafrbm", "sklearn", "opentsne-bh", "opentsne-fft"]

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def gaussian_mixture_pca50(n, seed=SEED):
    """15 clusters in 100-D (random 5-D linear manifold + isotropic noise each, unequal sizes),
    PCA to 50-D: the generator of ../shared/research/anchor_scripts/_common.py."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    K, D, L = 15, 100, 5
    w = rng.uniform(0.5, 1.5, K)
    w /= w.sum()
    labels = rng.choice(K, size=n, p=w)
    means = rng.normal(0.0, 1.0, (K, D))
    loads = rng.normal(0.0, 0.6, (K, L, D))
    noise = rng.uniform(0.3, 0.7, K)
    z = rng.normal(size=(n, L))
    X = means[labels] + np.einsum("nl,nld->nd", z, loads[labels]) + rng.normal(size=(n, D)) * noise[labels, None]
    X50 = PCA(n_components=50, random_state=seed).fit_transform(X)
    return np.ascontiguousarray(X50, dtype=np.float64), labels


def load_dataset(name):
    if name == "digits":
        from sklearn.datasets import load_digits

        return np.ascontiguousarray(load_digits().data, dtype=np.float64)
    if name.startswith("mix"):
        return gaussian_mixture_pca50(int(name[3:]))[0]
    raise ValueError(name)


_EVALUATORS = {}


def evaluator(name, X):
    """(common P as CSR, input-space 10-NN indices) for a data set, computed once."""
    if name not in _EVALUATORS:
        import openTSNE
        from sklearn.neighbors import NearestNeighbors

        P = openTSNE.affinity.PerplexityBasedNN(X, perplexity=30, method="exact", n_jobs=N_THREADS,
                                                random_state=SEED, verbose=False).P.tocsr()
        P.sort_indices()
        knn = NearestNeighbors(n_neighbors=10).fit(X).kneighbors(return_distance=False)
        _EVALUATORS[name] = (P, knn)
    return _EVALUATORS[name]


def exact_kl(P, Y):
    from leafrbm import _core

    return _core.tsne_kl_exact(np.ascontiguousarray(Y, dtype=np.float64), P.indptr.astype(np.int64),
                               P.indices.astype(np.int64), P.data.astype(np.float64), 1.0, N_THREADS)


def knn_preservation(knn_input, Y, k=10):
    from sklearn.neighbors import NearestNeighbors

    knn_map = NearestNeighbors(n_neighbors=k).fit(Y).kneighbors(return_distance=False)
    hits = (knn_map[:, :, None] == knn_input[:, None, :k]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


def fit(impl, X):
    """(embedding, KL reported by the library, iterations)."""
    if impl == "leafrbm":
        from leafrbm import TSNE

        model = TSNE(n_jobs=N_THREADS, random_state=SEED).fit(X)
        return model.embedding_, model.kl_divergence_, model.n_iter_ + 1
    if impl == "sklearn":
        from sklearn.manifold import TSNE

        model = TSNE(n_jobs=N_THREADS, random_state=SEED).fit(X)
        return model.embedding_, model.kl_divergence_, model.n_iter_ + 1
    if impl.startswith("opentsne"):
        import openTSNE

        method = impl.split("-")[1]
        embedding = openTSNE.TSNE(n_jobs=N_THREADS, random_state=SEED, negative_gradient_method=method).fit(X)
        return np.asarray(embedding), float(embedding.kl_divergence), 750
    raise ValueError(impl)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("data", DATASETS)
def test_tsne(benchmark, data, impl):
    X = load_dataset(data)
    P, knn = evaluator(data, X)
    benchmark.group = f"tsne {data} (n={len(X)})"
    result = {}

    def run():
        result["out"] = fit(impl, X)

    benchmark.pedantic(run, rounds=1, iterations=1)
    Y, kl_library, n_iter = result["out"]
    benchmark.extra_info.update(
        n_samples=len(X), n_iter=int(n_iter), kl_library=float(kl_library),
        kl_exact=float(exact_kl(P, Y)), knn10=knn_preservation(knn, Y),
    )
