"""Reliability: checkpoints and resume after a kill, interrupts, concurrency, memory, files."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import leafrbm
from leafrbm import BernoulliRBM, GaussianBernoulliRBM


@pytest.fixture(scope="module")
def X():
    return (np.random.default_rng(1).random((400, 30)) > 0.6).astype(np.float32)


PARAMS = dict(n_components=12, batch_size=20, n_iter=6, learning_rate=0.05, momentum=0.5, random_state=7)


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("cls", [BernoulliRBM, GaussianBernoulliRBM])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path, X, cls):
    reference = cls(**PARAMS).fit(X)
    path = tmp_path / "run.npz"
    partial = cls(**{**PARAMS, "n_iter": 2}).fit(X, checkpoint=path)
    assert leafrbm.load(path).n_epochs_ == 2
    np.testing.assert_array_equal(leafrbm.load(path).components_, partial.components_)
    # A new process would start a fresh estimator with the full n_iter and the same path.
    resumed = cls(**PARAMS).fit(X, checkpoint=path, checkpoint_every=2)
    assert resumed.n_epochs_ == PARAMS["n_iter"]
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    np.testing.assert_array_equal(resumed.transform(X), reference.transform(X))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".leafrbm-")], "temporary files left"


def test_checkpoint_from_other_parameters_or_data_is_refused(tmp_path, X):
    path = tmp_path / "run.npz"
    BernoulliRBM(**{**PARAMS, "n_iter": 1}).fit(X, checkpoint=path)
    with pytest.raises(ValueError, match=r"checkpoint .*run\.npz.*parameters \['learning_rate'\]"):
        BernoulliRBM(**{**PARAMS, "learning_rate": 0.1}).fit(X, checkpoint=path)
    with pytest.raises(ValueError, match=r"checkpoint .*other training data"):
        BernoulliRBM(**PARAMS).fit(X[::-1], checkpoint=path)
    with pytest.raises(ValueError, match="checkpoint_every"):
        BernoulliRBM(**PARAMS).fit(X, checkpoint=path, checkpoint_every=0)
    # Parameters that do not change results may differ.
    BernoulliRBM(**{**PARAMS, "n_jobs": 1}).fit(X, checkpoint=path)


_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from leafrbm import BernoulliRBM
    X = (np.random.default_rng(1).random((3000, 64)) > 0.6).astype(np.float32)
    BernoulliRBM(n_components=64, batch_size=10, n_iter=400, learning_rate=0.05, random_state=3,
                 n_jobs=1).fit(X, checkpoint=sys.argv[1], checkpoint_every=1)
""")


def test_resume_after_the_process_was_killed(tmp_path):
    """A child process trains with checkpoints and is killed (SIGKILL) mid-run; we resume."""
    path = tmp_path / "killed.npz"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists():
                try:
                    if leafrbm.load(path).n_epochs_ >= 2:
                        break
                except ValueError:  # never half-written: this would be a failure below
                    raise
            if child.poll() is not None:
                pytest.fail("child finished before it was killed")
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    saved = leafrbm.load(path)  # complete and readable, whatever the moment of the kill
    n_done = saved.n_epochs_
    assert 2 <= n_done < 400
    X = (np.random.default_rng(1).random((3000, 64)) > 0.6).astype(np.float32)
    n_total = n_done + 2
    params = dict(n_components=64, batch_size=10, learning_rate=0.05, random_state=3, n_jobs=1)
    reference = BernoulliRBM(**params, n_iter=n_total).fit(X)
    # The killed run was asked for 400 epochs: to compare, continue the same state to n_total.
    resumed = BernoulliRBM(**params, n_iter=400)
    resumed._resume(str(path), leafrbm.io.data_fingerprint(X))
    resumed._fit_epochs(X, n_total - resumed.n_epochs_, 1)
    np.testing.assert_array_equal(resumed.components_, reference.components_)
    np.testing.assert_array_equal(resumed.intercept_hidden_, reference.intercept_hidden_)


# ----------------------------------------------------------------------------- interrupts
def _interrupt_after(seconds):
    import _thread

    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


@pytest.mark.parametrize("cls", [BernoulliRBM, GaussianBernoulliRBM])
def test_sigint_during_fit_stops_within_a_second_and_leaves_a_usable_model(cls):
    X = (np.random.default_rng(0).random((20000, 200)) > 0.5).astype(np.float32)
    model = cls(n_components=200, batch_size=10, n_iter=1000, random_state=0, n_jobs=2)
    timer = _interrupt_after(0.5)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    stopped = time.monotonic() - start
    timer.cancel()
    assert stopped < 0.5 + 1.0
    assert 0 < model.n_batches_seen_ < 1000 * 2000
    assert np.isfinite(model.components_).all()
    codes = model.transform(X[:5])
    assert codes.shape == (5, 200) and np.isfinite(codes).all()
    model.partial_fit(X[:100])  # training can go on


def test_sigint_during_a_long_chain():
    X = (np.random.default_rng(0).random((50, 300)) > 0.5).astype(np.float32)
    model = BernoulliRBM(n_components=300, n_iter=1, random_state=0).fit(X)
    timer = _interrupt_after(0.3)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        model.sample(200, n_steps=10**7)
    timer.cancel()
    assert time.monotonic() - start < 1.3
    assert model.sample(2, n_steps=3).shape == (2, 300)


# ----------------------------------------------------------------------------- concurrency
def test_threads_fitting_different_estimators_give_sequential_results():
    rng = np.random.default_rng(5)
    datasets = [(rng.random((300, 40)) > 0.5).astype(np.float32) for _ in range(4)]
    models = [BernoulliRBM(n_components=20, n_iter=3, batch_size=10, random_state=i, n_jobs=2) for i in range(4)]
    sequential = [BernoulliRBM(**m.get_params()).fit(d).components_ for m, d in zip(models, datasets)]
    errors = []

    def work(model, data):
        try:
            model.fit(data)
            model.transform(data)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=pair) for pair in zip(models, datasets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for model, expected in zip(models, sequential):
        np.testing.assert_array_equal(model.components_, expected)


def test_concurrent_transform_on_one_fitted_estimator(X):
    model = BernoulliRBM(n_components=16, n_iter=2, random_state=0).fit(X)
    expected = model.transform(X)
    expected_recon = model.reconstruct(X)
    results = [None] * 8

    def work(i):
        results[i] = (model.transform(X), model.reconstruct(X))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for codes, recon in results:
        np.testing.assert_array_equal(codes, expected)
        np.testing.assert_array_equal(recon, expected_recon)


# ----------------------------------------------------------------------------- memory
def test_impossible_allocation_is_a_clear_memory_error(X):
    with pytest.raises(MemoryError, match=r"n_components=2000000000 .* GiB"):
        BernoulliRBM(n_components=2_000_000_000, n_iter=1).fit(X)
    model = BernoulliRBM(n_components=4, n_iter=1).fit(X)
    with pytest.raises(MemoryError, match=r"n_samples"):
        model.sample(10**15, n_steps=1)


# ----------------------------------------------------------------------------- files
@pytest.fixture
def saved_model(tmp_path, X):
    path = tmp_path / "model.npz"
    leafrbm.save(BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(X), path)
    return path


def test_truncated_file_is_a_clear_error(saved_model):
    data = saved_model.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 1):
        saved_model.write_bytes(data[:size])
        with pytest.raises(ValueError, match=r"model\.npz"):
            leafrbm.load(saved_model)


def test_corrupted_file_is_a_clear_error(saved_model):
    data = bytearray(saved_model.read_bytes())
    rng = np.random.default_rng(0)
    for _ in range(20):
        corrupt = bytearray(data)
        for position in rng.integers(0, len(corrupt), 8):
            corrupt[position] ^= 0xFF
        saved_model.write_bytes(bytes(corrupt))
        try:
            model = leafrbm.load(saved_model)
        except ValueError as error:
            assert "model.npz" in str(error)
        else:  # flipped bytes in padding: the model must then be intact and usable
            assert model.transform(np.zeros((1, 30))).shape == (1, 4)


def test_future_version_and_foreign_files_are_refused(tmp_path, saved_model):
    import json

    with np.load(saved_model) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["__leafrbm__"][()]))
    meta["version"] = leafrbm.io.FORMAT_VERSION + 1
    arrays["__leafrbm__"] = np.array(json.dumps(meta))
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(ValueError, match=r"future\.npz.*newer"):
        leafrbm.load(future)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"foreign\.npz.*not a leafrbm"):
        leafrbm.load(foreign)
    with pytest.raises(FileNotFoundError):
        leafrbm.load(tmp_path / "missing.npz")


def test_failed_save_leaves_no_partial_file(tmp_path, X, monkeypatch):
    model = BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(X)
    target = tmp_path / "model.npz"
    leafrbm.save(model, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        leafrbm.save(model, target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


# ----------------------------------------------------------------------------- other estimators
def _long_fits():
    from leafrbm import DBN, TSNE

    rng = np.random.default_rng(0)
    X_bin = (rng.random((20000, 200)) > 0.5).astype(np.float32)
    X_real = rng.normal(size=(6000, 20)).astype(np.float32)
    return {
        "DBN": (lambda: DBN(hidden_layer_sizes=(200, 100), batch_size=10, n_iter=500, random_state=0, n_jobs=2),
                X_bin, lambda m: m.transform(X_bin[:5])),
        "TSNE": (lambda: TSNE(max_iter=100000, n_iter_without_progress=100000, min_grad_norm=0.0,
                              random_state=0, n_jobs=2), X_real, None),
    }


@pytest.mark.parametrize("name", ["DBN", "TSNE"])
def test_sigint_during_fit_of_the_other_estimators(name):
    make, data, use = _long_fits()[name]
    model = make()
    timer = _interrupt_after(1.0)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        model.fit(data)
    timer.cancel()
    assert time.monotonic() - start < 1.0 + 1.0
    if use is not None:
        out = use(model)
        assert np.isfinite(out).all()
    # The estimator can be fitted again from scratch.
    model.set_params(**({"n_iter": 1} if name == "DBN" else {"max_iter": 250}))
    model.fit(data[:300])


def test_threads_running_tsne_and_dbn_give_sequential_results():
    from leafrbm import DBN, TSNE

    rng = np.random.default_rng(2)
    X = rng.random((300, 16)).astype(np.float32)
    jobs = [
        (lambda: TSNE(max_iter=250, random_state=0, n_jobs=2), lambda m: m.fit_transform(X)),
        (lambda: DBN(hidden_layer_sizes=(12, 6), n_iter=3, random_state=0, n_jobs=2), lambda m: m.fit(X).transform(X)),
        (lambda: BernoulliRBM(n_components=8, n_iter=3, random_state=0, n_jobs=2), lambda m: m.fit(X).transform(X)),
    ]
    sequential = [run(make()) for make, run in jobs]
    results = [None] * len(jobs)

    def work(i):
        make, run = jobs[i]
        results[i] = run(make())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(results, sequential):
        np.testing.assert_array_equal(got, expected)


def test_dbn_checkpoint_resume_equals_uninterrupted_run(tmp_path, X):
    from leafrbm import DBN

    params = dict(hidden_layer_sizes=(10, 6, 4), batch_size=20, n_iter=4, learning_rate=0.05, random_state=3)
    reference = DBN(**params).fit(X)
    path = tmp_path / "dbn.npz"

    # Stop in the middle of the second layer, as a killed process would.
    def stop_in_layer_two(layer, epoch, dbn):
        if layer == 1 and epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        DBN(**params, callbacks=stop_in_layer_two).fit(X, checkpoint=path)
    partial = leafrbm.load(path)
    assert [layer.n_epochs_ for layer in partial.layers_] == [4, 2]
    resumed = DBN(**params).fit(X, checkpoint=path)
    assert len(resumed.layers_) == 3
    for got, expected in zip(resumed.layers_, reference.layers_):
        np.testing.assert_array_equal(got.components_, expected.components_)
        np.testing.assert_array_equal(got.intercept_visible_, expected.intercept_visible_)
    np.testing.assert_array_equal(resumed.transform(X), reference.transform(X))
    with pytest.raises(ValueError, match=r"checkpoint .*dbn\.npz.*hidden_layer_sizes"):
        DBN(**{**params, "hidden_layer_sizes": (10, 5)}).fit(X, checkpoint=path)
