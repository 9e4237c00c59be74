"""AIS and clamped inpainting: leafrbm against plain NumPy and against the GEMM-only floor.

Each kernel is timed three ways in the same run, on the same arrays, with the same number of
threads for every BLAS involved:

- leafrbm: one call into the compiled core (``_core.ais_log_weights`` / ``leafrbm.occlusion.inpaint``);
- NumPy: the same algorithm written plainly (float32, NumPy's OpenBLAS, ``numpy.random.Generator``);
- floor: the same matrix products alone (two GEMMs per temperature / per Gibbs step), NumPy's sgemm.

As pytest-benchmark groups (the issue's full sizes by default; about 7 minutes, most of it NumPy's
AIS)::

    pytest benchmarks/bench_dbn.py --benchmark-only --benchmark-columns=median,min,max,rounds
    # smaller: LEAFRBM_BENCH_AIS_TEMPERATURES=1450 LEAFRBM_BENCH_INPAINT_STEPS=200 pytest ...

or as a script that prints a Markdown table with the ratios::

    python benchmarks/bench_dbn.py --threads 2 --temperatures 14500 --runs 100 --steps 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_limits

import leafrbm
from leafrbm import _core
from leafrbm.likelihood import ais_betas
from leafrbm.occlusion import inpaint, rectangle

LEAVES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "leaves" / "leaves64.npz"


def timed(function):
    begin = time.perf_counter()
    result = function()
    return time.perf_counter() - begin, result


# ---------------------------------------------------------------------- AIS
def ais_numpy(W, bh, bv, base, betas, n_runs, rng):
    H, V = W.shape
    dtype = W.dtype
    v = (rng.random((n_runs, V), dtype=dtype) < expit(base)).astype(dtype)
    log_w = np.zeros(n_runs)
    a = np.empty((n_runs, H), dtype=dtype)
    x = np.empty((n_runs, V), dtype=dtype)
    K = len(betas) - 1
    for k in range(1, K + 1):
        beta, previous = betas[k], betas[k - 1]
        np.matmul(v, W.T, out=a)
        a += bh
        log_w += (beta - previous) * (v @ (bv - base)) + (
            np.logaddexp(0, beta * a).sum(1, dtype=np.float64) - np.logaddexp(0, previous * a).sum(1, dtype=np.float64))
        if k == K:
            break
        h = (rng.random((n_runs, H), dtype=dtype) < expit(dtype.type(beta) * a)).astype(dtype)
        np.matmul(h, W, out=x)
        x = dtype.type(1 - beta) * base + dtype.type(beta) * (x + bv)
        v = (rng.random((n_runs, V), dtype=dtype) < expit(x)).astype(dtype)
    return log_w


def ais_floor(W, n_temperatures, n_runs):
    H, V = W.shape
    v = np.ones((n_runs, V), dtype=W.dtype)
    a = np.empty((n_runs, H), dtype=W.dtype)
    x = np.empty((n_runs, V), dtype=W.dtype)
    for _ in range(n_temperatures):
        np.matmul(v, W.T, out=a)
        np.matmul(a, W, out=x)


def ais_problem(n_temperatures):
    """A 784-500 RBM with small random weights, a base-rate model, and the β schedule."""
    rng = np.random.default_rng(0)
    H, V = 500, 784
    W = rng.normal(0, 0.01, (H, V)).astype(np.float32)
    bh = np.zeros(H, dtype=np.float32)
    bv = rng.normal(-1, 0.5, V).astype(np.float32)
    base = rng.normal(-1, 0.5, V).astype(np.float32)
    betas = ais_betas(None if n_temperatures == 14500 else n_temperatures)
    return W, bh, bv, base, betas


def ais_runners(problem, n_runs, n_threads):
    W, bh, bv, base, betas = problem
    log_w = np.empty(n_runs)
    return {
        "leafrbm": lambda: _core.ais_log_weights(W, bh, bv, base, betas, n_runs, 1, log_w, n_threads=n_threads),
        "numpy": lambda: ais_numpy(W, bh, bv, base, betas, n_runs, np.random.default_rng(1)),
        "floor": lambda: ais_floor(W, len(betas) - 1, n_runs),
    }


def bench_ais(args):
    problem = ais_problem(args.temperatures)
    runners = ais_runners(problem, args.runs, args.threads)
    times = {name: timed(run)[0] for name, run in runners.items()}
    K = len(problem[4]) - 1
    flops = 2 * 2.0 * args.runs * 500 * 784 * K
    return dict(name=f"AIS 784-500, {K} temperatures x {args.runs} runs", gflops=flops / 1e9, **times)


# ---------------------------------------------------------------------- inpainting
def inpaint_numpy(W, bh, bv, X, mask, n_steps, rng):
    V = np.where(mask, X, expit(bv)).astype(W.dtype)
    a = np.empty((X.shape[0], W.shape[0]), dtype=W.dtype)
    x = np.empty(X.shape, dtype=W.dtype)
    for _ in range(n_steps):
        np.matmul(V, W.T, out=a)
        h = (rng.random(a.shape, dtype=W.dtype) < expit(a + bh)).astype(W.dtype)
        np.matmul(h, W, out=x)
        means = expit(x + bv)
        V = (rng.random(means.shape, dtype=W.dtype) < means).astype(W.dtype)
        V[mask] = X[mask]
    return np.where(mask, X, means)


def inpaint_floor(W, X, n_steps):
    a = np.empty((X.shape[0], W.shape[0]), dtype=W.dtype)
    x = np.empty(X.shape, dtype=W.dtype)
    V = X.astype(W.dtype)
    for _ in range(n_steps):
        np.matmul(V, W.T, out=a)
        np.matmul(a, W, out=x)


def inpaint_problem():
    """64 leaves (binary, 64×64; random images without ../shared), a 4096-500 RBM, rectangles."""
    if LEAVES.exists():
        with np.load(LEAVES) as data:
            X = (data["images"][:64].reshape(64, -1) >= 128).astype(np.float32)
        source = "64 leaves 64x64 (leaves64.npz)"
    else:
        X = (np.random.default_rng(0).random((64, 4096)) < 0.3).astype(np.float32)
        source = "64 random 64x64 images (leaves64.npz absent)"
    rng = np.random.default_rng(0)
    rbm = leafrbm.BernoulliRBM(n_components=500)
    rbm.components_ = rng.normal(0, 0.01, (500, 4096)).astype(np.float32)
    rbm.intercept_hidden_ = np.zeros(500, dtype=np.float32)
    rbm.intercept_visible_ = np.zeros(4096, dtype=np.float32)
    rbm.h_samples_ = np.zeros((1, 500), dtype=np.float32)
    rbm.n_features_in_ = 4096
    mask = rectangle(64, (64, 64), 0.25, random_state=0)
    return rbm, X, mask, source


def inpaint_runners(problem, n_steps, n_threads):
    rbm, X, mask, _ = problem
    rbm.n_jobs = n_threads
    W, bh, bv = rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_
    return {
        "leafrbm": lambda: inpaint(rbm, X, mask, n_steps=n_steps, random_state=0),
        "numpy": lambda: inpaint_numpy(W, bh, bv, X, mask, n_steps, np.random.default_rng(0)),
        "floor": lambda: inpaint_floor(W, X, n_steps),
    }


def bench_inpaint(args):
    problem = inpaint_problem()
    runners = inpaint_runners(problem, args.steps, args.threads)
    times = {name: timed(run)[0] for name, run in runners.items()}
    flops = 2 * 2.0 * 64 * 500 * 4096 * args.steps
    return dict(name=f"clamped inpainting, {problem[3]}, 500 hidden, {args.steps} steps", gflops=flops / 1e9,
                **times)


# ---------------------------------------------------------------------- pytest-benchmark
AIS_TEMPERATURES = int(os.environ.get("LEAFRBM_BENCH_AIS_TEMPERATURES", 14500))
AIS_RUNS = 100
INPAINT_STEPS = int(os.environ.get("LEAFRBM_BENCH_INPAINT_STEPS", 1000))
ROUNDS = int(os.environ.get("LEAFRBM_BENCH_DBN_ROUNDS", 3))
IMPLEMENTATIONS = ["leafrbm", "numpy", "floor"]


@pytest.fixture(scope="module")
def ais_runs():
    from conftest import N_THREADS

    return ais_runners(ais_problem(AIS_TEMPERATURES), AIS_RUNS, N_THREADS)


@pytest.fixture(scope="module")
def inpaint_runs():
    from conftest import N_THREADS

    return inpaint_runners(inpaint_problem(), INPAINT_STEPS, N_THREADS)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_ais(benchmark, ais_runs, impl):
    benchmark.group = f"AIS 784-500, {AIS_TEMPERATURES} temperatures x {AIS_RUNS} runs, 2 threads"
    benchmark.pedantic(ais_runs[impl], rounds=ROUNDS, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_inpaint(benchmark, inpaint_runs, impl):
    benchmark.group = f"clamped inpainting, 64 images 64x64, 500 hidden, {INPAINT_STEPS} steps, 2 threads"
    benchmark.pedantic(inpaint_runs[impl], rounds=ROUNDS, iterations=1, warmup_rounds=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperatures", type=int, default=14500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--only", choices=["ais", "inpaint"], default=None)
    args = parser.parse_args()
    print(f"leafrbm {leafrbm.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"threads {args.threads}, cpus {os.cpu_count()}, load average {os.getloadavg()}")
    print(leafrbm.build_config() if hasattr(leafrbm, "build_config") else "")
    rows = []
    with threadpool_limits(limits=args.threads):
        if args.only in (None, "ais"):
            rows.append(bench_ais(args))
        if args.only in (None, "inpaint"):
            rows.append(bench_inpaint(args))
    print()
    print("| kernel | GEMM GFLOP | leafrbm s | NumPy s | floor s | leafrbm / floor | NumPy / leafrbm |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['gflops']:.0f} | {row['leafrbm']:.2f} | {row['numpy']:.2f} | "
              f"{row['floor']:.2f} | {row['leafrbm'] / row['floor']:.2f} | {row['numpy'] / row['leafrbm']:.2f} |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
