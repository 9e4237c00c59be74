"""leafrbm.datasets: the procedural leaves, the image loaders and the conversions."""

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import ConvexHull
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from leafrbm.datasets import _normalise_leaf, binarize, load_leaf_images, make_leaves, to_unit


@pytest.fixture(scope="module")
def leaves():
    """The default data set: 100 species x 16 leaves, 64 x 64."""
    return make_leaves(random_state=0)


# ------------------------------------------------------------------ make_leaves


def test_shapes_dtypes_and_species_layout():
    images, species = make_leaves(n_species=5, n_per_species=3, size=32, random_state=1)
    assert images.shape == (15, 32, 32) and images.dtype == np.uint8
    assert species.dtype == np.int64
    np.testing.assert_array_equal(species, np.repeat(np.arange(5), 3))


def test_deterministic_given_seed():
    a, sa = make_leaves(n_species=6, n_per_species=4, size=48, random_state=7)
    b, sb = make_leaves(n_species=6, n_per_species=4, size=48, random_state=np.random.RandomState(7))
    c, _ = make_leaves(n_species=6, n_per_species=4, size=48, random_state=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    assert (a != c).any(axis=(1, 2)).all()


def test_accepts_a_generator():
    a, _ = make_leaves(n_species=3, n_per_species=2, size=32, random_state=np.random.default_rng(3))
    b, _ = make_leaves(n_species=3, n_per_species=2, size=32, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_polarity_framing_and_antialiasing(leaves):
    images, _ = leaves
    # Black background: the leaf spans at most 94 % of the frame, so a 1-pixel border stays black.
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert border.max() == 0
    area = (images >= 128).mean(axis=(1, 2))
    assert area.min() > 0.03 and area.max() < 0.8
    assert 0.12 < area.mean() < 0.4  # the real Kaggle leaves cover 34 % of their frame
    # Every leaf has a solid white core and anti-aliased grey edges.
    assert (images == 255).any(axis=(1, 2)).all()
    assert ((images > 0) & (images < 255)).any(axis=(1, 2)).all()
    # The longer side of every leaf spans 80-94 % of the frame (+/- the anti-aliased pixel).
    rows = (images > 0).any(axis=2)
    cols = (images > 0).any(axis=1)
    extent = np.maximum(rows.sum(axis=1), cols.sum(axis=1)) / images.shape[1]
    assert extent.min() >= 0.78 and extent.max() <= 0.97


def test_species_are_told_apart_by_knn_on_pixels(leaves):
    # 1-NN on raw pixels, 4-fold CV: measured 0.78, 0.71, 0.77 for seeds 0, 1, 2; chance is 0.01.
    images, species = leaves
    scores = cross_val_score(
        KNeighborsClassifier(n_neighbors=1), to_unit(images), species,
        cv=StratifiedKFold(4, shuffle=True, random_state=0),
    )
    assert scores.mean() > 0.6


def test_individuals_vary_within_species(leaves):
    images, species = leaves
    X = to_unit(images).reshape(100, 16, -1)
    within = X.var(axis=1).mean(axis=1)
    assert (within > 0).all()
    # no two leaves are the same picture
    assert len(np.unique(images.reshape(len(images), -1), axis=0)) == len(images)
    # ... yet a leaf is nearer its own species' mean leaf than other species' (measured: 75-78 %)
    means = X.mean(axis=1)
    flat = X.reshape(1600, -1)
    d = (flat**2).sum(1)[:, None] - 2.0 * flat @ means.T + (means**2).sum(1)[None, :]
    assert (d.argmin(axis=1) == species).mean() > 0.7
    assert d[np.arange(1600), species].mean() < 0.5 * d.mean()


def test_species_have_lobes_and_not_only_blobs(leaves):
    # Solidity = leaf area / convex hull area: about 1 for entire leaves, well below for lobed ones.
    images, species = leaves
    firsts = images[np.searchsorted(species, np.arange(100))]
    solidity = []
    for image in firsts:
        points = np.argwhere(image >= 128).astype(float)
        solidity.append(len(points) / ConvexHull(points).volume)
    solidity = np.array(solidity)
    # measured for seeds 0, 1, 2: 23-27 % of species below 0.8, 53-58 % above 0.9
    assert (solidity < 0.8).mean() > 0.12  # deeply lobed species
    assert (solidity > 0.9).mean() > 0.3  # entire (unlobed) species


def test_same_species_shape_whatever_n_per_species():
    # Species parameters are drawn before leaf parameters, so a species keeps its shape.
    train, y_train = make_leaves(n_species=20, n_per_species=6, size=32, random_state=5)
    test, y_test = make_leaves(n_species=20, n_per_species=3, size=32, random_state=5)
    model = KNeighborsClassifier(n_neighbors=1).fit(to_unit(train), y_train)
    assert model.score(to_unit(test), y_test) > 0.6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_species": 0}, ValueError, "n_species"),
        ({"n_per_species": -1}, ValueError, "n_per_species"),
        ({"size": 4}, ValueError, "size"),
        ({"n_species": 2.5}, TypeError, "n_species"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_make_leaves_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_leaves(**kwargs)


# ------------------------------------------------------------------ load_leaf_images


def _upscaled(image, factor=3):
    return Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def five_leaves():
    images, _ = make_leaves(n_species=5, n_per_species=1, size=64, random_state=3)
    return images


@pytest.fixture
def leaf_folder(tmp_path, five_leaves):
    """Five leaves in several encodings, a non-image file, and the expected load order."""
    leaves = five_leaves
    Image.fromarray(leaves[0]).save(tmp_path / "2.png")  # plain grey PNG
    inverted = _upscaled(255 - leaves[1]).convert("RGB")  # dark leaf on white paper, RGB JPEG
    inverted.save(tmp_path / "10.jpg", quality=92)
    rgba = Image.new("RGBA", (64, 64), (30, 120, 40, 0))  # a cut-out: the alpha is the silhouette
    rgba.putalpha(Image.fromarray(leaves[2]))
    rgba.save(tmp_path / "1.png")
    Image.fromarray(leaves[3]).save(tmp_path / "a_leaf.bmp")
    Image.fromarray(leaves[4]).save(tmp_path / "b_leaf.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._1.png").write_bytes(b"macOS metadata, hidden: ignored")
    order = ["1.png", "2.png", "10.jpg", "a_leaf.bmp", "b_leaf.gif"]
    originals = leaves[[2, 0, 1, 3, 4]]
    return tmp_path, order, originals


def _normalised(images, size=64):
    """The loader's own normalisation of clean pictures: the reference the other encodings must match."""
    return np.stack([_normalise_leaf(image.astype(np.float64), size, "test") for image in images])


def test_loader_reads_every_format_in_natural_order(leaf_folder):
    folder, order, originals = leaf_folder
    images = load_leaf_images(folder)
    assert images.shape == (5, 64, 64) and images.dtype == np.uint8
    expected = _normalised(originals)
    diff = np.abs(images.astype(float) - expected).mean(axis=(1, 2)) / 255
    # lossless copies are identical; the inverted, upscaled JPEG differs only at the edges
    np.testing.assert_array_equal(images[[0, 1, 3, 4]], expected[[0, 1, 3, 4]])
    assert diff[2] < 0.02
    iou = ((images[2] >= 128) & (expected[2] >= 128)).sum() / ((images[2] >= 128) | (expected[2] >= 128)).sum()
    assert iou > 0.95


def test_loader_reads_16_bit_and_tiff(tmp_path, five_leaves):
    leaf = five_leaves[0]
    Image.fromarray(leaf.astype(np.uint16) * 257).save(tmp_path / "a16.png")  # 16-bit grey PNG
    Image.fromarray(leaf).save(tmp_path / "b.tif")
    images = load_leaf_images(tmp_path)
    np.testing.assert_array_equal(images[0], _normalised(leaf[None])[0])
    np.testing.assert_array_equal(images[1], _normalised(leaf[None])[0])


def test_loader_crops_pads_and_resizes(tmp_path):
    # A 30 x 10 white bar off-centre in a 100 x 80 black picture -> a centred bar spanning the height.
    picture = np.zeros((100, 80), dtype=np.uint8)
    picture[20:50, 5:15] = 255
    Image.fromarray(picture).save(tmp_path / "bar.png")
    image = load_leaf_images(tmp_path, size=30)[0]
    expected = np.zeros((30, 30), dtype=np.uint8)
    expected[:, 10:20] = 255
    np.testing.assert_array_equal(image, expected)
    # enlarging works too
    assert load_leaf_images(tmp_path, size=90).shape == (1, 90, 90)


def test_loader_real_leaf_npz_is_a_fixed_point(shared_data):
    # The shared leaves were made with the same crop/pad/area-resize: loading them changes nothing
    # but for rounding of the centring offset in a handful of thin leaves.
    stored = np.load(shared_data / "leaves" / "leaves64.npz")
    images, labels = load_leaf_images(shared_data / "leaves" / "leaves64.npz")
    np.testing.assert_array_equal(labels, stored["species"])
    same = (images == stored["images"]).all(axis=(1, 2))
    assert same.mean() > 0.99
    iou = ((images >= 128) & (stored["images"] >= 128)).sum(axis=(1, 2)) / (
        (images >= 128) | (stored["images"] >= 128)).sum(axis=(1, 2))
    assert iou.min() > 0.5 and iou.mean() > 0.999


def test_loader_real_leaf_folder_with_csv_labels(shared_data):
    folder = shared_data / "leaves"
    images, labels = load_leaf_images(folder / "images", labels=folder / "labels.csv")
    from_npz, npz_labels = load_leaf_images(folder / "leaves64.npz")
    np.testing.assert_array_equal(images, from_npz)  # 1.png ... 1584.png in natural order
    np.testing.assert_array_equal(labels, npz_labels)
    assert (labels != "").sum() == 990
    small = load_leaf_images(folder / "leaves64.npz", size=32)[0]
    assert small.shape == (1584, 32, 32)


def test_unreadable_file_raises_or_is_skipped(leaf_folder):
    folder, order, _ = leaf_folder
    clean = load_leaf_images(folder)
    (folder / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    with pytest.raises(ValueError, match=r"5\.png"):
        load_leaf_images(folder)
    with pytest.warns(RuntimeWarning, match=r"5\.png"):
        images = load_leaf_images(folder, on_error="skip")
    np.testing.assert_array_equal(images, clean)


def test_blank_picture_holds_no_leaf(tmp_path):
    Image.new("L", (40, 40), 200).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match=r"blank\.png.*no leaf"):
        load_leaf_images(tmp_path)
    with pytest.warns(RuntimeWarning, match="blank"), pytest.raises(ValueError, match="no readable"):
        load_leaf_images(tmp_path, on_error="skip")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_leaf_images(tmp_path / "nowhere")
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no image files"):
        load_leaf_images(tmp_path)
    with pytest.raises(ValueError, match="neither a folder"):
        load_leaf_images(tmp_path / "readme.txt")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"size": 2}, ValueError, "size"), ({"on_error": "ignore"}, ValueError, "on_error"),
     ({"labels": 3}, TypeError, "labels")],
)
def test_loader_bad_arguments(leaf_folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_leaf_images(leaf_folder[0], **kwargs)
    with pytest.raises(TypeError, match="path"):
        load_leaf_images(None)


def test_csv_labels_by_name_or_stem_with_header(leaf_folder):
    folder, order, _ = leaf_folder
    csv = folder / "labels.csv"
    csv.write_text("file,species\n1,3\n2.png,1\n10.jpg,4\na_leaf,1\nb_leaf.gif,0\nextra.png,9\n")
    images, labels = load_leaf_images(folder, labels=csv)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [3, 1, 4, 1, 0])
    csv.write_text("1.png,Acer\n2.png,Quercus\n10.jpg,\na_leaf.bmp,Acer\nb_leaf.gif,Ilex\n")
    _, labels = load_leaf_images(folder, labels=csv)
    np.testing.assert_array_equal(labels, ["Acer", "Quercus", "", "Acer", "Ilex"])


def test_csv_labels_missing_rows_are_an_error(leaf_folder):
    folder, _, _ = leaf_folder
    csv = folder / "labels.csv"
    csv.write_text("1.png,0\n2.png,1\n")
    with pytest.raises(ValueError, match=r"no row for 3 image\(s\): 10\.jpg"):
        load_leaf_images(folder, labels=csv)
    with pytest.raises(ValueError, match="cannot be read"):
        load_leaf_images(folder, labels=folder / "absent.csv")


def test_npz_layouts(tmp_path, five_leaves):
    expected = _normalised(five_leaves, size=32)
    np.savez(tmp_path / "a.npz", images=five_leaves, labels=np.arange(5))
    images, labels = load_leaf_images(tmp_path / "a.npz", size=32)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, np.arange(5))
    # generic key, flattened float rows in [0, 1], no labels
    np.savez(tmp_path / "b.npz", X=five_leaves.reshape(5, -1) / 255.0)
    images = load_leaf_images(tmp_path / "b.npz", size=32)
    assert isinstance(images, np.ndarray)
    assert np.abs(images.astype(int) - expected).max() <= 1
    np.savez(tmp_path / "c.npz", pictures=five_leaves)
    with pytest.raises(ValueError, match="no 'images' or 'X'"):
        load_leaf_images(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 10)))
    with pytest.raises(ValueError, match="not square"):
        load_leaf_images(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", images=five_leaves, y=np.arange(4))
    with pytest.raises(ValueError, match="'y'.*shape"):
        load_leaf_images(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="labels="):
        load_leaf_images(tmp_path / "a.npz", labels=tmp_path / "labels.csv")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"broken\.npz"):
        load_leaf_images(tmp_path / "broken.npz")


# ------------------------------------------------------------------ conversions


def test_to_unit_and_binarize():
    images = np.array([[[0, 255], [128, 64]]], dtype=np.uint8)
    unit = to_unit(images)
    assert unit.dtype == np.float32 and unit.shape == (1, 4)
    np.testing.assert_allclose(unit, [[0.0, 1.0, 128 / 255, 64 / 255]], rtol=1e-6)
    np.testing.assert_array_equal(binarize(images), [[0, 1, 1, 0]])
    np.testing.assert_array_equal(binarize(images, threshold=0.6), [[0, 1, 0, 0]])
    np.testing.assert_array_equal(to_unit(unit), unit)  # floats in [0, 1] pass through
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_unit(np.array([[0.5, 2.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_unit(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        to_unit(np.zeros(4))
    with pytest.raises(ValueError, match="threshold"):
        binarize(images, threshold=1.5)
