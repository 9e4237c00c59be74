"""leafrbm.viz: picture geometry, pixel placement, normalisation, GIF files and bad input."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from leafrbm import viz
from leafrbm.viz import (
    PALETTE,
    depth_grid,
    filters_image,
    imagined_grid,
    learning_curves,
    map_with_thumbnails,
    occlusion_panel,
    save_gif,
    save_tiles,
    scatter_frames,
    tile_images,
)


def _distinct(n, height, width):
    """n images, image k filled with level (k + 1) * 20 (uint8) and its top row white."""
    images = np.empty((n, height, width), dtype=np.uint8)
    images[:] = ((np.arange(n) + 1) * 20)[:, None, None]
    images[:, 0, :] = 255
    return images


def _cell(image, k, n_cols, height, width, padding, scale, top=0):
    """Pixels of tile k, following tile_images' documented placement."""
    x = scale * (padding + (k % n_cols) * (width + padding))
    y = top + scale * (padding + (k // n_cols) * (height + padding))
    return np.asarray(image)[y:y + height * scale, x:x + width * scale]


# ------------------------------------------------------------------ tiles


def test_tile_size_placement_and_orientation():
    images = _distinct(5, 8, 6)
    image = tile_images(images.reshape(5, -1), n_cols=3, padding=1, scale=2, image_shape=(8, 6))
    assert image.mode == "L"
    assert image.size == (2 * (3 * 7 + 1), 2 * (2 * 9 + 1))
    pixels = np.asarray(image)
    for k in range(5):
        expected = np.kron(images[k], np.ones((2, 2), dtype=np.uint8))  # NEAREST enlargement
        np.testing.assert_array_equal(_cell(image, k, 3, 8, 6, 1, 2), expected)
    np.testing.assert_array_equal(_cell(image, 5, 3, 8, 6, 1, 2), 128)  # unused cell: pad grey
    assert (pixels[:2] == 128).all() and (pixels[:, :2] == 128).all()  # outer padding


def test_tile_defaults_square_layout_and_dtypes_agree():
    images = _distinct(10, 4, 4)
    as_uint8 = tile_images(images)
    as_float = tile_images(images.astype(np.float64) / 255.0)
    as_rows = tile_images(images.reshape(10, 16))  # square rows: shape inferred
    assert as_uint8.size == (4 * 5 + 1, 3 * 5 + 1)  # ceil(sqrt(10)) = 4 columns, 3 rows
    np.testing.assert_array_equal(np.asarray(as_uint8), np.asarray(as_float))
    np.testing.assert_array_equal(np.asarray(as_uint8), np.asarray(as_rows))
    bools = tile_images(np.eye(4, dtype=bool)[None], padding=0)
    np.testing.assert_array_equal(np.asarray(bools), np.eye(4) * 255)


def test_save_tiles_round_trip(tmp_path):
    images = _distinct(4, 5, 5)
    image = save_tiles(images, tmp_path / "t.png", n_cols=2, scale=3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "t.png")), np.asarray(image))


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros(16), {}, "shape"),
        (np.zeros((2, 2, 2, 2)), {}, "shape"),
        (np.zeros((2, 10)), {}, "not square"),
        (np.zeros((2, 10)), {"image_shape": (3, 3)}, "needs 9"),
        (np.zeros((2, 4, 4)), {"image_shape": (2, 8)}, "image_shape"),
        (np.full((2, 4), np.nan), {}, "NaN"),
        (np.full((2, 4), 1.5), {}, r"\[0, 1\]"),
        (np.zeros((0, 4)), {}, "empty"),
        (np.zeros((2, 4)), {"scale": 0}, "scale"),
        (np.zeros((2, 4)), {"padding": -1}, "padding"),
        (np.zeros((2, 4)), {"image_shape": (2,)}, "image_shape"),
        (np.zeros((2, 4)), {"image_shape": (2.0, 2)}, "image_shape"),
        (np.zeros((2, 4)), {"image_shape": (0, 4)}, "image_shape"),
    ],
)
def test_tile_bad_input(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile_images(images, **kwargs)


def test_tile_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        tile_images(np.array([["a", "b"]]))


# ------------------------------------------------------------------ filters


def test_filters_are_normalised_symmetrically_around_zero():
    weights = np.zeros((3, 4))
    weights[0] = [-2.0, -1.0, 1.0, 2.0]  # symmetric: black, dark, light, white
    weights[1] = [0.0, 0.5, 1.0, 0.25]  # positive only: grey (0) up to white (max)
    image = filters_image(weights, (2, 2), n=2, n_cols=2, scale=1, padding=1)
    assert image.size == (2 * 3 + 1, 3 + 1)  # only n=2 filters
    first = _cell(image, 0, 2, 2, 2, 1, 1)
    second = _cell(image, 1, 2, 2, 2, 1, 1)
    np.testing.assert_array_equal(first, [[0, 64], [191, 255]])  # 0.5 + 0.5 * w / 2, rounded
    np.testing.assert_array_equal(second, [[128, 191], [255, 159]])
    # zero filter is uniform grey; padding is black
    zero = filters_image(np.zeros((1, 4)), (2, 2), scale=1)
    np.testing.assert_array_equal(_cell(zero, 0, 1, 2, 2, 1, 1), 128)
    assert np.asarray(zero)[0, 0] == 0


def test_filters_from_estimators_and_either_orientation():
    rng = np.random.RandomState(0)
    weights = rng.normal(size=(6, 12))
    reference = np.asarray(filters_image(weights, (3, 4)))
    np.testing.assert_array_equal(np.asarray(filters_image(weights.T, (3, 4))), reference)
    rbm = SimpleNamespace(components_=weights)
    np.testing.assert_array_equal(np.asarray(filters_image(rbm, (3, 4))), reference)
    dbn = SimpleNamespace(layers_=[rbm, SimpleNamespace(components_=np.zeros((2, 6)))])
    np.testing.assert_array_equal(np.asarray(filters_image(dbn, (3, 4))), reference)
    with pytest.raises(ValueError, match="do not match"):
        filters_image(weights, (5, 5))
    with pytest.raises(ValueError, match="NaN"):
        filters_image(np.full((2, 4), np.nan), (2, 2))
    with pytest.raises(ValueError, match="2-D"):
        filters_image(np.zeros(4), (2, 2))


# ------------------------------------------------------------------ captioned grids


def test_depth_grid_columns_and_captions():
    originals = _distinct(3, 6, 6)
    depth1 = 255 - originals
    depth2 = np.zeros_like(originals)
    image = depth_grid(originals.reshape(3, -1), [depth1.reshape(3, -1), depth2], (6, 6), scale=3, padding=1)
    width = 3 * (3 * 7 + 1)
    assert image.mode == "L" and image.width == width
    top = image.height - 3 * (3 * 7 + 1)  # the caption strip
    assert top >= 12
    for row in range(3):
        for col, source in enumerate((originals, depth1, depth2)):
            expected = np.kron(source[row], np.ones((3, 3), dtype=np.uint8))
            np.testing.assert_array_equal(_cell(image, row * 3 + col, 3, 6, 6, 1, 3, top=top), expected)
    strip = np.asarray(image)[:top]
    for col in range(3):  # some caption text above every column
        x0 = 3 * (1 + col * 7)
        assert strip[:, x0:x0 + 18].max() > 100


def test_depth_grid_bad_input():
    originals = np.zeros((3, 16))
    with pytest.raises(ValueError, match=r"reconstructions_by_depth\[1\] has 2 entries"):
        depth_grid(originals, [np.zeros((3, 16)), np.zeros((2, 16))])
    with pytest.raises(ValueError, match="empty"):
        depth_grid(originals, [])
    with pytest.raises(ValueError, match="labels has 3 captions for 2 columns"):
        depth_grid(originals, [originals], labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="NaN"):
        depth_grid(originals, [np.full((3, 16), np.nan)])


def test_occlusion_panel_paints_hidden_pixels():
    originals = _distinct(2, 4, 4)
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[:, :, 2:] = True
    occluded = np.where(masks, 0, originals).astype(np.uint8)
    filled = {"mean": np.full((2, 16), 0.5), "model": originals.reshape(2, 16)}
    image = occlusion_panel(originals, masks.reshape(2, 16), occluded, filled, (4, 4), scale=1, padding=1)
    assert image.mode == "RGB" and image.width == 4 * 5 + 1
    top = image.height - (2 * 5 + 1)
    pixels = np.asarray(image)
    for row in range(2):
        shown = _cell(pixels, row * 4 + 1, 4, 4, 4, 1, 1, top=top)
        np.testing.assert_array_equal(shown[:, 2:], np.broadcast_to([60, 110, 200], (4, 2, 3)))
        np.testing.assert_array_equal(shown[:, :2, 0], originals[row, :, :2])
        np.testing.assert_array_equal(_cell(pixels, row * 4, 4, 4, 4, 1, 1, top=top)[..., 1], originals[row])
        np.testing.assert_array_equal(_cell(pixels, row * 4 + 2, 4, 4, 4, 1, 1, top=top), 128)
        np.testing.assert_array_equal(_cell(pixels, row * 4 + 3, 4, 4, 4, 1, 1, top=top)[..., 2], originals[row])


def test_occlusion_panel_bad_input():
    originals = np.zeros((2, 16))
    masks = np.zeros((2, 16), dtype=bool)
    with pytest.raises(ValueError, match="masks has shape"):
        occlusion_panel(originals, masks[:1], originals, {"m": originals})
    with pytest.raises(ValueError, match="masks must be boolean"):
        occlusion_panel(originals, masks + 0.5, originals, {"m": originals})
    with pytest.raises(ValueError, match="occluded has 1 entries"):
        occlusion_panel(originals, masks, originals[:1], {"m": originals})
    with pytest.raises(ValueError, match="non-empty dict"):
        occlusion_panel(originals, masks, originals, {})
    with pytest.raises(ValueError, match=r"filled_by_method\['m'\] has 3 entries"):
        occlusion_panel(originals, masks, originals, {"m": np.zeros((3, 16))})


def test_imagined_grid_layouts_and_outside_flags():
    images = _distinct(6, 3, 3)
    image = imagined_grid(images.reshape(2, 3, 9), (3, 3), scale=1, padding=1)
    assert image.mode == "L" and image.size == (3 * 4 + 1, 2 * 4 + 1)
    for k in range(6):
        np.testing.assert_array_equal(_cell(image, k, 3, 3, 3, 1, 1), images[k])
    square = imagined_grid(_distinct(4, 3, 3).reshape(4, 9), scale=1)  # (R*C, D) with R = C = 2
    assert square.size == (2 * 4 + 1, 2 * 4 + 1)
    flags = np.zeros((2, 3), dtype=bool)
    flags[1, 2] = True
    coloured = np.asarray(imagined_grid(images.reshape(2, 3, 3, 3), scale=1, outside=flags)).astype(int)
    inside = _cell(coloured, 0, 3, 3, 3, 1, 1)
    assert (inside[..., 0] == inside[..., 1]).all()  # grey
    out = _cell(coloured, 5, 3, 3, 3, 1, 1)
    assert (out[..., 0] > out[..., 1]).all() and (out[..., 1] < images[5]).all()  # dimmed, red
    with pytest.raises(ValueError, match="not a square grid"):
        imagined_grid(np.zeros((5, 9)))
    with pytest.raises(ValueError, match="outside has shape"):
        imagined_grid(images.reshape(2, 3, 9), outside=np.zeros((3, 2), dtype=bool))


# ------------------------------------------------------------------ maps


def _canvas_xy(points, size, margin):
    """The documented placement formula, written out independently."""
    points = np.asarray(points, dtype=float)
    low, high = points.min(0), points.max(0)
    f = (size - 1 - 2 * margin) / (high - low).max()
    o = margin + 0.5 * ((size - 1 - 2 * margin) - (high - low) * f)
    return o[0] + (points[:, 0] - low[0]) * f, size - 1 - (o[1] + (points[:, 1] - low[1]) * f)


def test_map_thumbnails_land_at_scaled_positions():
    points = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [10.0, 5.0]])
    images = np.zeros((4, 16, 16))
    images[:, 4:12, 4:12] = 1.0  # an 8x8 white square in the middle of each 16x16 leaf
    image = map_with_thumbnails(points, images, size=200, thumb=16, labels=[0, 1, 2, 3], dots=False)
    assert image.mode == "RGB" and image.size == (200, 200)
    pixels = np.asarray(image).astype(int)
    xs, ys = _canvas_xy(points, 200, 16 / 2 + 2)
    np.testing.assert_allclose([xs.min(), xs.max()], [10, 189])  # x spans the canvas inside the margin
    np.testing.assert_allclose([ys.max() - ys.min()], [(189 - 10) / 2])  # equal scale: y range is half
    assert ys[0] > ys[2]  # y points up
    for i in range(4):
        x, y = int(round(xs[i])), int(round(ys[i]))
        np.testing.assert_array_equal(pixels[y - 1:y + 1, x - 1:x + 1], np.broadcast_to(PALETTE[i], (2, 2, 3)))
        # the thumbnail's black border stays transparent: white canvas around the painted square
        assert (pixels[y - 7, x - 7] == 255).all()
    painted = (pixels != 255).any(axis=2)
    assert painted.sum() == 4 * 8 * 8  # four 8x8 squares, nothing else


def test_map_thumbnails_never_overlap():
    rng = np.random.RandomState(0)
    points = rng.normal(size=(300, 2))
    positions = viz._canvas_positions(points, 400, 12)
    placed = viz._place_thumbnails(positions, 20, rng.permutation(300), None)
    assert 10 < len(placed) < 300
    p = positions[placed]
    close = (np.abs(p[:, None, 0] - p[None, :, 0]) < 20) & (np.abs(p[:, None, 1] - p[None, :, 1]) < 20)
    assert close.sum() == len(placed)  # only each square with itself
    # every point left out would have overlapped a placed one
    rest = np.setdiff1d(np.arange(300), placed)
    clash = (np.abs(positions[rest, None, :] - p[None, :, :]) < 20).all(axis=2)
    assert clash.any(axis=1).all()
    assert len(viz._place_thumbnails(positions, 20, np.arange(300), 5)) == 5


def test_map_identical_points_get_one_thumbnail_and_max_thumbs():
    images = np.ones((3, 4, 4))
    same = map_with_thumbnails(np.zeros((3, 2)), images, size=64, thumb=8, dots=False)
    painted = (np.asarray(same) != 255).any(axis=2)
    assert painted.sum() == 64  # one 8x8 thumbnail
    spread = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    none = map_with_thumbnails(spread, images, size=64, thumb=8, dots=False, max_thumbs=0)
    assert (np.asarray(none) == 255).all()
    dots = np.asarray(map_with_thumbnails(spread, images, size=64, thumb=8, max_thumbs=0))
    assert (dots != 255).any(axis=2).sum() == 3 * 21  # three discs of radius 2


def test_map_bad_input():
    images = np.zeros((3, 16))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        map_with_thumbnails(np.zeros((3, 3)), images)
    with pytest.raises(ValueError, match="NaN"):
        map_with_thumbnails(np.array([[0, 0], [1, np.nan], [2, 2]]), images)
    with pytest.raises(ValueError, match="images has 3 entries but embedding has 2"):
        map_with_thumbnails(np.zeros((2, 2)), images)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        map_with_thumbnails(np.zeros((3, 2)), images, labels=[0, 1])
    with pytest.raises(ValueError, match="thumb"):
        map_with_thumbnails(np.zeros((3, 2)), images, size=64, thumb=40)


def test_scatter_frames_share_axes():
    rng = np.random.RandomState(1)
    first = rng.normal(size=(20, 2))
    later = first * 3.0
    later[0] = first[0]  # point 0 does not move
    frames = scatter_frames([first, later], labels=np.arange(20) % 2, size=100, point_radius=1)
    assert len(frames) == 2 and all(f.size == (100, 100) and f.mode == "RGB" for f in frames)
    everything = np.concatenate([first, later])
    low, high = everything.min(0), everything.max(0)
    xy = viz._canvas_positions(first[:1], 100, 5, low, high)[0]
    x, y = int(round(xy[0])), int(round(xy[1]))
    for frame in frames:  # the point that stays put is drawn at the same pixel in both frames
        assert tuple(np.asarray(frame)[y, x]) == PALETTE[0]
    # the later (larger) map spans the canvas within the margin (5 px) along its longer axis,
    # the first one a third of that
    def extent(frame):
        painted = (np.asarray(frame) != 255).any(axis=2)
        rows, cols = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
        return max(rows[-1] - rows[0], cols[-1] - cols[0])

    assert extent(frames[1]) == 99 - 2 * 5 + 2  # centres 5..94, plus the dots' radius on both sides
    assert extent(frames[0]) < 0.4 * extent(frames[1])
    titled = scatter_frames([first, later], labels=np.arange(20) % 2, size=100, point_radius=1,
                            titles=["iteration 0", "iteration 50"])
    for plain, with_title in zip(frames, titled):
        differs = (np.asarray(plain) != np.asarray(with_title)).any(axis=2)
        assert differs.any() and np.flatnonzero(differs.any(axis=1)).max() < 20  # text in the top strip
    with pytest.raises(ValueError, match=r"embeddings_over_time\[1\] has 19 points"):
        scatter_frames([first, first[:19]])
    with pytest.raises(ValueError, match="titles has 1 entries for 2 frames"):
        scatter_frames([first, first], titles=["a"])
    with pytest.raises(ValueError, match="empty"):
        scatter_frames([])


# ------------------------------------------------------------------ GIFs and plots


def test_gif_frames_loop_and_durations(tmp_path):
    frames = [np.full((5, 7), k / 5.0) for k in range(5)]
    frames[2][0, 0] = 1.0
    path = save_gif(frames, tmp_path / "a.gif", duration_ms=[100, 120, 140, 160, 180], scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.is_animated
        assert gif.info["loop"] == 0
        assert gif.size == (14, 10)
        durations = []
        for k in range(5):
            gif.seek(k)
            durations.append(gif.info["duration"])
            grey = np.asarray(gif.convert("L"))
            expected = np.kron(np.rint(frames[k] * 255).astype(np.uint8), np.ones((2, 2), dtype=np.uint8))
            np.testing.assert_array_equal(grey, expected)  # grey frames are exact
        assert durations == [100, 120, 140, 160, 180]


def test_gif_of_colour_frames_shares_one_palette(tmp_path):
    points = [np.random.RandomState(t).normal(size=(30, 2)) for t in range(4)]
    frames = scatter_frames(points, labels=np.arange(30) % 5, size=64)
    save_gif(frames, tmp_path / "c.gif", duration_ms=50, loop=3)
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 3
        for k in range(4):
            gif.seek(k)
            rgb = np.asarray(gif.convert("RGB")).astype(int)
            assert np.abs(rgb - np.asarray(frames[k]).astype(int)).max() <= 24  # palette rounding


def test_gif_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        save_gif([], tmp_path / "x.gif")
    with pytest.raises(ValueError, match=r"frames\[1\] is 4x4 but frames\[0\] is 5x5"):
        save_gif([np.zeros((5, 5)), np.zeros((4, 4))], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="duration_ms"):
        save_gif([np.zeros((5, 5))], tmp_path / "x.gif", duration_ms=5)
    with pytest.raises(ValueError, match="duration_ms has 1 entries for 2 frames"):
        save_gif([np.zeros((5, 5)), np.ones((5, 5))], tmp_path / "x.gif", duration_ms=[100])
    with pytest.raises(ValueError, match=r"frames\[0\]"):
        save_gif([np.zeros((5, 5, 2))], tmp_path / "x.gif")
    with pytest.raises(ValueError, match="NaN"):
        save_gif([np.full((5, 5), np.nan)], tmp_path / "x.gif")


def test_learning_curves_writes_a_plot(tmp_path):
    history = {"reconstruction error": [0.3, 0.2, 0.15, 0.12], "pseudo-likelihood": [-90, -80, np.nan, -70]}
    path = learning_curves(history, tmp_path / "curves.png", title="RBM 1")
    with Image.open(path) as image:
        assert image.size == (2 * 420, 320)
        pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).mean() > 0.01  # axes, labels and lines are drawn
    with pytest.raises(ValueError, match="non-empty dict"):
        learning_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"history\['a'\]"):
        learning_curves({"a": [[1, 2], [3, 4]]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"history\['a'\]"):
        learning_curves({"a": ["x", "y"]}, tmp_path / "x.png")


def test_learning_curves_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install leafrbm\[plot\]"):
        learning_curves({"a": [1.0, 2.0]}, tmp_path / "x.png")


def test_viz_does_not_import_matplotlib_eagerly():
    import subprocess

    code = "import sys, leafrbm.viz; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_long_captions_are_shrunk_to_their_column():
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("L", (10, 10)))
    for width in (20, 60, 128):
        font, text = viz._fit_text(draw, "clamped Gibbs fill-in, DBN depth 3", width)
        assert draw.textlength(text, font=font) <= width
    font, text = viz._fit_text(draw, "depth 1", 128)
    assert text == "depth 1"  # short captions stay whole
    panel = occlusion_panel(np.zeros((1, 16)), np.zeros((1, 16), dtype=bool), np.zeros((1, 16)),
                            {"a method with a very long name indeed": np.zeros((1, 16))}, scale=2)
    assert panel.width == 2 * (3 * 5 + 1)
