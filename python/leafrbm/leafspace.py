"""Leaf space: a 2-D t-SNE map of a model's codes in which one can *imagine* leaves.

``LeafSpace(model).fit(images)`` encodes the images (a DBN at any depth, or a single RBM) and
maps the codes with t-SNE. ``imagine(xy)`` returns the leaf at any map position: the codes of
the nearest map points, weighted by the t-SNE kernel ``(1 + d²)^-1`` of their map distance,
averaged and passed down the network.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._validation import check_finite, check_int

__all__ = ["LeafSpace"]


def _as_rows(images):
    """N×S×S or N×F images (uint8 0-255, bool or float in [0, 1]) → float32 N×F in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images.reshape(images.shape[0], -1)
    if images.ndim != 2:
        raise ValueError(f"images must be N×S×S or N×F, got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.asarray(images, dtype=np.float32)


class LeafSpace(BaseEstimator):
    """A t-SNE map of a model's codes that decodes any map position into an image.

    Parameters
    ----------
    model : fitted leafrbm.DBN, BernoulliRBM or GaussianBernoulliRBM
        Encoder and decoder. A DBN is used at ``depth``; an RBM at its hidden layer.
    depth : int, optional
        Depth of the codes for a DBN (default: its top layer).
    tsne : estimator, optional
        A t-SNE estimator with ``fit_transform`` (default: ``leafrbm.TSNE(random_state=0)``).
    n_neighbors : int, default=10
        Map neighbours whose codes are blended by :meth:`imagine`.

    Attributes
    ----------
    codes_ : ndarray (n_images, n_codes)
    embedding_ : ndarray (n_images, 2)
    tsne_ : the fitted t-SNE estimator
    """

    def __init__(self, model, depth=None, tsne=None, n_neighbors=10):
        self.model = model
        self.depth = depth
        self.tsne = tsne
        self.n_neighbors = n_neighbors

    # -------------------------------------------------------------- encoder / decoder
    def _encode(self, X):
        if hasattr(self.model, "layers_"):
            return self.model.transform(X, depth=self.depth)
        return self.model.transform(X)

    def _decode(self, codes):
        if hasattr(self.model, "layers_"):
            return self.model.decode(codes, depth=self.depth)
        return self.model.inverse_transform(codes)

    def fit(self, images, y=None):
        """Encode ``images`` and map their codes to 2-D.

        Parameters
        ----------
        images : array of shape (n, S, S) or (n, S·S); uint8 (0-255) or float in [0, 1]
        """
        check_int("n_neighbors", self.n_neighbors, low=1)
        if self.depth is not None:
            check_int("depth", self.depth, low=1)
        X = _as_rows(images)
        if X.shape[0] < 2:
            raise ValueError(f"images must hold at least 2 images to map, got {X.shape[0]}")
        check_is_fitted(self.model)
        self.codes_ = np.asarray(self._encode(X), dtype=np.float32)
        tsne = self.tsne
        if tsne is None:
            from .tsne import TSNE

            tsne = TSNE(random_state=0, perplexity=min(30.0, (X.shape[0] - 1) / 3.0))
        self.tsne_ = tsne
        self.embedding_ = np.asarray(tsne.fit_transform(self.codes_), dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        from scipy.spatial import Delaunay

        self._tree = None  # built on first use (also after loading a saved map)
        try:
            self._hull = Delaunay(self.embedding_)
        except Exception:  # degenerate (collinear) maps: no interior
            self._hull = None
        return self

    def fit_transform(self, images, y=None):
        return self.fit(images).embedding_

    # -------------------------------------------------------------- imagination
    def outside(self, xy):
        """True for each map position outside the convex hull of the fitted map."""
        check_is_fitted(self, "embedding_")
        xy = self._check_positions(xy)
        if self._hull is None:
            return np.ones(len(xy), dtype=bool)
        return self._hull.find_simplex(xy) < 0

    def _check_positions(self, xy):
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim == 1:
            xy = xy[None, :]
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"xy must be map positions of shape (n, 2), got shape {xy.shape}")
        check_finite("xy", xy)
        return xy

    def imagine_codes(self, xy, exclude=None):
        """Codes at map positions ``xy``: kernel-weighted average of the nearest points' codes.

        ``exclude`` (int or array of ints, one per position) removes a fitted point from its
        own neighbourhood, for leave-one-out evaluation.
        """
        check_is_fitted(self, "embedding_")
        xy = self._check_positions(xy)
        k = min(self.n_neighbors, len(self.embedding_) - (exclude is not None))
        # A k-d tree over the map: memory O(n), not the O(queries × n) of all distances.
        if getattr(self, "_tree", None) is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.embedding_)
        d2, nearest = self._tree.query(xy, k=k + (exclude is not None))
        d2, nearest = np.square(d2).reshape(len(xy), -1), nearest.reshape(len(xy), -1)
        if exclude is not None:
            exclude = np.broadcast_to(np.asarray(exclude, dtype=np.int64), (len(xy),))
            # Drop the excluded point where it was found, else the farthest of the k + 1.
            drop = np.where((nearest == exclude[:, None]).any(axis=1),
                            np.argmax(nearest == exclude[:, None], axis=1), k)
            keep = np.ones_like(nearest, dtype=bool)
            keep[np.arange(len(xy)), drop] = False
            d2, nearest = d2[keep].reshape(len(xy), k), nearest[keep].reshape(len(xy), k)
        weights = 1.0 / (1.0 + d2)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkc->nc", weights, self.codes_[nearest]).astype(np.float32)

    def imagine(self, xy, exclude=None, return_outside=False):
        """The image(s) at map position(s) ``xy`` (shape (2,) or (n, 2)).

        Returns
        -------
        images : ndarray (n, n_features), float in [0, 1]
        outside : ndarray of bool (n,), only with ``return_outside=True``
            Positions outside the map's convex hull, where the image is an extrapolation.
        """
        images = np.asarray(self._decode(self.imagine_codes(xy, exclude=exclude)))
        if return_outside:
            return images, self.outside(xy)
        return images

    def imagine_grid(self, n=8, margin=0.0):
        """Images on an n×n grid spanning the map (row 0 at the top: largest y).

        Returns
        -------
        images : ndarray (n·n, n_features)
        xy : ndarray (n·n, 2), the grid positions
        outside : ndarray of bool (n·n,)
        """
        n = check_int("n", n, low=1)
        check_is_fitted(self, "embedding_")
        low, high = self.embedding_.min(0), self.embedding_.max(0)
        span = high - low
        low, high = low - margin * span, high + margin * span
        xs = np.linspace(low[0], high[0], n)
        ys = np.linspace(high[1], low[1], n)
        xy = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        images, outside = self.imagine(xy, return_outside=True)
        return images, xy, outside
