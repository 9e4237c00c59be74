"""Pictures: tiles of leaves, first-layer filters, per-depth reconstructions, occlusion panels, the leaf
map drawn with thumbnails, the imagined grid, GIFs and learning curves.

Images go in as ``uint8`` (0-255) or floats in [0, 1], either ``(N, H, W)`` or ``(N, H*W)`` rows
(then ``image_shape=(H, W)``, or square images). Row 0 of an image is its top row. Pictures come
out as :class:`PIL.Image.Image` (grey ``"L"``, or ``"RGB"`` where colour carries meaning), scaled
up by an integer factor with nearest-neighbour sampling so that pixels stay sharp. Pillow draws
everything; matplotlib is needed only by :func:`learning_curves` (``pip install leafrbm[plot]``)
and is imported there, without touching pyplot's global state.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._validation import check_float, check_int, check_random_state

__all__ = [
    "tile_images",
    "save_tiles",
    "filters_image",
    "depth_grid",
    "occlusion_panel",
    "map_with_thumbnails",
    "imagined_grid",
    "save_gif",
    "scatter_frames",
    "learning_curves",
    "PALETTE",
]

#: Colours for labels (cycled): Tableau 20, strong and light tones alternating.
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)
_LEAF_GREEN = (38, 94, 40)
_CAPTION_BACKGROUND = 0
_CAPTION_TEXT = 235
_FONT_SIZE = 12


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_image_shape(image_shape):
    """(height, width) as two positive ints, or None."""
    if image_shape is None:
        return None
    values = tuple(image_shape) if isinstance(image_shape, (tuple, list, np.ndarray)) else ()
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                                   and v >= 1 for v in values):
        raise ValueError(f"image_shape must be (height, width), two positive ints; got {image_shape!r}")
    return int(values[0]), int(values[1])


def _as_images(images, image_shape=None, name="images"):
    """``images`` as float32 (N, H, W) in [0, 1]; uint8 / bool / float input, (N, H, W) or (N, H*W)."""
    shape = _check_image_shape(image_shape)
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.ndim == 2:
        n, d = array.shape
        if shape is None:
            side = math.isqrt(d)
            if side * side != d:
                raise ValueError(f"{name} has rows of {d} values, not square images: pass image_shape=(H, W)")
            shape = (side, side)
        if shape[0] * shape[1] != d:
            raise ValueError(f"{name} has rows of {d} values; image_shape {shape} needs {shape[0] * shape[1]}")
        array = array.reshape(n, *shape)
    elif array.ndim == 3:
        if shape is not None and array.shape[1:] != shape:
            raise ValueError(f"{name} holds {array.shape[1:]} images but image_shape is {shape}")
    else:
        raise ValueError(f"{name} must be N x H x W or N x (H*W), got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name} is empty")
    return _unit_values(array, name)


def _unit_values(array, name):
    """float32 in [0, 1] from uint8 (/255), bool, or floats already in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype.kind == "b":
        return array.astype(np.float32)
    array = array.astype(np.float32)
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    low, high = float(array.min()), float(array.max())
    if low < -1e-6 or high > 1.0 + 1e-6:
        raise ValueError(f"{name} must be uint8 or hold values in [0, 1], got min={low:g}, max={high:g}")
    return np.clip(array, 0.0, 1.0)


def _check_same_length(reference_name, n, **arrays):
    for name, array in arrays.items():
        if len(array) != n:
            raise ValueError(f"{name} has {len(array)} entries but {reference_name} has {n}")


def _check_scale(scale):
    return check_int("scale", scale, low=1)


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def _assemble(cells, padding, pad_value):
    """(rows, cols, H, W[, C]) float cells → one array with ``padding`` pixels around every cell."""
    n_rows, n_cols, height, width = cells.shape[:4]
    channels = cells.shape[4:]
    pad_value = np.asarray(pad_value, dtype=np.float32)
    grid = np.empty((n_rows, n_cols, height + padding, width + padding, *channels), dtype=np.float32)
    grid[...] = pad_value
    grid[:, :, :height, :width] = cells
    grid = np.moveaxis(grid, 2, 1).reshape(n_rows * (height + padding), n_cols * (width + padding), *channels)
    full = np.empty((grid.shape[0] + padding, grid.shape[1] + padding, *channels), dtype=np.float32)
    full[...] = pad_value
    full[padding:, padding:] = grid
    return full


def _to_image(array, scale):
    """float [0, 1] (H, W) or (H, W, 3) → PIL image enlarged ``scale`` times with NEAREST."""
    image = Image.fromarray(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def _fit_text(draw, text, width, size=_FONT_SIZE):
    """A font and a (possibly shortened) text that fit in ``width`` pixels."""
    font = _font(size)
    while draw.textlength(text, font=font) > width and size > 7:
        size -= 1
        font = _font(size)
    while draw.textlength(text, font=font) > width and len(text) > 1:
        text = text[:-2] + "…" if len(text) > 2 else text[:1]
    return font, text


def _with_captions(image, captions, cell_width, padding, scale):
    """Add a strip above ``image`` with one caption centred over each column of cells."""
    height = _FONT_SIZE + 8
    out = Image.new(image.mode, (image.width, image.height + height),
                    _CAPTION_BACKGROUND if image.mode == "L" else (_CAPTION_BACKGROUND,) * 3)
    out.paste(image, (0, height))
    draw = ImageDraw.Draw(out)
    fill = _CAPTION_TEXT if image.mode == "L" else (_CAPTION_TEXT,) * 3
    column = (cell_width + padding) * scale
    for j, caption in enumerate(captions):
        font, text = _fit_text(draw, str(caption), column - 2)
        left = padding * scale + j * column + (cell_width * scale - draw.textlength(text, font=font)) / 2
        draw.text((max(left, j * column), 3), text, fill=fill, font=font)
    return out


def tile_images(images, n_cols=None, padding=1, scale=1, image_shape=None, pad_value=0.5):
    """Lay images out in a grid, row by row.

    Parameters
    ----------
    images : array-like, shape (N, H, W) or (N, H*W)
        uint8 (0-255), bool, or floats in [0, 1].
    n_cols : int, optional
        Images per row; by default ``ceil(sqrt(N))``.
    padding : int, default=1
        Pixels (before scaling) between cells and around the grid, of grey ``pad_value``.
    scale : int, default=1
        Integer enlargement (nearest-neighbour).
    image_shape : (int, int), optional
        (H, W) of flat rows; needed unless the rows are square images.
    pad_value : float, default=0.5
        Grey level of the padding in [0, 1] (mid grey, so black backgrounds of neighbours stay apart).

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"``, ``scale * (n_cols * (W + padding) + padding)`` wide and
        ``scale * (n_rows * (H + padding) + padding)`` high. Image ``k`` has its top-left corner at
        ``x = scale * (padding + (k % n_cols) * (W + padding))``,
        ``y = scale * (padding + (k // n_cols) * (H + padding))``; unused cells are ``pad_value``.
    """
    stack = _as_images(images, image_shape)
    n = len(stack)
    n_cols = math.ceil(math.sqrt(n)) if n_cols is None else check_int("n_cols", n_cols, low=1)
    padding = check_int("padding", padding, low=0)
    scale = _check_scale(scale)
    pad_value = check_float("pad_value", pad_value, low=0.0, high=1.0)
    n_rows = math.ceil(n / n_cols)
    cells = np.full((n_rows * n_cols, *stack.shape[1:]), pad_value, dtype=np.float32)
    cells[:n] = stack
    return _to_image(_assemble(cells.reshape(n_rows, n_cols, *stack.shape[1:]), padding, pad_value), scale)


def save_tiles(images, path, **kwargs):
    """Write :func:`tile_images` of ``images`` (keyword arguments passed on) to ``path``; return the image."""
    image = tile_images(images, **kwargs)
    image.save(os.fspath(path))
    return image


def _first_layer_weights(rbm_or_weights):
    """(n_hidden, n_visible) weights from an RBM, a DBN (its first layer) or an array."""
    model = rbm_or_weights
    for attribute in ("layers_", "rbms_", "estimators_"):
        layers = getattr(model, attribute, None)
        if layers is not None and len(layers) and hasattr(layers[0], "components_"):
            model = layers[0]
            break
    weights = getattr(model, "components_", model)
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.dtype.kind not in "iuf":
        raise ValueError(
            f"rbm_or_weights must be a fitted RBM/DBN or a 2-D weight array, got {type(rbm_or_weights).__name__}"
            f" with weights of shape {weights.shape}"
        )
    return weights


def filters_image(rbm_or_weights, image_shape, n=100, n_cols=None, scale=2, padding=1):
    """The first ``n`` first-layer filters, each scaled symmetrically around 0: grey is 0,
    white the filter's largest positive weight, black its most negative (same magnitude).

    Parameters
    ----------
    rbm_or_weights : RBM, DBN or array-like
        An estimator with ``components_`` (shape (n_hidden, n_visible)), a DBN whose
        ``layers_`` / ``rbms_`` start with one, or the weight array itself in either orientation.
    image_shape : (int, int)
        (H, W) of the visible layer, H * W = n_visible.
    n : int, default=100
        Number of filters shown (at most n_hidden).
    n_cols, scale, padding
        As in :func:`tile_images`; padding is black.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"``.
    """
    shape = _check_image_shape(image_shape)
    if shape is None:
        raise ValueError("image_shape must be (height, width), got None")
    weights = _first_layer_weights(rbm_or_weights).astype(np.float64)
    n_visible = shape[0] * shape[1]
    if weights.shape[1] != n_visible:
        if weights.shape[0] != n_visible:
            raise ValueError(f"weights of shape {weights.shape} do not match image_shape {shape} ({n_visible} pixels)")
        weights = weights.T
    if not np.isfinite(weights).all():
        raise ValueError("rbm_or_weights has NaN or infinite weights")
    n = min(check_int("n", n, low=1), len(weights))
    filters = weights[:n]
    peak = np.abs(filters).max(axis=1, keepdims=True)
    peak[peak == 0.0] = 1.0
    unit = 0.5 + 0.5 * filters / peak
    return tile_images(unit.reshape(n, *shape), n_cols=n_cols, padding=padding, scale=scale, pad_value=0.0)


def _grid_image(columns, padding, scale, pad_value, captions):
    """Cells given column by column (each (N, H, W) or (N, H, W, 3)) → captioned grid image."""
    cells = np.stack(columns, axis=1)
    image = _to_image(_assemble(cells, padding, pad_value), scale)
    return _with_captions(image, captions, cells.shape[3], padding, scale)


def depth_grid(originals, reconstructions_by_depth, image_shape=None, labels=None, scale=2, padding=1):
    """Reconstructions side by side with the leaves they came from: one row per leaf, columns
    ``original, depth 1, ..., depth k``, each captioned.

    Parameters
    ----------
    originals : array-like, shape (N, H, W) or (N, H*W)
    reconstructions_by_depth : list of k arrays like ``originals``
        ``reconstructions_by_depth[j]`` went up ``j + 1`` layers and back down.
    image_shape : (int, int), optional
        (H, W) for flat rows.
    labels : list of k + 1 str, optional
        Column captions; default ``["original", "depth 1", ...]``.
    scale, padding
        As in :func:`tile_images`.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"``: a caption strip on top of the grid.
    """
    columns = [_as_images(originals, image_shape, "originals")]
    if isinstance(reconstructions_by_depth, np.ndarray) and reconstructions_by_depth.ndim < 3:
        raise ValueError("reconstructions_by_depth must be a list of arrays, one per depth")
    if len(reconstructions_by_depth) == 0:
        raise ValueError("reconstructions_by_depth is empty")
    for depth, images in enumerate(reconstructions_by_depth, start=1):
        column = _as_images(images, image_shape or columns[0].shape[1:], f"reconstructions_by_depth[{depth - 1}]")
        _check_same_length("originals", len(columns[0]), **{f"reconstructions_by_depth[{depth - 1}]": column})
        columns.append(column)
    if labels is None:
        labels = ["original"] + [f"depth {depth}" for depth in range(1, len(columns))]
    elif len(labels) != len(columns):
        raise ValueError(f"labels has {len(labels)} captions for {len(columns)} columns")
    return _grid_image(columns, check_int("padding", padding, low=0), _check_scale(scale), 0.5, labels)


def occlusion_panel(originals, masks, occluded, filled_by_method, image_shape=None, scale=2, padding=1,
                    mask_color=(60, 110, 200)):
    """Occlusion experiment, one row per leaf: the original, what the model was shown (hidden
    pixels painted ``mask_color``), then each method's fill-in.

    Parameters
    ----------
    originals : array-like, shape (N, H, W) or (N, H*W)
    masks : array-like of bool, same shape
        True where a pixel was hidden from the model.
    occluded : array-like, same shape
        The input the model saw; its hidden pixels are painted over.
    filled_by_method : dict of str to array-like
        Method name (column caption) → completed images, in column order.
    image_shape : (int, int), optional
    scale, padding
        As in :func:`tile_images`.
    mask_color : (int, int, int), default=(60, 110, 200)
        RGB colour of hidden pixels.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``.
    """
    first = _as_images(originals, image_shape, "originals")
    shape = first.shape[1:]
    mask = np.asarray(masks)
    if mask.dtype.kind not in "biuf" or (mask.dtype.kind != "b" and not np.isin(mask, (0, 1)).all()):
        raise ValueError("masks must be boolean (True where a pixel is hidden)")
    if mask.shape not in ((len(first), *shape), (len(first), shape[0] * shape[1])):
        raise ValueError(f"masks has shape {mask.shape}; expected {(len(first), *shape)} like originals")
    mask = mask.reshape(len(first), *shape).astype(bool)
    seen = _as_images(occluded, shape, "occluded")
    _check_same_length("originals", len(first), occluded=seen)
    if not isinstance(filled_by_method, dict) or not filled_by_method:
        raise ValueError("filled_by_method must be a non-empty dict of method name -> images")
    color = np.asarray(mask_color, dtype=np.float32) / 255.0
    if color.shape != (3,) or not ((color >= 0) & (color <= 1)).all():
        raise ValueError(f"mask_color must be an RGB triple of 0-255 ints, got {mask_color!r}")
    rgb = lambda grey: np.repeat(grey[..., None], 3, axis=-1)  # noqa: E731
    shown = rgb(seen)
    shown[mask] = color
    columns = [rgb(first), shown]
    for method, images in filled_by_method.items():
        filled = _as_images(images, shape, f"filled_by_method[{method!r}]")
        _check_same_length("originals", len(first), **{f"filled_by_method[{method!r}]": filled})
        columns.append(rgb(filled))
    captions = ["original", "occluded", *map(str, filled_by_method)]
    return _grid_image(columns, check_int("padding", padding, low=0), _check_scale(scale), (0.5, 0.5, 0.5), captions)


def imagined_grid(images_grid, image_shape=None, scale=2, padding=1, outside=None):
    """Leaves imagined over a regular grid of map positions, drawn in the same grid.

    Parameters
    ----------
    images_grid : array-like, shape (R, C, H, W), (R, C, H*W) or (R*C, H*W) with R = C
        ``images_grid[0, 0]`` is drawn top-left. Where row 0 of your grid is the bottom of the map
        (smallest y), pass ``images_grid[::-1]`` so that the picture reads like the map.
    image_shape : (int, int), optional
    scale, padding
        As in :func:`tile_images`.
    outside : array-like of bool, shape (R, C), optional
        Positions outside the map's hull: drawn dimmed and tinted dark red.

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"``, or ``"RGB"`` when ``outside`` is given.
    """
    array = np.asarray(images_grid)
    if array.ndim == 2:
        side = math.isqrt(len(array))
        if side * side != len(array):
            raise ValueError(f"images_grid holds {len(array)} images, not a square grid: pass shape (R, C, ...)")
        array = array.reshape(side, side, -1)
    if array.ndim not in (3, 4):
        raise ValueError(f"images_grid must be (R, C, H, W), (R, C, H*W) or (R*C, H*W), got shape {array.shape}")
    n_rows, n_cols = array.shape[:2]
    stack = _as_images(array.reshape(n_rows * n_cols, *array.shape[2:]), image_shape, "images_grid")
    padding = check_int("padding", padding, low=0)
    scale = _check_scale(scale)
    cells = stack.reshape(n_rows, n_cols, *stack.shape[1:])
    if outside is None:
        return _to_image(_assemble(cells, padding, 0.5), scale)
    flags = np.asarray(outside, dtype=bool)
    if flags.shape != (n_rows, n_cols):
        raise ValueError(f"outside has shape {flags.shape}; expected {(n_rows, n_cols)}")
    rgb = np.repeat(cells[..., None], 3, axis=-1)
    rgb[flags] = rgb[flags] * 0.35 + np.array([0.35, 0.0, 0.0], dtype=np.float32)
    image = _assemble(rgb, padding, (0.5, 0.5, 0.5))
    return _to_image(image, scale)


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


def _check_embedding(embedding, name="embedding"):
    points = np.asarray(embedding, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {points.shape}")
    if len(points) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return points


def _canvas_positions(points, size, margin, low=None, high=None):
    """Map 2-D points into a ``size`` x ``size`` canvas: equal scale on both axes, the data's box
    (or ``low``..``high``) centred within ``margin`` pixels of the edges, y pointing up.

    Returns float (N, 2) pixel coordinates (x = column, y = row).
    """
    low = points.min(axis=0) if low is None else np.asarray(low, dtype=np.float64)
    high = points.max(axis=0) if high is None else np.asarray(high, dtype=np.float64)
    span = float(max(high - low))
    usable = size - 1.0 - 2.0 * margin  # pixel centres run from 0 to size - 1
    factor = usable / span if span > 0 else 0.0
    offset = margin + 0.5 * (usable - (high - low) * factor)
    x = offset[0] + (points[:, 0] - low[0]) * factor
    y = (size - 1) - (offset[1] + (points[:, 1] - low[1]) * factor)
    return np.column_stack([x, y])


def _place_thumbnails(positions, thumb, order, max_thumbs):
    """Indices (in ``order``) of points whose ``thumb``-sized squares, centred on them, overlap no
    square already placed. A grid of ``thumb``-sized cells records placed squares, so only the
    3 x 3 neighbouring cells are checked per point.
    """
    occupied = {}
    placed = []
    cells = np.floor(positions / thumb).astype(np.int64)
    for i in order:
        if max_thumbs is not None and len(placed) >= max_thumbs:
            break
        cx, cy = cells[i]
        near = [j for dx in (-1, 0, 1) for dy in (-1, 0, 1) for j in occupied.get((cx + dx, cy + dy), ())]
        if near and (np.abs(positions[near] - positions[i]) < thumb).all(axis=1).any():
            continue
        occupied.setdefault((cx, cy), []).append(i)
        placed.append(i)
    return np.array(placed, dtype=np.int64)


def _label_colors(labels, n):
    """RGB uint8 (n, 3): PALETTE by label (labels ranked by sorted unique value), or leaf green."""
    if labels is None:
        return np.tile(np.array(_LEAF_GREEN, dtype=np.uint8), (n, 1))
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    _, rank = np.unique(labels, return_inverse=True)
    return np.array(PALETTE, dtype=np.uint8)[rank.ravel() % len(PALETTE)]


def _resize_grey(image, side):
    """float (H, W) in [0, 1] → uint8 ``side`` x ``side`` (area-averaged down, Lanczos up)."""
    resized = Image.fromarray(image.astype(np.float32))
    if image.shape != (side, side):
        method = Image.Resampling.BOX if side < max(image.shape) else Image.Resampling.LANCZOS
        resized = resized.resize((side, side), method)
    return Image.fromarray(np.rint(np.clip(np.asarray(resized), 0.0, 1.0) * 255.0).astype(np.uint8))


def map_with_thumbnails(embedding, images, image_shape=None, size=1200, thumb=32, labels=None, max_thumbs=None,
                        dots=True, random_state=0):
    """A 2-D map (e.g. t-SNE) drawn with leaf thumbnails at the positions of their points.

    Every point is drawn as a small dot; then, in a random order, a point gets its thumbnail
    (the leaf painted in its label's colour, its grey level used as opacity) unless the
    thumbnail would overlap one already drawn, until ``max_thumbs`` are drawn.

    Parameters
    ----------
    embedding : array-like, shape (N, 2)
        Map positions; x to the right, y up. Both axes get the same scale.
    images : array-like, shape (N, H, W) or (N, H*W)
        The leaves, white on black.
    image_shape : (int, int), optional
    size : int, default=1200
        Side of the square picture in pixels.
    thumb : int, default=32
        Side of a thumbnail in pixels.
    labels : array-like, shape (N,), optional
        Colours the dots and thumbnails (:data:`PALETTE`, by sorted label value); leaf green if None.
    max_thumbs : int, optional
        At most this many thumbnails.
    dots : bool, default=True
        Draw every point as a dot under the thumbnails.
    random_state : int, RandomState, Generator or None, default=0
        The order in which points claim their place.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, white background. Point ``i`` lands at column
        ``m + o_x + (x_i - min x) * f`` and row ``size - 1 - (m + o_y + (y_i - min y) * f)``, where
        ``m = thumb / 2 + 2`` is the margin, ``f = (size - 1 - 2 m) / max(x range, y range)`` and
        ``o`` centres the shorter range.
    """
    points = _check_embedding(embedding)
    stack = _as_images(images, image_shape)
    _check_same_length("embedding", len(points), images=stack)
    size = check_int("size", size, low=16)
    thumb = check_int("thumb", thumb, low=2, high=size // 2)
    max_thumbs = check_int("max_thumbs", max_thumbs, low=0, allow_none=True)
    if labels is not None:
        _check_same_length("embedding", len(points), labels=labels)
    colors = _label_colors(labels, len(points))
    positions = _canvas_positions(points, size, thumb / 2 + 2)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    if dots:
        _stamp_dots(canvas, positions, colors, radius=2)
    rng = check_random_state(random_state)
    order = rng.permutation(len(points))
    for i in _place_thumbnails(positions, thumb, order, max_thumbs):
        left = int(round(positions[i, 0] - thumb / 2))
        top = int(round(positions[i, 1] - thumb / 2))
        canvas.paste(tuple(int(c) for c in colors[i]), (left, top, left + thumb, top + thumb),
                     mask=_resize_grey(stack[i], thumb))
    return canvas


def _stamp_dots(canvas, positions, colors, radius):
    """Draw filled discs of ``radius`` pixels at ``positions`` in place (vectorised, later on top)."""
    pixels = np.array(canvas)
    rows, cols = np.rint(positions[:, 1]).astype(np.int64), np.rint(positions[:, 0]).astype(np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius + radius:
                continue
            r, c = rows + dy, cols + dx
            ok = (r >= 0) & (r < pixels.shape[0]) & (c >= 0) & (c < pixels.shape[1])
            pixels[r[ok], c[ok]] = colors[ok]
    canvas.paste(Image.fromarray(pixels))


def scatter_frames(embeddings_over_time, labels=None, size=480, point_radius=2, titles=None):
    """One scatter picture per snapshot of a 2-D map, all on the same axes (for a GIF of a
    t-SNE map forming): the axes span every point of every snapshot.

    Parameters
    ----------
    embeddings_over_time : sequence of array-like, each shape (N, 2)
        Snapshots of the map, e.g. collected by a t-SNE callback.
    labels : array-like, shape (N,), optional
        Point colours (:data:`PALETTE`); leaf green if None.
    size : int, default=480
        Side of each square frame in pixels.
    point_radius : int, default=2
    titles : sequence of str, optional
        One caption per frame (e.g. ``"iteration 250"``), drawn top-left.

    Returns
    -------
    list of PIL.Image.Image
        Mode ``"RGB"``, white background; positions follow :func:`map_with_thumbnails`' formula
        with the global ranges and ``m = point_radius + 4``.
    """
    if len(embeddings_over_time) == 0:
        raise ValueError("embeddings_over_time is empty")
    snapshots = [_check_embedding(e, f"embeddings_over_time[{t}]") for t, e in enumerate(embeddings_over_time)]
    n = len(snapshots[0])
    for t, snapshot in enumerate(snapshots):
        if len(snapshot) != n:
            raise ValueError(
                f"embeddings_over_time[{t}] has {len(snapshot)} points but embeddings_over_time[0] has {n}"
            )
    if labels is not None:
        _check_same_length("each embedding", n, labels=labels)
    if titles is not None and len(titles) != len(snapshots):
        raise ValueError(f"titles has {len(titles)} entries for {len(snapshots)} frames")
    size = check_int("size", size, low=16)
    radius = check_int("point_radius", point_radius, low=0)
    colors = _label_colors(labels, n)
    everything = np.concatenate(snapshots)
    low, high = everything.min(axis=0), everything.max(axis=0)
    frames = []
    for t, snapshot in enumerate(snapshots):
        frame = Image.new("RGB", (size, size), (255, 255, 255))
        _stamp_dots(frame, _canvas_positions(snapshot, size, radius + 4, low, high), colors, radius)
        if titles is not None:
            ImageDraw.Draw(frame).text((6, 4), str(titles[t]), fill=(40, 40, 40), font=_font(_FONT_SIZE + 2))
        frames.append(frame)
    return frames


# --------------------------------------------------------------------------------------------
# GIFs and plots
# --------------------------------------------------------------------------------------------


def _as_frame(frame, index):
    """A GIF frame as an "L" or "RGB" PIL image."""
    if isinstance(frame, Image.Image):
        return frame if frame.mode in ("L", "RGB") else frame.convert("RGB")
    array = np.asarray(frame)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        if array.dtype.kind not in "biuf":
            raise TypeError(f"frames[{index}] must be numeric, got dtype {array.dtype}")
        return Image.fromarray(np.rint(_unit_values(array, f"frames[{index}]") * 255.0).astype(np.uint8))
    raise ValueError(f"frames[{index}] must be a PIL image or an (H, W) or (H, W, 3) array, got shape {array.shape}")


def save_gif(frames, path, duration_ms=100, scale=1, loop=0):
    """Write an animated GIF that loops forever.

    Parameters
    ----------
    frames : sequence of PIL images or arrays
        Arrays are (H, W) grey or (H, W, 3) colour, uint8 or floats in [0, 1]. All frames must
        have the same size.
    path : str or path-like
    duration_ms : int or sequence of int, default=100
        Display time of each frame in milliseconds (>= 20; browsers slow shorter frames down).
    scale : int, default=1
        Integer enlargement (nearest-neighbour).
    loop : int, default=0
        Number of repeats; 0 loops forever.

    Returns
    -------
    path

    Notes
    -----
    Grey frames are stored with the grey palette, exactly. Colour frames share one adaptive
    palette of up to 256 colours, built from (up to 16 of) the frames, so colours do not flicker.
    Pillow merges a frame identical to the one before it into that frame (adding the durations).
    """
    if len(frames) == 0:
        raise ValueError("frames is empty")
    images = [_as_frame(frame, i) for i, frame in enumerate(frames)]
    for i, image in enumerate(images):
        if image.size != images[0].size:
            raise ValueError(f"frames[{i}] is {image.size[0]}x{image.size[1]} but frames[0] is "
                             f"{images[0].size[0]}x{images[0].size[1]}")
    if isinstance(duration_ms, (list, tuple, np.ndarray)):
        if len(duration_ms) != len(images):
            raise ValueError(f"duration_ms has {len(duration_ms)} entries for {len(images)} frames")
        durations = [check_int("duration_ms", d, low=20) for d in duration_ms]
    else:
        durations = check_int("duration_ms", duration_ms, low=20)
    scale = _check_scale(scale)
    loop = check_int("loop", loop, low=0)
    if scale != 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    if any(im.mode != "L" for im in images):
        images = [im.convert("RGB") for im in images]
        picks = np.unique(np.linspace(0, len(images) - 1, min(16, len(images))).astype(int))
        width, height = images[0].size
        sample = Image.new("RGB", (width, height * len(picks)))
        for k, i in enumerate(picks):
            sample.paste(images[i], (0, k * height))
        palette = sample.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    images[0].save(os.fspath(path), save_all=True, append_images=images[1:], duration=durations, loop=loop,
                   optimize=False, disposal=1)
    return path


def learning_curves(history, path, xlabel="epoch", title=None):
    """Plot training curves (one panel per quantity) with matplotlib and save them to ``path``.

    Parameters
    ----------
    history : dict of str to sequence of float
        Quantity name (the panel's title and y label) → its value at each epoch (NaN leaves a gap).
    path : str or path-like
        Output file; the format follows the ending (``.png``, ``.svg``, ``.pdf``, ...).
    xlabel : str, default="epoch"
    title : str, optional
        Figure title.

    Returns
    -------
    path

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install leafrbm[plot]``).
    """
    if not isinstance(history, dict) or not history:
        raise ValueError("history must be a non-empty dict of name -> list of values")
    series = {}
    for name, values in history.items():
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"history[{name!r}] must be a list of numbers") from None
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"history[{name!r}] must be a non-empty 1-D list of numbers, got shape {array.shape}")
        series[str(name)] = array
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("learning_curves needs matplotlib: pip install leafrbm[plot]") from error
    n_cols = min(3, len(series))
    n_rows = math.ceil(len(series) / n_cols)
    figure = Figure(figsize=(4.2 * n_cols, 3.2 * n_rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (name, values) in zip(axes, series.items()):
        epochs = np.arange(1, values.size + 1)
        ax.plot(epochs, values, marker="o" if values.size <= 30 else None, markersize=3, color="#2f6b2f")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    if title is not None:
        figure.suptitle(str(title))
    figure.savefig(os.fspath(path), dpi=100)
    return path
