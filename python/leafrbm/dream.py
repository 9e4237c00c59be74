"""Dreaming: a chain that runs on its own output, a xerox of a xerox.

Each step goes up through the network (sampling the hidden layers), back down, and feeds the
sampled image to the next step; the visible means of every ``keep_every``-th step are kept.
The whole chain is one call into the compiled core, which writes the frames into an array
allocated here.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core
from ._stack import model_layers, stack_arguments
from ._validation import check_bool, check_int, seed_from_random_state

__all__ = ["dream"]

_STREAMS = dict(_core.STREAMS)


def dream(model, X_or_n, n_steps=100, depth=None, keep_every=1, random_state=None, mean_field=False):
    """Let an RBM or a DBN dream: reconstruct, sample, reconstruct the sample, …

    Parameters
    ----------
    model : fitted BernoulliRBM, GaussianBernoulliRBM or DBN
    X_or_n : array-like of shape (n_images, n_features), or int
        Images to start from, or a number of chains started from noise drawn around the first
        layer's visible biases.
    n_steps : int, default=100
        Steps of the chain; each goes up through ``depth`` layers and back down.
    depth : int or None, default=None
        For a DBN, how many layers the dream goes through (None: all).
    keep_every : int, default=1
        Keep the frame of every ``keep_every``-th step.
    random_state : None, int, RandomState or Generator
        Seed of the chain (None: drawn from the first layer's random state).
    mean_field : bool, default=False
        Pass means instead of samples everywhere (up, down and back in): a deterministic dream
        that settles on a fixed point. By default every layer is sampled and the sampled image
        is fed back.

    Returns
    -------
    frames : ndarray of shape (n_steps // keep_every, n_images, n_features)
        Visible means (in the input's scale) after steps keep_every, 2·keep_every, …

    Examples
    --------
    >>> import numpy as np
    >>> from leafrbm import BernoulliRBM, dream
    >>> X = (np.random.default_rng(0).random((40, 9)) > 0.5).astype(np.float32)
    >>> rbm = BernoulliRBM(n_components=4, n_iter=2, random_state=0).fit(X)
    >>> dream(rbm, X[:3], n_steps=10, keep_every=5, random_state=0).shape
    (2, 3, 9)
    """
    layers = model_layers(model, depth)
    n_steps = check_int("n_steps", n_steps, low=0)
    keep_every = check_int("keep_every", keep_every, low=1)
    mean_field = check_bool("mean_field", mean_field)
    first = layers[0]
    seed = first._draw_seed() if random_state is None else seed_from_random_state(random_state)
    if isinstance(X_or_n, numbers.Integral) and not isinstance(X_or_n, (bool, np.bool_)):
        n_images = check_int("X_or_n", X_or_n, low=1)
        visible = first._initial_visible(n_images, seed)
    elif isinstance(X_or_n, (bool, np.bool_, numbers.Real, str, bytes)) or X_or_n is None:
        raise TypeError(f"X_or_n must be an array of images or a number of chains (int), got {X_or_n!r}")
    else:
        visible = np.array(first._kernel_input(X_or_n), copy=True, order="C")
    n_frames = n_steps // keep_every
    frames = np.empty((n_frames,) + visible.shape, dtype=visible.dtype)
    progress = np.zeros(1, dtype=np.int64)
    _core.stack_chain(*stack_arguments(layers), visible, n_steps, seed, _STREAMS["dream"], 0,
                      frames=frames, keep_every=keep_every, mean_field=mean_field,
                      n_threads=first._n_threads(), progress=progress)
    return first._visible_output(frames)
