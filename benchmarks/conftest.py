"""Shared data for the benchmarks: real data from ../shared/data when present, else stand-ins.

Run with ``pytest benchmarks --benchmark-only`` (add ``--benchmark-json=FILE`` to keep results).
Every group holds leafrbm and its peers on the same data, in the same run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_THREADS = 2


def binary_mnist(n_rows=10_000):
    """``n_rows`` rows of MNIST thresholded at 0.5 (float32, 784 columns).

    Without ../shared/data/mnist, scikit-learn's digits upsampled to 28×28 and thresholded.
    """
    path = SHARED_DATA / "mnist" / "mnist.npz"
    if path.is_file():
        with np.load(path) as data:
            X = data["x_train"][:n_rows].reshape(n_rows, -1) / 255.0
        return (X > 0.5).astype(np.float32), "MNIST"
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images / 16.0
    images = [np.asarray(Image.fromarray((d * 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
              for d in digits]
    X = (np.stack(images).reshape(len(images), -1) / 255.0 > 0.5).astype(np.float32)
    return np.resize(X, (n_rows, 784)), "digits upsampled to 28x28"


@pytest.fixture(scope="session")
def mnist_binary():
    return binary_mnist()


@pytest.fixture(scope="session", autouse=True)
def _record_blas(request):
    """Limit NumPy's BLAS to the benchmark's thread count and record which kernel it uses."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=N_THREADS, user_api="blas"):
        yield [(info.get("internal_api"), info.get("architecture"), info.get("num_threads"))
               for info in threadpool_info()]
