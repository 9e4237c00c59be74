"""Encoding 100,000 images with a fitted 784-500 RBM: one process vs Dask on 2 worker processes.

Every variant uses 2 cores in all (this machine has 2), the same model and the same rows
(binarised MNIST, tiled to 100,000 rows; see conftest.py), float32:

- ``gemm-floor``: only the matrix product X @ W.T (NumPy's BLAS, 2 threads): what the hardware allows.
- ``leafrbm``: ``model.transform(X)`` in this process, 2 threads.
- ``dask-threads``: ``leafrbm.dask.transform`` on the threaded scheduler, in this process,
  2 threads, one thread per block (no serialisation: the cost of splitting into tasks).
- ``dask-2proc-persist``: a ``LocalCluster`` of 2 worker processes x 1 thread; the images are
  already on the workers (persisted before timing) and the codes stay there (``persist``):
  scheduling and the model's transfer, no bulk data movement.
- ``dask-2proc-gather``: the same, the codes (200 MB) gathered into this process (``compute``).
- ``dask-2proc-from-client``: the images start in this process's memory (``da.from_array``),
  go to the workers (314 MB) and the codes come back: the worst case, data on the client.

Blocks of 8,192 rows (a multiple of the kernels' 64-row tiles: nothing is rechunked).

    pytest benchmarks/bench_dask.py --benchmark-only --benchmark-columns=median,min,max,rounds
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from conftest import N_THREADS, binary_mnist

from leafrbm import BernoulliRBM

distributed = pytest.importorskip("distributed")
import dask.array as da  # noqa: E402

import leafrbm.dask as ld  # noqa: E402

N_ROWS = 100_000
N_HIDDEN = 500
BLOCK_ROWS = 8192
ROUNDS = 3
GROUP = f"encode {N_ROWS:,} x 784 -> {N_HIDDEN} (RBM transform), 2 cores"


@pytest.fixture(scope="module")
def images():
    X, name = binary_mnist(60_000)
    return np.resize(X, (N_ROWS, X.shape[1])), name


@pytest.fixture(scope="module")
def fitted(images):
    X, _ = images
    model = BernoulliRBM(N_HIDDEN, learning_rate=0.05, batch_size=100, n_iter=1, random_state=0,
                         n_jobs=N_THREADS).fit(X[:5000])
    # The copy sent to the 2 single-threaded workers uses 1 thread each: 2 cores in all.
    single = BernoulliRBM(N_HIDDEN, n_jobs=1)
    single.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    return model, single


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    client.wait_for_workers(2)  # a broadcast reaches only the workers registered by then
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _info(benchmark, data_name, impl):
    benchmark.group = GROUP
    benchmark.extra_info.update(data=data_name, impl=impl, rows=N_ROWS, block_rows=BLOCK_ROWS, cores=2,
                                load_average=os.getloadavg()[0])


def test_encode_in_process(benchmark, images, fitted):
    X, name = images
    model, _ = fitted
    _info(benchmark, name, "leafrbm")
    codes = benchmark.pedantic(model.transform, args=(X,), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert codes.shape == (N_ROWS, N_HIDDEN)


def test_encode_gemm_floor(benchmark, images, fitted):
    """The one matrix product of the encoding, NumPy's BLAS at 2 threads, into a preallocated output."""
    X, name = images
    model, _ = fitted
    _info(benchmark, name, "gemm-floor")
    W = model.components_
    out = np.empty((N_ROWS, N_HIDDEN), dtype=X.dtype)
    benchmark.pedantic(np.matmul, args=(X, W.T), kwargs={"out": out}, rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)


def test_encode_dask_threads(benchmark, images, fitted):
    X, name = images
    _, single = fitted
    _info(benchmark, name, "dask-threads")
    X_dask = da.from_array(X, chunks=(BLOCK_ROWS, -1))

    def run():
        return ld.transform(single, X_dask).compute(scheduler="threads", num_workers=N_THREADS)

    codes = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    np.testing.assert_array_equal(codes[:BLOCK_ROWS], fitted[0].transform(X[:BLOCK_ROWS]))


@pytest.mark.parametrize("where", ["persist", "gather", "from-client"])
def test_encode_dask_two_processes(benchmark, images, fitted, client, where):
    X, name = images
    model, single = fitted
    _info(benchmark, name, f"dask-2proc-{where}")
    if where == "from-client":
        X_dask = da.from_array(X, chunks=(BLOCK_ROWS, -1))
    else:  # the blocks spread over the workers beforehand, as if each had read its own files
        starts = range(0, N_ROWS, BLOCK_ROWS)
        futures = client.scatter([X[s:s + BLOCK_ROWS] for s in starts], hash=False)
        X_dask = da.concatenate([
            da.from_delayed(f, shape=(min(BLOCK_ROWS, N_ROWS - s), X.shape[1]), dtype=X.dtype)
            for f, s in zip(futures, starts)
        ])

    def run():
        codes = ld.transform(single, X_dask)
        if where == "persist":
            codes = codes.persist()
            distributed.wait(codes)
            return codes
        with warnings.catch_warnings():
            # The point of "from-client": the 314 MB of images travel inside the graph, which
            # distributed reports as a UserWarning ("Sending large graph").
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            return codes.compute()

    codes = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # The last block, whichever process encoded it, equals the in-process encoding of its rows.
    start = (N_ROWS // BLOCK_ROWS) * BLOCK_ROWS
    last = codes.blocks[-1].compute() if where == "persist" else codes[start:]
    np.testing.assert_array_equal(last, model.transform(X[start:]))
