"""Occluded images and how an RBM or a DBN fills them in.

Masks are boolean arrays of shape (n_images, n_pixels) that are **True where a pixel is
observed** and False where it is hidden (occluded). Images are rows of ``n_pixels = height·width``
values (row-major), with their ``image_shape = (height, width)`` given where it matters.

``inpaint(..., method="clamped")`` runs a Gibbs chain (for a DBN: up through the layers, one
Gibbs step at the top, down) that re-imposes the observed pixels after every step; the whole
chain is one call into the compiled core. ``method="naive"`` reconstructs the occluded image
once. ``occlusion_experiment`` compares both with two baselines on the hidden pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter

from . import _core
from ._stack import mean_field_reconstruct, model_layers, stack_arguments
from ._validation import (
    check_choice,
    check_float,
    check_int,
    check_random_state,
    seed_from_random_state,
)

__all__ = [
    "rectangle",
    "half",
    "random_pixels",
    "blobs",
    "make_masks",
    "inpaint",
    "occlusion_experiment",
    "OcclusionTable",
]

_STREAMS = dict(_core.STREAMS)
MASK_KINDS = ("rectangle", "half", "random_pixels", "blobs")


def _check_shape(n_images, image_shape):
    n_images = check_int("n_images", n_images, low=1)
    if not hasattr(image_shape, "__len__") or len(image_shape) != 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    height = check_int("image_shape[0]", image_shape[0], low=1)
    width = check_int("image_shape[1]", image_shape[1], low=1)
    return n_images, height, width


def _generator(random_state):
    return np.random.default_rng(seed_from_random_state(random_state))


def rectangle(n_images, image_shape, fraction=0.25, random_state=None):
    """Hide one axis-aligned rectangle per image covering about ``fraction`` of it.

    The rectangle has the image's aspect ratio and a uniformly random position.

    Returns
    -------
    mask : ndarray of bool, shape (n_images, height·width), True where observed.
    """
    n_images, height, width = _check_shape(n_images, image_shape)
    fraction = check_float("fraction", fraction, low=0.0, high=1.0)
    rng = _generator(random_state)
    box_h = int(min(height, round(height * np.sqrt(fraction))))
    box_w = int(min(width, round(width * np.sqrt(fraction))))
    top = rng.integers(0, height - box_h + 1, n_images)
    left = rng.integers(0, width - box_w + 1, n_images)
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    hidden = ((rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None]))
    return ~hidden.reshape(n_images, height * width)


def half(n_images, image_shape, fraction=0.5, side="random", random_state=None):
    """Hide a band along one side (left, right, top or bottom) covering ``fraction`` of the image.

    Parameters
    ----------
    side : {"random", "left", "right", "top", "bottom"}, default="random"
        "random" picks a side per image.

    Returns
    -------
    mask : ndarray of bool, shape (n_images, height·width), True where observed.
    """
    n_images, height, width = _check_shape(n_images, image_shape)
    fraction = check_float("fraction", fraction, low=0.0, high=1.0)
    check_choice("side", side, {"random", "left", "right", "top", "bottom"})
    sides = np.array(["left", "right", "top", "bottom"])
    if side == "random":
        chosen = sides[_generator(random_state).integers(0, 4, n_images)]
    else:
        chosen = np.full(n_images, side)
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    band_w, band_h = int(round(width * fraction)), int(round(height * fraction))
    hidden = np.zeros((n_images, height, width), dtype=bool)
    for name, region in (("left", cols < band_w), ("right", cols >= width - band_w),
                         ("top", rows < band_h), ("bottom", rows >= height - band_h)):
        hidden |= (chosen == name)[:, None, None] & region
    return ~hidden.reshape(n_images, height * width)


def random_pixels(n_images, image_shape, fraction=0.5, random_state=None):
    """Hide exactly round(fraction · n_pixels) pixels per image, chosen uniformly at random.

    Returns
    -------
    mask : ndarray of bool, shape (n_images, height·width), True where observed.
    """
    n_images, height, width = _check_shape(n_images, image_shape)
    fraction = check_float("fraction", fraction, low=0.0, high=1.0)
    n_pixels = height * width
    ranks = np.argsort(_generator(random_state).random((n_images, n_pixels)), axis=1)
    return ranks >= int(round(fraction * n_pixels))


def blobs(n_images, image_shape, fraction=0.3, smoothness=None, random_state=None):
    """Hide random blobs covering exactly round(fraction · n_pixels) pixels per image.

    White noise is smoothed by a Gaussian of width ``smoothness`` pixels (default: 1/10 of
    the image side) and the highest ``fraction`` of each image is hidden.

    Returns
    -------
    mask : ndarray of bool, shape (n_images, height·width), True where observed.
    """
    n_images, height, width = _check_shape(n_images, image_shape)
    fraction = check_float("fraction", fraction, low=0.0, high=1.0)
    if smoothness is None:
        smoothness = max(1.0, min(height, width) / 10.0)
    smoothness = check_float("smoothness", smoothness, low=0.0, low_open=True)
    noise = _generator(random_state).standard_normal((n_images, height, width))
    field = gaussian_filter(noise, sigma=(0, smoothness, smoothness), mode="wrap").reshape(n_images, -1)
    order = np.argsort(-field, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(height * width)[None, :].repeat(n_images, 0), axis=1)
    return ranks >= int(round(fraction * height * width))


_MAKERS = {"rectangle": rectangle, "half": half, "random_pixels": random_pixels, "blobs": blobs}


def make_masks(kind, n_images, image_shape, fraction, random_state=None):
    """Masks of one kind ("rectangle", "half", "random_pixels" or "blobs"); True where observed."""
    check_choice("kind", kind, set(MASK_KINDS))
    return _MAKERS[kind](n_images, image_shape, fraction=fraction, random_state=random_state)


def _check_mask(mask, shape):
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (True where observed), got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"mask must have the shape of X {shape}, got {mask.shape}")
    return np.ascontiguousarray(mask)


def inpaint(model, X, mask, n_steps=200, method="clamped", depth=None, random_state=None, burn_in=None):
    """Fill in the hidden pixels of X with an RBM or a DBN.

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM or DBN
    X : array-like of shape (n_images, n_pixels)
        Images; only the observed pixels are read.
    mask : ndarray of bool, shape (n_images, n_pixels)
        True where a pixel is observed, False where it is to be filled in.
    n_steps : int, default=200
        Steps of the clamped chain (ignored by "naive").
    method : {"clamped", "naive"}, default="clamped"
        "clamped": a Gibbs chain through the network (up, one Gibbs step at the top, down) that
        re-imposes the observed pixels after every step; the result is the visible means averaged
        over the steps after ``burn_in`` (an estimate of the posterior mean of the hidden pixels). "naive": one mean-field reconstruction of the occluded image.
        Both start with the hidden pixels at the first layer's marginal means (sigmoid of the
        visible biases; the visible biases for Gaussian units).
    depth : int or None
        For a DBN, the layers the chain goes through (None: all).
    random_state : None, int, RandomState or Generator
    burn_in : int or None, default=None
        Steps discarded before averaging (None: the first half of the chain). ``n_steps - 1``
        returns the visible means of the last step alone.

    Returns
    -------
    filled : ndarray of shape (n_images, n_pixels), the model's dtype; observed pixels are
        exactly those of X.
    """
    layers = model_layers(model, depth)
    check_choice("method", method, {"clamped", "naive"})
    n_steps = check_int("n_steps", n_steps, low=1)
    burn_in = n_steps // 2 if burn_in is None else check_int("burn_in", burn_in, low=0, high=n_steps - 1)
    first = layers[0]
    V = first._kernel_input(X)
    mask = _check_mask(mask, V.shape)
    observed = np.ascontiguousarray(X if not hasattr(X, "toarray") else X.toarray(), dtype=V.dtype)
    start = first.intercept_visible_ if first._gaussian else 1.0 / (1.0 + np.exp(-first.intercept_visible_))
    state = np.ascontiguousarray(np.where(mask, V, start.astype(V.dtype)), dtype=V.dtype)
    if method == "naive":
        filled = mean_field_reconstruct(layers, state)
    else:
        seed = first._draw_seed() if random_state is None else seed_from_random_state(random_state)
        filled = np.empty_like(state)
        progress = np.zeros(1, dtype=np.int64)
        _core.stack_chain(*stack_arguments(layers), state, n_steps, seed, _STREAMS["inpaint"], 0,
                          clamp_mask=mask.view(np.uint8), final_means=filled, average_from=burn_in,
                          n_threads=first._n_threads(),
                          progress=progress)
    return np.where(mask, observed, first._visible_output(filled)).astype(V.dtype, copy=False)


@dataclasses.dataclass
class OcclusionTable:
    """Result of :func:`occlusion_experiment`: one row per (mask, fraction, method).

    Attributes
    ----------
    rows : list of dict
        Keys: ``mask``, ``fraction``, ``method``, ``mse`` and ``cross_entropy`` (means over the
        hidden pixels of all images), ``n_images``, ``n_hidden_pixels``.
    """

    rows: list

    def to_markdown(self, digits=4):
        """The table as GitHub-flavoured Markdown."""
        header = ["mask", "fraction", "method", "mse", "cross_entropy", "n_hidden_pixels"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row["mask"], f"{row['fraction']:.2f}", row["method"], f"{row['mse']:.{digits}f}",
                     f"{row['cross_entropy']:.{digits}f}", str(row["n_hidden_pixels"])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def best(self, mask, metric="mse"):
        """The method with the lowest ``metric`` for one mask kind."""
        candidates = [row for row in self.rows if row["mask"] == mask]
        return min(candidates, key=lambda row: row[metric])["method"]

    def __len__(self):
        return len(self.rows)


def _nearest_on_observed(X, mask, X_train):
    """For each row, the training row closest on that row's observed pixels (squared distance)."""
    weights = mask.astype(np.float64)
    Xd, T = X.astype(np.float64), X_train.astype(np.float64)
    distance = (weights * Xd * Xd).sum(1)[:, None] - 2.0 * (weights * Xd) @ T.T + weights @ (T * T).T
    return X_train[np.argmin(distance, axis=1)]


def _errors(prediction, X, mask):
    hidden = ~mask
    n_hidden = int(hidden.sum())
    truth = X.astype(np.float64)[hidden]
    guess = prediction.astype(np.float64)[hidden]
    mse = float(np.mean((guess - truth) ** 2)) if n_hidden else float("nan")
    if n_hidden and truth.min() >= 0.0 and truth.max() <= 1.0:
        p = np.clip(guess, 1e-6, 1.0 - 1e-6)
        cross_entropy = float(-np.mean(truth * np.log(p) + (1.0 - truth) * np.log1p(-p)))
    else:
        cross_entropy = float("nan")
    return mse, cross_entropy, n_hidden


def occlusion_experiment(model, X, masks=None, methods=("clamped", "naive"), X_train=None, image_shape=None,
                         n_steps=200, depth=None, random_state=None):
    """Fill in occluded images in several ways and score each on the hidden pixels.

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM or DBN
    X : array-like of shape (n_images, n_pixels)
        Test images (complete: the truth for the hidden pixels).
    masks : dict or sequence, default=None
        A dict ``{name: mask array}``, or a sequence of ``(kind, fraction)`` pairs made with
        :func:`make_masks` (needs ``image_shape``). None: rectangle 0.25, half 0.5,
        random_pixels 0.5, blobs 0.3.
    methods : sequence of {"clamped", "naive"}
    X_train : array-like of shape (n_train, n_pixels) or None
        Training images for the two baselines, "mean_image" (the mean training image) and
        "nearest_image" (the training image nearest on each image's observed pixels). Without it,
        the baselines are left out.
    image_shape : (height, width) or None
        Needed when masks are made here; default: square images.
    n_steps : int, default=200
    depth : int or None
    random_state : None, int, RandomState or Generator
        Seeds the masks and the chains.

    Returns
    -------
    OcclusionTable
    """
    layers = model_layers(model, depth)
    layers[0]._kernel_input(X)  # validates X against the model
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n_images, n_pixels), got shape {X.shape}")
    n_images, n_pixels = X.shape
    for method in methods:
        check_choice("methods", method, {"clamped", "naive"})
    rng = check_random_state(random_state)
    if masks is None:
        masks = [("rectangle", 0.25), ("half", 0.5), ("random_pixels", 0.5), ("blobs", 0.3)]
    if isinstance(masks, dict):
        named = [(name, float("nan"), _check_mask(mask, X.shape)) for name, mask in masks.items()]
    else:
        if image_shape is None:
            side = int(round(np.sqrt(n_pixels)))
            if side * side != n_pixels:
                raise ValueError(f"image_shape is needed: {n_pixels} pixels are not a square image")
            image_shape = (side, side)
        if image_shape[0] * image_shape[1] != n_pixels:
            raise ValueError(f"image_shape {tuple(image_shape)} does not match {n_pixels} pixels")
        named = []
        for kind, fraction in masks:
            seed = seed_from_random_state(rng)
            named.append((kind, float(fraction), make_masks(kind, n_images, image_shape, fraction, seed)))
    if X_train is not None:
        X_train = np.asarray(X_train, dtype=np.float64)
        if X_train.ndim != 2 or X_train.shape[1] != n_pixels:
            raise ValueError(f"X_train must have shape (n_train, {n_pixels}), got {X_train.shape}")
        mean_image = X_train.mean(axis=0)
    rows = []
    for name, fraction, mask in named:
        predictions = {}
        for method in methods:
            predictions[method] = inpaint(model, X, mask, n_steps=n_steps, method=method, depth=depth,
                                          random_state=seed_from_random_state(rng))
        if X_train is not None:
            predictions["mean_image"] = np.broadcast_to(mean_image, X.shape)
            predictions["nearest_image"] = _nearest_on_observed(X, mask, X_train)
        for method, prediction in predictions.items():
            mse, cross_entropy, n_hidden = _errors(prediction, X, mask)
            rows.append(dict(mask=name, fraction=fraction, method=method, mse=mse, cross_entropy=cross_entropy,
                             n_images=n_images, n_hidden_pixels=n_hidden))
    return OcclusionTable(rows)
