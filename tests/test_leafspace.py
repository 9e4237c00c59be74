"""LeafSpace: encode, map, and imagine images at map positions."""

import numpy as np
import pytest
from sklearn.manifold import TSNE as SkTSNE

from leafrbm import BernoulliRBM
from leafrbm.leafspace import LeafSpace


@pytest.fixture(scope="module")
def space(binary_digits):
    X = binary_digits[:400]
    rbm = BernoulliRBM(n_components=64, n_iter=15, learning_rate=0.05, random_state=0).fit(X)
    tsne = SkTSNE(random_state=0, perplexity=20, init="pca")
    return LeafSpace(rbm, tsne=tsne).fit(X), X


def test_fit_encodes_and_maps(space):
    ls, X = space
    assert ls.codes_.shape == (len(X), 64)
    assert ls.embedding_.shape == (len(X), 2) and np.isfinite(ls.embedding_).all()
    np.testing.assert_allclose(ls.codes_, ls.model.transform(X), rtol=1e-6)


def test_leave_one_out_imagination_beats_the_mean_image(space):
    ls, X = space
    mean_image = X.mean(0)
    imagined = ls.imagine(ls.embedding_, exclude=np.arange(len(X)))
    err_imagined = ((imagined - X) ** 2).sum(1)
    err_mean = ((mean_image - X) ** 2).sum(1)
    assert err_imagined.mean() < 0.8 * err_mean.mean()
    assert (err_imagined < err_mean).mean() > 0.75


def test_imagine_is_the_weighted_code_average_passed_down(space):
    ls, X = space
    xy = ls.embedding_[:3] + 0.5
    d2 = ((xy[:, None] - ls.embedding_[None]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1)[:, : ls.n_neighbors]
    w = 1 / (1 + np.take_along_axis(d2, nearest, 1))
    w /= w.sum(1, keepdims=True)
    codes = (w[..., None] * ls.codes_[nearest]).sum(1)
    np.testing.assert_allclose(ls.imagine(xy), ls.model.inverse_transform(codes.astype(np.float32)), atol=1e-5)


def test_positions_outside_the_hull_are_flagged(space):
    ls, _ = space
    center = ls.embedding_.mean(0)
    far = ls.embedding_.max(0) + 100
    images, outside = ls.imagine(np.array([center, far]), return_outside=True)
    assert images.shape == (2, 64)
    assert outside.tolist() == [False, True]


def test_imagine_grid(space):
    ls, _ = space
    images, xy, outside = ls.imagine_grid(5)
    assert images.shape == (25, 64) and xy.shape == (25, 2) and outside.shape == (25,)
    assert xy[0, 1] > xy[-1, 1] and xy[0, 0] < xy[4, 0]  # row 0 at the top, left to right
    assert ((images >= 0) & (images <= 1)).all()


def test_bad_input(space):
    ls, X = space
    with pytest.raises(ValueError, match="xy"):
        ls.imagine(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="xy.*NaN"):
        ls.imagine(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="n_neighbors"):
        LeafSpace(ls.model, n_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="at least 2"):
        LeafSpace(ls.model).fit(X[:1])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LeafSpace(ls.model).imagine([0.0, 0.0])
    with pytest.raises(NotFittedError):
        LeafSpace(BernoulliRBM()).fit(X)
