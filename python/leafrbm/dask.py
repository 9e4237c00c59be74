"""Dask integration: encode, reconstruct and inpaint dask arrays; train out of core; load images lazily.

Install with ``pip install "leafrbm[dask]"`` (``dask[distributed]``). The same code runs on the
local threaded scheduler, on a ``distributed.LocalCluster`` and on a real cluster
(``Client("tcp://scheduler:8786")``, dask-jobqueue, Kubernetes): only the client changes.

- :func:`transform`, :func:`reconstruct`, :func:`inpaint`: one task per block of rows
  (``map_blocks``); the model is sent to the workers once (a single graph key referenced by every
  block, or ``client.scatter(model, broadcast=True)`` when a distributed client is active), never
  once per block.
- :func:`partial_fit`: streams the chunks of a dask array in order through ``model.partial_fit``,
  one chunk in memory at a time (plus one being loaded): out-of-core training of an RBM, or of
  one layer of a DBN on the codes of the layers below.
- :func:`load_leaf_images_dask`: a lazy ``N x size x size`` uint8 array over a folder of images,
  one task per chunk of files.

``import leafrbm`` never imports dask; only ``import leafrbm.dask`` does.
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
from pathlib import Path

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as error:  # pragma: no cover - exercised only without dask
    raise ImportError(
        'leafrbm.dask needs dask; install it with: pip install "leafrbm[dask]" '
        f"(dask[distributed] >= 2023.1). The import failed with: {error}"
    ) from error

from ._validation import check_int, seed_from_random_state

__all__ = ["transform", "reconstruct", "inpaint", "partial_fit", "load_leaf_images_dask"]


# --------------------------------------------------------------------------------------------
# Checks shared by the functions
# --------------------------------------------------------------------------------------------


def _check_dask_array(name, X, ndim=2):
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{name} must be a dask array, got a {type(X).__module__}.{type(X).__name__}; "
            f"wrap in-memory data with dask.array.from_array({name}, chunks=(rows_per_block, -1)) "
            f"or call the model's own method"
        )
    if X.ndim != ndim:
        hint = f" (images: {name}.reshape(len({name}), -1))" if X.ndim == 3 else ""
        raise ValueError(f"{name} must be {ndim}-D, got shape {X.shape}{hint}")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes {X.chunks[0]}; call {name}.compute_chunk_sizes() first"
        )
    return X


def _check_model(model, method):
    if not callable(getattr(model, method, None)):
        raise TypeError(f"model must have a {method}() method, got a {type(model).__name__}")
    try:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model)
    except TypeError:  # not a scikit-learn estimator: let its own method complain
        pass


def _whole_rows(X):
    """X with one chunk along the features: a block then holds whole rows, as the models need."""
    return X if X.numblocks[1] == 1 else X.rechunk({1: -1})


# The compiled kernels cut a product of m rows into tiles of 64 rows from row 0 when m >= 128
# (else into tiles of output columns): GemmTiling::for_shape in cpp/include/leafrbm/parallel.hpp.
# A row's result depends on its tile (BLAS takes other code paths for other tile heights), so a
# block gives the numbers of one in-memory call only if its tiles are the whole array's tiles.
_ROW_TILE = 64
_MIN_TILED_ROWS = 2 * _ROW_TILE


def _tile_aligned_chunks(row_chunks):
    """Row chunks near the given ones whose boundaries are multiples of 64 and sizes at least 128.

    Encoding blocks with these chunks gives bit-for-bit the numbers of encoding the whole array
    in one call. Boundaries move by at most 32 rows; a chunk that would be under 128 rows is
    merged with its neighbour.
    """
    n_rows = int(sum(row_chunks))
    if n_rows < _MIN_TILED_ROWS:
        return (n_rows,)
    edges = [0]
    for boundary in np.cumsum(row_chunks)[:-1]:
        aligned = int(round(boundary / _ROW_TILE)) * _ROW_TILE
        if aligned - edges[-1] >= _MIN_TILED_ROWS and n_rows - aligned >= _MIN_TILED_ROWS:
            edges.append(aligned)
    edges.append(n_rows)
    return tuple(int(size) for size in np.diff(edges))


def _encoding_blocks(X):
    """X as blocks of whole rows aligned to the kernels' row tiles (rechunked only if needed)."""
    rows = _tile_aligned_chunks(X.chunks[0])
    if rows == X.chunks[0] and X.numblocks[1] == 1:
        return X
    return X.rechunk((rows, (X.shape[1],)))


def _active_client():
    """The distributed client that will run the graph, or None (local schedulers, no client)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:  # no client
        return None
    if getattr(client, "asynchronous", False) or dask.base.get_scheduler() != client.get:
        return None
    return client


def _model_reference(model):
    """One reference to the model shared by every block: a scattered future or a delayed key.

    With a distributed client the model is scattered to every worker at once (broadcast);
    otherwise a copy of it is one literal key of the graph, which the scheduler ships to each
    worker once. Either way the graph holds a single copy, however many blocks there are.
    """
    client = _active_client()
    if client is not None:
        return client.scatter(model, broadcast=True, hash=False)
    # A snapshot, as the scattered copy is: the result does not change if the model does later.
    return dask.delayed(copy.deepcopy(model), pure=False)


def _probe(model, method, n_features, dtype, kwargs):
    """Output width and dtype of ``model.<method>`` from one row of zeros (checks the kwargs now)."""
    row = np.zeros((1, n_features), dtype=dtype)
    out = np.asarray(getattr(model, method)(row, **kwargs))
    if out.ndim != 2 or out.shape[0] != 1:
        raise ValueError(f"model.{method}() returned shape {out.shape} for one row; expected (1, n_outputs)")
    return out.shape[1], out.dtype


def _apply_block(block, model, method, n_outputs, dtype, kwargs):
    if block.shape[0] == 0:
        return np.empty((0, n_outputs), dtype=dtype)
    return np.asarray(getattr(model, method)(block, **kwargs), dtype=dtype)


def _map_method(model, X, method, kwargs):
    _check_model(model, method)
    X = _encoding_blocks(_check_dask_array("X", X))
    n_outputs, dtype = _probe(model, method, X.shape[1], X.dtype, kwargs)
    reference = _model_reference(model)
    return X.map_blocks(
        _apply_block, reference, method, n_outputs, dtype, kwargs,
        dtype=dtype, chunks=(X.chunks[0], (n_outputs,)), meta=np.empty((0, n_outputs), dtype=dtype),
        name=f"leafrbm-{method}-" + dask.base.tokenize(X, reference, method, kwargs),
    )


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


def transform(model, X, **kwargs):
    """Encode a dask array block by block: ``model.transform`` on each block of rows.

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM, DBN, or any object with ``transform``
    X : dask array of shape (n_samples, n_features)
        Any numeric dtype the model accepts (uint8 pixels scaled beforehand, e.g. ``X / 255``).
    **kwargs
        Passed to ``model.transform`` (``depth=`` for a DBN).

    Returns
    -------
    codes : dask array of shape (n_samples, n_outputs)
        The model's dtype. Lazy: nothing runs until ``compute()`` / ``persist()``.
        Bit-for-bit equal to ``model.transform`` of the whole array in memory.

    Raises
    ------
    TypeError
        If X is not a dask array or the model has no ``transform``.
    sklearn.exceptions.NotFittedError
        If the model is not fitted (raised now, not at compute time).
    ValueError
        If X does not suit the model (its number of features, say): raised now, from one row.

    Notes
    -----
    Chunks along the features are merged (a block holds whole rows), and the row chunks are
    moved by at most 32 rows so that their boundaries fall on multiples of 64 and no block has
    fewer than 128 rows: the compiled kernels tile the rows of a product that way, and aligned
    blocks make the result independent of the chunking and of the cluster. The output has
    these row chunks. Give X such chunks (multiples of 64 rows, a last chunk of at least 128)
    and nothing moves.

    With a distributed client active, the model is scattered to every worker now
    (``client.scatter(model, broadcast=True)``) and the result must be computed by that client;
    otherwise the model is one key of the graph. Later changes to the model do not reach the
    result: it encodes with the model as it was at this call.
    """
    return _map_method(model, X, "transform", kwargs)


def reconstruct(model, X, **kwargs):
    """Reconstruct a dask array block by block: ``model.reconstruct`` on each block of rows.

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM, DBN, or any object with ``reconstruct``
    X : dask array of shape (n_samples, n_features)
    **kwargs
        Passed to ``model.reconstruct`` (``depth=`` for a DBN).

    Returns
    -------
    X_reconstructed : dask array of shape (n_samples, n_features), the model's dtype.
        Bit-for-bit equal to ``model.reconstruct`` of the whole array in memory (the row
        chunks are aligned as in :func:`transform`).
    """
    return _map_method(model, X, "reconstruct", kwargs)


def _block_seed(base_seed, block_index):
    """A seed for one block, from the base seed and the block's index only (not from scheduling)."""
    sequence = np.random.SeedSequence([base_seed & (2**64 - 1), int(block_index)])
    state = sequence.generate_state(2, dtype=np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def _inpaint_block(block, mask, model, base_seed, n_features, dtype, kwargs, block_id=None):
    from .occlusion import inpaint as inpaint_rows

    if block.shape[0] == 0:
        return np.empty((0, n_features), dtype=dtype)
    seed = _block_seed(base_seed, block_id[0])
    return np.asarray(inpaint_rows(model, block, mask, random_state=seed, **kwargs), dtype=dtype)


def inpaint(model, X, mask, random_state=None, **kwargs):
    """Fill in the hidden pixels of a dask array block by block with :func:`leafrbm.occlusion.inpaint`.

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM or DBN
    X : dask array of shape (n_images, n_pixels)
    mask : dask array or ndarray of bool, shape (n_images, n_pixels)
        True where a pixel is observed. Rechunked like X.
    random_state : None, int, RandomState or Generator
        One base seed is drawn from it now; block ``i`` runs with a seed derived from
        (base seed, ``i``) alone, so the result does not depend on which worker runs which block
        or in what order. It does depend on the row chunks of ``X``.
    **kwargs
        Passed to :func:`leafrbm.occlusion.inpaint` (``n_steps``, ``method``, ``depth``).

    Returns
    -------
    filled : dask array of shape (n_images, n_pixels), the model's dtype, the row chunks of X.
        Observed pixels are those of X. Block ``i`` equals
        ``leafrbm.occlusion.inpaint(model, X_i, mask_i, random_state=<seed of block i>, ...)``.

    Raises
    ------
    ImportError
        If :mod:`leafrbm.occlusion` is not available.
    TypeError, ValueError
        For a bad mask (not boolean, not the shape of X) or bad keyword arguments: raised now.
    """
    from .occlusion import inpaint as inpaint_rows

    _check_model(model, "transform")
    X = _whole_rows(_check_dask_array("X", X))
    if not isinstance(mask, (np.ndarray, da.Array)):
        raise TypeError(f"mask must be a dask array or a numpy array of bool, got a {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (True where observed), got dtype {mask.dtype}")
    if mask.shape != X.shape:
        raise ValueError(f"mask must have the shape of X {X.shape}, got {mask.shape}")
    mask = da.from_array(mask, chunks=X.chunks) if isinstance(mask, np.ndarray) else mask.rechunk(X.chunks)
    base_seed = seed_from_random_state(random_state)
    # One observed row now: checks the keyword arguments and gives the output dtype.
    row = np.zeros((1, X.shape[1]), dtype=X.dtype)
    probe = inpaint_rows(model, row, np.ones(row.shape, dtype=bool), random_state=0, **kwargs)
    dtype = np.asarray(probe).dtype
    reference = _model_reference(model)
    return da.map_blocks(
        _inpaint_block, X, mask, reference, base_seed, X.shape[1], dtype, kwargs,
        dtype=dtype, chunks=X.chunks, meta=np.empty((0, X.shape[1]), dtype=dtype),
        name="leafrbm-inpaint-" + dask.base.tokenize(X, mask, reference, base_seed, kwargs),
    )


# --------------------------------------------------------------------------------------------
# Out-of-core training
# --------------------------------------------------------------------------------------------


def _batches(blocks, batch_size):
    """Consecutive batches of ``batch_size`` rows over a stream of blocks (the last may be shorter)."""
    pending = []
    n_pending = 0
    for block in blocks:
        if batch_size is None:
            if len(block):
                yield block
            continue
        pending.append(block)
        n_pending += len(block)
        if n_pending < batch_size:
            continue
        rows = np.concatenate(pending) if len(pending) > 1 else pending[0]
        n_full = (len(rows) // batch_size) * batch_size
        for start in range(0, n_full, batch_size):
            yield rows[start:start + batch_size]
        pending = [rows[n_full:]] if n_full < len(rows) else []
        n_pending = len(rows) - n_full
    if n_pending:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _computed_blocks(X):
    """The row blocks of X computed in order, the next one loading while the caller uses this one."""
    n_blocks = X.numblocks[0]
    if n_blocks == 0:
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="leafrbm-prefetch")
    try:
        loading = pool.submit(X.blocks[0].compute)
        for i in range(n_blocks):
            block = loading.result()
            if i + 1 < n_blocks:
                loading = pool.submit(X.blocks[i + 1].compute)
            yield np.asarray(block)
    finally:
        # On an error or Ctrl-C in the caller, do not wait for the block being loaded.
        pool.shutdown(wait=False, cancel_futures=True)


def partial_fit(model, X, batch_size=None, n_epochs=1):
    """Train a model on a dask array larger than memory: ``model.partial_fit`` over its chunks in order.

    The row blocks of X are computed one at a time (wherever the scheduler runs them: threads,
    processes, a cluster) and handed to ``model.partial_fit`` in this process; the next block
    is computed while the model trains on the current one. At most two blocks (plus one batch)
    are in memory, never the whole array.

    Parameters
    ----------
    model : BernoulliRBM, GaussianBernoulliRBM, or any object with ``partial_fit(X)``
        Fitted or not (the first call initialises it). To train layer ``k`` of a DBN out of core,
        pass that layer and the codes of the layers below: ``partial_fit(layer, transform(dbn, X,
        depth=k - 1))``.
    X : dask array of shape (n_samples, n_features)
        For a BernoulliRBM, values in [0, 1] (e.g. ``images.reshape(n, -1) / 255``).
    batch_size : int or None, default=None
        None: one ``partial_fit`` call per block of X (which for an RBM runs one epoch of its own
        minibatches over the block). An int: one call per ``batch_size`` consecutive rows of the
        whole stream (the last batch of an epoch may be shorter); with ``batch_size`` equal to the
        model's ``batch_size`` each call is one minibatch update, as in scikit-learn, and the
        result does not depend on the chunks of X.
    n_epochs : int, default=1
        Passes over X. Each pass recomputes the blocks from their source.

    Returns
    -------
    model : the model, trained in place.

    Notes
    -----
    The result is bit-identical to calling ``model.partial_fit`` on the same batches in the same
    order in one process: training is sequential by nature; Dask distributes the loading and
    preprocessing. A GaussianBernoulliRBM takes its standardisation (``mean_``, ``scale_``)
    from the first batch.
    """
    if not callable(getattr(model, "partial_fit", None)):
        raise TypeError(f"model must have a partial_fit() method, got a {type(model).__name__}")
    X = _whole_rows(_check_dask_array("X", X))
    batch_size = check_int("batch_size", batch_size, low=1, allow_none=True)
    n_epochs = check_int("n_epochs", n_epochs, low=1)
    if X.shape[0] == 0:
        raise ValueError(f"X has no rows (shape {X.shape})")
    for _ in range(n_epochs):
        for batch in _batches(_computed_blocks(X), batch_size):
            model.partial_fit(batch)
    return model


# --------------------------------------------------------------------------------------------
# Lazy image loading
# --------------------------------------------------------------------------------------------

def _image_files(folder):
    """The eager loader's file list and order, so that lazy equals eager."""
    from .datasets import IMAGE_EXTENSIONS, _natural_key

    return sorted(
        (f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda f: _natural_key(f.name),
    )


def _read_leaf_file(file, size):
    """One image file → uint8 ``size x size``, exactly as :func:`leafrbm.datasets.load_leaf_images`."""
    from .datasets import read_leaf_image

    return read_leaf_image(file, size)


def _read_leaf_files(files, size):
    """The images of ``files`` as one uint8 array (n_files, size, size): the work of one task."""
    return np.stack([_read_leaf_file(f, size) for f in files])


def load_leaf_images_dask(path, size=64, chunk_size=256):
    """A lazy dask array over a folder of leaf images: one task per ``chunk_size`` files.

    Parameters
    ----------
    path : str or path-like
        A folder of image files (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM; sub-folders and other
        files are ignored), read in natural sort order (``2.png`` before ``10.png``). The folder is
        listed now; the files are read when the array is computed, by whichever worker runs
        their chunk, so on a cluster the folder must be visible to the workers (a shared file
        system) at the same path.
    size : int, default=64
        Side of the output images (>= 8).
    chunk_size : int, default=256
        Images per chunk (per task).

    Returns
    -------
    images : dask array of uint8, shape (n_images, size, size)
        Leaf white on black, preprocessed as :func:`leafrbm.datasets.load_leaf_images` does
        (computed, equal to it), chunks of ``chunk_size`` images. Feed a model with
        ``images.reshape(len(images), -1) / 255``.

    Raises
    ------
    ValueError
        If the folder holds no image files (now), or a file cannot be read or holds no leaf
        (at compute time, naming the file).
    """
    size = check_int("size", size, low=8)
    chunk_size = check_int("chunk_size", chunk_size, low=1)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {path!r} ({type(path).__name__})")
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(
            f"path {str(folder)!r} is not a folder (load_leaf_images_dask reads folders of images)"
        )
    from .datasets import IMAGE_EXTENSIONS

    files = _image_files(folder)
    if not files:
        raise ValueError(
            f"no image files in folder {str(folder)!r} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    names = [str(f) for f in files]
    token = dask.base.tokenize(names, [f.stat().st_mtime_ns for f in files], size)
    chunks = []
    for index, start in enumerate(range(0, len(names), chunk_size)):
        part = names[start:start + chunk_size]
        read = dask.delayed(_read_leaf_files, pure=True)
        task = read(part, size, dask_key_name=f"leaf-images-{token}-{index}")
        chunks.append(da.from_delayed(task, shape=(len(part), size, size), dtype=np.uint8,
                                      meta=np.empty((0, size, size), dtype=np.uint8)))
    return da.concatenate(chunks, axis=0)
