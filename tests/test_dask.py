"""leafrbm.dask: distributed encoding, out-of-core training and lazy image loading.

Most tests run on one module-scoped ``distributed.LocalCluster`` (2 worker processes, 1 thread
each, loopback only); the ``synchronous`` ones run without it, on the in-process scheduler.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from PIL import Image, ImageDraw
from sklearn.exceptions import NotFittedError

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (a dependency of distributed)
import dask  # noqa: E402
import dask.array as da  # noqa: E402

import leafrbm.dask as ld  # noqa: E402
from leafrbm import BernoulliRBM, GaussianBernoulliRBM  # noqa: E402
from leafrbm._validation import seed_from_random_state  # noqa: E402


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(2)  # a broadcast reaches only the workers registered by then
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def synchronous():
    """The in-process synchronous scheduler, even while the module's client exists."""
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def binary_data():
    rng = np.random.default_rng(7)
    prototypes = rng.random((4, 64)) < 0.5
    X = prototypes[rng.integers(0, 4, 500)] ^ (rng.random((500, 64)) < 0.1)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def bernoulli(binary_data):
    return BernoulliRBM(24, n_iter=3, learning_rate=0.05, random_state=0, n_jobs=1).fit(binary_data)


@pytest.fixture(scope="module")
def gaussian(binary_data):
    X = binary_data.astype(np.float64) * 2.0 + np.random.default_rng(1).normal(0, 0.3, binary_data.shape)
    return GaussianBernoulliRBM(16, n_iter=2, random_state=1, n_jobs=1).fit(X), X


def _copies_of_model(collection, model):
    """How many values of the graph carry the model's weights (pickled, whatever the graph format)."""
    signature = model.components_.tobytes()
    return sum(signature in cloudpickle.dumps(value) for value in dict(collection.__dask_graph__()).values())


# --------------------------------------------------------------------------------------------
# Import behaviour
# --------------------------------------------------------------------------------------------


def test_import_leafrbm_does_not_import_dask_and_missing_dask_is_explained():
    script = textwrap.dedent(
        """
        import sys
        import leafrbm
        assert "dask" not in sys.modules, "import leafrbm imported dask"
        sys.modules["dask"] = None  # as if dask were not installed
        try:
            import leafrbm.dask
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("import leafrbm.dask succeeded without dask")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'pip install "leafrbm[dask]"' in result.stdout


# --------------------------------------------------------------------------------------------
# Distributed inference
# --------------------------------------------------------------------------------------------


def test_distributed_transform_equals_in_memory(client, bernoulli, binary_data):
    # Uneven row chunks and split features: the features are merged into whole rows and the
    # row boundaries (120, 320, 400) moved to the kernels' 64-row tiles (128, 320; 400 would
    # leave a last block under 128 rows).
    X = da.from_array(binary_data, chunks=((120, 200, 80, 100), (40, 24)))
    codes = ld.transform(bernoulli, X)
    assert codes.shape == (500, 24) and codes.dtype == np.float32
    assert codes.chunks == ((128, 192, 180), (24,))
    assert type(codes._meta) is np.ndarray and codes._meta.dtype == np.float32
    computed = codes.compute()
    assert computed.dtype == np.float32
    assert_array_equal(computed, bernoulli.transform(binary_data))


def test_distributed_reconstruct_equals_in_memory(client, bernoulli, gaussian, binary_data):
    X = da.from_array(binary_data, chunks=(125, 64))
    assert_array_equal(ld.reconstruct(bernoulli, X).compute(), bernoulli.reconstruct(binary_data))
    model, X_real = gaussian
    Xg = da.from_array(X_real, chunks=(100, 32))
    codes, recon = dask.compute(ld.transform(model, Xg), ld.reconstruct(model, Xg))
    assert codes.dtype == recon.dtype == np.float64
    assert_array_equal(codes, model.transform(X_real))
    assert_array_equal(recon, model.reconstruct(X_real))


def test_model_is_scattered_once_to_every_worker(client, bernoulli, binary_data):
    rows = np.resize(binary_data, (20 * 128, 64))
    X = da.from_array(rows, chunks=(128, 64))  # 20 blocks, aligned to the kernels' tiles
    codes = ld.transform(bernoulli, X)
    graph = dict(codes.__dask_graph__())
    # No copy of the weights in the graph: every block refers to one scattered future,
    # which was broadcast to both workers before the graph ran.
    assert _copies_of_model(codes, bernoulli) == 0
    block_tasks = [value for key, value in graph.items() if key[0] == codes.name]
    assert len(block_tasks) == 20
    model_keys = {dep for task in block_tasks for dep in task.dependencies if "BernoulliRBM" in str(dep)}
    assert len(model_keys) == 1
    (model_key,) = model_keys
    assert len(client.who_has()[model_key]) == 2
    assert_array_equal(codes.compute(), bernoulli.transform(rows))


def test_model_is_one_graph_key_without_a_client(synchronous, bernoulli, binary_data):
    rows = np.resize(binary_data, (20 * 128, 64))
    X = da.from_array(rows, chunks=(128, 64))
    codes = ld.transform(bernoulli, X)
    graph = dict(codes.__dask_graph__())
    assert _copies_of_model(codes, bernoulli) == 1
    (model_key,) = [key for key in graph if _copies_of_model_value(graph[key], bernoulli)]
    block_tasks = [value for key, value in graph.items() if key[0] == codes.name]
    assert len(block_tasks) == 20
    assert all(model_key in task.dependencies for task in block_tasks)
    assert_array_equal(codes.compute(), bernoulli.transform(rows))


def _copies_of_model_value(value, model):
    return model.components_.tobytes() in cloudpickle.dumps(value)


def test_result_uses_the_model_as_it_was_at_the_call(synchronous, binary_data):
    model = BernoulliRBM(8, random_state=0, n_jobs=1).fit(binary_data)
    expected = model.transform(binary_data)
    codes = ld.transform(model, da.from_array(binary_data, chunks=(256, 64)))
    model.partial_fit(binary_data[:50])  # changes the weights in place
    assert_array_equal(codes.compute(), expected)


def test_synchronous_transform_and_reconstruct(synchronous, gaussian):
    model, X_real = gaussian
    X = da.from_array(X_real.astype(np.float32), chunks=(64, 64))
    codes = ld.transform(model, X)
    # The output dtype is the model's (float64), whatever the input's.
    assert codes.dtype == np.float64 and codes.chunks[1] == (16,)
    assert_array_equal(codes.compute(), model.transform(X_real.astype(np.float32)))
    assert_array_equal(ld.reconstruct(model, X).compute(), model.reconstruct(X_real.astype(np.float32)))


class _TwoLayerStack:
    """A model with a DBN's interface (``depth=``), built from two fitted RBMs."""

    def __init__(self, first, second):
        self.layers = [first, second]

    def transform(self, X, depth=None):
        for layer in self.layers[: depth or len(self.layers)]:
            X = layer.transform(X)
        return X

    def reconstruct(self, X, depth=None):
        layers = self.layers[: depth or len(self.layers)]
        H = self.transform(X, depth=len(layers))
        for layer in reversed(layers):
            H = layer.inverse_transform(H)
        return H


def test_keyword_arguments_reach_the_model(synchronous, bernoulli, binary_data):
    top = BernoulliRBM(8, n_iter=2, random_state=3, n_jobs=1).fit(bernoulli.transform(binary_data))
    stack = _TwoLayerStack(bernoulli, top)
    X = da.from_array(binary_data, chunks=(100, 64))
    for depth in (1, 2):
        codes = ld.transform(stack, X, depth=depth)
        assert codes.shape == (500, (24, 8)[depth - 1])
        assert_array_equal(codes.compute(), stack.transform(binary_data, depth=depth))
        assert_array_equal(ld.reconstruct(stack, X, depth=depth).compute(),
                           stack.reconstruct(binary_data, depth=depth))


def test_dbn_depth(client, binary_data):
    leafrbm = pytest.importorskip("leafrbm")
    if not hasattr(leafrbm, "DBN"):
        pytest.skip("leafrbm.DBN is not on this branch")
    dbn = leafrbm.DBN(hidden_layer_sizes=(24, 8), n_iter=2, random_state=0, n_jobs=1).fit(binary_data)
    X = da.from_array(binary_data, chunks=(100, 64))
    for depth in (1, 2):
        assert_array_equal(ld.transform(dbn, X, depth=depth).compute(),
                           dbn.transform(binary_data, depth=depth))
        assert_array_equal(ld.reconstruct(dbn, X, depth=depth).compute(),
                           dbn.reconstruct(binary_data, depth=depth))


# --------------------------------------------------------------------------------------------
# Inpainting
# --------------------------------------------------------------------------------------------


def _fake_occlusion():
    """A stand-in for leafrbm.occlusion whose fill is a pure function of (X, mask, random_state)."""

    def inpaint(model, X, mask, random_state=None, n_steps=200):
        noise = np.random.default_rng(random_state).random(X.shape).astype(np.float32) * n_steps
        return np.where(mask, X, noise).astype(np.float32)

    return types.SimpleNamespace(inpaint=inpaint)


def test_inpaint_seeds_depend_on_block_index_only(monkeypatch, synchronous, bernoulli, binary_data):
    import leafrbm

    fake = _fake_occlusion()
    monkeypatch.setitem(sys.modules, "leafrbm.occlusion", fake)
    monkeypatch.setattr(leafrbm, "occlusion", fake, raising=False)
    mask = np.random.default_rng(2).random(binary_data.shape) < 0.5
    X = da.from_array(binary_data, chunks=(150, 64))
    filled = ld.inpaint(bernoulli, X, da.from_array(mask, chunks=(50, 32)), random_state=11, n_steps=3)
    assert filled.chunks == X.chunks and filled.dtype == np.float32
    base = seed_from_random_state(11)
    expected = np.concatenate([
        fake.inpaint(bernoulli, binary_data[s:s + 150], mask[s:s + 150],
                     random_state=ld._block_seed(base, i), n_steps=3)
        for i, s in enumerate(range(0, 500, 150))
    ])
    assert_array_equal(filled.compute(), expected)
    # Blocks computed one by one, last first, give the same numbers: no dependence on order.
    reversed_blocks = [filled.blocks[i].compute() for i in reversed(range(filled.numblocks[0]))]
    assert_array_equal(np.concatenate(reversed_blocks[::-1]), expected)
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        ld.inpaint(bernoulli, X, mask.astype(np.uint8))
    with pytest.raises(ValueError, match=r"mask must have the shape of X \(500, 64\), got \(499, 64\)"):
        ld.inpaint(bernoulli, X, mask[:499])
    with pytest.raises(TypeError, match="mask must be a dask array or a numpy array"):
        ld.inpaint(bernoulli, X, mask.tolist())
    # Different blocks get different seeds; the same random_state gives the same result.
    assert len({ld._block_seed(base, i) for i in range(1000)}) == 1000
    again = ld.inpaint(bernoulli, X, mask, random_state=11, n_steps=3).compute(scheduler="threads")
    assert_array_equal(again, expected)


def test_distributed_inpaint_equals_per_block_inpaint(client, bernoulli, binary_data):
    occlusion = pytest.importorskip("leafrbm.occlusion")
    mask = np.random.default_rng(3).random(binary_data.shape) < 0.6
    X = da.from_array(binary_data, chunks=(200, 64))
    filled = ld.inpaint(bernoulli, X, mask, random_state=5, n_steps=20).compute()
    base = seed_from_random_state(5)
    expected = np.concatenate([
        occlusion.inpaint(bernoulli, binary_data[s:s + 200], mask[s:s + 200],
                          random_state=ld._block_seed(base, i), n_steps=20)
        for i, s in enumerate(range(0, 500, 200))
    ])
    assert_array_equal(filled, expected)
    assert_array_equal(filled[mask], binary_data[mask])


# --------------------------------------------------------------------------------------------
# Out-of-core training
# --------------------------------------------------------------------------------------------


def _rbm(seed=4):
    return BernoulliRBM(16, batch_size=10, learning_rate=0.05, random_state=seed, n_jobs=1)


def test_partial_fit_over_chunks_equals_sequential(client, binary_data):
    chunks = (130, 70, 200, 100)
    X = da.from_array(binary_data, chunks=(chunks, 32))
    streamed = ld.partial_fit(_rbm(), X, n_epochs=2)
    sequential = _rbm()
    for _ in range(2):
        start = 0
        for size in chunks:
            sequential.partial_fit(binary_data[start:start + size])
            start += size
    assert_array_equal(streamed.components_, sequential.components_)
    assert_array_equal(streamed.intercept_hidden_, sequential.intercept_hidden_)
    assert_array_equal(streamed.intercept_visible_, sequential.intercept_visible_)
    assert streamed.n_batches_seen_ == sequential.n_batches_seen_


def test_partial_fit_batches_span_chunks(client, binary_data):
    # Batches of 10 consecutive rows whatever the chunks (33 does not divide them): one
    # minibatch update per call, as scikit-learn's partial_fit, independent of the chunking.
    by_33 = ld.partial_fit(_rbm(), da.from_array(binary_data, chunks=(33, 64)), batch_size=10)
    by_125 = ld.partial_fit(_rbm(), da.from_array(binary_data, chunks=(125, 64)), batch_size=10)
    sequential = _rbm()
    for start in range(0, 500, 10):
        sequential.partial_fit(binary_data[start:start + 10])
    assert_array_equal(by_33.components_, sequential.components_)
    assert_array_equal(by_125.components_, sequential.components_)
    # A batch size that leaves a short last batch.
    short = ld.partial_fit(_rbm(), da.from_array(binary_data, chunks=(64, 64)), batch_size=45)
    sequential = _rbm()
    for start in range(0, 500, 45):
        sequential.partial_fit(binary_data[start:start + 45])
    assert_array_equal(short.components_, sequential.components_)


def test_partial_fit_computes_one_chunk_at_a_time(synchronous, binary_data):
    """Out of core: each block is computed on its own, in order, never the whole array."""
    computed = []

    def record(block, block_info=None):
        computed.append(block_info[0]["chunk-location"][0])
        return block

    X = da.from_array(binary_data, chunks=(100, 64)).map_blocks(record, dtype=np.float32)
    seen_sizes = []

    class Recording(BernoulliRBM):
        def partial_fit(self, X, y=None):
            seen_sizes.append(len(X))
            return super().partial_fit(X)

    ld.partial_fit(Recording(16, random_state=0, n_jobs=1), X)
    assert computed == [0, 1, 2, 3, 4]
    assert seen_sizes == [100] * 5


def test_partial_fit_second_layer_on_codes(client, bernoulli, binary_data):
    """A second layer trained out of core on the codes of the first, computed on the workers."""
    codes = ld.transform(bernoulli, da.from_array(binary_data, chunks=(100, 64)))
    streamed = ld.partial_fit(BernoulliRBM(8, random_state=9, n_jobs=1), codes)
    in_memory = bernoulli.transform(binary_data)
    sequential = BernoulliRBM(8, random_state=9, n_jobs=1)
    start = 0
    for size in codes.chunks[0]:
        sequential.partial_fit(in_memory[start:start + size])
        start += size
    assert_array_equal(streamed.components_, sequential.components_)


# --------------------------------------------------------------------------------------------
# Lazy image loading
# --------------------------------------------------------------------------------------------


def _save_shape(path, rows, cols, canvas=(100, 90), at=(10, 20), invert=False, rgb=False):
    image = np.zeros(canvas, dtype=np.uint8)
    image[at[0]:at[0] + rows, at[1]:at[1] + cols] = 255
    if invert:
        image = 255 - image
    picture = Image.fromarray(image)
    if rgb:
        picture = picture.convert("RGB")
    picture.save(path)


@pytest.fixture
def image_folder(tmp_path):
    # A 32 x 16 white rectangle padded to 32 x 32 and halved: columns 4..12 of 16 are white.
    _save_shape(tmp_path / "1.png", 32, 16)
    _save_shape(tmp_path / "2.png", 32, 16, invert=True, at=(50, 5))  # dark leaf on white
    _save_shape(tmp_path / "10.png", 16, 32, rgb=True)  # wide: rows 4..12 white
    for i in range(3, 7):
        _save_shape(tmp_path / f"{i}.png", 10 + 6 * i, 8 + 5 * i, at=(i, 2 * i))
    # An anti-aliased ellipse, dark on light paper, with a speck of dust: where the eager
    # loader's leaf box (connected regions, faint edges) matters.
    big = Image.new("L", (360, 320), 0)
    ImageDraw.Draw(big).ellipse((60, 40, 250, 300), fill=255)
    scan = 230 - np.asarray(big.reduce(4), dtype=np.int32) * 180 // 255
    scan[5, 70] = 40
    Image.fromarray(scan.astype(np.uint8)).save(tmp_path / "7.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_lazy_loading_equals_eager_loading(client, image_folder):
    images = ld.load_leaf_images_dask(image_folder, size=16, chunk_size=3)
    assert images.shape == (8, 16, 16) and images.dtype == np.uint8
    assert images.chunks[0] == (3, 3, 2)
    computed = images.compute()
    # Natural order: 1, 2, 3, ..., 7, 10.
    expected_tall = np.zeros((16, 16), dtype=np.uint8)
    expected_tall[:, 4:12] = 255
    assert_array_equal(computed[0], expected_tall)
    assert_array_equal(computed[1], expected_tall)
    assert_array_equal(computed[7], expected_tall.T)
    names = ["1", "2", "3", "4", "5", "6", "7", "10"]
    eager = np.stack([ld._read_leaf_file(image_folder / f"{name}.png", 16) for name in names])
    assert_array_equal(computed, eager)
    try:
        from leafrbm.datasets import load_leaf_images
    except ImportError:
        return
    assert_array_equal(computed, load_leaf_images(image_folder, size=16))


def test_lazy_loading_reads_files_at_compute_time(synchronous, image_folder):
    images = ld.load_leaf_images_dask(image_folder, size=16, chunk_size=4)
    assert len(dict(images.__dask_graph__())) >= 2  # one reading task per chunk of files
    _save_shape(image_folder / "1.png", 16, 32)  # replaced after the array was built
    assert_array_equal(images[0].compute(), images[7].compute())
    (image_folder / "3.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="3.png"):
        images.compute()


def test_images_to_codes_out_of_core(synchronous, image_folder):
    """Folder → lazy images → streamed training → lazy codes, equal to the same steps in memory."""
    images = ld.load_leaf_images_dask(image_folder, size=16, chunk_size=3)
    X = images.reshape(len(images), -1) / 255.0
    model = ld.partial_fit(GaussianBernoulliRBM(4, batch_size=2, random_state=0, n_jobs=1), X)
    pixels = images.compute().reshape(8, -1) / 255.0
    reference = GaussianBernoulliRBM(4, batch_size=2, random_state=0, n_jobs=1)
    for start in (0, 3, 6):
        reference.partial_fit(pixels[start:start + 3])
    assert_array_equal(model.components_, reference.components_)
    assert_array_equal(model.mean_, pixels[:3].mean(axis=0))  # standardised by the first chunk
    assert_array_equal(ld.transform(model, X).compute(), reference.transform(pixels))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_clear_errors(synchronous, bernoulli, binary_data, tmp_path):
    X = da.from_array(binary_data, chunks=(100, 64))
    with pytest.raises(TypeError, match="X must be a dask array, got a numpy.ndarray"):
        ld.transform(bernoulli, binary_data)
    with pytest.raises(TypeError, match="dask array"):
        ld.partial_fit(_rbm(), binary_data)
    with pytest.raises(NotFittedError):
        ld.transform(BernoulliRBM(4), X)
    with pytest.raises(NotFittedError):
        ld.reconstruct(BernoulliRBM(4), X)
    with pytest.raises(ValueError, match=r"X must be 2-D, got shape \(500, 8, 8\).*reshape"):
        ld.transform(bernoulli, X.reshape(500, 8, 8))
    with pytest.raises(ValueError, match="64 features"):  # the model's own message, raised now
        ld.transform(bernoulli, X[:, :10])
    with pytest.raises(TypeError, match="transform"):
        ld.transform(object(), X)
    with pytest.raises(TypeError, match="partial_fit"):
        ld.partial_fit(object(), X)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        ld.partial_fit(_rbm(), X, batch_size=0)
    with pytest.raises(ValueError, match="n_epochs must be >= 1, got 0"):
        ld.partial_fit(_rbm(), X, n_epochs=0)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        ld.transform(bernoulli, X[X[:, 0] > 0.5])
    with pytest.raises(ValueError, match="not a folder"):
        ld.load_leaf_images_dask(tmp_path / "missing")
    with pytest.raises(ValueError, match="no image files"):
        ld.load_leaf_images_dask(tmp_path)
    with pytest.raises(ValueError, match="size must be >= 8, got 4"):
        ld.load_leaf_images_dask(tmp_path, size=4)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        ld.load_leaf_images_dask(tmp_path, chunk_size=0)
    with pytest.raises(TypeError, match="path must be a str"):
        ld.load_leaf_images_dask(3)
