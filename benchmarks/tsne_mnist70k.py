"""Map all 70,000 MNIST digits (PCA to 50 dimensions) with leafrbm's t-SNE; report time and KL.

    python benchmarks/tsne_mnist70k.py [--n-jobs 2] [--exact-kl] [--peer opentsne-fft]

Prints the thread and BLAS settings, the wall time of ``fit`` (affinities + optimisation), the KL
divergence leafrbm reports, and with ``--exact-kl`` the exact KL(P ‖ Q) against openTSNE's
exact-kNN perplexity-30 P with Q over all N² pairs (the common evaluator of bench_tsne.py; this
takes a while at 70,000 points), and kNN preservation@10 on a 5,000-point subsample.
The data is ../shared/data/mnist/mnist.npz (train + test, pixels / 255).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist" / "mnist.npz"


def load_mnist_pca50(seed=0):
    from sklearn.decomposition import PCA

    with np.load(DATA) as data:
        X = np.concatenate([data["x_train"], data["x_test"]]).reshape(70_000, -1).astype(np.float32) / 255.0
        labels = np.concatenate([data["y_train"], data["y_test"]])
    X50 = PCA(n_components=50, random_state=seed).fit_transform(X)
    return np.ascontiguousarray(X50, dtype=np.float64), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--exact-kl", action="store_true", help="also compute the exact common-P KL")
    parser.add_argument("--peer", choices=["none", "opentsne-fft", "opentsne-bh", "sklearn"], default="none",
                        help="also time one peer on the same data")
    args = parser.parse_args()

    from threadpoolctl import threadpool_info

    import leafrbm
    from leafrbm import TSNE

    print(f"leafrbm {leafrbm.__version__}; n_jobs={args.n_jobs}")
    leafrbm.show_config()
    for info in threadpool_info():
        print(f"  threadpool: {info.get('internal_api')} {info.get('version')} threads={info.get('num_threads')}")

    begin = time.perf_counter()
    X, labels = load_mnist_pca50()
    print(f"MNIST 70,000 × 784 → PCA-50 in {time.perf_counter() - begin:.1f} s")

    begin = time.perf_counter()
    model = TSNE(n_jobs=args.n_jobs, random_state=0).fit(X)
    wall = time.perf_counter() - begin
    print(f"leafrbm TSNE: {wall:.1f} s, {model.n_iter_ + 1} iterations, KL (reported) {model.kl_divergence_:.4f}")
    embeddings = {"leafrbm": model.embedding_}

    if args.peer != "none":
        begin = time.perf_counter()
        if args.peer.startswith("opentsne"):
            import openTSNE

            emb = openTSNE.TSNE(n_jobs=args.n_jobs, random_state=0,
                                negative_gradient_method=args.peer.split("-")[1]).fit(X)
            kl = float(emb.kl_divergence)
            emb = np.asarray(emb)
        else:
            from sklearn.manifold import TSNE as SklearnTSNE

            peer = SklearnTSNE(n_jobs=args.n_jobs, random_state=0).fit(X)
            emb, kl = peer.embedding_, peer.kl_divergence_
        print(f"{args.peer}: {time.perf_counter() - begin:.1f} s, KL (reported) {kl:.4f}")
        embeddings[args.peer] = emb

    from sklearn.neighbors import NearestNeighbors

    subsample = np.random.default_rng(0).choice(len(X), 5000, replace=False)
    knn_input = NearestNeighbors(n_neighbors=11).fit(X).kneighbors(X[subsample], return_distance=False)[:, 1:]
    for name, Y in embeddings.items():
        knn_map = NearestNeighbors(n_neighbors=11).fit(Y).kneighbors(Y[subsample], return_distance=False)[:, 1:]
        hits = (knn_map[:, :, None] == knn_input[:, None, :]).any(axis=2).mean()
        print(f"{name}: kNN preservation@10 (5,000-point subsample) {hits:.3f}")

    if args.exact_kl:
        import openTSNE

        from leafrbm import _core

        P = openTSNE.affinity.PerplexityBasedNN(X, perplexity=30, method="exact", n_jobs=args.n_jobs,
                                                random_state=0, verbose=False).P.tocsr()
        for name, Y in embeddings.items():
            kl = _core.tsne_kl_exact(np.ascontiguousarray(Y, dtype=np.float64), P.indptr.astype(np.int64),
                                     P.indices.astype(np.int64), P.data.astype(np.float64), 1.0, args.n_jobs)
            print(f"{name}: exact KL (common P) {kl:.4f}")


if __name__ == "__main__":
    main()
