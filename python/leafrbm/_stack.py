"""Shared plumbing for code that runs chains through an RBM or the layers of a DBN (not public)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import check_int

__all__ = ["model_layers", "stack_arguments", "mean_field_reconstruct"]


def model_layers(model, depth=None, name="model"):
    """The fitted RBMs that make up ``model`` (an RBM: itself; a DBN: its first ``depth`` layers)."""
    from .dbn import DBN
    from .rbm import _BaseRBM

    if isinstance(model, DBN):
        check_is_fitted(model, "layers_")
        layers = list(model.layers_)
        depth = len(layers) if depth is None else check_int("depth", depth, low=1, high=len(layers))
        return layers[:depth]
    if isinstance(model, _BaseRBM):
        check_is_fitted(model)
        if depth is not None:
            check_int("depth", depth, low=1, high=1)
        return [model]
    raise TypeError(f"{name} must be a fitted leafrbm BernoulliRBM, GaussianBernoulliRBM or DBN, "
                    f"got {type(model).__name__}")


def stack_arguments(layers):
    """(weights, hidden_biases, visible_biases, gaussian) lists for ``_core.stack_chain``."""
    dtype = layers[0].components_.dtype
    weights = [np.ascontiguousarray(layer.components_, dtype=dtype) for layer in layers]
    hidden = [np.ascontiguousarray(layer.intercept_hidden_, dtype=dtype) for layer in layers]
    visible = [np.ascontiguousarray(layer.intercept_visible_, dtype=dtype) for layer in layers]
    return weights, hidden, visible, bool(layers[0]._gaussian)


def mean_field_reconstruct(layers, V):
    """Up through ``layers`` with P(h | ·), back down with E[· | h] (model space, no rescaling)."""
    H = V
    for layer in layers:
        H = layer._hidden_means(H)
    for layer in reversed(layers):
        H = layer._visible_means(H)
    return H
