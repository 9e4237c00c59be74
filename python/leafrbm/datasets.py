"""Leaf images: a procedural generator of leaf silhouettes, and loaders for folders and ``.npz`` files.

Every function returns leaves as ``uint8`` arrays of shape ``(n_images, size, size)``, the leaf
white (255) on a black (0) background, the same layout as the real leaves in the project's shared
data. :func:`to_unit` and :func:`binarize` turn them into the ``float32`` rows the RBMs train on.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from ._validation import check_choice, check_float, check_int, check_random_state, random_integers

__all__ = ["make_leaves", "load_leaf_images", "read_leaf_image", "to_unit", "binarize", "IMAGE_EXTENSIONS"]

#: File name endings read by :func:`load_leaf_images` (case-insensitive); other files are ignored.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)

_SUPERSAMPLE = 4  # leaves are drawn at 4x the output size, then box-averaged (anti-aliasing)
_N_OUTLINE = 1024  # points on a leaf outline after resampling by arc length

# Leaf kinds and their share of species.
_SIMPLE, _PINNATE, _PALMATE = 0, 1, 2
_KIND_SHARE = (0.45, 0.2, 0.35)
# Apex and base shapes, as the exponent n of the superellipse quarter w = W (1 - t^m)^(1/n):
# n < 1 gives concave sides (acuminate tip / attenuate base), n = 1 straight (acute / cuneate),
# n = 2 a round end (obtuse / rounded).
_APEX_N = np.array([0.55, 1.0, 2.0])  # acuminate, acute, obtuse
_BASE_N = np.array([0.75, 1.0, 2.0, 2.0])  # attenuate, cuneate, rounded, cordate
_CORDATE = 3
# Margin teeth: none, dentate (triangles), serrate (saw teeth pointing to the apex), crenate (scallops).
_NO_TEETH, _DENTATE, _SERRATE, _CRENATE = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------
# Procedural leaves
# --------------------------------------------------------------------------------------------


def make_leaves(n_species=100, n_per_species=16, size=64, random_state=0):
    """Procedural leaf silhouettes: ``n_species`` species of ``n_per_species`` leaves each.

    Each species has its own shape: simple, pinnately lobed (oak-like) or palmately lobed
    (maple-like); aspect ratio, position of the widest point, apex (acuminate, acute, obtuse) and
    base (attenuate, cuneate, rounded, cordate); number, depth and shape of lobes; margin teeth
    (dentate, serrate, crenate; their spacing and depth); petiole length. Each leaf varies around
    its species: jittered shape parameters, a slightly bent midrib, slight asymmetry, a small
    rotation and its own scale. Leaves are drawn as polygons at 4x the resolution and
    box-averaged down, so edges are anti-aliased. The leaf's longer side spans 80-94 % of the
    image, centred, apex up.

    Parameters
    ----------
    n_species : int, default=100
        Number of species (>= 1).
    n_per_species : int, default=16
        Leaves per species (>= 1).
    size : int, default=64
        Side of the square images in pixels (>= 8).
    random_state : int, RandomState, Generator or None, default=0
        Seed. The same seed gives identical images. A species' shape depends only on the seed and
        its index, not on ``n_per_species``.

    Returns
    -------
    images : ndarray of uint8, shape (n_species * n_per_species, size, size)
        Leaf white (255) on black (0); rows are image rows, top first.
    species : ndarray of int64, shape (n_species * n_per_species,)
        Species index of each leaf, ``0 ... n_species - 1``, grouped: the leaves of species 0 first.

    Examples
    --------
    >>> from leafrbm.datasets import make_leaves, to_unit
    >>> images, species = make_leaves(n_species=3, n_per_species=2, size=32)
    >>> images.shape, images.dtype, species.tolist()
    ((6, 32, 32), dtype('uint8'), [0, 0, 1, 1, 2, 2])
    >>> to_unit(images).shape
    (6, 1024)
    """
    n_species = check_int("n_species", n_species, low=1)
    n_per_species = check_int("n_per_species", n_per_species, low=1)
    size = check_int("size", size, low=8)
    rng = check_random_state(random_state)
    species_params = _draw_species(rng, n_species)
    species = np.repeat(np.arange(n_species, dtype=np.int64), n_per_species)
    leaf_params = _draw_leaves(rng, species_params, species)
    images = np.empty((species.size, size, size), dtype=np.uint8)
    for i in range(species.size):
        leaf = {key: value[i] for key, value in leaf_params.items()}
        images[i] = _render(_leaf_polygons(leaf), leaf["fill"], size)
    return images, species


def _draw_species(rng, n):
    """Shape parameters of ``n`` species, one array per parameter (drawn in a fixed order)."""
    u = lambda low, high: rng.uniform(low, high, n)  # noqa: E731
    kind = np.searchsorted(np.cumsum(_KIND_SHARE), rng.uniform(0.0, 1.0, n), side="right")
    kind = np.minimum(kind, _PALMATE)
    params = {
        "kind": kind,
        # simple and pinnate leaves: length 1, half-width 0.5 / aspect
        "aspect": np.where(kind == _PINNATE, np.exp(u(np.log(1.3), np.log(2.6))),
                           np.exp(u(np.log(1.1), np.log(5.5)))),
        "widest": u(0.3, 0.62),
        "apex": random_integers(rng, len(_APEX_N), n),
        "apex_m": u(1.3, 2.6),
        "base": random_integers(rng, len(_BASE_N), n),
        "base_m": u(1.3, 2.4),
        "cordate_depth": u(0.06, 0.16),
        # pinnate lobes
        "pinnate_lobes": random_integers(rng, 4, n) + 3,  # 3..6 per side
        "pinnate_depth": u(0.35, 0.75),
        "pinnate_sharpness": u(0.35, 1.6),
        "pinnate_alternate": rng.uniform(0.0, 1.0, n) < 0.5,
        # palmate lobes, radiating from the petiole
        "palmate_lobes": np.array([3, 5, 5, 7, 7, 9])[random_integers(rng, 6, n)],
        "palmate_spread": np.deg2rad(u(50.0, 130.0)),
        "palmate_decay": u(0.1, 0.5),
        "palmate_depth": u(0.25, 0.75),
        "palmate_sinus_round": rng.uniform(0.0, 1.0, n) < 0.5,
        "palmate_tip": u(0.45, 1.05),
        "palmate_base_depth": u(0.75, 1.0),
        "palmate_base_round": u(1.0, 2.5),
        "palmate_width": u(0.85, 1.25),
        # margin
        "teeth": np.where(rng.uniform(0.0, 1.0, n) < 0.35, _NO_TEETH, random_integers(rng, 3, n) + 1),
        "tooth_spacing": u(0.04, 0.1),
        "tooth_depth": u(0.012, 0.035),
        # petiole
        "petiole": np.where(rng.uniform(0.0, 1.0, n) < 0.8, u(0.05, 0.3), 0.0),
        "petiole_width": u(0.012, 0.022),
    }
    return params


def _draw_leaves(rng, sp, species):
    """Per-leaf parameters: the species' ones with jitter, plus pose and scale."""
    n = species.size
    leaf = {key: value[species] for key, value in sp.items()}
    jitter = lambda scale: rng.normal(0.0, scale, n)  # noqa: E731
    leaf["aspect"] = leaf["aspect"] * np.exp(jitter(0.06))
    leaf["widest"] = np.clip(leaf["widest"] + jitter(0.02), 0.22, 0.72)
    leaf["cordate_depth"] = leaf["cordate_depth"] * np.exp(jitter(0.1))
    leaf["pinnate_depth"] = np.clip(leaf["pinnate_depth"] + jitter(0.04), 0.1, 0.85)
    leaf["palmate_spread"] = leaf["palmate_spread"] * np.exp(jitter(0.05))
    leaf["palmate_depth"] = np.clip(leaf["palmate_depth"] + jitter(0.04), 0.1, 0.88)
    leaf["palmate_width"] = leaf["palmate_width"] * np.exp(jitter(0.04))
    leaf["tooth_spacing"] = leaf["tooth_spacing"] * np.exp(jitter(0.05))
    leaf["tooth_depth"] = leaf["tooth_depth"] * np.exp(jitter(0.1))
    leaf["tooth_phase"] = rng.uniform(0.0, 1.0, n)
    leaf["petiole"] = leaf["petiole"] * np.exp(jitter(0.15))
    leaf["asymmetry"] = jitter(0.04)
    leaf["bend"] = jitter(0.06)
    leaf["rotation"] = np.deg2rad(jitter(7.0))
    leaf["fill"] = rng.uniform(0.80, 0.94, n)
    return leaf


def _superellipse_width(t, m, n):
    """Half-width profile W (1 - t^m)^(1/n) for t in [0, 1], W = 1."""
    return np.clip(1.0 - np.clip(t, 0.0, 1.0) ** m, 0.0, 1.0) ** (1.0 / n)


def _lamina_simple(leaf):
    """Outline of a simple or pinnately lobed leaf, counter-clockwise from the base at (0, 0) up the
    right side to the apex at (0, 1) and down the left. Returns (x, y, y of the petiole's attachment)."""
    s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 400))  # dense near base and apex
    half_width = 0.5 / leaf["aspect"]
    p = leaf["widest"]
    below = s < p
    profile = np.where(
        below,
        _superellipse_width((p - s) / p, leaf["base_m"], _BASE_N[leaf["base"]]),
        _superellipse_width((s - p) / (1.0 - p), leaf["apex_m"], _APEX_N[leaf["apex"]]),
    )
    sides = []
    for side, phase in ((1.0, 0.0), (-1.0, 0.25 if leaf["pinnate_alternate"] else 0.0)):
        w = half_width * profile
        if leaf["kind"] == _PINNATE:
            # Lobes along the midrib, shallower towards base and apex (window), sinuses of depth d.
            v = np.clip((s - 0.08) / 0.84, 0.0, 1.0)
            window = np.sin(np.pi * v) ** 0.6
            lobe = np.abs(np.sin(np.pi * (v * leaf["pinnate_lobes"] + 0.5 + phase))) ** leaf["pinnate_sharpness"]
            w = w * (1.0 - leaf["pinnate_depth"] * window * (1.0 - lobe))
        y = s.copy()
        if leaf["base"] == _CORDATE:
            # Pull the base's sides below the petiole's attachment point: a heart-shaped notch.
            y = y - leaf["cordate_depth"] * (w / half_width) ** 0.6 * np.clip(1.0 - s / p, 0.0, 1.0) ** 2
        sides.append((side * w, y))
    (xr, yr), (xl, yl) = sides
    x = np.concatenate([xr, xl[::-1][1:-1]])
    y = np.concatenate([yr, yl[::-1][1:-1]])
    return x, y, 0.0


def _lamina_palmate(leaf):
    """Outline of a palmately lobed leaf in polar form around the petiole's attachment point,
    clockwise from the bottom (up the left side). Returns (x, y, y of the petiole's attachment)."""
    theta = np.linspace(-np.pi, np.pi, 1440, endpoint=False)  # 0 points to the apex
    angle = np.abs(theta)
    n_lobes = int(leaf["palmate_lobes"])
    spread = min(float(leaf["palmate_spread"]), np.deg2rad(150.0))
    centres = np.linspace(-spread, spread, n_lobes)
    lengths = 1.0 - leaf["palmate_decay"] * (np.abs(centres) / spread) ** 1.5
    gap = centres[1] - centres[0]
    depth = leaf["palmate_depth"]
    k = 2.0 if leaf["palmate_sinus_round"] else 1.0

    def sinus(u):
        # 0 at a lobe tip (u = 0 or 1), 1 mid-way; pointed tips for exponent < 1, sinus round or sharp
        return (1.0 - np.abs(1.0 - 2.0 * u) ** k) ** leaf["palmate_tip"]

    position = np.clip((theta + spread) / gap, 0.0, n_lobes - 1 - 1e-9)
    index = position.astype(np.int64)
    u = position - index
    length = lengths[index] * (1.0 - u) + lengths[np.minimum(index + 1, n_lobes - 1)] * u
    r = length * (1.0 - depth * sinus(u))
    # Beyond the outermost lobes: the lobe's other flank down to sinus level (half a gap) ...
    flank = np.clip((angle - spread) / gap, 0.0, 0.5)
    r = np.where(angle > spread, lengths[0] * (1.0 - depth * sinus(flank)), r)
    # ... then a rounded base running in to the petiole (a deep notch when the base depth is 1).
    start = spread + 0.5 * gap
    if start < np.pi:
        sinus_level = lengths[0] * (1.0 - depth)
        petiole_level = min(sinus_level, lengths[0] * (1.0 - leaf["palmate_base_depth"]))
        v = np.clip((angle - start) / (np.pi - start), 0.0, 1.0)
        base = sinus_level + (petiole_level - sinus_level) * np.sin(0.5 * np.pi * v) ** leaf["palmate_base_round"]
        r = np.where(angle > start, base, r)
    x = r * np.sin(theta) * leaf["palmate_width"]
    y = r * np.cos(theta)
    return x, y, float(y[0])  # theta[0] = -pi: the margin's point below the petiole's attachment


def _resample_closed(x, y, n):
    """``n`` points equally spaced by arc length along the closed polygon (x, y)."""
    xc, yc = np.append(x, x[0]), np.append(y, y[0])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xc), np.diff(yc)))])
    at = np.linspace(0.0, arc[-1], n, endpoint=False)
    return np.interp(at, arc, xc), np.interp(at, arc, yc), arc[-1]


def _add_teeth(x, y, perimeter, leaf):
    """Displace the outline along its outward normal by a periodic tooth profile."""
    n_teeth = max(1, int(round(perimeter / leaf["tooth_spacing"])))
    phi = (np.arange(x.size) / x.size * n_teeth + leaf["tooth_phase"]) % 1.0
    # +1 when the outline runs counter-clockwise (up the right side), -1 when clockwise.
    orientation = 1.0 if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0 else -1.0
    kind = leaf["teeth"]
    if kind == _DENTATE:
        profile = 1.0 - np.abs(2.0 * phi - 1.0)
    elif kind == _SERRATE:
        # A gentle rise then a steep drop along the direction of travel: flip the saw on the side
        # that the outline runs down, so that every tooth points to the apex.
        phi = np.where((x < 0.0) == (orientation > 0), 1.0 - phi, phi)
        profile = np.where(phi < 0.8, phi / 0.8, (1.0 - phi) / 0.2)
    else:  # crenate
        profile = np.sin(np.pi * phi) ** 0.6
    # No teeth near the petiole.
    taper = np.clip(np.hypot(x, y - leaf["base_y"]) / 0.12, 0.0, 1.0)
    offset = leaf["tooth_depth"] * (profile - 0.5) * taper
    tx = np.roll(x, -1) - np.roll(x, 1)
    ty = np.roll(y, -1) - np.roll(y, 1)
    norm = np.hypot(tx, ty)
    norm[norm == 0.0] = 1.0
    # Outward normal: the tangent turned clockwise for a counter-clockwise outline.
    return x + offset * orientation * ty / norm, y - offset * orientation * tx / norm


def _leaf_polygons(leaf):
    """The lamina and petiole polygons of one leaf, in leaf units (y up), after pose changes."""
    leaf = dict(leaf)
    if leaf["kind"] == _PALMATE:
        x, y, base_y = _lamina_palmate(leaf)
    else:
        x, y, base_y = _lamina_simple(leaf)
    leaf["base_y"] = base_y
    x, y, perimeter = _resample_closed(x, y, _N_OUTLINE)
    if leaf["teeth"] != _NO_TEETH:
        x, y = _add_teeth(x, y, perimeter, leaf)
    polygons = [(x, y)]
    if leaf["petiole"] > 0.0:
        half = 0.5 * leaf["petiole_width"]
        top, bottom = base_y + 0.03, base_y - leaf["petiole"]
        polygons.append((np.array([-half, half, 0.6 * half, -0.6 * half]), np.array([top, top, bottom, bottom])))
    out = []
    c, s = math.cos(leaf["rotation"]), math.sin(leaf["rotation"])
    for px, py in polygons:
        px = np.where(px > 0.0, px * (1.0 + leaf["asymmetry"]), px * (1.0 - leaf["asymmetry"]))
        px = px + leaf["bend"] * (py - 0.5) ** 2
        out.append((c * px - s * py, s * px + c * py))
    return out


def _render(polygons, fill, size):
    """Draw the polygons white on black at 4x ``size``, centred and scaled, then box-average."""
    big = size * _SUPERSAMPLE
    xs = np.concatenate([p[0] for p in polygons])
    ys = np.concatenate([p[1] for p in polygons])
    lo_x, hi_x, lo_y, hi_y = xs.min(), xs.max(), ys.min(), ys.max()
    scale = fill * big / max(hi_x - lo_x, hi_y - lo_y)
    cx, cy = 0.5 * (lo_x + hi_x), 0.5 * (lo_y + hi_y)
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for px, py in polygons:
        col = (px - cx) * scale + 0.5 * big
        row = (cy - py) * scale + 0.5 * big  # y up in leaf units, rows go down
        draw.polygon(np.column_stack([col, row]).ravel().tolist(), fill=255)
    return np.asarray(canvas.reduce(_SUPERSAMPLE))


# --------------------------------------------------------------------------------------------
# Loading images
# --------------------------------------------------------------------------------------------


def load_leaf_images(path, size=64, labels=None, on_error="raise"):
    """Load leaf images from a folder of image files or an ``.npz`` file, normalised like the shared data.

    Each image is converted to grey; made leaf-white-on-black (inverted when the median of its
    border is bright); contrast-stretched from the background level (the border median) to the
    99th percentile; cropped to the bounding box of the leaf (the connected regions holding
    pixels >= 128, with their faint anti-aliased edges, thin petioles and tips; specks dropped);
    padded to a centred square with black; and resized to ``size x size`` (area averaging when
    shrinking, Lanczos when enlarging). This is how the shared Kaggle leaves were made, so
    loading them again changes (nearly) nothing. An image with an alpha channel that is not
    constant uses the alpha as its silhouette.

    Parameters
    ----------
    path : str or path-like
        A folder (its image files, not sub-folders, read in natural sort order: ``2.png`` before
        ``10.png``; hidden files and files whose ending is not in :data:`IMAGE_EXTENSIONS` are
        ignored), or an
        ``.npz`` file with an ``images`` or ``X`` array (N x H x W, or N x D with D a square;
        uint8, or floats in [0, 1]) and optionally labels in ``species``, ``labels`` or ``y``.
    size : int, default=64
        Side of the output images (>= 8).
    labels : str or path-like, optional
        For a folder: a CSV file whose rows are ``filename,label``. A file is matched by its name
        (``12.png``) or its name without ending (``12``); rows matching no file (a header, say)
        are ignored; an empty label is kept as ``""`` (unknown). Every image must have a row.
    on_error : {"raise", "skip"}, default="raise"
        What to do with an image file that cannot be read or holds no leaf: raise ValueError
        naming it, or skip it with a warning.

    Returns
    -------
    images : ndarray of uint8, shape (n_images, size, size)
        Leaf white on black.
    labels : ndarray, shape (n_images,)
        Only when labels exist (``labels=`` given, or label keys in the ``.npz``): ints when every
        label is an integer, strings otherwise.
    """
    size = check_int("size", size, low=8)
    on_error = check_choice("on_error", on_error, {"raise", "skip"})
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {path!r} ({type(path).__name__})")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    if path.is_dir():
        return _load_folder(path, size, labels, on_error)
    if labels is not None:
        raise ValueError(f"labels= is for folders of images; {str(path)!r} is a file (its labels come from itself)")
    if path.suffix.lower() == ".npz":
        return _load_npz(path, size, on_error)
    raise ValueError(f"path {str(path)!r} is neither a folder of images nor an .npz file")


def _natural_key(name):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _load_folder(folder, size, labels, on_error):
    files = sorted(
        (f for f in folder.iterdir()
         if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda f: _natural_key(f.name),
    )
    if not files:
        raise ValueError(
            f"no image files in folder {str(folder)!r} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    label_of = _read_label_csv(labels, files) if labels is not None else None
    images, kept = [], []
    for f in files:
        try:
            grey, faint = _read_grey(f)
            images.append(_normalise_leaf(grey, size, str(f), faint))
            kept.append(f)
        except ValueError as error:
            if on_error == "raise":
                raise
            warnings.warn(f"skipped {str(f)!r}: {error}", RuntimeWarning, stacklevel=3)
    if not images:
        raise ValueError(f"no readable leaf images in folder {str(folder)!r}")
    images = np.stack(images)
    if label_of is None:
        return images
    return images, _label_array([label_of[f] for f in kept])


def _read_label_csv(labels, files):
    if not isinstance(labels, (str, os.PathLike)):
        raise TypeError(f"labels must be the path of a CSV file, got {labels!r} ({type(labels).__name__})")
    by_name = {}
    for f in files:
        by_name[f.name] = f
        by_name.setdefault(f.stem, f)
    try:
        with open(labels, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except OSError as error:
        raise ValueError(f"labels file {str(labels)!r} cannot be read: {error}") from error
    label_of = {}
    for number, row in enumerate(rows):
        key = row[0].strip()
        if key not in by_name:
            continue  # a header, or a row for a file that is not in the folder
        if len(row) < 2:
            raise ValueError(f"labels file {str(labels)!r}, row {number + 1}: expected 'filename,label', got {row!r}")
        label_of[by_name[key]] = row[1].strip()
    missing = [f.name for f in files if f not in label_of]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"labels file {str(labels)!r} has no row for {len(missing)} image(s): {shown}")
    return label_of


def _label_array(values):
    values = [str(v) for v in values]
    if values and all(re.fullmatch(r"[+-]?\d+", v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    return np.array(values)


def read_leaf_image(file, size=64):
    """One image file as the loaders make it: uint8 ``size × size``, the leaf white on black,
    cropped to the leaf, padded to a square and resized. Raises ValueError naming the file."""
    grey, faint = _read_grey(file)
    return _normalise_leaf(grey, size, str(file), faint)


def _read_grey(file):
    """Decode one image file as a float64 grey array in [0, 255] (alpha used as the silhouette).

    Also returns the faint level (out of 255) above which a pixel may belong to the leaf: 16 for
    JPEG, whose ringing would otherwise widen the leaf's box, 1 for lossless formats.
    """
    try:
        with Image.open(file) as image:
            image.load()
            faint = 16.0 if image.format == "JPEG" else 1.0
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
                alpha = np.asarray(image.getchannel("A"), dtype=np.float64)
                if alpha.min() != alpha.max():
                    return alpha, faint
                image = image.convert("L")
            if image.mode in ("I", "F") or image.mode.startswith("I;"):
                grey = np.asarray(image, dtype=np.float64)
                low, high = grey.min(), grey.max()
                return ((grey - low) * (255.0 / (high - low)) if high > low else np.zeros_like(grey)), faint
            return np.asarray(image.convert("L"), dtype=np.float64), faint
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image file {str(file)!r}: {error}") from error


def _normalise_leaf(grey, size, name, faint=1.0):
    """Polarity, contrast, crop to the leaf, pad to a square, resize: grey float array → uint8 size x size."""
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ValueError(f"image {name} has shape {grey.shape}; expected a 2-D picture")
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    if background > 127.5:
        grey = 255.0 - grey
        background = 255.0 - background
    top = float(np.percentile(grey, 99.0))
    if top - background < 32.0:
        raise ValueError(f"image {name} holds no leaf (no part of it stands out from its border)")
    stretch = 255.0 / (top - background)
    grey = np.clip((grey - background) * stretch, 0.0, 255.0)
    noise = 1.4826 * float(np.median(np.abs(border - np.median(border)))) * stretch
    r0, r1, c0, c1 = _leaf_box(grey, max(faint, 4.0 * noise))
    crop = grey[r0:r1, c0:c1]
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = crop
    if side != size:
        method = Image.Resampling.BOX if side > size else Image.Resampling.LANCZOS
        square = np.asarray(Image.fromarray(square).resize((size, size), method))
    return np.clip(np.rint(square), 0, 255).astype(np.uint8)


def _leaf_box(grey, faint):
    """Bounding box (row0, row1, col0, col1) of the leaf in a background-0, leaf-255 grey image.

    The leaf is the set of connected regions (8-connectivity) of pixels above a faint level
    ``faint`` (capped at 64) that hold at least a tenth as many pixels >= 128 as the
    largest one: thin petioles and tips, which area averaging leaves grey, stay in the box, and
    isolated specks (JPEG noise, dust) drop out.
    """
    from scipy import ndimage

    regions, n_regions = ndimage.label(grey >= min(faint, 64.0), structure=np.ones((3, 3), dtype=bool))
    core = np.bincount(regions[grey >= 128.0], minlength=n_regions + 1)
    core[0] = 0
    keep = core >= max(1, 0.1 * core.max())
    leaf = keep[regions]
    rows = np.flatnonzero(leaf.any(axis=1))
    cols = np.flatnonzero(leaf.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _load_npz(file, size, on_error):
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"cannot read .npz file {str(file)!r}: {error}") from error
    key = next((k for k in ("images", "X") if k in arrays), None)
    if key is None:
        raise ValueError(f".npz file {str(file)!r} has no 'images' or 'X' array (it has {sorted(arrays)})")
    images = np.asarray(arrays[key])
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(
                f"{key!r} in {str(file)!r} has shape {images.shape}: "
                f"rows of {images.shape[1]} values are not square images"
            )
        images = images.reshape(len(images), side, side)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"{key!r} in {str(file)!r} has shape {images.shape}; expected N x H x W or N x (H*W)")
    if images.dtype.kind == "f":
        if not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
            raise ValueError(f"{key!r} in {str(file)!r} is float but not in [0, 1]")
        grey = images.astype(np.float64) * 255.0
    elif images.dtype.kind in "uib":
        grey = images.astype(np.float64)
        if grey.min() < 0.0 or grey.max() > 255.0:
            raise ValueError(f"{key!r} in {str(file)!r} holds values outside 0..255")
    else:
        raise ValueError(f"{key!r} in {str(file)!r} has dtype {images.dtype}; expected integers or floats")
    label_key = next((k for k in ("species", "labels", "y") if k in arrays), None)
    labels = arrays[label_key] if label_key is not None else None
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"{label_key!r} in {str(file)!r} has shape {labels.shape}; expected ({len(images)},)")
    out, kept = [], []
    for i, picture in enumerate(grey):
        try:
            out.append(_normalise_leaf(picture, size, f"{i} of {str(file)!r}"))
            kept.append(i)
        except ValueError as error:
            if on_error == "raise":
                raise
            warnings.warn(f"skipped {error}", RuntimeWarning, stacklevel=3)
    if not out:
        raise ValueError(f"no leaf images in {str(file)!r}")
    out = np.stack(out)
    if labels is None:
        return out
    return out, labels[kept]


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def to_unit(images):
    """Images as float32 rows in [0, 1]: ``(N, S, S)`` or ``(N, D)`` → ``(N, S*S)`` or ``(N, D)``.

    uint8 images are divided by 255; float images must already lie in [0, 1].
    """
    images = np.asarray(images)
    if images.ndim not in (2, 3):
        raise ValueError(f"images must be N x H x W or N x D, got shape {images.shape}")
    flat = images.reshape(len(images), -1)
    if images.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255.0)
    if images.dtype.kind == "b":
        return flat.astype(np.float32)
    if images.dtype.kind not in "fiu":
        raise TypeError(f"images must be uint8, bool or float, got dtype {images.dtype}")
    flat = flat.astype(np.float32)
    if flat.size and not (np.isfinite(flat).all() and flat.min() >= 0.0 and flat.max() <= 1.0):
        raise ValueError("images that are not uint8 must hold finite values in [0, 1]")
    return flat


def binarize(images, threshold=0.5):
    """Binary float32 rows: :func:`to_unit` of ``images`` compared with ``threshold`` (> is 1)."""
    threshold = check_float("threshold", threshold, low=0.0, high=1.0)
    return (to_unit(images) > threshold).astype(np.float32)
